"""containers-policy.json, read and evaluated as containers/image (skopeo, podman, CRI-O) does.

Parsing follows signature/policy_config*.go: strict JSON (an unknown or duplicate key anywhere rejects the
whole document), `default` mandatory, requirement lists never empty, exactly one key source per requirement,
scopes validated per transport. Evaluation follows signature/policy_eval*.go: the most specific scope of the
image's transport wins (exact reference, then repository and parent namespaces, then host, then `*.domain`
wildcards, then the transport's `""`, then `default`); every requirement of that scope must accept the image;
a signature requirement accepts when at least one signature of its kind passes all of its checks.

Pure: the caller hands in the policy bytes, the bytes of every file the chosen requirements name (`keyPath`,
`caPath`, ...; relative paths resolve against the working directory, as c/image's `os.ReadFile` does), the
signature records discovery found (without trust applied) and the clock.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import json
import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from sigscope.errors import InvalidReferenceError, MalformedJSONError, UsageError
from sigscope.formats import gojson
from sigscope.formats import payload as payload_format
from sigscope.formats import simplesigning as ss
from sigscope.model import Check, Outcome, Signature, SignatureFormat
from sigscope.oci.reference import parse_reference
from sigscope.trust import certs, pgp
from sigscope.trust.chain import CODE_SIGNING, verify_chain

COSIGN_SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
COSIGN_PAYLOAD_TYPE = "cosign container image signature"

KEY_TYPES = ("GPGKeys", "signedByGPGKeys", "X509Certificates", "signedByX509CAs")
IDENTITY_TYPES = (
    "matchExact",
    "matchRepoDigestOrExact",
    "matchRepository",
    "exactReference",
    "exactRepository",
    "remapIdentity",
)

# docker/distribution reference grammar, for remapIdentity prefixes (c/image validateIdentityRemappingPrefix).
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_ATOMIC_SCOPE = re.compile(r"[^/]*(/[^:/]*(/[^:/]*(:[^:/]*)?)?)?")


class PolicyFormatError(UsageError):
    """The policy document is not one containers/image would load; the message says why."""


# ------------------------------------------------------------------ docker references


@dataclass(frozen=True)
class DockerName:
    """A normalised docker reference: `name` is `domain/path` (Docker Hub as `docker.io/library/x`)."""

    name: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name_only(self) -> bool:
        return self.tag is None and self.digest is None

    def __str__(self) -> str:
        text = self.name
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text


def parse_docker_name(text: str) -> DockerName | None:
    """distribution's ParseNormalizedNamed: None when `text` is not a docker reference."""
    if not text or "://" in text or text != text.strip():
        return None
    try:
        parsed = parse_reference(text, default_tag="latest")
    except InvalidReferenceError:
        return None
    last = text.partition("@")[0].rsplit("/", 1)[-1]
    tag = parsed.tag if ":" in last else None
    return DockerName(f"{parsed.registry}/{parsed.repository}", tag, parsed.digest)


def _parse_named_strict(text: str) -> DockerName | None:
    """distribution's ParseNamed: only references already in their normalised spelling."""
    parsed = parse_docker_name(text)
    return parsed if parsed is not None and str(parsed) == text else None


def _valid_remap_prefix(text: str) -> bool:
    return bool(re.fullmatch(_DOMAIN, text) or (re.fullmatch(_NAME, text) and re.match(rf"{_DOMAIN}/", text)))


# ------------------------------------------------------------------ policy records


@dataclass(frozen=True)
class IdentityRule:
    """`signedIdentity`: how the identity a signature claims must relate to the image."""

    type: str = "matchRepoDigestOrExact"
    docker_reference: str | None = None  # exactReference
    docker_repository: str | None = None  # exactRepository
    prefix: str | None = None  # remapIdentity
    signed_prefix: str | None = None

    def describe(self) -> str:
        if self.type == "exactReference":
            return f"exactReference {self.docker_reference}"
        if self.type == "exactRepository":
            return f"exactRepository {self.docker_repository}"
        if self.type == "remapIdentity":
            return f"remapIdentity {self.prefix} → {self.signed_prefix}"
        return self.type

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        for key, value in (
            ("dockerReference", self.docker_reference),
            ("dockerRepository", self.docker_repository),
            ("prefix", self.prefix),
            ("signedPrefix", self.signed_prefix),
        ):
            if value is not None:
                out[key] = value
        return out


@dataclass(frozen=True)
class Fulcio:
    ca_path: str | None
    ca_data: bytes | None
    oidc_issuer: str
    subject_email: str


@dataclass(frozen=True)
class PKI:
    ca_roots_path: str | None
    ca_roots_data: bytes | None
    ca_intermediates_path: str | None
    ca_intermediates_data: bytes | None
    subject_email: str | None
    subject_hostname: str | None


@dataclass(frozen=True)
class Requirement:
    """One policy requirement; the fields a type does not use stay empty."""

    type: str
    key_type: str | None = None  # signedBy
    key_path: str | None = None
    key_paths: tuple[str, ...] | None = None
    key_data: bytes | None = None
    key_datas: tuple[bytes, ...] | None = None  # sigstoreSigned
    fulcio: Fulcio | None = None
    pki: PKI | None = None
    rekor_key_path: str | None = None
    rekor_key_paths: tuple[str, ...] | None = None
    rekor_key_data: bytes | None = None
    rekor_key_datas: tuple[bytes, ...] | None = None
    identity: IdentityRule | None = None  # signedIdentity (signedBaseLayer: baseLayerIdentity)

    def paths(self) -> list[str]:
        """Files this requirement reads when it is evaluated."""
        found: list[str] = []
        for single in (self.key_path, self.rekor_key_path):
            if single:
                found.append(single)
        for many in (self.key_paths, self.rekor_key_paths):
            found.extend(many or ())
        if self.fulcio is not None and self.fulcio.ca_path:
            found.append(self.fulcio.ca_path)
        if self.pki is not None:
            found.extend(p for p in (self.pki.ca_roots_path, self.pki.ca_intermediates_path) if p)
        return found

    def describe(self) -> str:
        parts: list[str] = []
        if self.key_type:
            parts.append(f"keyType {self.key_type}")
        if self.key_path:
            parts.append(f"keyPath {self.key_path}")
        if self.key_paths is not None:
            parts.append(f"keyPaths {', '.join(self.key_paths)}")
        if self.key_data is not None:
            parts.append("keyData")
        if self.key_datas is not None:
            parts.append(f"keyDatas ({len(self.key_datas)})")
        if self.fulcio is not None:
            parts.append(f"fulcio {self.fulcio.oidc_issuer} {self.fulcio.subject_email}")
        if self.pki is not None:
            parts.append("pki")
        if self.rekor_key_path or self.rekor_key_paths or self.rekor_key_data or self.rekor_key_datas:
            parts.append("rekor")
        if self.identity is not None:
            label = "baseLayerIdentity" if self.type == "signedBaseLayer" else "signedIdentity"
            parts.append(f"{label} {self.identity.describe()}")
        return f"{self.type} ({'; '.join(parts)})" if parts else self.type

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        if self.key_type:
            out["keyType"] = self.key_type
        if self.key_path:
            out["keyPath"] = self.key_path
        if self.key_paths is not None:
            out["keyPaths"] = list(self.key_paths)
        if self.key_data is not None:
            out["keyData"] = base64.b64encode(self.key_data).decode()
        if self.key_datas is not None:
            out["keyDatas"] = [base64.b64encode(d).decode() for d in self.key_datas]
        if self.fulcio is not None:
            out["fulcio"] = {"oidcIssuer": self.fulcio.oidc_issuer, "subjectEmail": self.fulcio.subject_email}
            if self.fulcio.ca_path:
                out["fulcio"]["caPath"] = self.fulcio.ca_path
        if self.rekor_key_path:
            out["rekorPublicKeyPath"] = self.rekor_key_path
        if self.rekor_key_paths is not None:
            out["rekorPublicKeyPaths"] = list(self.rekor_key_paths)
        if self.identity is not None:
            label = "baseLayerIdentity" if self.type == "signedBaseLayer" else "signedIdentity"
            out[label] = self.identity.to_json()
        return out


