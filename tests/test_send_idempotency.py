"""A send that fails mid-way and is retried by Temporal delivers exactly once."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from activities.providers import OutboxEmailProvider, OutgoingEmail
from models.db import session_factory
from models.journeys import JourneyInput, JourneyStatus
from models.settings import Settings
from models.tables import MessageLog
from tests.factories import add_contact
from tests.outbox import read_outbox
from worker import build_worker
from workflows.journeys.welcome_series import WelcomeSeries


class CrashingOutbox(OutboxEmailProvider):
    """The real outbox, whose first delivery fails as if the worker died.

    `crash_after_delivery` decides whether the crash comes after the .eml was
    written (the log row still says `pending`) or before.
    """

    def __init__(self, directory: Path, engine: AsyncEngine, *, crash_after_delivery: bool):
        super().__init__(directory)
        self._engine = engine
        self._crash_after_delivery = crash_after_delivery
        self.calls = 0
        self.row_status_at_first_call: str | None = None

    async def deliver(self, email: OutgoingEmail) -> str:
        self.calls += 1
        if self.calls > 1:
            return await super().deliver(email)
        async with session_factory(self._engine)() as session:
            row = (
                await session.exec(
                    select(MessageLog).where(MessageLog.idempotency_key == email.idempotency_key)
                )
            ).one()
            self.row_status_at_first_call = row.status
        if self._crash_after_delivery:
            await super().deliver(email)
        raise RuntimeError("worker crashed during delivery")


@pytest.mark.parametrize("crash_after_delivery", [True, False], ids=["after", "before"])
async def test_retried_send_delivers_once(
    crash_after_delivery: bool,
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
) -> None:
    await add_contact(engine, "linus", first_name="Linus")
    provider = CrashingOutbox(
        settings.outbox_dir, engine, crash_after_delivery=crash_after_delivery
    )
    client = time_skipping_env.client
    async with build_worker(client, settings, engine, email_provider=provider):
        handle = await client.start_workflow(
            WelcomeSeries.run,
            JourneyInput(contact_id="linus"),
            id="welcome-series-linus",
            task_queue=settings.task_queue,
        )
        result = await handle.result()

    assert result.status == JourneyStatus.COMPLETED
    assert result.messages_sent == 5
    assert provider.row_status_at_first_call == "pending"
    assert provider.calls == 6

    attempts = [
        event.activity_task_started_event_attributes.attempt
        async for event in handle.fetch_history_events()
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    ]
    # attempts[0] is the first send (the journey-run log is a local activity)
    assert attempts[0] == 2, "the first send should have been retried by Temporal"

    outbox = read_outbox(settings.outbox_dir)
    assert len(outbox) == 5
    assert len(list(settings.outbox_dir.rglob("*.tmp"))) == 0
    async with session_factory(engine)() as session:
        rows = (await session.exec(select(MessageLog))).all()
    day0 = [row for row in rows if row.step == "day0"]
    assert len(rows) == 5
    assert len(day0) == 1
    assert day0[0].status == "sent"
    assert day0[0].provider_message_id == outbox["welcome-series-linus/day0"]["Message-ID"]
