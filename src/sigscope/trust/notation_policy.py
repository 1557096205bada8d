"""Notation trust policies (`trustpolicy.oci.json`, legacy `trustpolicy.json`; FORMATS §2.8).

Pure: `parse_policy(bytes, source)` validates the document as notation-go does and raises
`TrustPolicyError` naming the file and the first problem — an invalid policy is never a silent pass.
`TrustPolicyDocument.select(scope)` picks the statement for a repository (`host/path`): an exact
registry scope beats the single `*` statement; no match is an error. `find_policy_file` is the one
filesystem helper (which of the two names to read).
"""

from __future__ import annotations

import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from sigscope.formats import gojson
from sigscope.trust.truststore import STORE_TYPES, StoreRef, TrustStore, load_trust_store, valid_store_name

SUPPORTED_VERSIONS = ("1.0",)
WILDCARD = "*"
X509_SUBJECT = "x509.subject"
POLICY_FILES = ("trustpolicy.oci.json", "trustpolicy.json")


class TrustPolicyError(ValueError):
    """A trust policy document notation would refuse, or a scope no statement covers."""


class Action(StrEnum):
    ENFORCE = "enforce"
    LOG = "log"
    SKIP = "skip"


class ValidationType(StrEnum):
    INTEGRITY = "integrity"
    AUTHENTICITY = "authenticity"
    AUTHENTIC_TIMESTAMP = "authenticTimestamp"
    EXPIRY = "expiry"
    REVOCATION = "revocation"


_E, _L, _S = Action.ENFORCE, Action.LOG, Action.SKIP
_T = ValidationType
LEVELS: dict[str, dict[ValidationType, Action]] = {
    "strict": {
        _T.INTEGRITY: _E,
        _T.AUTHENTICITY: _E,
        _T.AUTHENTIC_TIMESTAMP: _E,
        _T.EXPIRY: _E,
        _T.REVOCATION: _E,
    },
    "permissive": {
        _T.INTEGRITY: _E,
        _T.AUTHENTICITY: _E,
        _T.AUTHENTIC_TIMESTAMP: _L,
        _T.EXPIRY: _L,
        _T.REVOCATION: _L,
    },
    "audit": {
        _T.INTEGRITY: _E,
        _T.AUTHENTICITY: _L,
        _T.AUTHENTIC_TIMESTAMP: _L,
        _T.EXPIRY: _L,
        _T.REVOCATION: _L,
    },
    "skip": {
        _T.INTEGRITY: _S,
        _T.AUTHENTICITY: _S,
        _T.AUTHENTIC_TIMESTAMP: _S,
        _T.EXPIRY: _S,
        _T.REVOCATION: _S,
    },
}
VERIFY_TIMESTAMP = ("always", "afterCertExpiry")

# distribution's reference grammar, as notation-go validates scopes
_DOMAIN = re.compile(
    r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*"
    r"[a-zA-Z0-9]))+)?(?::[0-9]+)?"
)
_REPOSITORY = re.compile(
    r"[a-z0-9]+(?:(?:(?:[._]|__|[-]*)[a-z0-9]+)+)?(?:(?:/[a-z0-9]+(?:(?:(?:[._]|__|[-]*)[a-z0-9]+)+)?)+)?"
)


@dataclass(frozen=True)
class VerificationLevel:
    name: str  # strict | permissive | audit | skip, or "custom (BASE)" with overrides
    enforcement: Mapping[ValidationType, Action]

    def action(self, kind: ValidationType) -> Action:
        return self.enforcement[kind]

    @property
    def skips_all(self) -> bool:
        return self.name == "skip"


@dataclass(frozen=True)
class TrustedIdentities:
    wildcard: bool
    subjects: tuple[tuple[str, Mapping[str, str]], ...]  # (as written, parsed DN)
    others: tuple[str, ...] = ()  # identities with another prefix (plugin business; never matched here)


