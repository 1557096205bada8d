"""Alembic's environment: always handed an open connection by sigscope.store.engine.migrate."""

from __future__ import annotations

from typing import Any

from alembic import context

from sigscope.store.schema import metadata


def run(config: Any) -> None:
    connection = config.attributes["connection"]
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


_config: Any
try:
    _config = context.config
except AttributeError:  # imported as a module (the import test), not run by alembic: nothing to do
    _config = None
if _config is not None:
    run(_config)