@dataclass(frozen=True)
class Policy:
    default: tuple[Requirement, ...]
    transports: Mapping[str, Mapping[str, tuple[Requirement, ...]]]


# ------------------------------------------------------------------ strict JSON


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PolicyFormatError(f"{where} must be a JSON object, not {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _fields(value: Any, allowed: Iterable[str], where: str) -> dict[str, Any]:
    obj = _object(value, where)
    allowed = set(allowed)
    for key in obj:
        if key not in allowed:
            raise PolicyFormatError(f"Unknown key {key!r} in {where}")
    return obj


def _string(obj: Mapping[str, Any], key: str, where: str) -> str | None:
    """A Go string field: absent → None, null → "" (Go keeps the zero value), else it must be a string."""
    if key not in obj:
        return None
    value = obj[key]
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PolicyFormatError(f"{key} in {where} must be a string, not {_kind(value)}")
    return value


def _strings(obj: Mapping[str, Any], key: str, where: str) -> tuple[str, ...] | None:
    if key not in obj or obj[key] is None:
        return None
    value = obj[key]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyFormatError(f"{key} in {where} must be an array of strings")
    return tuple(value)


def _b64(value: Any, key: str, where: str) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise PolicyFormatError(f"{key} in {where} must be a base64 string, not {_kind(value)}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise PolicyFormatError(f"{key} in {where} is not valid base64") from None


def _bytes(obj: Mapping[str, Any], key: str, where: str) -> bytes | None:
    return _b64(obj.get(key), key, where) if key in obj else None


def _byte_list(obj: Mapping[str, Any], key: str, where: str) -> tuple[bytes, ...] | None:
    if key not in obj or obj[key] is None:
        return None
    value = obj[key]
    if not isinstance(value, list):
        raise PolicyFormatError(f"{key} in {where} must be an array of base64 strings")
    out = []
    for item in value:
        data = _b64(item, key, where)
        out.append(data if data is not None else b"")
    return tuple(out)


# ------------------------------------------------------------------ parsing


def parse_policy(data: bytes) -> Policy:
    """Parse a containers-policy.json document; PolicyFormatError (exit 2) names the first problem."""
    try:
        # Transports and their scopes are Go maps: scopes differing only in case are two scopes.
        document = gojson.read(data, "the policy", maps=gojson.GO_MAPS | {"transports"})
    except MalformedJSONError as exc:
        raise PolicyFormatError(str(exc)) from None
    top = _fields(document, ("default", "transports"), "the policy")
    if top.get("default") is None:
        raise PolicyFormatError("Default policy is missing")
    default = _requirements(top["default"], "default")
    transports: dict[str, dict[str, tuple[Requirement, ...]]] = {}
    raw_transports = top.get("transports")
    if raw_transports is not None:
        for transport, scopes in _object(raw_transports, "transports").items():
            where = f"transports.{transport}"
            parsed: dict[str, tuple[Requirement, ...]] = {}
            if scopes is not None:
                for scope, requirements in _object(scopes, where).items():
                    if scope:
                        problem = scope_problem(transport, scope)
                        if problem:
                            raise PolicyFormatError(f"invalid {transport} scope {scope!r}: {problem}")
                    parsed[scope] = _requirements(requirements, f"{where}[{scope!r}]")
            transports[transport] = parsed
    return Policy(default=default, transports=transports)


def _go_clean(path: str) -> str:
    cleaned = posixpath.normpath(path)
    return "/" + cleaned.lstrip("/") if cleaned.startswith("//") else cleaned


def scope_problem(transport: str, scope: str) -> str | None:
    """Why `transport` would refuse `scope` (ValidatePolicyConfigurationScope), or None."""
    if transport in ("oci", "dir", "oci-archive", "docker-archive", "tarball", "sif"):
        path = scope.partition(":")[0] if transport in ("oci-archive", "docker-archive") else scope
        if not path.startswith("/"):
            return "must be an absolute path"
        if path == "/":
            return 'use the generic default scope "" instead of "/"'
        if _go_clean(path) != path:
            return f"uses a non-canonical path, perhaps {_go_clean(path)}"
    elif transport == "docker-daemon":
        return 'docker-daemon supports no scopes except the default ""'
    elif transport == "atomic":
        if not _ATOMIC_SCOPE.fullmatch(scope):
            return "not a valid atomic scope"
    return None


def _requirements(value: Any, where: str) -> tuple[Requirement, ...]:
    if not isinstance(value, list):
        raise PolicyFormatError(f"{where} must be a list of requirements, not {_kind(value)}")
    if not value:
        raise PolicyFormatError(f"{where}: List of verification policy requirements must not be empty")
    return tuple(_requirement(item, f"{where}[{i}]") for i, item in enumerate(value))


def _requirement(value: Any, where: str) -> Requirement:
    obj = _object(value, where)
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise PolicyFormatError(f'{where} has no string "type"')
    if kind in ("insecureAcceptAnything", "reject"):
        _fields(obj, ("type",), f"{where} ({kind})")
        return Requirement(type=kind)
    if kind == "signedBy":
        return _signed_by(obj, f"{where} (signedBy)")
    if kind == "signedBaseLayer":
        _fields(obj, ("type", "baseLayerIdentity"), f"{where} (signedBaseLayer)")
        if obj.get("baseLayerIdentity") is None:
            raise PolicyFormatError(f"{where}: baseLayerIdentity not specified")
        return Requirement(
            type=kind, identity=_identity(obj["baseLayerIdentity"], f"{where}.baseLayerIdentity")
        )
    if kind == "sigstoreSigned":
        return _sigstore_signed(obj, f"{where} (sigstoreSigned)")
    raise PolicyFormatError(f"Unknown policy requirement type {kind!r} in {where}")


def _identity_or_default(obj: Mapping[str, Any], where: str) -> IdentityRule:
    raw = obj.get("signedIdentity")
    return IdentityRule() if raw is None else _identity(raw, f"{where}.signedIdentity")


def _signed_by(obj: dict[str, Any], where: str) -> Requirement:
    allowed = ("type", "keyType", "keyPath", "keyPaths", "keyData", "signedIdentity")
    _fields(obj, allowed, where)
    key_type = _string(obj, "keyType", where) or ""
    if key_type not in KEY_TYPES:
        raise PolicyFormatError(f"invalid keyType {key_type!r} in {where}")
    identity = _identity_or_default(obj, where)
    given = [k for k in ("keyPath", "keyPaths", "keyData") if k in obj]
    if not given:
        raise PolicyFormatError(
            f"{where}: exactly one of keyPath, keyPaths and keyData must be specified, none given"
        )
    if len(given) > 1:
        raise PolicyFormatError(
            f"{where}: exactly one of keyPath, keyPaths and keyData must be specified, got {', '.join(given)}"
        )
    key_path = _string(obj, "keyPath", where)
    key_paths = _strings(obj, "keyPaths", where)
    key_data = _bytes(obj, "keyData", where)
    if not key_path and key_paths is None and key_data is None:
        raise PolicyFormatError(f"{where}: exactly one of keyPath, keyPaths and keyData must be specified")
    return Requirement(
        type="signedBy",
        key_type=key_type,
        key_path=key_path or None,
        key_paths=key_paths,
        key_data=key_data,
        identity=identity,
    )


def _sigstore_signed(obj: dict[str, Any], where: str) -> Requirement:
    allowed = (
        "type",
        "keyPath",
        "keyPaths",
        "keyData",
        "keyDatas",
        "fulcio",
        "pki",
        "rekorPublicKeyPath",
        "rekorPublicKeyPaths",
        "rekorPublicKeyData",
        "rekorPublicKeyDatas",
        "signedIdentity",
    )
    _fields(obj, allowed, where)
    identity = _identity_or_default(obj, where)
    key_path, key_paths, key_data, key_datas = _key_sources(obj, "key", where)
    fulcio = _fulcio(obj["fulcio"], f"{where}.fulcio") if obj.get("fulcio") is not None else None
    pki = _pki(obj["pki"], f"{where}.pki") if obj.get("pki") is not None else None
    sources = sum(x is not None for x in (key_path, key_paths, key_data, key_datas, fulcio, pki))
    if sources != 1:
        raise PolicyFormatError(
            f"{where}: exactly one of keyPath, keyPaths, keyData, keyDatas, fulcio, and pki must be specified"
        )
    rekor_path, rekor_paths, rekor_data, rekor_datas = _key_sources(obj, "rekorPublicKey", where)
    rekor_sources = sum(x is not None for x in (rekor_path, rekor_paths, rekor_data, rekor_datas))
    if rekor_sources > 1:
        raise PolicyFormatError(
            f"{where}: at most one of rekorPublicKeyPath, rekorPublicKeyPaths, rekorPublicKeyData and "
            "rekorPublicKeyDatas can be used simultaneously"
        )
    if fulcio is not None and rekor_sources == 0:
        raise PolicyFormatError(f"{where}: a Rekor public key must be specified if fulcio is used")
    if pki is not None and rekor_sources:
        raise PolicyFormatError(f"{where}: a Rekor public key cannot be used with pki")
    return Requirement(
        type="sigstoreSigned",
        key_path=key_path,
        key_paths=key_paths,
        key_data=key_data,
        key_datas=key_datas,
        fulcio=fulcio,
        pki=pki,
        rekor_key_path=rekor_path,
        rekor_key_paths=rekor_paths,
        rekor_key_data=rekor_data,
        rekor_key_datas=rekor_datas,
        identity=identity,
    )


def _key_sources(
    obj: Mapping[str, Any], prefix: str, where: str
) -> tuple[str | None, tuple[str, ...] | None, bytes | None, tuple[bytes, ...] | None]:
    """`{prefix}Path`, `{prefix}Paths`, `{prefix}Data`, `{prefix}Datas`; the lists, when given, not empty."""
    path = _string(obj, f"{prefix}Path", where) or None
    paths = _strings(obj, f"{prefix}Paths", where)
    data = _bytes(obj, f"{prefix}Data", where)
    datas = _byte_list(obj, f"{prefix}Datas", where)
    for name, many in ((f"{prefix}Paths", paths), (f"{prefix}Datas", datas)):
        if many is not None and not many:
            raise PolicyFormatError(f"{where}: {name!r} contains no entries")
    return path, paths, data, datas


def _fulcio(value: Any, where: str) -> Fulcio:
    obj = _fields(value, ("caPath", "caData", "oidcIssuer", "subjectEmail"), where)
    ca_path = _string(obj, "caPath", where) or None
    ca_data = _bytes(obj, "caData", where)
    if ca_path and ca_data is not None:
        raise PolicyFormatError(f"{where}: caPath and caData cannot be used simultaneously")
    if not ca_path and ca_data is None:
        raise PolicyFormatError(f"{where}: At least one of caPath and caData must be specified")
    issuer = _string(obj, "oidcIssuer", where)
    email = _string(obj, "subjectEmail", where)
    if not issuer:
        raise PolicyFormatError(f"{where}: oidcIssuer not specified")
    if not email:
        raise PolicyFormatError(f"{where}: subjectEmail not specified")
    return Fulcio(ca_path, ca_data, issuer, email)


def _pki(value: Any, where: str) -> PKI:
    allowed = (
        "caRootsPath",
        "caRootsData",
        "caIntermediatesPath",
        "caIntermediatesData",
        "subjectEmail",
        "subjectHostname",
    )
    obj = _fields(value, allowed, where)
    roots_path = _string(obj, "caRootsPath", where) or None
    roots_data = _bytes(obj, "caRootsData", where)
    inter_path = _string(obj, "caIntermediatesPath", where) or None
    inter_data = _bytes(obj, "caIntermediatesData", where)
    if roots_path and roots_data is not None:
        raise PolicyFormatError(f"{where}: caRootsPath and caRootsData cannot be used simultaneously")
    if not roots_path and roots_data is None:
        raise PolicyFormatError(f"{where}: caRootsPath or caRootsData must be specified")
    if inter_path and inter_data is not None:
        raise PolicyFormatError(
            f"{where}: caIntermediatesPath and caIntermediatesData cannot be used simultaneously"
        )
    email = _string(obj, "subjectEmail", where) or None
    hostname = _string(obj, "subjectHostname", where) or None
    if email is None and hostname is None:
        raise PolicyFormatError(
            f"{where}: at least one of subjectEmail and subjectHostname must be specified"
        )
    return PKI(roots_path, roots_data, inter_path, inter_data, email, hostname)


def _identity(value: Any, where: str) -> IdentityRule:
    obj = _object(value, where)
    kind = obj.get("type")
    if not isinstance(kind, str) or kind not in IDENTITY_TYPES:
        raise PolicyFormatError(f"Unknown policy reference match type {kind!r} in {where}")
    if kind in ("matchExact", "matchRepoDigestOrExact", "matchRepository"):
        _fields(obj, ("type",), f"{where} ({kind})")
        return IdentityRule(kind)
    if kind == "exactReference":
        _fields(obj, ("type", "dockerReference"), f"{where} ({kind})")
        ref = _string(obj, "dockerReference", where) or ""
        parsed = parse_docker_name(ref)
        if parsed is None:
            raise PolicyFormatError(f"Invalid format of dockerReference {ref!r} in {where}")
        if parsed.name_only:
            raise PolicyFormatError(f"dockerReference {ref!r} contains neither a tag nor digest ({where})")
        return IdentityRule(kind, docker_reference=ref)
    if kind == "exactRepository":
        _fields(obj, ("type", "dockerRepository"), f"{where} ({kind})")
        repo = _string(obj, "dockerRepository", where) or ""
        if parse_docker_name(repo) is None:
            raise PolicyFormatError(f"Invalid format of dockerRepository {repo!r} in {where}")
        return IdentityRule(kind, docker_repository=repo)
    _fields(obj, ("type", "prefix", "signedPrefix"), f"{where} ({kind})")
    prefix = _string(obj, "prefix", where) or ""
    signed_prefix = _string(obj, "signedPrefix", where) or ""
    for name, text in (("prefix", prefix), ("signedPrefix", signed_prefix)):
        if not _valid_remap_prefix(text):
            raise PolicyFormatError(f"{name} {text!r} is not valid in {where}")
    return IdentityRule(kind, prefix=prefix, signed_prefix=signed_prefix)


# ------------------------------------------------------------------ the image and its scope


@dataclass(frozen=True)
class Subject:
    """The image being judged, as c/image's ImageReference presents it to the policy."""

    transport: str  # "docker" or "oci"
    identity: str  # PolicyConfigurationIdentity: the most specific scope
    namespaces: tuple[str, ...]  # PolicyConfigurationNamespaces, most specific first
    digest: str  # the manifest digest signatures must name
    docker: DockerName | None  # DockerReference(): what signedIdentity compares against; None for layouts
    sigstore_attachments: bool = True  # registries.d use-sigstore-attachments: are cosign .sig layers read
    display: str = ""


def docker_subject(
    registry: str,
    repository: str,
    *,
    tag: str | None,
    digest: str | None,
    manifest_digest: str,
    sigstore_attachments: bool,
) -> Subject:
    """The subject for `docker://registry/repository[:tag|@digest]`."""
    if tag is not None and digest is not None:
        raise UsageError("containers/image cannot evaluate a reference with both a tag and a digest; use one")
    registry = "docker.io" if registry == "index.docker.io" else registry
    name = f"{registry}/{repository}"
    if tag is None and digest is None:
        tag = "latest"
    docker = DockerName(name, tag, digest)
    namespaces: list[str] = []
    current = name
    while True:
        namespaces.append(current)
        parent, slash, _ = current.rpartition("/")
        if not slash:
            break
        current = parent
    host = current.partition(":")[0]
    while "." in host:
        host = host.partition(".")[2]
        namespaces.append(f"*.{host}")
    return Subject(
        transport="docker",
        identity=str(docker),
        namespaces=tuple(namespaces),
        digest=manifest_digest,
        docker=docker,
        sigstore_attachments=sigstore_attachments,
        display=str(docker),
    )


def layout_subject(resolved_dir: str, manifest_digest: str, display: str = "") -> Subject:
    """The subject for `oci:DIR[:…]`; `resolved_dir` is absolute with symlinks resolved (the caller's job)."""
    namespaces: list[str] = []
    path = resolved_dir
    while "/" in path and path != "/":
        namespaces.append(path)
        path = path[: path.rfind("/")]
    return Subject(
        transport="oci",
        identity=resolved_dir,
        namespaces=tuple(namespaces),
        digest=manifest_digest,
        docker=None,
        display=display or f"oci:{resolved_dir}",
    )


@dataclass(frozen=True)
class Selection:
    """The requirements that apply to one image and where in the policy they came from."""

    transport: str | None  # None: `default`
    scope: str | None
    requirements: tuple[Requirement, ...]

    @property
    def source(self) -> str:
        if self.transport is None:
            return "default"
        return f"transports.{self.transport}[{json.dumps(self.scope)}]"

    def paths(self) -> list[str]:
        found: list[str] = []
        for requirement in self.requirements:
            for path in requirement.paths():
                if path not in found:
                    found.append(path)
        return found

    def needs_signatures(self) -> bool:
        return any(r.type in ("signedBy", "sigstoreSigned") for r in self.requirements)


def select(policy: Policy, subject: Subject) -> Selection:
    """requirementsForImageRef: exact scope, then namespaces, then the transport's "", then `default`."""
    scopes = policy.transports.get(subject.transport)
    if scopes is not None:
        for candidate in (subject.identity, *subject.namespaces):
            if candidate in scopes:
                return Selection(subject.transport, candidate, scopes[candidate])
        if "" in scopes:
            return Selection(subject.transport, "", scopes[""])
    return Selection(None, None, policy.default)


# ------------------------------------------------------------------ identity rules


def _match_repo_digest_or_exact(intended: DockerName, signature: DockerName) -> bool:
    if signature.name_only:
        return False
    if intended.tag is not None:
        return str(signature) == str(intended)
    if intended.digest is not None:
        # The digest itself is compared with the manifest separately (payload-digest).
        return signature.name == intended.name
    return False


def identity_matches(rule: IdentityRule, subject: Subject, claimed: str) -> tuple[bool, str]:
    """Whether a signature claiming `claimed` satisfies `rule` for `subject`; with a reason when not."""
    signature = parse_docker_name(claimed)
    if rule.type == "exactReference":
        intended = parse_docker_name(rule.docker_reference or "")
        if intended is None or signature is None or intended.name_only or signature.name_only:
            return False, f"signature for identity {claimed!r} is not exactly {rule.docker_reference}"
        ok = str(signature) == str(intended)
        return ok, "" if ok else f"signature for identity {claimed!r} is not {rule.docker_reference}"
    if rule.type == "exactRepository":
        intended = parse_docker_name(rule.docker_repository or "")
        ok = intended is not None and signature is not None and signature.name == intended.name
        return (
            ok,
            "" if ok else f"signature for identity {claimed!r} is not in repository {rule.docker_repository}",
        )
    intended = subject.docker
    if intended is None:
        return False, (
            f"{rule.type} needs the image's docker reference, and {subject.display} has none "
            "(use exactReference or exactRepository)"
        )
    if signature is None:
        return False, f"signature identity {claimed!r} is not a valid docker reference"
    rejected = f"signature for identity {claimed!r} is not accepted ({rule.type} for {intended})"
    if rule.type == "matchExact":
        ok = not intended.name_only and not signature.name_only and str(signature) == str(intended)
    elif rule.type == "matchRepoDigestOrExact":
        ok = _match_repo_digest_or_exact(intended, signature)
    elif rule.type == "matchRepository":
        ok = signature.name == intended.name
    elif rule.type == "remapIdentity":
        remapped: DockerName | None = intended
        prefix, signed_prefix = rule.prefix or "", rule.signed_prefix or ""
        name = intended.name
        if name == prefix or (
            name.startswith(prefix) and len(name) > len(prefix) and name[len(prefix)] == "/"
        ):
            remapped = _parse_named_strict(str(intended).replace(prefix, signed_prefix, 1))
        ok = remapped is not None and _match_repo_digest_or_exact(remapped, signature)
        if remapped is not None and remapped != intended:
            rejected = (
                f"signature for identity {claimed!r} is not accepted (remapped {intended} → {remapped})"
            )
    else:  # parse_policy admits nothing else
        ok = False
    return ok, "" if ok else rejected


# ------------------------------------------------------------------ results


@dataclass
class SignatureResult:
    location: str
    format: str
    accepted: bool
    reason: str
    checks: list[Check] = field(default_factory=list)
    signer: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "location": self.location,
            "format": self.format,
            "accepted": self.accepted,
            "checks": [c.to_json() for c in self.checks],
        }
        if self.signer:
            out["signer"] = self.signer
        if not self.accepted:
            out["reason"] = self.reason
        return out


@dataclass
class RequirementResult:
    index: int
    requirement: Requirement
    accepted: bool
    reason: str
    signatures: list[SignatureResult] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "type": self.requirement.type,
            "requirement": self.requirement.to_json(),
            "accepted": self.accepted,
            "reason": self.reason,
            "signatures": [s.to_json() for s in self.signatures],
        }


