"""JSON bytes as Go's encoding/json writes them: the exact bytes cosign and notation sign and hash."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["go_json", "sorted_maps"]


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
