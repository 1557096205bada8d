"""Hostile inputs for the files and OCI-layout readers (issue 12), small on disk, and a way to measure
what the real command line spends on them.

Everything here is cheap in real bytes: zip bombs are deflate streams of zeros (~1 KiB per MiB), huge
files are sparse. `run_measured` runs `python -m sigscope` and reports that one process's peak RSS from
wait4 in a small intermediate interpreter, so neither earlier children of the test process (jarsigner, gpg)
nor the test process's own pages inherited across fork can inflate the figure.
"""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

from .cli import SCRUBBED

ZEROS = bytes(1 << 20)


@dataclass
class Measured:
    returncode: int
    stdout: str
    stderr: str
    rss_mib: float


# A small fresh interpreter starts sigscope and reports its peak RSS. Measured straight from the test
# process, a child's ru_maxrss can include the pages of the (large) parent it was forked from before exec.
_MEASURE = """
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[2:])
try:
    _, status, usage = os.wait4(proc.pid, 0)
except BaseException:
    proc.kill()
    raise
with open(sys.argv[1], "w") as out:
    out.write(f"{os.waitstatus_to_exitcode(status)} {usage.ru_maxrss}")
"""


def run_measured(*args: str, tmp: Path, timeout: float = 120, env: dict[str, str] | None = None) -> Measured:
    """`python -m sigscope ARGS` with its own peak RSS (MiB); killed after `timeout` seconds (a hang
    shows as a non-zero code and a message on stderr, not a stuck test)."""
    environment = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    environment["DOCKER_CONFIG"] = "/nonexistent-sigscope-test"
    environment.update(env or {})
    out, err, figures = tmp / "measured.out", tmp / "measured.err", tmp / "measured.rss"
    figures.unlink(missing_ok=True)
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-c", _MEASURE, str(figures), sys.executable, "-m", "sigscope", *args],
            stdout=stdout,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            env=environment,
            start_new_session=True,  # one process group: a hang is killed whole
        )
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # no report is written: a hang reads as code -1
            proc.wait()
    code, rss_kib = figures.read_text().split() if figures.exists() else ("-1", "0")
    return Measured(
        int(code), out.read_text(errors="replace"), err.read_text(errors="replace"), int(rss_kib) / 1024
    )


def deflated_zeros(size: int) -> tuple[bytes, int]:
    """A raw deflate stream of `size` zero bytes and its CRC-32."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    parts = []
    crc = 0
    left = size
    while left:
        chunk = ZEROS[: min(left, len(ZEROS))]
        crc = zlib.crc32(chunk, crc)
        parts.append(packer.compress(chunk))
        left -= len(chunk)
    parts.append(packer.flush())
    return b"".join(parts), crc


@dataclass
class Entry:
    name: str
    data: bytes  # stored bytes (raw deflate when `deflated`)
    crc: int
    size: int  # the uncompressed size the headers declare (a lie, for a bomb)
    deflated: bool = True


def stored(name: str, data: bytes) -> Entry:
    return Entry(name, data, zlib.crc32(data), len(data), deflated=False)


def write_zip(path: Path, entries: list[Entry]) -> None:
    """A ZIP written field by field, so the sizes in its headers can be whatever a test needs."""
    body = bytearray()
    directory = bytearray()
    for entry in entries:
        name = entry.name.encode()
        method = 8 if entry.deflated else 0
        offset = len(body)
        body += struct.pack(
            "<IHHHHHIIIHH",
            0x04034B50,
            20,
            0,
            method,
            0,
            0x21,
            entry.crc,
            len(entry.data),
            entry.size,
            len(name),
            0,
        )
        body += name + entry.data
        directory += struct.pack(
            "<IHHHHHHIIIHHHHHII",
            0x02014B50,
            20,
            20,
            0,
            method,
            0,
            0x21,
            entry.crc,
            len(entry.data),
            entry.size,
            len(name),
            0,
            0,
            0,
            0,
            0,
            offset,
        )
        directory += name
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(directory), len(body), 0)
    path.write_bytes(bytes(body) + bytes(directory) + end)


def manifest_bomb(path: Path, inflated: int, declared: int = 2000) -> None:
    """A would-be signed JAR whose META-INF/MANIFEST.MF declares `declared` bytes and inflates to
    `inflated` (the .SF and block are junk: the manifest is read before either is parsed)."""
    data, crc = deflated_zeros(inflated)
    write_zip(
        path,
        [
            Entry("META-INF/MANIFEST.MF", data, crc, declared),
            stored("META-INF/A.SF", b"Signature-Version: 1.0\r\n\r\n"),
            stored("META-INF/A.RSA", b"\x30\x03\x02\x01\x00"),
        ],
    )


def sparse(path: Path, size: int) -> Path:
    with path.open("wb") as handle:
        handle.truncate(size)
    return path
