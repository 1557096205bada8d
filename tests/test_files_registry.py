"""The classifier in front of the sniffs: it may only rule out files no handler would claim.

Every handler's `first_bytes` / `suffixes` promise is checked against its own sniff on every fixture file
(under its own name and under other names), on mutated heads, and on heads that start with each possible
byte; a file a sniff accepts must always reach that sniff."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from sigscope.files.base import HEAD_SIZE
from sigscope.files.registry import HANDLERS, Classifier

FIXTURES = Path(__file__).parent / "fixtures" / "files"
NAMES = (
    "a.exe", "b.DLL", "c.msi", "d.cab", "e.jar", "f.ps1", "g.PSM1", "h.psd1", "i.ps1xml", "j.xml",
    "k.txt", "noext", ".ps1", "l.asc", "m.sig", "n.sigstore", "o.sigstore.json", "p.json", "q.SIG",
)  # fmt: skip


def _heads() -> list[tuple[bytes, str]]:
    heads: list[tuple[bytes, str]] = []
    for path in sorted(FIXTURES.rglob("*")):
        if path.is_file():
            head = path.read_bytes()[:HEAD_SIZE]
            if head:
                heads.append((head, path.name))
    rng = random.Random(7)
    for head, _ in list(heads):
        for name in NAMES:
            heads.append((head, name))
        for byte in range(256):
            heads.append((bytes([byte]) + head[1:], rng.choice(NAMES)))
    for text in (
        b"<?xml version='1.0'?><a/>",
        b"\xef\xbb\xbf<a/>",
        b"  \n<a/>",
        b"# script\n",
        b"PK\x03\x04",
        b' {"mediaType": "x"}',
    ):
        for name in NAMES:
            heads.append((text, name))
    return heads


@pytest.mark.parametrize("handler_index", range(len(HANDLERS)), ids=[h.name for h in HANDLERS])
def test_a_file_a_sniff_accepts_always_reaches_it(handler_index: int, tmp_path: Path) -> None:
    handler = HANDLERS[handler_index]
    classifier = Classifier(HANDLERS)
    accepted = 0
    for head, name in _heads():
        path = tmp_path / name
        if not handler.sniff(head, path):
            continue
        accepted += 1
        indices = [i for i, _ in classifier.candidates(head, name)]
        assert handler_index in indices, (handler.name, name, head[:16])
        assert indices == sorted(indices), "candidates must keep HANDLERS order"
    assert accepted > 0, f"{handler.name}: nothing exercised the sniff"


def test_ordinary_files_reach_no_sniff() -> None:
    classifier = Classifier(HANDLERS)
    assert classifier.candidates(b"line of text 1\n", "f1.txt") == ()
    assert classifier.candidates(b"\x00\x01binary", "f2.bin") == ()
    assert [HANDLERS[i].name for i, _ in classifier.candidates(b"MZ\x90\x00", "x.exe")] == ["pe", "cab"]
    assert [HANDLERS[i].name for i, _ in classifier.candidates(b"# x\n", "x.ps1")] == ["powershell"]
