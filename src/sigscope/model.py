"""Plain records that flow between sources, the pure core and the faces."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sigscope.errors import IntegrityError, MalformedJSONError
from sigscope.formats import gojson
from sigscope.oci import mediatypes


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None
    os_version: str | None = None

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Platform:
        return cls(
            os=str(data.get("os", "")),
            architecture=str(data.get("architecture", "")),
            variant=data.get("variant"),
            os_version=data.get("os.version"),
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        if self.os_version:
            out["os.version"] = self.os_version
        return out


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor: what, how big, and its digest."""

    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    artifact_type: str | None = None
    platform: Platform | None = None

    @classmethod
    def from_json(cls, data: Any) -> Descriptor:
        if not isinstance(data, dict):
            raise IntegrityError("descriptor is not a JSON object")
        try:
            media_type = str(data["mediaType"])
            digest = str(data["digest"])
            size = int(data["size"])
        except (KeyError, TypeError, ValueError) as exc:
            raise IntegrityError(f"descriptor lacks a valid mediaType, digest or size: {exc}") from None
        annotations = data.get("annotations") or {}
        if not isinstance(annotations, dict):
            raise IntegrityError("descriptor annotations are not a JSON object")
        platform = data.get("platform")
        return cls(
            media_type=media_type,
            digest=digest,
            size=size,
            annotations={str(k): str(v) for k, v in annotations.items()},
            artifact_type=data.get("artifactType"),
            platform=Platform.from_json(platform) if isinstance(platform, dict) else None,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.platform:
            out["platform"] = self.platform.to_json()
        return out


@dataclass(frozen=True)
class Manifest:
    """A manifest or index exactly as fetched: the bytes are the evidence."""

    descriptor: Descriptor
    raw: bytes

    @property
    def digest(self) -> str:
        return self.descriptor.digest

    @property
    def media_type(self) -> str:
        return self.descriptor.media_type

    def json(self) -> dict[str, Any]:
        try:
            data = gojson.read(self.raw, f"manifest {self.digest}")
        except MalformedJSONError as exc:
            raise IntegrityError(str(exc)) from None
        if not isinstance(data, dict):
            raise IntegrityError(f"manifest {self.digest} is not a JSON object")
        return data

    @property
    def is_index(self) -> bool:
        return mediatypes.is_index(self.media_type)

    def children(self) -> list[Descriptor]:
        """Platform manifests of an index (empty for an image manifest)."""
        manifests = self.json().get("manifests") or []
        if not isinstance(manifests, list):
            raise IntegrityError(f"index {self.digest} has a malformed manifests list")
        return [Descriptor.from_json(m) for m in manifests]

    def layers(self) -> list[Descriptor]:
        layers = self.json().get("layers") or []
        if not isinstance(layers, list):
            raise IntegrityError(f"manifest {self.digest} has a malformed layers list")
        return [Descriptor.from_json(m) for m in layers]

    def config(self) -> Descriptor | None:
        config = self.json().get("config")
        return Descriptor.from_json(config) if config is not None else None

    def subject(self) -> Descriptor | None:
        subject = self.json().get("subject")
        return Descriptor.from_json(subject) if subject is not None else None

    def artifact_type(self) -> str | None:
        """The artifact type the referrers API would report for this manifest."""
        data = self.json()
        if data.get("artifactType"):
            return str(data["artifactType"])
        config = data.get("config")
        if isinstance(config, dict) and config.get("mediaType"):
            return str(config["mediaType"])
        return None

    def annotations(self) -> dict[str, str]:
        annotations = self.json().get("annotations") or {}
        return {str(k): str(v) for k, v in annotations.items()} if isinstance(annotations, dict) else {}

    def total_size(self) -> int:
        """Bytes of the manifest plus its config and layers (what a pull would move)."""
        total = len(self.raw)
        config = self.config()
        if config is not None:
            total += config.size
        return total + sum(layer.size for layer in self.layers())


# ---------------------------------------------------------------- evidence


class Status(StrEnum):
    """What a scan or a verification can honestly say about one signature."""

    UNVERIFIED = "unverified"  # found; nothing about it could be checked without trust material
    INTEGRITY_OK = "integrity-ok"  # self-consistent: signature holds, names this digest, chain links
    INVALID = "invalid"  # a check failed: tampered, wrong digest, broken chain, malformed
    VERIFIED = "verified"  # checked against trust material the user supplied, and it held
    UNTRUSTED = "untrusted"  # self-consistent, but not trusted by the supplied material
    # Verdicts only (verify, never a scan, which has no policy): trusted by the supplied material, but a
    # policy check refused it (payload digest, reference, annotations), so it does not count.
    REJECTED = "rejected"


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Check:
    """One named check; a verdict is the conjunction of these, never a bare boolean."""

    name: str
    outcome: Outcome
    detail: str = ""

    @classmethod
    def passed(cls, name: str, detail: str = "") -> Check:
        return cls(name, Outcome.PASSED, detail)

    @classmethod
    def failed(cls, name: str, detail: str) -> Check:
        return cls(name, Outcome.FAILED, detail)

    @classmethod
    def skipped(cls, name: str, detail: str) -> Check:
        return cls(name, Outcome.SKIPPED, detail)

    def to_json(self) -> dict[str, str]:
        out = {"name": self.name, "outcome": str(self.outcome)}
        if self.detail:
            out["detail"] = self.detail
        return out


@dataclass(frozen=True)
class CertificateInfo:
    """What a report needs to know about one X.509 certificate."""

    subject: str  # RFC 4514, "" for Fulcio leaves
    issuer: str
    serial: str  # hex
    sha256: str  # lowercase hex thumbprint of the DER
    not_before: datetime
    not_after: datetime
    key_type: str  # "ECDSA", "RSA", "Ed25519", ...
    key_size: int
    curve: str | None
    self_signed: bool
    is_ca: bool
    expired: bool  # relative to the clock the caller passed
    not_yet_valid: bool
    emails: tuple[str, ...] = ()
    uris: tuple[str, ...] = ()
    dns_names: tuple[str, ...] = ()
    other_names: tuple[str, ...] = ()
    eku: tuple[str, ...] = ()
    oidc_issuer: str | None = None
    fulcio: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def display_name(self) -> str:
        """The name a person recognises: the subject DN, else the SAN (keyless leaves have no DN)."""
        if self.subject:
            return self.subject
        for names in (self.emails, self.uris, self.other_names, self.dns_names):
            if names:
                return names[0]
        return f"sha256:{self.sha256}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "subject": self.subject,
            "issuer": self.issuer,
            "serial": self.serial,
            "sha256": self.sha256,
            "notBefore": self.not_before.isoformat(),
            "notAfter": self.not_after.isoformat(),
            "keyType": self.key_type,
            "keySize": self.key_size,
            "selfSigned": self.self_signed,
            "isCA": self.is_ca,
            "expired": self.expired,
        }
        if self.curve:
            out["curve"] = self.curve
        if self.not_yet_valid:
            out["notYetValid"] = True
        for key, values in (
            ("emails", self.emails),
            ("uris", self.uris),
            ("dnsNames", self.dns_names),
            ("otherNames", self.other_names),
            ("eku", self.eku),
        ):
            if values:
                out[key] = list(values)
        if self.oidc_issuer:
            out["oidcIssuer"] = self.oidc_issuer
        if self.fulcio:
            out["fulcio"] = dict(self.fulcio)
        return out


