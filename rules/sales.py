"""Sales hand-off (seed 002): who gets a lead, the SLAs, and what the lead-sla journey exchanges.

The configuration lives in a TOML file operators edit (`sales.toml` at the
repository root is the default): the reps and their managers, territory rules
(a contact attribute → a group of reps), the round-robin pool for everyone
else, and the SLAs (first touch within 10 minutes, qualification within 48
hours, a reminder at half of each).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from models.events import ContactId
from models.journeys import JourneyInput
from models.toml_files import load_toml

PersonId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
"""Id of a rep or manager, e.g. `sdr-mia`."""


def _as_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_as_utc)]


class SalesPerson(BaseModel):
    """Someone on the sales team who receives notifications.

    Attributes:
        id: Stable id, stored as the contact's owner.
        name: Display name.
        mention: How a chat notification addresses them, e.g. `<@U024BE7LH>`
            (Slack); the name is used when absent.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: PersonId
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    mention: Annotated[str, StringConstraints(max_length=100)] | None = None

    @property
    def addressed(self) -> str:
        """The mention if there is one, else the name."""
        return self.mention or self.name


class Rep(SalesPerson):
    """A sales rep (SDR) who owns leads.

    Attributes:
        manager: Id of the manager SLA breaches escalate to.
    """

    manager: PersonId


class Territory(BaseModel):
    """Leads whose contact attribute `field` equals `equals` go to `reps` (in turn).

    Attributes:
        field: Contact attribute, e.g. `region` or `industry`.
        equals: Value it must have, e.g. `EMEA` (exact match).
        reps: Ids of the reps covering the territory.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    field: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    equals: str
    reps: list[PersonId] = Field(min_length=1)


class SlaPolicy(BaseModel):
    """The hand-off SLAs.

    Attributes:
        first_touch_minutes: The owner must contact the lead within this time.
        qualification_hours: The lead must be qualified (or disqualified)
            within this time of the hand-off.
        reminder_fraction: The owner is reminded once this fraction of an
            SLA has elapsed (0.5: at half time).
        ownership_days: A lead handed off again within this time keeps its
            owner (seed 002: ownership locked for 7 days).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    first_touch_minutes: float = Field(default=10, gt=0)
    qualification_hours: float = Field(default=48, gt=0)
    reminder_fraction: float = Field(default=0.5, gt=0, lt=1)
    ownership_days: float = Field(default=7, ge=0)

    @property
    def first_touch(self) -> timedelta:
        """The first-touch SLA as a duration."""
        return timedelta(minutes=self.first_touch_minutes)

    @property
    def qualification(self) -> timedelta:
        """The qualification SLA as a duration."""
        return timedelta(hours=self.qualification_hours)


class SalesConfig(BaseModel):
    """The whole sales hand-off configuration.

    Attributes:
        sla: The SLAs.
        reps: Every rep.
        managers: Every manager (escalations go to a rep's manager).
        territories: Checked in order; the first that matches the contact
            picks the reps who may own it.
        round_robin: Reps who share the leads no territory matches (default:
            every rep).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    sla: SlaPolicy = Field(default_factory=SlaPolicy)
    reps: list[Rep] = Field(min_length=1)
    managers: list[SalesPerson] = Field(min_length=1)
    territories: list[Territory] = Field(default_factory=list)
    round_robin: list[PersonId] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references_exist(self) -> Self:
        people = [person.id for person in (*self.reps, *self.managers)]
        if len(set(people)) != len(people):
            raise ValueError("reps and managers: ids must be unique")
        reps = {rep.id for rep in self.reps}
        managers = {manager.id for manager in self.managers}
        for rep in self.reps:
            if rep.manager not in managers:
                raise ValueError(f"reps: {rep.id!r} has manager {rep.manager!r}, not a manager")
        for territory in self.territories:
            unknown = sorted(set(territory.reps) - reps)
            if unknown:
                raise ValueError(
                    f"territories: {territory.field}={territory.equals!r} names unknown reps "
                    f"{unknown}"
                )
        unknown = sorted(set(self.round_robin) - reps)
        if unknown:
            raise ValueError(f"round_robin: unknown reps {unknown}")
        return self

    @classmethod
    def load(cls, path: str | Path) -> SalesConfig:
        """Read the configuration from a TOML file.

        Raises:
            OSError: The file cannot be read.
            ValueError: Not valid TOML or not a valid configuration; the
                message names the file and each problem.
        """
        return load_toml(cls, path, "sales configuration")

    def rep(self, rep_id: str) -> Rep | None:
        """The rep with this id, if configured."""
        return next((rep for rep in self.reps if rep.id == rep_id), None)

    def manager_of(self, rep: Rep) -> SalesPerson:
        """The rep's manager (validated to exist)."""
        return next(manager for manager in self.managers if manager.id == rep.manager)

    def candidates(self, attributes: Mapping[str, str]) -> list[Rep]:
        """Reps who may own a contact with these attributes, in configured order.

        The first territory whose field matches decides; otherwise the
        round-robin pool (every rep when the pool is not configured).
        """
        for territory in self.territories:
            if attributes.get(territory.field) == territory.equals:
                return [rep for rep_id in territory.reps if (rep := self.rep(rep_id))]
        pool = self.round_robin or [rep.id for rep in self.reps]
        return [rep for rep_id in pool if (rep := self.rep(rep_id))]