@dataclass
class PolicyVerdict:
    subject: Subject
    selection: Selection
    results: list[RequirementResult]

    @property
    def accepted(self) -> bool:
        return bool(self.results) and all(r.accepted for r in self.results)

    @property
    def deciding(self) -> RequirementResult | None:
        """The requirement that rejected the image (the first, as c/image stops there), else None."""
        return next((r for r in self.results if not r.accepted), None)

    @property
    def reason(self) -> str:
        failed = self.deciding
        if failed is None:
            return f"accepted by {self.selection.source}: all {len(self.results)} requirement(s) satisfied"
        return (
            f"rejected by {self.selection.source}, requirement {failed.index + 1} "
            f"({failed.requirement.type}): {failed.reason}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "image": self.subject.display,
            "digest": self.subject.digest,
            "transport": self.subject.transport,
            "identity": self.subject.identity,
            "scope": {
                "transport": self.selection.transport,
                "scope": self.selection.scope,
                "source": self.selection.source,
            },
            "accepted": self.accepted,
            "reason": self.reason,
            "requirements": [r.to_json() for r in self.results],
        }


# ------------------------------------------------------------------ evaluation

Files = Mapping[str, "bytes | str"]  # path → contents, or why it could not be read


class _Unavailable(Exception):
    """Trust material named by the policy cannot be used; every signature is rejected with this reason."""


