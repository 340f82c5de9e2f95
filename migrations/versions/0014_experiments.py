"""experiments: exposures and decisions

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 15:43:12

Exposures: a contact's arm, recorded once. Decisions: who stopped an experiment,
when, and its winner.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.tables

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "experiment_decisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("experiment", sa.String(length=64), nullable=False),
        sa.Column("winner", sa.String(length=32), nullable=True),
        sa.Column("decided_by", sa.String(length=100), nullable=False),
        sa.Column("decided_at", models.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("experiment"),
    )
    op.create_table(
        "experiment_exposures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("experiment", sa.String(length=64), nullable=False),
        sa.Column("contact_id", sa.String(length=64), nullable=False),
        sa.Column("arm", sa.String(length=32), nullable=False),
        sa.Column("journey", sa.String(length=64), nullable=False),
        sa.Column("workflow_id", sa.String(length=200), nullable=False),
        sa.Column("exposed_at", models.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("experiment", "contact_id"),
    )
    with op.batch_alter_table("experiment_exposures", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_experiment_exposures_contact_id"), ["contact_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_experiment_exposures_experiment"), ["experiment"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("experiment_exposures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_experiment_exposures_experiment"))
        batch_op.drop_index(batch_op.f("ix_experiment_exposures_contact_id"))

    op.drop_table("experiment_exposures")
    op.drop_table("experiment_decisions")
