"""What the HTTP gateway reads and answers (its OpenAPI schema is built from these)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from models.deals import plain_amount
from models.events import EventProperties, UtcTime
from models.ids import ContactId
from models.tables import ConsentChange, Contact, ContactMerge, MessageLog
from starter.services.deals import DealRecord

EventType = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]


class EventIn(BaseModel):
    """A behaviour event as a service posts it.

    Attributes:
        event_id: Idempotency key (1–128 characters, no control characters):
            a retry with the same id is processed once. Assigned by the
            gateway (and returned) when omitted.
        contact_id: Your system's id of the contact (the contact workflow is
            created on its first event).
        type: snake_case event type, e.g. `pricing_page_viewed`.
        occurred_at: When it happened, with a time zone; now when omitted.
            More than a few minutes in the future, or before 1970, is refused.
        properties: Details (page URL, plan, UTM parameters…); at most 16
            levels deep and 32 KiB as JSON.
    """

    model_config = ConfigDict(extra="forbid")

    event_id: Annotated[str, StringConstraints(pattern=r"^[^\x00-\x1f\x7f]{1,128}$")] | None = None
    contact_id: ContactId
    type: EventType
    occurred_at: UtcTime | None = None
    properties: EventProperties = Field(default_factory=dict)


class EventBatchIn(BaseModel):
    """Several events in one request; each is accepted or rejected on its own."""

    model_config = ConfigDict(extra="forbid")

    events: list[EventIn] = Field(min_length=1, max_length=500)


class ValidationIssue(BaseModel):
    """One problem with a request, as FastAPI reports it.

    Attributes:
        loc: Where: `["body", "events", 2, "occurred_at"]`.
        msg: What is wrong.
        type: Machine-readable kind, e.g. `missing`.
    """

    loc: list[str | int]
    msg: str
    type: str


EventStatus = Literal["accepted", "duplicate", "rejected"]


class EventResult(BaseModel):
    """What became of one posted event.

    Attributes:
        index: Its position in the request (0 for a single event).
        event_id: Its idempotency key (the assigned one if it had none).
        status: `accepted` (durable: Temporal has it), `duplicate` (this
            `event_id` was accepted before; processed once) or `rejected`.
        workflow_id: The contact workflow that has it.
        errors: Why it was rejected.
        warnings: What to know about an event taken, e.g. that its contact
            does not exist yet (the event is kept, but starts no journey).
    """

    index: int
    event_id: str | None = None
    status: EventStatus
    workflow_id: str | None = None
    errors: list[ValidationIssue] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)


class EventsResponse(BaseModel):
    """The answer to `POST /v1/events`: counts and one result per event."""

    accepted: int
    duplicate: int
    rejected: int
    results: list[EventResult]


class ConsentView(BaseModel):
    """Consent on one channel: granted or withdrawn, where and when (None: never asked)."""

    granted: bool | None
    source: str | None
    at: datetime | None


class DealChangeView(BaseModel):
    """One change of a deal: opened, moved, won or lost, by the event `event_id`."""

    model_config = ConfigDict(from_attributes=True)

    event_id: str
    event_type: str
    from_stage: str | None
    to_stage: str
    status: str
    occurred_at: datetime


class DealView(BaseModel):
    """A deal (opened by `lead_qualified`), with its changes, oldest first."""

    id: int
    contact_id: str
    owner_id: str | None
    amount: Decimal | None
    currency: str | None
    stage: str
    use_case: str | None
    competitors: list[str]
    status: str
    lost_reason: str | None
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    changes: list[DealChangeView]

    @classmethod
    def of(cls, record: DealRecord) -> DealView:
        """The view of a deal and its history."""
        deal = record.deal
        return cls(
            **deal.model_dump(exclude={"amount"}),
            amount=None if deal.amount is None else plain_amount(deal.amount),
            changes=[DealChangeView.model_validate(change) for change in record.changes],
        )


class ContactView(BaseModel):
    """A contact as the CRM of record holds it (and its open deal, where it is read)."""

    id: str
    email: str | None
    phone: str | None
    first_name: str | None
    company: str | None
    timezone: str
    email_consent: ConsentView
    sms_consent: ConsentView
    tags: list[str]
    attributes: dict[str, str]
    lead_score: int = Field(description="The total: fit_score plus behavior_score.")
    fit_score: int = Field(description="Fit points: who the contact is (scoring profile).")
    behavior_score: int = Field(description="Behaviour points: what the contact did.")
    lifecycle_stage: str | None
    score_breakdown: dict[str, int]
    owner_id: str | None
    created_at: datetime
    updated_at: datetime
    open_deal: DealView | None = None

    @classmethod
    def of(cls, contact: Contact, *, open_deal: DealRecord | None = None) -> ContactView:
        """The view of a contact row (with its open deal, if given)."""
        return cls(
            **contact.model_dump(
                include={
                    "id",
                    "email",
                    "phone",
                    "first_name",
                    "company",
                    "timezone",
                    "tags",
                    "attributes",
                    "lead_score",
                    "fit_score",
                    "behavior_score",
                    "lifecycle_stage",
                    "score_breakdown",
                    "owner_id",
                    "created_at",
                    "updated_at",
                }
            ),  # fmt: skip
            email_consent=ConsentView(
                granted=contact.email_consent,
                source=contact.email_consent_source,
                at=contact.email_consent_at,
            ),
            sms_consent=ConsentView(
                granted=contact.sms_consent,
                source=contact.sms_consent_source,
                at=contact.sms_consent_at,
            ),
            open_deal=DealView.of(open_deal) if open_deal is not None else None,
        )


class EnrolmentIn(BaseModel):
    """Options of `POST /v1/contacts/{id}/journeys/{journey}`: the journey's own.

    Any other key is an option of the journey (`GET /v1/journeys` lists them,
    e.g. renewal-countdown's `renewal_date` and `subscription_id`), validated
    by the journey's input model: 422 naming the field and the journey.

    Attributes:
        day_seconds: Accelerated journey clock (seconds per day), for staging;
            every journey takes it.
    """

    model_config = ConfigDict(extra="allow")

    day_seconds: int | None = Field(default=None, ge=1, le=86_400)


class EnrolmentView(BaseModel):
    """A journey started for a contact."""

    workflow_id: str
    journey: str
    contact_id: str


class JourneyActionIn(BaseModel):
    """Why an operator or a service steers a journey (recorded as the exit reason)."""

    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, StringConstraints(min_length=1, max_length=200)] = "api"


class JourneyActionView(BaseModel):
    """The workflows an exit / pause / resume was sent to."""

    action: str
    workflow_ids: list[str]


class ErasureView(BaseModel):
    """`erased` once done; `in_progress` when it goes on after the answer (it is durable)."""

    contact_id: str
    status: Literal["erased", "in_progress"]


class MessageView(BaseModel):
    """One row of the message log."""

    model_config = ConfigDict(from_attributes=True)

    idempotency_key: str
    journey: str
    step: str
    channel: str
    category: str
    template: str
    subject: str | None
    status: str
    status_reason: str | None
    provider: str | None
    provider_message_id: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: MessageLog) -> MessageView:
        """The view of a message-log row."""
        return cls.model_validate(row)


class ConsentChangeView(BaseModel):
    """One change of the contact's marketing consent on a channel.

    Attributes:
        channel: `email` or `sms`.
        granted: True for an opt-in, false for an opt-out.
        occurred_at: When the contact gave or withdrew it.
        source: Where: the `source` a PUT gave (`form:lead-magnet`),
            `unsubscribe-link`, `list-unsubscribe`, `sms-keyword`, `event:…`, `complaint`.
        wording: What the contact agreed to or said (consent text, `texted STOP`…).
        ip: The IP address it came from, where known.
        user_agent: The browser, where known.
        reference: What caused it: the event id or inbound message, if any.
        recorded_at: When it was recorded.
    """

    channel: str
    granted: bool
    occurred_at: datetime
    source: str
    wording: str | None
    ip: str | None
    user_agent: str | None
    reference: str | None
    recorded_at: datetime

    @classmethod
    def of(cls, row: ConsentChange) -> ConsentChangeView:
        """The view of a consent-history row."""
        return cls(
            channel=row.channel,
            granted=row.granted,
            occurred_at=row.occurred_at,
            source=row.source,
            wording=row.wording,
            ip=row.ip,
            user_agent=row.user_agent,
            reference=row.change_key,
            recorded_at=row.recorded_at,
        )


class Problem(BaseModel):
    """An error answer: what is wrong and, where it helps, what to do (for invalid
    fields, one issue per field)."""

    detail: str | list[ValidationIssue]


class ContactUpsertView(ContactView):
    """The contact a `PUT` wrote: the one asked for, or the one its lead was merged into.

    Attributes:
        merged_from: The id given, when it landed on another contact (then `id` is the
            survivor's); None for a plain create or update.
        matched_by: How: `email` or `domain+name` (a new lead merged now: the id given is
            an alias of the survivor from now on), `alias` (merged earlier).
    """

    merged_from: str | None = None
    matched_by: Literal["email", "domain+name", "alias"] | None = None


class MergeIn(BaseModel):
    """`POST /v1/contacts/{survivor}/merge`: the contact to merge into the survivor."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    loser: ContactId = Field(alias="from", description="The contact merged away.")


class MergeView(BaseModel):
    """A merge's audit row: who was merged into whom, how, by whom, when, what moved.

    Attributes:
        status: `merged` now, or `already merged` (the same merge before: nothing changed).
    """

    status: Literal["merged", "already merged"]
    survivor: str
    loser: str
    matched_by: str
    actor: str
    merged_at: datetime
    moved: dict[str, int]

    @classmethod
    def of(cls, merge: ContactMerge, *, already: bool = False) -> MergeView:
        """The view of an audit row."""
        return cls(
            status="already merged" if already else "merged",
            survivor=merge.survivor_id,
            loser=merge.loser_id,
            matched_by=merge.matched_by,
            actor=merge.actor,
            merged_at=merge.merged_at,
            moved=merge.moved,
        )
