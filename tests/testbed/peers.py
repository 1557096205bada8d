"""The real peers built from the Go module proxy (cosign, notation, oras, distribution v3, regctl).

``scripts/peers.txt`` pins them; ``scripts/install-peers.sh`` (run by ``scripts/setup.sh``) builds each into
``${SIGSCOPE_PEERS_DIR:-${XDG_CACHE_HOME:-~/.cache}/sigscope/peers}/NAME-VERSION/TOOL``. :func:`peer` returns
that binary, or skips the test with one line naming the install script (failing it under ``CI=true``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from . import absent

REPO_ROOT = Path(__file__).resolve().parents[2]
PEERS_FILE = REPO_ROOT / "scripts" / "peers.txt"
INSTALL_SCRIPT = "scripts/install-peers.sh"


@dataclass(frozen=True)
class Peer:
    """A line of scripts/peers.txt: ``NAME MODULE/cmd/TOOL VERSION [tags=…] [cgo=1] [bin=…] [staging=V]``."""

    name: str
    package: str
    version: str
    tags: tuple[str, ...] = ()
    binary: str | None = None  # bin=: when the package path does not end in the tool's name (etcd)

    @property
    def tool(self) -> str:
        return self.binary or self.package.rsplit("/", 1)[-1]

    @property
    def path(self) -> Path:
        return cache_dir() / f"{self.name}-{self.version}" / self.tool


def cache_dir() -> Path:
    """Where install-peers.sh puts the peers (same rule as the script)."""
    explicit = os.environ.get("SIGSCOPE_PEERS_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sigscope" / "peers"


def read_peers(path: Path = PEERS_FILE) -> dict[str, Peer]:
    """The pinned peers by name."""
    found: dict[str, Peer] = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].split()
        if not line:
            continue
        if len(line) < 3:
            raise ValueError(f"{path}: expected NAME MODULE/cmd/TOOL VERSION, got {raw!r}")
        name, package, version, *options = line
        tags: tuple[str, ...] = ()
        binary: str | None = None
        for option in options:
            if option.startswith("tags="):
                tags = tuple(t for t in option.removeprefix("tags=").split(",") if t)
            elif option.startswith("bin="):
                binary = option.removeprefix("bin=")
        found[name] = Peer(name, package, version, tags, binary)
    return found


def peer_path(name: str) -> Path | None:
    """The built binary of peer ``name``, or None when it is not (yet) built."""
    pinned = read_peers().get(name)
    if pinned is None:
        raise KeyError(f"{name!r} is not pinned in {PEERS_FILE}")
    path = pinned.path
    return path if os.access(path, os.X_OK) else None


def peer(name: str) -> Path:
    """The binary of peer ``name``; skips (fails under CI=true) with one line when it is not built."""
    path = peer_path(name)
    if path is None:
        pinned = read_peers()[name]
        where = f"{cache_dir()} (bash {INSTALL_SCRIPT} {name}; setup.sh does this)"
        absent.unavailable(f"{name} {pinned.version} not built in {where}")
    return path
