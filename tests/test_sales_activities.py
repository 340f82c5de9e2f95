"""The sales hand-off activities against a real migrated SQLite file and a real outbox folder."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel, select
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.providers import DeliveryError, OutboxNotifier, RepNotification
from activities.sales import SalesActivities
from models.crm import AccountAlert, AssigneeRole, CrmTaskKind, TaskPriority
from models.db import session_factory
from models.handoff import (
    HandOff,
    HandOffRequest,
    InteractionQuery,
    LastInteraction,
    LeadBand,
    PriorityRequest,
    SlaAlerts,
    SlaKind,
    SlaNotice,
)
from models.pipeline import PipelineStage
from models.settings import PROJECT_ROOT, Settings
from models.tables import (
    Contact,
    CrmTask,
    Notification,
    PipelineTransition,
    RepAssignment,
    SlaBreach,
)
from rules.sales import Rep, SalesConfig, SalesPerson, Territory
from tests.factories import add_lead

T0 = datetime(2026, 3, 4, 9, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)

CONFIG = SalesConfig(
    reps=[
        Rep(id="sdr-mia", name="Mia Chen", mention="<@UMIA>", manager="mgr-sam"),
        Rep(id="sdr-leo", name="Leo Brandt", manager="mgr-sam"),
        Rep(id="sdr-ines", name="Inès Moreau", manager="mgr-sam"),
    ],
    managers=[SalesPerson(id="mgr-sam", name="Sam Ortiz", mention="<@USAM>")],
    territories=[Territory(field="region", equals="EMEA", reps=["sdr-ines"])],
    round_robin=["sdr-mia", "sdr-leo"],
)

Row = TypeVar("Row", bound=SQLModel)


class RecordingNotifier:
    """The outbox notifier, recording each call and failing with scripted errors first."""

    def __init__(self, outbox: OutboxNotifier) -> None:
        self.name = outbox.name
        self.outbox = outbox
        self.failures: list[DeliveryError] = []
        self.sent: list[RepNotification] = []

    async def notify(self, notification: RepNotification) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(notification)
        await self.outbox.notify(notification)


@pytest.fixture
def notifier(settings: Settings) -> RecordingNotifier:
    return RecordingNotifier(OutboxNotifier(settings.outbox_dir))


@pytest.fixture
def sales(engine: AsyncEngine, notifier: RecordingNotifier) -> SalesActivities:
    return SalesActivities(engine=engine, config=CONFIG, notifier=notifier)


def at(scheduled: datetime, *, attempt: datetime | None = None) -> ActivityEnvironment:
    """An environment whose activity was scheduled at `scheduled` (this attempt at `attempt`)."""
    env = ActivityEnvironment()
    env.info = dataclasses.replace(
        env.info, scheduled_time=scheduled, current_attempt_scheduled_time=attempt or scheduled
    )
    return env


def hand_off(
    contact_id: str, band: str = "MQL", score: int = 40, *, run: int = 1
) -> HandOffRequest:
    return HandOffRequest(
        idempotency_key=f"lead-sla-{contact_id}-{run}/handoff",
        contact_id=contact_id,
        band=LeadBand(band=band, score=score),
    )


def notice(sla: SlaKind = SlaKind.FIRST_TOUCH, *, step: str = "first-touch") -> SlaNotice:
    return SlaNotice(
        idempotency_key=f"lead-sla-ada-1/{step}",
        contact_id="ada",
        owner_id="sdr-mia",
        sla=sla,
        due_at=T0 + 10 * MINUTE,
    )


async def rows(engine: AsyncEngine, table: type[Row]) -> list[Row]:
    async with session_factory(engine)() as session:
        return list((await session.exec(select(table))).all())


async def follow_ups(engine: AsyncEngine) -> list[CrmTask]:
    """The tasks besides the hand-off's BANT/CHAMP checklists."""
    return [task for task in await rows(engine, CrmTask) if task.kind != CrmTaskKind.LEAD_CHECKLIST]


async def contact(engine: AsyncEngine, contact_id: str) -> Contact:
    async with session_factory(engine)() as session:
        found = await session.get(Contact, contact_id)
    assert found is not None
    return found


def notification_file(settings: Settings, key: str) -> dict[str, Any]:
    path = settings.outbox_dir / "notifications" / f"{key}.json"
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def notification_files(settings: Settings) -> list[Path]:
    return sorted((settings.outbox_dir / "notifications").rglob("*.json"))


