"""`--cache FILE`: what a previous scan found in each file, so an unchanged file is not read again.

A file counts as unchanged when its inode, size and modification time (nanoseconds) are what they were;
that is what rsync and make trust, and it costs one stat the walk does anyway. The cache is one SQLite
file. Results are stored as JSON and rebuilt field by field (never pickled: a cache file is input, and
unpickling input runs code). The whole cache is set aside when the scan's options differ from the ones
it was written under (`--verify`, trust material, sigscope's version), because the same bytes then give
other answers.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import types
import typing
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any

from sigscope import __version__
from sigscope.errors import UsageError
from sigscope.files.base import FileResult

SCHEMA = 1


def stamp(inode: int, size: int, mtime_ns: int) -> str:
    return f"{inode}:{size}:{mtime_ns}"


# ---------------------------------------------------------------- JSON codec for the result records


def encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    return value


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = typing.get_type_hints(cls)
        _HINTS[cls] = hints
    return hints


def decode(tp: Any, value: Any) -> Any:
    """Rebuild a value of type `tp` from `encode`'s output; raises ValueError/TypeError on a mismatch."""
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        last: Exception | None = None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return decode(arg, value)
            except (TypeError, ValueError, KeyError) as exc:
                last = exc
        raise ValueError(f"no member of {tp} fits: {last}")
    if origin is tuple:
        args = typing.get_args(tp)
        return tuple(decode(args[0], v) for v in value)
    if origin is list:
        (arg,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise TypeError("expected a list")
        return [decode(arg, v) for v in value]
    if origin is dict:
        _, arg = typing.get_args(tp)
        if not isinstance(value, dict):
            raise TypeError("expected an object")
        return {str(k): decode(arg, v) for k, v in value.items()}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise TypeError(f"expected an object for {tp.__name__}")
        hints = _hints(tp)
        kwargs = {
            f.name: decode(hints[f.name], value[f.name])
            for f in dataclasses.fields(tp)
            if f.init and f.name in value
        }
        return tp(**kwargs)
    if isinstance(tp, type) and issubclass(tp, Enum):
        return tp(value)
    if tp is datetime:
        return datetime.fromisoformat(value)
    if tp in (str, int, float, bool):
        if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            raise TypeError(f"expected {tp.__name__}")
        return value
    if tp is bytes:
        raise TypeError("bytes are never cached")
    return value


def result_to_json(result: FileResult) -> str:
    return json.dumps(encode(result), separators=(",", ":"))


def result_from_json(text: str) -> FileResult:
    result: FileResult = decode(FileResult, json.loads(text))
    return result


# ---------------------------------------------------------------- the cache file


class ScanCache:
    """Entries keyed by path, loaded whole at start and written back in one transaction at the end."""

    def __init__(self, path: Path, options_key: str) -> None:
        self.path = path
        self.options_key = f"{SCHEMA}:{__version__}:{options_key}"
        self.entries: dict[str, tuple[str, str]] = {}
        self.fresh: dict[str, tuple[str, str]] = {}
        self.hits = 0
        self.misses = 0
        self.discarded = False
        try:
            self._db = sqlite3.connect(str(path))
            self._db.executescript(
                "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
                "CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, stamp TEXT NOT NULL,"
                " results TEXT NOT NULL);"
            )
            row = self._db.execute("SELECT value FROM meta WHERE key = 'options'").fetchone()
            if row is not None and row[0] != self.options_key:
                self.discarded = True
            else:
                for name, file_stamp, results in self._db.execute("SELECT path, stamp, results FROM files"):
                    self.entries[name] = (file_stamp, results)
        except sqlite3.DatabaseError as exc:
            raise UsageError(f"--cache {path}: not a sigscope cache ({exc})") from None

    def lookup(self, path: str, stamp: str) -> list[FileResult] | None:
        """The stored results when the file is unchanged; None when it must be read."""
        found = self.entries.get(path)
        if found is None or found[0] != stamp:
            self.misses += 1
            return None
        try:
            results = [decode(FileResult, item) for item in json.loads(found[1])]
        except (ValueError, TypeError, KeyError):
            self.misses += 1
            return None  # an entry from an older layout of the records: read the file again
        self.hits += 1
        self.fresh[path] = found
        return results

    def store(self, path: str, stamp: str, results: list[FileResult]) -> None:
        # Errors are not cached: a file unreadable now (permissions, a write in progress) may read next time.
        if any(r.error for r in results):
            return
        self.fresh[path] = (stamp, "[" + ",".join(result_to_json(r) for r in results) + "]")

    def save(self) -> None:
        """Replace the stored entries with this scan's: files that went away leave the cache too."""
        try:
            with self._db:
                self._db.execute("DELETE FROM files")
                self._db.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('options', ?)", (self.options_key,)
                )
                self._db.executemany(
                    "INSERT INTO files (path, stamp, results) VALUES (?, ?, ?)",
                    ((name, file_stamp, results) for name, (file_stamp, results) in self.fresh.items()),
                )
        except sqlite3.DatabaseError as exc:
            raise UsageError(f"--cache {self.path}: cannot write: {exc}") from None

    def close(self) -> None:
        self._db.close()
