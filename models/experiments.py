"""Experiments (issue 18): A/B splits and holdouts declared on a journey, and what crosses
the workflow boundary about them.

A journey declares its experiments next to its plan::

    experiments = (
        Experiment(
            "welcome-subject",
            arms={"a": 50, "b": 50},
            goal=Goal("email_clicked", window=timedelta(days=7), on_message=True),
            holdout_percent=10,
            holdout_level=HoldoutLevel.JOURNEY,
        ),
    )

The first arm is control. A plan step that names the experiment
(`PlanStep(..., experiment="welcome-subject")`) is its message: each other arm
sends the step's template with `@{arm}` appended (`welcome-series/day0@b`).
A contact's arm comes from `rules/experiment_split.py` and is recorded once, as an
exposure (`experiment_exposures`); stopping an experiment (`experiment_decisions`)
sends every new entrant to the winner, or to control.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from pydantic import BaseModel, ConfigDict, Field

HOLDOUT: Final = "holdout"
"""The arm of the contacts held out (they get nothing, or never enter)."""

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_ARM = re.compile(r"^[a-z0-9][a-z0-9_-]{0,30}$")


class ExperimentError(ValueError):
    """An experiment declared or asked for wrongly; the message says what is wrong."""


class HoldoutLevel(StrEnum):
    """Where the holdout share is held out.

    `step`: the contact enters the journey, and the experiment's message is not sent
    to it. `journey`: the contact never enters; it is decided when the journey is
    about to start (its trigger arrived, or another journey starts it).
    """

    STEP = "step"
    JOURNEY = "journey"


@dataclass(frozen=True)
class Goal:
    """What an experiment is judged on: a goal event within a window from the exposure.

    Attributes:
        event: The goal event type, e.g. `purchased` or `email_clicked`.
        window: How long after the exposure a goal event counts (required).
        on_message: Count only goal events about the experiment's message (an
            `email_clicked` whose `journey` and `step` are the message's).
    """

    event: str
    window: timedelta | None
    on_message: bool = False

    def __post_init__(self) -> None:
        """Refuse a goal without an event type or without a positive window."""
        if not self.event:
            raise ExperimentError("a goal names its event type, e.g. Goal('purchased', ...)")
        if self.window is None:
            raise ExperimentError(
                f"goal {self.event!r} has no conversion window: give window=timedelta(days=7)"
            )
        if self.window <= timedelta(0):
            raise ExperimentError(f"goal {self.event!r}: the window {self.window} is not positive")


@dataclass(frozen=True)
class Experiment:
    """An A/B (or A/B/n) test inside a journey, declared on the journey.

    Attributes:
        name: The experiment's name, unique across journeys, e.g. `welcome-subject`.
        arms: Arm name → weight (positive integers, in order; the first is control).
        goal: What conversion means (event and window).
        holdout_percent: The share of contacts held out, in percent (0 to < 100).
        holdout_level: Held out from the message (`step`) or from the journey (`journey`).
        baseline_rate: The control's expected goal rate, for the minimum sample size.
        minimum_detectable_effect: The smallest absolute difference in rate worth
            detecting (0.05: five percentage points), for the minimum sample size.
        title: What is being tested, for people.
        journey: The journey that declares it (filled in by the catalog).
    """

    name: str
    arms: dict[str, int]
    goal: Goal
    holdout_percent: float = 0
    holdout_level: HoldoutLevel = HoldoutLevel.STEP
    baseline_rate: float = 0.1
    minimum_detectable_effect: float = 0.05
    title: str = ""
    journey: str = field(default="", kw_only=True)

    def __post_init__(self) -> None:
        """Refuse a malformed declaration, saying what is wrong."""
        if not _NAME.match(self.name):
            raise ExperimentError(
                f"experiment name {self.name!r}: lowercase letters, digits and '-', e.g. "
                "'welcome-subject'"
            )
        check_weights(self.name, self.arms)
        if not 0 <= self.holdout_percent < 100:
            raise ExperimentError(
                f"experiment {self.name!r}: holdout {self.holdout_percent}% is not in [0, 100)"
            )
        if not 0 < self.baseline_rate < 1:
            raise ExperimentError(
                f"experiment {self.name!r}: baseline rate {self.baseline_rate} is not in (0, 1)"
            )
        if not 0 < self.minimum_detectable_effect < 1:
            raise ExperimentError(
                f"experiment {self.name!r}: minimum detectable effect "
                f"{self.minimum_detectable_effect} is not in (0, 1)"
            )

    @property
    def control(self) -> str:
        """The control arm: the first declared."""
        return next(iter(self.arms))

    def variant_template(self, template: str, arm: str) -> str:
        """The template an arm sends for the message step whose template is `template`:
        control (and the holdout) the template itself, another arm `{template}@{arm}`."""
        return template if arm in (self.control, HOLDOUT) else f"{template}@{arm}"


def check_weights(experiment: str, arms: Mapping[str, int]) -> None:
    """Refuse arms without names, arms named `holdout`, weights that are not positive
    integers, and weights that sum to zero (with the reason).

    Raises:
        ExperimentError: what is wrong.
    """
    if len(arms) < 2:
        raise ExperimentError(f"experiment {experiment!r} needs at least two arms, got {arms}")
    for arm, weight in arms.items():
        if arm == HOLDOUT or not _ARM.match(arm):
            raise ExperimentError(
                f"experiment {experiment!r}: {arm!r} is not a name for an arm "
                f"(lowercase letters, digits, '-' or '_', and not {HOLDOUT!r})"
            )
        if isinstance(weight, bool) or not isinstance(weight, int):
            raise ExperimentError(
                f"experiment {experiment!r}: arm {arm!r} has weight {weight!r}; "
                "weights are positive integers"
            )
    if sum(arms.values()) <= 0:
        raise ExperimentError(
            f"experiment {experiment!r}: the weights {arms} sum to zero; "
            "give each arm a positive integer weight"
        )
    negative = {arm: weight for arm, weight in arms.items() if weight <= 0}
    if negative:
        raise ExperimentError(
            f"experiment {experiment!r}: arm(s) {negative} have no positive weight; "
            "weights are positive integers (remove an arm instead of weighting it 0)"
        )


class ArmRequest(BaseModel):
    """A contact's arm asked for (the `assign_arm` activity).

    Attributes:
        experiment: The experiment's name.
        contact_id: The contact.
        journey: The journey that declares it.
        workflow_id: The run that asks (the journey, or the workflow about to start it).
        arms: The declared arms and weights (the first is control).
        holdout_percent: The holdout share, in percent.
        holdout_at_entry: The holdout is journey-level: decided when the journey is about
            to start.
        at_entry: Asked by the workflow about to start the journey (the contact workflow,
            at the trigger); False: asked inside the journey.
        at: When (workflow time): the exposure's time if this records it.
    """

    model_config = ConfigDict(frozen=True)

    experiment: str
    contact_id: str
    journey: str
    workflow_id: str
    arms: dict[str, int]
    holdout_percent: float = 0
    holdout_at_entry: bool = False
    at_entry: bool = False
    at: datetime

    @property
    def control(self) -> str:
        """The control arm: the first."""
        return next(iter(self.arms))

    @classmethod
    def of(
        cls,
        experiment: Experiment,
        *,
        contact_id: str,
        workflow_id: str,
        at: datetime,
        at_entry: bool = False,
    ) -> ArmRequest:
        """The request for a contact's arm in a declared experiment."""
        return cls(
            experiment=experiment.name,
            contact_id=contact_id,
            journey=experiment.journey,
            workflow_id=workflow_id,
            arms=experiment.arms,
            holdout_percent=experiment.holdout_percent,
            holdout_at_entry=experiment.holdout_level == HoldoutLevel.JOURNEY,
            at_entry=at_entry,
            at=at,
        )


class ArmAssignment(BaseModel):
    """The contact's arm, and why.

    Attributes:
        experiment: The experiment's name.
        arm: The arm: one of the declared arms, or `holdout`.
        exposed: The contact counts in the experiment (its exposure is recorded);
            False after the experiment stopped (the winner, or control, for everyone)
            or for a contact that entered the journey around a journey-level holdout.
        exposed_at: When the exposure was recorded (the first assignment).
        reason: How the arm was chosen, e.g. `assigned`, `assigned before`,
            `stopped: winner b`.
    """

    model_config = ConfigDict(frozen=True)

    experiment: str
    arm: str
    exposed: bool
    exposed_at: datetime | None = None
    reason: str = Field(default="assigned", max_length=200)


class ExperimentStatus(StrEnum):
    """Whether an experiment still splits its entrants."""

    RUNNING = "running"
    STOPPED = "stopped"
