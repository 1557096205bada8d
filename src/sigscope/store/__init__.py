"""The inventory: every scan remembered (SQLite by default, PostgreSQL by URL). docs/inventory.md."""

from sigscope.store.inventory import Inventory

__all__ = ["Inventory"]
