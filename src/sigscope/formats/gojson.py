"""JSON as Go's encoding/json writes it (the exact bytes cosign and notation sign and hash), and the one
reading of JSON from outside: :func:`read` accepts only documents that every reader reads the same way.

Go (cosign, notation, containers/image, distribution) and Python disagree on documents that are not
plain JSON: Go's decoder matches keys to struct fields case-insensitively and lets the last duplicate
win, replaces lone surrogates and invalid UTF-8 with U+FFFD, refuses numbers a float64 cannot hold;
Python keeps lone surrogates, reads NaN and 1e400, and recurses until RecursionError. A document where
these differences could matter is refused here, for every caller, with a reason that names the place.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from sigscope.errors import MalformedJSONError

__all__ = ["GO_MAPS", "MAX_DEPTH", "go_json", "read", "sorted_maps"]

# Deeper than any document sigscope reads (manifests ~5, Sigstore bundles ~7, SLSA provenance ~15), far
# below the ~1000 frames where the C decoder and any recursive walk over the result would blow up.
MAX_DEPTH = 64

# Members whose values Go decodes into maps (keys compared exactly), not structs (keys folded): keys that
# differ only in case are two entries there, for Go as for us. Everywhere else they are one field to Go.
GO_MAPS = frozenset({"annotations", "optional"})


def go_json(value: Any) -> bytes:
    """Compact JSON as Go's encoding/json writes it: no spaces, UTF-8, `<`, `>`, `&`, U+2028/9 escaped.

    Key order is the caller's (dicts keep insertion order): build struct-like objects in Go field order and
    sort map keys before calling (:func:`sorted_maps`).
    """
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for char, escape in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escape)
    return text.encode()


def sorted_maps(value: Any) -> Any:
    """Go marshals a decoded `interface{}` (maps) with keys sorted at every level."""
    if isinstance(value, Mapping):
        return {k: sorted_maps(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [sorted_maps(v) for v in value]
    return value


# ---------------------------------------------------------------------------- reading

_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'[]{}"')
_INNERMOST = re.compile(rb"\[[^\[\]{}]*\]|\{[^\[\]{}]*\}")
# A \uD800-\uDFFF escape: the only way a surrogate gets past strict UTF-8 decoding.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_.@/-]{1,64}")


def read(data: bytes | str, what: str, *, maps: frozenset[str] = GO_MAPS) -> Any:
    """The value of the JSON document `data` (UTF-8 bytes, or text), read as Go would read it or refused.

    Raises MalformedJSONError ("<what> is not valid JSON: ...", "<what> nests JSON deeper than 64 levels",
    "<what> is ambiguous JSON: ...") for: invalid UTF-8 or a byte order mark, invalid JSON, NaN/Infinity,
    numbers beyond float64, nesting deeper than MAX_DEPTH (checked before parsing, without recursion),
    lone surrogates, duplicate keys in any object, and keys differing only in case in an object Go
    decodes into a struct (every object not beneath a member named in `maps`).
    """
    if isinstance(data, str):
        text, raw = data, data.encode("utf-8", "surrogatepass")
    else:
        raw = bytes(data)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedJSONError(
                f"{what} is not valid JSON: not UTF-8 ({exc.reason} at byte {exc.start})"
            ) from None
    if _too_deep(raw):
        raise MalformedJSONError(f"{what} nests JSON deeper than {MAX_DEPTH} levels")
    flagged: list[tuple[dict[str, Any], str, str]] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(items)
        if len(obj) != len(items):
            seen: set[str] = set()
            for key, _ in items:
                if key in seen:
                    flagged.append((obj, "duplicate", key))
                    break
                seen.add(key)
        elif len(obj) > 1:
            folded: dict[str, str] = {}
            for key in obj:
                other = folded.setdefault(key.casefold(), key)
                if other != key:
                    flagged.append((obj, "fold", f"{_quote(other)} and {_quote(key)}"))
                    break
        return obj

    try:
        value = json.loads(
            text, object_pairs_hook=pairs, parse_constant=_constant, parse_float=_float, parse_int=_int
        )
    except MalformedJSONError as exc:
        raise MalformedJSONError(f"{what} is not valid JSON: {exc}") from None
    except (ValueError, RecursionError) as exc:  # RecursionError only if the depth scan were wrong
        raise MalformedJSONError(f"{what} is not valid JSON: {exc}") from None
    if flagged:
        problem = _ambiguity(value, flagged, maps)
        if problem is not None:
            raise MalformedJSONError(f"{what} is ambiguous JSON: {problem}")
    if _SURROGATE_ESCAPE.search(text):
        where = _lone_surrogate(value)
        if where is not None:
            raise MalformedJSONError(f"{what} is not valid JSON: a lone UTF-16 surrogate {where}")
    return value


def _constant(name: str) -> Any:
    raise MalformedJSONError(f"{name} is not a JSON number")


def _float(literal: str) -> float:
    number = float(literal)
    if math.isinf(number):
        raise MalformedJSONError(f"number {literal[:40]} is out of range for a float64")
    return number


def _int(literal: str) -> int:
    # Go reads a number into a float64 (interface{}) or an int64: more digits than a float64 can hold
    # is an error there, not a big integer.
    if len(literal) > 300 and math.isinf(float(literal)):
        raise MalformedJSONError(f"number {literal[:40]}... is out of range for a float64")
    return int(literal)


def _too_deep(raw: bytes) -> bool:
    """Whether brackets outside strings nest deeper than MAX_DEPTH, found without recursion and without a
    Python loop per byte (seconds for a large index): reduce the document to its brackets and quotes,
    drop the strings, then peel innermost pairs in the regex engine, one level per pass."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH:
        return False
    # Escaped backslashes, then escaped quotes: what is left of every string is quote, brackets, quote.
    skeleton = raw.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _NOT_STRUCTURE)
    # Adjacent quotes are an empty string or the gap between two strings: nothing outside a string.
    rest = b"".join(skeleton.replace(b'""', b"").split(b'"')[0::2])
    peeled = 0
    for _ in range(MAX_DEPTH):
        rest, peeled = _INNERMOST.subn(b"", rest)
        if not peeled:
            break
    # Brackets left: deeper than MAX_DEPTH, or unbalanced. Unbalanced ones the decoder refuses, but only
    # after descending into them, so they too are bounded.
    return len(rest) > MAX_DEPTH or (peeled > 0 and len(rest) > 0)