# --- owner ------------------------------------------------------------------------------------


async def test_a_territory_lead_goes_to_the_territory_rep(
    engine: AsyncEngine, sales: SalesActivities
) -> None:
    await add_lead(engine, "emea", attributes={"region": "EMEA"})

    result = await at(T0).run(sales.hand_off_lead, hand_off("emea"))

    [task] = await follow_ups(engine)
    assert result == HandOff(
        owner_id="sdr-ines",
        owner_name="Inès Moreau",
        manager_id="mgr-sam",
        task_id=task.id,
        sla=CONFIG.sla,
    )
    lead = await contact(engine, "emea")
    assert (lead.owner_id, lead.owner_assigned_at) == ("sdr-ines", T0)


async def test_round_robin_takes_turns_among_the_pool(
    engine: AsyncEngine, sales: SalesActivities
) -> None:
    leads = ["l1", "l2", "emea", "l3", "l4"]
    for lead in leads:
        await add_lead(
            engine, lead, attributes={"region": "EMEA" if lead == "emea" else "Americas"}
        )

    owners = [
        (await at(T0 + n * MINUTE).run(sales.hand_off_lead, hand_off(lead))).owner_id
        for n, lead in enumerate(leads)
    ]

    assert owners == ["sdr-mia", "sdr-leo", "sdr-ines", "sdr-mia", "sdr-leo"]
    assignments = {row.rep_id: row for row in await rows(engine, RepAssignment)}
    assert {
        rep: (row.assigned_count, row.last_assigned_at) for rep, row in assignments.items()
    } == {
        "sdr-mia": (2, T0 + 3 * MINUTE),
        "sdr-leo": (2, T0 + 4 * MINUTE),
        "sdr-ines": (1, T0 + 2 * MINUTE),
    }


async def test_the_owner_is_kept_for_ownership_days_then_the_turn_moves_on(
    engine: AsyncEngine, sales: SalesActivities
) -> None:
    for lead in ["ada", "bob", "cy"]:
        await add_lead(engine, lead)
    await add_lead(engine, "dee", owner_id="sdr-gone", owner_assigned_at=T0)
    for n, lead in enumerate(["ada", "bob", "cy"]):  # mia, leo, mia: leo is next in turn
        await at(T0 + n * MINUTE).run(sales.hand_off_lead, hand_off(lead))

    kept = await at(T0 + 6 * DAY).run(sales.hand_off_lead, hand_off("ada", "SQL", 60, run=2))
    assert kept.owner_id == "sdr-mia"
    assert (await contact(engine, "ada")).owner_assigned_at == T0

    moved = await at(T0 + 8 * DAY).run(sales.hand_off_lead, hand_off("ada", run=3))
    assert moved.owner_id == "sdr-leo"
    assert (await contact(engine, "ada")).owner_assigned_at == T0 + 8 * DAY

    not_a_rep = await at(T0 + 8 * DAY + MINUTE).run(sales.hand_off_lead, hand_off("dee"))
    assert not_a_rep.owner_id == "sdr-mia"


# --- task -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("band", "kind", "priority", "title", "due_in"),
    [
        ("MQL", CrmTaskKind.LEAD_FOLLOW_UP, TaskPriority.NORMAL, "Follow up new MQL", 10 * MINUTE),
        ("SQL", CrmTaskKind.LEAD_FOLLOW_UP, TaskPriority.HIGH, "Priority follow-up", 10 * MINUTE),
        ("Hot", CrmTaskKind.LEAD_CALL, TaskPriority.URGENT, "Call now", timedelta(0)),
        ("HOT", CrmTaskKind.LEAD_CALL, TaskPriority.URGENT, "Call now", timedelta(0)),
    ],
)
async def test_the_task_is_as_urgent_as_the_band(
    engine: AsyncEngine,
    sales: SalesActivities,
    band: str,
    kind: CrmTaskKind,
    priority: TaskPriority,
    title: str,
    due_in: timedelta,
) -> None:
    await add_lead(engine, "ada")

    result = await at(T0).run(sales.hand_off_lead, hand_off("ada", band, 70))

    [task] = await follow_ups(engine)
    assert (task.id, task.idempotency_key) == (result.task_id, "lead-sla-ada-1/handoff/task")
    assert (task.kind, task.priority, task.title, task.due_at) == (
        kind,
        priority,
        title,
        T0 + due_in,
    )
    assert (task.assignee_role, task.assignee_id) == (AssigneeRole.SALES_REP, "sdr-mia")
    assert task.status == "open"
    assert "Score: 70" in task.details


