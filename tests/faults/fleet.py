"""The journeys a fault test runs, and the check that each message went out exactly once.

Every contact of the fleet runs the welcome series (5 emails on days 0, 1, 2,
4 and 7) and then, being a cold lead without interests, the weekly nurture
(the general track's 3 content emails and the roundup: 4 emails) on a
one-second journey day: 9 emails each, sent in bursts (all contacts start
together). At the end every journey must have completed, the message log must
hold each email once as `sent`, and the email API must have delivered each
(recipient, journey, step) exactly once, with the message id the log recorded.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from models.db import session_factory
from models.journeys import JourneyInput, JourneyState
from models.messages import Channel
from models.tables import MessageLog
from rules.nurture import CONTENT_EMAILS, GENERAL
from starter.services.operations import enroll
from tests.factories import add_contact
from tests.fake_api import LedgerServer
from tests.kit import enters_welcome_series
from workflows.journeys.nurture import ROUNDUP

DAY_SECONDS = 1
EXPECTED_STEPS: tuple[tuple[str, str], ...] = (
    *(("welcome-series", step) for step in ("day0", "day1", "day2", "day4", "day7")),
    *(("nurture", GENERAL.step(asset)) for asset in GENERAL.assets[:CONTENT_EMAILS]),
    ("nurture", ROUNDUP),
)
"""(journey, step) of every email a fleet contact gets."""


def fleet(size: int, prefix: str = "c") -> list[str]:
    """Contact ids of a fleet: `size` ids `{prefix}NNN` whose sign-up starts the welcome
    series (the subject test's holdout keeps one in ten out)."""
    ids = (f"{prefix}{number:03d}" for number in itertools.count())
    return list(itertools.islice(filter(enters_welcome_series, ids), size))


def email_of(contact_id: str) -> str:
    """The fleet's address of a contact."""
    return f"{contact_id}@example.com"


async def add_contacts(engine: AsyncEngine, contact_ids: list[str]) -> None:
    """Store the contacts, with email consent."""
    for contact_id in contact_ids:
        await add_contact(engine, contact_id, email=email_of(contact_id))


async def enroll_all(
    client: Client, engine: AsyncEngine, contact_ids: list[str], *, task_queue: str
) -> None:
    """Start every contact's welcome series at once (the first burst of sends)."""
    await asyncio.gather(
        *(
            enroll(
                client,
                engine,
                "welcome-series",
                JourneyInput(contact_id=contact_id, day_seconds=DAY_SECONDS),
                task_queue=task_queue,
            )
            for contact_id in contact_ids
        )
    )


async def sent_count(engine: AsyncEngine) -> int:
    """Messages the message log records as sent so far."""
    async with session_factory(engine)() as session:
        rows = await session.exec(
            select(MessageLog.idempotency_key).where(MessageLog.status == "sent")
        )
        return len(rows.all())


async def wait_for_journeys(
    client: Client,
    contact_ids: list[str],
    *,
    within: float,
    steps: tuple[tuple[str, str], ...] = EXPECTED_STEPS,
) -> None:
    """Wait until each contact's journeys (those of `steps`) completed, with every email sent."""
    emails = Counter(journey for journey, _ in steps)
    done: Counter[str] = Counter()

    async def finished(journey: str, contact_id: str, emails: int) -> None:
        workflow_id = f"{journey}-{contact_id}"
        handle = client.get_workflow_handle(workflow_id, result_type=JourneyState)
        while True:
            try:
                state = await handle.result()
                break
            except RPCError as error:  # a nurture starts when its welcome series ends
                if error.status != RPCStatusCode.NOT_FOUND:
                    raise
                await asyncio.sleep(0.5)
        assert state.status == "completed", f"{workflow_id}: {state.status} {state.exit_reason}"
        assert state.messages_sent == emails, (
            f"{workflow_id} sent {state.messages_sent}: {state.steps_done} {state.actions_done}"
        )
        done[journey] += 1

    try:
        async with asyncio.timeout(within):
            await asyncio.gather(
                *(
                    finished(journey, contact_id, count)
                    for contact_id in contact_ids
                    for journey, count in emails.items()
                )
            )
    except TimeoutError:
        raise AssertionError(
            f"after {within:.0f} s, of {len(contact_ids)} contacts' journeys these completed: "
            f"{dict(done)}"
        ) from None


async def assert_each_email_delivered_once(
    engine: AsyncEngine,
    email_api: LedgerServer,
    contact_ids: list[str],
    *,
    steps: tuple[tuple[str, str], ...] = EXPECTED_STEPS,
) -> None:
    """The message log's emails and the email API agree: every expected email, once, nothing
    else (an SMS step the contacts have no phone for is logged as skipped, and left out)."""
    async with session_factory(engine)() as session:
        rows = list(
            (
                await session.exec(
                    select(MessageLog).where(
                        col(MessageLog.contact_id).in_(contact_ids),
                        MessageLog.channel == Channel.EMAIL,
                    )
                )
            ).all()
        )
    logged = Counter((row.contact_id, row.journey, row.step, row.status) for row in rows)
    expected = Counter(
        (contact_id, journey, step, "sent") for contact_id in contact_ids for journey, step in steps
    )
    assert logged == expected, f"message log differs: {logged - expected} / {expected - logged}"

    delivered = email_api.copies_by_message()
    twice = {message: copies for message, copies in delivered.items() if copies > 1}
    assert not twice, f"delivered more than once: {twice}"
    assert set(delivered) == {
        (email_of(contact_id), journey, step)
        for contact_id in contact_ids
        for journey, step in steps
    }
    by_key = {delivery.key: delivery.message_id for delivery in email_api.deliveries}
    assert {row.idempotency_key: row.provider_message_id for row in rows} == by_key
