"""A real PostgreSQL server (Debian's `postgresql`, /usr/lib/postgresql/*/bin) in a temporary data
directory on a free loopback port, for the inventory's tests.

PostgreSQL refuses to run as root: as root the server runs as the `postgres` system user the Debian
package creates, in a directory outside pytest's root-only tmp tree.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .absent import unavailable
from .registry import free_port


def postgres_bindir() -> Path | None:
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").is_file() and (candidate / "pg_ctl").is_file():
            return candidate
    return None


@dataclass
class PostgresServer:
    port: int
    datadir: Path
    bindir: Path
    run_as: dict[str, Any]

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A fresh database of its own (tests must not see each other's rows); its URL."""
        name = "t_" + uuid.uuid4().hex[:12]
        subprocess.run(
            [str(self.bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name],
            check=True,
            capture_output=True,
            timeout=60,
            **self.run_as,
        )
        return self.url(name)

    def stop(self) -> None:
        subprocess.run(
            [str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            timeout=60,
            **self.run_as,
        )
        shutil.rmtree(self.datadir.parent, ignore_errors=True)


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    bindir = postgres_bindir()
    if bindir is None:
        unavailable("PostgreSQL is not installed (Debian's postgresql package; scripts/setup.sh)")
    base = Path(tempfile.mkdtemp(prefix="sigscope-pg-"))
    run_as: dict[str, Any] = {}
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            unavailable("running as root and there is no postgres user to run PostgreSQL as")
        os.chown(base, user.pw_uid, user.pw_gid)
        run_as = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    datadir = base / "data"
    port = free_port()
    subprocess.run(
        [
            str(bindir / "initdb"),
            "-D",
            str(datadir),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
        timeout=120,
        **run_as,
    )
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off -c max_connections=60"
    subprocess.run(
        [str(bindir / "pg_ctl"), "-D", str(datadir), "-o", options, "-l", str(base / "log"), "-w", "start"],
        check=True,
        capture_output=True,
        timeout=120,
        **run_as,
    )
    server = PostgresServer(port, datadir, bindir, run_as)
    try:
        yield server
    finally:
        server.stop()


try:  # the fixture, for test modules to import (pytest finds fixtures by name in the module)
    import pytest

    @pytest.fixture(scope="session")
    def postgres() -> Iterator[PostgresServer]:
        with postgres_server() as server:
            yield server

except ImportError:  # bench/ imports this module without pytest
    pass
