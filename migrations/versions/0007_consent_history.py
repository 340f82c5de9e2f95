"""consent history; contacts looked up by phone

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 10:00:00.000000

Existing consents become the first rows of the history: one `granted` row per
contact and channel with consent, at its recorded time and source, so proof of
consent given before this revision is kept with the rest.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.tables

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "consent_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("occurred_at", models.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("wording", sa.String(length=1000), nullable=True),
        sa.Column("ip", sa.String(length=45), nullable=True),
        sa.Column("user_agent", sa.String(length=500), nullable=True),
        sa.Column("change_key", sa.String(length=300), nullable=True),
        sa.Column("recorded_at", models.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("contact_id", "change_key"),
    )
    with op.batch_alter_table("consent_changes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_consent_changes_contact_id"), ["contact_id"], unique=False
        )
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_contacts_phone"), ["phone"], unique=False)
    for channel in ("email", "sms"):
        op.execute(
            sa.text(
                "INSERT INTO consent_changes (contact_id, channel, granted, occurred_at, source,"
                " wording, change_key, recorded_at)"
                f" SELECT id, '{channel}', :granted,"
                f" COALESCE({channel}_consent_at, created_at),"
                f" COALESCE({channel}_consent_source, 'unknown'),"
                " 'recorded before consent history was kept',"
                f" 'migration-0007/{channel}', CURRENT_TIMESTAMP"
                f" FROM contacts WHERE {channel}_consent = :granted"
            ).bindparams(granted=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contacts_phone"))
    with op.batch_alter_table("consent_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consent_changes_contact_id"))
    op.drop_table("consent_changes")
