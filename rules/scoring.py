"""Lead scoring: fit points, behaviour points (with decay), bands and the MQL rule.

The model (a *scoring profile*) is read from a TOML file operators can edit.
`scoring.toml` at the repository root is the default and reproduces seed 000's
table; `scoring.seed-002.toml` is seed 002's B2B profile (`SCORING_FILE` picks
one). A score has two parts, shown apart everywhere:

- **fit**: points for who the contact is (`[[fit]]` rules on contact
  attributes: a value, a set of values, a numeric range; `email_type`, derived
  from the email domain, is `corporate` or `free`);
- **behaviour**: points for what the contact did (`[actions.<event type>]`,
  optionally only when event properties match, may be negative, may decay),
  plus an optional penalty while the contact has been inactive
  (`[inactivity]`).

The band follows the total, except that a lead is held in the band below the
hand-off band until it is *qualified*: under `mql_rule = "band"` (seed 000) at
once, under `"band-and-key-behavior"` (seed 002) once it showed a key
behaviour (`key_behaviors`). After the lead was recycled, under either rule,
only a key behaviour after the recycling qualifies it again. Everything
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
import json
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Self

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
        points: Points the action is worth when it happens: positive, or
            negative for a penalty (an unsubscribe); never 0.
        decay_points: Points the action's worth moves towards 0 once per full
            `decay_days` elapsed (0: no decay).
        decay_days: Length of a decay period in days (None: no decay). Set
            both `decay_points` and `decay_days`, or neither.
        tag: CRM tag the contact gets when it takes the action, per the
            seed's `act_…` convention (e.g. `act_clicked-pricing`); none when
            absent.
        when: Event properties the event must carry for the rule to apply
            (exact values, e.g. `{bounce_type = "soft"}`); an event of the type
            without them scores nothing. Empty: every event of the type.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    points: int
    decay_points: int = Field(default=0, ge=0)
    decay_days: int | None = Field(default=None, gt=0)
    tag: Annotated[str, StringConstraints(pattern=r"^act_[a-z0-9][a-z0-9_-]{0,60}$")] | None = None
    when: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _decay_is_consistent(self) -> Self:
        if self.points == 0:
            raise ValueError("points must not be 0 (leave the action out instead)")
        if self.decay_points > 0 and self.decay_days is None:
            raise ValueError("decay_points is set but decay_days is missing")
        if self.decay_points == 0 and self.decay_days is not None:
            raise ValueError("decay_days is set but decay_points is 0 (missing)")
        return self

    @property
    def decays(self) -> bool:
        """Whether the action's points fall over time."""
        return self.decay_days is not None and self.decay_points > 0

    def applies_to(self, properties: Mapping[str, Any]) -> bool:
        """Whether an event with these properties scores under the rule (see `when`)."""
        return all(properties.get(key) == value for key, value in self.when.items())


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
    """Points for a contact attribute, e.g. `job_title` a decision-maker's → +30.

    Give exactly one test: `equals` (an exact string comparison, as before
    profiles had sets and ranges), `one_of` (any of the values, ignoring case
    and surrounding spaces), or `min` / `max` (the value read as a number, both
    ends included; a value that is not a number does not match). Every rule
    that matches adds its points; a missing attribute matches nothing.

    Attributes:
        field: Contact attribute name, e.g. `job_title`; `email_type` is
            derived from the email address (`corporate` or `free`, see
            `rules/email_domains.py`).
        equals: Value the attribute must equal.
        one_of: Values the attribute may take, e.g. decision-maker titles.
        min: Lowest number the attribute may hold, e.g. a company size of 50.
        max: Highest number the attribute may hold.
        points: Points added when the rule matches (may be negative).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    field: Annotated[str, StringConstraints(min_length=1)]
    equals: str | None = None
    one_of: list[str] | None = Field(default=None, min_length=1)
    min: float | None = None
    max: float | None = None
    points: int

    @model_validator(mode="after")
    def _one_test(self) -> Self:
        ranged = self.min is not None or self.max is not None
        tests = [self.equals is not None, self.one_of is not None, ranged]
        if sum(tests) != 1:
            raise ValueError(
                f"fit rule on {self.field!r}: give exactly one of equals, one_of, or min/max"
            )
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"fit rule on {self.field!r}: min {self.min} is above max {self.max}")
        return self

    def matches(self, fields: Mapping[str, str]) -> bool:
        """Whether the contact's attributes satisfy the rule."""
        value = fields.get(self.field)
        if value is None:
            return False
        if self.equals is not None:
            return value == self.equals
        if self.one_of is not None:
            return _folded(value) in {_folded(choice) for choice in self.one_of}
        number = _number(value)
        return (
            number is not None
            and (self.min is None or number >= self.min)
            and (self.max is None or number <= self.max)
        )