@dataclass(frozen=True)
class TrustPolicyStatement:
    name: str
    registry_scopes: tuple[str, ...]
    level: VerificationLevel
    verify_timestamp: str
    trust_stores: tuple[StoreRef, ...]
    identities: TrustedIdentities

    def stores_of(self, store_type: str) -> tuple[StoreRef, ...]:
        return tuple(ref for ref in self.trust_stores if ref.type == store_type)


@dataclass(frozen=True)
class TrustPolicyDocument:
    version: str
    statements: tuple[TrustPolicyStatement, ...]
    source: str = ""

    def select(self, scope: str | None) -> TrustPolicyStatement:
        """The statement for repository `scope` (`host/path`), or the `*` statement; else an error."""
        wildcard: TrustPolicyStatement | None = None
        for statement in self.statements:
            if WILDCARD in statement.registry_scopes:
                wildcard = statement
            elif scope is not None and scope in statement.registry_scopes:
                return statement
        if wildcard is not None:
            return wildcard
        raise TrustPolicyError(
            f"artifact {scope or '(OCI layout)'} has no applicable trust policy statement in "
            f"{self.source or 'the trust policy'}"
        )

    @property
    def store_refs(self) -> set[StoreRef]:
        return {ref for s in self.statements for ref in s.trust_stores}


# ---------------------------------------------------------------- distinguished names

_ESCAPABLE = set(',;+"\\<>=# ')


def parse_dn(text: str) -> dict[str, str]:
    """An RFC 4514 DN as notation reads trusted identities: single-valued RDNs, unique types, C/ST/O."""
    if "=#" in text:
        # notation-go refuses these outright (hex-encoded BER values; go-asn1-ber memory issue #276)
        raise TrustPolicyError(
            f"unsupported distinguished name (DN) {text!r}: notation does not support x509.subject "
            "identities "
            'containing "=#"'
        )
    rdns = _split_dn(text)
    if rdns is None:
        raise TrustPolicyError(
            f"distinguished name (DN) {text!r} is not valid, it must contain 'C', 'ST', and 'O' RDN "
            "attributes "
            "at a minimum, and follow RFC 4514 standard"
        )
    parsed: dict[str, str] = {}
    for rdn in rdns:
        if len(rdn) > 1:
            raise TrustPolicyError(
                f"distinguished name (DN) {text!r} has multi-valued RDN attributes, remove multi-valued RDN "
                "attributes as they are not supported"
            )
        kind, value = rdn[0]
        if kind == "S":
            kind = "ST"
        if kind in parsed:
            raise TrustPolicyError(
                f"distinguished name (DN) {text!r} has duplicate RDN attribute for {kind!r}, DN can only "
                "have "
                "unique RDN attributes"
            )
        parsed[kind] = value
    for mandatory in ("C", "ST", "O"):
        if not parsed.get(mandatory):
            raise TrustPolicyError(
                f"distinguished name (DN) {text!r} has no mandatory RDN attribute for {mandatory!r}, it must "
                "contain 'C', 'ST', and 'O' RDN attributes at a minimum"
            )
    return parsed


def _split_dn(text: str) -> list[list[tuple[str, str]]] | None:
    """RDNs of `text` (each a list of (type, unescaped value)); None when it is not RFC 4514."""
    rdns: list[list[tuple[str, str]]] = []
    current: list[tuple[str, str]] = []
    i, n = 0, len(text)
    if not text.strip():
        return None
    while True:
        # attribute type
        eq = text.find("=", i)
        if eq < 0:
            return None
        kind = text[i:eq].strip()
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)+", kind):
            return None
        i = eq + 1
        while i < n and text[i] == " ":
            i += 1
        if i < n and text[i] == "#":
            return None  # hex-encoded BER values: notation refuses them in identities
        value: list[str] = []
        raw_bytes = bytearray()
        trailing_spaces = 0
        while i < n and text[i] not in ",;+":
            ch = text[i]
            if ch == "\\":
                if i + 1 >= n:
                    return None
                nxt = text[i + 1]
                if nxt in _ESCAPABLE:
                    _flush(raw_bytes, value)
                    value.append(nxt)
                    trailing_spaces = 0
                    i += 2
                    continue
                if i + 2 < n + 1 and re.fullmatch(r"[0-9A-Fa-f]{2}", text[i + 1 : i + 3]):
                    raw_bytes.append(int(text[i + 1 : i + 3], 16))
                    trailing_spaces = 0
                    i += 3
                    continue
                return None
            if ch in '"<>':
                return None
            _flush(raw_bytes, value)
            value.append(ch)
            trailing_spaces = trailing_spaces + 1 if ch == " " else 0
            i += 1
        if not _flush(raw_bytes, value):
            return None
        joined = "".join(value)
        if trailing_spaces:
            joined = joined[: len(joined) - trailing_spaces]
        if not joined:
            return None
        current.append((kind, joined))
        if i >= n:
            rdns.append(current)
            return rdns
        sep = text[i]
        i += 1
        if sep != "+":
            rdns.append(current)
            current = []
        while i < n and text[i] == " ":
            i += 1
        if i >= n:
            return None


