"""Durations as written: relative waits keep their deadline when a journey continues as new."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import WorkflowEnvironment

from models.journeys import JourneyInput, JourneyStatus
from models.settings import Settings
from tests.factories import add_contact, event_now, message_rows
from tests.journeys import RelativeWait
from worker import build_worker


async def test_a_relative_wait_interrupted_by_continue_as_new_ends_on_time(
    time_skipping_env: WorkflowEnvironment, settings: Settings, engine: AsyncEngine
) -> None:
    env = time_skipping_env
    await add_contact(engine, "rw-1")
    async with build_worker(env.client, settings, engine, journeys=[RelativeWait]):
        handle = await env.client.start_workflow(
            RelativeWait.run,
            JourneyInput(contact_id="rw-1", history_limit=20),
            id="test-relative-wait-rw-1",
            task_queue=settings.task_queue,
        )
        started = (await handle.describe()).start_time
        for _ in range(6):  # each event grows the history; the run continues as new
            await env.sleep(timedelta(minutes=10))
            await handle.signal(RelativeWait.event, await event_now(env, "rw-1", "page_viewed"))
        result = await handle.result()
        last_run = await env.client.get_workflow_handle("test-relative-wait-rw-1").describe()

    assert last_run.run_id != handle.result_run_id  # it did continue as new, mid-wait
    assert result.status == JourneyStatus.COMPLETED
    assert result.steps_done == ["first", "second"]
    sent = {row.step: row.sent_at for row in await message_rows(engine, "rw-1")}
    assert sent["second"] is not None
    assert abs(sent["second"] - (started + timedelta(hours=6))) < timedelta(minutes=2)