def _folded(value: str) -> str:
    return " ".join(value.split()).casefold()


def _number(value: str) -> float | None:
    """`value` read as a number (`120`, `1,200`, `75.5`), or None."""
    try:
        return float(value.replace(",", "").strip())
    except ValueError:
        return None


class InactivityRule(BaseModel):
    """Points while the contact has done nothing for a while (seed 002: 90 days → −15).

    The time counts from the contact's last contact-initiated event
    (`models.events.is_contact_initiated`); any such event lifts the points.

    Attributes:
        days: Days without a contact-initiated event before the points apply.
        points: Points added meanwhile (a penalty: negative); never 0.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    days: int = Field(gt=0)
    points: int

    @model_validator(mode="after")
    def _not_zero(self) -> Self:
        if self.points == 0:
            raise ValueError("inactivity.points must not be 0 (leave [inactivity] out instead)")
        return self

    @property
    def key(self) -> str:
        """Its entry in a score's breakdown, e.g. `inactive_90d`."""
        return f"inactive_{self.days}d"


class MqlRule(StrEnum):
    """When a lead whose total reaches the hand-off band is handed off (a marketing-qualified lead).

    `band`: the total alone (seed 000: "score in the MQL band"). `band-and-key-behavior`:
    the total and at least one key behaviour (seed 002: "total ≥ 70 and a pricing visit,
    an event or a booking"); until then the lead stays in the band below.
    """

    BAND = "band"
    BAND_AND_KEY_BEHAVIOR = "band-and-key-behavior"


class ScoringModel(BaseModel):
    """The whole lead-scoring model.

    Attributes:
        actions: Rule per event type; event types not listed score nothing.
        bands: Bands in ascending `min_score` order, the first at 0.
        fit: Optional fit rules on contact attributes.
        handoff_band: The band from which a lead is handed to sales (seed:
            MQL → sales notification); higher bands raise the priority.
            None: leads are never handed off.
        mql_rule: Whether reaching `handoff_band` is enough (`band`) or a key
            behaviour is needed too (`band-and-key-behavior`).
        key_behaviors: Event types that are key behaviours: they qualify a
            lead under `band-and-key-behavior`, and requalify a recycled lead
            under either rule.
        inactivity: Optional points while the contact is inactive.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    actions: dict[EventType, ActionRule]
    bands: list[Band] = Field(min_length=1)
    fit: list[FitRule] = Field(default_factory=list)
    handoff_band: str | None = None
    mql_rule: MqlRule = MqlRule.BAND
    key_behaviors: list[EventType] = Field(default_factory=list)
    inactivity: InactivityRule | None = None

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
        if self.handoff_band is not None and self.rank(self.handoff_band) == 0:
            raise ValueError(
                f"handoff_band: {self.handoff_band!r} is the first band; a lead waiting for a "
                "key behaviour needs a band below it"
            )
        if self.mql_rule is MqlRule.BAND_AND_KEY_BEHAVIOR and not (
            self.key_behaviors and self.handoff_band
        ):
            raise ValueError(
                "mql_rule: band-and-key-behavior needs handoff_band and at least one key_behaviors"
            )
        return self

    def rule_for(self, event_type: str, properties: Mapping[str, Any]) -> ActionRule | None:
        """The rule an event scores under, if any (its type is listed and its `when` matches)."""
        rule = self.actions.get(event_type)
        return rule if rule is not None and rule.applies_to(properties) else None

    def is_key_behavior(self, event_type: str) -> bool:
        """Whether an event of this type is a key behaviour (see `key_behaviors`)."""
        return event_type in self.key_behaviors

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
        """A short fingerprint of the model, to notice that it changed.

        Fields added with scoring profiles count only when set: a model without
        them keeps the fingerprint it had before they existed, so a contact
        workflow replaying its history (which compares a recorded fingerprint
        with one of the recorded model) does not load the model once more.
        """
        data = _without_unset(self.model_dump(mode="json"))
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

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


FIELDS_SINCE_PROFILES: Mapping[str, object] = MappingProxyType(
    {
        "when": {},
        "one_of": None,
        "min": None,
        "max": None,
        "mql_rule": MqlRule.BAND.value,
        "key_behaviors": [],
        "inactivity": None,
    }
)
"""Fields of the model added with scoring profiles, and their defaults (see `digest`)."""


def _without_unset(data: Any) -> Any:
    """`data` (a dumped model) without the `FIELDS_SINCE_PROFILES` left at their defaults."""
    if isinstance(data, list):
        return [_without_unset(item) for item in data]
    if not isinstance(data, dict):
        return data
    return {
        key: _without_unset(value)
        for key, value in data.items()
        if key not in FIELDS_SINCE_PROFILES or value != FIELDS_SINCE_PROFILES[key]
    }


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
        `rule.points` moved `rule.decay_points` towards 0 per full decay period
        elapsed, never past 0.
    """
    _require_aware(now)
    if not rule.decays:
        return rule.points
    periods = _periods_elapsed(rule, occurred_at, now)
    left = max(0, abs(rule.points) - rule.decay_points * periods)
    return left if rule.points > 0 else -left


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