@dataclass(frozen=True)
class PublicKeyInfo:
    """A bare public key (cosign --key signatures): identified by its fingerprint, never 'Unknown KeyPair'."""

    key_type: str
    key_size: int
    sha256: str  # lowercase hex of SHA-256 over the DER SubjectPublicKeyInfo
    curve: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"keyType": self.key_type, "keySize": self.key_size, "sha256": self.sha256}
        if self.curve:
            out["curve"] = self.curve
        return out


@dataclass(frozen=True)
class PGPSigner:
    key_id: str  # 16 hex, uppercase as gpg prints it
    fingerprint: str | None = None  # known only when the key is at hand
    user_ids: tuple[str, ...] = ()
    algorithm: str | None = None
    created: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"keyId": self.key_id}
        if self.fingerprint:
            out["fingerprint"] = self.fingerprint
        if self.user_ids:
            out["userIds"] = list(self.user_ids)
        if self.algorithm:
            out["algorithm"] = self.algorithm
        if self.created:
            out["created"] = self.created.isoformat()
        return out


@dataclass(frozen=True)
class SignerIdentity:
    """Who claims to have signed: a certificate (with its chain), a bare key, or an OpenPGP key."""

    certificate: CertificateInfo | None = None
    chain: tuple[CertificateInfo, ...] = ()  # the certificates after the leaf, as carried by the signature
    public_key: PublicKeyInfo | None = None
    pgp: PGPSigner | None = None

    @property
    def display_name(self) -> str:
        if self.certificate is not None:
            return self.certificate.display_name
        if self.pgp is not None:
            return self.pgp.user_ids[0] if self.pgp.user_ids else f"OpenPGP key {self.pgp.key_id}"
        if self.public_key is not None:
            return f"{self.public_key.key_type} key sha256:{self.public_key.sha256[:16]}"
        return ""

    @property
    def issuer_name(self) -> str:
        return self.certificate.issuer if self.certificate is not None else ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.display_name}
        if self.certificate is not None:
            out["certificate"] = self.certificate.to_json()
        if self.chain:
            out["chain"] = [c.to_json() for c in self.chain]
        if self.public_key is not None:
            out["publicKey"] = self.public_key.to_json()
        if self.pgp is not None:
            out["pgp"] = self.pgp.to_json()
        return out


