"""Digest computation and the one check every fetch goes through."""

from __future__ import annotations

import hashlib
import re

from sigscope.errors import IntegrityError, InvalidReferenceError

_ALGORITHMS = {"sha256": 64, "sha512": 128}
_DIGEST_RE = re.compile(r"^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$")


def parse(digest: str) -> tuple[str, str]:
    match = _DIGEST_RE.match(digest)
    if not match:
        raise InvalidReferenceError(f"invalid digest {digest!r}: expected algorithm:hex")
    algorithm, encoded = match.groups()
    expected = _ALGORITHMS.get(algorithm)
    if expected is None:
        raise InvalidReferenceError(f"unsupported digest algorithm {algorithm!r} in {digest!r}")
    if len(encoded) != expected or not re.fullmatch(r"[0-9a-f]+", encoded):
        raise InvalidReferenceError(
            f"invalid digest {digest!r}: {algorithm} needs {expected} lowercase hex characters"
        )
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