# --- notification -----------------------------------------------------------------------------


async def test_the_owner_is_notified_with_score_breakdown_last_actions_and_source(
    engine: AsyncEngine, sales: SalesActivities, settings: Settings
) -> None:
    await add_lead(
        engine,
        "ada",
        phone="+14155550100",
        tags=["stage_mql", "src_webinar", "src_partner"],
        score_breakdown={
            "email_clicked": 3,
            "pricing_page_viewed": 20,
            "demo_requested": 25,
            "fit": 10,
        },
        events=[
            ("website_visited", T0 - 7 * DAY, {"utm_source": "google", "utm_medium": "cpc"}),
            ("email_opened", T0 - 6 * DAY, {}),
            (
                "email_clicked",
                T0 - 5 * DAY,
                {
                    "utm_source": "newsletter",
                    "utm_medium": "email",
                    "utm_campaign": "march ada@example.com",
                    "utm_term": "ada@example.com",
                },
            ),
            ("content_downloaded", T0 - 3 * DAY, {"asset": "roi-guide"}),
            ("pricing_page_viewed", T0 - 2 * DAY, {"page": "/pricing"}),
            ("pricing_page_viewed", T0 - 60 * MINUTE, {"page": "/pricing"}),
            ("demo_requested", T0 - 10 * MINUTE, {}),
        ],
    )

    result = await at(T0).run(sales.hand_off_lead, hand_off("ada", "SQL", 58))

    sent = notification_file(settings, "lead-sla-ada-1/handoff/notify")
    assert {key: sent[key] for key in ("recipient_id", "recipient", "kind", "contact_id")} == {
        "recipient_id": "sdr-mia",
        "recipient": "<@UMIA>",
        "kind": "hand_off",
        "contact_id": "ada",
    }
    assert sent["title"] == "New SQL lead: Ada (Acme), score 58"
    assert sent["text"] == (
        "Contact: Ada (Acme) · id ada\n"
        "Score: 58 (SQL)\n"
        "Breakdown: demo_requested +25, pricing_page_viewed +20, email_clicked +3, fit +10\n"
        "Last actions:\n"
        "• demo_requested · 2026-03-04 08:50 UTC\n"
        "• pricing_page_viewed · 2026-03-04 08:00 UTC\n"
        "• pricing_page_viewed · 2026-03-02 09:00 UTC\n"
        "• content_downloaded · 2026-03-01 09:00 UTC\n"
        "• email_clicked · 2026-02-27 09:00 UTC\n"
        "Source: utm_source=newsletter, utm_medium=email, utm_campaign=march <address>, "
        "src_webinar, src_partner\n"
        f"Task #{result.task_id}: Priority follow-up (high), due 2026-03-04 09:10 UTC\n"
        f"Task #{result.task_id + 1}: Qualification checklist (BANT/CHAMP): Ada (Acme) "
        "(normal), due 2026-03-06 09:00 UTC\n"
        "SLA: first touch within 10 min, qualification within 48 h"
    )
    content = json.dumps(sent)
    assert "example.com" not in content
    assert "4155550100" not in content
    [row] = await rows(engine, Notification)
    assert (row.idempotency_key, row.status, row.provider, row.sent_at) == (
        "lead-sla-ada-1/handoff/notify",
        "sent",
        "outbox",
        T0,
    )
    assert (row.title, row.text) == (sent["title"], sent["text"])


async def test_a_lead_without_history_is_notified_as_such(
    engine: AsyncEngine, sales: SalesActivities, settings: Settings
) -> None:
    await add_lead(engine, "anon", first_name=None, company=None)

    await at(T0).run(sales.hand_off_lead, hand_off("anon"))

    sent = notification_file(settings, "lead-sla-anon-1/handoff/notify")
    assert sent["title"] == "New MQL lead: Unnamed lead, score 40"
    lines = sent["text"].splitlines()
    assert lines[:5] == [
        "Contact: Unnamed lead · id anon",
        "Score: 40 (MQL)",
        "Breakdown: none",
        "Last actions: none recorded",
        "Source: unknown",
    ]


