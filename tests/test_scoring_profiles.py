"""Seed 002's scoring profile on the time-skipping server (real worker, DB file, outbox).

Figures are computed by hand from `scoring.seed-002.toml`: fit VP +30, company size
50–500 +20, corporate email (the factories' `@example.com`) +10; open +2, click +5,
white paper +10, pricing +20, booking +40, unsubscribe −50, 90 days without activity
−15; < 40 Cold, 40–69 Warming, 70+ MQL with a key behaviour (pricing, event, booking).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from models.contact_workflow import ContactState
from models.db import session_factory
from models.journeys import ExitRequest, JourneyStatus
from models.pipeline import RecycleNotice
from models.search_attributes import BEHAVIOR_SCORE, FIT_SCORE, LEAD_SCORE, LIFECYCLE_STAGE
from models.settings import PROJECT_ROOT, Settings
from models.tables import Contact
from tests.cli import cli_environment, journeys
from tests.contact_kit import Contacts, journey_when
from tests.factories import add_lead
from tests.kit import kit_settings

FIT_60 = {"job_title": "VP", "company_size": "120"}  # + corporate email: 30 + 20 + 10


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The test's settings with seed 002's scoring profile (`SCORING_FILE`)."""
    return kit_settings(tmp_path).model_copy(
        update={"scoring_file": PROJECT_ROOT / "scoring.seed-002.toml"}
    )


def scored(total: int, fit: int, behavior: int) -> Callable[[ContactState], bool]:
    return lambda state: (state.score, state.fit, state.behavior) == (total, fit, behavior)


Scores = tuple[int, int, int, str | None]
"""Total, fit, behaviour and band."""


async def crm_scores(engine: AsyncEngine, contact_id: str, expected: Scores) -> Scores:
    """The contact's scores in the CRM once they are `expected` (the workflow's `state`
    query answers before its write), else the last ones read."""
    for _ in range(200):
        async with session_factory(engine)() as session:
            contact = await session.get(Contact, contact_id)
        assert contact is not None
        scores = (
            contact.lead_score,
            contact.fit_score,
            contact.behavior_score,
            contact.lifecycle_stage,
        )
        if scores == expected:
            break
        await asyncio.sleep(0.05)
    return scores


async def status_of(client: Client, workflow_id: str) -> WorkflowExecutionStatus | None:
    try:
        return (await client.get_workflow_handle(workflow_id).describe()).status
    except RPCError:
        return None  # never started


