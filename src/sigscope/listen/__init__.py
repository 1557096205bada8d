"""`sigscope inventory listen`: registry push and delete notifications re-scan the repository they name
into the inventory (docs/inventory.md, *Push events*)."""