# --- idempotency ------------------------------------------------------------------------------


async def test_a_retried_hand_off_assigns_opens_and_notifies_once(
    engine: AsyncEngine,
    sales: SalesActivities,
    notifier: RecordingNotifier,
    settings: Settings,
) -> None:
    await add_lead(engine, "ada")
    await add_lead(engine, "bob")

    first = await at(T0).run(sales.hand_off_lead, hand_off("ada"))
    await at(T0 + MINUTE).run(sales.hand_off_lead, hand_off("bob"))  # leo's turn next
    again = await at(T0, attempt=T0 + 2 * MINUTE).run(sales.hand_off_lead, hand_off("ada"))

    assert again == first
    assert [task.id for task in await follow_ups(engine) if task.contact_id == "ada"] == [
        first.task_id
    ]
    assert [sent.contact_id for sent in notifier.sent] == ["ada", "bob"]
    assert len(notification_files(settings)) == 2
    assert len(await rows(engine, Notification)) == 2
    counts = {row.rep_id: row.assigned_count for row in await rows(engine, RepAssignment)}
    assert counts == {"sdr-mia": 1, "sdr-leo": 1}


async def test_a_transient_notifier_failure_is_retried_later_and_sent_once(
    engine: AsyncEngine, sales: SalesActivities, notifier: RecordingNotifier
) -> None:
    await add_lead(engine, "ada")
    notifier.failures.append(
        DeliveryError(
            "Slack webhook answered HTTP 429: rate_limited",
            permanent=False,
            retry_after=timedelta(seconds=30),
            status_code=429,
        )
    )

    with pytest.raises(ApplicationError) as raised:
        await at(T0).run(sales.hand_off_lead, hand_off("ada"))
    assert raised.value.type == "DeliveryDeferred"
    assert not raised.value.non_retryable
    assert raised.value.next_retry_delay == timedelta(seconds=30)
    [pending] = await rows(engine, Notification)
    assert (pending.status, pending.sent_at) == ("pending", None)

    result = await at(T0, attempt=T0 + MINUTE).run(sales.hand_off_lead, hand_off("ada"))

    [task] = await follow_ups(engine)
    assert (result.owner_id, result.task_id) == ("sdr-mia", task.id)
    assert len(notifier.sent) == 1
    [sent] = await rows(engine, Notification)
    assert (sent.status, sent.sent_at) == ("sent", T0 + MINUTE)


async def test_a_permanent_notifier_failure_is_not_retried(
    engine: AsyncEngine, sales: SalesActivities, notifier: RecordingNotifier
) -> None:
    await add_lead(engine, "ada")
    notifier.failures.append(
        DeliveryError("Slack webhook answered HTTP 404: no_service", permanent=True)
    )

    with pytest.raises(ApplicationError) as raised:
        await at(T0).run(sales.hand_off_lead, hand_off("ada"))

    assert raised.value.type == "DeliveryRejected"
    assert raised.value.non_retryable
    [row] = await rows(engine, Notification)
    assert (row.status, row.provider, row.sent_at) == ("failed", "outbox", None)


# --- priority, reminder, escalation -----------------------------------------------------------


