"""Lead scoring: points per action, decay over time, bands and fit points.

The model is read from a TOML file operators can edit (`scoring.toml` at the
repository root is the default and reproduces the seed's table). Everything
here is pure and deterministic so that it can run inside a workflow: no I/O at
scoring time, no clock, no randomness — the current time is always passed in
(use `workflow.now()` in a workflow). Only `ScoringModel.load` reads a file;
call it outside workflow code (in the worker or an activity) and pass the
model in.

An action's contribution is its points minus its decay step once per *full*
decay period elapsed since it happened, never below 0. `next_change` gives
the next instant a contribution drops, so a workflow can sleep on a durable
timer until then instead of polling.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from models.lead_score import ScoreBreakdown, ScoredAction
from models.toml_files import load_toml

EventType = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
"""A snake_case event type, as in `models.events.BehaviorEvent.type`."""

_NO_FIELDS: Mapping[str, str] = MappingProxyType({})


class ActionRule(BaseModel):
    """Points for one action and how they decay.

    Attributes:
        points: Points the action is worth when it happens (> 0).
        decay_points: Points lost once per full `decay_days` elapsed
            (0: no decay).
        decay_days: Length of a decay period in days (None: no decay). Set
            both `decay_points` and `decay_days`, or neither.
        tag: CRM tag the contact gets when it takes the action, per the
            seed's `act_…` convention (e.g. `act_clicked-pricing`); none when
            absent.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    points: int = Field(gt=0)
    decay_points: int = Field(default=0, ge=0)
    decay_days: int | None = Field(default=None, gt=0)
    tag: Annotated[str, StringConstraints(pattern=r"^act_[a-z0-9][a-z0-9_-]{0,60}$")] | None = None

    @model_validator(mode="after")
    def _decay_is_consistent(self) -> Self:
        if self.decay_points > 0 and self.decay_days is None:
            raise ValueError("decay_points is set but decay_days is missing")
        if self.decay_points == 0 and self.decay_days is not None:
            raise ValueError("decay_days is set but decay_points is 0 (missing)")
        return self

    @property
    def decays(self) -> bool:
        """Whether the action's points fall over time."""
        return self.decay_days is not None and self.decay_points > 0


class Band(BaseModel):
    """A named score range starting at `min_score` (up to the next band's start).

    Attributes:
        name: Display name, e.g. `MQL`.
        min_score: Lowest total in this band.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
    min_score: int = Field(ge=0)


class FitRule(BaseModel):
    """Points for a contact attribute, e.g. `job_title == "VP"` → +30.

    Matching is an exact string comparison on the contact field's value.

    Attributes:
        field: Contact field name, e.g. `job_title`.
        equals: Value the field must equal.
        points: Points added when it does (may be negative).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    field: Annotated[str, StringConstraints(min_length=1)]
    equals: str
    points: int


class ScoringModel(BaseModel):
    """The whole lead-scoring model.

    Attributes:
        actions: Rule per event type; event types not listed score nothing.
        bands: Bands in ascending `min_score` order, the first at 0.
        fit: Optional fit rules on contact attributes.
        handoff_band: The band from which a lead is handed to sales (seed:
            MQL → sales notification); higher bands raise the priority.
            None: leads are never handed off.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    actions: dict[EventType, ActionRule]
    bands: list[Band] = Field(min_length=1)
    fit: list[FitRule] = Field(default_factory=list)
    handoff_band: str | None = None

    @model_validator(mode="after")
    def _bands_are_ordered(self) -> Self:
        if self.bands[0].min_score != 0:
            raise ValueError(
                f"bands: the first band ({self.bands[0].name!r}) must start at 0, "
                f"not {self.bands[0].min_score}"
            )
        for lower, upper in zip(self.bands, self.bands[1:], strict=False):
            if upper.min_score <= lower.min_score:
                raise ValueError(
                    f"bands: must be in strictly ascending min_score order, but "
                    f"{upper.name!r} ({upper.min_score}) follows "
                    f"{lower.name!r} ({lower.min_score})"
                )
        names = [band.name.casefold() for band in self.bands]
        if len(set(names)) != len(names):
            raise ValueError("bands: band names must be unique")
        if self.handoff_band is not None and self.handoff_band.casefold() not in names:
            raise ValueError(f"handoff_band: {self.handoff_band!r} is not one of the bands")
        return self

    def rank(self, band: str) -> int:
        """Position of a band from the bottom (0 = first band); -1 for an unknown name."""
        names = [b.name.casefold() for b in self.bands]
        return names.index(band.casefold()) if band.casefold() in names else -1

    def sales_ready(self, band: str) -> bool:
        """Whether a lead in `band` belongs with sales (at or above `handoff_band`)."""
        if self.handoff_band is None:
            return False
        return self.rank(band) >= self.rank(self.handoff_band)

    def digest(self) -> str:
        """A short fingerprint of the model, to notice that it changed."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]

    @classmethod
    def load(cls, path: str | Path) -> ScoringModel:
        """Read a model from a TOML file.

        Args:
            path: The TOML file (e.g. `scoring.toml`).

        Returns:
            The validated model.

        Raises:
            OSError: The file cannot be read.
            ValueError: The file is not valid TOML or not a valid model; the
                message names the file and each problem.
        """
        return load_toml(cls, path, "scoring model")


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")


