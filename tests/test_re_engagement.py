"""Re-engagement and win-back after 30 days of inactivity, on the time-skipping server.

The real worker, database file and outbox: events go through the intake to the
contact workflow, whose inactivity timer (only contact-initiated events reset it)
starts `re-engagement` for a lead and `win-back` for a customer at 30 days.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from models.contact_workflow import ContactState
from models.db import session_factory
from models.events import BehaviorEvent, is_contact_initiated
from models.journeys import JourneyInput, JourneyStatus
from models.messages import SUNSET_TAG
from models.settings import Settings
from models.tables import ConsentChange, Contact, ContactEvent, Suppression
from starter.services.operations import enroll
from starter.services.report import funnel_report
from tests.contact_kit import Contacts, journey_when
from tests.factories import add_contact, message_rows, rows_of
from tests.gateway import Gateway, gateway_settings, serving_gateway
from tests.kit import save_history, sleep_until
from tests.outbox import read_outbox, text_body
from tests.test_api import journey_state, new_id, put_contact
from workflows.contact import DORMANT_AFTER, DORMANT_TAG

DAY = timedelta(days=1)


async def contact_row(engine: AsyncEngine, contact_id: str) -> Contact:
    async with session_factory(engine)() as session:
        contact = await session.get(Contact, contact_id)
    assert contact is not None, contact_id
    return contact


async def tags_when(
    engine: AsyncEngine, contact_id: str, condition: Callable[[set[str]], bool]
) -> set[str]:
    """The contact's CRM tags once `condition` holds (polled: the CRM follows the workflow)."""
    tags: set[str] = set()
    for _ in range(200):
        tags = set((await contact_row(engine, contact_id)).tags)
        if condition(tags):
            return tags
        await asyncio.sleep(0.05)
    raise AssertionError(f"condition never held; tags: {sorted(tags)}")


async def sent(engine: AsyncEngine, contact_id: str) -> list[tuple[str, str, str]]:
    """(journey, step, status) of the contact's messages, oldest first."""
    return [(row.journey, row.step, row.status) for row in await message_rows(engine, contact_id)]


def step_email(outbox: Path, step: str) -> str:
    """The text of the one delivered email of `step` (any journey run)."""
    found = [text_body(m) for key, m in read_outbox(outbox).items() if key.endswith(f"/{step}")]
    assert len(found) == 1, (step, sorted(read_outbox(outbox)))
    return found[0]


@pytest.mark.parametrize(
    ("event_type", "properties", "initiated"),
    [
        ("email_opened", {}, True),
        ("signed_guestbook", {}, True),  # a custom type: something the contact did
        ("email_delivered", {}, False),
        ("rep_contacted", {}, False),
        ("usage_reported", {"metric": "campaigns_sent", "value": 12}, True),
        ("usage_reported", {"metric": "campaigns_sent", "value": 0}, False),
        ("usage_dropped", {"metric": "campaigns_sent", "value": 4}, False),
    ],
)
def test_what_counts_as_the_contacts_own_activity(
    event_type: str, properties: dict[str, object], initiated: bool
) -> None:
    event = BehaviorEvent(
        event_id="e1",
        contact_id="c",
        type=event_type,
        occurred_at=datetime(2026, 3, 2, tzinfo=UTC),
        properties=properties,
    )
    assert is_contact_initiated(event) is initiated