def _flush(raw: bytearray, value: list[str]) -> bool:
    if raw:
        try:
            value.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            return False
        raw.clear()
    return True


# Go's pkix.Name.String() short names; what notation compares trusted identities with.
_GO_NAMES = {
    NameOID.COUNTRY_NAME: "C",
    NameOID.STATE_OR_PROVINCE_NAME: "ST",
    NameOID.LOCALITY_NAME: "L",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.COMMON_NAME: "CN",
    NameOID.SERIAL_NUMBER: "SERIALNUMBER",
    NameOID.POSTAL_CODE: "POSTALCODE",
    NameOID.STREET_ADDRESS: "STREET",
}


def certificate_dn(cert: x509.Certificate) -> dict[str, str]:
    """The leaf subject as notation parses it (same rules as a policy DN: unique types, C/ST/O)."""
    parsed: dict[str, str] = {}
    subject = cert.subject.rfc4514_string()
    for rdn in cert.subject.rdns:
        attributes = list(rdn)
        if len(attributes) > 1:
            raise TrustPolicyError(f"certificate subject {subject!r} has multi-valued RDN attributes")
        attribute = attributes[0]
        # Go prints other attribute types as OID=#hex, which no policy identity can name.
        raw = attribute.value
        text = raw if isinstance(raw, str) else raw.decode("latin-1")
        kind = _GO_NAMES.get(attribute.oid)
        if kind is None or not isinstance(raw, str):
            kind = kind or attribute.oid.dotted_string
            text = "#" + text.encode("utf-8", "surrogateescape").hex()
        value = text
        if "=#" in f"{kind}={value}":
            # Go renders such subjects with "=#", which notation refuses to match against any identity.
            raise TrustPolicyError(
                f'certificate subject {subject!r} contains "=#" as notation renders it, which notation does '
                "not "
                "support in x509.subject identities"
            )
        if kind in parsed:
            raise TrustPolicyError(
                f"certificate subject {subject!r} has duplicate RDN attribute for {kind!r}"
            )
        parsed[kind] = value
    for mandatory in ("C", "ST", "O"):
        if not parsed.get(mandatory):
            raise TrustPolicyError(
                f"certificate subject {subject!r} has no mandatory RDN attribute for {mandatory!r}"
            )
    return parsed


def is_subset_dn(small: Mapping[str, str], big: Mapping[str, str]) -> bool:
    """Every attribute of `small` has the same value in `big`."""
    return all(big.get(key) == value for key, value in small.items())


# ---------------------------------------------------------------- the document


def _get(obj: Mapping[str, Any], key: str) -> Any:
    """Go's encoding/json matches field names case-insensitively; notation users rely on it rarely, but do."""
    if key in obj:
        return obj[key]
    folded = key.casefold()
    for name, value in obj.items():
        if name.casefold() == folded:
            return value
    return None


