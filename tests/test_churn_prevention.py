"""Churn signals end to end, on the time-skipping server with the real worker, templates,
database file and outbox.

Usage reports go in through the intake as the gateway sends them; the contact
workflow's ingest derives the drop, and the churn-prevention journey it starts
flags the customer, alerts the account owner with the numbers, checks in on
Day 2 and makes the save offer on Day 9. A recovery ends it and clears the
flag; a lapsed renewal joins it; `renewed` clears the flag.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from models.crm import CHURN_RISK_TAG
from models.db import session_factory
from models.events import BehaviorEvent
from models.journeys import JourneyState, JourneyStatus
from models.settings import Settings
from models.tables import Contact, CrmTask, MessageLog, Notification
from starter.services.report import funnel_report
from tests.contact_kit import Contacts
from tests.factories import add_contact, add_lead, rows_of
from tests.kit import journey_run, save_history
from tests.outbox import read_outbox, text_body

WEEK = timedelta(days=7)
DAY = timedelta(days=1)


class Customer:
    """One customer's events, sent the way the gateway sends them, and what came of them."""

    def __init__(
        self, contact_id: str, env: WorkflowEnvironment, settings: Settings, engine: AsyncEngine
    ) -> None:
        self.id, self.env, self.settings, self.engine = contact_id, env, settings, engine

    async def send(
        self, event_type: str, *, at: datetime | None = None, **properties: Any
    ) -> BehaviorEvent:
        """Send one event of this customer (`Contacts.send`)."""
        contacts = Contacts(self.env, self.settings, self.engine)
        return await contacts.send(self.id, event_type, at=at, **properties)

    async def usage(self, *weekly: float, metric: str = "campaigns_sent") -> None:
        """Weekly reports of `metric`, the last one now."""
        now = await self.env.get_current_time()
        for weeks_ago, value in zip(range(len(weekly) - 1, -1, -1), weekly, strict=True):
            await self.send("usage_reported", at=now - weeks_ago * WEEK, metric=metric, value=value)

    async def tags(self) -> list[str]:
        async with session_factory(self.engine)() as session:
            contact = await session.get(Contact, self.id)
        assert contact is not None
        return contact.tags

    async def tags_when(self, condition: Callable[[list[str]], bool]) -> list[str]:
        for _ in range(300):
            tags = await self.tags()
            if condition(tags):
                return tags
            await asyncio.sleep(0.05)
        raise AssertionError(f"tags never matched: {await self.tags()}")

    def journey(self) -> WorkflowHandle[Any, JourneyState]:
        return self.env.client.get_workflow_handle(
            f"churn-prevention-{self.id}", result_type=JourneyState
        )

    async def journey_when(self, condition: Callable[[JourneyState], bool]) -> JourneyState:
        """The journey's state once `condition` holds (polled, no time skipped)."""
        last: object = None
        for _ in range(300):
            try:
                state: JourneyState = await self.journey().query("state", result_type=JourneyState)
            except RPCError as error:  # not started yet
                last = error
            else:
                if condition(state):
                    return state
                last = state
            await asyncio.sleep(0.05)
        raise AssertionError(f"churn-prevention-{self.id}: never; last: {last}")

    async def sent(self) -> dict[str, MessageLog]:
        rows = await rows_of(self.engine, MessageLog, self.id)
        return {row.step: row for row in rows if row.journey == "churn-prevention"}


def customer(
    contact_id: str, env: WorkflowEnvironment, settings: Settings, engine: AsyncEngine
) -> Customer:
    return Customer(contact_id, env, settings, engine)


async def test_a_drop_flags_alerts_the_owner_with_the_numbers_and_runs_the_journey(
    time_skipping_env: WorkflowEnvironment, settings: Settings, engine: AsyncEngine, worker: Worker
) -> None:
    await add_lead(engine, "cara", first_name="Cara", company="Acme", owner_id="sdr-ines")
    cara = customer("cara", time_skipping_env, settings, engine)

    await cara.usage(100, 120, 80, 100, 40)
    started = await cara.journey_when(lambda s: "alert-owner" in s.actions_done)

    assert started.actions_done == ["flag", "alert-owner"]
    assert started.next_step == "check-in"
    assert CHURN_RISK_TAG in await cara.tags()
    [task] = await rows_of(engine, CrmTask, "cara")
    assert (task.kind, task.assignee_role, task.assignee_id, task.priority) == (
        "churn_risk",
        "account_owner",
        "sdr-ines",
        "high",
    )
    assert task.title == "Churn risk: campaigns_sent down to 40% of its average: Cara (Acme)"
    assert abs(task.due_at - task.created_at - 2 * DAY) < timedelta(minutes=1)
    for text in (
        "Metric: campaigns_sent",
        "Value reported: 40",
        "Trailing average: 100 (4 reports over the last 28 days)",
        "Share: 40% (a drop is below 50)",
    ):
        assert text in task.details
    [notification] = await rows_of(engine, Notification, "cara")
    assert (notification.recipient_id, notification.kind, notification.status) == (
        "sdr-ines",
        "account_alert",
        "sent",
    )
    assert notification.title == task.title
    assert "Trailing average: 100" in notification.text and f"Task #{task.id}" in notification.text

    # A rescore (an email open changes the score) keeps the churn flag.
    await cara.send("email_opened")
    await cara.tags_when(lambda tags: "stage_cold" in tags or "stage_warming" in tags)
    assert CHURN_RISK_TAG in await cara.tags()

    await time_skipping_env.sleep(10 * DAY)
    result = await cara.journey_when(lambda s: s.status != JourneyStatus.RUNNING)
    assert (result.status, result.steps_done) == (
        JourneyStatus.COMPLETED,
        ["check-in", "save-offer"],
    )
    sent = await cara.sent()
    days = {step: (row.created_at - result.enrolled_at) / DAY for step, row in sent.items()}
    assert days == pytest.approx({"check-in": 2, "save-offer": 9}, abs=0.01)
    outbox = {
        key.rpartition("/")[2]: message for key, message in read_outbox(settings.outbox_dir).items()
    }
    assert outbox["check-in"]["Subject"] == "Quick check-in, Cara"
    assert "quieter in Acme's Northwind Campaigns account" in text_body(outbox["check-in"])
    assert (
        outbox["save-offer"]["Subject"]
        == "20% off your next three months, and a hand getting going again"
    )
    assert "20% off your next three months" in text_body(outbox["save-offer"])
    # The flag stays until usage recovers or the customer renews.
    assert CHURN_RISK_TAG in await cara.tags()

    report = await funnel_report(engine, journey="churn-prevention")
    [funnel] = report.journeys
    assert (funnel.entered, funnel.completed) == (1, 1)
    assert [(step.step, step.sent) for step in funnel.steps] == [
        ("flag", 0),
        ("alert-owner", 0),
        ("check-in", 1),
        ("save-offer", 1),
    ]


