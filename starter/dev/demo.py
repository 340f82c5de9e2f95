"""The `make run` demo: sample contacts that take every journey on an accelerated clock.

Some journeys are enrolled directly (`demo_enrolments`); every journey also
starts the way it does in production, from behaviour events sent through a
contact's workflow (`DEMO_STORIES`). Running the demo again upserts the same contacts,
finds the journeys already enrolled and sends the same event ids, which the
contact workflows drop as duplicates: nothing is enrolled or sent twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import typer
from temporalio.client import Client
from temporalio.service import RPCError

from models.contacts import ConsentUpdate, ContactProfile
from models.db import create_engine
from models.events import BehaviorEvent
from models.experiments import HOLDOUT
from models.journeys import JourneyInput, JourneyState
from models.nurture import NurtureInput
from models.renewals import RenewalInput
from models.settings import Settings
from rules.experiment_split import assign_arm
from starter.services.intake import accept_events
from starter.services.operations import OperationError, enroll, upsert_contact

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

SUMMARY = (
    "welcome series for three sample contacts, a pricing-page follow-up, weekly nurture, "
    "a renewal countdown, onboarding, an abandoned cart, a usage drop, re-engagement, "
    "win-back, a lead from MQL to a won deal, a recycled lead, a sign-up who has not bought "
    "after a week (a segment starts first-purchase), ten subscribers in the welcome series' "
    "Day-0 subject A/B test (10% held out), and a broadcast to a segment"
)
"""What the demo shows, as `make run` announces it."""

_DEMO_CONSENT = ConsentUpdate(granted=True, source="demo:make-run")
DEMO_CONTACTS = (
    ContactProfile(
        id="demo-ada",
        email="ada@example.com",
        first_name="Ada",
        company="Analytical Engines",
        timezone="Europe/London",
        email_consent=_DEMO_CONSENT,
        tags=["src_leadmagnet_email-guide"],
    ),
    ContactProfile(
        id="demo-grace",
        email="grace@example.com",
        phone="+12125550142",
        first_name="Grace",
        timezone="America/New_York",
        email_consent=_DEMO_CONSENT,
        sms_consent=_DEMO_CONSENT,
        tags=["src_webinar_2026-q4-launch", "int_topic_automation"],
    ),
    ContactProfile(
        id="demo-sam",
        email="sam@example.com",
        timezone="Asia/Tokyo",
        email_consent=_DEMO_CONSENT,
        tags=["src_leadmagnet_email-guide"],
    ),
)
"""Each in the welcome series; Grace also in the pricing follow-up and nurture, with a cart."""
DEMO_DORMANT = (
    ContactProfile(
        id="demo-rosa",
        email="rosa@example.com",
        first_name="Rosa",
        timezone="Europe/Madrid",
        email_consent=_DEMO_CONSENT,
        tags=["src_leadmagnet_email-guide", "int_automation"],
    ),
    ContactProfile(
        id="demo-kai",
        email="kai@example.com",
        first_name="Kai",
        company="Babbage & Co",
        timezone="America/Los_Angeles",
        email_consent=_DEMO_CONSENT,
    ),
)
"""A subscriber and a customer whose last activity was 31 days ago: the contact workflow's
inactivity timer (30 real days) starts re-engagement (Rosa: three emails over 14 demo
days, then the sunset) and win-back (Kai: the offer) as soon as their events arrive."""
DEMO_NEWCOMER = ContactProfile(
    id="demo-fay",
    email="fay@example.com",
    first_name="Fay",
    timezone="Europe/Dublin",
    email_consent=_DEMO_CONSENT,
)
"""Subscribed 8 days ago and bought nothing: in the segment `signed-up-no-purchase` as soon
as the event arrives, which starts first-purchase."""
NEWCOMER_DAYS = 8
FIRST_STEP_WAIT = 30.0
"""Seconds a story waits for the journey it comes after (`DemoStory.after`)."""
FIRST_STEP_POLL = 0.2
"""Seconds between two looks at that journey's state."""
DORMANT_FOR_DAYS = 31
"""How many days ago the dormant contacts last did something (30 make them dormant)."""
DEMO_LEAD = ContactProfile(
    id="demo-lin",
    email="lin@example.com",
    first_name="Lin",
    company="Difference Engines",
    timezone="Europe/Berlin",
    email_consent=_DEMO_CONSENT,
    attributes={"region": "EMEA", "job_title": "VP Marketing"},
)
DEMO_BUYER = ContactProfile(
    id="demo-noor",
    email="noor@example.com",
    first_name="Noor",
    company="Jacquard Looms",
    timezone="Asia/Dubai",
    email_consent=_DEMO_CONSENT,
)
DEMO_AT_RISK = ContactProfile(
    id="demo-ravi",
    email="ravi@example.com",
    first_name="Ravi",
    company="Pascal Calculators",
    timezone="America/Chicago",
    email_consent=_DEMO_CONSENT,
)
DEMO_DEAL_LEAD = ContactProfile(
    id="demo-mei",
    email="mei@example.com",
    first_name="Mei",
    company="Lovelace Analytics",
    timezone="Europe/Paris",
    email_consent=_DEMO_CONSENT,
    attributes={"region": "EMEA", "job_title": "Head of Marketing"},
)
"""A lead that goes MQL → SQL (a deal) → opportunity → customer, and into onboarding."""
DEMO_DEAL = {
    "amount": "24000",
    "currency": "EUR",
    "use_case": "Lifecycle emails for 12 regional teams",
    "competitors": ["Mailchimp", "HubSpot"],
}
"""What the rep records when qualifying demo-mei (`lead_qualified`)."""
DEMO_RECYCLED = ContactProfile(
    id="demo-omar",
    email="omar@example.com",
    first_name="Omar",
    company="Hollerith Tabulating",
    timezone="Asia/Singapore",
    email_consent=_DEMO_CONSENT,
)
"""A lead handed off to sales, then disqualified for no budget: recycled."""
DEMO_CART = {
    "cart_id": "demo-cart",
    "items": [
        {"name": "Northwind Campaigns Pro (annual)", "quantity": 1, "price": "468.00"},
        {"name": "Extra seat", "quantity": 2, "price": "60.00"},
    ],
    "total": "588.00",
    "currency": "USD",
}
"""The cart demo-grace leaves."""
SUBJECT_TEST = "welcome-subject"
"""The welcome series' Day-0 subject A/B test (`workflows/journeys/welcome_series.py`)."""
DEMO_SUBSCRIBERS = tuple(
    ContactProfile(
        id=f"demo-list-{number:02d}",
        email=f"list{number:02d}@example.com",
        first_name=first_name,
        timezone="Europe/Dublin",
        email_consent=_DEMO_CONSENT,
    )
    for number, first_name in enumerate(
        ("Alan", "Barbara", "Claude", "Dorothy", "Edsger", "Frances", "Gordon", "Hedy", "Ivan")
        + ("Jean",),
        start=1,
    )
)
"""Ten sign-ups through the `subscribed` trigger: each is drawn for the welcome series'
holdout and, if not held out, split on its Day-0 subject line (`journeys experiments`)."""


