"""Typed rows the inventory writes and reads. Plain data: the store turns them into SQL and back."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# Strongest first: an image's roll-up status is the best status among its signatures, so "verified"
# means at least one signature verified, and "invalid" that every signature it has is invalid.
STATUS_ORDER = ("verified", "integrity-ok", "unverified", "untrusted", "rejected", "invalid")
UNSIGNED = "unsigned"
ERROR = "error"


def rollup_status(statuses: list[str], error: str | None) -> str:
    if error:
        return ERROR
    if not statuses:
        return UNSIGNED
    return min(statuses, key=lambda s: STATUS_ORDER.index(s) if s in STATUS_ORDER else len(STATUS_ORDER))


@dataclass(frozen=True)
class RunStart:
    """What a scan says about itself when it starts."""

    kind: str  # "registry" | "fs"
    target: str
    source: str
    scope: str
    started_at: datetime
    flags: dict[str, Any]
    trust_fingerprint: str
    policy_version: str | None = None
    shard: str | None = None  # "I/N"
    run_group: str | None = None  # shared by the shards of one scan; None: the run is its own group


@dataclass(frozen=True)
class RunRecord:
    id: int
    kind: str
    target: str
    source: str
    scope: str
    started_at: datetime
    finished_at: datetime | None
    complete: bool
    flags: dict[str, Any]
    shard: str | None
    policy_version: str | None
    trust_fingerprint: str
    totals: dict[str, Any] | None
    run_group: str


@dataclass(frozen=True)
class CertificateRow:
    role: str  # "signing" | "intermediate" | "tsa"
    position: int
    subject: str
    issuer: str
    serial: str
    sha256: str
    not_before: datetime
    not_after: datetime
    is_ca: bool


@dataclass(frozen=True)
class SignatureRow:
    """One signature as stored; `record` is the report's JSON of it, whole (checks, chain, claims)."""

    format: str
    status: str
    location: str
    checks: list[dict[str, Any]]
    record: dict[str, Any]
    attachment_digest: str = ""
    media_type: str = ""
    subject_digest: str = ""
    signed_digest: str | None = None
    signer: str = ""
    identity: str | None = None
    issuer: str | None = None
    cert_subject: str | None = None
    cert_issuer: str | None = None
    cert_serial: str | None = None
    cert_sha256: str | None = None
    not_before: datetime | None = None
    not_after: datetime | None = None
    key_sha256: str | None = None
    pgp_key_id: str | None = None
    pgp_fingerprint: str | None = None
    signing_time: datetime | None = None
    expiry: datetime | None = None
    timestamped: bool = False
    error: str | None = None
    reason: str | None = None
    certificates: list[CertificateRow] = field(default_factory=list)


@dataclass(frozen=True)
class DecisionRow:
    """A policy's word on an image; every field may be unknown (the engine is optional)."""

    decision: str | None = None
    rule: str | None = None
    reason: str | None = None
    policy_version: str | None = None


@dataclass(frozen=True)
class ImageRow:
    """One image (or file) seen by one run, with everything that signs it: written in one transaction."""

    kind: str  # "image" | "file"
    source: str
    path: str
    repository: str = ""
    digest: str = ""
    parent_digest: str = ""
    media_type: str = ""
    platform: str | None = None
    file_type: str | None = None
    size: int | None = None
    tags: tuple[str, ...] = ()
    error: str | None = None
    problems: tuple[str, ...] = ()
    attachments: list[dict[str, Any]] = field(default_factory=list)
    signatures: list[SignatureRow] = field(default_factory=list)
    decision: DecisionRow | None = None
    # incremental re-scans: the signature set it was fetched with, and until when its verdicts hold
    sigset_fingerprint: str | None = None
    valid_until: datetime | None = None
    # the row whose signatures an unchanged image reuses instead of carrying its own
    evidence_id: int | None = None

    @property
    def status(self) -> str:
        own = [s.status for s in self.signatures if not s.attachment_digest]
        return rollup_status(own, self.error)


@dataclass(frozen=True)
class ImageRecord:
    """An image row read back. `signatures_from` is the row holding its signatures (itself, unless the
    result was reused from an earlier run)."""

    id: int
    run_id: int
    kind: str
    source: str
    repository: str
    path: str
    digest: str
    parent_digest: str
    media_type: str
    platform: str | None
    file_type: str | None
    size: int | None
    tags: tuple[str, ...]
    signed: bool
    signature_count: int
    status: str
    error: str | None
    problems: tuple[str, ...]
    attachments: list[dict[str, Any]]
    sigset_fingerprint: str | None
    valid_until: datetime | None
    signatures_from: int
    reused: bool
    decision: DecisionRow | None

    @property
    def location(self) -> tuple[str, str, str, str, str]:
        """What makes two runs' rows the same image: kind, source, path, digest, parent."""
        return (self.kind, self.source, self.path, self.digest, self.parent_digest)


@dataclass(frozen=True)
class SignatureRecord:
    id: int
    image_id: int  # the row that holds it (see ImageRecord.signatures_from)
    ordinal: int
    row: SignatureRow


@dataclass(frozen=True)
class ExpiringCertificate:
    """A certificate of a signature on an image of the latest state, with when it expires."""

    image: ImageRecord
    signature_id: int
    signature_format: str
    signer: str
    certificate: CertificateRow


@dataclass(frozen=True)
class Identity:
    """One signer identity with every image (of the state asked about) it signs."""

    identity: str
    issuer: str | None
    formats: tuple[str, ...]
    statuses: tuple[str, ...]
    images: tuple[ImageRecord, ...]


@dataclass(frozen=True)
class DigestState:
    """What an incremental re-scan knows about one digest of one repository."""

    digest: str
    sigset_fingerprint: str
    trust_fingerprint: str
    policy_version: str
    image_id: int
    valid_until: datetime | None
