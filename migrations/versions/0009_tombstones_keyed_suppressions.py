"""tombstones of erased contacts, keyed suppression hashes, journey entries by workflow id

Existing suppressions hold a bare SHA-256 of their address; they get scheme
`sha256` (the column's server default) and are rewritten keyed when their
address is next seen (`rules/suppressions.py`).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 01:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.tables

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "erased_contacts",
        sa.Column("contact_id", sa.String(length=64), nullable=False),
        sa.Column("erased_at", models.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("contact_id"),
    )
    with op.batch_alter_table("suppressions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("scheme", sa.String(length=16), server_default="sha256", nullable=False)
        )
    with op.batch_alter_table("journey_runs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_journey_runs_workflow_id"), ["workflow_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("journey_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_journey_runs_workflow_id"))
    with op.batch_alter_table("suppressions", schema=None) as batch_op:
        batch_op.drop_column("scheme")
    op.drop_table("erased_contacts")