def _periods_elapsed(rule: ActionRule, occurred_at: datetime, now: datetime) -> int:
    """Full decay periods between `occurred_at` and `now` (0 before it happened)."""
    assert rule.decay_days is not None
    return max(0, (now - occurred_at) // timedelta(days=rule.decay_days))


def contribution(rule: ActionRule, occurred_at: datetime, now: datetime) -> int:
    """Points one action is worth at `now`.

    Args:
        rule: The action's rule.
        occurred_at: When the action happened (timezone-aware).
        now: The time to score at (timezone-aware).

    Returns:
        `rule.points` minus `rule.decay_points` per full decay period elapsed,
        never below 0.
    """
    _require_aware(now)
    if not rule.decays:
        return rule.points
    periods = _periods_elapsed(rule, occurred_at, now)
    return max(0, rule.points - rule.decay_points * periods)


def band_for(model: ScoringModel, total: int) -> str:
    """Name of the band a total falls in.

    Args:
        model: The scoring model.
        total: A score (totals below 0, possible with negative fit points,
            fall in the first band).

    Returns:
        The name of the last band whose `min_score` is at most `total`.
    """
    name = model.bands[0].name
    for band in model.bands:
        if band.min_score <= total:
            name = band.name
    return name


def stage_tag(band: str) -> str:
    """CRM tag for a band, per the seed's `stage_…` convention.

    Args:
        band: A band name, e.g. `MQL` or `Warming`.

    Returns:
        e.g. `stage_mql`, `stage_warming` (lower case; spaces become `-`).
    """
    return "stage_" + "-".join(band.strip().lower().split())


def score(
    model: ScoringModel,
    actions: Iterable[ScoredAction],
    now: datetime,
    *,
    contact_fields: Mapping[str, str] = _NO_FIELDS,
) -> ScoreBreakdown:
    """Score a contact at `now`.

    Args:
        model: The scoring model.
        actions: The contact's actions (unknown event types score nothing).
        now: The time to score at (timezone-aware; `workflow.now()` in a
            workflow).
        contact_fields: Contact attributes the fit rules look at.

    Returns:
        The total, its band and the breakdown per event type and fit.
    """
    _require_aware(now)
    by_event_type: dict[str, int] = {}
    for action in actions:
        rule = model.actions.get(action.event_type)
        if rule is None:
            continue
        points = contribution(rule, action.occurred_at, now) * action.count
        if points:
            by_event_type[action.event_type] = by_event_type.get(action.event_type, 0) + points
    fit_points = sum(
        rule.points for rule in model.fit if contact_fields.get(rule.field) == rule.equals
    )
    total = sum(by_event_type.values()) + fit_points
    return ScoreBreakdown(
        total=total,
        band=band_for(model, total),
        by_event_type=dict(sorted(by_event_type.items())),
        fit_points=fit_points,
    )


def next_change(
    model: ScoringModel, actions: Iterable[ScoredAction], now: datetime
) -> datetime | None:
    """The earliest instant after `now` at which any action's points drop.

    A workflow can sleep on a durable timer until then rather than polling.

    Args:
        model: The scoring model.
        actions: The contact's actions.
        now: The current time (timezone-aware).

    Returns:
        The next decay boundary of an action still worth points at `now`, or
        None when nothing will decay any more (only non-decaying, unknown or
        fully decayed actions).
    """
    _require_aware(now)
    earliest: datetime | None = None
    for action in actions:
        rule = model.actions.get(action.event_type)
        if rule is None or not rule.decays or contribution(rule, action.occurred_at, now) == 0:
            continue
        assert rule.decay_days is not None
        periods = _periods_elapsed(rule, action.occurred_at, now)
        boundary = action.occurred_at + (periods + 1) * timedelta(days=rule.decay_days)
        if earliest is None or boundary < earliest:
            earliest = boundary
    return earliest


def worth_points(model: ScoringModel, action: ScoredAction, now: datetime) -> bool:
    """Whether an action still counts: a scored type, not fully decayed at `now`."""
    rule = model.actions.get(action.event_type)
    return rule is not None and contribution(rule, action.occurred_at, now) > 0


def prune(
    model: ScoringModel, actions: Iterable[ScoredAction], now: datetime
) -> list[ScoredAction]:
    """Drop actions that are worth nothing now and forever, to bound memory.

    Dropped: actions of event types the model does not score, and decaying
    actions already at 0. Non-decaying actions are always kept.

    Args:
        model: The scoring model.
        actions: The contact's actions.
        now: The current time (timezone-aware).

    Returns:
        The remaining actions, in their original order.
    """
    _require_aware(now)
    return [action for action in actions if worth_points(model, action, now)]


ActionKey = tuple[str, datetime | None]
"""Where an action is folded: its type, and its instant unless its points never change."""


def add_action(
    model: ScoringModel, actions: dict[ActionKey, ScoredAction], action: ScoredAction
) -> None:
    """Fold `action` into `actions` (what a workflow keeps), exactly and compactly.

    Unscored event types are left out. Actions whose points never change are
    folded into one entry per event type, and actions of the same type at the
    same instant into one entry with a count, so a contact's thousands of
    events take little memory while the score stays exact. Drop what is worth
    nothing any more with `prune`.

    Args:
        model: The scoring model.
        actions: The contact's actions so far, by `ActionKey`; updated.
        action: The new action.
    """
    rule = model.actions.get(action.event_type)
    if rule is None:
        return
    key = (action.event_type, action.occurred_at if rule.decays else None)
    existing = actions.get(key)
    actions[key] = (
        action
        if existing is None
        else existing.model_copy(update={"count": existing.count + action.count})
    )
