"""Digest computation and the one check every fetch goes through."""

from __future__ import annotations

import functools
import hashlib

from sigscope.errors import IntegrityError
from sigscope.oci.reference import validate_digest


@functools.lru_cache(maxsize=4096)
def parse(digest: str) -> tuple[str, str]:
    """Split a digest we can verify into (algorithm, hex); the grammar lives with the references.

    Cached (an invalid digest raises and is not kept): every blob fetch parses its digest to build the
    path or URL and again to check the bytes, a thousand times for a `.sig` tag with a thousand layers.
    """
    algorithm, _, encoded = validate_digest(digest).partition(":")
    return algorithm, encoded


def hasher(digest: str) -> hashlib._Hash:
    algorithm, _ = parse(digest)
    return hashlib.new(algorithm)


def of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def check(data: bytes, expected: str, what: str) -> None:
    """Raise unless `data` hashes to `expected`, naming both digests."""
    algorithm, _ = parse(expected)
    actual = of(data, algorithm)
    if actual != expected:
        raise IntegrityError(f"digest mismatch for {what}: asked for {expected}, content hashes to {actual}")
