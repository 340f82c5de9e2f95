"""Experiments inside journeys, on the time-skipping server with the real worker.

The welcome series' Day-0 subject test (`welcome-subject`: a/b 50/50, 10% held out of
the series at its trigger) end to end from a `subscribed` event; the test journey
`test-ab` (`tests/journeys.py`: a/b 1:1, a 20% step-level holdout, re-entry allowed)
for re-entry, changed weights, stopping, pausing and continue-as-new.

Which arm a contact id lands in is computed here with the split itself
(`rules.experiment_split.assign_arm`), so each test picks a contact of the arm it needs.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from models.db import session_factory
from models.experiments import HOLDOUT, Experiment
from models.journeys import JourneyInput, JourneyState
from models.settings import Settings
from models.tables import ExperimentDecision, ExperimentExposure, MessageLog
from rules.experiment_split import assign_arm
from starter.services.experiments import experiment_report
from tests.contact_kit import Contacts, journey_when
from tests.factories import add_contact
from tests.journeys import (
    OFFER_TEST,
    OfferTest,
    ReweightedOfferTest,
    SplitsAnUndeclaredExperiment,
)
from tests.kit import journey_run, save_history, sleep_until, workflow_exists
from tests.outbox import read_outbox
from worker import build_worker
from workflows import catalog
from workflows.journeys.welcome_series import WelcomeSeries

WELCOME_SUBJECT = catalog.experiment("welcome-subject")
SUBJECTS = {
    "a": "Your Email Marketing Playbook is ready! 📥",
    "b": "Ada, here's your 3-step plan for Email Marketing Playbook",
}
DAY = timedelta(days=1)


def contact_in(arm: str, experiment: Experiment, prefix: str, *, skip: int = 0) -> str:
    """The first contact id `{prefix}-{n}` (after `skip` of them) the split puts in `arm`."""
    candidates = (f"{prefix}-{n}" for n in itertools.count())
    found = (
        contact_id
        for contact_id in candidates
        if assign_arm(
            experiment.name,
            contact_id,
            experiment.arms,
            holdout_percent=experiment.holdout_percent,
        )
        == arm
    )
    return next(itertools.islice(found, skip, None))


async def exposures(engine: AsyncEngine, experiment: str) -> list[ExperimentExposure]:
    async with session_factory(engine)() as session:
        found = await session.exec(
            select(ExperimentExposure)
            .where(ExperimentExposure.experiment == experiment)
            .order_by(ExperimentExposure.id)  # type: ignore[arg-type]
        )
        return list(found.all())


async def templates_sent(engine: AsyncEngine, contact_id: str) -> list[tuple[str, str, str]]:
    """(step, template, status) of the contact's messages, in order."""
    async with session_factory(engine)() as session:
        found = await session.exec(
            select(MessageLog).where(MessageLog.contact_id == contact_id).order_by(MessageLog.id)  # type: ignore[arg-type]
        )
        return [(row.step, row.template, row.status) for row in found.all()]


async def experiment_templates(engine: AsyncEngine, contact_id: str) -> list[str]:
    """The templates of the contact's `test-ab` messages that belong to the experiment."""
    return [t for step, t, _ in await templates_sent(engine, contact_id) if step != "thanks"]


async def stop(engine: AsyncEngine, experiment: str, winner: str | None, at: datetime) -> None:
    """Stop the experiment as `journeys experiments stop` does: its decision row."""
    async with session_factory(engine)() as session:
        session.add(
            ExperimentDecision(
                experiment=experiment, winner=winner, decided_by="test", decided_at=at
            )
        )
        await session.commit()


@pytest.fixture
async def ab_worker(
    time_skipping_env: WorkflowEnvironment, settings: Settings, engine: AsyncEngine
) -> AsyncIterator[Worker]:
    """The real worker running the test A/B journeys."""
    journeys = [OfferTest, ReweightedOfferTest, SplitsAnUndeclaredExperiment]
    async with build_worker(time_skipping_env.client, settings, engine, journeys=journeys) as w:
        yield w