async def test_a_fit_60_lead_is_handed_off_only_at_70_with_a_key_behaviour(
    contacts: Contacts,
    worker: Worker,
    engine: AsyncEngine,
    settings: Settings,
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """The CRM, the search attributes and `journeys contact show` have all three scores."""
    client = time_skipping_env.client
    await add_lead(engine, "fit60", attributes=FIT_60)
    for event_type in ("email_opened", "email_clicked", "content_downloaded"):
        await contacts.send("fit60", event_type)
    # 60 + 2 + 5 + 10 = 77: at least 70, but no key behaviour: Warming, not handed off.
    state = await contacts.state_when("fit60", scored(77, 60, 17))
    assert (state.band, state.awaiting_key_behavior) == ("Warming", True)
    expected = (77, 60, 17, "Warming")
    assert await crm_scores(engine, "fit60", expected) == expected
    assert await status_of(client, "lead-sla-fit60") is None

    await contacts.send("fit60", "pricing_page_viewed")
    state = await contacts.state_when("fit60", scored(97, 60, 37))
    assert (state.band, state.awaiting_key_behavior) == ("MQL", False)
    sla = await journey_when(client, "lead-sla-fit60", lambda s: "handoff" in s.actions_done)
    assert sla.status == JourneyStatus.RUNNING
    expected = (97, 60, 37, "MQL")
    assert await crm_scores(engine, "fit60", expected) == expected
    found = (await contacts.handle("fit60").describe()).typed_search_attributes
    assert (found.get(LEAD_SCORE), found.get(FIT_SCORE), found.get(BEHAVIOR_SCORE)) == (97, 60, 37)
    assert found.get(LIFECYCLE_STAGE) == "MQL"

    env = cli_environment(settings, time_skipping_env.client.service_client.config.target_host)
    shown = await journeys("contact", "show", "fit60", env=env)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("fit60: score 97 (fit 60, behaviour 37), band MQL, owner sdr-")
    as_json = (await journeys("contact", "show", "fit60", "--json", env=env)).json()
    assert (as_json["lead_score"], as_json["fit_score"], as_json["behavior_score"]) == (97, 60, 37)
    missing = await journeys("contact", "show", "ghost", env=env)
    assert (missing.returncode, "'ghost' does not exist" in missing.stderr) == (1, True)


async def test_an_unsubscribe_costs_50_and_a_soft_bounce_10(
    contacts: Contacts, worker: Worker, engine: AsyncEngine
) -> None:
    await add_lead(engine, "unsub", attributes=FIT_60)
    await contacts.send("unsub", "demo_requested")
    await contacts.state_when("unsub", scored(100, 60, 40))
    await contacts.send("unsub", "email_bounced", bounce_type="soft")
    await contacts.state_when("unsub", scored(90, 60, 30))
    await contacts.send("unsub", "unsubscribed")
    state = await contacts.state_when("unsub", scored(40, 60, -20))
    assert state.breakdown == {
        "demo_requested": 40,
        "email_bounced": -10,
        "fit": 60,
        "unsubscribed": -50,
    }
    assert state.band == "Warming"
    expected = (40, 60, -20, "Warming")
    assert await crm_scores(engine, "unsub", expected) == expected


async def test_ninety_days_of_silence_cost_15_until_the_contact_acts_again(
    contacts: Contacts, worker: Worker, time_skipping_env: WorkflowEnvironment
) -> None:
    """No contact row: scoring only (no CRM, no re-engagement)."""
    await contacts.send("quiet", "email_clicked")
    state = await contacts.state_when("quiet", scored(5, 0, 5))
    await time_skipping_env.sleep(timedelta(days=89))
    state = await contacts.state_when("quiet", lambda s: s.events_accepted == 1)
    assert state.behavior == 5
    await time_skipping_env.sleep(timedelta(days=1, hours=1))
    state = await contacts.state_when("quiet", scored(-10, 0, -10))
    assert state.breakdown == {"email_clicked": 5, "inactive_90d": -15}
    found = (await contacts.handle("quiet").describe()).typed_search_attributes
    assert found.get(BEHAVIOR_SCORE) == -10
    await contacts.send("quiet", "email_opened")
    state = await contacts.state_when("quiet", scored(7, 0, 7))
    assert state.breakdown == {"email_clicked": 5, "email_opened": 2}


async def test_a_recycled_lead_is_handed_off_again_only_after_a_new_key_behaviour(
    contacts: Contacts, worker: Worker, engine: AsyncEngine, time_skipping_env: WorkflowEnvironment
) -> None:
    client = time_skipping_env.client
    await add_lead(engine, "rec", attributes=FIT_60)
    await contacts.send("rec", "pricing_page_viewed")
    await contacts.state_when("rec", lambda s: s.band == "MQL")
    await journey_when(client, "lead-sla-rec", lambda s: "handoff" in s.actions_done)
    first_run = (await client.get_workflow_handle("lead-sla-rec").describe()).run_id
    await contacts.send("rec", "rep_contacted")
    await contacts.send("rec", "lead_disqualified", reason="no-budget")
    await journey_when(client, "lead-sla-rec", lambda s: s.status != JourneyStatus.RUNNING)

    recycled_at = await time_skipping_env.get_current_time()
    await contacts.handle("rec").signal(
        "recycled", RecycleNotice(recycled_at=recycled_at, reason="no-budget")
    )
    # 60 + 20 = 80, but recycled: held Warming until a key behaviour after it.
    state = await contacts.state_when("rec", lambda s: s.recycled_at is not None)
    assert (state.score, state.band, state.awaiting_key_behavior) == (80, "Warming", True)
    expected = (80, 60, 20, "Warming")
    assert await crm_scores(engine, "rec", expected) == expected
    await contacts.send("rec", "email_clicked")
    state = await contacts.state_when("rec", scored(85, 60, 25))
    assert state.band == "Warming"
    assert await status_of(client, "lead-sla-rec") == WorkflowExecutionStatus.COMPLETED
    assert not await requalified_exits(client, "rec")

    await contacts.send("rec", "demo_requested")
    state = await contacts.state_when("rec", lambda s: s.recycled_at is None)  # requalified
    assert (state.score, state.fit, state.behavior, state.band) == (125, 60, 65, "MQL")
    await journey_when(
        client,
        "lead-sla-rec",
        lambda s: s.status == JourneyStatus.RUNNING and "handoff" in s.actions_done,
    )
    assert (await client.get_workflow_handle("lead-sla-rec").describe()).run_id != first_run
    assert await requalified_exits(client, "rec") == ["recycling-rec"]


async def requalified_exits(client: Client, contact_id: str) -> list[str]:
    """The workflows the contact workflow told to `exit` with reason `requalified`."""
    told = []
    history = client.get_workflow_handle(f"contact-{contact_id}").fetch_history_events()
    async for event in history:
        if event.event_type != EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED:
            continue
        attributes = event.signal_external_workflow_execution_initiated_event_attributes
        if attributes.signal_name != "exit":
            continue
        [request] = await client.data_converter.decode(attributes.input.payloads, [ExitRequest])
        if request.reason == "requalified":
            told.append(attributes.workflow_execution.workflow_id)
    return told
