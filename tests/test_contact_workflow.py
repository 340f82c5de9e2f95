"""The contact workflow on the time-skipping server (real worker, DB file, outbox).

Scores are checked against values computed by hand from seed 000's table:
pricing +10 (−2/7 d), click +3 (−1/14 d), visit +2 (−1/14 d), demo +25 (no
decay), open +1 (−1/30 d); bands 0–10 Cold, 11–25 Warming, 26–50 MQL,
51–75 SQL, 76+ Hot.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
from google.protobuf.message import Message
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from models.contact_workflow import ContactInput, ContactState, EventBatch
from models.db import session_factory
from models.events import BehaviorEvent
from models.journeys import JourneyInput, JourneyStatus
from models.search_attributes import LEAD_SCORE, LIFECYCLE_STAGE
from models.settings import Settings
from models.tables import Contact, ContactEvent, CrmTask, MessageLog, Suppression
from runtime.codec import ERASED_TEXT, is_encrypted
from runtime.contact_signals import contact_workflow_id, signal_contact
from starter.services.intake import accept_events
from starter.services.operations import forget_contact
from tests.contact_kit import Contacts, journey, journey_when
from tests.factories import add_contact, add_lead, event_now
from workflows.contact import RESCORE_GRANULARITY


async def test_scores_decay_over_7_14_30_60_days_and_drop_a_band_by_decay_alone(
    contacts: Contacts, worker: Worker, time_skipping_env: WorkflowEnvironment
) -> None:
    """No contact row: scoring only (no CRM, no hand-off)."""
    for event_type in ("pricing_page_viewed", "email_clicked", "website_visited", "demo_requested"):
        await contacts.send("decay", event_type)
    state = await contacts.state_when("decay", lambda s: s.events_accepted == 4)
    assert (state.score, state.band) == (10 + 3 + 2 + 25, "MQL")
    assert state.breakdown == {
        "demo_requested": 25,
        "email_clicked": 3,
        "pricing_page_viewed": 10,
        "website_visited": 2,
    }
    # day 7: pricing 8 | day 14: pricing 6, click 2, visit 1 | day 30: pricing 10-2*4,
    # click 3-2, visit 0 | day 60: pricing 0, click 0 → demo alone: 25, Warming.
    for days, expected, band in (
        (7, 38, "MQL"),
        (14, 34, "MQL"),
        (30, 28, "MQL"),
        (60, 25, "Warming"),
    ):
        # Decay wake-ups are at least RESCORE_GRANULARITY apart: on time within it.
        due = timedelta(days=days) + RESCORE_GRANULARITY
        await time_skipping_env.sleep(due - await _elapsed(contacts, "decay"))
        state = await contacts.state_when("decay", partial(scored, expected))
        assert state.band == band, f"day {days}"
    description = await contacts.handle("decay").describe()
    assert description.typed_search_attributes.get(LEAD_SCORE) == 25
    assert description.typed_search_attributes.get(LIFECYCLE_STAGE) == "Warming"


def scored(points: int, state: ContactState) -> bool:
    return state.score == points


async def _elapsed(contacts: Contacts, contact_id: str) -> timedelta:
    start = (await contacts.handle(contact_id).describe()).start_time
    return await contacts.env.get_current_time() - start + timedelta(seconds=1)


async def stored_events(engine: AsyncEngine, contact_id: str) -> list[ContactEvent]:
    async with session_factory(engine)() as session:
        rows = await session.exec(select(ContactEvent).where(ContactEvent.contact_id == contact_id))
        return list(rows.all())


async def test_a_duplicate_event_is_processed_once_even_after_the_workflow_forgot_it(
    contacts: Contacts, worker: Worker, engine: AsyncEngine
) -> None:
    click = await contacts.send("dup", "email_clicked", event_id="click-1")
    # The gateway answers a retry from its receipts; the workflow is the second line.
    await contacts.signal_directly(click)
    state = await contacts.state_when(
        "dup", lambda s: s.events_accepted + s.duplicates_dropped == 2
    )
    assert (state.events_accepted, state.duplicates_dropped, state.score) == (1, 1, 3)
    # A new contact workflow (nothing in memory) still recognises it: the database does.
    await contacts.handle("dup").terminate()
    await contacts.signal_directly(click)
    state = await contacts.state_when("dup", lambda s: s.duplicates_dropped == 1)
    assert (state.events_accepted, state.score) == (0, 0)
    assert [row.event_id for row in await stored_events(engine, "dup")] == ["click-1"]


async def test_unknown_event_types_are_stored_and_score_nothing(
    contacts: Contacts, worker: Worker, engine: AsyncEngine
) -> None:
    await contacts.send("unk", "signed_guestbook", page="/guestbook")
    state = await contacts.state_when("unk", lambda s: s.events_accepted == 1)
    assert (state.score, state.band) == (0, "Cold")
    [row] = await stored_events(engine, "unk")
    assert (row.type, row.properties) == ("signed_guestbook", {"page": "/guestbook"})


async def test_trigger_rules_start_journeys_and_a_renewal_event_moves_the_running_countdown(
    contacts: Contacts, worker: Worker, engine: AsyncEngine, time_skipping_env: WorkflowEnvironment
) -> None:
    client = time_skipping_env.client
    await add_contact(engine, "trig")
    now = await time_skipping_env.get_current_time()
    await contacts.send("trig", "subscribed")
    await contacts.send("trig", "pricing_page_viewed")
    await contacts.send(
        "trig",
        "renewal_scheduled",
        subscription_id="pro",
        renewal_date=(now + timedelta(days=100)).isoformat(),
    )
    welcome = await journey_when(client, "welcome-series-trig", lambda s: s.messages_sent == 1)
    assert welcome.status == JourneyStatus.RUNNING
    pricing = await journey_when(
        client, "pricing-abandon-trig", lambda s: s.next_wake_at is not None
    )
    assert pricing.next_step == "email"
    renewal = await journey_when(
        client, "renewal-countdown-trig-pro", lambda s: s.next_wake_at is not None
    )
    assert renewal.next_wake_at is not None
    assert renewal.next_wake_at - now == pytest.approx(timedelta(days=10), abs=timedelta(minutes=1))
    # Running already: the event is forwarded and moves the date; no second countdown.
    await contacts.send(
        "trig",
        "renewal_scheduled",
        subscription_id="pro",
        renewal_date=(now + timedelta(days=200)).isoformat(),
    )
    moved = await journey_when(
        client,
        "renewal-countdown-trig-pro",
        lambda s: s.next_wake_at is not None and s.next_wake_at - now > timedelta(days=100),
    )
    assert moved.next_wake_at is not None
    assert moved.next_wake_at - now == pytest.approx(timedelta(days=110), abs=timedelta(minutes=1))
    state = await contacts.state_when("trig", lambda s: s.events_accepted == 4)
    assert set(state.journeys) == {
        "welcome-series-trig",
        "pricing-abandon-trig",
        "renewal-countdown-trig-pro",
    }
    # A second sign-up does not restart the welcome series.
    await contacts.send("trig", "subscribed")
    await contacts.state_when("trig", lambda s: s.events_accepted == 5)
    assert (await journey(client, "welcome-series-trig")).messages_sent == 1


async def test_events_for_a_contact_not_in_the_crm_are_scored_but_start_nothing(
    contacts: Contacts, worker: Worker, time_skipping_env: WorkflowEnvironment
) -> None:
    await contacts.send("ghost", "subscribed")
    await contacts.send("ghost", "demo_requested")
    state = await contacts.state_when("ghost", lambda s: s.events_accepted == 2)
    assert (state.score, state.band, state.journeys) == (25, "Warming", {})


async def message_statuses(engine: AsyncEngine, contact_id: str) -> dict[str, str]:
    async with session_factory(engine)() as session:
        rows = await session.exec(
            select(MessageLog)
            .where(MessageLog.contact_id == contact_id)
            .order_by(col(MessageLog.id))
        )
        return {f"{row.journey}/{row.step}": row.status for row in rows.all()}


@pytest.mark.parametrize("path", ["gateway", "direct signal"])
async def test_unsubscribe_a_second_before_a_scheduled_send_stops_it(
    contacts: Contacts,
    worker: Worker,
    engine: AsyncEngine,
    settings: Settings,
    time_skipping_env: WorkflowEnvironment,
    path: str,
) -> None:
    """Real time (no skipping): Day 1 is 3 s after Day 0; the unsubscribe comes at 2 s.

    The gateway path writes the suppression before signalling; a service that
    signals `contact-{id}` directly relies on the workflow's ingest writing it.
    """
    client = time_skipping_env.client
    contact_id = "unsub-gw" if path == "gateway" else "unsub-direct"
    await add_contact(engine, contact_id)
    await signal_contact(
        client,
        contact_id,
        "event",
        await event_now(time_skipping_env, contact_id, "subscribed"),
        task_queue=settings.task_queue,
        day_seconds=3,
    )
    welcome_id = f"welcome-series-{contact_id}"
    sent = await journey_when(client, welcome_id, lambda s: s.messages_sent == 1)
    elapsed = await time_skipping_env.get_current_time() - sent.enrolled_at
    await asyncio.sleep(max(0.0, 2 - elapsed.total_seconds()))
    unsubscribe = await event_now(time_skipping_env, contact_id, "unsubscribed")
    if path == "gateway":
        await accept_events(
            client, engine, [unsubscribe], task_queue=settings.task_queue, day_seconds=3,
            suppression_key=settings.suppression_key(),
        )  # fmt: skip
    else:
        await contacts.handle(contact_id).signal("event", unsubscribe)
    exited = await journey_when(client, welcome_id, lambda s: s.status != JourneyStatus.RUNNING)
    assert (exited.status, exited.exit_reason) == (JourneyStatus.EXITED, "unsubscribed")
    await asyncio.sleep(3)  # past Day 2 as well
    assert await message_statuses(engine, contact_id) == {"welcome-series/day0": "sent"}
    async with session_factory(engine)() as session:
        suppressed = (
            await session.exec(select(Suppression).where(Suppression.contact_id == contact_id))
        ).all()
    assert [(row.channel, row.reason) for row in suppressed] == [("email", "unsubscribed")]


async def test_erasure_ends_every_journey_deletes_personal_data_and_keeps_a_hashed_suppression(
    engine: AsyncEngine,
    settings: Settings,
    dev_env: WorkflowEnvironment,
    make_worker: Callable[[Client], Worker],
) -> None:
    """On the dev server: erasure also sweeps visibility for workflows it could not know of,
    and destroys the contact's data key: its histories can no longer be read, by a client
    with the codec or without, while another contact's still can."""
    client = dev_env.client
    contacts = Contacts(dev_env, settings, engine)
    async with make_worker(client):
        await add_contact(engine, "erase-me", email="erase.me@example.com", phone="+15035550199")
        await add_contact(engine, "erase-keep", email="keep.me@example.com")
        await contacts.send("erase-me", "subscribed", source="leadmagnet-erase")
        await contacts.send("erase-me", "pricing_page_viewed")
        await contacts.send("erase-keep", "subscribed", source="leadmagnet-keep")
        await journey_when(client, "welcome-series-erase-me", lambda s: s.messages_sent == 1)
        assert (settings.outbox_dir / "welcome-series-erase-me" / "day0.eml").exists()
        before = await history_payloads(client, "contact-erase-me")
        assert PERSONAL in b"".join(p.data for p in await decoded(client, before))

        assert await forget_contact(client, engine, "erase-me", task_queue=settings.task_queue)

        for workflow_id in ("welcome-series-erase-me", "pricing-abandon-erase-me"):
            ended = await client.get_workflow_handle(workflow_id).describe()
            assert ended.status == WorkflowExecutionStatus.COMPLETED, workflow_id  # exited
        assert (
            await contacts.handle("erase-me").describe()
        ).status == WorkflowExecutionStatus.COMPLETED
        for workflow_id in (
            "contact-erase-me",
            "welcome-series-erase-me",
            "pricing-abandon-erase-me",
        ):
            stored = await history_payloads(client, workflow_id)
            plain = [p.data for p in stored if not is_encrypted(p)]
            odd = [data for data in plain if not PATCH_MARKER.fullmatch(data)]
            assert stored and not odd, (workflow_id, odd)
            assert PERSONAL not in b"".join(p.data for p in stored), workflow_id
            opened = await decoded(client, stored)
            assert all(
                _erased(o) for p, o in zip(stored, opened, strict=True) if is_encrypted(p)
            ), workflow_id
            with pytest.raises(Exception, match="encoding"):  # a plain client cannot either
                await pydantic_data_converter.decode(stored[:1], [ContactInput])
        with pytest.raises(ValidationError, match=ERASED_TEXT):  # a key never stored
            await contacts.handle("erase-me").result()
        kept = await decoded(client, await history_payloads(client, "contact-erase-keep"))
        assert b"leadmagnet-keep" in b"".join(p.data for p in kept)
        async with session_factory(engine)() as session:
            assert await session.get(Contact, "erase-me") is None
            for table in (ContactEvent, MessageLog):
                rows = await session.exec(select(table).where(col(table.contact_id) == "erase-me"))
                assert rows.all() == [], table.__tablename__
            suppressions = (await session.exec(select(Suppression))).all()
        assert sorted((row.channel, row.contact_id) for row in suppressions) == [
            ("email", None),
            ("sms", None),
        ]
        assert {row.address_hash for row in suppressions} == {
            Suppression.hash_address("erase.me@example.com", key=settings.suppression_key()),
            Suppression.hash_address("+15035550199", key=settings.suppression_key()),
        }
        assert not (settings.outbox_dir / "welcome-series-erase-me").exists()

        # A re-import under a new id is not mailed: the hash still matches.
        await add_contact(engine, "erase-again", email="Erase.Me@example.com")
        await contacts.send("erase-again", "subscribed")
        await journey_when(client, "welcome-series-erase-again", lambda s: "day0" in s.steps_done)
        assert await message_statuses(engine, "erase-again") == {
            "welcome-series/day0": "suppressed"
        }