def _strings(value: Any, what: str, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TrustPolicyError(f"malformed trust policy {where}: {what} must be an array of strings")
    return tuple(value)


def validate_scope(scope: str) -> None:
    ensure = (
        "make sure it is a fully qualified repository without the scheme, protocol or tag. For example "
        "domain.com/my/repository or a local scope like local/myOCILayout"
    )
    if len(scope) > 1 and "*" in scope:
        raise TrustPolicyError(f"registry scope {scope!r} with wild card(s) is not valid, {ensure}")
    domain, slash, repository = scope.partition("/")
    if not slash or not _DOMAIN.fullmatch(domain) or not _REPOSITORY.fullmatch(repository):
        raise TrustPolicyError(f"registry scope {scope!r} is not valid, {ensure}")


def _level(name: str, raw: Any) -> tuple[VerificationLevel, str]:
    if not isinstance(raw, dict):
        raise TrustPolicyError(f"trust policy statement {name!r} is missing signatureVerification")
    level_name = _get(raw, "level")
    if not level_name:
        raise TrustPolicyError(
            f"trust policy statement {name!r} has invalid signatureVerification: signature verification "
            "level "
            "is empty or missing in the trust policy statement"
        )
    if not isinstance(level_name, str) or level_name not in LEVELS:
        raise TrustPolicyError(
            f"trust policy statement {name!r} has invalid signatureVerification: invalid signature "
            "verification "
            f"level {level_name!r}"
        )
    enforcement = dict(LEVELS[level_name])
    override = _get(raw, "override")
    label = level_name
    if override:
        if not isinstance(override, dict):
            raise TrustPolicyError(f"trust policy statement {name!r}: override must be an object")
        if level_name == "skip":
            raise TrustPolicyError(
                f"trust policy statement {name!r} has invalid signatureVerification: signature verification "
                "level 'skip' can't be used to customize signature verification"
            )
        for key, value in override.items():
            try:
                kind = ValidationType(key)
            except ValueError:
                raise TrustPolicyError(
                    f"trust policy statement {name!r}: verification type {key!r} in custom signature "
                    "verification "
                    f"is not supported, supported values are {[str(t) for t in ValidationType]}"
                ) from None
            try:
                action = Action(value)
            except ValueError:
                raise TrustPolicyError(
                    f"trust policy statement {name!r}: verification action {value!r} in custom signature "
                    f"verification is not supported, supported values are {[str(a) for a in Action]}"
                ) from None
            if kind is ValidationType.INTEGRITY:
                raise TrustPolicyError(
                    f"trust policy statement {name!r}: 'integrity' verification can not be overridden in "
                    "custom "
                    "signature verification"
                )
            if kind is not ValidationType.REVOCATION and action is Action.SKIP:
                raise TrustPolicyError(
                    f"trust policy statement {name!r}: {key!r} verification can not be skipped in custom "
                    "signature verification"
                )
            enforcement[kind] = action
        label = f"{level_name} (with overrides)"
    verify_timestamp = _get(raw, "verifyTimestamp") or "always"
    if verify_timestamp not in VERIFY_TIMESTAMP:
        raise TrustPolicyError(
            f"trust policy statement {name!r} has invalid signatureVerification: verifyTimestamp "
            f"{verify_timestamp!r} is not one of {', '.join(VERIFY_TIMESTAMP)}"
        )
    return VerificationLevel(label if override else level_name, enforcement), verify_timestamp


def _identities(name: str, values: tuple[str, ...]) -> TrustedIdentities:
    if len(values) > 1 and WILDCARD in values:
        raise TrustPolicyError(
            f"trust policy statement {name!r} uses a wildcard trusted identity '*', a wildcard identity "
            "cannot "
            "be used in conjunction with other values"
        )
    subjects: list[tuple[str, Mapping[str, str]]] = []
    others: list[str] = []
    for identity in values:
        if identity == "":
            raise TrustPolicyError(f"trust policy statement {name!r} has an empty trusted identity")
        if identity == WILDCARD:
            continue
        prefix, sep, value = identity.partition(":")
        if not sep:
            raise TrustPolicyError(
                f"trust policy statement {name!r} has trusted identity {identity!r} missing separator"
            )
        if prefix != X509_SUBJECT:
            others.append(identity)
            continue
        if not value:
            raise TrustPolicyError(
                f"trust policy statement {name!r} has trusted identity {identity!r} without an identity value"
            )
        try:
            subjects.append((identity, parse_dn(value)))
        except TrustPolicyError as exc:
            raise TrustPolicyError(
                f"trust policy statement {name!r} has trusted identity {identity!r} with invalid identity "
                f"value: {exc}"
            ) from None
    for i, (raw1, dn1) in enumerate(subjects):
        for j, (raw2, dn2) in enumerate(subjects):
            if i != j and is_subset_dn(dn1, dn2):
                raise TrustPolicyError(
                    f"trust policy statement {name!r} has overlapping x509 trustedIdentities, {raw1!r} "
                    "overlaps "
                    f"with {raw2!r}"
                )
    return TrustedIdentities(wildcard=WILDCARD in values, subjects=tuple(subjects), others=tuple(others))


def _stores(name: str, values: tuple[str, ...]) -> tuple[StoreRef, ...]:
    refs = []
    for value in values:
        kind, sep, store = value.partition(":")
        if not sep:
            raise TrustPolicyError(
                f"trust policy statement {name!r} has malformed trust store value {value!r}. The required "
                "format "
                "is <TrustStoreType>:<TrustStoreName>"
            )
        if kind not in STORE_TYPES:
            raise TrustPolicyError(
                f"trust policy statement {name!r} uses an unsupported trust store type {kind!r} in trust "
                "store "
                f"value {value!r}"
            )
        if not valid_store_name(store):
            raise TrustPolicyError(
                f"trust policy statement {name!r} uses an unsupported trust store name {store!r} in trust "
                "store "
                f"value {value!r}. Named store name needs to follow [a-zA-Z0-9_.-]+ format"
            )
        refs.append(StoreRef(kind, store))
    return tuple(refs)


def parse_policy(data: bytes, source: str = "trust policy") -> TrustPolicyDocument:
    """Parse and validate an OCI trust policy document; any problem raises TrustPolicyError naming "
    "`source`."""
    try:
        return _parse(data, source)
    except TrustPolicyError as exc:
        message = str(exc)
        raise TrustPolicyError(message if message.startswith(source) else f"{source}: {message}") from None


def _parse(data: bytes, source: str) -> TrustPolicyDocument:
    try:
        # Trust policy statements are Go structs throughout (notation-go decodes them case-insensitively).
        doc = gojson.read(data, "trust policy")
    except ValueError as exc:
        raise TrustPolicyError(f"malformed trust policy ({exc})") from None
    if not isinstance(doc, dict):
        raise TrustPolicyError("malformed trust policy (not a JSON object)")
    version = _get(doc, "version")
    if not version:
        raise TrustPolicyError("trust policy document has empty version, version must be specified")
    if version not in SUPPORTED_VERSIONS:
        raise TrustPolicyError(f"trust policy document uses unsupported version {version!r}")
    raw_statements = _get(doc, "trustPolicies")
    if not isinstance(raw_statements, list) or not raw_statements:
        raise TrustPolicyError("trust policy document can not have zero trust policy statements")
    statements: list[TrustPolicyStatement] = []
    names: set[str] = set()
    for raw in raw_statements:
        if not isinstance(raw, dict):
            raise TrustPolicyError("malformed trust policy: a trust policy statement is not an object")
        name = _get(raw, "name")
        if not isinstance(name, str) or not name:
            raise TrustPolicyError(
                "a trust policy statement is missing a name, every statement requires a name"
            )
        if name in names:
            raise TrustPolicyError(
                f"multiple trust policy statements use the same name {name!r}, statement names must be unique"
            )
        names.add(name)
        level, verify_timestamp = _level(name, _get(raw, "signatureVerification"))
        stores = _strings(_get(raw, "trustStores"), "trustStores", name)
        identities = _strings(_get(raw, "trustedIdentities"), "trustedIdentities", name)
        if level.skips_all:
            if stores or identities:
                raise TrustPolicyError(
                    f"trust policy statement {name!r} is set to skip signature verification but configured "
                    "with "
                    "trust stores and/or trusted identities, remove them if signature verification needs to "
                    "be "
                    "skipped"
                )
        elif not stores or not identities:
            raise TrustPolicyError(
                f"trust policy statement {name!r} is either missing trust stores or trusted identities, "
                "both must "
                "be specified"
            )
        statements.append(
            TrustPolicyStatement(
                name=name,
                registry_scopes=_strings(_get(raw, "registryScopes"), "registryScopes", name),
                level=level,
                verify_timestamp=verify_timestamp,
                trust_stores=_stores(name, stores),
                identities=_identities(name, identities),
            )
        )
    seen: dict[str, str] = {}
    for statement in statements:
        scopes = statement.registry_scopes
        if not scopes:
            raise TrustPolicyError(
                f"trust policy statement {statement.name!r} has zero registry scopes, it must specify "
                "registry "
                "scopes with at least one value"
            )
        if len(scopes) > 1 and WILDCARD in scopes:
            raise TrustPolicyError(
                f"trust policy statement {statement.name!r} uses wildcard registry scope '*', a wildcard "
                "scope "
                "cannot be used in conjunction with other scope values"
            )
        for scope in scopes:
            if scope != WILDCARD:
                validate_scope(scope)
            if scope in seen:
                raise TrustPolicyError(
                    f"registry scope {scope!r} is present in multiple trust policy statements, one registry "
                    "scope "
                    "value can only be associated with one statement"
                )
            seen[scope] = statement.name
    return TrustPolicyDocument(version=str(version), statements=tuple(statements), source=source)


@dataclass
class PolicyFile:
    path: Path
    data: bytes
    notes: list[str] = field(default_factory=list)


def find_policy_file(directory: Path) -> PolicyFile:
    """`DIR/trustpolicy.oci.json`, else the legacy `DIR/trustpolicy.json` (notation's order)."""
    for name in POLICY_FILES:
        path = directory / name
        try:
            info = path.lstat()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise TrustPolicyError(f"cannot read trust policy {path}: {exc.strerror}") from None
        return PolicyFile(path, read_policy_file(path, info.st_mode))
    raise TrustPolicyError(f"no trust policy in {directory} (expected {' or '.join(POLICY_FILES)})")


def read_policy_file(path: Path, mode: int | None = None) -> bytes:
    try:
        if mode is None:
            mode = path.lstat().st_mode
        if stat.S_ISLNK(mode) or not stat.S_ISREG(mode):
            raise TrustPolicyError(f"trust policy {path} is not a regular file (symlinks are not supported)")
        return path.read_bytes()
    except FileNotFoundError:
        raise TrustPolicyError(f"trust policy {path} does not exist") from None
    except OSError as exc:
        raise TrustPolicyError(f"cannot read trust policy {path}: {exc.strerror}") from None


@dataclass(frozen=True)
class NotationTrust:
    """What `--notation-config` (or `--trust-policy` + `--trust-store`) supplied: a policy and its stores."""

    policy: TrustPolicyDocument
    store: TrustStore


def load_notation_trust(
    config: Path | None = None, policy_file: Path | None = None, store_dir: Path | None = None
) -> NotationTrust:
    """Read notation's files: `config/trustpolicy{.oci,}.json` and `config/truststore/`, or the two named
    separately (an explicit one wins). Every store any statement names is read now, so a missing or invalid
    store is an error before anything is verified. TrustPolicyError / TrustStoreError on any problem."""
    if policy_file is not None:
        path, data = policy_file, read_policy_file(policy_file)
    elif config is not None:
        found = find_policy_file(config)
        path, data = found.path, found.data
    else:
        raise TrustPolicyError("no trust policy given (--notation-config DIR or --trust-policy FILE)")
    if store_dir is None:
        if config is None:
            raise TrustPolicyError("no trust store given (--notation-config DIR or --trust-store DIR)")
        store_dir = config / "truststore"
    policy = parse_policy(data, str(path))
    return NotationTrust(policy=policy, store=load_trust_store(store_dir, policy.store_refs))
