"""Segments: named rules over contacts, defined in `segments.toml` or through the API.

A segment's rule is one condition; a condition names one subject and its test::

    { attribute = "region", in = ["emea", "apac"] }       # also equals, at_least, at_most, exists
    { has_tag = "int_pricing" }   { lacks_tag = "act_purchased" }   { tag_prefix = "src_" }
    { score = "lead", at_least = 40 }                      # lead | fit | behavior
    { band = ["warm", "hot"] }                             # the lead-score band
    { stage = ["mql", "sql"] }                             # the pipeline (lifecycle) stage
    { consent = "email" }   { consent = "sms", granted = false }
    { event = "pricing_page_viewed", at_least = 2, within = "14d" }
    { event = "purchased", at_most = 0, within = "30d" }   # no purchase in 30 days
    { inactive_for = "30d" }                               # nothing the contact did in 30 days
    { all = [...] }   { any = [...] }   { not = {...} }

In the file, each `[segments.<name>]` table is a `title` and the fields of its
rule. Evaluation is `rules/segments.py`; membership, `rules/segment_membership.py`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from models.contacts import AttributeName, Tag
from models.pipeline import PipelineStage

SEGMENT_NAME_PATTERN = r"^[a-z][a-z0-9-]{0,63}$"
SegmentName = Annotated[str, StringConstraints(pattern=SEGMENT_NAME_PATTERN)]
EventType = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
MAX_CONDITIONS = 50
"""Most conditions in one rule, nested ones included."""
_DURATION = re.compile(r"^\s*(\d{1,5})\s*([dhm])\s*$")
_UNITS = {"d": timedelta(days=1), "h": timedelta(hours=1), "m": timedelta(minutes=1)}
SUBJECTS = (
    "attribute",
    "has_tag",
    "lacks_tag",
    "tag_prefix",
    "score",
    "band",
    "stage",
    "consent",
    "event",
    "inactive_for",
    "all",
    "any",
    "not",
)
"""What a condition may test; each condition names exactly one."""
_TESTS = {
    "attribute": {"equals", "in", "at_least", "at_most", "exists"},
    "score": {"at_least", "at_most"},
    "consent": {"granted"},
    "event": {"at_least", "at_most", "within"},
}
"""The tests a subject takes besides its own field (the others take none)."""


class SegmentError(ValueError):
    """A segment that cannot be defined, or a name no segment has."""


def parse_window(value: object) -> timedelta:
    """`14d`, `12h` or `30m` as a duration (at least a minute)."""
    if isinstance(value, timedelta):
        return value
    found = _DURATION.match(str(value))
    if found is None or int(found[1]) == 0:
        raise ValueError(
            f"{value!r} is not a duration: write a whole number of d, h or m, e.g. 14d"
        )
    return int(found[1]) * _UNITS[found[2]]


def window_text(window: timedelta) -> str:
    """A duration as the rules write it (`14d`, `12h`, `30m`)."""
    for unit in ("d", "h", "m"):
        count, rest = divmod(window, _UNITS[unit])
        if not rest:
            return f"{count}{unit}"
    raise ValueError(f"{window} is not a whole number of minutes")


Window = Annotated[timedelta, Field(json_schema_extra={"examples": ["14d"]})]


class Channel(StrEnum):
    """A channel whose marketing consent a rule tests."""

    EMAIL = "email"
    SMS = "sms"


class ScoreKind(StrEnum):
    """Which lead score a rule tests."""

    LEAD = "lead"
    FIT = "fit"
    BEHAVIOR = "behavior"


class Condition(BaseModel):
    """One test of a contact (see the module docstring); exactly one subject is named."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    attribute: AttributeName | None = None
    has_tag: Tag | None = None
    lacks_tag: Tag | None = None
    tag_prefix: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,99}$")] | None = (
        None
    )
    score: ScoreKind | None = None
    band: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] | None = None
    stage: list[PipelineStage] | None = None
    consent: Channel | None = None
    event: EventType | None = None
    inactive_for: Window | None = None
    all_of: list[Condition] | None = Field(default=None, alias="all")
    any_of: list[Condition] | None = Field(default=None, alias="any")
    not_: Condition | None = Field(default=None, alias="not")

    equals: Annotated[str, StringConstraints(max_length=200)] | None = None
    in_: list[Annotated[str, StringConstraints(max_length=200)]] | None = Field(
        default=None, alias="in"
    )
    at_least: float | None = None
    at_most: float | None = None
    exists: bool | None = None
    granted: bool | None = None
    within: Window | None = None

    @field_validator("inactive_for", "within", mode="before")
    @classmethod
    def _duration(cls, value: object) -> timedelta | None:
        return None if value is None else parse_window(value)

    @field_validator("band", "stage", "in_", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_subject_and_its_tests(self) -> Condition:
        named = [subject for subject in SUBJECTS if self._field(subject) is not None]
        if len(named) != 1:
            found = ", ".join(named) or "none"
            raise ValueError(
                f"a condition names exactly one of {', '.join(SUBJECTS)} (this one: {found})"
            )
        subject = named[0]
        given = {
            test
            for test in ("equals", "in", "at_least", "at_most", "exists", "granted", "within")
            if self._field(test) is not None
        }
        wrong = given - _TESTS.get(subject, set())
        if wrong:
            raise ValueError(f"{subject} takes no {', '.join(sorted(wrong))}")
        if subject in ("attribute", "score", "event") and not given - {"within"}:
            tests = " or ".join(sorted(_TESTS[subject] - {"within"}))
            raise ValueError(f"{subject} needs a test: {tests}")
        if subject in ("all", "any") and not self._field(subject):
            raise ValueError(f"{subject} needs at least one condition")
        if sum(1 for _ in self.walk()) > MAX_CONDITIONS:
            raise ValueError(f"a rule has at most {MAX_CONDITIONS} conditions")
        return self

    def _field(self, name: str) -> Any:
        return getattr(
            self, {"all": "all_of", "any": "any_of", "not": "not_", "in": "in_"}.get(name, name)
        )

    @property
    def subject(self) -> str:
        """The one subject the condition names (`attribute`, `event`, `all`…)."""
        return next(subject for subject in SUBJECTS if self._field(subject) is not None)

    def children(self) -> list[Condition]:
        """The nested conditions of `all`, `any` and `not` (none for the others)."""
        if self.not_ is not None:
            return [self.not_]
        return list(self.all_of or self.any_of or [])

    def walk(self) -> Iterator[Condition]:
        """This condition and every nested one, depth first."""
        yield self
        for child in self.children():
            yield from child.walk()

    def dump(self) -> dict[str, Any]:
        """The condition as the file and the API write it (durations as `14d`)."""
        written: dict[str, Any] = _written(
            self.model_dump(by_alias=True, exclude_none=True, mode="python")
        )
        return written


def _written(value: Any) -> Any:
    if isinstance(value, timedelta):
        return window_text(value)
    if isinstance(value, dict):
        return {key: _written(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_written(item) for item in value]
    return value


class Segment(BaseModel):
    """A named rule over contacts.

    Attributes:
        name: Lower case, digits and dashes, e.g. `hot-pricing-visitors`.
        title: What it is, for people.
        rule: The condition a member meets.
        source: `file` (`segments.toml`, reviewed like code) or `api`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: SegmentName
    title: Annotated[str, StringConstraints(max_length=200)] = ""
    rule: Condition
    source: Literal["file", "api"] = "api"

    def digest(self) -> str:
        """A fingerprint of the rule: a changed rule is evaluated again over every contact."""
        text = json.dumps(self.rule.dump(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


class SegmentTable(Condition):
    """A `[segments.<name>]` table of the file: a title and the fields of the rule."""

    title: Annotated[str, StringConstraints(max_length=200)] = ""

    def segment(self, name: str) -> Segment:
        """The segment this table defines."""
        rule = self.model_dump(by_alias=True, exclude_none=True, exclude={"title"})
        return Segment(
            name=name, title=self.title, rule=Condition.model_validate(rule), source="file"
        )


class SegmentFile(BaseModel):
    """`segments.toml`: one `[segments.<name>]` table per segment (a title and a rule)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    segments: dict[SegmentName, SegmentTable] = Field(default_factory=dict)

    def defined(self) -> dict[str, Segment]:
        """The segments, by name."""
        return {name: table.segment(name) for name, table in self.segments.items()}


class SegmentRefresh(BaseModel):
    """Evaluate a contact's segments after its events or score changed (the contact workflow).

    Attributes:
        contact_id: The contact.
        refresh_key: `{run_id}/{n}`: a retried refresh returns the events it stored.
        at: The moment of the evaluation: the workflow's time.
    """

    model_config = ConfigDict(frozen=True)

    contact_id: str
    refresh_key: str
    at: AwareDatetime


class SweepResult(BaseModel):
    """What one segment sweep did.

    Attributes:
        evaluated_segments: New or changed segments evaluated over every contact.
        forgotten_segments: Segments no longer defined, whose members were dropped.
        contacts_refreshed: Contacts whose segments were due (a profile change, a lapse).
        entered: Contacts that entered a segment.
        left: Contacts that left one.
        events_delivered: `segment_entered` / `segment_left` events told to contact workflows.
    """

    evaluated_segments: list[str] = Field(default_factory=list)
    forgotten_segments: list[str] = Field(default_factory=list)
    contacts_refreshed: int = 0
    entered: int = 0
    left: int = 0
    events_delivered: int = 0
