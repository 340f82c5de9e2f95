"""Record the workflow histories that `tests/test_replay.py` replays.

Run `.venv/bin/python -m tests.record_histories [scenario …]` after an intended
change to a journey's commands (guarded with `workflow.patched()` when it ships), review
the diff of `tests/histories/`, and commit it. Each scenario runs on the
time-skipping server with the real worker, database and outbox.

The histories are recorded without the payload codec, on purpose: encrypted,
they could only be replayed with the data keys of the recording, which live in
its throwaway database. The codec passes unencrypted payloads through, so the
replayer (`tests/test_replay.py`, with the codec) reads them as any history
written before the codec.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, time, timedelta
from pathlib import Path

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from models.contact_workflow import ContactInput, ContactState, EraseRequest
from models.db import create_engine, migrate
from models.events import BehaviorEvent
from models.handoff import LeadBand, LeadSlaInput
from models.journeys import ExitRequest, JourneyInput, JourneyState
from models.renewals import RenewalInput
from models.settings import Settings
from starter.dev.cluster import register_search_attributes
from starter.dev.toolchain import start_time_skipping_server
from tests.factories import add_contact
from worker import build_worker

HISTORIES = Path(__file__).parent / "histories"

Scenario = Callable[[WorkflowEnvironment, Settings], Awaitable[WorkflowHandle[object, object]]]


async def _event(
    env: WorkflowEnvironment, contact_id: str, event_type: str, **properties: str
) -> BehaviorEvent:
    return BehaviorEvent(
        event_id=f"evt-{uuid.uuid4()}",
        contact_id=contact_id,
        type=event_type,
        occurred_at=(await env.get_current_time()).astimezone(UTC),
        properties=properties,
    )


async def _closed(handle: WorkflowHandle) -> None:  # type: ignore[type-arg]
    """Wait (without skipping time) until the run has closed.

    After a welcome series, `result()` would let the server skip on into the
    timers of the nurture its routing started.
    """
    for _ in range(300):
        if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{handle.id} did not close")


async def _end_routed_nurture(env: WorkflowEnvironment, contact_id: str) -> str:
    """Terminate the nurture a welcome series' routing started; returns its parent's id.

    Left to run, it would complete after its parent closed; terminated while a
    send is in flight, it would leave an activity behind: either leaves the Java
    test server's time skipping locked (sdk-java#2392), and the scenarios after
    it hang. It is terminated while it waits for its next email's day.
    """
    nurture = env.client.get_workflow_handle(f"nurture-{contact_id}")
    for _ in range(300):
        state = await nurture.query("state", result_type=JourneyState)
        if state.next_wake_at is not None:
            break
        await asyncio.sleep(0.1)
    else:
        raise TimeoutError(f"{nurture.id} is not waiting")
    await nurture.terminate(reason="recorded")
    return (await nurture.describe()).parent_id or ""


async def welcome_completed(env: WorkflowEnvironment, settings: Settings) -> WorkflowHandle:  # type: ignore[type-arg]
    handle = await env.client.start_workflow(
        "welcome-series",
        JourneyInput(contact_id="replay-1"),
        id="welcome-series-replay-1",
        task_queue=settings.task_queue,
    )
    await env.sleep(timedelta(days=7, minutes=1))  # after the last email and the routing
    await _closed(handle)
    await _end_routed_nurture(env, "replay-1")
    return handle


async def welcome_routed_to_nurture(env: WorkflowEnvironment, settings: Settings) -> WorkflowHandle:  # type: ignore[type-arg]
    """A contact still Cold after the five emails: the `route` step starts its nurture."""
    handle = await env.client.start_workflow(
        "welcome-series",
        JourneyInput(contact_id="replay-4"),
        id="welcome-series-replay-4",
        task_queue=settings.task_queue,
    )
    await env.sleep(timedelta(days=7, minutes=1))  # after the last email and the routing
    await _closed(handle)
    started_by = await _end_routed_nurture(env, "replay-4")
    if started_by != handle.id:
        raise RuntimeError(f"nurture-replay-4 was not started by the routing: {started_by!r}")
    return handle


async def welcome_unsubscribed_paused(
    env: WorkflowEnvironment, settings: Settings
) -> WorkflowHandle:  # type: ignore[type-arg]
    handle = await env.client.start_workflow(
        "welcome-series",
        JourneyInput(contact_id="replay-2"),
        id="welcome-series-replay-2",
        task_queue=settings.task_queue,
    )
    await env.sleep(timedelta(days=1, hours=2))
    await handle.signal("pause")
    await env.sleep(timedelta(hours=5))
    await handle.signal("resume")
    await env.sleep(timedelta(days=2))
    await handle.signal("event", await _event(env, "replay-2", "unsubscribed"))
    await handle.result()
    return handle


async def welcome_logged_skipped_exited(
    env: WorkflowEnvironment, settings: Settings
) -> WorkflowHandle:  # type: ignore[type-arg]
    """The journey-run log and memo at start, a skipped Day-1 wait, an operator exit."""
    handle = await env.client.start_workflow(
        "welcome-series",
        JourneyInput(contact_id="replay-7"),
        id="welcome-series-replay-7",
        task_queue=settings.task_queue,
    )
    await env.sleep(timedelta(hours=6))
    await handle.signal("skip_wait")
    await env.sleep(timedelta(days=1, hours=1))  # Day 2 comes a day after the skipped Day 1
    await handle.signal("exit", ExitRequest(reason="operator"))
    await handle.result()
    return handle


async def renewal_moved_renewed(env: WorkflowEnvironment, settings: Settings) -> WorkflowHandle:  # type: ignore[type-arg]
    renewal = (await env.get_current_time()).astimezone(UTC) + timedelta(days=100)
    handle = await env.client.start_workflow(
        "renewal-countdown",
        RenewalInput(contact_id="replay-1", subscription_id="sub_replay", renewal_date=renewal),
        id="renewal-countdown-replay-1-sub_replay",
        task_queue=settings.task_queue,
    )
    await env.sleep(timedelta(days=45))  # after the 90- and 60-day steps
    moved = await _event(env, "replay-1", "renewal_scheduled")
    properties = {"renewal_date": (renewal + timedelta(days=30)).isoformat()}
    await handle.signal("event", moved.model_copy(update={"properties": properties}))
    await env.sleep(timedelta(days=70))  # after the 30-day steps of the new date
    await handle.signal("event", await _event(env, "replay-1", "renewed"))
    await handle.result()
    return handle


async def pricing_abandon_purchased(env: WorkflowEnvironment, settings: Settings) -> WorkflowHandle:  # type: ignore[type-arg]
    handle = await env.client.start_workflow(
        "pricing-abandon",
        JourneyInput(contact_id="replay-3"),
        id="pricing-abandon-replay-3",
        task_queue=settings.task_queue,
    )
    await env.sleep(timedelta(days=1))  # after the email, in the 2-day wait
    await handle.signal("event", await _event(env, "replay-3", "purchased"))  # → onboarding
    await env.sleep(timedelta(days=29, minutes=1))  # after the 30-day re-entry window
    await _closed(handle)
    await _end_routed_nurture(env, "replay-3")  # started by the onboarding's routing
    return handle


async def nurture_handed_to_sales(env: WorkflowEnvironment, settings: Settings) -> WorkflowHandle:  # type: ignore[type-arg]
    handle = await env.client.start_workflow(
        "nurture",
        JourneyInput(contact_id="replay-2"),
        id="nurture-replay-2",
        task_queue=settings.task_queue,
    )
    await env.sleep(timedelta(days=10))  # after week 1
    await handle.signal("event", await _event(env, "replay-2", "email_clicked"))
    await env.sleep(timedelta(days=5))  # after week 2
    await handle.signal("exit", ExitRequest(reason="handed-to-sales"))
    await handle.result()
    return handle


async def lead_sla_reminded_contacted_qualified(
    env: WorkflowEnvironment, settings: Settings
) -> WorkflowHandle:  # type: ignore[type-arg]
    """Hand-off, SQL at 2 min, first-touch reminder at 5, contacted at 6, qualified at 5 h."""
    handle = await env.client.start_workflow(
        "lead-sla",
        LeadSlaInput(contact_id="replay-5", band=LeadBand(band="MQL", score=30)),
        id="lead-sla-replay-5",
        task_queue=settings.task_queue,
    )
    await env.sleep(timedelta(minutes=2))
    await handle.signal("band_changed", LeadBand(band="SQL", score=55))
    await env.sleep(timedelta(minutes=4))  # after the first-touch reminder
    await handle.signal("event", await _event(env, "replay-5", "rep_contacted"))
    await env.sleep(timedelta(hours=5))
    await handle.signal("event", await _event(env, "replay-5", "lead_qualified"))
    await handle.result()
    return handle


async def lead_sla_warned_qualified_demo_held(
    env: WorkflowEnvironment, settings: Settings
) -> WorkflowHandle:  # type: ignore[type-arg]
    """Hand-off, contacted at 3 min, qualification reminder at 24 h and warning at 46 h,
    qualified at 47 h, the SQL follow-up's reminder at 83 h, a demo at 90 h."""
    handle = await env.client.start_workflow(
        "lead-sla",
        LeadSlaInput(contact_id="replay-9", band=LeadBand(band="MQL", score=30)),
        id="lead-sla-replay-9",
        task_queue=settings.task_queue,
    )
    await env.sleep(timedelta(minutes=3))
    await handle.signal("event", await _event(env, "replay-9", "rep_contacted"))
    await env.sleep(timedelta(hours=47) - timedelta(minutes=3))
    await handle.signal("event", await _event(env, "replay-9", "lead_qualified"))
    await env.sleep(timedelta(hours=43))
    await handle.signal("event", await _event(env, "replay-9", "meeting_held", kind="demo"))
    await handle.result()
    return handle


