"""Test data builders."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from activities.providers import OutgoingEmail
from models.db import session_factory
from models.tables import Contact


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
