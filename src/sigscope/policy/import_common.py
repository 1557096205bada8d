"""What both importers share: the rule they propose, how they refuse a field, and the pieces of a peer
policy that mean the same in both (inline public keys, keyless identities, predicate types)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from sigscope.policy.import_globs import GlobError

__all__ = ["Candidate", "Fields", "add_images", "identity", "pem_keys", "predicate_type"]

MAX_LIST = 256  # entries in any list of a peer policy (globs, authorities, conditions, ...)
MAX_TEXT = 64 * 1024  # one string value (a PEM bundle of a few keys is ~2 KiB)
_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z ]+)-----\s.*?-----END \1-----", re.DOTALL)


@dataclass
class Candidate:
    """One sigscope rule proposed for a peer rule, with everything that stops it from meaning the same."""

    source: str  # "policy-controller" | "Kyverno"
    path: str  # where the peer rule is, e.g. `spec.rules[0].verifyImages[1]`
    rule: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    image_paths: list[str] = field(default_factory=list)  # the field each of rule["images"] came from
    skips: list[tuple[str, str]] = field(default_factory=list)  # (glob, field) for exemptions.images
    namespaces: frozenset[str] = frozenset()  # namespaces the peer rule excludes
    namespaces_path: str | None = None

    def refuse(self, path: str, message: str) -> None:
        self.problems.append(f"{path or 'document'}: {message}")


class Fields:
    """A mapping from a peer policy, read field by field: every key must be one the caller knows, and
    each value is checked for its type with the field's path in the message."""

    def __init__(self, value: Any, path: str, candidate: Candidate) -> None:
        self.path = path
        self.candidate = candidate
        self.data: Mapping[str, Any] = value if isinstance(value, Mapping) else {}
        self.ok = isinstance(value, Mapping)
        self.handled: set[str] = set()  # keys already refused with a reason of their own
        if not self.ok:
            candidate.refuse(path, f"expected a mapping, not {type_name(value)}")

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def known(self, *keys: str, ignored: tuple[str, ...] = ()) -> None:
        """Refuse every key that is neither translated (`keys`) nor meaningless here (`ignored`)."""
        for key in self.data:
            if key not in keys and key not in ignored and key not in self.handled:
                self.candidate.refuse(self.at(str(key)), "unknown field, or one with no sigscope equivalent")

    def refuse_present(self, key: str, why: str) -> None:
        """Refuse `key` with `why` when it is given (call before :meth:`known`)."""
        self.handled.add(key)
        if key in self.data and self.data[key] not in (None, "", [], {}):
            self.candidate.refuse(self.at(key), why)

    def text(self, key: str, *, required: bool = False) -> str | None:
        value = self.data.get(key)
        if value is None or value == "":
            if required:
                self.candidate.refuse(self.at(key), "required")
            return None
        if not isinstance(value, str) or len(value) > MAX_TEXT:
            self.candidate.refuse(self.at(key), f"expected a string, not {type_name(value)}")
            return None
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            self.candidate.refuse(self.at(key), f"expected true or false, not {type_name(value)}")
            return default
        return value

    def integer(self, key: str) -> int | None:
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_LIST:
            self.candidate.refuse(self.at(key), f"expected a count from 0 to {MAX_LIST}")
            return None
        return value

    def items(self, key: str, *, required: bool = False) -> Iterator[tuple[str, Any]]:
        """(path, value) of each entry of a list field."""
        value = self.data.get(key)
        if value is None or value == []:
            if required:
                self.candidate.refuse(self.at(key), "required")
            return
        if not isinstance(value, list) or len(value) > MAX_LIST:
            self.candidate.refuse(self.at(key), f"expected a list of at most {MAX_LIST} entries")
            return
        for index, item in enumerate(value):
            yield f"{self.at(key)}[{index}]", item

    def sub(self, key: str) -> Fields | None:
        if key not in self.data or self.data[key] is None:
            return None
        return Fields(self.data[key], self.at(key), self.candidate)


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list"}.get(
        type(value), "a mapping" if isinstance(value, Mapping) else type(value).__name__
    )


def add_images(candidate: Candidate, path: str, value: Any, translate: Callable[[str], list[str]]) -> None:
    """Translate one peer image pattern into the rule's images, or refuse it."""
    if not isinstance(value, str):
        candidate.refuse(path, f"expected a string, not {type_name(value)}")
        return
    try:
        globs = translate(value)
    except GlobError as exc:
        candidate.refuse(path, str(exc))
        return
    images = candidate.rule.setdefault("images", [])
    for glob in globs:
        if glob not in images:
            images.append(glob)
            candidate.image_paths.append(path)


def pem_keys(text: str, path: str, candidate: Candidate) -> list[str]:
    """The PEM public keys in `text`, each checked to load; refused if anything else is there."""
    from cryptography.hazmat.primitives import serialization

    blocks = [m.group(0) for m in _PEM_BLOCK.finditer(text)]
    rest = _PEM_BLOCK.sub("", text).strip()
    if not blocks or rest:
        what = "a reference or variable" if "://" in text or "{{" in text else "text outside PEM blocks"
        candidate.refuse(path, f"only inline PEM public keys have a sigscope equivalent, not {what}")
        return []
    keys = []
    for block in blocks:
        try:
            serialization.load_pem_public_key(block.encode())
        except (ValueError, TypeError):
            candidate.refuse(path, "a PEM block that is not a public key")
            return []
        keys.append(block.strip() + "\n")
    return keys


_IDENTITY_KEYS = ("issuer", "subject", "issuerRegExp", "subjectRegExp")


def identity(source: Fields) -> dict[str, str] | None:
    """A keyless identity ({issuer, subject, issuerRegExp, subjectRegExp}); regular expressions are
    searched (unanchored), as Go's MatchString does in both peers and as sigscope does."""
    out: dict[str, str] = {}
    for key in _IDENTITY_KEYS:
        value = source.text(key)
        if value is None:
            continue
        if key.endswith("RegExp"):
            try:
                re.compile(value)
            except re.error as exc:
                source.candidate.refuse(source.at(key), f"not a regular expression sigscope reads: {exc}")
                return None
        out[key] = value
    for exact, pattern in (("issuer", "issuerRegExp"), ("subject", "subjectRegExp")):
        if exact in out and pattern in out:
            source.candidate.refuse(source.at(pattern), f"both {exact} and {pattern}: give one")
            return None
    if not out:
        source.candidate.refuse(source.path, "an identity needs an issuer or a subject")
        return None
    return out


def predicate_type(value: str | None, path: str, candidate: Candidate) -> str | None:
    """cosign's short names (`slsaprovenance1`, `cyclonedx`, ...) as URIs; a URI as it is."""
    from sigscope.attest import PREDICATE_TYPES

    if value is None:
        candidate.refuse(path, "required")
        return None
    if value in PREDICATE_TYPES:
        return PREDICATE_TYPES[value]
    if "://" not in value or any(c.isspace() for c in value):
        candidate.refuse(path, f"{value!r} is neither a cosign predicate type name nor a URI")
        return None
    return value
