"""The welcome series on the time-skipping server: schedule, content, exits."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from email.utils import parsedate_to_datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from models.db import session_factory
from models.events import BehaviorEvent
from models.journeys import JourneyInput, JourneyState, JourneyStatus
from models.settings import Settings
from models.tables import MessageLog
from tests.factories import add_contact
from tests.outbox import read_outbox, text_body
from workflows.welcome_series import WelcomeSeries

SCHEDULE = {"day0": 0, "day1": 1, "day2": 2, "day4": 4, "day7": 7}


async def start(
    client: Client, settings: Settings, contact_id: str
) -> WorkflowHandle[WelcomeSeries, JourneyState]:
    return await client.start_workflow(
        WelcomeSeries.run,
        JourneyInput(contact_id=contact_id),
        id=f"welcome-series-{contact_id}",
        task_queue=settings.task_queue,
    )


async def message_log(engine: AsyncEngine) -> list[MessageLog]:
    async with session_factory(engine)() as session:
        return list((await session.exec(select(MessageLog).order_by(col(MessageLog.id)))).all())


async def test_five_emails_on_day_0_1_2_4_7_with_rendered_tokens(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
    make_worker: Callable[[Client], Worker],
) -> None:
    await add_contact(engine, "ada", first_name="Ada", company="Acme")
    await add_contact(engine, "anon")
    client = time_skipping_env.client
    async with make_worker(client):
        handles = [await start(client, settings, cid) for cid in ("ada", "anon")]
        results = [await handle.result() for handle in handles]
        started = [(await handle.describe()).start_time for handle in handles]

    for result in results:
        assert result.status == JourneyStatus.COMPLETED
        assert result.messages_sent == 5
        assert result.steps_done == list(SCHEDULE)

    outbox = read_outbox(settings.outbox_dir)
    assert sorted(outbox) == sorted(
        f"welcome-series-{cid}/{step}" for cid in ("ada", "anon") for step in SCHEDULE
    )
    for cid, start_time in zip(("ada", "anon"), started, strict=True):
        for step, day in SCHEDULE.items():
            message = outbox[f"welcome-series-{cid}/{step}"]
            sent_at = parsedate_to_datetime(message["Date"])
            assert abs(sent_at - (start_time + timedelta(days=day))) < timedelta(minutes=1), step
            assert message["X-Journey-Step"] == step
            assert message["To"] == f"{cid}@example.com"

    ada_day0, anon_day0 = outbox["welcome-series-ada/day0"], outbox["welcome-series-anon/day0"]
    assert ada_day0["Subject"] == "Your Email Marketing Playbook is ready! 📥"
    assert text_body(ada_day0).startswith("Hey Ada!")
    assert text_body(anon_day0).startswith("Hey there!")
    assert "https://northwind.example/playbook" in text_body(ada_day0)
    assert "500 Harbor Street" in text_body(anon_day0)
    assert "Ada" not in text_body(outbox["welcome-series-anon/day7"])

    rows = await message_log(engine)
    assert [
        (r.contact_id, r.step, r.template, r.status) for r in rows if r.contact_id == "ada"
    ] == [("ada", step, f"welcome-series/{step}", "sent") for step in SCHEDULE]
    assert all(r.provider_message_id == outbox[r.idempotency_key]["Message-ID"] for r in rows)


@pytest.mark.parametrize("exit_event", ["unsubscribed", "purchased"])
async def test_exit_event_on_day_3_stops_after_three_emails(
    exit_event: str,
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
    make_worker: Callable[[Client], Worker],
) -> None:
    await add_contact(engine, "grace", first_name="Grace")
    client = time_skipping_env.client
    async with make_worker(client):
        handle = await start(client, settings, "grace")
        await time_skipping_env.sleep(timedelta(days=3))
        assert (await handle.query(WelcomeSeries.state)).next_step == "day4"
        await handle.signal(
            WelcomeSeries.event,
            BehaviorEvent(
                event_id=f"evt-{exit_event}",
                contact_id="grace",
                type=exit_event,
                occurred_at=await time_skipping_env.get_current_time(),
            ),
        )
        result = await handle.result()

    assert result.status == JourneyStatus.EXITED
    assert result.exit_reason == exit_event
    assert result.messages_sent == 3
    assert sorted(read_outbox(settings.outbox_dir)) == [
        "welcome-series-grace/day0",
        "welcome-series-grace/day1",
        "welcome-series-grace/day2",
    ]
    assert [row.step for row in await message_log(engine)] == ["day0", "day1", "day2"]