@pytest.mark.parametrize(
    ("band", "kind", "priority", "title", "due_in"),
    [
        ("Hot", CrmTaskKind.LEAD_CALL, TaskPriority.URGENT, "Call now", timedelta(0)),
        ("SQL", CrmTaskKind.LEAD_FOLLOW_UP, TaskPriority.HIGH, "Priority follow-up", 10 * MINUTE),
    ],
)
async def test_a_lead_moving_up_gets_a_more_urgent_task_and_the_owner_is_told(
    engine: AsyncEngine,
    sales: SalesActivities,
    notifier: RecordingNotifier,
    band: str,
    kind: CrmTaskKind,
    priority: TaskPriority,
    title: str,
    due_in: timedelta,
) -> None:
    await add_lead(engine, "ada", owner_id="sdr-mia", owner_assigned_at=T0)
    request = PriorityRequest(
        idempotency_key=f"lead-sla-ada-1/priority-{band.lower()}",
        contact_id="ada",
        owner_id="sdr-mia",
        band=LeadBand(band=band, score=80),
    )

    first = await at(T0 + DAY).run(sales.raise_lead_priority, request)
    again = await at(T0 + DAY, attempt=T0 + DAY + MINUTE).run(sales.raise_lead_priority, request)

    assert first.created and not again.created and again.task_id == first.task_id
    [task] = await rows(engine, CrmTask)
    assert (task.kind, task.priority, task.title, task.due_at) == (
        kind,
        priority,
        title,
        T0 + DAY + due_in,
    )
    assert (task.assignee_role, task.assignee_id) == (AssigneeRole.SALES_REP, "sdr-mia")
    [sent] = notifier.sent
    assert (sent.kind, sent.recipient, sent.idempotency_key) == (
        "priority",
        "<@UMIA>",
        f"lead-sla-ada-1/priority-{band.lower()}/notify",
    )
    assert sent.title == f"Ada (Acme) moved up to {band}: {title}"
    assert f"Score: 80 ({band})" in sent.text
    assert f"Task #{task.id}: {title}" in sent.text


async def test_the_owner_is_reminded_once_before_an_sla_runs_out(
    engine: AsyncEngine, sales: SalesActivities, notifier: RecordingNotifier
) -> None:
    await add_lead(engine, "ada", owner_id="sdr-mia", owner_assigned_at=T0)
    reminder = notice(SlaKind.QUALIFICATION, step="qualification-reminder")

    await at(T0 + 5 * MINUTE).run(sales.remind_sla, reminder)
    await at(T0 + 5 * MINUTE, attempt=T0 + 6 * MINUTE).run(sales.remind_sla, reminder)

    [sent] = notifier.sent
    assert (sent.kind, sent.recipient_id, sent.recipient) == ("sla_reminder", "sdr-mia", "<@UMIA>")
    assert sent.title == "Reminder: Qualification SLA for Ada (Acme) due 2026-03-04 09:10 UTC"
    assert sent.text == (
        "Contact: Ada (Acme) · id ada\n"
        "Qualification SLA due 2026-03-04 09:10 UTC\n"
        "Qualify or disqualify the lead (`lead_qualified` / `lead_disqualified`)."
    )
    assert await rows(engine, CrmTask) == []


async def test_a_breach_is_recorded_and_escalated_to_the_manager_once(
    engine: AsyncEngine, sales: SalesActivities, notifier: RecordingNotifier
) -> None:
    await add_lead(engine, "ada", owner_id="sdr-mia", owner_assigned_at=T0)
    breach = notice(SlaKind.FIRST_TOUCH, step="first-touch-breach")

    await at(T0 + 10 * MINUTE).run(sales.escalate_sla_breach, breach)
    await at(T0 + 10 * MINUTE, attempt=T0 + 12 * MINUTE).run(sales.escalate_sla_breach, breach)

    [recorded] = await rows(engine, SlaBreach)
    assert (recorded.idempotency_key, recorded.contact_id, recorded.owner_id) == (
        "lead-sla-ada-1/first-touch-breach",
        "ada",
        "sdr-mia",
    )
    assert (recorded.sla, recorded.due_at, recorded.breached_at) == (
        "first_touch",
        T0 + 10 * MINUTE,
        T0 + 10 * MINUTE,
    )
    [task] = await rows(engine, CrmTask)
    assert (task.kind, task.priority, task.assignee_role, task.assignee_id) == (
        CrmTaskKind.SLA_ESCALATION,
        TaskPriority.HIGH,
        AssigneeRole.SALES_MANAGER,
        "mgr-sam",
    )
    assert (task.title, task.due_at) == ("First-touch SLA breached: Ada (Acme)", T0 + 10 * MINUTE)
    [sent] = notifier.sent
    assert (sent.kind, sent.recipient_id, sent.recipient) == (
        "sla_escalation",
        "mgr-sam",
        "<@USAM>",
    )
    assert sent.title == "First-touch SLA breached by Mia Chen: Ada (Acme)"
    assert sent.text == (
        "Contact: Ada (Acme) · id ada\n"
        "First-touch SLA was due 2026-03-04 09:10 UTC; owner Mia Chen (sdr-mia)\n"
        f"Task #{task.id}: First-touch SLA breached: Ada (Acme) (high), due 2026-03-04 09:10 UTC"
    )


