"""broadcasts: definitions and each occurrence's audience snapshot

Revision ID: 0017
Revises: 0015
Create Date: 2026-12-07 10:00:00

A broadcast (a message to a segment's members, once or on a schedule) and the
recipients of each of its occurrences, with their progress.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.tables

revision: str = "0017"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "broadcasts",
        sa.Column("name", sa.String(length=48), nullable=False),
        sa.Column("segment", sa.String(length=64), nullable=False),
        sa.Column("template", sa.String(length=200), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("send_at", models.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("schedule", sa.String(length=100), nullable=True),
        sa.Column("local_time", sa.Boolean(), nullable=False),
        sa.Column("rate", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", models.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", models.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_index("ix_broadcasts_segment", "broadcasts", ["segment"], unique=False)
    op.create_index("ix_broadcasts_status", "broadcasts", ["status"], unique=False)
    op.create_table(
        "broadcast_recipients",
        sa.Column("broadcast", sa.String(length=48), nullable=False),
        sa.Column("occurrence", sa.String(length=32), nullable=False),
        sa.Column("contact_id", sa.String(length=64), nullable=False),
        sa.Column("due_at", models.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("updated_at", models.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("broadcast", "occurrence", "contact_id"),
    )
    for column in ("due_at", "status"):
        op.create_index(
            f"ix_broadcast_recipients_{column}", "broadcast_recipients", [column], unique=False
        )


def downgrade() -> None:
    op.drop_table("broadcast_recipients")
    op.drop_index("ix_broadcasts_status", table_name="broadcasts")
    op.drop_index("ix_broadcasts_segment", table_name="broadcasts")
    op.drop_table("broadcasts")
