"""segments: definitions, members, changes, evaluations; when a contact's segments are due

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 19:05:00

Segments defined through the API, the current members of every segment, the
history of entering and leaving (and the events told to journeys that follow a
segment), the rule each segment was last evaluated with, and the moment a
contact's segments must be evaluated again.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.tables

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "segments",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("rule", sa.JSON(), nullable=False),
        sa.Column("defined_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", models.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", models.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "segment_members",
        sa.Column("segment", sa.String(length=64), nullable=False),
        sa.Column("contact_id", sa.String(length=64), nullable=False),
        sa.Column("entered_at", models.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("segment", "contact_id"),
    )
    op.create_index(
        "ix_segment_members_contact_id", "segment_members", ["contact_id"], unique=False
    )
    op.create_table(
        "segment_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("segment", sa.String(length=64), nullable=False),
        sa.Column("contact_id", sa.String(length=64), nullable=False),
        sa.Column("change", sa.String(length=8), nullable=False),
        sa.Column("occurred_at", models.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=True),
        sa.Column("delivered_at", models.tables.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    for column in ("segment", "contact_id", "occurred_at"):
        op.create_index(f"ix_segment_changes_{column}", "segment_changes", [column], unique=False)
    op.create_table(
        "segment_evaluations",
        sa.Column("segment", sa.String(length=64), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("evaluated_at", models.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("segment"),
    )
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("segments_due_at", models.tables.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.create_index("ix_contacts_segments_due_at", ["segments_due_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_index("ix_contacts_segments_due_at")
        batch_op.drop_column("segments_due_at")
    op.drop_table("segment_evaluations")
    for column in ("segment", "contact_id", "occurred_at"):
        op.drop_index(f"ix_segment_changes_{column}", table_name="segment_changes")
    op.drop_table("segment_changes")
    op.drop_index("ix_segment_members_contact_id", table_name="segment_members")
    op.drop_table("segment_members")
    op.drop_table("segments")
