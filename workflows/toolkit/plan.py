"""A journey's plan: its steps as operators read them, and durations as written."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.messages import Channel

ONE_DAY = timedelta(days=1)


def journey_time(
    day: timedelta, days: float = 0, hours: float = 0, minutes: float = 0
) -> timedelta:
    """A duration of journey time as written (`minutes=30`), with journey days of length `day`."""
    return day * (days + hours / 24 + minutes / 1440)


@dataclass(frozen=True)
class PlanStep:
    """One step of a journey's plan, as operators read it.

    Attributes:
        id: Stable step name, part of the idempotency key (`welcome-series-c1/day4`).
        day: Day of the journey it happens on (from enrolment).
        title: What happens, e.g. `Email 4: Common mistake to avoid`.
        when: How the label says when, if not `Day N` (e.g. `+10 min`).
        after: Journey time after the start of `day` it happens (Day 0 + 30 min:
            `day=0, after=timedelta(minutes=30)`; scaled like days).
        channel: The channel of the message the step sends; None: it sends none.
        template: The message's template; default `{journey}/{id}` (see `resolved`).
        experiment: The experiment this step is the message of (declared in the journey's
            `experiments`): each arm but control sends `{template}@{arm}`.
    """

    id: str
    day: float
    title: str
    when: str = ""
    after: timedelta = field(default=timedelta(0), kw_only=True)
    channel: Channel | None = field(default=None, kw_only=True)
    template: str | None = field(default=None, kw_only=True)
    experiment: str | None = field(default=None, kw_only=True)

    @property
    def label(self) -> str:
        """`Day 4 → Email 4: Common mistake to avoid` (or `+10 min → …` with `when`)."""
        return f"{self.when or f'Day {round(self.day, 2):g}'} → {self.title}"

    def offset(self, day: timedelta) -> timedelta:
        """When the step happens on the journey clock, with journey days of length `day`."""
        return day * (self.day + self.after / ONE_DAY)

    def resolved(self, journey: str) -> PlanStep:
        """This step with its template named: `template`, or `{journey}/{id}` by default."""
        return replace(self, template=self.template or f"{journey}/{self.id}")


def find_step(plan: tuple[PlanStep, ...], step: str | None) -> PlanStep | None:
    """The step of `plan` with id `step`, if any."""
    return next((planned for planned in plan if planned.id == step), None)
