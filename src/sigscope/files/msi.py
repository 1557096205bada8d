"""Just enough of the OLE compound file format (MS-CFB) to find and hash an MSI's Authenticode signature.

signify reads MSI through olefile, which is not installed here; this reader is small, reads through a
file object (MSI files can be large: only the FAT, the directory and the streams asked for are read),
and refuses loops and out-of-range sectors instead of following them. The Authenticode MSI digest is
the one osslsigncode and signify compute: every stream except the signature streams, children sorted
by their raw UTF-16LE names, each storage's CLSID after its children; with `\\x05MsiDigitalSignatureEx`
present, a "pre-hash" of the entries' metadata goes first.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from sigscope.errors import IntegrityError

MAGIC = bytes.fromhex("D0CF11E0A1B11AE1")
SIGNATURE_STREAM = "\x05DigitalSignature"
SIGNATURE_EX_STREAM = "\x05MsiDigitalSignatureEx"
_SKIPPED = (SIGNATURE_STREAM, SIGNATURE_EX_STREAM)

_MAXREGSECT = 0xFFFFFFFA
_ENDOFCHAIN = 0xFFFFFFFE
_NOSTREAM = 0xFFFFFFFF
_STORAGE, _STREAM, _ROOT = 1, 2, 5
_MAX_ENTRIES = 1 << 20  # a directory beyond this is hostile, not an installer


class CFBError(IntegrityError):
    """The compound file structure is malformed."""


@dataclass
class Entry:
    index: int
    name_raw: bytes  # UTF-16LE without the terminator
    kind: int
    left: int
    right: int
    child: int
    clsid: bytes
    state_bits: int
    created: int
    modified: int
    start: int
    size: int
    kids: list[Entry] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.name_raw.decode("utf-16-le", errors="replace")


class CompoundFile:
    def __init__(self, fp: BinaryIO) -> None:
        self._fp = fp
        fp.seek(0, 2)
        self._length = fp.tell()
        fp.seek(0)
        header = fp.read(512)
        if len(header) < 512 or header[:8] != MAGIC:
            raise CFBError("not an OLE compound file (bad header)")
        shift, mini_shift = struct.unpack_from("<HH", header, 30)
        if shift not in (9, 12) or mini_shift != 6:
            raise CFBError(f"unsupported sector size 2^{shift}")
        self._sector = 1 << shift
        self._mini_sector = 1 << mini_shift
        fat_count, dir_start = struct.unpack_from("<II", header, 44)
        self._cutoff, mini_fat_start, mini_fat_count, difat_start, _difat_count = struct.unpack_from(
            "<IIIII", header, 56
        )
        if fat_count > self._length // self._sector + 1:
            raise CFBError("FAT sector count exceeds the file")
        difat = list(struct.unpack_from("<109I", header, 76))
        seen: set[int] = set()
        sector = difat_start
        per = self._sector // 4 - 1
        while sector <= _MAXREGSECT and len(difat) < fat_count + 109:
            if sector in seen:
                raise CFBError("DIFAT chain loops")
            seen.add(sector)
            values = struct.unpack(f"<{per + 1}I", self._read_sector(sector))
            difat.extend(values[:per])
            sector = values[per]
        fat_sectors = [s for s in difat if s <= _MAXREGSECT][:fat_count]
        self._fat: list[int] = []
        for sector in fat_sectors:
            self._fat.extend(struct.unpack(f"<{self._sector // 4}I", self._read_sector(sector)))
        self.entries = self._read_directory(dir_start)
        self.root = self.entries[0]
        if self.root.kind != _ROOT:
            raise CFBError("first directory entry is not the root storage")
        self._mini_fat: list[int] = []
        if mini_fat_count and mini_fat_start <= _MAXREGSECT:
            raw = self._read_chain(mini_fat_start)
            self._mini_fat = list(struct.unpack(f"<{len(raw) // 4}I", raw[: len(raw) // 4 * 4]))
        self._mini_stream: bytes | None = None
        self._link(self.root, set())

    def _read_sector(self, sector: int) -> bytes:
        offset = (sector + 1) * self._sector
        if sector > _MAXREGSECT or offset + self._sector > self._length:
            raise CFBError(f"sector {sector} lies beyond the end of the file")
        self._fp.seek(offset)
        data = self._fp.read(self._sector)
        if len(data) < self._sector:
            raise CFBError(f"sector {sector} is cut short: the file is truncated")
        return data

    def _chain(self, start: int, table: list[int]) -> list[int]:
        chain: list[int] = []
        seen: set[int] = set()
        sector = start
        while sector != _ENDOFCHAIN:
            if sector > _MAXREGSECT or sector >= len(table):
                raise CFBError(f"sector chain points outside the allocation table ({sector:#x})")
            if sector in seen:
                raise CFBError("sector chain loops")
            seen.add(sector)
            chain.append(sector)
            sector = table[sector]
        return chain

    def _iter_chain(self, start: int, size: int | None = None) -> Iterator[bytes]:
        """The chain's bytes in pieces: contiguous runs of sectors (the usual layout) in reads of up to
        1 MiB, so a stream of hundreds of MB (an MSI's embedded cabinet) is hashed without holding it."""
        chain = self._chain(start, self._fat)
        remaining = size if size is not None else len(chain) * self._sector
        if remaining > len(chain) * self._sector:
            raise CFBError("stream is longer than its sector chain")
        index = 0
        while index < len(chain) and remaining > 0:
            run = 1
            while (
                index + run < len(chain)
                and chain[index + run] == chain[index] + run
                and run * self._sector < 1 << 20
            ):
                run += 1
            offset = (chain[index] + 1) * self._sector
            if offset + run * self._sector > self._length:
                raise CFBError(f"sector {chain[index]} lies beyond the end of the file (truncated)")
            self._fp.seek(offset)
            data = self._fp.read(run * self._sector)
            if len(data) < run * self._sector:
                raise CFBError("the file is truncated inside a stream")
            yield data[:remaining]
            remaining -= min(remaining, len(data))
            index += run

    def _read_chain(self, start: int, size: int | None = None) -> bytes:
        return b"".join(self._iter_chain(start, size))

    def _read_directory(self, start: int) -> list[Entry]:
        raw = self._read_chain(start)
        entries: list[Entry] = []
        for offset in range(0, min(len(raw), _MAX_ENTRIES * 128), 128):
            chunk = raw[offset : offset + 128]
            name_len, kind, _color, left, right, child = struct.unpack_from("<HBBIII", chunk, 64)
            clsid = chunk[80:96]
            state, created, modified, start_sector, size = struct.unpack_from("<IQQIQ", chunk, 96)
            name_len = min(max(name_len - 2, 0), 62) if name_len else 0
            entries.append(
                Entry(
                    len(entries),
                    chunk[:name_len],
                    kind,
                    left,
                    right,
                    child,
                    clsid,
                    state,
                    created,
                    modified,
                    start_sector,
                    size,
                )
            )
        if not entries:
            raise CFBError("empty directory")
        return entries

    def _link(self, storage: Entry, visiting: set[int]) -> None:
        """Collect each storage's children from its red-black tree, refusing shared or looping nodes."""
        if storage.index in visiting:
            raise CFBError("directory tree loops")
        visiting.add(storage.index)
        stack = [storage.child]
        while stack:
            index = stack.pop()
            if index == _NOSTREAM:
                continue
            if index >= len(self.entries) or index in visiting:
                raise CFBError("directory tree points outside the directory or loops")
            entry = self.entries[index]
            visiting.add(index)
            if entry.kind not in (_STORAGE, _STREAM):
                raise CFBError(f"directory entry {index} has type {entry.kind}")
            storage.kids.append(entry)
            stack.extend((entry.left, entry.right))
            if entry.kind == _STORAGE:
                visiting.discard(index)
                self._link(entry, visiting)

    def find(self, name: str) -> Entry | None:
        return next((e for e in self.root.kids if e.name == name and e.kind == _STREAM), None)

    def read(self, entry: Entry) -> bytes:
        return b"".join(self.iter_stream(entry))

    def iter_stream(self, entry: Entry) -> Iterator[bytes]:
        if entry.size > self._length * 64 + 4096:
            raise CFBError(f"stream {entry.name!r} claims {entry.size} bytes")
        if entry.size >= self._cutoff:
            yield from self._iter_chain(entry.start, entry.size)
            return
        if self._mini_stream is None:
            self._mini_stream = self._read_chain(self.root.start, self.root.size)
        sectors = self._chain(entry.start, self._mini_fat) if entry.size else []
        data = b"".join(
            self._mini_stream[s * self._mini_sector : (s + 1) * self._mini_sector] for s in sectors
        )
        if len(data) < entry.size:
            raise CFBError(f"stream {entry.name!r} is shorter than its directory entry says")
        yield data[: entry.size]


def _sorted_kids(storage: Entry) -> list[Entry]:
    return sorted((e for e in storage.kids if e.name not in _SKIPPED), key=lambda e: e.name_raw)


def _content(cfb: CompoundFile, storage: Entry, update: Callable[[bytes], None]) -> None:
    for entry in _sorted_kids(storage):
        if entry.kind == _STORAGE:
            _content(cfb, entry, update)
        else:
            for chunk in cfb.iter_stream(entry):
                update(chunk)
    update(storage.clsid)


def _metadata(entry: Entry, update: Callable[[bytes], None]) -> None:
    if entry.kind != _ROOT:
        update(entry.name_raw)
    if entry.kind in (_ROOT, _STORAGE):
        update(entry.clsid)
    if entry.kind == _STREAM:
        update((entry.size & 0xFFFFFFFF).to_bytes(4, "little"))
    update(entry.state_bits.to_bytes(4, "little"))
    if entry.kind != _ROOT:
        update(entry.created.to_bytes(8, "little"))
        update(entry.modified.to_bytes(8, "little"))


def _prehash(storage: Entry, update: Callable[[bytes], None]) -> None:
    _metadata(storage, update)
    for entry in _sorted_kids(storage):
        if entry.kind == _STORAGE and entry.kids:
            _prehash(entry, update)
        else:
            _metadata(entry, update)


def prehash(cfb: CompoundFile, algorithm: str) -> bytes:
    hasher = hashlib.new(algorithm)
    _prehash(cfb.root, hasher.update)
    return hasher.digest()


def fingerprint(cfb: CompoundFile, algorithm: str) -> bytes:
    """The Authenticode digest of an MSI (the pre-hash first when MsiDigitalSignatureEx is present)."""
    hasher = hashlib.new(algorithm)
    if cfb.find(SIGNATURE_EX_STREAM) is not None:
        hasher.update(prehash(cfb, algorithm))
    _content(cfb, cfb.root, hasher.update)
    return hasher.digest()
