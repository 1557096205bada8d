"""Text from outside made safe for a terminal: control characters shown as escapes.

Apart from `cells.py` (rich table cells) so that one-line messages on stderr (`sigscope: error: ...`) use the
same escaping without importing rich.
"""

from __future__ import annotations

import unicodedata

# Bidirectional overrides and isolates reorder what follows them on screen ("Trojan Source"): escaped too.
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(char: str) -> str:
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def printable(text: str) -> str:
    """`text` with control characters (C0, DEL, C1, tab, CR, LF) and bidi controls shown as escapes."""
    if text.isprintable() and not _BIDI.intersection(text):
        return text  # the common case, without a per-character walk
    return "".join(_escape(c) if unicodedata.category(c) == "Cc" or c in _BIDI else c for c in text)