async def test_activity_from_over_30_days_ago_arriving_late_starts_re_engagement_at_once(
    contacts: Contacts,
    worker: Worker,
    engine: AsyncEngine,
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """A backlog: the contact's last visit, 31 days old, arrives now. The timer counts from
    when it happened, so re-engagement starts from its trigger right away (as in the demo)."""
    env = time_skipping_env
    await add_contact(engine, "late", first_name="Lee")
    now = await env.get_current_time()
    await contacts.send("late", "website_visited", at=now - DORMANT_AFTER - DAY)
    started = await journey_when(env.client, "re-engagement-late", lambda s: s.messages_sent == 1)
    assert started.status == JourneyStatus.RUNNING
    assert DORMANT_TAG in (await contact_row(engine, "late")).tags
    assert await env.get_current_time() - now < DAY  # not by waiting: at once


async def test_only_contact_initiated_events_reset_the_timer_and_30_days_start_re_engagement(
    contacts: Contacts,
    worker: Worker,
    engine: AsyncEngine,
    settings: Settings,
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """An open starts the clock; a delivery, a soft bounce and a rep's call on day 20 do not
    reset it: on day 30 the contact is dormant and gets "we miss you"."""
    env = time_skipping_env
    await add_contact(engine, "idle", first_name="Ida")
    opened = await contacts.send("idle", "email_opened")
    await contacts.state_when("idle", lambda s: s.events_accepted == 1)
    await env.sleep(20 * DAY)
    await contacts.send("idle", "email_delivered")
    await contacts.send("idle", "email_bounced", bounce_type="soft")
    await contacts.send("idle", "rep_contacted")
    state = await contacts.state_when("idle", lambda s: s.events_accepted == 4)
    assert state.last_active_at == opened.occurred_at
    assert state.next_rescore_at == opened.occurred_at + DORMANT_AFTER
    assert "re-engagement-idle" not in state.journeys

    await sleep_until(env, opened.occurred_at + DORMANT_AFTER + timedelta(minutes=1))
    running = await journey_when(env.client, "re-engagement-idle", lambda s: s.messages_sent == 1)
    assert running.status == JourneyStatus.RUNNING
    assert await sent(engine, "idle") == [("re-engagement", "we-miss-you", "sent")]
    assert "Ida, we miss you" in read_outbox(settings.outbox_dir).popitem()[1]["Subject"]
    assert DORMANT_TAG in (await contact_row(engine, "idle")).tags
    # A click (contact-initiated) ends it as reactivated and lifts the dormant tag.
    await contacts.send("idle", "email_clicked")
    exited = await journey_when(env.client, "re-engagement-idle", lambda s: s.status == "exited")
    assert exited.exit_reason == "reactivated"
    await tags_when(engine, "idle", lambda tags: DORMANT_TAG not in tags)
    await save_history(env.client, "contact-idle", "contact-inactive-re-engaged-reactivated")


async def test_three_emails_then_sunset_stops_marketing_but_not_service_messages_until_a_visit(
    contacts: Contacts,
    worker: Worker,
    engine: AsyncEngine,
    settings: Settings,
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env = time_skipping_env
    await add_contact(engine, "gone")
    visited = await contacts.send("gone", "website_visited", interest="automation")
    start = visited.occurred_at + DORMANT_AFTER
    await sleep_until(env, start + timedelta(minutes=1))
    await journey_when(env.client, "re-engagement-gone", lambda s: s.messages_sent == 1)
    await sleep_until(env, start + 14 * DAY + timedelta(minutes=1))
    done = await journey_when(env.client, "re-engagement-gone", lambda s: s.status != "running")
    assert (done.status, done.messages_sent) == (JourneyStatus.COMPLETED, 3)
    await save_history(env.client, "re-engagement-gone", "re-engagement-sunset")

    rows = [r for r in await message_rows(engine, "gone") if r.journey == "re-engagement"]
    assert [(r.step, (r.sent_at - start).days) for r in rows if r.sent_at] == [
        ("we-miss-you", 0),
        ("best-content", 4),
        ("last-chance", 9),
    ]
    best = step_email(settings.outbox_dir, "best-content")
    assert "welcome-series-blueprint" in best  # their interest: automation
    last = step_email(settings.outbox_dir, "last-chance")
    assert "Keep me subscribed: http://localhost:8000/k/" in last
    state = await contacts.state_when("gone", lambda s: s.sunset_since is not None)
    assert state.sunset_since is not None
    assert abs(state.sunset_since - (start + 14 * DAY)) < timedelta(minutes=1)
    contact = await contact_row(engine, "gone")
    assert {DORMANT_TAG, SUNSET_TAG} <= set(contact.tags)
    # List hygiene, not an unsubscribe: consent and suppressions untouched.
    assert contact.email_consent
    assert await rows_of(engine, Suppression, "gone") == []
    changes = await rows_of(engine, ConsentChange, "gone")
    assert [change for change in changes if not change.granted] == []

    # Marketing is skipped; a service message (a renewal reminder) still goes out.
    await env.client.start_workflow(
        "pricing-abandon",
        JourneyInput(contact_id="gone"),
        id="pricing-abandon-gone",
        task_queue=settings.task_queue,
    )
    now = await env.get_current_time()
    await contacts.send(
        "gone", "renewal_scheduled", subscription_id="pro", renewal_date=(now + 8 * DAY).isoformat()
    )
    await env.sleep(2 * DAY)
    statuses = {(j, s): status for j, s, status in await sent(engine, "gone")}
    assert statuses[("pricing-abandon", "email")] == "skipped_sunset"
    assert statuses[("renewal-countdown", "reminder-7d")] == "sent"

    # A visit lifts the sunset: marketing goes out again.
    await contacts.send("gone", "website_visited")
    await contacts.state_when("gone", lambda s: s.sunset_since is None)
    await tags_when(engine, "gone", lambda tags: not tags & {SUNSET_TAG, DORMANT_TAG})
    await env.client.start_workflow(
        "welcome-series",
        JourneyInput(contact_id="gone"),
        id="welcome-series-gone",
        task_queue=settings.task_queue,
    )
    await journey_when(env.client, "welcome-series-gone", lambda s: s.messages_sent == 1)
    await save_history(env.client, "contact-gone", "contact-sunset-then-lifted-by-a-visit")


@pytest.mark.parametrize("event_type", ["feature_used", "webinar_attended"])
async def test_any_contact_initiated_event_ends_re_engagement_as_reactivated(
    event_type: str,
    contacts: Contacts,
    worker: Worker,
    engine: AsyncEngine,
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """A type no list names (`feature_used`) reactivates as well as a scored one."""
    env = time_skipping_env
    contact_id = f"back-{event_type.replace('_', '-')}"
    await add_contact(engine, contact_id)
    first = await contacts.send(contact_id, "email_opened")
    await sleep_until(env, first.occurred_at + DORMANT_AFTER + 2 * DAY)
    wid = f"re-engagement-{contact_id}"
    await journey_when(env.client, wid, lambda s: s.messages_sent == 1)
    await contacts.send(contact_id, event_type)
    exited = await journey_when(env.client, wid, lambda s: s.status == "exited")
    assert (exited.exit_reason, exited.step) == ("reactivated", "we-miss-you")
    await env.sleep(20 * DAY)
    assert [step for _, step, _ in await sent(engine, contact_id)] == ["we-miss-you"]
    state: ContactState = await contacts.state_when(contact_id, lambda s: s.events_accepted == 2)
    assert state.sunset_since is None

    report = await funnel_report(engine, journey="re-engagement")
    [funnel] = report.journeys
    assert (funnel.entered, funnel.exited, funnel.converted) == (1, {"reactivated": 1}, 1)
    assert funnel.steps[0].step == "we-miss-you" and funnel.steps[0].sent == 1


async def test_a_customer_gets_win_back_with_an_offer_and_it_ends_on_a_purchase(
    contacts: Contacts,
    worker: Worker,
    engine: AsyncEngine,
    settings: Settings,
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env = time_skipping_env
    await add_contact(engine, "buyer", first_name="Bo", company="Acme")
    bought = await contacts.send("buyer", "purchased", plan="pro")
    await sleep_until(env, bought.occurred_at + DORMANT_AFTER + 4 * DAY)
    state = await contacts.state_when("buyer", lambda s: "win-back-buyer" in s.journeys)
    assert "re-engagement-buyer" not in state.journeys
    await journey_when(env.client, "win-back-buyer", lambda s: s.messages_sent == 2)
    offer = step_email(settings.outbox_dir, "offer")
    assert "COMEBACK20" in offer and "Hey Bo" in offer
    await contacts.send("buyer", "email_opened")  # activity, not the goal: goes on
    await env.sleep(DAY)
    assert (await journey_when(env.client, "win-back-buyer", lambda s: True)).status == "running"
    await contacts.send("buyer", "purchased", plan="pro")
    exited = await journey_when(env.client, "win-back-buyer", lambda s: s.status == "exited")
    assert (exited.exit_reason, exited.messages_sent) == ("purchased", 2)
    await env.sleep(10 * DAY)
    # (the purchase also started onboarding, whose emails are its own)
    win_back = [step for journey, step, _ in await sent(engine, "buyer") if journey == "win-back"]
    assert win_back == ["been-a-while", "offer"]
    assert "act_purchased" in (await contact_row(engine, "buyer")).tags
    await save_history(env.client, "win-back-buyer", "win-back-offer-purchased")

    [funnel] = (await funnel_report(engine, journey="win-back")).journeys
    assert (funnel.entered, funnel.exited, funnel.converted) == (1, {"purchased": 1}, 1)


async def test_no_re_engagement_for_a_contact_marketing_email_cannot_reach(
    contacts: Contacts,
    worker: Worker,
    engine: AsyncEngine,
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env = time_skipping_env
    await add_contact(engine, "noconsent", email_consent=False)
    first = await contacts.send("noconsent", "website_visited")
    await sleep_until(env, first.occurred_at + DORMANT_AFTER + DAY)
    await tags_when(engine, "noconsent", lambda tags: DORMANT_TAG in tags)
    await env.sleep(DAY)
    state = await contacts.state_when("noconsent", lambda s: s.events_accepted == 1)
    assert not any(wid.startswith(("re-engagement", "win-back")) for wid in state.journeys)
    assert await message_rows(engine, "noconsent") == []


@pytest.fixture
async def gateway(dev_env: WorkflowEnvironment, settings: Settings) -> AsyncIterator[Gateway]:
    # Skipping waits puts the three emails minutes apart in real time: no daily cap here.
    walked = gateway_settings(settings, email_cap_per_day=10, email_cap_per_week=10)
    async with serving_gateway(dev_env.client, walked) as served:
        yield served


async def skip_to_email(client: Client, workflow_id: str, sent_count: int) -> None:
    """Skip the journey's waits (as `journeys skip-wait` does) until `sent_count` emails went."""
    handle = client.get_workflow_handle(workflow_id)
    for _ in range(20):
        await handle.signal("skip_wait")
        try:
            await asyncio.wait_for(
                journey_state(client, workflow_id, lambda s: s.messages_sent == sent_count), 3
            )
            return
        except TimeoutError:  # the signal came before the wait began: again
            continue
    raise AssertionError(f"{workflow_id} never sent {sent_count} emails")


async def test_the_keep_me_subscribed_link_reactivates_and_cannot_unsubscribe(
    gateway: Gateway, dev_env: WorkflowEnvironment, engine: AsyncEngine
) -> None:
    """The last-chance email's link, through the gateway on loopback: the page asks, the
    button records `subscription_confirmed` once, and re-engagement exits as reactivated."""
    client = dev_env.client
    contact_id = new_id("keep")
    await put_contact(gateway, contact_id)
    enrolled = await gateway.http.post(f"/v1/contacts/{contact_id}/journeys/re-engagement")
    workflow_id = enrolled.json()["workflow_id"]
    await journey_state(client, workflow_id, lambda s: s.messages_sent == 1)
    await skip_to_email(client, workflow_id, 2)
    await skip_to_email(client, workflow_id, 3)
    last_chance = step_email(gateway.settings.outbox_dir, "last-chance")
    link = re.search(r"http://\S+/k/([\w.-]+)", last_chance)
    assert link is not None, last_chance
    token = link.group(1)

    async with httpx.AsyncClient(base_url=gateway.url) as browser:  # a link: no API key
        asked = await browser.get(f"/k/{token}")
        assert asked.status_code == 200 and "Keep me subscribed</button>" in asked.text
        assert (await journey_state(client, workflow_id, lambda s: True)).status == "running"
        assert (await browser.post(f"/u/{token}")).status_code == 400  # not an unsubscribe link
        assert (await browser.post(f"/k/{token}x")).status_code == 400
        for _ in range(2):  # a double click is one event
            kept = await browser.post(f"/k/{token}")
            assert kept.status_code == 200 and "still on the list" in kept.text

    exited = await journey_state(client, workflow_id, lambda s: s.status == "exited")
    assert (exited.exit_reason, exited.step) == ("reactivated", "last-chance")
    events = await rows_of(engine, ContactEvent, contact_id)
    assert [e.type for e in events].count("subscription_confirmed") == 1
    assert await rows_of(engine, Suppression, contact_id) == []


async def test_a_contact_enrolled_directly_is_sunset_too(
    contacts: Contacts,
    worker: Worker,
    engine: AsyncEngine,
    settings: Settings,
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """As in the `make run` demo: enrolled by `journeys enroll`, no event ever sent."""
    env = time_skipping_env
    await add_contact(engine, "quiet")
    await enroll(
        env.client,
        engine,
        "re-engagement",
        JourneyInput(contact_id="quiet"),
        task_queue=settings.task_queue,
    )
    await env.sleep(15 * DAY)
    await tags_when(engine, "quiet", lambda tags: SUNSET_TAG in tags)
    assert [step for _, step, _ in await sent(engine, "quiet")] == [
        "we-miss-you",
        "best-content",
        "last-chance",
    ]


async def test_a_quiet_recycled_lead_gets_its_long_cycle_sequence_not_re_engagement(
    contacts: Contacts,
    worker: Worker,
    engine: AsyncEngine,
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """Recycling is a recycled lead's long-cycle sequence: 30 quiet days start no
    re-engagement (whose sunset would stop recycling's Day-60 and Day-90 emails)."""
    env = time_skipping_env
    await add_contact(engine, "rex", first_name="Rex")
    await contacts.send("rex", "email_opened")
    disqualified = await contacts.send("rex", "lead_disqualified", reason="no-budget")
    await contacts.state_when("rex", lambda s: s.recycled_at is not None)

    await sleep_until(env, disqualified.occurred_at + DORMANT_AFTER + timedelta(hours=1))
    recycling = await journey_when(env.client, "recycling-rex", lambda s: s.messages_sent == 1)
    await tags_when(engine, "rex", lambda tags: DORMANT_TAG in tags)  # the timer has fired
    state = await contacts.state_when("rex", lambda s: s.recycled_at is not None)
    assert recycling.status == JourneyStatus.RUNNING
    assert "re-engagement-rex" not in state.journeys
    assert [journey for journey, _, _ in await sent(engine, "rex")] == ["recycling"]


async def test_a_customer_by_a_won_deal_gets_win_back_when_quiet(
    contacts: Contacts,
    worker: Worker,
    engine: AsyncEngine,
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """The purchase derived from `deal_won` makes a customer, as a sent `purchased` does."""
    env = time_skipping_env
    await add_contact(engine, "signed", first_name="Sig", company="Acme")
    await contacts.send("signed", "lead_qualified", amount="9000", currency="EUR")
    won = await contacts.send("signed", "deal_won")
    await journey_when(env.client, "onboarding-signed", lambda s: s.messages_sent >= 1)
    await sleep_until(env, won.occurred_at + DORMANT_AFTER + DAY)
    state = await contacts.state_when("signed", lambda s: "win-back-signed" in s.journeys)
    assert "re-engagement-signed" not in state.journeys
    assert "act_purchased" in (await contact_row(engine, "signed")).tags