class LeadBand(BaseModel):
    """A lead's band and score, as the contact workflow tells the lead-sla journey.

    Attributes:
        band: Band name, e.g. `MQL`, `SQL`, `Hot`.
        score: Lead score.
    """

    model_config = ConfigDict(frozen=True)

    band: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    score: int


class HandOffRequest(BaseModel):
    """Hand a lead to sales: assign an owner, open the follow-up task, notify the owner.

    Attributes:
        idempotency_key: `{workflow_id}/handoff`; one assignment, task and
            notification per key.
        contact_id: The lead.
        band: Band and score at hand-off (decides the task's priority).
    """

    model_config = ConfigDict(frozen=True)

    idempotency_key: Annotated[str, StringConstraints(min_length=1, max_length=300)]
    contact_id: ContactId
    band: LeadBand


class HandOff(BaseModel):
    """The result of a hand-off.

    Attributes:
        owner_id: The rep who owns the lead.
        owner_name: Their name.
        manager_id: Who breaches escalate to.
        task_id: The follow-up task opened.
        sla: The SLAs in force (from the configuration at hand-off time).
    """

    model_config = ConfigDict(frozen=True)

    owner_id: PersonId
    owner_name: str
    manager_id: PersonId
    task_id: int
    sla: SlaPolicy


class LeadSlaInput(JourneyInput):
    """What a lead-sla journey is started with (see `workflows/lead_sla.py`).

    The SLAs run in real minutes and hours whatever `day_seconds` says.

    Attributes:
        band: Band and score at hand-off.
        handoff: The hand-off's result, once done (kept by the journey so a
            run that continued as new has it).
    """

    band: LeadBand
    handoff: HandOff | None = None


class PriorityRequest(BaseModel):
    """The lead moved up a band while handed off (SQL: priority follow-up; Hot: call now).

    Attributes:
        idempotency_key: `{workflow_id}/priority-{band}`.
        contact_id: The lead.
        owner_id: Its owner.
        band: The new band and score.
    """

    model_config = ConfigDict(frozen=True)

    idempotency_key: Annotated[str, StringConstraints(min_length=1, max_length=300)]
    contact_id: ContactId
    owner_id: PersonId
    band: LeadBand


class SlaKind(StrEnum):
    """Which SLA a notice is about."""

    FIRST_TOUCH = "first_touch"
    QUALIFICATION = "qualification"


class SlaNotice(BaseModel):
    """An SLA reminder to the owner, or a breach escalated to their manager.

    Attributes:
        idempotency_key: `{workflow_id}/{step}`; one notice per key.
        contact_id: The lead.
        owner_id: Its owner.
        sla: Which SLA.
        due_at: When it is (was) due.
    """

    model_config = ConfigDict(frozen=True)

    idempotency_key: Annotated[str, StringConstraints(min_length=1, max_length=300)]
    contact_id: ContactId
    owner_id: PersonId
    sla: SlaKind
    due_at: UtcDatetime