async def contact_scored_handed_off_erased(
    env: WorkflowEnvironment, settings: Settings
) -> WorkflowHandle:  # type: ignore[type-arg]
    """Sign-up, pricing visit, demo request (35: MQL, hand-off), a duplicate, then erasure."""
    subscribed = await _event(env, "replay-6", "subscribed")
    handle = await env.client.start_workflow(
        "contact",
        ContactInput(contact_id="replay-6"),
        id="contact-replay-6",
        task_queue=settings.task_queue,
        start_signal="event",
        start_signal_args=[subscribed],
    )
    for event_type in ("pricing_page_viewed", "demo_requested"):
        await handle.signal("event", await _event(env, "replay-6", event_type))
    await handle.signal("event", subscribed)  # a retried delivery: dropped
    for _ in range(300):
        state = await handle.query("state", result_type=ContactState)
        if "lead-sla-replay-6" in state.journeys and state.duplicates_dropped == 1:
            break
        await asyncio.sleep(0.1)
    else:
        raise TimeoutError("contact-replay-6 did not hand off")
    await handle.signal("forget", EraseRequest())
    await _closed(handle)
    for journey in ("welcome-series", "pricing-abandon", "lead-sla"):
        await _closed(env.client.get_workflow_handle(f"{journey}-replay-6"))
    return handle


