"""Where the shared test vectors live, and what a test does when they are absent.

The vectors are upstream projects' test data (``../shared/vectors`` beside the clone, described by its
``VECTORS.md``), never copied into this repository. ``SIGSCOPE_VECTORS`` points elsewhere. Tests that read
them carry the ``vectors`` marker (per test, or ``pytestmark`` for a whole module); ``conftest.py`` skips
them with one reason when the directory is absent, and fails them under ``CI=true``, where an absent
directory means the run is not testing what it claims to.

Module-level code may build paths under :data:`ROOT` but must not read them: reading happens in tests, after
the marker has had its say.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

from . import absent

#: The repository's parent holds ``shared/`` (the clone and ``shared`` sit side by side).
DEFAULT_ROOT = Path(__file__).resolve().parents[3] / "shared" / "vectors"
ROOT = Path(os.environ.get("SIGSCOPE_VECTORS") or DEFAULT_ROOT)


def available() -> bool:
    """The vectors directory is there (its index ``VECTORS.md`` marks a complete copy)."""
    return (ROOT / "VECTORS.md").is_file()


def absent_reason() -> str:
    return (
        f"shared test vectors not found at {ROOT} (../shared/vectors beside the clone, or SIGSCOPE_VECTORS)"
    )


def unavailable(reason: str = "") -> NoReturn:
    """Skip the running test for want of vectors, or fail it under CI."""
    absent.unavailable(reason or absent_reason())


def require(path: Path) -> Path:
    """``path`` (under :data:`ROOT`) if it exists; else the test is skipped, or failed under CI."""
    if not path.exists():
        unavailable(f"test vector {path} not found{'' if available() else ' (' + absent_reason() + ')'}")
    return path
