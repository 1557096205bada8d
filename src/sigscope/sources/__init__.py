"""Sources: where signature bytes come from (lookaside stores, ...); they fetch, never interpret."""
