"""`load_policy(path)`: read a policy file and every trust file it names, then parse (document.parse_policy).

The one place a policy touches the file system. Each read is bounded; a file that cannot be read becomes the
error of the field that names it, reported with every other problem.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sigscope.errors import SigscopeError
from sigscope.policy.document import (
    MAX_TRUST_FILE,
    LoadedPolicy,
    PolicyError,
    containers_paths,
    parse_policy,
    references,
)
from sigscope.policy.parse import MAX_DOCUMENT, DocumentError, read_document

MAX_DIRECTORY_FILES = 256


def _problem(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "no such file"
    if isinstance(exc, IsADirectoryError):
        return "is a directory, not a file"
    return f"cannot read: {exc.strerror or exc}"


def read_bounded(path: Path, limit: int) -> bytes:
    """The file's bytes; OSError, or ValueError when it is larger than `limit`."""
    with path.open("rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"larger than {limit} bytes")
    return data


def _read(path: Path, files: dict[Path, bytes], loaded: dict[Path, Any]) -> bytes | None:
    if path in files:
        return files[path]
    try:
        files[path] = read_bounded(path, MAX_TRUST_FILE)
    except OSError as exc:
        loaded[path] = _problem(exc)
        return None
    except ValueError as exc:
        loaded[path] = str(exc)
        return None
    return files[path]


def _hash_directory(path: Path, files: dict[Path, bytes]) -> None:
    """The files under a trust directory count toward the policy's version."""
    count = 0
    for root, dirs, names in os.walk(path):
        dirs.sort()
        for name in sorted(names):
            count += 1
            if count > MAX_DIRECTORY_FILES:
                return
            entry = Path(root) / name
            if entry.is_file() and not entry.is_symlink():
                try:
                    files[entry] = read_bounded(entry, MAX_TRUST_FILE)
                except (OSError, ValueError):
                    continue


def load_policy(path: str | Path) -> LoadedPolicy:
    """Read and validate the policy at `path`; PolicyError listing every problem."""
    path = Path(path)
    source = f"policy {path}"
    try:
        data = read_bounded(path, MAX_DOCUMENT)
    except OSError as exc:
        raise PolicyError([f"{path}: {_problem(exc)}"], source) from None
    except ValueError as exc:
        raise PolicyError([f"{path}: {exc}"], source) from None
    base = path.resolve().parent
    files: dict[Path, bytes] = {}
    loaded: dict[Path, Any] = {}
    try:
        document = read_document(data)
    except DocumentError:
        document = None
    if isinstance(document, dict) and isinstance(document.get("rules"), list):
        try:
            found = references(document, base)
        except (AttributeError, TypeError, KeyError):
            found = []  # a shape the schema refuses: parse_policy reports it
        _load_references(found, document, base, files, loaded)
    return parse_policy(data, base=base, files=files, loaded=loaded, source=source)


def _load_references(
    found: list[Any], document: dict[str, Any], base: Path, files: dict[Path, bytes], loaded: dict[Path, Any]
) -> None:
    from sigscope.trust import containers_policy as cp

    stores: dict[Path, set[Any]] = {}
    for reference in found:
        if reference.directory:
            continue
        data = _read(reference.path, files, loaded)
        if data is None:
            continue
        if reference.where.endswith("notation.trustPolicy"):
            store = _store_of(reference.where, document, base)
            try:
                from sigscope.trust.notation_policy import parse_policy as parse_trust_policy

                refs = parse_trust_policy(data, str(reference.path)).store_refs
            except (ValueError, SigscopeError):
                refs = set()
            if store is not None:
                stores.setdefault(store, set()).update(refs)
        if reference.where.endswith("containersPolicy.path"):
            try:
                parsed = cp.parse_policy(data)
            except cp.PolicyFormatError:
                continue
            for named in containers_paths(parsed):
                _read(Path(named), files, loaded)
    for reference in found:
        if not reference.directory or reference.path in loaded:
            continue
        if not reference.path.is_dir():
            loaded[reference.path] = "no such directory"
            continue
        _hash_directory(reference.path, files)
        if reference.where.endswith("trustStore"):
            from sigscope.trust.truststore import TrustStoreError, load_trust_store

            try:
                loaded[reference.path] = load_trust_store(reference.path, stores.get(reference.path, set()))
            except TrustStoreError as exc:
                loaded[reference.path] = str(exc)
        else:
            from sigscope.sources.lookaside import load_registries_d

            try:
                loaded[reference.path] = load_registries_d(reference.path)
            except SigscopeError as exc:
                loaded[reference.path] = exc.message


def _store_of(where: str, document: dict[str, Any], base: Path) -> Path | None:
    """The trustStore beside the trustPolicy at `where` (rules[R].authorities[A].notation.trustPolicy)."""
    import re

    match = re.match(r"rules\[(\d+)\]\.authorities\[(\d+)\]", where)
    if match is None:
        return None
    spec = document["rules"][int(match.group(1))]["authorities"][int(match.group(2))]["notation"]
    return base / str(spec["trustStore"])
