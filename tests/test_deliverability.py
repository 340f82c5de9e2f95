"""The deliverability guard's figures, judgement, alerts and circuit breaker, on a real database.

The rates come from real message-log and event rows (SQLite and PostgreSQL); the
check runs the real activity with the real outbox notifier; the send path is the
real send activity.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from temporalio.testing import ActivityEnvironment

from activities.deliverability import DeliverabilityActivities
from activities.messaging import MessagingActivities
from activities.providers import OutboxNotifier
from models.db import session_factory
from models.deliverability import GuardConfig, Metric
from models.messages import DeliveryStatus, MessageCategory, SendRequest
from models.settings import Settings
from models.tables import ContactEvent, DeliverabilityAlert, MessageLog, SendPause
from rules.deliverability import breaches, measure
from rules.templates import TemplateCatalog
from starter.services.deliverability import (
    deliverability_status,
    pause_journey_sends,
    resume_journey_sends,
)
from starter.services.operations import Conflict, NotFound
from starter.services.report import funnel_report, render_table
from tests.factories import add_contact, message_rows
from workflows.deliverability_guard import details

NOW = datetime.now(UTC)
OWNERS: dict[str, Any] = {
    "owners": {"default": "ops-kai", "nurture": "mkt-ana"},
    "people": [
        {"id": "ops-kai", "name": "Kai"},
        {"id": "mkt-ana", "name": "Ana", "mention": "<@U0ANA>"},
    ],
}


def guard_config(**changes: Any) -> GuardConfig:
    """The shipped limits, judged from 10 emails, opens settled after an hour."""
    return GuardConfig.model_validate({"min_sends": 10, "settle_hours": 1, **OWNERS, **changes})


async def sent_emails(
    engine: AsyncEngine, journey: str, step: str, count: int, *, ago: timedelta
) -> list[MessageLog]:
    """`count` emails of the step, sent `ago`, with their provider ids."""
    rows = [
        MessageLog(
            idempotency_key=f"{journey}-{step}-{index}-{ago.total_seconds()}",
            contact_id=f"{journey}-{step}-{ago.total_seconds():g}-c{index}",
            journey=journey,
            step=step,
            channel="email",
            template=f"{journey}/{step}",
            status=DeliveryStatus.SENT,
            provider="outbox",
            provider_message_id=f"<{journey}-{step}-{index}-{ago.total_seconds()}@test>",
            sent_at=NOW - ago,
        )
        for index in range(count)
    ]
    async with session_factory(engine)() as session:
        session.add_all(rows)
        await session.commit()
    return rows


async def events(engine: AsyncEngine, *rows: tuple[MessageLog, str, dict[str, Any]]) -> None:
    """One event per (message, type, extra properties), about that message, a minute after it."""
    async with session_factory(engine)() as session:
        for index, (message, event_type, extra) in enumerate(rows):
            assert message.sent_at is not None
            properties = {"journey": message.journey, "step": message.step, **extra}
            session.add(
                ContactEvent(
                    event_id=f"evt-{index}-{event_type}-{message.contact_id}",
                    batch_key="tests",
                    contact_id=message.contact_id,
                    type=event_type,
                    occurred_at=message.sent_at + timedelta(minutes=1),
                    properties={
                        key: value for key, value in properties.items() if value is not None
                    },
                )
            )
        await session.commit()


async def test_each_step_is_measured_and_judged_against_the_seed_limits(
    database: AsyncEngine,
) -> None:
    day0 = await sent_emails(database, "welcome-series", "day0", 20, ago=timedelta(hours=3))
    fresh = await sent_emails(database, "welcome-series", "day0", 5, ago=timedelta(minutes=5))
    day1 = await sent_emails(database, "welcome-series", "day1", 9, ago=timedelta(hours=3))
    old = await sent_emails(database, "nurture", "email1", 30, ago=timedelta(days=2))
    await events(
        database,
        (day0[0], "email_bounced", {"bounce_type": "hard"}),
        (day0[1], "email_complained", {}),
        (day0[2], "email_opened", {}),
        (day0[2], "email_opened", {}),  # the same contact twice: counted once
        (day0[3], "email_opened", {}),
        (day0[2], "email_clicked", {}),
        (fresh[0], "email_opened", {}),  # opened, but its email is not settled: not counted
        # the unsubscribe link names no step: it counts for the contact's last email
        (day0[4], "unsubscribed", {"journey": None, "step": None, "channel": "email"}),
        (day1[0], "email_bounced", {"bounce_type": "hard"}),
        (old[0], "email_bounced", {"bounce_type": "hard"}),  # out of the window
    )

    async with session_factory(database)() as session:
        steps = await measure(
            session, since=NOW - timedelta(hours=24), settled_before=NOW - timedelta(hours=1)
        )

    by_step = {(step.journey, step.step): step for step in steps}
    assert set(by_step) == {("welcome-series", "day0"), ("welcome-series", "day1")}
    day0_rates = by_step["welcome-series", "day0"]
    assert (day0_rates.sent, day0_rates.settled) == (25, 20)
    assert {metric: day0_rates.rate(metric) for metric in Metric} == {
        Metric.BOUNCE: 1 / 25,
        Metric.COMPLAINT: 1 / 25,
        Metric.UNSUBSCRIBE: 1 / 25,
        Metric.OPEN: 2 / 20,
        Metric.CLICK: 1 / 20,
    }
    found = {
        (breach.step, breach.metric): breach.pauses for breach in breaches(steps, guard_config())
    }
    assert found == {
        ("day0", Metric.BOUNCE): False,  # 4% ≥ 2%, below the 5% pause limit
        ("day0", Metric.COMPLAINT): True,  # 4% ≥ 0.3%
        ("day0", Metric.UNSUBSCRIBE): False,  # 4% ≥ 1%
    }, "open 10% and click 5% are within; day1 sent 9 < 10 emails and is not judged"
    assert not breaches(steps, guard_config(min_sends=30)), "too few emails to judge"
    lenient = breaches(steps, guard_config(alert={"open": 0.2}, pause={}))
    assert [(breach.metric, breach.pauses) for breach in lenient] == [(Metric.OPEN, False)]


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"pause": {"open": 0.05}}, "only bounce and complaint rates pause sends"),
        ({"alert": {"bounce": 2}}, "alert.bounce: Input should be less than or equal to 1"),
        ({"owners": {"default": "nobody"}}, "nobody not among [[people]]"),
        ({"owners": {"nurture": "ops-kai"}}, "name a `default` owner"),
        ({"min_sends": 0}, "min_sends: Input should be greater than 0"),
    ],
)
def test_a_bad_guard_file_is_refused_naming_the_problem(
    tmp_path: Path, changes: dict[str, Any], problem: str
) -> None:
    data = {**OWNERS, **changes}
    path = tmp_path / "deliverability.toml"
    path.write_text(_toml(data))
    with pytest.raises(ValueError, match="invalid deliverability configuration") as refused:
        GuardConfig.load(path)
    assert problem in str(refused.value)


def test_the_shipped_file_holds_the_seed_limits() -> None:
    config = GuardConfig.load(Settings().deliverability_file)
    assert config.alert == {
        Metric.BOUNCE: 0.02,
        Metric.COMPLAINT: 0.001,
        Metric.UNSUBSCRIBE: 0.01,
        Metric.OPEN: 0.10,
        Metric.CLICK: 0.03,
    }
    assert config.pause == {Metric.BOUNCE: 0.05, Metric.COMPLAINT: 0.003}
    owner = config.owner_of("welcome-series")
    assert owner is not None and owner.id == "ops-kai"


async def test_a_check_alerts_the_owner_once_pauses_on_a_spike_and_resume_starts_afresh(
    settings: Settings, database: AsyncEngine
) -> None:
    welcome = await sent_emails(database, "welcome-series", "day0", 20, ago=timedelta(hours=3))
    nurture = await sent_emails(database, "nurture", "email1", 20, ago=timedelta(hours=3))
    await events(
        database,
        *((message, "email_bounced", {"bounce_type": "hard"}) for message in welcome[:2]),
        (nurture[0], "unsubscribed", {"channel": "email"}),
    )
    notifier = OutboxNotifier(settings.outbox_dir)
    config = guard_config(alert={"bounce": 0.02, "unsubscribe": 0.01})  # no opens, no clicks
    guard = DeliverabilityActivities(engine=database, config=config, notifier=notifier)

    first = await ActivityEnvironment().run(guard.check_deliverability)
    again = await ActivityEnvironment().run(guard.check_deliverability)

    assert first.paused == ["welcome-series"], "bounces 10% ≥ the 5% pause limit"
    assert first.paused_journeys == again.paused_journeys == ["welcome-series"]
    assert sorted(first.raised) == [
        "bounce rate 10.0% on day0 (above the pause limit 5.0%, 20 emails)",
        "unsubscribe rate 5.0% on email1 (above the alert limit 1.0%, 20 emails)",
    ]
    assert (again.raised, again.paused, again.cleared) == ([], [], [])
    notifications = _notifications(settings)
    assert [(note["recipient"], note["kind"], note["title"]) for note in notifications] == [
        ("Kai", "deliverability", "Sends paused: welcome-series (bounce rate 10.0%)"),
        ("<@U0ANA>", "deliverability", "Deliverability alert: nurture (unsubscribe rate 5.0%)"),
    ], "each owner once, though the check ran twice"
    assert "journeys deliverability resume welcome-series" in notifications[0]["text"]
    assert "**Sends paused:** welcome-series" in details(again)

    resumed = await resume_journey_sends(database, "welcome-series", actor="cli:ops")
    after = await ActivityEnvironment().run(guard.check_deliverability)

    assert resumed.resumed_by == "cli:ops"
    assert after.paused_journeys == [], "measured from the resume on: nothing sent since"
    assert after.cleared == ["welcome-series/day0/bounce"]
    async with session_factory(database)() as session:
        alerts = (await session.exec(select(DeliverabilityAlert))).all()
        [pause] = (await session.exec(select(SendPause))).all()
    assert sorted((alert.key, alert.cleared_at is None) for alert in alerts) == [
        ("nurture/email1/unsubscribe", True),
        ("welcome-series/day0/bounce", False),
    ]
    assert (pause.paused_by, pause.resumed_by) == ("deliverability-guard", "cli:ops")
    report = render_table(await funnel_report(database, journey="welcome-series"))
    assert "sends paused" in report and "by deliverability-guard (deliverability guard: bounce" in (
        report
    )
    assert "resumed" in report and "by cli:ops" in report


async def test_operators_pause_and_resume_a_journey_by_hand(database: AsyncEngine) -> None:
    paused = await pause_journey_sends(database, "nurture", actor="api:ops", reason="new domain")
    with pytest.raises(Conflict, match="paused already"):
        await pause_journey_sends(database, "nurture", actor="api:ops", reason="")
    with pytest.raises(NotFound, match="no journey named 'nurtur'"):
        await pause_journey_sends(database, "nurtur", actor="api:ops", reason="")
    status = await deliverability_status(database, guard_config())
    assert [(view.journey, view.reason) for view in status.paused] == [("nurture", "new domain")]
    assert paused.resumed_at is None
    await resume_journey_sends(database, "nurture", actor="api:ops")
    with pytest.raises(NotFound, match="not paused"):
        await resume_journey_sends(database, "nurture", actor="api:ops")


async def test_a_paused_journeys_marketing_waits_and_its_service_messages_go(
    settings: Settings, engine: AsyncEngine
) -> None:
    await add_contact(engine, "ada")
    messaging = MessagingActivities.from_settings(
        settings.model_copy(update={"send_pause_recheck_seconds": 300}),
        engine,
        templates=TemplateCatalog(settings.templates_dir),
    )
    await pause_journey_sends(engine, "welcome-series", actor="cli:ops", reason="bounces")
    now = datetime.now(UTC).replace(microsecond=0)

    held = await at(now).run(messaging.send_message, _request("day0", MessageCategory.MARKETING))
    service = await at(now).run(
        messaging.send_message, _request("receipt", MessageCategory.TRANSACTIONAL)
    )
    await resume_journey_sends(engine, "welcome-series", actor="cli:ops")
    sent = await at(now + timedelta(minutes=5)).run(
        messaging.send_message, _request("day0", MessageCategory.MARKETING)
    )

    assert held.status == DeliveryStatus.DEFERRED
    assert held.deferred_until == now + timedelta(seconds=300)
    assert held.reason is not None and "sends of welcome-series paused by cli:ops" in held.reason
    assert service.status == DeliveryStatus.SENT
    assert sent.status == DeliveryStatus.SENT
    assert [row.status for row in await message_rows(engine, "ada")] == ["sent", "sent"]


def at(now: datetime) -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, current_attempt_scheduled_time=now)
    return env


def _request(step: str, category: MessageCategory) -> SendRequest:
    return SendRequest(
        idempotency_key=f"welcome-series-ada/{step}",
        contact_id="ada",
        journey="welcome-series",
        step=step,
        template="welcome-series/day0",
        category=category,
    )


def _notifications(settings: Settings) -> list[dict[str, Any]]:
    folder = settings.outbox_dir / "notifications"
    notes = [json.loads(path.read_text()) for path in folder.rglob("*.json")]
    return sorted(notes, key=lambda note: note["title"], reverse=True)


def _toml(data: dict[str, Any]) -> str:
    lines = []
    tables = []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append(f"[{key}]")
            tables += [f"{name} = {json.dumps(item)}" for name, item in value.items()]
        elif isinstance(value, list):
            for item in value:
                tables.append(f"[[{key}]]")
                tables += [f"{name} = {json.dumps(field)}" for name, field in item.items()]
        else:
            lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines + tables) + "\n"