def subject_arm(contact: ContactProfile) -> str:
    """The demo subscriber's arm in the subject test, as the worker will draw it (the split
    is deterministic)."""
    from workflows import catalog

    declared = catalog.experiment(SUBJECT_TEST)
    return assign_arm(
        declared.name, contact.id, declared.arms, holdout_percent=declared.holdout_percent
    )


def _first_in(arm: str) -> ContactProfile:
    return next(contact for contact in DEMO_SUBSCRIBERS if subject_arm(contact) == arm)


DAY0_EMAIL = {"journey": "welcome-series", "step": "day0"}
"""The properties of an open or a click of the Day-0 email, as the provider's webhook sends."""
DEMO_WEEKLY_USAGE = (120, 110, 130, 120, 40)
"""demo-ravi's `campaigns_sent`, one report a week, the last one now: 40 is a third of the
4-week average (120), a drop (`churn.toml`: below 50%)."""


@dataclass(frozen=True)
class DemoStory:
    """What one demo contact does, sent through its contact workflow, and what that shows.

    Attributes:
        contact: Who does it.
        events: Event type and properties, in order.
        shows: What the events start, as `make run` prints it.
        days_apart: The events happened this many days apart, the last one last.
        days_ago: The last one happened this many days ago (0: now).
        part: Names the story in its event ids (a contact may have several stories).
        after: A journey whose first step must be done before the events are sent
            (the rep's events come after the hand-off), e.g. `lead-sla-demo-mei`.
    """

    contact: ContactProfile
    events: tuple[tuple[str, dict[str, Any]], ...]
    shows: str
    days_apart: int = 0
    days_ago: int = 0
    part: str = "demo"
    after: str | None = None

    def behavior_events(self, now: datetime) -> list[BehaviorEvent]:
        """The events, with the same ids on every run (a restart sends duplicates only)."""
        last_at = now - timedelta(days=self.days_ago)
        last = len(self.events)
        return [
            BehaviorEvent(
                event_id=f"{self.contact.id}-{self.part}-{number}",
                contact_id=self.contact.id,
                type=event_type,
                occurred_at=last_at - timedelta(days=self.days_apart * (last - number)),
                properties=properties,
            )
            for number, (event_type, properties) in enumerate(self.events, start=1)
        ]