async def enrol(
    env: WorkflowEnvironment,
    settings: Settings,
    journey: type[OfferTest],
    contact_id: str,
    *,
    run: int = 1,
    history_limit: int = 10_000,
) -> JourneyState:
    """Run `journey` for the contact to its end (time skipped)."""
    handle = await env.client.start_workflow(
        journey.run,
        JourneyInput(contact_id=contact_id, history_limit=history_limit),
        id=f"{journey.name}-{contact_id}-{run}",
        task_queue=settings.task_queue,
    )
    return await handle.result()


async def offer_sent(
    env: WorkflowEnvironment, settings: Settings, contact_id: str, *, history_limit: int = 10_000
) -> WorkflowHandle[OfferTest, JourneyState]:
    """Start `test-ab` for the contact; returns once its Day-0 offer (the split) is done."""
    handle = await env.client.start_workflow(
        OfferTest.run,
        JourneyInput(contact_id=contact_id, history_limit=history_limit),
        id=f"test-ab-{contact_id}",
        task_queue=settings.task_queue,
    )
    await journey_when(env.client, handle.id, lambda s: "offer" in s.steps_done)
    return handle


# --- the welcome series: journey-level holdout at the trigger ----------------------------


async def test_a_contact_in_the_holdout_never_enters_the_welcome_series(
    time_skipping_env: WorkflowEnvironment,
    engine: AsyncEngine,
    contacts: Contacts,
    worker: Worker,
) -> None:
    contact_id = contact_in(HOLDOUT, WELCOME_SUBJECT, "ws-hold")
    await add_contact(engine, contact_id)
    subscribed_at = await time_skipping_env.get_current_time()

    await contacts.send(contact_id, "subscribed")
    await contacts.state_when(contact_id, lambda s: f"welcome-series-{contact_id}" in s.journeys)

    assert not await workflow_exists(time_skipping_env.client, f"welcome-series-{contact_id}")
    [held] = await exposures(engine, "welcome-subject")
    assert (held.contact_id, held.arm, held.journey) == (contact_id, HOLDOUT, "welcome-series")
    assert held.workflow_id == f"contact-{contact_id}"
    assert abs(held.exposed_at - subscribed_at) < timedelta(minutes=1)
    assert await templates_sent(engine, contact_id) == []


@pytest.mark.parametrize("arm", ["a", "b"])
async def test_a_contact_in_an_arm_gets_its_subject_line_once_and_the_history_replays(
    arm: str,
    time_skipping_env: WorkflowEnvironment,
    engine: AsyncEngine,
    settings: Settings,
    contacts: Contacts,
    worker: Worker,
) -> None:
    env = time_skipping_env
    contact_id = contact_in(arm, WELCOME_SUBJECT, f"ws-{arm}")
    await add_contact(engine, contact_id, first_name="Ada")

    await contacts.send(contact_id, "subscribed")
    welcome = f"welcome-series-{contact_id}"
    state = await journey_when(env.client, welcome, lambda s: "day0" in s.steps_done)
    metadata = await env.client.get_workflow_handle(welcome).query(
        "__temporal_workflow_metadata", result_type=WorkflowMetadata
    )
    await contacts.send(contact_id, "subscribed")  # again: no second draw, no second run
    await contacts.state_when(contact_id, lambda s: s.events_accepted == 2)
    await sleep_until(env, state.enrolled_at + 8 * DAY)
    ended = await (await journey_run(env.client, welcome)).result()

    assert state.arms == {"welcome-subject": arm}
    assert ended.arms == {"welcome-subject": arm}
    assert f"A/B `welcome-subject`: arm **{arm}**" in metadata.current_details
    day0 = read_outbox(settings.outbox_dir)[f"{welcome}/day0"]
    assert day0["Subject"] == SUBJECTS[arm]
    template = "welcome-series/day0" if arm == "a" else "welcome-series/day0@b"
    assert (await templates_sent(engine, contact_id))[0] == ("day0", template, "sent")
    [exposed] = await exposures(engine, "welcome-subject")
    assert (exposed.contact_id, exposed.arm, exposed.workflow_id) == (
        contact_id,
        arm,
        f"contact-{contact_id}",
    )
    history = await env.client.get_workflow_handle(welcome).fetch_history()
    await Replayer(
        workflows=[WelcomeSeries], data_converter=env.client.data_converter
    ).replay_workflow(history)
    if arm == "b":
        await save_history(env.client, welcome, "welcome-series-subject-test-b")
        await save_history(env.client, f"contact-{contact_id}", "contact-subscribed-in-an-arm")


