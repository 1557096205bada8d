"""Sharded scans share a run group; reusable results carry when they must be verified again.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sigscope.store.schema import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("scan_runs") as batch:
        batch.add_column(sa.Column("run_group", sa.Text, nullable=True))
        batch.create_index("ix_scan_runs_group", ["run_group"])
    with op.batch_alter_table("images") as batch:
        batch.add_column(sa.Column("valid_until", UTCDateTime, nullable=True))
    with op.batch_alter_table("digest_state") as batch:
        batch.add_column(sa.Column("valid_until", UTCDateTime, nullable=True))
    # Runs made before groups existed are each their own group.
    op.execute("UPDATE scan_runs SET run_group = 'run-' || CAST(id AS VARCHAR(20))")


def downgrade() -> None:
    with op.batch_alter_table("digest_state") as batch:
        batch.drop_column("valid_until")
    with op.batch_alter_table("images") as batch:
        batch.drop_column("valid_until")
    with op.batch_alter_table("scan_runs") as batch:
        batch.drop_index("ix_scan_runs_group")
        batch.drop_column("run_group")