DEMO_STORIES = (
    DemoStory(
        DEMO_LEAD,
        (
            ("subscribed", {"source": "leadmagnet_email-guide"}),
            ("content_downloaded", {"topic": "email-marketing"}),
            ("pricing_page_viewed", {"utm_source": "newsletter", "utm_campaign": "q4-launch"}),
            ("demo_requested", {}),
        ),
        # +5, +10, +25 = 40: the welcome series and the pricing follow-up start; MQL hands off
        shows=f"score 40, MQL → sales hand-off lead-sla-{DEMO_LEAD.id}",
    ),
    DemoStory(
        DEMO_CONTACTS[1],
        (("cart_updated", DEMO_CART),),
        shows="abandoned-cart-demo-grace-demo-cart: reminders 1 h, 24 h and 72 h after it",
    ),
    DemoStory(
        DEMO_BUYER,
        (
            ("purchased", {"plan": "growth"}),
            ("feature_used", {"feature": "contact-import"}),
            ("feature_used", {"feature": "campaign-sent"}),
        ),
        # two of the three key features (onboarding.toml): the education email teaches the third
        shows=f"purchase → onboarding-{DEMO_BUYER.id}, 2 of 3 key features adopted",
    ),
    DemoStory(
        DEMO_AT_RISK,
        tuple(
            ("usage_reported", {"metric": "campaigns_sent", "value": value})
            for value in DEMO_WEEKLY_USAGE
        ),
        shows=(
            f"4 weekly usage reports, then a drop: stage_churn-risk, owner alerted → "
            f"churn-prevention-{DEMO_AT_RISK.id}"
        ),
        days_apart=7,
    ),
    DemoStory(
        DEMO_DORMANT[0],
        (("website_visited", {"page": "/blog/automation-recipes"}),),
        shows="quiet for 31 days → re-engagement-demo-rosa, then the sunset",
        days_ago=DORMANT_FOR_DAYS,
    ),
    DemoStory(
        DEMO_DORMANT[1],
        (("purchased", {"plan": "starter"}),),
        shows="a customer quiet for 31 days → win-back-demo-kai (and onboarding, for the purchase)",
        days_ago=DORMANT_FOR_DAYS,
    ),
    DemoStory(
        DEMO_NEWCOMER,
        (("subscribed", {"source": "leadmagnet_email-guide"}),),
        shows="subscribed 8 days ago, nothing bought: segment signed-up-no-purchase → "
        "first-purchase-demo-fay",
        days_ago=NEWCOMER_DAYS,
    ),
    DemoStory(
        DEMO_DEAL_LEAD,
        (
            ("pricing_page_viewed", {"utm_source": "ads", "utm_campaign": "q4-launch"}),
            ("webinar_attended", {"topic": "automation"}),
            ("demo_requested", {}),
        ),
        shows=f"MQL → sales hand-off lead-sla-{DEMO_DEAL_LEAD.id}",
    ),
    DemoStory(
        DEMO_DEAL_LEAD,
        (
            ("rep_contacted", {}),
            ("lead_qualified", DEMO_DEAL),
            ("meeting_held", {"kind": "demo"}),
            ("deal_stage_changed", {"stage": "demo"}),
            ("deal_stage_changed", {"stage": "proposal"}),
            ("deal_won", {}),
        ),
        shows=(
            "first touch; SQL: a 24000 EUR deal; demo, proposal, won → customer, "
            f"onboarding-{DEMO_DEAL_LEAD.id}"
        ),
        part="deal",
        after=f"lead-sla-{DEMO_DEAL_LEAD.id}",
    ),
    DemoStory(
        DEMO_RECYCLED,
        (("webinar_attended", {"topic": "automation"}), ("demo_requested", {})),
        # +15, +25 = 40: MQL hands off
        shows=f"score 40, MQL → sales hand-off lead-sla-{DEMO_RECYCLED.id}",
    ),
    DemoStory(
        DEMO_RECYCLED,
        (("lead_disqualified", {"reason": "no-budget"}),),
        shows=(
            f"disqualified, no budget → recycling-{DEMO_RECYCLED.id}: stage recycled, "
            "emails on Days 30, 60 and 90, a review every 90 days"
        ),
        after=f"lead-sla-{DEMO_RECYCLED.id}",
        part="recycle",
    ),
    *(
        DemoStory(
            subscriber,
            (("subscribed", {"source": "leadmagnet_email-guide"}),),
            shows=(
                "held out of the welcome series: the subject test's 10%"
                if subject_arm(subscriber) == HOLDOUT
                else f"welcome-series-{subscriber.id}, subject line {subject_arm(subscriber)}"
            ),
        )
        for subscriber in DEMO_SUBSCRIBERS
    ),
    DemoStory(
        _first_in("b"),
        (("email_opened", DAY0_EMAIL), ("email_clicked", DAY0_EMAIL), ("purchased", {})),
        shows="opened and clicked the Day-0 email (subject b), then bought: a conversion",
        part="engaged",
        after=f"welcome-series-{_first_in('b').id}",
    ),
    DemoStory(
        _first_in("a"),
        (("email_opened", DAY0_EMAIL),),
        shows="opened the Day-0 email (subject a)",
        part="engaged",
        after=f"welcome-series-{_first_in('a').id}",
    ),
    DemoStory(
        _first_in(HOLDOUT),
        (("purchased", {}),),
        shows="bought without the welcome series: the holdout's conversion",
        part="engaged",
    ),
)
"""The demo contacts whose events go through their contact workflow, with what they show."""