async def contact_unsubscribed_by_email_shredded(
    env: WorkflowEnvironment, settings: Settings
) -> WorkflowHandle:  # type: ignore[type-arg]
    """Sign-up (once per contact, from the run log), pricing visit, an email-only unsubscribe
    (the journeys left without a channel exit), then erasure with crypto-shredding."""
    subscribed = await _event(env, "replay-8", "subscribed")
    handle = await env.client.start_workflow(
        "contact",
        ContactInput(contact_id="replay-8"),
        id="contact-replay-8",
        task_queue=settings.task_queue,
        start_signal="event",
        start_signal_args=[subscribed],
    )
    await handle.signal("event", await _event(env, "replay-8", "pricing_page_viewed"))
    for _ in range(300):
        state = await handle.query("state", result_type=ContactState)
        if {"welcome-series-replay-8", "pricing-abandon-replay-8"} <= set(state.journeys):
            break
        await asyncio.sleep(0.1)
    else:
        raise TimeoutError("contact-replay-8 did not start its journeys")
    await handle.signal("event", await _event(env, "replay-8", "unsubscribed", channel="email"))
    for journey in ("welcome-series", "pricing-abandon"):
        await _closed(env.client.get_workflow_handle(f"{journey}-replay-8"))
    await handle.signal("forget", EraseRequest())
    await _closed(handle)
    return handle