def churn_alert(key: str = "churn-prevention-ada/alert-owner") -> AccountAlert:
    return AccountAlert(
        idempotency_key=key,
        contact_id="ada",
        kind=CrmTaskKind.CHURN_RISK,
        title="Churn risk: campaigns_sent down to 40% of its average",
        lines=["Metric: campaigns_sent", "Value reported: 40", "Trailing average: 100"],
        due_at=T0 + 2 * DAY,
        priority=TaskPriority.HIGH,
    )


async def test_an_account_alert_goes_to_the_owner_once_with_the_context(
    engine: AsyncEngine, sales: SalesActivities, notifier: RecordingNotifier
) -> None:
    # The owner was assigned long ago (past the hand-off's 7-day lock): still the owner.
    await add_lead(engine, "ada", owner_id="sdr-leo", owner_assigned_at=T0 - 90 * DAY)

    first = await at(T0).run(sales.alert_account_owner, churn_alert())
    again = await at(T0, attempt=T0 + MINUTE).run(sales.alert_account_owner, churn_alert())

    assert (first.created, again.created, again.task_id) == (True, False, first.task_id)
    [task] = await rows(engine, CrmTask)
    assert (task.kind, task.assignee_role, task.assignee_id, task.priority, task.due_at) == (
        CrmTaskKind.CHURN_RISK,
        AssigneeRole.ACCOUNT_OWNER,
        "sdr-leo",
        TaskPriority.HIGH,
        T0 + 2 * DAY,
    )
    assert task.title == "Churn risk: campaigns_sent down to 40% of its average: Ada (Acme)"
    assert task.details == (
        "Contact: Ada (Acme) · id ada\n"
        "Metric: campaigns_sent\nValue reported: 40\nTrailing average: 100\n"
        "Last actions: none recorded"
    )
    [sent] = notifier.sent
    assert (sent.kind, sent.recipient_id, sent.title) == ("account_alert", "sdr-leo", task.title)
    assert (
        sent.text
        == f"{task.details}\nTask #{task.id}: {task.title} (high), due 2026-03-06 09:00 UTC"
    )


async def test_an_account_alert_for_a_contact_without_an_owner_goes_to_customer_success(
    engine: AsyncEngine, sales: SalesActivities, notifier: RecordingNotifier
) -> None:
    await add_lead(engine, "ada", attributes={"region": "EMEA"})

    await at(T0).run(sales.alert_account_owner, churn_alert())

    assert (await contact(engine, "ada")).owner_id is None  # a customer is not a sales lead
    [task] = await rows(engine, CrmTask)
    assert (task.assignee_role, task.assignee_id) == (AssigneeRole.CUSTOMER_SUCCESS, "cs-queue")
    assert [sent.recipient_id for sent in notifier.sent] == ["cs-queue"]


# --- failures ---------------------------------------------------------------------------------


async def test_a_missing_contact_or_an_unknown_owner_is_not_retried(
    engine: AsyncEngine, sales: SalesActivities, notifier: RecordingNotifier
) -> None:
    missing = SlaNotice(
        idempotency_key="lead-sla-nobody-1/first-touch",
        contact_id="nobody",
        owner_id="sdr-mia",
        sla=SlaKind.FIRST_TOUCH,
        due_at=T0,
    )
    priority = PriorityRequest(
        idempotency_key="lead-sla-nobody-1/priority-hot",
        contact_id="nobody",
        owner_id="sdr-mia",
        band=LeadBand(band="Hot", score=90),
    )
    env = at(T0)
    failures = [
        await _failure(env.run(sales.hand_off_lead, hand_off("nobody"))),
        await _failure(env.run(sales.raise_lead_priority, priority)),
        await _failure(env.run(sales.remind_sla, missing)),
        await _failure(env.run(sales.escalate_sla_breach, missing)),
    ]
    await add_lead(engine, "ada")
    gone = notice().model_copy(update={"owner_id": "sdr-gone"})
    failures.append(await _failure(env.run(sales.remind_sla, gone)))

    assert [(error.type, error.non_retryable) for error in failures] == [
        ("ContactNotFound", True),
        ("ContactNotFound", True),
        ("ContactNotFound", True),
        ("ContactNotFound", True),
        ("UnknownRep", True),
    ]
    assert notifier.sent == []
    assert await rows(engine, CrmTask) == []
    assert await rows(engine, SlaBreach) == []


