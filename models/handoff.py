"""What the lead-sla journey exchanges with its activities: bands, hand-offs, SLA notices.

Who gets a lead and the SLAs in force come from the sales configuration
(`rules/sales.py`, read from `sales.toml`); `SlaPolicy` travels with a
hand-off so a journey keeps the SLAs it started with.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from models.events import InUtc
from models.ids import ContactId, PersonId
from models.journeys import KEPT_BY_THE_JOURNEY, JourneyInput


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
    """What a lead-sla journey is started with (see `workflows/journeys/lead_sla.py`).

    The SLAs run in real minutes and hours whatever `day_seconds` says.

    Attributes:
        band: Band and score at hand-off.
        handoff: The hand-off's result, once done (kept by the journey so a
            run that continued as new has it).
    """

    band: LeadBand
    handoff: HandOff | None = Field(default=None, json_schema_extra=KEPT_BY_THE_JOURNEY)


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
    due_at: InUtc