PATCH_MARKER = re.compile(
    rb'|\{"id":"[a-z-]+","deprecated":false\}'
    rb'|\{"seq":\d+,"attempt":\d+,"activity_id":"\d+","activity_type":"[a-z_]+",'
    rb'[a-z_":{},0-9]*\}'
)
"""What the SDK Core writes without the codec: `None` (nothing), patch markers (a patch id)
and local-activity markers (sequence, attempt, activity type, times; the result is encrypted)."""
PERSONAL = b"leadmagnet-erase"
"""An event property of the erased contact: in its histories, readable only before erasure."""


async def history_payloads(client: Client, workflow_id: str) -> list[Payload]:
    """Every payload of a workflow's history (inputs, signals, results, memos, metadata)."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    found: list[Payload] = []

    def walk(message: Message) -> None:
        if isinstance(message, Payload):
            found.append(message)
            return
        for field, value in message.ListFields():
            if field.message_type is None:
                continue
            if isinstance(value, Message):
                walk(value)
                continue
            for item in value.values() if hasattr(value, "values") else value:
                if isinstance(item, Message):
                    walk(item)

    for event in history.events:
        walk(event)
    return [p for p in found if p.metadata.get("encoding") != b"json/plain" or not _search(p)]


def _search(payload: Payload) -> bool:
    return "type" in payload.metadata  # search attributes: not encoded by codecs


def _erased(payload: Payload) -> bool:
    return payload.metadata.get("erased") == b"true"


async def decoded(client: Client, payloads: list[Payload]) -> list[Payload]:
    """The payloads as the client's codec decodes them."""
    codec = client.data_converter.payload_codec
    assert codec is not None
    return await codec.decode(payloads)