async def _failure(run: Any) -> ApplicationError:
    with pytest.raises(ApplicationError) as raised:
        await run
    return raised.value


# --- configuration ----------------------------------------------------------------------------


def test_the_default_sales_toml_loads() -> None:
    config = SalesConfig.load(PROJECT_ROOT / "sales.toml")

    assert config.sla.first_touch == 10 * MINUTE
    assert config.sla.qualification == timedelta(hours=48)
    assert config.sla.ownership_days == 7
    assert [rep.id for rep in config.candidates({"region": "EMEA"})] == ["sdr-ines"]
    assert [rep.id for rep in config.candidates({})] == ["sdr-mia", "sdr-leo"]
    assert config.manager_of(config.reps[0]).id == "mgr-sam"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (
            '[[reps]]\nid = "sdr-a"\nname = "A"\nmanager = "mgr-x"\n'
            '[[managers]]\nid = "mgr-y"\nname = "Y"\n',
            "'sdr-a' has manager 'mgr-x', not a manager",
        ),
        (
            '[[reps]]\nid = "sdr-a"\nname = "A"\nmanager = "mgr-y"\n'
            '[[managers]]\nid = "mgr-y"\nname = "Y"\n[sla]\nfirst_touch_minutes = 0\n',
            "sla.first_touch_minutes: Input should be greater than 0",
        ),
        ('round_robin = ["sdr-a"\n', "not valid TOML"),
    ],
    ids=["unknown-manager", "zero-sla", "bad-toml"],
)
def test_a_broken_sales_config_names_the_problem(
    tmp_path: Path, content: str, problem: str
) -> None:
    path = tmp_path / "sales.toml"
    path.write_text(content)

    with pytest.raises(ValueError) as raised:
        SalesConfig.load(path)

    assert str(path) in str(raised.value)
    assert problem in str(raised.value)


# --- MQL transition and checklist (seed 002, step 4) ------------------------------------------


async def test_a_hand_off_records_the_mql_transition_and_opens_the_checklist_once_per_key(
    engine: AsyncEngine, sales: SalesActivities
) -> None:
    await add_lead(engine, "ada")

    first = await at(T0).run(sales.hand_off_lead, hand_off("ada", "SQL", 74))
    await at(T0, attempt=T0 + MINUTE).run(sales.hand_off_lead, hand_off("ada", "SQL", 74))

    [transition] = await rows(engine, PipelineTransition)
    assert (transition.idempotency_key, transition.stage, transition.previous_stage) == (
        "lead-sla-ada-1/handoff/mql",
        PipelineStage.MQL,
        None,
    )
    assert (transition.cause, transition.occurred_at) == ("hand-off (SQL, score 74)", T0)
    assert (await contact(engine, "ada")).pipeline_stage == PipelineStage.MQL
    [checklist] = [t for t in await rows(engine, CrmTask) if t.kind == CrmTaskKind.LEAD_CHECKLIST]
    assert checklist.idempotency_key == "lead-sla-ada-1/handoff/checklist"
    assert (checklist.assignee_role, checklist.assignee_id) == (
        AssigneeRole.SALES_REP,
        first.owner_id,
    )
    assert checklist.title == "Qualification checklist (BANT/CHAMP): Ada (Acme)"
    assert checklist.details == (
        "Contact: Ada (Acme) · id ada\n"
        "Budget: ?\nPain: ?\nDecision chain: ?\nTimeline: ?\nNext step: ?"
    )
    assert checklist.due_at == T0 + 2 * DAY  # with the qualification SLA


async def test_a_second_hand_off_inside_the_lock_keeps_the_owner_and_records_mql_again(
    engine: AsyncEngine, sales: SalesActivities
) -> None:
    await add_lead(engine, "ada")

    first = await at(T0).run(sales.hand_off_lead, hand_off("ada"))
    again = await at(T0 + 3 * DAY).run(sales.hand_off_lead, hand_off("ada", run=2))

    assert again.owner_id == first.owner_id
    assert [t.idempotency_key for t in await rows(engine, PipelineTransition)] == [
        "lead-sla-ada-1/handoff/mql",
        "lead-sla-ada-2/handoff/mql",
    ]
    checklists = [t for t in await rows(engine, CrmTask) if t.kind == CrmTaskKind.LEAD_CHECKLIST]
    assert [t.assignee_id for t in checklists] == [first.owner_id, first.owner_id]