# --- the test journey: step-level holdout, re-entry, weights, stop, pause ---------------


async def test_a_step_level_holdout_gets_none_of_the_experiment_messages_but_the_rest(
    time_skipping_env: WorkflowEnvironment,
    engine: AsyncEngine,
    settings: Settings,
    ab_worker: Worker,
) -> None:
    contact_id = contact_in(HOLDOUT, OFFER_TEST, "ab-hold")
    await add_contact(engine, contact_id)

    ended = await enrol(time_skipping_env, settings, OfferTest, contact_id)

    assert ended.arms == {"test-offer": HOLDOUT}
    assert ended.steps_done == ["offer", "reminder", "thanks"]
    assert ended.messages_sent == 1
    assert await templates_sent(engine, contact_id) == [("thanks", "welcome-series/day2", "sent")]
    [held] = await exposures(engine, "test-offer")
    assert (held.contact_id, held.arm) == (contact_id, HOLDOUT)


async def test_the_arm_is_stable_across_reentry_and_changed_weights(
    time_skipping_env: WorkflowEnvironment,
    engine: AsyncEngine,
    settings: Settings,
    ab_worker: Worker,
) -> None:
    env = time_skipping_env
    reweighted = ReweightedOfferTest.experiments[0]
    contact_id = next(
        contact_id
        for n in itertools.count()
        if (contact_id := f"ab-stable-{n}")
        and assign_arm("test-offer", contact_id, OFFER_TEST.arms, holdout_percent=20) == "a"
        and assign_arm("test-offer", contact_id, reweighted.arms, holdout_percent=20) == "b"
    )
    await add_contact(engine, contact_id)

    first = await enrol(env, settings, OfferTest, contact_id, run=1)
    again = await enrol(env, settings, OfferTest, contact_id, run=2)
    after_reweighting = await enrol(env, settings, ReweightedOfferTest, contact_id)

    assert first.arms == again.arms == after_reweighting.arms == {"test-offer": "a"}
    [exposed] = await exposures(engine, "test-offer")
    assert (exposed.contact_id, exposed.arm, exposed.workflow_id) == (
        contact_id,
        "a",
        f"test-ab-{contact_id}-1",
    )
    assert {template for _, template, _ in await templates_sent(engine, contact_id)} == {
        "welcome-series/day0",
        "welcome-series/day2",
    }


async def test_a_winner_goes_to_new_entrants_while_a_journey_in_progress_keeps_its_arm(
    time_skipping_env: WorkflowEnvironment,
    engine: AsyncEngine,
    settings: Settings,
    ab_worker: Worker,
) -> None:
    env = time_skipping_env
    in_progress = contact_in("a", OFFER_TEST, "ab-win")
    newcomer = contact_in("a", OFFER_TEST, "ab-win", skip=1)
    held_out = contact_in(HOLDOUT, OFFER_TEST, "ab-win")
    for contact_id in (in_progress, newcomer, held_out):
        await add_contact(engine, contact_id)
    start = await env.get_current_time()
    running = await offer_sent(env, settings, in_progress, history_limit=20)  # continues as new

    await sleep_until(env, start + DAY / 2)
    await stop(engine, "test-offer", "b", await env.get_current_time())
    kept = await running.result()
    newcomer_run = await enrol(env, settings, OfferTest, newcomer)
    held_out_run = await enrol(env, settings, OfferTest, held_out)

    assert kept.arms == {"test-offer": "a"}
    described = await env.client.get_workflow_handle(running.id).describe()
    assert described.run_id != running.first_execution_run_id  # it continued as new
    assert await experiment_templates(engine, in_progress) == [
        "welcome-series/day0",
        "welcome-series/day0",
    ]
    # After the stop everyone new gets the winner, the holdout too, and nobody is counted.
    assert newcomer_run.arms == held_out_run.arms == {"test-offer": "b"}
    for contact_id in (newcomer, held_out):
        assert await experiment_templates(engine, contact_id) == [
            "welcome-series/day0@b",
            "welcome-series/day0@b",
        ]
    assert [e.contact_id for e in await exposures(engine, "test-offer")] == [in_progress]