def sales_qualified(
    model: ScoringModel, *, key_behavior_at: datetime | None, recycled_at: datetime | None
) -> bool:
    """Whether a lead may stand in the hand-off band (if its total reaches it).

    Args:
        model: The scoring model.
        key_behavior_at: When the lead's latest key behaviour happened, if any.
        recycled_at: When the lead was last recycled (`recycled` signal), if ever.

    Returns:
        After a recycling: whether a key behaviour happened after it. Otherwise
        True under `mql_rule = "band"`, and whether any key behaviour happened
        under `"band-and-key-behavior"`.
    """
    if recycled_at is not None:
        return key_behavior_at is not None and key_behavior_at > recycled_at
    return model.mql_rule is MqlRule.BAND or key_behavior_at is not None


def held_band(model: ScoringModel, total: int, *, qualified: bool) -> str:
    """The band of a total, held below the hand-off band for a lead not qualified.

    Args:
        model: The scoring model.
        total: A score.
        qualified: See `sales_qualified`.

    Returns:
        `band_for(model, total)`, or the band just below `handoff_band` when
        that would be sales-ready and the lead is not qualified.
    """
    band = band_for(model, total)
    if qualified or not model.sales_ready(band):
        return band
    assert model.handoff_band is not None  # sales_ready
    return model.bands[model.rank(model.handoff_band) - 1].name


def inactivity_points(model: ScoringModel, inactive_since: datetime | None, now: datetime) -> int:
    """The inactivity rule's points at `now` (0 without the rule, or not inactive long enough)."""
    rule = model.inactivity
    if rule is None or inactive_since is None or now - inactive_since < timedelta(days=rule.days):
        return 0
    return rule.points


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
    inactive_since: datetime | None = None,
    qualified: bool = True,
) -> ScoreBreakdown:
    """Score a contact at `now`.

    Args:
        model: The scoring model.
        actions: The contact's actions (unknown event types score nothing).
        now: The time to score at (timezone-aware; `workflow.now()` in a
            workflow).
        contact_fields: Contact attributes the fit rules look at.
        inactive_since: The contact's last contact-initiated event (for the
            inactivity rule); None: never inactive.
        qualified: Whether the lead may stand in the hand-off band (see
            `sales_qualified`).

    Returns:
        Fit, behaviour and total, the band, and the breakdown per event type.
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
    fit_points = sum(rule.points for rule in model.fit if rule.matches(contact_fields))
    inactive = inactivity_points(model, inactive_since, now)
    behavior_points = sum(by_event_type.values()) + inactive
    total = fit_points + behavior_points
    band = held_band(model, total, qualified=qualified)
    return ScoreBreakdown(
        total=total,
        band=band,
        by_event_type=dict(sorted(by_event_type.items())),
        fit_points=fit_points,
        behavior_points=behavior_points,
        inactivity_points=inactive,
        awaiting_key_behavior=band != band_for(model, total),
    )


def next_inactivity_change(
    model: ScoringModel, inactive_since: datetime | None, now: datetime
) -> datetime | None:
    """When the inactivity rule's points apply, if that is after `now`."""
    if model.inactivity is None or inactive_since is None:
        return None
    due = inactive_since + timedelta(days=model.inactivity.days)
    return due if due > now else None


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
    return rule is not None and contribution(rule, action.occurred_at, now) != 0


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