def _file(files: Files, path: str, what: str) -> bytes:
    content = files.get(path)
    if content is None:
        raise _Unavailable(f"{what} {path} was not read")
    if isinstance(content, str):
        raise _Unavailable(f"cannot read {what} {path}: {content}")
    return content


def _fetch_failure(sig: Signature) -> bool:
    """A record standing for signatures that could not be fetched at all (c/image fails the whole lookup)."""
    if not sig.error or sig.evidence:
        return False
    if sig.format is SignatureFormat.SIMPLE_SIGNING:
        return "/signature-" not in sig.location
    return True


def evaluate(
    selection: Selection,
    subject: Subject,
    signatures: Sequence[Signature],
    files: Files,
    now: datetime,
) -> PolicyVerdict:
    """Judge `subject` under the requirements `select` chose; every requirement is reported."""
    now = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    results = []
    for index, requirement in enumerate(selection.requirements):
        if requirement.type == "insecureAcceptAnything":
            result = RequirementResult(index, requirement, True, "insecureAcceptAnything accepts any image")
        elif requirement.type == "reject":
            result = RequirementResult(
                index, requirement, False, f"running image {subject.display} is rejected by policy"
            )
        elif requirement.type == "signedBaseLayer":
            result = RequirementResult(
                index, requirement, False, "signedBaseLayer is not implemented (nor in containers/image)"
            )
        elif requirement.type == "signedBy":
            result = _evaluate_signed_by(index, requirement, subject, signatures, files, now)
        elif requirement.type == "sigstoreSigned":
            result = _evaluate_sigstore(index, requirement, subject, signatures, files, now)
        else:  # parse_policy admits nothing else
            result = RequirementResult(
                index, requirement, False, f"unknown requirement type {requirement.type}"
            )
        results.append(result)
    return PolicyVerdict(subject, selection, results)


