"""Opening an inventory: URL → engine (SQLite in WAL mode, or PostgreSQL through psycopg 3) → schema at head.

Migrations ship in this package and run on open. Two processes opening one new database at once
serialize on a lock (SQLite: the write lock of BEGIN IMMEDIATE; PostgreSQL: an advisory lock), so one
creates the schema and the other finds it made.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url

from sigscope.errors import UsageError

ENV = "SIGSCOPE_DB"
# Execution option of the transactions that write: on SQLite they take the write lock as they begin.
WRITE_OPTION = "sigscope_write"
HEAD = "0002"
# Any constant works: it only has to be the same for every sigscope process using one database.
_PG_MIGRATION_LOCK = 0x5167_5C09E
_MIGRATIONS = Path(__file__).parent / "migrations"


def default_path() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "sigscope" / "inventory.db"


def resolve_url(value: str) -> URL:
    """--db's value: `default` (the per-user SQLite file), a path, `sqlite:///PATH`, or
    `postgresql://…` (driven by psycopg 3 whatever the URL names)."""
    text = value.strip()
    if not text:
        raise UsageError("--db: empty database URL")
    if text == "default":
        path = default_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        return URL.create("sqlite", database=str(path))
    if "://" not in text:
        return URL.create("sqlite", database=str(Path(text).expanduser()))
    try:
        url = make_url(text)
    except sa.exc.ArgumentError:
        raise UsageError("--db: not a database URL (sqlite:///PATH or postgresql://…)") from None
    backend = url.get_backend_name()
    if backend == "sqlite":
        if url.database in (None, "", ":memory:"):
            raise UsageError("--db: an in-memory SQLite database would forget the scan; give a file")
        return url.set(drivername="sqlite")
    if backend in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+psycopg")
    raise UsageError(f"--db: unsupported database {backend!r} (sqlite or postgresql)")


def redacted(url: URL) -> str:
    """The URL for messages: never its password."""
    return url.render_as_string(hide_password=True)


def create(url: URL) -> Engine:
    if url.get_backend_name() == "sqlite":
        return _sqlite(url)
    return sa.create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=2)


def _sqlite(url: URL) -> Engine:
    # The driver's own transaction handling is off so that every writing transaction begins IMMEDIATE: it
    # takes the write lock up front, and a second writer process waits (busy_timeout) instead of failing
    # with "database is locked" when a read transaction tries to become a write one.
    engine = sa.create_engine(url, connect_args={"timeout": 60.0, "isolation_level": None})

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        # Reads begin deferred: in WAL mode they never wait for a writer, nor hold one up.
        immediate = connection.get_execution_options().get(WRITE_OPTION)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def writer(engine: Engine) -> Engine:
    """The engine for transactions that write."""
    return engine.execution_options(**{WRITE_OPTION: True})


def current_revision(connection: sa.Connection) -> str | None:
    if not sa.inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def migrate(engine: Engine, target: str = "head") -> None:
    """Bring the schema to `target` (alembic's revision syntax); at head already, it costs one query."""
    if target == "head":
        with engine.connect() as connection:
            if current_revision(connection) == HEAD:
                return
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    with writer(engine).begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
        config.attributes["connection"] = connection
        command.upgrade(config, target)
