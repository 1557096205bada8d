"""The inventory's tables at the head revision, for queries (the migrations create them; see
docs/inventory.md for what each column means).

Timestamps are UTC and come back timezone-aware on both dialects (UTCDateTime). Key columns that identify
an image are NOT NULL with '' for "none": SQL treats NULLs as distinct, so a unique key over a nullable
column would not stop a duplicate.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Stored as UTC (naive on SQLite, timestamptz on PostgreSQL), read back aware."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("the inventory stores timezone-aware datetimes only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def json_type() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


metadata = sa.MetaData()

scan_runs = sa.Table(
    "scan_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(16), nullable=False),  # "registry" | "fs"
    sa.Column("target", sa.Text, nullable=False),  # as given: HOST[/NS], oci:PATH, the fs PATHs
    sa.Column("source", sa.Text, nullable=False),  # registry host, "oci:PATH", or the fs PATHs joined by ","
    sa.Column(
        "scope", sa.Text, nullable=False
    ),  # target + what narrows it (--repo); runs of one scope compare
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime, nullable=True),
    sa.Column("complete", sa.Boolean, nullable=False, default=False),
    sa.Column("flags", json_type(), nullable=False),
    sa.Column("shard", sa.String(32), nullable=True),  # "I/N" (0-based I) of a sharded scan
    sa.Column("policy_version", sa.Text, nullable=True),
    sa.Column("trust_fingerprint", sa.String(64), nullable=False),
    sa.Column("totals", json_type(), nullable=True),
    # revision 0002: the runs of one sharded scan share a group (a non-sharded run is its own)
    sa.Column("run_group", sa.Text, nullable=True),
    sa.Index("ix_scan_runs_scope", "scope", "id"),
    sa.Index("ix_scan_runs_group", "run_group"),
)

images = sa.Table(
    "images",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("scan_runs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # "image" | "file"
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("repository", sa.Text, nullable=False, default=""),
    sa.Column("path", sa.Text, nullable=False),  # repo:tag, repo@digest, or the file's path
    sa.Column("digest", sa.Text, nullable=False, default=""),
    sa.Column("parent_digest", sa.Text, nullable=False, default=""),  # the index a platform manifest is in
    sa.Column("media_type", sa.Text, nullable=False, default=""),
    sa.Column("platform", sa.Text, nullable=True),
    sa.Column("file_type", sa.Text, nullable=True),
    sa.Column("size", sa.BigInteger, nullable=True),
    sa.Column("signed", sa.Boolean, nullable=False),
    sa.Column("signature_count", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # roll-up: see records.rollup_status
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("problems", json_type(), nullable=False),
    sa.Column("attachments", json_type(), nullable=False),
    sa.Column("sigset_fingerprint", sa.String(64), nullable=True),
    # The row whose signatures this one reused (incremental re-scan); NULL: fetched and verified now.
    sa.Column("evidence_id", sa.Integer, sa.ForeignKey("images.id", ondelete="SET NULL"), nullable=True),
    # revision 0002: when a reusable result must be verified again (a certificate it relied on expires)
    sa.Column("valid_until", UTCDateTime, nullable=True),
    sa.UniqueConstraint("run_id", "kind", "source", "path", "digest", "parent_digest", name="uq_images_key"),
    sa.Index("ix_images_location", "source", "repository", "digest"),
    sa.Index("ix_images_evidence", "evidence_id"),
)

image_tags = sa.Table(
    "image_tags",
    metadata,
    sa.Column("image_id", sa.Integer, sa.ForeignKey("images.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("tag", sa.Text, primary_key=True),
)

signatures = sa.Table(
    "signatures",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("image_id", sa.Integer, sa.ForeignKey("images.id", ondelete="CASCADE"), nullable=False),
    sa.Column("ordinal", sa.Integer, nullable=False),
    sa.Column("attachment_digest", sa.Text, nullable=False, default=""),  # signs an attachment, not the image
    sa.Column("format", sa.String(32), nullable=False),  # SignatureFormat, or a FileSignature kind
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("location", sa.Text, nullable=False),
    sa.Column("media_type", sa.Text, nullable=False, default=""),
    sa.Column("subject_digest", sa.Text, nullable=False, default=""),
    sa.Column("signed_digest", sa.Text, nullable=True),
    sa.Column("signer", sa.Text, nullable=False, default=""),  # display name
    sa.Column("identity", sa.Text, nullable=True),  # SAN / subject DN / OpenPGP user id / key fingerprint
    sa.Column("issuer", sa.Text, nullable=True),  # OIDC issuer, else the certificate's issuer DN
    sa.Column("cert_subject", sa.Text, nullable=True),
    sa.Column("cert_issuer", sa.Text, nullable=True),
    sa.Column("cert_serial", sa.Text, nullable=True),
    sa.Column("cert_sha256", sa.String(64), nullable=True),
    sa.Column("not_before", UTCDateTime, nullable=True),  # of the signing certificate
    sa.Column("not_after", UTCDateTime, nullable=True),
    sa.Column("key_sha256", sa.String(64), nullable=True),
    sa.Column("pgp_key_id", sa.String(40), nullable=True),
    sa.Column("pgp_fingerprint", sa.String(64), nullable=True),
    sa.Column("signing_time", UTCDateTime, nullable=True),
    sa.Column("expiry", UTCDateTime, nullable=True),
    sa.Column("timestamped", sa.Boolean, nullable=False, default=False),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("checks", json_type(), nullable=False),
    sa.Column("record", json_type(), nullable=False),  # the report's JSON of this signature, whole
    sa.Index("ix_signatures_image", "image_id"),
    sa.Index("ix_signatures_identity", "identity"),
)

certificates = sa.Table(
    "certificates",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("signature_id", sa.Integer, sa.ForeignKey("signatures.id", ondelete="CASCADE"), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),  # "signing" | "intermediate" | "tsa"
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("issuer", sa.Text, nullable=False),
    sa.Column("serial", sa.Text, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("not_before", UTCDateTime, nullable=False),
    sa.Column("not_after", UTCDateTime, nullable=False),
    sa.Column("is_ca", sa.Boolean, nullable=False),
    sa.Index("ix_certificates_signature", "signature_id"),
    sa.Index("ix_certificates_not_after", "not_after"),
)

decisions = sa.Table(
    "decisions",
    metadata,
    sa.Column("image_id", sa.Integer, sa.ForeignKey("images.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("decision", sa.String(16), nullable=True),  # "allow" | "deny" | … (the policy engine's)
    sa.Column("rule", sa.Text, nullable=True),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("policy_version", sa.Text, nullable=True),
)

# What an incremental re-scan compares: per digest of a repository, the fingerprint of its signature set
# when last fetched and the trust and policy it was judged with, and the row holding that evidence.
digest_state = sa.Table(
    "digest_state",
    metadata,
    sa.Column("source", sa.Text, primary_key=True),
    sa.Column("repository", sa.Text, primary_key=True),
    sa.Column("digest", sa.Text, primary_key=True),
    sa.Column("sigset_fingerprint", sa.String(64), nullable=False),
    sa.Column("trust_fingerprint", sa.String(64), nullable=False),
    sa.Column("policy_version", sa.Text, nullable=False, default=""),
    sa.Column("image_id", sa.Integer, sa.ForeignKey("images.id", ondelete="CASCADE"), nullable=False),
    sa.Column("valid_until", UTCDateTime, nullable=True),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)