async def test_stopping_without_a_winner_sends_new_entrants_to_control(
    time_skipping_env: WorkflowEnvironment,
    engine: AsyncEngine,
    settings: Settings,
    ab_worker: Worker,
) -> None:
    contact_id = contact_in("b", OFFER_TEST, "ab-ctl")
    await add_contact(engine, contact_id)
    await stop(engine, "test-offer", None, await time_skipping_env.get_current_time())

    ended = await enrol(time_skipping_env, settings, OfferTest, contact_id)

    assert ended.arms == {"test-offer": "a"}
    assert await exposures(engine, "test-offer") == []


async def test_pausing_a_journey_keeps_its_exposure_as_it_was(
    time_skipping_env: WorkflowEnvironment,
    engine: AsyncEngine,
    settings: Settings,
    ab_worker: Worker,
) -> None:
    env = time_skipping_env
    contact_id = contact_in("b", OFFER_TEST, "ab-pause")
    await add_contact(engine, contact_id)
    start = await env.get_current_time()
    handle = await offer_sent(env, settings, contact_id)
    [before] = await exposures(engine, "test-offer")

    await sleep_until(env, start + DAY / 2)
    await handle.signal("pause")
    await sleep_until(env, start + 5 * DAY)
    await handle.signal("resume")
    ended = await handle.result()

    [after] = await exposures(engine, "test-offer")
    assert (after.id, after.arm, after.exposed_at) == (before.id, "b", before.exposed_at)
    assert abs(after.exposed_at - start) < timedelta(minutes=1)
    assert ended.arms == {"test-offer": "b"}
    assert await experiment_templates(engine, contact_id) == [
        "welcome-series/day0@b",
        "welcome-series/day0@b",
    ]


async def test_a_goal_event_counts_for_the_arm_inside_its_window_and_not_after_it(
    time_skipping_env: WorkflowEnvironment,
    engine: AsyncEngine,
    settings: Settings,
    contacts: Contacts,
    ab_worker: Worker,
) -> None:
    """`test-offer`'s goal, `offer_redeemed`, counts within 7 days of the exposure; the
    holdout's goal events count too (its incremental-effect baseline)."""
    env = time_skipping_env
    in_time, too_late = (
        contact_in("a", OFFER_TEST, "ab-goal"),
        contact_in("b", OFFER_TEST, "ab-goal"),
    )
    held_out = contact_in(HOLDOUT, OFFER_TEST, "ab-goal")
    start = await env.get_current_time()
    for contact_id in (in_time, too_late, held_out):
        await add_contact(engine, contact_id)
        await offer_sent(env, settings, contact_id)

    await sleep_until(env, start + 3 * DAY)
    await contacts.send(held_out, "offer_redeemed")
    await sleep_until(env, start + 6 * DAY + DAY / 2)
    await contacts.send(in_time, "offer_redeemed")
    await sleep_until(env, start + 7 * DAY + DAY / 2)
    await contacts.send(too_late, "offer_redeemed")
    await contacts.send(too_late, "offer_redeemed")  # a second one, later still
    for contact_id in (in_time, too_late, held_out):
        await contacts.state_when(contact_id, lambda s: s.events_accepted >= 1)
    await contacts.state_when(too_late, lambda s: s.events_accepted == 2)
    declared = OfferTest.declared_experiment("test-offer")
    assert declared is not None
    report = await experiment_report(engine, declared, now=start + 10 * DAY)

    counted = {arm.arm: (arm.exposed, arm.closed, arm.converted) for arm in report.arms}
    assert counted == {"a": (1, 1, 1), "b": (1, 1, 0), HOLDOUT: (1, 1, 1)}


async def test_a_split_on_an_undeclared_experiment_fails_the_run_naming_it(
    time_skipping_env: WorkflowEnvironment,
    engine: AsyncEngine,
    settings: Settings,
    ab_worker: Worker,
) -> None:
    await add_contact(engine, "ab-nope")
    handle = await time_skipping_env.client.start_workflow(
        SplitsAnUndeclaredExperiment.run,
        JourneyInput(contact_id="ab-nope"),
        id="test-ab-undeclared-ab-nope",
        task_queue=settings.task_queue,
    )
    with pytest.raises(WorkflowFailureError) as failed:
        await handle.result()

    cause = failed.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "PlanError"
    assert "splits on experiment 'test-nope', which it does not declare" in str(cause)
    assert await exposures(engine, "test-nope") == []
