"""What the lead-sla journey exchanges with its activities: bands, hand-offs, SLA notices.

Who gets a lead and the SLAs in force come from the sales configuration
(`rules/sales.py`, read from `sales.toml`); `SlaPolicy` travels with a
hand-off so a journey keeps the SLAs it started with.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from models.events import InUtc
from models.ids import ContactId, PersonId
from models.journeys import KEPT_BY_THE_JOURNEY, JourneyInput


class SlaKind(StrEnum):
    """Which SLA a notice is about."""

    FIRST_TOUCH = "first_touch"
    QUALIFICATION = "qualification"
    SQL_FOLLOW_UP = "sql_follow_up"


class SlaAlerts(BaseModel):
    """What the owner hears before one SLA is due: a reminder, a warning, both or neither.

    Attributes:
        reminder: Remind the owner once `reminder_fraction` of the SLA has
            elapsed (0.5: at half time).
        warn_before_minutes: Warn the owner and their manager this long
            before the due time (seed 002: 120, two hours before); none: no
            warning. It must be shorter than the SLA (a warning before the
            SLA starts is refused when the configuration is loaded).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    reminder: bool = True
    warn_before_minutes: float | None = Field(default=None, gt=0)

    @property
    def warn_before(self) -> timedelta | None:
        """The warning's lead time as a duration, if there is a warning."""
        if self.warn_before_minutes is None:
            return None
        return timedelta(minutes=self.warn_before_minutes)


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
        sql_follow_up_hours: After `lead_qualified` (SQL), the first demo or
            deep-dive meeting (`meeting_held`) must be held within this time
            (seed 002: 72 hours).
        no_interaction_days: A lead handed off and not qualified that shows
            no interaction for this long (since the hand-off) is recycled
            (seed 002: 14 days).
        alerts: Per SLA, the reminder and the warning before due; an SLA not
            listed gets a reminder only (today's behaviour).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    first_touch_minutes: float = Field(default=10, gt=0)
    qualification_hours: float = Field(default=48, gt=0)
    reminder_fraction: float = Field(default=0.5, gt=0, lt=1)
    ownership_days: float = Field(default=7, ge=0)
    sql_follow_up_hours: float = Field(default=72, gt=0)
    no_interaction_days: float = Field(default=14, gt=0)
    alerts: dict[SlaKind, SlaAlerts] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _warnings_fall_after_the_start(self) -> Self:
        for kind, alerts in self.alerts.items():
            warn_before, due = alerts.warn_before, self.due(kind)
            if warn_before is not None and warn_before >= due:
                raise ValueError(
                    f"alerts.{kind}: warn_before_minutes = {alerts.warn_before_minutes:g} is not "
                    f"shorter than the {kind} SLA ({due.total_seconds() / 60:g} min), so the "
                    f"warning would come before the SLA starts; lower it or leave it out"
                )
        return self

    def alerts_for(self, kind: SlaKind) -> SlaAlerts:
        """The reminder and warning of SLA `kind` (a reminder only when not configured)."""
        return self.alerts.get(kind, SlaAlerts())

    def due(self, kind: SlaKind) -> timedelta:
        """SLA `kind` as a duration from its start."""
        match kind:
            case SlaKind.FIRST_TOUCH:
                return self.first_touch
            case SlaKind.QUALIFICATION:
                return self.qualification
            case SlaKind.SQL_FOLLOW_UP:
                return self.sql_follow_up

    @property
    def sql_follow_up(self) -> timedelta:
        """The SQL follow-up SLA as a duration (from the qualification)."""
        return timedelta(hours=self.sql_follow_up_hours)

    @property
    def no_interaction(self) -> timedelta:
        """How long a handed-off lead may go without interaction before it is recycled."""
        return timedelta(days=self.no_interaction_days)

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


class InteractionQuery(BaseModel):
    """Ask for a lead's last interaction since a moment (the 14-day watch after MQL).

    Attributes:
        contact_id: The lead.
        since: Only interactions from then on count (the hand-off).
    """

    model_config = ConfigDict(frozen=True)

    contact_id: ContactId
    since: InUtc


class LastInteraction(BaseModel):
    """A lead's last interaction: a contact-initiated event or a rep's (`REP_INTERACTIONS`).

    Attributes:
        at: When it occurred; none when there was none since the moment asked.
    """

    model_config = ConfigDict(frozen=True)

    at: InUtc | None = None


class MeetingHeldProperties(BaseModel):
    """The properties of a `meeting_held` event (it meets the SQL follow-up SLA).

    Other keys (notes, attendees) are kept as given.

    Attributes:
        kind: `demo` or `deep-dive` (seed 002: the first demo or in-depth talk).
    """

    model_config = ConfigDict(extra="allow")

    kind: Literal["demo", "deep-dive"]