# Checks against trust material the user supplied; the only ones that can make a signature "verified".
TRUST_CHECKS = frozenset(
    {
        "trusted-key",
        "trusted-identity",
        "trust-policy",
        "certificate-chain",
        "certificate-identity",
        "certificate-issuer",
        "certificate-validity",
        "certificate-sct",
        "transparency-log",
        "sigstore",
    }
)
# The alternative ways trust can be established, each (required, optional-but-must-pass-if-present).
# Any one satisfied makes a signature verified ("--key or the certificate policy", as cosign combines
# them); a failed check sinks only its own alternative. Trust checks outside every group form one more
# alternative in which all must pass.
TRUST_GROUPS: tuple[tuple[frozenset[str], frozenset[str]], ...] = (
    # a certificate from own PKI or Fulcio: path to a supplied root, valid then, the identity asked for
    (
        frozenset({"certificate-chain", "certificate-validity", "certificate-identity"}),
        frozenset({"certificate-issuer", "certificate-sct", "transparency-log"}),
    ),
    # a Sigstore bundle verified by the sigstore library (chain, SCT, log, time) plus our identity match
    (frozenset({"sigstore", "certificate-identity"}), frozenset({"certificate-issuer"})),
)


def trust_satisfied(trust: list[Check]) -> bool:
    """Whether one alternative of TRUST_GROUPS (or the ungrouped trust checks together) fully holds."""
    if len(trust) == 1 and _MIN_REQUIRED > 1:
        # The common case, a supplied key's `trusted-key` alone (per signature of a scan): no group can
        # be complete with one member, so only the ungrouped alternative can hold.
        only = trust[0]
        return only.name not in _GROUPED and only.outcome is _PASSED
    for required, optional in TRUST_GROUPS:
        members = [c for c in trust if c.name in required or c.name in optional]
        if members and required <= {c.name for c in members}:
            if all(c.outcome is Outcome.PASSED for c in members):
                return True
    rest = [c for c in trust if c.name not in _GROUPED]
    return bool(rest) and all(c.outcome is Outcome.PASSED for c in rest)


_GROUPED = frozenset(name for required, optional in TRUST_GROUPS for name in required | optional)
_MIN_REQUIRED = min(len(required) for required, _ in TRUST_GROUPS)
# Enum members looked up once: `Outcome.PASSED` is a ~0.1 µs class attribute lookup on Python 3.11, paid
# several times per signature in settle() (bench/verify.py).
_PASSED, _FAILED = Outcome.PASSED, Outcome.FAILED


