"""dedupe: contact aliases and the merge audit

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 13:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.tables

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "contact_aliases",
        sa.Column("alias", sa.String(length=64), nullable=False),
        sa.Column("contact_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", models.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("alias"),
    )
    with op.batch_alter_table("contact_aliases", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_contact_aliases_contact_id"), ["contact_id"], unique=False
        )
    op.create_table(
        "contact_merges",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("survivor_id", sa.String(length=64), nullable=False),
        sa.Column("loser_id", sa.String(length=64), nullable=False),
        sa.Column("matched_by", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("merged_at", models.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("loser_created_at", models.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("moved", sa.JSON(), nullable=False),
        sa.Column("signalled_at", models.tables.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("loser_id"),
    )
    with op.batch_alter_table("contact_merges", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_contact_merges_survivor_id"), ["survivor_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_contact_merges_merged_at"), ["merged_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("contact_merges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contact_merges_merged_at"))
        batch_op.drop_index(batch_op.f("ix_contact_merges_survivor_id"))
    op.drop_table("contact_merges")
    with op.batch_alter_table("contact_aliases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contact_aliases_contact_id"))
    op.drop_table("contact_aliases")
