"""A send's database work: its checks and reservation in one transaction, its outcome in one more.

The send activity runs against a real database (the SQLite file, and a
throwaway PostgreSQL cluster where the binaries are installed) and the real
outbox; the engine's `begin` events count the transactions, and the outbox
notes how many had begun when the message was handed to it.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, time
from typing import Any

import pytest
from sqlalchemy import delete, event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.messaging import MessagingActivities
from activities.providers import OutboxEmailProvider, OutgoingEmail
from models.db import session_factory
from models.messages import DeliveryStatus, SendRequest
from models.settings import Settings
from models.tables import Contact
from rules.templates import TemplateCatalog
from tests.factories import add_contact, message_rows
from tests.outbox import read_outbox

NOON = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


class CountingOutbox(OutboxEmailProvider):
    """The real outbox, noting how many transactions had begun at each delivery."""

    def __init__(self, settings: Settings, transactions: list[object]) -> None:
        super().__init__(settings.outbox_dir)
        self._transactions = transactions
        self.begun_at_delivery: list[int] = []

    async def deliver(self, email: OutgoingEmail) -> str:
        self.begun_at_delivery.append(len(self._transactions))
        return await super().deliver(email)


def day1(contact_id: str) -> SendRequest:
    return SendRequest(
        idempotency_key=f"welcome-series-{contact_id}/day1",
        contact_id=contact_id,
        journey="welcome-series",
        step="day1",
        template="welcome-series/day1",
    )


def at(now: datetime) -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, current_attempt_scheduled_time=now)
    return env


async def test_a_send_is_one_transaction_before_delivery_and_one_after(
    settings: Settings, database: AsyncEngine
) -> None:
    engine = database
    await add_contact(engine, "ada", first_name="Ada")
    await add_contact(engine, "night-owl", timezone="Asia/Tokyo")  # 21:00 there at NOON UTC
    settings = settings.model_copy(
        update={"quiet_hours_start": time(21, 0), "quiet_hours_end": time(8, 0)}
    )
    transactions: list[object] = []

    def begun(connection: Any) -> None:
        transactions.append(connection)

    event.listen(engine.sync_engine, "begin", begun)
    outbox = CountingOutbox(settings, transactions)
    messaging = MessagingActivities.from_settings(
        settings, engine, templates=TemplateCatalog(settings.templates_dir), email_provider=outbox
    )

    sent = await at(NOON).run(messaging.send_message, day1("ada"))
    sending = len(transactions)
    again = await at(NOON).run(messaging.send_message, day1("ada"))
    retrying = len(transactions) - sending
    deferred = await at(NOON).run(messaging.send_message, day1("night-owl"))
    deferring = len(transactions) - sending - retrying
    event.remove(engine.sync_engine, "begin", begun)

    assert (sent.status, again.status) == (DeliveryStatus.SENT, DeliveryStatus.SENT)
    assert again.provider_message_id == sent.provider_message_id
    assert outbox.begun_at_delivery == [1], "checks and reservation: one transaction"
    assert sending == 2, "the outcome: one more"
    assert retrying == 1, "a retry of a sent key reads it once and delivers nothing"
    assert deferred.status == DeliveryStatus.DEFERRED
    assert deferring == 1, "a deferral is recorded in the transaction that checked"
    assert list(read_outbox(settings.outbox_dir)) == ["welcome-series-ada/day1"]
    [ada] = await message_rows(engine, "ada")
    assert (ada.status, ada.sent_at, ada.provider) == (DeliveryStatus.SENT, NOON, "outbox")
    assert ada.subject
    [night_owl] = await message_rows(engine, "night-owl")
    assert night_owl.status == DeliveryStatus.DEFERRED


async def test_a_recorded_outcome_outlives_the_contact_and_an_unknown_contact_is_refused(
    settings: Settings, database: AsyncEngine
) -> None:
    engine = database
    await add_contact(engine, "gone")
    messaging = MessagingActivities.from_settings(
        settings, engine, templates=TemplateCatalog(settings.templates_dir)
    )
    sent = await at(NOON).run(messaging.send_message, day1("gone"))
    async with session_factory(engine)() as session:
        await session.exec(delete(Contact).where(col(Contact.id) == "gone"))
        await session.commit()

    again = await at(NOON).run(messaging.send_message, day1("gone"))
    with pytest.raises(ApplicationError) as unknown:
        await at(NOON).run(messaging.send_message, day1("nobody"))

    assert again == sent
    assert unknown.value.type == "ContactNotFound" and unknown.value.non_retryable
    assert await message_rows(engine, "nobody") == []


async def test_concurrent_journeys_never_take_more_than_the_daily_cap(
    settings: Settings, database: AsyncEngine
) -> None:
    """Six journeys send to one contact at once; the cap of two a day lets two through."""
    engine = database
    await add_contact(engine, "popular")
    messaging = MessagingActivities.from_settings(
        settings.model_copy(update={"email_cap_per_day": 2}),
        engine,
        templates=TemplateCatalog(settings.templates_dir),
    )
    journeys = [f"journey-{n}" for n in range(6)]

    results = await asyncio.gather(
        *(
            at(NOON).run(
                messaging.send_message,
                day1("popular").model_copy(
                    update={"idempotency_key": f"{journey}-popular/day1", "journey": journey}
                ),
            )
            for journey in journeys
        )
    )

    statuses = sorted(result.status for result in results)
    assert statuses == [DeliveryStatus.DEFERRED] * 4 + [DeliveryStatus.SENT] * 2
    assert len(read_outbox(settings.outbox_dir)) == 2
    rows = await message_rows(engine, "popular")
    assert sorted(row.status for row in rows) == statuses
