"""Cabinet (MS-CAB) Authenticode: where the signature sits and what it covers.

A signed cabinet has FLAG_RESERVE_PRESENT with a 20-byte header reserve whose bytes 4..12 hold the
signature's offset and size; the PKCS#7 blob is appended at the end of the file. The digest is the one
osslsigncode computes (cab.c `cab_digest_calc`): the header without reserved1, iCabinet and the reserve
fields, the optional previous/next cabinet names, the CFFOLDER entries, then everything up to the
signature. Pure: a file object in, a digest out; the signature is found from the first 60 bytes.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import BinaryIO

from sigscope.errors import IntegrityError

MAGIC = b"MSCF"
_PREV, _NEXT, _RESERVE = 0x0001, 0x0002, 0x0004
_RESERVE_MARKER = 0x00100000


@dataclass(frozen=True)
class CabSignature:
    offset: int
    size: int


def signature_location(head: bytes, file_size: int) -> CabSignature | None:
    """From the first 60 bytes: where the signature is, or None for an unsigned cabinet."""
    if len(head) < 60 or head[:4] != MAGIC:
        return None
    (flags,) = struct.unpack_from("<H", head, 30)
    if not flags & _RESERVE:
        return None
    header_reserve, _folder, _data = struct.unpack_from("<HBB", head, 36)
    marker, offset, size = struct.unpack_from("<III", head, 40)
    if header_reserve != 20 or marker != _RESERVE_MARKER or not offset or not size:
        return None
    if offset + size > file_size or offset < 60:
        raise IntegrityError(
            f"cabinet signature at {offset} (+{size} bytes) lies outside the file ({file_size} bytes)"
        )
    return CabSignature(offset, size)


def fingerprint(fp: BinaryIO, signature: CabSignature, algorithm: str) -> bytes:
    """The cabinet's Authenticode digest, streamed from `fp` (cabinets can be hundreds of MB)."""
    fp.seek(0)
    header = fp.read(60)
    if len(header) < 60:
        raise IntegrityError("cabinet is truncated")
    (files_at,) = struct.unpack_from("<I", header, 16)
    folders, _files, flags = struct.unpack_from("<HHH", header, 26)
    if files_at > signature.offset:
        raise IntegrityError(f"cabinet header is inconsistent (CFFILE at {files_at:#x}, past the signature)")
    names_and_folders = fp.read(files_at - 60) if files_at >= 60 else b""
    index = 0
    for flag in (_PREV, _NEXT):
        if flags & flag:
            for _ in range(2):  # cabinet name, disk name: NUL-terminated
                end = names_and_folders.find(b"\0", index)
                if end < 0:
                    raise IntegrityError("cabinet set names run past the first CFFILE")
                index = end + 1
    expected = 60 + index + 8 * folders
    if expected != files_at:
        raise IntegrityError(
            f"cabinet header is inconsistent (CFFILE at {files_at:#x}, expected {expected:#x})"
        )
    hasher = hashlib.new(algorithm)
    # Everything but reserved1 (4..8), iCabinet and the reserve fields (34..56), and the signature itself;
    # the names, folders and file data are contiguous from offset 56 up to the signature.
    hasher.update(header[0:4])
    hasher.update(header[8:34])
    hasher.update(header[56:60])
    hasher.update(names_and_folders)
    remaining = signature.offset - files_at
    while remaining > 0:
        chunk = fp.read(min(remaining, 1 << 20))
        if not chunk:
            raise IntegrityError("cabinet is truncated before its signature")
        hasher.update(chunk)
        remaining -= len(chunk)
    return hasher.digest()
