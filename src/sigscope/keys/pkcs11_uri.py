"""PKCS#11 URIs (RFC 7512): `pkcs11:token=T;object=O;id=%01?module-path=/…/libsofthsm2.so&pin-source=…`.

Pure parsing: what the URI names, never a module loaded or a file read. Values are percent-decoded (`id` stays
bytes, every other attribute must be UTF-8 text). An attribute sigscope does not know, one given twice, a
vendor (`x-…`) attribute or a malformed escape is refused: a URI that reads two ways, or whose filter is
silently dropped, could select another key than the user meant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sigscope.errors import UsageError

SCHEME = "pkcs11:"

# RFC 7512 §2.3: path attributes (which token, which object) and query attributes (how to reach it).
PATH_ATTRIBUTES = frozenset(
    {
        "id",
        "library-description",
        "library-manufacturer",
        "library-version",
        "manufacturer",
        "model",
        "object",
        "serial",
        "slot-description",
        "slot-id",
        "slot-manufacturer",
        "token",
        "type",
    }
)
QUERY_ATTRIBUTES = frozenset({"module-name", "module-path", "pin-source", "pin-value"})
OBJECT_TYPES = frozenset({"cert", "data", "private", "public", "secret-key"})
MAX_URI_LENGTH = 4096

_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_NAME = re.compile(r"[a-z][a-z0-9-]*")
_VERSION = re.compile(r"[0-9]+(\.[0-9]+)?")


class Pkcs11UriError(UsageError):
    """A `pkcs11:` URI that is malformed or names something sigscope does not take."""


@dataclass(frozen=True)
class Pkcs11Uri:
    """The attributes of one PKCS#11 URI, decoded. `id` is bytes; the rest text; absent ones None."""

    path: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    id: bytes | None = None

    def get(self, name: str) -> str | None:
        """A path or query attribute other than `id`, or None."""
        return self.path.get(name, self.query.get(name))

    @property
    def token(self) -> str | None:
        return self.path.get("token")

    @property
    def object(self) -> str | None:
        return self.path.get("object")

    @property
    def slot_id(self) -> int | None:
        value = self.path.get("slot-id")
        return int(value) if value is not None else None

    @property
    def module_path(self) -> str | None:
        return self.query.get("module-path")

    def describe(self) -> str:
        """The URI's object selection, for messages: `token=T;object=O;id=%01` (no query: no PIN, ever)."""
        parts = [f"{name}={value}" for name, value in sorted(self.path.items())]
        if self.id is not None:
            parts.append("id=" + "".join(f"%{b:02x}" for b in self.id))
        return ";".join(parts) or "(any)"


def is_pkcs11_uri(spec: str) -> bool:
    return spec[: len(SCHEME)].lower() == SCHEME


def _decode(raw: str, name: str) -> bytes:
    bad = _ESCAPE.search(raw)
    if bad is not None:
        raise Pkcs11UriError(
            f"PKCS#11 URI attribute {name}: malformed percent-escape at {raw[bad.start() :]!r}"
        )
    out = bytearray()
    i = 0
    while i < len(raw):
        if raw[i] == "%":
            out.append(int(raw[i + 1 : i + 3], 16))
            i += 3
        else:
            out.extend(raw[i].encode("utf-8"))
            i += 1
    return bytes(out)


def _attributes(part: str, separator: str, allowed: frozenset[str], where: str) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    if not part:
        return found
    for item in part.split(separator):
        name, sep, raw = item.partition("=")
        if not sep or not _NAME.fullmatch(name):
            raise Pkcs11UriError(f"PKCS#11 URI {where} attribute {item!r} is not NAME=VALUE")
        if name.startswith("x-"):
            raise Pkcs11UriError(f"PKCS#11 URI vendor attribute {name} is not supported")
        if name not in allowed:
            other = "query" if where == "path" else "path"
            if name in (QUERY_ATTRIBUTES if where == "path" else PATH_ATTRIBUTES):
                raise Pkcs11UriError(f"PKCS#11 URI attribute {name} belongs in the {other}")
            raise Pkcs11UriError(f"PKCS#11 URI attribute {name} is unknown (RFC 7512)")
        if name in found:
            raise Pkcs11UriError(f"PKCS#11 URI attribute {name} is given twice")
        value = _decode(raw, name)
        if not value:
            raise Pkcs11UriError(f"PKCS#11 URI attribute {name} is empty")
        found[name] = value
    return found


def _text(name: str, value: bytes) -> str:
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        raise Pkcs11UriError(f"PKCS#11 URI attribute {name} is not UTF-8 text") from None
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise Pkcs11UriError(f"PKCS#11 URI attribute {name} holds a control character")
    return text


def parse_uri(uri: str) -> Pkcs11Uri:
    """Parse a `pkcs11:` URI; every problem is one :class:`Pkcs11UriError` (never echoing a PIN)."""
    if not is_pkcs11_uri(uri):
        raise Pkcs11UriError("not a PKCS#11 URI (it starts with pkcs11:)")
    if len(uri) > MAX_URI_LENGTH:
        raise Pkcs11UriError(f"PKCS#11 URI longer than {MAX_URI_LENGTH} characters")
    body = uri[len(SCHEME) :]
    if "#" in body:
        raise Pkcs11UriError("PKCS#11 URI has a fragment (#); RFC 7512 has none")
    path_part, _, query_part = body.partition("?")
    path = _attributes(path_part, ";", PATH_ATTRIBUTES, "path")
    query = _attributes(query_part, "&", QUERY_ATTRIBUTES, "query")
    key_id = path.pop("id", None)
    texts = {name: _text(name, value) for name, value in path.items()}
    options = {name: _text(name, value) for name, value in query.items()}
    kind = texts.get("type")
    if kind is not None and kind not in OBJECT_TYPES:
        raise Pkcs11UriError(f"PKCS#11 URI type={kind} is not one of {', '.join(sorted(OBJECT_TYPES))}")
    slot = texts.get("slot-id")
    if slot is not None and not slot.isdigit():
        raise Pkcs11UriError("PKCS#11 URI slot-id is not a decimal number")
    version = texts.get("library-version")
    if version is not None and not _VERSION.fullmatch(version):
        raise Pkcs11UriError("PKCS#11 URI library-version is not MAJOR[.MINOR]")
    if "pin-value" in options and "pin-source" in options:
        raise Pkcs11UriError("PKCS#11 URI has both pin-value and pin-source; give one")
    if "module-name" in options and "module-path" in options:
        raise Pkcs11UriError("PKCS#11 URI has both module-name and module-path; give one")
    return Pkcs11Uri(path=texts, query=options, id=key_id)
