"""Test data builders."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel, col, select
from temporalio.testing import WorkflowEnvironment

from activities.providers import OutgoingEmail
from models.db import session_factory
from models.events import BehaviorEvent
from models.tables import Contact, ContactEvent, MessageLog

Row = TypeVar("Row", bound=SQLModel)


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


async def rows_of(engine: AsyncEngine, table: type[Row], contact_id: str) -> list[Row]:
    """The contact's rows of `table` (one with `contact_id` and `id` columns), oldest first."""
    async with session_factory(engine)() as session:
        result = await session.exec(
            select(table).where(col(table.contact_id) == contact_id).order_by(col(table.id))  # type: ignore[attr-defined]
        )
        return list(result.all())


async def message_rows(engine: AsyncEngine, contact_id: str) -> list[MessageLog]:
    """The contact's message-log rows, oldest first."""
    return await rows_of(engine, MessageLog, contact_id)


async def event_now(
    env: WorkflowEnvironment, contact_id: str, event_type: str, **properties: Any
) -> BehaviorEvent:
    """An event of the contact happening now on the server's clock, with a fresh id."""
    return BehaviorEvent(
        event_id=f"evt-{uuid.uuid4()}",
        contact_id=contact_id,
        type=event_type,
        occurred_at=await env.get_current_time(),
        properties=properties,
    )