async def test_20000_events_across_continue_as_new_keep_the_score_and_the_seen_event_memory(
    engine: AsyncEngine,
    settings: Settings,
    dev_env: WorkflowEnvironment,
    make_worker: Callable[[Client], Worker],
) -> None:
    """On the dev server: 40 batches of 500 (475 unscored views, 24 opens, 1 demo request).

    The opens happened 30 days minus 90 seconds ago. By hand: 40 × 24 opens
    × 1 + 40 demos × 25 = 1,960 (Hot); seconds later the opens have decayed to
    0 and 1,000 remains (a durable timer of the run that continued as new).
    """
    client = dev_env.client
    contacts = Contacts(dev_env, settings, engine)
    opened_at = datetime.now(UTC) - timedelta(days=30) + timedelta(seconds=90)

    def batch(number: int) -> EventBatch:
        kinds = ["page_scrolled"] * 475 + ["email_opened"] * 24 + ["demo_requested"]
        return EventBatch(
            events=[
                BehaviorEvent(
                    event_id=f"big-{number}-{index}",
                    contact_id="big",
                    type=kind,
                    occurred_at=opened_at,
                )
                for index, kind in enumerate(kinds)
            ]
        )

    async with make_worker(client):
        first = await client.start_workflow(
            "contact",
            ContactInput(contact_id="big", history_limit=50),
            id=contact_workflow_id("big"),
            task_queue=settings.task_queue,
            start_signal="events",
            start_signal_args=[batch(0)],
        )
        for number in range(1, 40):
            await contacts.handle("big").signal("events", batch(number))
        state = await contacts.state_when("big", lambda s: s.events_accepted == 20_000)
        assert (state.score, state.band, state.duplicates_dropped) == (1_960, "Hot", 0)
        assert (await contacts.handle("big").describe()).run_id != first.result_run_id
        # The last batch again, after the continue-as-new: all 500 dropped, score unchanged.
        await contacts.handle("big").signal("events", batch(39))
        state = await contacts.state_when("big", lambda s: s.duplicates_dropped == 500)
        assert (state.events_accepted, state.score) == (20_000, 1_960)
        decayed_at = opened_at + timedelta(days=30)
        await asyncio.sleep((decayed_at - datetime.now(UTC)).total_seconds())
        state = await contacts.state_when("big", lambda s: s.score == 1_000)
        assert state.breakdown == {"demo_requested": 1_000}


