"""The `sigscope` command line."""
