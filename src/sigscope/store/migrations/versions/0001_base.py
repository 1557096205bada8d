"""The base schema: scan runs, images, tags, signatures, certificates, decisions, digest state.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sigscope.store.schema import UTCDateTime, json_type

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scan_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("finished_at", UTCDateTime, nullable=True),
        sa.Column("complete", sa.Boolean, nullable=False),
        sa.Column("flags", json_type(), nullable=False),
        sa.Column("shard", sa.String(32), nullable=True),
        sa.Column("policy_version", sa.Text, nullable=True),
        sa.Column("trust_fingerprint", sa.String(64), nullable=False),
        sa.Column("totals", json_type(), nullable=True),
    )
    op.create_index("ix_scan_runs_scope", "scan_runs", ["scope", "id"])
    op.create_table(
        "images",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("scan_runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("repository", sa.Text, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("digest", sa.Text, nullable=False),
        sa.Column("parent_digest", sa.Text, nullable=False),
        sa.Column("media_type", sa.Text, nullable=False),
        sa.Column("platform", sa.Text, nullable=True),
        sa.Column("file_type", sa.Text, nullable=True),
        sa.Column("size", sa.BigInteger, nullable=True),
        sa.Column("signed", sa.Boolean, nullable=False),
        sa.Column("signature_count", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("problems", json_type(), nullable=False),
        sa.Column("attachments", json_type(), nullable=False),
        sa.Column("sigset_fingerprint", sa.String(64), nullable=True),
        sa.Column("evidence_id", sa.Integer, sa.ForeignKey("images.id", ondelete="SET NULL"), nullable=True),
        sa.UniqueConstraint(
            "run_id", "kind", "source", "path", "digest", "parent_digest", name="uq_images_key"
        ),
    )
    op.create_index("ix_images_location", "images", ["source", "repository", "digest"])
    op.create_index("ix_images_evidence", "images", ["evidence_id"])
    op.create_table(
        "image_tags",
        sa.Column("image_id", sa.Integer, sa.ForeignKey("images.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("tag", sa.Text, primary_key=True),
    )
    op.create_table(
        "signatures",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("image_id", sa.Integer, sa.ForeignKey("images.id", ondelete="CASCADE"), nullable=False),
        sa.Column("ordinal", sa.Integer, nullable=False),
        sa.Column("attachment_digest", sa.Text, nullable=False),
        sa.Column("format", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("location", sa.Text, nullable=False),
        sa.Column("media_type", sa.Text, nullable=False),
        sa.Column("subject_digest", sa.Text, nullable=False),
        sa.Column("signed_digest", sa.Text, nullable=True),
        sa.Column("signer", sa.Text, nullable=False),
        sa.Column("identity", sa.Text, nullable=True),
        sa.Column("issuer", sa.Text, nullable=True),
        sa.Column("cert_subject", sa.Text, nullable=True),
        sa.Column("cert_issuer", sa.Text, nullable=True),
        sa.Column("cert_serial", sa.Text, nullable=True),
        sa.Column("cert_sha256", sa.String(64), nullable=True),
        sa.Column("not_before", UTCDateTime, nullable=True),
        sa.Column("not_after", UTCDateTime, nullable=True),
        sa.Column("key_sha256", sa.String(64), nullable=True),
        sa.Column("pgp_key_id", sa.String(40), nullable=True),
        sa.Column("pgp_fingerprint", sa.String(64), nullable=True),
        sa.Column("signing_time", UTCDateTime, nullable=True),
        sa.Column("expiry", UTCDateTime, nullable=True),
        sa.Column("timestamped", sa.Boolean, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("checks", json_type(), nullable=False),
        sa.Column("record", json_type(), nullable=False),
    )
    op.create_index("ix_signatures_image", "signatures", ["image_id"])
    op.create_index("ix_signatures_identity", "signatures", ["identity"])
    op.create_table(
        "certificates",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "signature_id", sa.Integer, sa.ForeignKey("signatures.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("issuer", sa.Text, nullable=False),
        sa.Column("serial", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("not_before", UTCDateTime, nullable=False),
        sa.Column("not_after", UTCDateTime, nullable=False),
        sa.Column("is_ca", sa.Boolean, nullable=False),
    )
    op.create_index("ix_certificates_signature", "certificates", ["signature_id"])
    op.create_index("ix_certificates_not_after", "certificates", ["not_after"])
    op.create_table(
        "decisions",
        sa.Column("image_id", sa.Integer, sa.ForeignKey("images.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("decision", sa.String(16), nullable=True),
        sa.Column("rule", sa.Text, nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("policy_version", sa.Text, nullable=True),
    )
    op.create_table(
        "digest_state",
        sa.Column("source", sa.Text, primary_key=True),
        sa.Column("repository", sa.Text, primary_key=True),
        sa.Column("digest", sa.Text, primary_key=True),
        sa.Column("sigset_fingerprint", sa.String(64), nullable=False),
        sa.Column("trust_fingerprint", sa.String(64), nullable=False),
        sa.Column("policy_version", sa.Text, nullable=False),
        sa.Column("image_id", sa.Integer, sa.ForeignKey("images.id", ondelete="CASCADE"), nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )


def downgrade() -> None:
    for table in ("digest_state", "decisions", "certificates", "signatures", "image_tags", "images"):
        op.drop_table(table)
    op.drop_table("scan_runs")
