"""The simple-signing JSON payload (FORMATS §4.1): one reading for every path that interprets it.

cosign `.sig` layers (verified under `--key`, certificates or bundles), containers/image atomic signatures
and the `sigstoreSigned` requirements of a containers policy all sign this document. Each path may be
stricter than the others about what it accepts (c/image wants exactly the known keys; cosign ignores
unknown ones), but none may read a payload differently from another: a payload that Go's decoder (cosign,
notation, c/image) and an exact reader would read two ways is refused here, with one reason for all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sigscope.errors import MalformedJSONError, SigscopeError
from sigscope.formats import gojson
from sigscope.oci.reference import parse_reference

__all__ = ["Payload", "PayloadError", "payload_digest_problem", "read", "reference_problem"]

_DIGEST_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
_DIGEST = re.compile(r"([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)")
_LOWER_HEX = re.compile(r"[0-9a-f]+")

# The members Go decodes into struct fields (so matched case-insensitively), by object; `optional` is a map.
_STRUCTS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    ((), ("critical", "optional")),
    (("critical",), ("type", "image", "identity")),
    (("critical", "image"), ("docker-manifest-digest",)),
    (("critical", "identity"), ("docker-reference",)),
)


class PayloadError(SigscopeError, ValueError):
    """A payload no path may interpret: unreadable, ambiguous, or naming no valid digest."""


@dataclass(frozen=True)
class Payload:
    """A payload as read; members are as found (None when absent), typed checks are each path's own."""

    document: dict[str, Any]
    critical: Any
    optional: Any
    type: Any
    digest: Any
    identity: Any
    reference: Any


def read(blob: bytes) -> Payload:
    """The payload in `blob`, or PayloadError naming why no reader may act on it."""
    try:
        document = gojson.read(blob, "payload")
    except MalformedJSONError as exc:
        raise PayloadError(str(exc)) from None
    if not isinstance(document, dict):
        raise PayloadError("payload is not a JSON object")
    for where, fields in _STRUCTS:
        obj: Any = document
        for step in where:
            obj = obj.get(step) if isinstance(obj, dict) else None
        if isinstance(obj, dict):
            _near_misses(obj, fields, ".".join(where) or "the top level")
    critical = document.get("critical")
    image = critical.get("image") if isinstance(critical, dict) else None
    identity = critical.get("identity") if isinstance(critical, dict) else None
    digest = image.get("docker-manifest-digest") if isinstance(image, dict) else None
    if isinstance(digest, str) and (problem := payload_digest_problem(digest)):
        # cosign compares the string with the digest it computed, c/image parses it with go-digest: an
        # upper-case or malformed digest must not pass here by a looser comparison.
        raise PayloadError(f"invalid docker-manifest-digest {digest!r}: {problem}")
    return Payload(
        document=document,
        critical=critical,
        optional=document.get("optional"),
        type=critical.get("type") if isinstance(critical, dict) else None,
        digest=digest,
        identity=identity,
        reference=identity.get("docker-reference") if isinstance(identity, dict) else None,
    )


def _near_misses(obj: dict[str, Any], fields: tuple[str, ...], where: str) -> None:
    # "Docker-Manifest-Digest" is the digest to Go's decoder (cosign) and an unknown key to exact readers
    # (c/image, and us): one payload, two readings. Collisions of two such keys gojson.read refuses already.
    folded = {field.casefold(): field for field in fields}
    for key in obj:
        field = folded.get(key.casefold())
        if field is not None and field != key:
            raise PayloadError(
                f"payload is ambiguous JSON: key {key!r} in {where} is {field!r} to Go's case-insensitive "
                "decoder and an unknown key to exact readers"
            )


def payload_digest_problem(digest: str) -> str | None:
    """What go-digest's `Parse` would object to in `digest`, or None."""
    match = _DIGEST.fullmatch(digest)
    if match is None:
        return "expected algorithm:encoded"
    algorithm, encoded = match.groups()
    length = _DIGEST_LENGTHS.get(algorithm)
    if length is None:
        return f"unsupported digest algorithm {algorithm!r}"
    if len(encoded) != length or not _LOWER_HEX.fullmatch(encoded):
        return f"{algorithm} needs exactly {length} lowercase hex characters"
    return None


def reference_problem(reference: str) -> str | None:
    """Whether `reference` parses as a docker reference (distribution's ParseNormalizedNamed)."""
    if not reference:
        return "empty reference"
    if reference.startswith("docker://"):
        return "a transport prefix is not part of a docker reference"
    try:
        parse_reference(reference)
    except SigscopeError as exc:
        return str(exc)
    return None