def _summarise(
    index: int,
    requirement: Requirement,
    judged: list[SignatureResult],
    failures: list[Signature],
    ignored: str,
) -> RequirementResult:
    if failures:
        reasons = "; ".join(f"{s.location}: {s.error}" for s in failures)
        return RequirementResult(
            index, requirement, False, f"signatures could not be read ({reasons})", judged
        )
    accepted = next((j for j in judged if j.accepted), None)
    if accepted is not None:
        by = f" by {accepted.signer}" if accepted.signer else ""
        return RequirementResult(index, requirement, True, f"{accepted.location} accepted{by}", judged)
    if not judged:
        return RequirementResult(
            index, requirement, False, f"a signature was required, but no signature exists{ignored}", judged
        )
    if len(judged) == 1:
        return RequirementResult(index, requirement, False, judged[0].reason, judged)
    reasons = "; ".join(f"{j.location}: {j.reason}" for j in judged)
    return RequirementResult(
        index, requirement, False, f"none of the signatures were accepted: {reasons}", judged
    )


def _reason_from(checks: list[Check]) -> str:
    failed = next((c for c in checks if c.outcome is not Outcome.PASSED), None)
    return failed.detail if failed is not None else ""


# -- signedBy


def _keyring(requirement: Requirement, files: Files) -> pgp.Keyring:
    blobs: list[bytes] = []
    if requirement.key_path:
        blobs.append(_file(files, requirement.key_path, "keyPath"))
    for path in requirement.key_paths or ():
        blobs.append(_file(files, path, "keyPaths entry"))
    if requirement.key_data is not None:
        blobs.append(requirement.key_data)
    if not blobs:
        raise _Unavailable("no public keys imported")
    try:
        return pgp.load_keyrings(blobs)
    except pgp.KeyringError as exc:
        raise _Unavailable(f"no usable GPG public key in the policy's keys: {exc.message}") from None