def demo_enrolments(day_seconds: int) -> list[tuple[str, JourneyInput]]:
    """What the demo enrols directly: every sample contact in the welcome series, plus
    pricing-abandon and nurture (demo-grace, interested in automation: the automation
    track, weekly on the weekday of enrolment at 10:00 New York time), renewal-countdown
    (renewal 95 days out: at 15 s a day its reminders come every few minutes and it lapses
    in about 24). Pricing-abandon holds its window a year, so a restart enrols nobody
    twice."""
    return [
        *(
            ("welcome-series", JourneyInput(contact_id=profile.id, day_seconds=day_seconds))
            for profile in DEMO_CONTACTS
        ),
        (
            "pricing-abandon",
            JourneyInput(contact_id="demo-grace", day_seconds=day_seconds, reentry_days=365),
        ),
        ("nurture", NurtureInput(contact_id="demo-grace", day_seconds=day_seconds)),
        (
            "renewal-countdown",
            RenewalInput(
                contact_id="demo-ada",
                day_seconds=day_seconds,
                subscription_id="demo-sub",
                renewal_date=datetime.now(UTC) + timedelta(days=95),
            ),
        ),
    ]


async def run_demo(client: Client, settings: Settings, *, day_seconds: int) -> None:
    """Upsert the demo contacts, enrol the demo journeys and send the stories' events."""
    engine = create_engine(settings.database_url)
    try:
        profiles = (
            *DEMO_CONTACTS,
            *DEMO_DORMANT,
            DEMO_LEAD,
            DEMO_BUYER,
            DEMO_AT_RISK,
            DEMO_DEAL_LEAD,
            DEMO_RECYCLED,
            DEMO_NEWCOMER,
            *DEMO_SUBSCRIBERS,
        )
        for profile in profiles:
            await upsert_contact(engine, profile, key=settings.suppression_key())
        for journey, journey_input in demo_enrolments(day_seconds):
            try:
                workflow_id = await enroll(
                    client, engine, journey, journey_input, task_queue=settings.task_queue
                )
                typer.echo(f"  enrolled {journey_input.contact_id} → {workflow_id}")
            except OperationError as error:
                typer.echo(f"  {error} (kept from an earlier run)")
        for story in DEMO_STORIES:
            if story.after is not None:
                await _first_step_done(client, story.after)
            events = story.behavior_events(datetime.now(UTC))  # after what came before
            results = await accept_events(  # one batch, as a service sends a backlog
                client,
                engine,
                events,
                task_queue=settings.task_queue,
                day_seconds=day_seconds,
                suppression_key=settings.suppression_key(),
            )
            count = f"{len(events)} event{'s' if len(events) > 1 else ''}"
            shown = f"{count} → {results[-1].workflow_id} ({story.shows})"
            typer.echo(f"  {story.contact.id}: {shown}")
        await _show_segments(engine, settings)
        await _demo_broadcast(client, engine, settings)
    finally:
        await engine.dispose()