class SignatureFormat(StrEnum):
    COSIGN = "cosign"  # legacy .sig tag layer (simple-signing payload)
    COSIGN_ATTESTATION = "cosign-attestation"  # legacy .att tag layer (DSSE in-toto)
    COSIGN_SBOM = "cosign-sbom"  # legacy .sbom tag (an attachment, not a signature)
    SIGSTORE_BUNDLE = "sigstore-bundle"  # cosign v3 bundle referrer
    NOTATION_JWS = "notation-jws"
    NOTATION_COSE = "notation-cose"
    SIMPLE_SIGNING = "simple-signing"  # GPG, containers/image lookaside


@dataclass
class Signature:
    """One signature found on one image, with what it claims and what could be checked."""

    format: SignatureFormat
    subject_digest: str  # the image digest it was found attached to
    location: str  # where: "tag sha256-….sig layer 1", "referrer sha256:…", "lookaside …/signature-1"
    media_type: str = ""
    signer: SignerIdentity | None = None
    signed_digest: str | None = None  # the digest the signed payload names
    claims: dict[str, Any] = field(default_factory=dict)  # payload facts: reference, annotations, …
    signing_time: datetime | None = None
    expiry: datetime | None = None
    timestamped: bool = False
    checks: list[Check] = field(default_factory=list)
    status: Status = Status.UNVERIFIED
    error: str | None = None
    # Bytes a later verification with trust material needs; never printed.
    evidence: dict[str, bytes] = field(default_factory=dict, repr=False)

    def settle(self) -> Signature:
        """Status from the checks.

        Integrity failures make a signature invalid. Trust checks (against material the user
        supplied) can only turn a sound signature into verified or untrusted; without them a
        passed signature check is integrity-ok and anything less is unverified.
        """
        # One pass: this runs for every signature of a scan, twice with trust material.
        trust: list[Check] = []
        broken = self.error is not None
        signature_ok = False
        for c in self.checks:
            if c.name in TRUST_CHECKS:
                trust.append(c)
            elif c.outcome is _FAILED:
                broken = True
            elif c.name == "signature" and c.outcome is _PASSED:
                signature_ok = True
        if broken:
            self.status = _INVALID
        elif trust and trust_satisfied(trust):
            self.status = _VERIFIED
        elif any(c.outcome is _FAILED for c in trust):
            self.status = _UNTRUSTED
        elif signature_ok:
            self.status = _INTEGRITY_OK
        else:
            self.status = _UNVERIFIED
        return self

    @property
    def failed_checks(self) -> list[Check]:
        return [c for c in self.checks if c.outcome is Outcome.FAILED]

    @property
    def reason(self) -> str:
        if self.error:
            return self.error
        failed = self.failed_checks
        return "; ".join(f"{c.name}: {c.detail}" for c in failed)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": str(self.format),
            "status": str(self.status),
            "subjectDigest": self.subject_digest,
            "location": self.location,
        }
        if self.media_type:
            out["mediaType"] = self.media_type
        if self.signer is not None:
            out["signer"] = self.signer.to_json()
        if self.signed_digest:
            out["signedDigest"] = self.signed_digest
        if self.claims:
            out["claims"] = self.claims
        if self.signing_time:
            out["signingTime"] = self.signing_time.isoformat()
        if self.expiry:
            out["expiry"] = self.expiry.isoformat()
        out["timestamped"] = self.timestamped
        out["checks"] = [c.to_json() for c in self.checks]
        if self.status is Status.INVALID:
            out["reason"] = self.reason
        if self.error:
            out["error"] = self.error
        return out


_INVALID, _VERIFIED, _UNTRUSTED = Status.INVALID, Status.VERIFIED, Status.UNTRUSTED
_INTEGRITY_OK, _UNVERIFIED = Status.INTEGRITY_OK, Status.UNVERIFIED


@dataclass
class Attachment:
    """Something attached to an image that is not itself a signature: an SBOM, a scan report, an attestation
    referrer of unknown shape. Reported with its type and whether anything signed it."""

    artifact_type: str
    digest: str
    location: str
    media_type: str = ""
    annotations: dict[str, str] = field(default_factory=dict)
    signed: bool = False
    signatures: list[Signature] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "artifactType": self.artifact_type,
            "digest": self.digest,
            "location": self.location,
            "signed": self.signed,
        }
        if self.media_type:
            out["mediaType"] = self.media_type
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.signatures:
            out["signatures"] = [s.to_json() for s in self.signatures]
        return out
