"""Declaring an experiment: malformed declarations are refused with the reason, and the
worker refuses a journey whose plan or code names an experiment it does not declare, or
whose arm has no template."""

from __future__ import annotations

from datetime import timedelta

import pytest

from models.experiments import Experiment, ExperimentError, Goal, HoldoutLevel
from models.messages import Channel, MessageCategory
from models.settings import Settings
from rules.templates import TemplateError
from worker import load_templates
from workflows import catalog
from workflows.journeys.welcome_series import WelcomeSeries
from workflows.toolkit import Journey, PlanStep
from workflows.toolkit.plan_check import PlanError

WEEK = timedelta(days=7)


def experiment(**fields: object) -> Experiment:
    declared: dict[str, object] = {
        "name": "subject-test",
        "arms": {"a": 1, "b": 1},
        "goal": Goal("purchased", window=WEEK),
    }
    return Experiment(**{**declared, **fields})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"arms": {"a": 0, "b": 0}}, r"the weights \{'a': 0, 'b': 0\} sum to zero"),
        ({"arms": {"a": 5, "b": 0}}, r"arm\(s\) \{'b': 0\} have no positive weight"),
        ({"arms": {"a": 1, "b": 1.5}}, r"arm 'b' has weight 1.5; weights are positive integers"),
        ({"arms": {"a": 1}}, r"needs at least two arms"),
        ({"arms": {"a": 1, "holdout": 1}}, r"'holdout' is not a name for an arm"),
        ({"holdout_percent": 100}, r"holdout 100% is not in \[0, 100\)"),
        ({"name": "Subject Test"}, r"experiment name 'Subject Test'"),
        ({"minimum_detectable_effect": 0}, r"minimum detectable effect 0 is not in \(0, 1\)"),
    ],
)
def test_a_malformed_experiment_is_refused_with_the_reason(
    fields: dict[str, object], reason: str
) -> None:
    with pytest.raises(ExperimentError, match=reason):
        experiment(**fields)


def test_a_goal_event_with_no_window_is_refused() -> None:
    with pytest.raises(ExperimentError, match=r"goal 'purchased' has no conversion window"):
        Goal("purchased", window=None)
    with pytest.raises(ExperimentError, match=r"the window -1 day, 0:00:00 is not positive"):
        Goal("purchased", window=-timedelta(days=1))


def test_the_catalog_lists_the_declared_experiments_with_their_journey() -> None:
    declared = catalog.experiments()

    assert declared["welcome-subject"].journey == "welcome-series"
    assert declared["welcome-subject"].holdout_level == HoldoutLevel.JOURNEY
    assert catalog.experiment("welcome-subject") == declared["welcome-subject"]


def test_an_unknown_experiment_is_refused_naming_the_declared_ones() -> None:
    with pytest.raises(
        catalog.UnknownExperiment, match=r"unknown experiment 'nope'; declared: .*welcome-subject"
    ):
        catalog.experiment("nope")


def test_two_journeys_may_not_declare_one_experiment(monkeypatch: pytest.MonkeyPatch) -> None:
    class Twin(WelcomeSeries):
        name = "welcome-twin"

    monkeypatch.setattr(catalog, "all_journeys", lambda: [WelcomeSeries, Twin])
    with pytest.raises(catalog.ExperimentClash, match=r"welcome-series and welcome-twin both"):
        catalog.experiments()


class _Base(Journey):
    name = "test-plan"
    title = "Test plan"
    category = MessageCategory.MARKETING


class NamesAnUndeclaredExperimentOnAStep(_Base):
    plan = (
        PlanStep(
            "day0",
            day=0,
            title="Email",
            channel=Channel.EMAIL,
            template="welcome-series/day0",
            experiment="nope",
        ),
    )

    async def steps(self) -> None:
        await self.send("day0")


class SplitsOnAnUndeclaredExperiment(_Base):
    plan = ()

    async def steps(self) -> None:
        await self.split("nope")


class HasAnArmWithoutItsTemplate(_Base):
    experiments = (experiment(arms={"a": 1, "b": 1, "c": 1}),)
    plan = (
        PlanStep(
            "day0",
            day=0,
            title="Email",
            channel=Channel.EMAIL,
            template="welcome-series/day0",
            experiment="subject-test",
        ),
    )

    async def steps(self) -> None:
        await self.send("day0")


def test_the_worker_refuses_a_plan_step_naming_an_undeclared_experiment(
    settings: Settings,
) -> None:
    with pytest.raises(PlanError, match=r"plan step 'day0' is the message of experiment 'nope'"):
        load_templates(settings, [NamesAnUndeclaredExperimentOnAStep])


def test_the_worker_refuses_a_split_on_an_undeclared_experiment(settings: Settings) -> None:
    with pytest.raises(PlanError, match=r"split\('nope'\) .* does not declare"):
        load_templates(settings, [SplitsOnAnUndeclaredExperiment])


def test_each_arm_but_control_sends_its_own_template_and_the_worker_checks_it(
    settings: Settings,
) -> None:
    assert HasAnArmWithoutItsTemplate.templates == {
        ("welcome-series/day0", Channel.EMAIL),
        ("welcome-series/day0@b", Channel.EMAIL),
        ("welcome-series/day0@c", Channel.EMAIL),
    }
    with pytest.raises(TemplateError, match=r"welcome-series/day0@c"):
        load_templates(settings, [HasAnArmWithoutItsTemplate])
