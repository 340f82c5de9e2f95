"""deliverability: the guard's alerts and the journeys' send pauses

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06 23:00:00

The deliverability guard's alerts (a journey step's rate past its limit) and the
pauses of a journey's marketing sends (its circuit breaker, or an operator).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.tables

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "send_pauses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("journey", sa.String(length=64), nullable=False),
        sa.Column("paused_at", models.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("paused_by", sa.String(length=100), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("resumed_at", models.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("resumed_by", sa.String(length=100), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_send_pauses_journey", "send_pauses", ["journey"], unique=False)
    op.create_table(
        "deliverability_alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("journey", sa.String(length=64), nullable=False),
        sa.Column("step", sa.String(length=64), nullable=False),
        sa.Column("metric", sa.String(length=16), nullable=False),
        sa.Column("rate", sa.Float(), nullable=False),
        sa.Column("limit", sa.Float(), nullable=False),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.Column("pauses", sa.Boolean(), nullable=False),
        sa.Column("raised_at", models.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("notified_at", models.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("cleared_at", models.tables.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    for column in ("key", "journey"):
        op.create_index(
            f"ix_deliverability_alerts_{column}", "deliverability_alerts", [column], unique=False
        )


def downgrade() -> None:
    op.drop_index("ix_deliverability_alerts_journey", table_name="deliverability_alerts")
    op.drop_index("ix_deliverability_alerts_key", table_name="deliverability_alerts")
    op.drop_table("deliverability_alerts")
    op.drop_index("ix_send_pauses_journey", table_name="send_pauses")
    op.drop_table("send_pauses")
