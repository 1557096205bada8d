"""`--shard I/N`: which repositories one of N workers scans.

A repository belongs to shard `int(sha256(name)[:16]) mod N`: stable across runs, machines and Python
versions (unlike hash()), independent of the catalog's order, so N workers each listing the whole
catalog split it without talking to each other, and every repository falls in exactly one shard.
"""

from __future__ import annotations

import hashlib
import re

from sigscope.errors import UsageError

MAX_SHARDS = 10_000
_SPEC = re.compile(r"^(\d{1,5})/(\d{1,5})$")


def parse_shard(text: str) -> tuple[int, int]:
    """`I/N` with 0 <= I < N (0-based: Kubernetes' JOB_COMPLETION_INDEX as it is)."""
    match = _SPEC.match(text.strip())
    if match is None:
        raise UsageError(f"--shard {text!r}: expected I/N, e.g. 0/4 (I counts from 0)")
    index, total = int(match.group(1)), int(match.group(2))
    if not 1 <= total <= MAX_SHARDS:
        raise UsageError(f"--shard {text!r}: N must be from 1 to {MAX_SHARDS}")
    if index >= total:
        raise UsageError(f"--shard {text!r}: I counts from 0, so it must be below N ({total})")
    return index, total


def shard_of(repository: str, total: int) -> int:
    return int(hashlib.sha256(repository.encode()).hexdigest()[:16], 16) % total


def in_shard(repository: str, shard: tuple[int, int] | None) -> bool:
    return shard is None or shard_of(repository, shard[1]) == shard[0]