def _evaluate_signed_by(
    index: int,
    requirement: Requirement,
    subject: Subject,
    signatures: Sequence[Signature],
    files: Files,
    now: datetime,
) -> RequirementResult:
    simple = [s for s in signatures if s.format is SignatureFormat.SIMPLE_SIGNING]
    failures = [s for s in simple if _fetch_failure(s)]
    candidates = [s for s in simple if not _fetch_failure(s)]
    others = sum(1 for s in signatures if s.format is SignatureFormat.COSIGN)
    ignored = f" ({others} sigstore signature(s) are not GPG signatures)" if others else ""
    problem: str | None = None
    keyring: pgp.Keyring | None = None
    if requirement.key_type != "GPGKeys":
        problem = f"keyType {requirement.key_type} is not implemented (nor in containers/image)"
    else:
        try:
            keyring = _keyring(requirement, files)
        except _Unavailable as exc:
            problem = str(exc)
    judged = []
    for sig in candidates:
        if problem is not None or keyring is None:
            judged.append(SignatureResult(sig.location, str(sig.format), False, problem or "no keys"))
            continue
        judged.append(_judge_simple(sig, keyring, requirement.identity or IdentityRule(), subject, now))
    return _summarise(index, requirement, judged, failures, ignored)


def _judge_simple(
    sig: Signature, keyring: pgp.Keyring, rule: IdentityRule, subject: Subject, now: datetime
) -> SignatureResult:
    result = SignatureResult(sig.location, str(sig.format), False, "")
    if sig.evidence.get("openpgp") is None or sig.evidence.get("payload") is None:
        result.reason = sig.error or "not an OpenPGP signed message"
        result.checks.append(Check.failed("signature", result.reason))
        return result
    record = copy.deepcopy(sig)
    record.checks = [c for c in record.checks if c.name not in ("signature", "trusted-key")]
    record.checks.append(Check.skipped("signature", "not verified yet"))
    pgp.verify_signature(record, keyring, now)
    by_name = {c.name: c for c in record.checks}
    if record.signer is not None and record.signer.pgp is not None:
        pgp_signer = record.signer.pgp
        result.signer = (
            f"{pgp_signer.user_ids[0]} {pgp_signer.fingerprint}"
            if pgp_signer.user_ids
            else pgp_signer.fingerprint
        ) or pgp_signer.key_id
    for name in ("envelope", "signature", "trusted-key"):
        check = by_name.get(name)
        if check is None:
            check = Check.failed(name, f"no {name} check was made")
        elif check.outcome is Outcome.SKIPPED:
            check = Check.failed(name, check.detail)
        result.checks.append(check)
    if record.error:
        result.checks.append(Check.failed("signature", record.error))
    # Anything else the parser or the keyring check found wrong (an expired signature, say) also rejects.
    result.checks.extend(
        c
        for c in record.checks
        if c.outcome is Outcome.FAILED and c.name not in ("envelope", "signature", "trusted-key")
    )
    if any(c.outcome is not Outcome.PASSED for c in result.checks):
        result.reason = _reason_from(result.checks)
        return result
    # Only now, with the signature authenticated, is the JSON read (FORMATS §4.2).
    try:
        payload = ss.parse_payload(sig.evidence["payload"])
    except ss.SimpleSigningError as exc:
        result.checks.append(Check.failed("payload", f"invalid signature payload: {exc}"))
        result.reason = result.checks[-1].detail
        return result
    result.checks.append(Check.passed("payload", ss.PAYLOAD_TYPE))
    digest = payload["critical"]["image"]["docker-manifest-digest"]
    claimed = payload["critical"]["identity"]["docker-reference"]
    _finish(result, digest, claimed, rule, subject)
    return result


def _finish(result: SignatureResult, digest: str, claimed: str, rule: IdentityRule, subject: Subject) -> None:
    if digest != subject.digest:
        result.checks.append(
            Check.failed("payload-digest", f"signature for digest {digest} does not match {subject.digest}")
        )
        result.reason = result.checks[-1].detail
        return
    result.checks.append(Check.passed("payload-digest", f"payload names {digest}"))
    ok, why = identity_matches(rule, subject, claimed)
    if not ok:
        result.checks.append(Check.failed("signed-identity", why))
        result.reason = why
        return
    result.checks.append(Check.passed("signed-identity", f"{claimed} satisfies {rule.describe()}"))
    result.accepted = True


# -- sigstoreSigned


def _public_keys(requirement: Requirement, files: Files) -> list[PublicKeyTypes]:
    pems: list[tuple[str, bytes]] = []
    if requirement.key_path:
        pems.append((f"keyPath {requirement.key_path}", _file(files, requirement.key_path, "keyPath")))
    for path in requirement.key_paths or ():
        pems.append((f"keyPaths entry {path}", _file(files, path, "keyPaths entry")))
    if requirement.key_data is not None:
        pems.append(("keyData", requirement.key_data))
    for n, data in enumerate(requirement.key_datas or ()):
        pems.append((f"keyDatas[{n}]", data))
    keys = []
    for what, pem in pems:
        try:
            keys.append(serialization.load_pem_public_key(pem))
        except (ValueError, TypeError) as exc:
            raise _Unavailable(f"parsing public key ({what}): {exc}") from None
    return keys


