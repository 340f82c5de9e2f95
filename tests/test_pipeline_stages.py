"""The stage history: `record_transition`, the `lead` stage of a new contact, `churn_risk`."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from temporalio.testing import ActivityEnvironment

from activities.contacts import ContactActivities
from activities.crm import CrmActivities
from models.contacts import ContactProfile
from models.crm import ChurnRiskRequest
from models.db import session_factory
from models.pipeline import PipelineStage
from models.settings import Settings
from models.tables import Contact, PipelineTransition
from rules.pipeline import record_transition, source_tags
from rules.scoring import ScoringModel
from rules.usage import clear_churn_risk
from runtime.keys import key_store
from starter.services.operations import upsert_contact
from tests.factories import add_contact

KEY = b"test-suppression-key"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


async def history(engine: AsyncEngine, contact_id: str) -> list[tuple[str | None, str, str]]:
    """(previous stage, stage, cause) of the contact's transitions, oldest first."""
    async with session_factory(engine)() as session:
        rows = await session.exec(
            select(PipelineTransition)
            .where(PipelineTransition.contact_id == contact_id)
            .order_by(col(PipelineTransition.occurred_at), col(PipelineTransition.id))
        )
        return [(row.previous_stage, row.stage, row.cause) for row in rows.all()]


async def stage_of(engine: AsyncEngine, contact_id: str) -> str | None:
    async with session_factory(engine)() as session:
        contact = await session.get(Contact, contact_id)
    assert contact is not None
    return contact.pipeline_stage


async def move(
    engine: AsyncEngine, contact_id: str, stage: PipelineStage, *, key: str, at: datetime = T0
) -> bool:
    async with session_factory(engine)() as session:
        contact = await session.get(Contact, contact_id)
        assert contact is not None
        recorded = await record_transition(
            session, contact, stage, cause=f"test {stage}", at=at, key=key
        )
        await session.commit()
    return recorded


# --- record_transition ----------------------------------------------------------------------


async def test_a_transition_moves_the_contact_and_remembers_where_it_was(
    engine: AsyncEngine,
) -> None:
    await add_contact(engine, "ada")

    assert await move(engine, "ada", PipelineStage.MQL, key="h1/mql")
    assert await stage_of(engine, "ada") == "mql"
    assert await move(engine, "ada", PipelineStage.SQL, key="h1/sql", at=T0 + timedelta(hours=3))

    assert await stage_of(engine, "ada") == "sql"
    assert await history(engine, "ada") == [(None, "mql", "test mql"), ("mql", "sql", "test sql")]
    async with session_factory(engine)() as session:
        times = (await session.exec(select(PipelineTransition.occurred_at))).all()
    assert sorted(times) == [T0, T0 + timedelta(hours=3)]


async def test_a_transition_is_recorded_once_per_key(engine: AsyncEngine) -> None:
    await add_contact(engine, "ada")
    assert await move(engine, "ada", PipelineStage.MQL, key="h1/mql")
    assert await move(engine, "ada", PipelineStage.RECYCLED, key="r1/recycled")

    # A retry of the hand-off (same key) records nothing and leaves the stage alone.
    assert not await move(engine, "ada", PipelineStage.MQL, key="h1/mql")

    assert await stage_of(engine, "ada") == "recycled"
    assert await history(engine, "ada") == [
        (None, "mql", "test mql"),
        ("mql", "recycled", "test recycled"),
    ]


def test_source_tags_are_the_src_tags() -> None:
    assert source_tags(["int_email", "src_webinar", "stage_mql", "src_ads"]) == [
        "src_webinar",
        "src_ads",
    ]


# --- lead: a new contact --------------------------------------------------------------------


async def test_a_new_contact_becomes_a_lead_once_with_its_sources(engine: AsyncEngine) -> None:
    before = datetime.now(UTC)
    await upsert_contact(
        engine, ContactProfile(id="ada", tags=["src_webinar_q4", "int_email"]), key=KEY
    )
    await upsert_contact(engine, ContactProfile(id="ada", tags=["src_ads"]), key=KEY)
    await upsert_contact(engine, ContactProfile(id="bare"), key=KEY)

    assert await history(engine, "ada") == [(None, "lead", "created (src_webinar_q4)")]
    assert await history(engine, "bare") == [(None, "lead", "created")]
    assert await stage_of(engine, "ada") == "lead"
    async with session_factory(engine)() as session:
        [row] = (
            await session.exec(
                select(PipelineTransition).where(PipelineTransition.contact_id == "ada")
            )
        ).all()
        contact = await session.get(Contact, "ada")
    assert contact is not None
    assert row.idempotency_key == "ada/lead"
    assert before <= row.occurred_at == contact.created_at <= datetime.now(UTC)