def _quote(key: str) -> str:
    return repr(key if len(key) <= 64 else key[:64] + "...")


def _path(parts: list[str | int]) -> str:
    text = "".join(
        f"[{part}]"
        if isinstance(part, int)
        else f".{part}"
        if _PLAIN_KEY.fullmatch(part)
        else f"[{_quote(part)}]"
        for part in parts
    )
    return text.lstrip(".") or "the top level"


def _ambiguity(
    value: Any, flagged: list[tuple[dict[str, Any], str, str]], maps: frozenset[str]
) -> str | None:
    """The first flagged object's problem with its place; fold collisions inside Go maps are not one."""
    marks = {id(obj): (kind, detail) for obj, kind, detail in flagged}
    stack: list[tuple[Any, list[str | int], bool]] = [(value, [], False)]
    while stack:
        node, parts, in_map = stack.pop()
        if isinstance(node, dict):
            mark = marks.pop(id(node), None)
            if mark is not None:
                kind, detail = mark
                if kind == "duplicate":
                    return f"duplicate key {_quote(detail)} in {_path(parts)}"
                if not in_map:
                    return f"keys {detail} in {_path(parts)} differ only in case (Go reads them as one)"
            for key, child in node.items():
                stack.append((child, [*parts, key], in_map or key in maps))
        elif isinstance(node, list):
            for n, child in enumerate(node):
                stack.append((child, [*parts, n], in_map))
    # A duplicate whose first value was an object: that object left the document, but its parent's
    # duplicate is reported above; anything still marked here can only be such an orphan.
    for kind, detail in marks.values():
        if kind == "duplicate":
            return f"duplicate key {_quote(detail)}"
    return None


def _lone_surrogate(value: Any) -> str | None:
    stack: list[tuple[Any, list[str | int]]] = [(value, [])]
    while stack:
        node, parts = stack.pop()
        if isinstance(node, str):
            if _SURROGATE.search(node):
                return f"in {_path(parts)}"
        elif isinstance(node, dict):
            for key, child in node.items():
                if _SURROGATE.search(key):
                    return f"in a key of {_path(parts)}"
                stack.append((child, [*parts, key]))
        elif isinstance(node, list):
            stack.extend((child, [*parts, n]) for n, child in enumerate(node))
    return None
