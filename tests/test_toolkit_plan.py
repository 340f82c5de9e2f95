"""One declaration per step: the plan names what each step sends, and the worker refuses a
journey whose code and plan disagree, naming the step."""

from __future__ import annotations

import inspect
import re

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from models.journeys import JourneyInput
from models.messages import Channel, MessageCategory
from models.settings import Settings
from rules.templates import TemplateError
from tests.factories import add_contact
from tests.journeys import SendsAComputedStepNotInThePlan
from worker import build_worker, load_templates
from workflows import catalog
from workflows.toolkit import Journey, PlanStep
from workflows.toolkit.plan_check import PlanError, check_plan, step_calls


class _Base(Journey):
    name = "test-plan"
    title = "Test plan"
    category = MessageCategory.MARKETING


class SendsAStepNotInThePlan(_Base):
    plan = (PlanStep("day0", day=0, title="Email", channel=Channel.EMAIL),)

    async def steps(self) -> None:
        await self.send("day0")
        await self.send("day1")


class SendsAStepWithoutChannel(_Base):
    plan = (PlanStep("day0", day=0, title="Email"),)

    async def steps(self) -> None:
        await self.send("day0")


class RunsAStepNotInThePlan(_Base):
    plan = ()

    async def steps(self) -> None:
        await self.run_once("crm-task", self._task)

    async def _task(self) -> None:
        return None


class LeavesForAnUndeclaredReason(_Base):
    plan = ()
    exit_reasons = (("converted", "bought"),)

    async def steps(self) -> None:
        if self.day:
            self.leave("converted")
        self.leave("bored")


class SendsAStepWithoutTemplateFile(_Base):
    plan = (
        PlanStep(
            "welcome", day=0, title="Email", channel=Channel.EMAIL, template="welcome-series/day0"
        ),
        PlanStep("day3", day=3, title="Email: no copy yet", channel=Channel.EMAIL),
    )

    async def steps(self) -> None:
        await self.send("welcome")
        await self.send("day3")


def test_templates_are_derived_from_the_plan_steps_that_send() -> None:
    assert SendsAStepWithoutTemplateFile.templates == {
        ("welcome-series/day0", Channel.EMAIL),
        ("test-plan/day3", Channel.EMAIL),
    }
    assert [step.id for step in SendsAStepWithoutTemplateFile.message_steps()] == [
        "welcome",
        "day3",
    ]
    assert SendsAStepWithoutChannel.templates == frozenset()
    assert catalog.journey_class("pricing-abandon").templates == {
        ("pricing-abandon/email", Channel.EMAIL),
        ("pricing-abandon/day2", Channel.SMS),
    }


def test_a_journey_may_not_list_its_templates_apart_from_its_plan() -> None:
    with pytest.raises(TypeError, match="give the plan steps that send a channel"):

        class Listed(_Base):
            plan = ()
            templates = frozenset({("test-plan/day0", Channel.EMAIL)})


def test_the_literal_arguments_of_send_run_once_and_leave_are_read_from_the_source() -> None:
    source = """
class J:
    async def steps(self):
        await self.send("a", unless=X)
        await self.run_once("b", self.f)
        await self.send(f"c{n}")
        await other.send("d")
        self.leave("e")
"""
    assert sorted((call.line, call.method, call.step) for call in step_calls(source)) == [
        (4, "send", "a"),
        (5, "run_once", "b"),
        (8, "leave", "e"),
    ]


@pytest.mark.parametrize("journey", catalog.all_journeys(), ids=catalog.journey_names())
def test_every_shipped_journey_passes_the_plan_check(journey: type[Journey]) -> None:
    check_plan(journey)


def test_the_worker_refuses_a_journey_that_sends_a_step_not_in_its_plan(
    settings: Settings,
) -> None:
    with pytest.raises(PlanError, match=r"journey test-plan: send\('day1'\) .* not in its plan"):
        load_templates(settings, [SendsAStepNotInThePlan])


def test_the_worker_refuses_a_journey_that_sends_a_step_without_channel(
    settings: Settings,
) -> None:
    with pytest.raises(PlanError, match=r"send\('day0'\) .* plan step without a channel"):
        load_templates(settings, [SendsAStepWithoutChannel])


def test_the_worker_refuses_a_journey_that_runs_a_step_not_in_its_plan(
    settings: Settings,
) -> None:
    with pytest.raises(PlanError, match=r"run_once\('crm-task'\) .* not in its plan"):
        load_templates(settings, [RunsAStepNotInThePlan])


def test_the_worker_refuses_a_journey_that_leaves_for_a_reason_it_does_not_declare(
    settings: Settings,
) -> None:
    with pytest.raises(PlanError, match=r"leave\('bored'\) .* add \('bored', <when>\) to its exit"):
        load_templates(settings, [LeavesForAnUndeclaredReason])


def test_the_worker_refuses_a_plan_step_whose_template_file_is_missing(
    settings: Settings,
) -> None:
    with pytest.raises(TemplateError) as raised:
        load_templates(settings, [SendsAStepWithoutTemplateFile])

    message = str(raised.value)
    assert "journey test-plan sends email template 'test-plan/day3'" in message
    assert "test-plan/day3.toml does not exist (plan step 'day3')" in message


async def test_a_computed_step_id_not_in_the_plan_fails_the_run_naming_it(
    time_skipping_env: WorkflowEnvironment, settings: Settings, engine: AsyncEngine
) -> None:
    env = time_skipping_env
    await add_contact(engine, "plan-1")
    async with build_worker(
        env.client, settings, engine, journeys=[SendsAComputedStepNotInThePlan]
    ):
        handle = await env.client.start_workflow(
            SendsAComputedStepNotInThePlan.run,
            JourneyInput(contact_id="plan-1"),
            id="test-plan-runtime-plan-1",
            task_queue=settings.task_queue,
        )
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()

    cause = failed.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "PlanError"
    assert cause.non_retryable
    assert "journey test-plan-runtime sends step 'day1', which is not in its plan" in str(cause)


@pytest.mark.parametrize("journey", catalog.all_journeys(), ids=catalog.journey_names())
def test_no_journey_reads_the_private_attributes_of_the_toolkit(journey: type[Journey]) -> None:
    private = {name for name in [*vars(Journey), *vars(Journey())] if name.startswith("_")}
    source = inspect.getsource(inspect.getmodule(journey))  # type: ignore[arg-type]
    used = set(re.findall(r"self\.(_\w+)", source)) - {"__init__"}
    assert used & private == set()
