"""pipeline stages: the contact's current stage and the history of its transitions

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 12:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.tables

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pipeline_transitions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=300), nullable=False),
        sa.Column("contact_id", sa.String(length=64), nullable=False),
        sa.Column("stage", sa.String(length=32), nullable=False),
        sa.Column("previous_stage", sa.String(length=32), nullable=True),
        sa.Column("cause", sa.String(length=200), nullable=False),
        sa.Column("occurred_at", models.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key"),
    )
    with op.batch_alter_table("pipeline_transitions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_pipeline_transitions_contact_id"), ["contact_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_pipeline_transitions_stage"), ["stage"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_pipeline_transitions_occurred_at"), ["occurred_at"], unique=False
        )
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pipeline_stage", sa.String(length=32), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_contacts_pipeline_stage"), ["pipeline_stage"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contacts_pipeline_stage"))
        batch_op.drop_column("pipeline_stage")
    with op.batch_alter_table("pipeline_transitions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pipeline_transitions_occurred_at"))
        batch_op.drop_index(batch_op.f("ix_pipeline_transitions_stage"))
        batch_op.drop_index(batch_op.f("ix_pipeline_transitions_contact_id"))
    op.drop_table("pipeline_transitions")
