"""Every signed-file handler, in the order the walker asks them to sniff, and the dispatch that decides
which of them a file is worth showing to.

Binary formats with a strong magic go first (PE and MSI/CAB for Authenticode, ZIP for JAR), then the text
formats whose sniff is weaker (PowerShell, XML), and detached signatures last: they are decided by name and
by a sibling file, which costs a stat.

Sniffing runs on every file of a tree, and nearly all of them are nobody's: the classifier asks only the
handlers a file's first byte and name extension allow, so an ordinary file costs two lookups and no
sniff at all. A handler narrows itself with two optional class attributes (a sniff must never accept a
file they exclude; tests/test_files_registry.py holds every handler to that):

- `first_bytes: bytes` — the first byte of any file the sniff accepts is one of these;
- `suffixes: tuple[str, ...]` — the name of any file the sniff accepts ends with one of these
  (compared lower-cased; a handler with both is asked when the name matches, and decides the byte).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from sigscope.files import authenticode, detached, jar, powershell, xmldsig
from sigscope.files.base import FileHandler

HANDLERS: tuple[FileHandler, ...] = (
    *authenticode.HANDLERS,
    *jar.HANDLERS,
    *powershell.HANDLERS,
    *xmldsig.HANDLERS,
    *detached.HANDLERS,
)

Sniff = Callable[[bytes, Path], bool]
Candidates = tuple[tuple[int, Sniff], ...]


def _extension(name: str) -> str:
    """The last dot and what follows, lower-cased ("" without a dot): the key suffixes are filed under."""
    dot = name.rfind(".")
    return name[dot:].lower() if dot >= 0 else ""


class Classifier:
    """handler index → sniff pairs worth asking about one file, in HANDLERS order."""

    def __init__(self, handlers: Sequence[FileHandler] = HANDLERS) -> None:
        by_byte: list[list[tuple[int, Sniff]]] = [[] for _ in range(256)]
        by_extension: dict[str, list[tuple[int, Sniff]]] = {}
        for index, handler in enumerate(handlers):
            first: bytes | None = getattr(handler, "first_bytes", None)
            suffixes: tuple[str, ...] | None = getattr(handler, "suffixes", None)
            entry = (index, handler.sniff)
            if suffixes:
                for extension in {_extension(s) for s in suffixes}:
                    if not extension:
                        raise ValueError(f"{handler.name}: suffix without a dot cannot be dispatched on")
                    by_extension.setdefault(extension, []).append(entry)
            else:
                for byte in first if first is not None else range(256):
                    by_byte[byte].append(entry)
        self._by_byte: tuple[Candidates, ...] = tuple(tuple(e) for e in by_byte)
        self._by_extension: dict[str, Candidates] = {k: tuple(v) for k, v in by_extension.items()}
        self._merged: dict[tuple[int, str], Candidates] = {}

    def candidates(self, head: bytes, name: str) -> Candidates:
        """The handlers that may claim a file starting with `head` (non-empty) and called `name`."""
        by_byte = self._by_byte[head[0]]
        dot = name.rfind(".")
        if dot < 0:
            return by_byte
        by_extension = self._by_extension.get(name[dot:].lower())
        if by_extension is None:
            return by_byte
        if not by_byte:
            return by_extension
        key = (head[0], name[dot:].lower())
        merged = self._merged.get(key)
        if merged is None:
            merged = tuple(sorted({*by_byte, *by_extension}, key=lambda e: e[0]))
            if len(self._merged) < 4096:
                self._merged[key] = merged
        return merged
