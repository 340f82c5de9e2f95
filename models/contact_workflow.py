"""The contact workflow (`contact-{id}`): its input, state, and what it gives activities."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from models.events import BehaviorEvent
from models.ids import ContactId
from models.lead_score import ScoredAction
from models.policy import SECONDS_PER_DAY

MAX_EVENT_BATCH = 500
"""Most events one `events` signal (and one ingest) carries."""


class ContactCarryOver(BaseModel):
    """The contact workflow's state, handed to the next run when it continues as new.

    Attributes:
        seen_event_ids: The most recent event ids (duplicates are dropped).
        actions: Scored actions still worth points (compact, see `rules.scoring.add_action`).
        journeys: Journeys of the contact that may be running: workflow id → journey type.
        score: Last published score.
        band: Last published band.
        breakdown: Last published points per kind (the `state` query shows them at once).
        fit: Last published fit points.
        behavior: Last published behaviour points.
        tags: Tags last written to the CRM by the workflow.
        fit_fields: Contact attributes the fit rules read.
        last_event_at: When the last accepted event happened.
        events_accepted: Events accepted over the contact's life.
        duplicates_dropped: Duplicate events dropped over the contact's life.
        pending: Events received but not processed yet (at most a batch or two).
        last_active_at: Where the inactivity timer runs from: the last contact-initiated
            event (or the first event, before any). A carry-over from before the timer
            lacks it; the next run starts from `last_event_at` then.
        inactivity_handled_for: The `last_active_at` whose 30 days of inactivity already
            started a re-engagement or win-back journey (one per inactive period).
        sunset_since: When the contact was sunset (no marketing), if it is.
        key_behavior_at: When the latest key behaviour of the scoring profile happened.
        recycled_at: When the lead was recycled, until it requalifies.
    """

    model_config = ConfigDict(frozen=True)

    seen_event_ids: list[str] = Field(default_factory=list)
    actions: list[ScoredAction] = Field(default_factory=list)
    journeys: dict[str, str] = Field(default_factory=dict)
    score: int = 0
    band: str | None = None
    breakdown: dict[str, int] = Field(default_factory=dict)
    fit: int = 0
    behavior: int = 0
    tags: list[str] = Field(default_factory=list)
    fit_fields: dict[str, str] = Field(default_factory=dict)
    last_event_at: datetime | None = None
    events_accepted: int = 0
    duplicates_dropped: int = 0
    pending: list[BehaviorEvent] = Field(default_factory=list)
    last_active_at: datetime | None = None
    inactivity_handled_for: datetime | None = None
    sunset_since: datetime | None = None
    key_behavior_at: datetime | None = None
    recycled_at: datetime | None = None


class ContactInput(BaseModel):
    """What `contact-{id}` is started with (by signal-with-start).

    Attributes:
        contact_id: The contact.
        day_seconds: Clock of the journeys it starts (see `JourneyInput`).
        history_limit: Continue as new once the history has this many
            events (or earlier, when the server suggests it).
        carry: State from the previous run; set by the workflow only.
    """

    model_config = ConfigDict(frozen=True)

    contact_id: ContactId
    day_seconds: int = Field(default=SECONDS_PER_DAY, ge=1, le=SECONDS_PER_DAY)
    history_limit: int = Field(default=10_000, ge=50)
    carry: ContactCarryOver | None = None


class EventBatch(BaseModel):
    """Several events of one contact in one signal (the gateway's batches).

    Attributes:
        events: The events, in the order they happened.
    """

    model_config = ConfigDict(frozen=True)

    events: list[BehaviorEvent] = Field(min_length=1, max_length=MAX_EVENT_BATCH)


class JourneyEnrolment(BaseModel):
    """A journey started for the contact outside the contact workflow (e.g. `journeys enroll`).

    Attributes:
        workflow_id: The journey's workflow id.
        journey: Its journey type.
    """

    model_config = ConfigDict(frozen=True)

    workflow_id: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    journey: Annotated[str, StringConstraints(min_length=1, max_length=64)]


class EraseRequest(BaseModel):
    """Right to be forgotten: end every workflow of the contact and delete its personal data.

    Attributes:
        reason: Recorded as the journeys' exit reason.
    """

    model_config = ConfigDict(frozen=True)

    reason: Annotated[str, StringConstraints(min_length=1, max_length=200)] = "erased"


class ContactState(BaseModel):
    """What the contact workflow reports through its `state` query and its result.

    Attributes:
        contact_id: The contact.
        score: Current lead score (total: fit plus behaviour).
        fit: Its fit points (who the contact is).
        behavior: Its behaviour points (what the contact did, inactivity included).
        awaiting_key_behavior: The total reaches the hand-off band, but the lead is held
            below it until a key behaviour (seed 002's MQL rule, or after a recycling).
        key_behavior_at: When the latest key behaviour happened, if any.
        recycled_at: When the lead was recycled, until it requalifies.
        band: Current band (lifecycle stage).
        breakdown: Current points per event type (and `fit`, `inactive_<n>d`).
        journeys: Journeys that may be running: workflow id → journey type.
        events_accepted: Events accepted over the contact's life.
        duplicates_dropped: Duplicate events dropped over the contact's life.
        last_event_at: When the last accepted event happened.
        next_rescore_at: When decay next changes the score, if it will.
        erased: True once the contact was forgotten (the workflow has ended).
        last_active_at: Where the inactivity timer runs from (the last contact-initiated event).
        sunset_since: When the contact was sunset (marketing stopped), if it is.
    """

    contact_id: str
    score: int
    band: str | None
    fit: int = 0
    behavior: int = 0
    awaiting_key_behavior: bool = False
    key_behavior_at: datetime | None = None
    recycled_at: datetime | None = None
    breakdown: dict[str, int] = Field(default_factory=dict)
    journeys: dict[str, str] = Field(default_factory=dict)
    events_accepted: int = 0
    duplicates_dropped: int = 0
    last_event_at: datetime | None = None
    next_rescore_at: datetime | None = None
    erased: bool = False
    last_active_at: datetime | None = None
    sunset_since: datetime | None = None


class SunsetRequest(BaseModel):
    """A re-engagement journey got no response: stop marketing to the contact (list hygiene).

    Attributes:
        journey_started_at: When the journey began; a contact-initiated event since then
            means the contact came back, and the request is ignored.
    """

    model_config = ConfigDict(frozen=True)

    journey_started_at: datetime


class IngestRequest(BaseModel):
    """Store a batch of events and apply what cannot wait (suppression).

    Attributes:
        batch_key: `{run_id}/{sequence}`: a retried ingest recognises its own rows.
        contact_id: The contact.
        events: Events not seen by the workflow before.
    """

    model_config = ConfigDict(frozen=True)

    batch_key: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    contact_id: ContactId
    events: list[BehaviorEvent]


class IngestResult(BaseModel):
    """What the ingest found.

    Attributes:
        accepted_event_ids: Events stored now (others were already stored:
            duplicates older than the workflow's memory).
        contact_exists: Whether the contact is in the CRM (journeys start only then).
        contact_erased: The contact was erased (it has a tombstone): nothing
            was stored, and the workflow must end without acting.
        fit_fields: The contact's attributes, for fit rules, with its derived
            `email_type` (`corporate` / `free`; never the address or its domain).
        scoring_digest: Fingerprint of the worker's scoring model.
        reachable_channels: The channels marketing can still reach the contact
            on after the batch (an address, consent, no suppression); a
            channel-scoped unsubscribe ends the journeys left with none.
        derived_events: Events the batch's events imply, stored with them (a
            usage drop or recovery, `rules/usage.py`); routed like the others.
    """

    model_config = ConfigDict(frozen=True)

    accepted_event_ids: list[str]
    contact_exists: bool
    contact_erased: bool = False
    fit_fields: dict[str, str] = Field(default_factory=dict)
    scoring_digest: str
    reachable_channels: list[str] = Field(default_factory=list)
    derived_events: list[BehaviorEvent] = Field(default_factory=list)


class LeadScoreUpdate(BaseModel):
    """Write the score, band and tags to the CRM.

    Attributes:
        contact_id: The contact.
        score: Lead score (total).
        fit: Fit points; an update scheduled before they existed takes them from
            `breakdown` (its `fit` entry).
        behavior: Behaviour points; likewise the rest of the score.
        band: Band (lifecycle stage).
        breakdown: Points per event type (and `fit`, `inactive_<n>d`).
        tags: Tags the workflow manages (`stage_…`, `act_…`, `src_…`,
            `int_…`, `eng_…`); they are added.
        removed_tags: Tags the workflow set before and no longer holds (a
            former stage); they are removed.
    """

    model_config = ConfigDict(frozen=True)

    contact_id: ContactId
    score: int
    fit: int
    behavior: int
    band: str
    breakdown: dict[str, int]
    tags: list[str]
    removed_tags: list[str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _parts_of_an_older_update(cls, data: Any) -> Any:
        """An update scheduled by a worker from before fit and behaviour: derive them."""
        if isinstance(data, dict) and "fit" not in data and "score" in data:
            fit = dict(data.get("breakdown") or {}).get("fit", 0)
            data = {**data, "fit": fit, "behavior": data["score"] - fit}
        return data


class LeadStatus(BaseModel):
    """Where a lead stands, as the CRM records it (for journeys that route on it).

    Attributes:
        score: Lead score.
        band: Band, if scored.
        sales_ready: At or above the hand-off band.
        owner_id: The sales owner, once handed off.
    """

    model_config = ConfigDict(frozen=True)

    score: int
    band: str | None
    sales_ready: bool
    owner_id: str | None = None


class ErasureResult(BaseModel):
    """What erasure deleted.

    Attributes:
        rows_deleted: Rows deleted per table.
        files_deleted: Outbox files deleted (message bodies, notifications).
        suppressed_channels: Channels whose address hash was kept as suppressed.
    """

    model_config = ConfigDict(frozen=True)

    rows_deleted: dict[str, int]
    files_deleted: int
    suppressed_channels: list[str]


class ContactWorkflows(BaseModel):
    """The workflows of a contact that erasure ends before it destroys the contact's data key.

    Attributes:
        contact_id: The contact.
        workflow_ids: Those the contact workflow knows of (more are found by
            the `ContactId` search attribute where the server has visibility).
    """

    model_config = ConfigDict(frozen=True)

    contact_id: ContactId
    workflow_ids: list[str] = Field(default_factory=list)
