"""Test data builders."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

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
