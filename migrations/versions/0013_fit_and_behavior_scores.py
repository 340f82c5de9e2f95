"""scoring: the contact's fit and behaviour points next to its lead score

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 13:10:00

Existing contacts get them from their stored breakdown: fit is its `fit` entry,
behaviour the rest of the lead score.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CONTACTS = sa.table(
    "contacts",
    sa.column("id", sa.String()),
    sa.column("lead_score", sa.Integer()),
    sa.column("score_breakdown", sa.JSON()),
    sa.column("fit_score", sa.Integer()),
    sa.column("behavior_score", sa.Integer()),
)


def upgrade() -> None:
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("fit_score", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("behavior_score", sa.Integer(), server_default="0", nullable=False)
        )
    bind = op.get_bind()
    rows = bind.execute(sa.select(CONTACTS.c.id, CONTACTS.c.lead_score, CONTACTS.c.score_breakdown))
    for contact_id, lead_score, breakdown in rows.all():
        parts = json.loads(breakdown) if isinstance(breakdown, str) else dict(breakdown or {})
        fit = int(parts.get("fit", 0))
        bind.execute(
            sa.update(CONTACTS)
            .where(CONTACTS.c.id == contact_id)
            .values(fit_score=fit, behavior_score=lead_score - fit)
        )


def downgrade() -> None:
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_column("behavior_score")
        batch_op.drop_column("fit_score")
