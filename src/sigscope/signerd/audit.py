"""The signing service's audit log: one JSON line per request, chained by hash.

Each line is a JSON object whose `prev` is the SHA-256 (hex) of the previous line's bytes (without its
newline); the first line's `prev` is :data:`GENESIS`. `seq` counts from 1. An edited, deleted or reordered
line breaks the chain at the line after it; a line cut short is not JSON. The last line has no successor to
vouch for it: `audit-verify --head` compares the final hash with one recorded elsewhere (the service logs it
on shutdown), which also catches lines dropped from the end.

:func:`verify` is pure (bytes in, result out); :class:`AuditLog` is the one writer.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sigscope.errors import UsageError

GENESIS = hashlib.sha256(b"sigscope signer audit log v1").hexdigest()
MAX_LINE = 16 * 1024


@dataclass(frozen=True)
class AuditResult:
    """What :func:`verify` found: `ok`, the number of intact lines, the last line's hash and, when broken,
    the 1-based number of the first broken line and why."""

    ok: bool
    lines: int
    head: str
    broken_line: int | None = None
    problem: str | None = None


def line_hash(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


def verify(data: bytes) -> AuditResult:
    """Check the chain of a whole log."""
    previous = GENESIS
    count = 0
    if not data:
        return AuditResult(True, 0, GENESIS)
    lines = data.split(b"\n")
    complete = lines[:-1]
    tail = lines[-1]
    for number, line in enumerate(complete, start=1):
        problem = _line_problem(line, number, previous)
        if problem is not None:
            return AuditResult(False, count, previous, number, problem)
        previous = line_hash(line)
        count = number
    if tail:
        return AuditResult(False, count, previous, len(complete) + 1, "cut short (no newline at its end)")
    return AuditResult(True, count, previous)


def _line_problem(line: bytes, number: int, previous: str) -> str | None:
    if len(line) > MAX_LINE:
        return f"longer than {MAX_LINE} bytes"
    try:
        record = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return "not JSON (edited or cut short)"
    if not isinstance(record, dict):
        return "not a JSON object"
    if record.get("prev") != previous:
        what = "the genesis value" if number == 1 else f"line {number - 1}"
        return f"its prev hash does not match {what} (a line before it was edited, deleted or reordered)"
    if record.get("seq") != number:
        return f"sequence number {record.get('seq')!r} where {number} was expected"
    return None


class AuditLog:
    """Appends chained records to a file; refuses to start on a log whose chain is already broken."""

    def __init__(self, path: str) -> None:
        self._path = Path(path)
        try:
            existing = self._path.read_bytes() if self._path.exists() else b""
        except OSError as exc:
            raise UsageError(f"cannot read audit log {path}: {exc.strerror}") from None
        result = verify(existing)
        if not result.ok:
            raise UsageError(
                f"audit log {path} is broken at line {result.broken_line}: {result.problem}; "
                "not appending to it (move it aside and keep it as evidence)"
            )
        self._head = result.head
        self._seq = result.lines
        try:
            fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as exc:
            raise UsageError(f"cannot open audit log {path}: {exc.strerror}") from None
        self._file = os.fdopen(fd, "ab")

    @property
    def head(self) -> str:
        """The hash of the last line written (GENESIS for an empty log)."""
        return self._head

    def append(self, record: dict[str, Any], now: datetime | None = None) -> None:
        """Write one line: `record` plus seq, time and prev. Callers are serialised by the event loop."""
        self._seq += 1
        full = {
            "seq": self._seq,
            "time": (now or datetime.now(UTC)).isoformat(timespec="microseconds"),
            **record,
            "prev": self._head,
        }
        line = json.dumps(full, separators=(",", ":"), sort_keys=False, ensure_ascii=True).encode()
        self._file.write(line + b"\n")
        self._file.flush()
        self._head = line_hash(line)

    def close(self) -> None:
        self._file.close()