SCENARIOS: dict[str, Scenario] = {
    "welcome-series-completed": welcome_completed,
    "welcome-series-paused-unsubscribed": welcome_unsubscribed_paused,
    "renewal-countdown-moved-renewed": renewal_moved_renewed,
    "pricing-abandon-emailed-purchased": pricing_abandon_purchased,
    "nurture-handed-to-sales": nurture_handed_to_sales,
    "welcome-series-routed-to-nurture": welcome_routed_to_nurture,
    "lead-sla-reminded-contacted-qualified": lead_sla_reminded_contacted_qualified,
    "lead-sla-warned-qualified-demo-held": lead_sla_warned_qualified_demo_held,
    "contact-scored-handed-off-erased": contact_scored_handed_off_erased,
    "welcome-series-logged-skipped-exited": welcome_logged_skipped_exited,
    "contact-unsubscribed-by-email-shredded": contact_unsubscribed_by_email_shredded,
}


async def record(
    client_env: WorkflowEnvironment, directory: Path, names: Sequence[str] = ()
) -> list[Path]:
    """Run the named scenarios (default: all) and write their histories as JSON.

    Returns:
        The files written.
    """
    settings = Settings(
        database_url=f"sqlite:///{directory / 'journeys.db'}",
        outbox_dir=directory / "outbox",
        quiet_hours_start=time(0, 0),  # no quiet hours: the scenarios run at any time of day
        quiet_hours_end=time(0, 0),
        task_queue=f"record-{uuid.uuid4()}",
    )
    engine = create_engine(settings.database_url)
    await migrate(engine)
    for contact_id in (
        "replay-1",
        "replay-2",
        "replay-3",
        "replay-4",
        "replay-5",
        "replay-6",
        "replay-7",
        "replay-8",
        "replay-9",
    ):
        await add_contact(engine, contact_id, first_name="Replay")
    written = []
    client: Client = client_env.client
    async with build_worker(client, settings, engine):
        for name, scenario in SCENARIOS.items():
            if names and name not in names:
                continue
            handle = await scenario(client_env, settings)
            history = await handle.fetch_history()
            path = HISTORIES / f"{name}.json"
            path.write_text(history.to_json())
            written.append(path)
    await engine.dispose()
    return written


async def main() -> None:
    """Record the scenarios named on the command line (default: all) into `tests/histories/`."""
    names = sys.argv[1:]
    unknown = sorted(set(names) - set(SCENARIOS))
    if unknown:
        raise SystemExit(f"unknown scenarios {unknown}; known: {', '.join(SCENARIOS)}")
    env = await start_time_skipping_server(data_converter=pydantic_data_converter)
    await register_search_attributes(env.client)
    try:
        with tempfile.TemporaryDirectory() as directory:
            for path in await record(env, Path(directory), names):
                print(f"recorded {path}")  # noqa: T201
    finally:
        await env.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