def _rekor_keys(requirement: Requirement, files: Files) -> list[ec.EllipticCurvePublicKey]:
    pems: list[tuple[str, bytes]] = []
    if requirement.rekor_key_path:
        pems.append(
            (requirement.rekor_key_path, _file(files, requirement.rekor_key_path, "rekorPublicKeyPath"))
        )
    for path in requirement.rekor_key_paths or ():
        pems.append((path, _file(files, path, "rekorPublicKeyPaths entry")))
    if requirement.rekor_key_data is not None:
        pems.append(("rekorPublicKeyData", requirement.rekor_key_data))
    for n, data in enumerate(requirement.rekor_key_datas or ()):
        pems.append((f"rekorPublicKeyDatas[{n}]", data))
    keys = []
    for what, pem in pems:
        try:
            key = serialization.load_pem_public_key(pem)
        except (ValueError, TypeError) as exc:
            raise _Unavailable(f"parsing Rekor public key {what}: {exc}") from None
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise _Unavailable(f"Rekor public key {what} is not using ECDSA")
        keys.append(key)
    return keys


def _fulcio_roots(fulcio: Fulcio, files: Files) -> list[x509.Certificate]:
    data = fulcio.ca_data if fulcio.ca_data is not None else _file(files, fulcio.ca_path or "", "caPath")
    try:
        roots = certs.load_pem_chain(data)
    except certs.CertificateError as exc:
        raise _Unavailable(f"error loading Fulcio CA certificates: {exc}") from None
    if not roots:
        raise _Unavailable("error loading Fulcio CA certificates: none found")
    return roots


def _strict_cosign_payload(data: bytes) -> tuple[str, str]:
    """(digest, docker-reference) of a sigstore payload, parsed as strictly as c/image does."""
    # The one reading every path shares (formats/payload); the exact key sets below are c/image's own.
    top = _exact(payload_format.read(data).document, ("critical", "optional"), "payload")
    optional = top["optional"]
    if optional is not None:
        if not isinstance(optional, dict):
            raise ValueError("optional is neither null nor an object")
        if (
            "creator" in optional
            and optional["creator"] is not None
            and not isinstance(optional["creator"], str)
        ):
            raise ValueError("optional.creator is not a string")
        stamp = optional.get("timestamp")
        if stamp is not None and (
            isinstance(stamp, bool) or not isinstance(stamp, int | float) or stamp != int(stamp)
        ):
            raise ValueError("optional.timestamp is not an integer")
    critical = _exact(top["critical"], ("type", "image", "identity"), "critical")
    if critical["type"] != COSIGN_PAYLOAD_TYPE:
        raise ValueError(f"unrecognized signature type {critical['type']!r}")
    image = _exact(critical["image"], ("docker-manifest-digest",), "critical.image")
    identity = _exact(critical["identity"], ("docker-reference",), "critical.identity")
    digest, reference = image["docker-manifest-digest"], identity["docker-reference"]
    if not isinstance(digest, str) or ss.payload_digest_problem(digest):
        raise ValueError(f"invalid docker-manifest-digest {digest!r}")
    if not isinstance(reference, str) or ss.reference_problem(reference):
        raise ValueError(f"invalid docker-reference {reference!r}")
    return digest, reference