async def test_an_update_keeps_the_stage_the_contact_reached(engine: AsyncEngine) -> None:
    await upsert_contact(engine, ContactProfile(id="ada"), key=KEY)
    await move(engine, "ada", PipelineStage.MQL, key="h1/mql", at=datetime.now(UTC))

    await upsert_contact(engine, ContactProfile(id="ada", first_name="Ada"), key=KEY)

    assert await stage_of(engine, "ada") == "mql"
    assert [stage for _, stage, _ in await history(engine, "ada")] == ["lead", "mql"]


# --- churn_risk ----------------------------------------------------------------------------


def activity_env(workflow_type: str, *, run_id: str, activity_id: str) -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(
        env.info,
        workflow_id=f"{workflow_type}-crm",
        workflow_run_id=run_id,
        workflow_type=workflow_type,
        activity_id=activity_id,
        scheduled_time=T0,
        current_attempt_scheduled_time=T0,
    )
    return env


async def test_a_churn_risk_is_recorded_once_while_the_contact_is_tagged(
    engine: AsyncEngine,
) -> None:
    await add_contact(engine, "crm")
    await move(engine, "crm", PipelineStage.CUSTOMER, key="deal-1/customer")
    crm = CrmActivities(engine=engine)
    lapse = ChurnRiskRequest(contact_id="crm", subscription_id="sub_1")
    renewal = activity_env("renewal-countdown", run_id="run-1", activity_id="7")

    assert (await renewal.run(crm.mark_churn_risk, lapse)).tagged
    assert not (await renewal.run(crm.mark_churn_risk, lapse)).tagged  # a retry
    assert not (
        await activity_env("churn-prevention", run_id="run-2", activity_id="1").run(
            crm.mark_churn_risk, ChurnRiskRequest(contact_id="crm")
        )
    ).tagged  # another journey while the risk lasts

    assert await stage_of(engine, "crm") == "churn_risk"
    assert await history(engine, "crm") == [
        (None, "customer", "test customer"),
        ("customer", "churn_risk", "renewal-countdown (sub_1)"),
    ]
    async with session_factory(engine)() as session:
        [row] = (
            await session.exec(
                select(PipelineTransition).where(PipelineTransition.stage == "churn_risk")
            )
        ).all()
    assert row.occurred_at == T0

    # The risk clears (usage recovered); a later drop is a new churn risk.
    async with session_factory(engine)() as session:
        contact = await session.get(Contact, "crm")
        assert contact is not None and clear_churn_risk(contact)
        session.add(contact)
        await session.commit()
    drop = activity_env("churn-prevention", run_id="run-3", activity_id="1")
    assert (await drop.run(crm.mark_churn_risk, ChurnRiskRequest(contact_id="crm"))).tagged

    assert [cause for _, stage, cause in await history(engine, "crm") if stage == "churn_risk"] == [
        "renewal-countdown (sub_1)",
        "churn-prevention",
    ]


# --- erasure --------------------------------------------------------------------------------


async def test_erasure_deletes_the_stage_history(settings: Settings, engine: AsyncEngine) -> None:
    await upsert_contact(engine, ContactProfile(id="ada", tags=["src_webinar"]), key=KEY)
    await upsert_contact(engine, ContactProfile(id="bob"), key=KEY)
    await move(engine, "ada", PipelineStage.MQL, key="h1/mql")
    contacts = ContactActivities(
        engine=engine,
        scoring=ScoringModel.load(settings.scoring_file),
        outbox_dir=settings.outbox_dir,
        keys=key_store(settings, engine=engine),
        suppression_key=settings.suppression_key(),
    )

    erased = await ActivityEnvironment().run(contacts.erase_contact, "ada")

    assert erased.rows_deleted["pipeline_transitions"] == 2
    assert await history(engine, "ada") == []
    assert [stage for _, stage, _ in await history(engine, "bob")] == ["lead"]