async def test_recovery_ends_the_journey_and_clears_the_flag(
    time_skipping_env: WorkflowEnvironment, settings: Settings, engine: AsyncEngine, worker: Worker
) -> None:
    await add_contact(engine, "rio", first_name="Rio")
    rio = customer("rio", time_skipping_env, settings, engine)
    await rio.usage(100, 100, 100, 100, 20)
    await rio.journey_when(lambda s: "alert-owner" in s.actions_done)
    assert CHURN_RISK_TAG in await rio.tags()
    # No owner: the customer-success queue of sales.toml gets it.
    [task] = await rows_of(engine, CrmTask, "rio")
    assert (task.assignee_role, task.assignee_id) == ("customer_success", "cs-queue")

    await time_skipping_env.sleep(3 * DAY)  # the check-in goes out on Day 2
    await rio.send("usage_reported", metric="campaigns_sent", value=70)
    result = await rio.journey_when(lambda s: s.status != JourneyStatus.RUNNING)

    assert (result.status, result.exit_reason) == (JourneyStatus.EXITED, "usage_recovered")
    assert list(await rio.sent()) == ["check-in"]
    assert CHURN_RISK_TAG not in await rio.tags()
    [funnel] = (await funnel_report(engine, journey="churn-prevention")).journeys
    assert funnel.exited == {"usage_recovered": 1} and funnel.converted == 1


async def test_a_lapsed_renewal_joins_churn_prevention_and_renewed_clears_the_flag(
    time_skipping_env: WorkflowEnvironment, settings: Settings, engine: AsyncEngine, worker: Worker
) -> None:
    await add_lead(engine, "lee", first_name="Lee", owner_id="sdr-leo")
    lee = customer("lee", time_skipping_env, settings, engine)
    now = await time_skipping_env.get_current_time()
    await lee.send(
        "renewal_scheduled", subscription_id="pro", renewal_date=(now + 2 * DAY).isoformat()
    )
    await time_skipping_env.sleep(3 * DAY)
    countdown = await journey_run(time_skipping_env.client, "renewal-countdown-lee-pro")
    lapsed = await countdown.result()
    assert (lapsed.status, lapsed.exit_reason) == (JourneyStatus.EXITED, "churn-risk")

    joined = await lee.journey_when(lambda s: "alert-owner" in s.actions_done)
    assert joined.status == JourneyStatus.RUNNING
    assert CHURN_RISK_TAG in await lee.tags()
    [task] = await rows_of(engine, CrmTask, "lee")
    assert (task.kind, task.assignee_id) == ("churn_risk", "sdr-leo")
    assert task.title == "Churn risk: renewal of pro lapsed: Lee (Acme)"

    await lee.send("renewed", subscription_id="pro")
    result = await lee.journey_when(lambda s: s.status != JourneyStatus.RUNNING)
    assert (result.status, result.exit_reason) == (JourneyStatus.EXITED, "renewed")
    assert CHURN_RISK_TAG not in await lee.tags()
    await save_history(
        time_skipping_env.client, "renewal-countdown-lee-pro", "renewal-countdown-lapsed"
    )


async def test_a_usage_drop_records_the_histories_the_replay_test_replays(
    time_skipping_env: WorkflowEnvironment, settings: Settings, engine: AsyncEngine, worker: Worker
) -> None:
    """The contact workflow routing a derived drop, and the journey exiting on recovery."""
    await add_contact(engine, "hist", first_name="Hal")
    hal = customer("hist", time_skipping_env, settings, engine)
    await hal.usage(50, 50, 10)
    await hal.journey_when(lambda s: "alert-owner" in s.actions_done)
    await hal.send("usage_reported", metric="campaigns_sent", value=40)
    result = await hal.journey_when(lambda s: s.status != JourneyStatus.RUNNING)
    assert result.exit_reason == "usage_recovered"
    await save_history(
        time_skipping_env.client, "churn-prevention-hist", "churn-prevention-alerted-recovered"
    )
    await save_history(time_skipping_env.client, "contact-hist", "contact-usage-dropped-recovered")