async def _show_segments(engine: AsyncEngine, settings: Settings) -> None:
    """The segments and their members so far (the sweep adds contacts without events)."""
    from starter.services.segments import segment_summaries

    counts = ", ".join(
        f"{summary.name} {summary.members}"
        for summary in await segment_summaries(engine, settings.segments_file)
    )
    typer.echo(f"  segments: {counts} (kept current: `journeys segments`)")


DEMO_BROADCAST = "demo-monthly-update"
DEMO_BROADCAST_SEGMENT = "email-subscribers"
"""The demo broadcast's audience: a segment of the segments file."""


async def _demo_broadcast(client: Client, engine: AsyncEngine, settings: Settings) -> None:
    """The monthly update to the demo segment's members, 30 s from now (once per `.data`)."""
    from starter.services.broadcasts import BroadcastCreate, create_broadcast

    request = BroadcastCreate(
        name=DEMO_BROADCAST,
        segment=DEMO_BROADCAST_SEGMENT,
        template="broadcasts/monthly-update",
        at=datetime.now(UTC) + timedelta(seconds=30),
    )
    try:
        await create_broadcast(
            engine, client, settings, request, created_by="demo", now=datetime.now(UTC)
        )
        typer.echo(
            f"  broadcast {DEMO_BROADCAST} → segment {DEMO_BROADCAST_SEGMENT} in 30 s "
            f"(`journeys broadcast status {DEMO_BROADCAST}`)"
        )
    except OperationError as error:
        typer.echo(f"  broadcast {DEMO_BROADCAST}: {error}")


async def _first_step_done(client: Client, workflow_id: str) -> None:
    """Wait (up to `FIRST_STEP_WAIT`) until the journey has done its first step."""
    handle = client.get_workflow_handle(workflow_id, result_type=JourneyState)
    for _ in range(int(FIRST_STEP_WAIT / FIRST_STEP_POLL)):
        with contextlib.suppress(RPCError):  # not started yet
            state = await handle.query("state", result_type=JourneyState)
            if state.actions_done or state.steps_done:
                return
        await asyncio.sleep(FIRST_STEP_POLL)
    typer.echo(f"  {workflow_id} has not done its first step; going on")
