"""Test data builders."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from activities.providers import OutgoingEmail
from models.db import session_factory
from models.tables import Contact, ContactEvent


async def add_contact(
    engine: AsyncEngine,
    contact_id: str,
    *,
    email: str | None = None,
    first_name: str | None = None,
    company: str | None = None,
    email_consent: bool = True,
    phone: str | None = None,
    sms_consent: bool = False,
    timezone: str = "UTC",
) -> Contact:
    """Insert a contact with email consent given now (unless told otherwise)."""
    contact = Contact(
        id=contact_id,
        email=email if email is not None else f"{contact_id}@example.com",
        first_name=first_name,
        company=company,
        email_consent=email_consent,
        email_consent_at=datetime.now(UTC) if email_consent else None,
        email_consent_source="test" if email_consent else None,
        phone=phone,
        sms_consent=sms_consent,
        sms_consent_at=datetime.now(UTC) if sms_consent else None,
        sms_consent_source="test" if sms_consent else None,
        timezone=timezone,
    )
    async with session_factory(engine)() as session:
        session.add(contact)
        await session.commit()
    return contact


async def add_lead(
    engine: AsyncEngine,
    contact_id: str,
    *,
    first_name: str | None = "Ada",
    company: str | None = "Acme",
    phone: str | None = None,
    attributes: Mapping[str, str] | None = None,
    tags: Sequence[str] = (),
    score_breakdown: Mapping[str, int] | None = None,
    owner_id: str | None = None,
    owner_assigned_at: datetime | None = None,
    events: Sequence[tuple[str, datetime, Mapping[str, Any]]] = (),
) -> None:
    """Insert a scored lead (see `add_contact`) and its events: (type, occurred_at, properties)."""
    contact = await add_contact(
        engine, contact_id, first_name=first_name, company=company, phone=phone
    )
    contact.attributes = dict(attributes or {})
    contact.tags = list(tags)
    contact.score_breakdown = dict(score_breakdown or {})
    contact.lead_score = sum(contact.score_breakdown.values())
    contact.owner_id = owner_id
    contact.owner_assigned_at = owner_assigned_at
    async with session_factory(engine)() as session:
        session.add(contact)
        session.add_all(
            ContactEvent(
                contact_id=contact_id,
                event_id=f"{contact_id}-{number}",
                type=event_type,
                occurred_at=occurred_at,
                properties=dict(properties),
                batch_key="test",
            )
            for number, (event_type, occurred_at, properties) in enumerate(events)
        )
        await session.commit()


def outgoing_email(
    key: str = "welcome-series-ada/day0",
    *,
    text: str = "Hi Ada, welcome aboard.",
    html: str = "<p>Hi Ada, welcome aboard.</p>",
) -> OutgoingEmail:
    """A rendered email from Grace at Acme to Ada, ready for a provider."""
    return OutgoingEmail(
        idempotency_key=key,
        to_address="ada@example.com",
        from_name="Grace from Acme",
        from_address="grace@acme.test",
        reply_to="hello@acme.test",
        subject="Welcome to Acme, Ada",
        text=text,
        html=html,
        created_at=datetime(2025, 3, 4, 9, 30, tzinfo=UTC),
        headers={"X-Journey": "welcome-series", "X-Journey-Step": "day0"},
    )