# --- warning before due (seed 002: "SLA预警", 2 hours before) ---------------------------------


async def test_a_warning_goes_to_the_owner_and_the_manager_once(
    engine: AsyncEngine, sales: SalesActivities, notifier: RecordingNotifier
) -> None:
    await add_lead(engine, "ada", owner_id="sdr-mia", owner_assigned_at=T0)
    warning = notice(SlaKind.SQL_FOLLOW_UP, step="sql_follow_up-warning")

    await at(T0 + 8 * MINUTE).run(sales.warn_sla, warning)
    await at(T0 + 8 * MINUTE, attempt=T0 + 9 * MINUTE).run(sales.warn_sla, warning)

    assert [(s.kind, s.recipient_id, s.idempotency_key) for s in notifier.sent] == [
        ("sla_warning", "sdr-mia", "lead-sla-ada-1/sql_follow_up-warning/notify"),
        ("sla_warning", "mgr-sam", "lead-sla-ada-1/sql_follow_up-warning/notify-manager"),
    ]
    [to_owner, _] = notifier.sent
    assert to_owner.title == "Warning: SQL follow-up SLA for Ada (Acme) due 2026-03-04 09:10 UTC"
    assert to_owner.text == (
        "Contact: Ada (Acme) · id ada\n"
        "SQL follow-up SLA due 2026-03-04 09:10 UTC; owner Mia Chen (sdr-mia)\n"
        "Hold the first demo or deep-dive meeting and record it "
        "(`meeting_held`, kind `demo` or `deep-dive`)."
    )
    assert await rows(engine, SlaBreach) == []


def test_a_warning_not_shorter_than_its_sla_is_refused_at_load(tmp_path: Path) -> None:
    text = (PROJECT_ROOT / "sales.toml").read_text()
    path = tmp_path / "sales.toml"
    path.write_text(
        text.replace(
            "[sla.alerts.first_touch]\n", "[sla.alerts.first_touch]\nwarn_before_minutes = 120\n"
        )
    )

    with pytest.raises(ValueError) as refused:
        SalesConfig.load(path)

    message = str(refused.value)
    assert str(path) in message
    assert (
        "alerts.first_touch: warn_before_minutes = 120 is not shorter than the first_touch "
        "SLA (10 min)" in message
    )
    assert "lower it or leave it out" in message


def test_the_shipped_configuration_warns_2_hours_before_qualification_and_sql_follow_up() -> None:
    sla = SalesConfig.load(PROJECT_ROOT / "sales.toml").sla

    assert sla.alerts_for(SlaKind.FIRST_TOUCH) == SlaAlerts(reminder=True)
    assert sla.alerts_for(SlaKind.QUALIFICATION).warn_before == 2 * HOUR
    assert sla.alerts_for(SlaKind.SQL_FOLLOW_UP).warn_before == 2 * HOUR
    assert (sla.sql_follow_up, sla.no_interaction) == (72 * HOUR, 14 * DAY)


# --- the 14-day watch: last interaction --------------------------------------------------------


async def test_the_last_interaction_is_the_latest_contact_or_rep_event_since_the_hand_off(
    engine: AsyncEngine, sales: SalesActivities
) -> None:
    await add_lead(
        engine,
        "ada",
        events=[
            ("email_clicked", T0 - DAY, {}),  # before the hand-off
            ("website_visited", T0 + DAY, {}),
            ("meeting_held", T0 + 2 * DAY, {"kind": "demo"}),  # a rep's interaction
            ("email_delivered", T0 + 3 * DAY, {}),  # our system's, not an interaction
            ("usage_reported", T0 + 4 * DAY, {"value": 0}),  # no use
        ],
    )
    await add_lead(engine, "bob", events=[("email_bounced", T0 + DAY, {})])

    ada = await at(T0 + 14 * DAY).run(
        sales.last_interaction, InteractionQuery(contact_id="ada", since=T0)
    )
    bob = await at(T0 + 14 * DAY).run(
        sales.last_interaction, InteractionQuery(contact_id="bob", since=T0)
    )

    assert ada == LastInteraction(at=T0 + 2 * DAY)
    assert bob == LastInteraction(at=None)