async def test_crm_gets_score_band_and_seed_tags_and_an_mql_is_handed_to_sales(
    contacts: Contacts,
    worker: Worker,
    engine: AsyncEngine,
    settings: Settings,
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """subscribed(source) → download 5 + pricing 10 + demo 25 = 40 MQL: hand-off, nurture ends.

    Then a trial (+30 = 70, SQL) raises the priority of the running hand-off.
    """
    client = time_skipping_env.client
    await add_lead(engine, "lead", first_name="Lea", attributes={"region": "EMEA"})
    await client.start_workflow(
        "nurture",
        JourneyInput(contact_id="lead"),
        id="nurture-lead",
        task_queue=settings.task_queue,
    )
    await contacts.send("lead", "subscribed", source="leadmagnet_email-guide")
    await contacts.send("lead", "content_downloaded", topic="Email Marketing")
    await contacts.send("lead", "pricing_page_viewed", utm_source="google", utm_campaign="q4")
    await contacts.send("lead", "demo_requested")
    state = await contacts.state_when("lead", lambda s: s.events_accepted == 4)
    assert (state.score, state.band) == (40, "MQL")
    sla = await journey_when(client, "lead-sla-lead", lambda s: "handoff" in s.actions_done)
    assert sla.status == JourneyStatus.RUNNING
    nurture = await journey_when(
        client, "nurture-lead", lambda s: s.status != JourneyStatus.RUNNING
    )
    assert nurture.exit_reason == "handed-to-sales"
    async with session_factory(engine)() as session:
        contact = await session.get(Contact, "lead")
        assert contact is not None
        tasks = (await session.exec(select(CrmTask).where(CrmTask.contact_id == "lead"))).all()
    assert (contact.lead_score, contact.lifecycle_stage, contact.owner_id) == (
        40,
        "MQL",
        "sdr-ines",
    )
    assert contact.score_breakdown == {
        "content_downloaded": 5,
        "demo_requested": 25,
        "pricing_page_viewed": 10,
    }
    assert set(contact.tags) >= {
        "stage_mql",
        "eng_high",
        "act_downloaded-content",
        "act_clicked-pricing",
        "act_requested-demo",
        "src_leadmagnet_email-guide",
        "src_google",
        "int_email-marketing",
    }
    assert [(t.kind, t.priority, t.assignee_id) for t in tasks] == [
        ("lead_follow_up", "normal", "sdr-ines"),
        ("lead_checklist", "normal", "sdr-ines"),
    ]
    notification = settings.outbox_dir / "notifications" / "lead-sla-lead"
    assert any(notification.rglob("*.json"))

    await contacts.send("lead", "trial_started")
    state = await contacts.state_when("lead", lambda s: s.score == 70)
    assert state.band == "SQL"
    await journey_when(client, "lead-sla-lead", lambda s: "priority-sql" in s.actions_done)
    async with session_factory(engine)() as session:
        contact = await session.get(Contact, "lead")
        tasks = (await session.exec(select(CrmTask).where(CrmTask.contact_id == "lead"))).all()
    assert contact is not None
    assert "stage_sql" in contact.tags and "stage_mql" not in contact.tags
    assert [(t.kind, t.priority) for t in tasks] == [
        ("lead_follow_up", "normal"),
        ("lead_checklist", "normal"),
        ("lead_follow_up", "high"),
    ]
    description = await contacts.handle("lead").describe()
    assert description.typed_search_attributes.get(LIFECYCLE_STAGE) == "SQL"


async def test_a_hard_bounce_ends_marketing_journeys_and_a_soft_bounce_does_not(
    contacts: Contacts,
    worker: Worker,
    engine: AsyncEngine,
    settings: Settings,
    time_skipping_env: WorkflowEnvironment,
) -> None:
    client = time_skipping_env.client
    await add_contact(engine, "bounce")
    await contacts.send("bounce", "subscribed")
    await journey_when(client, "welcome-series-bounce", lambda s: s.messages_sent == 1)
    await contacts.send("bounce", "email_bounced", bounce_type="soft")
    await contacts.state_when("bounce", lambda s: s.events_accepted == 2)
    assert (await journey(client, "welcome-series-bounce")).status == JourneyStatus.RUNNING
    await contacts.handle("bounce").signal(
        "event", await event_now(time_skipping_env, "bounce", "email_bounced")
    )
    exited = await journey_when(
        client, "welcome-series-bounce", lambda s: s.status != JourneyStatus.RUNNING
    )
    assert exited.exit_reason == "hard_bounce"
    async with session_factory(engine)() as session:
        rows = await session.exec(select(Suppression).where(Suppression.contact_id == "bounce"))
        assert [row.reason for row in rows.all()] == ["hard_bounce"]