def _exact(value: Any, keys: tuple[str, ...], where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{where} is not a JSON object")
    if set(value) != set(keys):
        extra = sorted(set(value) - set(keys))
        missing = sorted(set(keys) - set(value))
        raise ValueError(
            f"{where}: "
            + "; ".join([*(f"unknown key {k!r}" for k in extra), *(f"missing {k!r}" for k in missing)])
        )
    return value


def _canonical(value: Any) -> bytes:
    # RFC 8785 for the SET payload: only integers and ASCII strings occur, so sorted compact JSON is JCS.
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def verify_rekor_set(
    rekor_keys: Sequence[ec.EllipticCurvePublicKey],
    set_text: bytes,
    key_or_cert_pem: bytes,
    signature: bytes,
    payload: bytes,
) -> datetime:
    """c/image VerifyRekorSET: the SET is signed by a trusted Rekor key and its hashedrekord entry records
    exactly this signature, this key (or certificate) and this payload. Returns the integrated time."""
    try:
        document = gojson.read(set_text, "the SET")
    except ValueError as exc:
        raise ValueError(f"invalid Rekor SET: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("Payload"), dict):
        raise ValueError("invalid Rekor SET: no Payload object")
    try:
        set_signature = base64.b64decode(str(document.get("SignedEntryTimestamp", "")), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("invalid Rekor SET: SignedEntryTimestamp is not base64") from None
    body = document["Payload"]
    if set(body) != {"body", "integratedTime", "logIndex", "logID"}:
        raise ValueError(f"invalid Rekor SET payload keys {sorted(body)}")
    canonical = _canonical(body)
    if not any(certs.verify_with_key(key, set_signature, canonical) for key in rekor_keys):
        raise ValueError("cryptographic signature verification of Rekor SET failed")
    integrated = body["integratedTime"]
    if not isinstance(integrated, int) or isinstance(integrated, bool):
        raise ValueError("Rekor SET integratedTime is not an integer")
    try:
        entry = gojson.read(base64.b64decode(str(body["body"]), validate=True), "the SET body")
    except (binascii.Error, ValueError):
        raise ValueError("Rekor SET body is not base64 JSON") from None
    if (
        not isinstance(entry, dict)
        or entry.get("kind") != "hashedrekord"
        or entry.get("apiVersion") != "0.0.1"
    ):
        raise ValueError("Rekor SET body is not a hashedrekord 0.0.1 entry")
    spec: Any = entry.get("spec")
    try:
        recorded_sig = base64.b64decode(spec["signature"]["content"], validate=True)
        recorded_key = base64.b64decode(spec["signature"]["publicKey"]["content"], validate=True)
        algorithm = spec["data"]["hash"]["algorithm"]
        value = spec["data"]["hash"]["value"]
    except (KeyError, TypeError, binascii.Error, ValueError):
        raise ValueError("Rekor SET hashedrekord entry is malformed") from None
    if recorded_sig != signature:
        raise ValueError("signature in Rekor SET does not match")
    if _pem_der(recorded_key) != _pem_der(key_or_cert_pem):
        raise ValueError("public key or certificate in Rekor SET does not match")
    if algorithm != "sha256" or value != hashlib.sha256(payload).hexdigest():
        raise ValueError("payload hash in Rekor SET does not match")
    return datetime.fromtimestamp(integrated, UTC)


def _pem_der(data: bytes) -> tuple[str, bytes] | None:
    match = re.match(rb"\s*-----BEGIN ([A-Z ]+)-----\r?\n(.*?)-----END \1-----\s*$", data, re.S)
    if match is None:
        return None
    try:
        return match.group(1).decode(), base64.b64decode(b"".join(match.group(2).split()), validate=True)
    except (binascii.Error, ValueError):
        return None


def _key_pem(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _evaluate_sigstore(
    index: int,
    requirement: Requirement,
    subject: Subject,
    signatures: Sequence[Signature],
    files: Files,
    now: datetime,
) -> RequirementResult:
    cosign = [s for s in signatures if s.format is SignatureFormat.COSIGN]
    non_sigstore = sum(1 for s in signatures if s.format is SignatureFormat.SIMPLE_SIGNING)
    if not subject.sigstore_attachments:
        ignored = (
            f" ({len(cosign)} cosign signature(s) not read: use-sigstore-attachments is off in registries.d)"
            if cosign
            else ""
        )
        if non_sigstore:
            ignored += f" ({non_sigstore} non-sigstore signature(s))"
        return _summarise(index, requirement, [], [], ignored)
    failures = [s for s in cosign if _fetch_failure(s)]
    candidates = [s for s in cosign if not _fetch_failure(s)]
    attachments = [s for s in candidates if s.media_type == COSIGN_SIMPLESIGNING]
    skipped = len(candidates) - len(attachments)
    ignored = (
        f" ({non_sigstore} non-sigstore signatures, {skipped} sigstore non-signature attachments)"
        if non_sigstore or skipped
        else ""
    )
    problem: str | None = None
    keys: list[PublicKeyTypes] = []
    rekor: list[ec.EllipticCurvePublicKey] = []
    roots: list[x509.Certificate] = []
    try:
        if requirement.pki is not None:
            raise _Unavailable("pki trust roots are not implemented by sigscope")
        rekor = _rekor_keys(requirement, files)
        if requirement.fulcio is not None:
            roots = _fulcio_roots(requirement.fulcio, files)
        else:
            keys = _public_keys(requirement, files)
    except _Unavailable as exc:
        problem = str(exc)
    judged = []
    for sig in attachments:
        if problem is not None:
            judged.append(SignatureResult(sig.location, str(sig.format), False, problem))
            continue
        judged.append(_judge_sigstore(sig, requirement, keys, rekor, roots, subject, now))
    return _summarise(index, requirement, judged, failures, ignored)


def _judge_sigstore(
    sig: Signature,
    requirement: Requirement,
    keys: list[PublicKeyTypes],
    rekor: list[ec.EllipticCurvePublicKey],
    roots: list[x509.Certificate],
    subject: Subject,
    now: datetime,
) -> SignatureResult:
    result = SignatureResult(sig.location, str(sig.format), False, "")
    raw = sig.evidence.get("signature")
    payload = sig.evidence.get("payload")
    if raw is None or payload is None or sig.error:
        result.reason = sig.error or "missing dev.cosignproject.cosign/signature annotation"
        result.checks.append(Check.failed("signature", result.reason))
        return result
    candidates = keys
    if requirement.fulcio is not None:
        fulcio = requirement.fulcio
        cert_pem = sig.evidence.get("certificate")
        bundle = sig.evidence.get("bundle")
        if bundle is None:
            result.checks.append(Check.failed("rekor", "missing dev.sigstore.cosign/bundle annotation"))
        elif cert_pem is None:
            result.checks.append(
                Check.failed("certificate", "missing dev.sigstore.cosign/certificate annotation")
            )
        else:
            try:
                when = verify_rekor_set(rekor, bundle, cert_pem, raw, payload)
            except ValueError as exc:
                result.checks.append(Check.failed("rekor", str(exc)))
            else:
                result.checks.append(
                    Check.passed("rekor", f"Rekor SET verified, integrated {when.isoformat()}")
                )
                check, key = _fulcio_check(fulcio, roots, cert_pem, sig.evidence.get("chain"), when, now)
                result.checks.append(check)
                if key is not None:
                    candidates = [key]
        if any(c.outcome is Outcome.FAILED for c in result.checks):
            result.reason = _reason_from(result.checks)
            return result
    elif rekor:
        bundle = sig.evidence.get("bundle")
        verified_set = False
        problems = []
        if bundle is None:
            problems.append("missing dev.sigstore.cosign/bundle annotation")
        else:
            for key in keys:
                try:
                    verify_rekor_set(rekor, bundle, _key_pem(key), raw, payload)
                except ValueError as exc:
                    problems.append(str(exc))
                else:
                    verified_set = True
                    candidates = [key]
                    break
        if not verified_set:
            result.checks.append(
                Check.failed("rekor", problems[-1] if problems else "no key to check the SET with")
            )
            result.reason = result.checks[-1].detail
            return result
        result.checks.append(Check.passed("rekor", "Rekor SET verified"))
    match = next((k for k in candidates if certs.verify_with_key(k, raw, payload)), None)
    if match is None:
        result.checks.append(
            Check.failed(
                "signature",
                "cryptographic signature verification failed: no key of the requirement verifies it",
            )
        )
        result.reason = result.checks[-1].detail
        return result
    info = certs.public_key_info(match)
    result.signer = f"{info.key_type} key sha256:{info.sha256}"
    result.checks.append(Check.passed("signature", f"verified by {result.signer}"))
    try:
        digest, claimed = _strict_cosign_payload(payload)
    except ValueError as exc:
        result.checks.append(Check.failed("payload", f"invalid signature payload: {exc}"))
        result.reason = result.checks[-1].detail
        return result
    result.checks.append(Check.passed("payload", COSIGN_PAYLOAD_TYPE))
    _finish(result, digest, claimed, requirement.identity or IdentityRule(), subject)
    return result


def _fulcio_check(
    fulcio: Fulcio,
    roots: list[x509.Certificate],
    cert_pem: bytes,
    chain_pem: bytes | None,
    when: datetime,
    now: datetime,
) -> tuple[Check, PublicKeyTypes | None]:
    try:
        leaf_list = certs.load_pem_chain(cert_pem)
        intermediates = certs.load_pem_chain(chain_pem) if chain_pem else []
    except certs.CertificateError as exc:
        return Check.failed("certificate", f"unreadable certificate: {exc}"), None
    if len(leaf_list) != 1:
        return Check.failed("certificate", f"expected one certificate, found {len(leaf_list)}"), None
    leaf = leaf_list[0]
    chained = verify_chain(leaf, intermediates, roots, at=when, eku=(CODE_SIGNING,))
    if not chained.ok:
        return Check.failed(
            "certificate",
            f"certificate does not chain to the Fulcio CA at {when.isoformat()}: {chained.detail}",
        ), None
    info = certs.summarize(leaf, now)
    if info.oidc_issuer != fulcio.oidc_issuer:
        return Check.failed(
            "certificate",
            f"required OIDC issuer {fulcio.oidc_issuer!r}, but the certificate says {info.oidc_issuer!r}",
        ), None
    if fulcio.subject_email not in info.emails:
        return Check.failed(
            "certificate", f"required email {fulcio.subject_email!r} not found (got {list(info.emails)})"
        ), None
    key = leaf.public_key()
    return Check.passed(
        "certificate", f"Fulcio certificate for {fulcio.subject_email} from {fulcio.oidc_issuer}"
    ), key
