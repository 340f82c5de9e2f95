"""Recycling (seed 002, step 6), on the time-skipping server with the real worker, templates,
database file and outbox.

A disqualification for no budget, no project or bad timing recycles the lead:
its pipeline stage and tag, its sales tasks cancelled, its owner kept, the
contact workflow told; then emails on Days 30, 60 and 90 and a review task every
90 days for a year. Other disqualifications do not recycle; a re-qualification,
a rep's qualification, a purchase, a final disqualification or an unsubscribe
end it.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from models.contacts import ConsentUpdate, ContactProfile
from models.db import session_factory
from models.event_properties import check_properties
from models.journeys import ExitRequest, JourneyState, JourneyStatus
from models.pipeline import PipelineStage, RecyclingInput
from models.recycling import RECYCLED_TAG, recyclable
from models.settings import Settings
from models.tables import Contact, CrmTask, MessageLog, PipelineTransition
from rules.pipeline import record_transition
from starter.services.operations import enroll
from starter.services.report import funnel_report
from tests.contact_kit import Contacts, journey_when
from tests.factories import add_lead, rows_of
from tests.kit import JourneyKit, Simulation, at, save_history, sent_days
from tests.outbox import read_outbox, text_body

DAY = timedelta(days=1)


def consenting(contact_id: str) -> ContactProfile:
    """The lead as `journeys contact upsert` would keep it: email consent given."""
    return ContactProfile(
        id=contact_id,
        email=f"{contact_id}@example.com",
        first_name="Ada",
        company="Acme",
        email_consent=ConsentUpdate(granted=True, source="test"),
    )


async def contact_row(engine: AsyncEngine, contact_id: str) -> Contact:
    async with session_factory(engine)() as session:
        contact = await session.get(Contact, contact_id)
    assert contact is not None
    return contact


async def set_owner(engine: AsyncEngine, contact_id: str, owner_id: str | None) -> None:
    async with session_factory(engine)() as session:
        contact = await session.get(Contact, contact_id)
        assert contact is not None
        contact.owner_id = owner_id
        session.add(contact)
        await session.commit()


async def hand_off(engine: AsyncEngine, contact_id: str, *tasks: tuple[str, str]) -> None:
    """The lead as the hand-off leaves it: stage MQL, and its tasks (kind, status)."""
    now = datetime.now().astimezone()
    async with session_factory(engine)() as session:
        contact = await session.get(Contact, contact_id)
        assert contact is not None
        await record_transition(
            session, contact, PipelineStage.MQL, cause="hand-off", at=now, key=f"{contact_id}/mql"
        )
        for number, (kind, status) in enumerate(tasks):
            session.add(
                CrmTask(
                    idempotency_key=f"lead-sla-{contact_id}/task-{number}",
                    contact_id=contact_id,
                    kind=kind,
                    assignee_role="sales_rep",
                    assignee_id=contact.owner_id,
                    title=f"{kind} task",
                    details="Call the lead.",
                    due_at=now + DAY,
                    status=status,
                )
            )
        await session.commit()


def recycling(client: Client, contact_id: str) -> Any:
    return client.get_workflow_handle(f"recycling-{contact_id}", result_type=JourneyState)


async def signals_received(client: Client, workflow_id: str) -> list[str]:
    """The names of the signals a workflow received, in order."""
    return [
        event.workflow_execution_signaled_event_attributes.signal_name
        async for event in client.get_workflow_handle(workflow_id).fetch_history_events()
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    ]


async def test_a_no_budget_disqualification_takes_the_lead_out_of_the_sales_queue(
    time_skipping_env: WorkflowEnvironment, contacts: Contacts, engine: AsyncEngine, worker: Worker
) -> None:
    await add_lead(engine, "rhea", first_name="Rhea", owner_id="sdr-mia")
    await hand_off(
        engine,
        "rhea",
        ("lead_follow_up", "open"),
        ("lead_call", "open"),
        ("lead_call", "done"),
        ("churn_risk", "open"),
    )

    await contacts.send("rhea", "lead_disqualified", reason="no-budget", note="next fiscal year")
    started = await journey_when(
        time_skipping_env.client, "recycling-rhea", lambda s: "recycle" in s.actions_done
    )

    assert started.status == JourneyStatus.RUNNING and started.next_step == "insight"
    rhea = await contact_row(engine, "rhea")
    assert rhea.pipeline_stage == "recycled"
    assert RECYCLED_TAG in rhea.tags
    assert rhea.owner_id == "sdr-mia"  # kept: the ownership rule decides at the next hand-off
    *_, moved = await rows_of(engine, PipelineTransition, "rhea")
    assert (moved.stage, moved.previous_stage, moved.cause) == ("recycled", "mql", "no-budget")
    tasks = await rows_of(engine, CrmTask, "rhea")
    assert [(task.kind, task.status) for task in tasks] == [
        ("lead_follow_up", "cancelled"),
        ("lead_call", "cancelled"),
        ("lead_call", "done"),
        ("churn_risk", "open"),
    ]
    assert tasks[0].details.startswith("Call the lead.\n\nCancelled: the lead was recycled")
    assert "(no-budget)" in tasks[0].details and "recycled" not in tasks[3].details
    # The contact workflow was told (scoring implements its `recycled` handler).
    async with asyncio.timeout(10):  # the recycle activity signals it; it may land later
        while "recycled" not in await signals_received(time_skipping_env.client, "contact-rhea"):
            await asyncio.sleep(0.05)
    await save_history(time_skipping_env.client, "contact-rhea", "contact-disqualified-recycled")


@pytest.mark.parametrize(
    ("properties", "recycles"),
    [
        ({"reason": "competitor"}, False),
        ({}, False),
        ({"reason": "No budget"}, True),
        ({"reason": "bad_timing"}, True),
    ],
    ids=["competitor", "no-reason", "no-budget-spelled-out", "bad-timing-snake-case"],
)
async def test_only_a_recyclable_reason_starts_recycling(
    time_skipping_env: WorkflowEnvironment,
    contacts: Contacts,
    engine: AsyncEngine,
    worker: Worker,
    properties: dict[str, Any],
    recycles: bool,
) -> None:
    lead = f"dara-{properties.get('reason', 'none').replace(' ', '-').lower()}"
    await add_lead(engine, lead)
    await contacts.send(lead, "lead_disqualified", **properties)
    await contacts.send(lead, "website_visited")  # processed after the disqualification
    await contacts.state_when(lead, lambda state: state.events_accepted == 2)

    if recycles:
        await journey_when(
            time_skipping_env.client, f"recycling-{lead}", lambda s: "recycle" in s.actions_done
        )
    else:
        with pytest.raises(RPCError, match="not found"):
            await recycling(time_skipping_env.client, lead).describe()
    assert ((await contact_row(engine, lead)).pipeline_stage == "recycled") == recycles


def test_the_disqualification_reason_is_optional_text() -> None:
    check_properties("lead_disqualified", {}, title="EventIn")
    check_properties("lead_disqualified", {"reason": "no-budget", "note": "Q3"}, title="EventIn")
    for bad in ({"reason": 7}, {"reason": " "}, {"reason": "x" * 201}):
        with pytest.raises(ValidationError) as refused:
            check_properties("lead_disqualified", bad, title="EventIn")
        assert refused.value.errors()[0]["loc"] == ("properties", "reason")
    assert [recyclable(r) for r in ("no-project", " Bad Timing ", "not-a-fit", None)] == [
        "no-project",
        "bad-timing",
        None,
        None,
    ]


async def test_touches_on_days_30_60_90_and_a_review_every_90_days_for_a_year(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
    worker: Worker,
) -> None:
    await add_lead(engine, "omar", first_name="Omar", company="Jacquard", owner_id="sdr-leo")
    await enroll(
        time_skipping_env.client,
        engine,
        "recycling",
        RecyclingInput(contact_id="omar", reason="bad-timing"),
        task_queue=settings.task_queue,
    )
    await time_skipping_env.sleep(100 * DAY)
    await set_owner(engine, "omar", None)  # the owner left: the sales queue reviews it
    await time_skipping_env.sleep(270 * DAY)
    result = await recycling(time_skipping_env.client, "omar").result()

    assert (result.status, result.messages_sent) == (JourneyStatus.COMPLETED, 3)
    started = result.enrolled_at
    sent = await rows_of(engine, MessageLog, "omar")
    assert [(row.step, round((row.created_at - started) / DAY)) for row in sent] == [
        ("insight", 30),
        ("case-study", 60),
        ("what-changed", 90),
    ]
    outbox = {
        key.rpartition("/")[2]: mail for key, mail in read_outbox(settings.outbox_dir).items()
    }
    assert outbox["what-changed"]["Subject"] == "Omar, a few things changed since we last spoke"
    assert "The timing wasn't right then." in text_body(outbox["what-changed"])
    assert "in case it's useful at Jacquard" in text_body(outbox["insight"])

    reviews = await rows_of(engine, CrmTask, "omar")
    assert [
        (task.kind, task.assignee_role, task.assignee_id, round((task.created_at - started) / DAY))
        for task in reviews
    ] == [
        ("recycled_review", "sales_rep", "sdr-leo", 90),
        ("recycled_review", "sales_rep", None, 180),
        ("recycled_review", "sales_rep", None, 270),
        ("recycled_review", "sales_rep", None, 360),
    ]
    first, *_, last = reviews
    assert first.title == "Review recycled lead omar: re-qualify or keep recycled"
    assert abs(first.due_at - first.created_at - 7 * DAY) < timedelta(minutes=1)
    assert "Review the score and behaviour: re-qualify the lead, or keep it recycled." in (
        first.details
    )
    assert "(bad-timing); review 1 of 4." in first.details
    assert "review 4 of 4 (the last one" in last.details
    # Still recycled: only a new key behaviour or a rep moves it on.
    assert (await contact_row(engine, "omar")).pipeline_stage == "recycled"

    [funnel] = (await funnel_report(engine, journey="recycling")).journeys
    assert (funnel.entered, funnel.completed) == (1, 1)
    assert [(step.step, step.sent) for step in funnel.steps][:4] == [
        ("recycle", 0),
        ("insight", 1),
        ("case-study", 1),
        ("what-changed", 1),
    ]


@pytest.mark.parametrize(
    ("event", "properties"),
    [
        ("lead_qualified", {}),
        ("purchased", {}),
        ("deal_won", {}),
        ("lead_disqualified", {"reason": "not-a-fit"}),
        ("unsubscribed", {}),
    ],
)
async def test_a_qualification_purchase_final_disqualification_or_unsubscribe_ends_it(
    journey_kit: JourneyKit, event: str, properties: dict[str, Any]
) -> None:
    timeline = await journey_kit.simulate(
        Simulation(
            "recycling",
            contact=consenting(f"exit-{event}"),
            options={"reason": "no-project"},
            events=[
                at("20d", "lead_disqualified", reason="no-project"),  # recycled again: goes on
                at("45d", event, **properties),
            ],
        )
    )

    assert (timeline.status, timeline.exit_reason) == ("exited", event)
    assert sent_days(timeline) == [("insight", 30)]


async def test_the_contact_workflow_ends_it_when_the_lead_is_requalified(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
    worker: Worker,
) -> None:
    await add_lead(engine, "ivy", owner_id="sdr-ines")
    await enroll(
        time_skipping_env.client,
        engine,
        "recycling",
        RecyclingInput(contact_id="ivy", reason="no-interaction"),
        task_queue=settings.task_queue,
    )
    handle = recycling(time_skipping_env.client, "ivy")
    await journey_when(
        time_skipping_env.client, "recycling-ivy", lambda s: "recycle" in s.actions_done
    )
    await time_skipping_env.sleep(31 * DAY)
    await handle.signal("exit", ExitRequest(reason="requalified"))
    result = await handle.result()

    assert (result.status, result.exit_reason) == (JourneyStatus.EXITED, "requalified")
    assert [row.step for row in await rows_of(engine, MessageLog, "ivy")] == ["insight"]
    assert await rows_of(engine, CrmTask, "ivy") == []
    [funnel] = (await funnel_report(engine, journey="recycling")).journeys
    assert funnel.exited == {"requalified": 1} and funnel.converted == 1
    await save_history(time_skipping_env.client, "recycling-ivy", "recycling-emailed-requalified")


async def test_moving_on_from_recycled_drops_the_tag(engine: AsyncEngine) -> None:
    await add_lead(engine, "noa", tags=["src_webinar"])
    now = datetime.now().astimezone()
    async with session_factory(engine)() as session:
        noa = await session.get(Contact, "noa")
        assert noa is not None
        await record_transition(
            session, noa, PipelineStage.RECYCLED, cause="no-budget", at=now, key="noa/recycled"
        )
        assert noa.tags == ["src_webinar", RECYCLED_TAG]
        await record_transition(
            session, noa, PipelineStage.MQL, cause="hand-off", at=now + DAY, key="noa/mql"
        )
        await session.commit()
    assert (await contact_row(engine, "noa")).tags == ["src_webinar"]
