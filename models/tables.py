"""Database tables: the CRM of record (contacts) and the message log.

Rows never cross a workflow boundary; activities load them by id.
Schema changes go through Alembic migrations in `migrations/`.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    DateTime,
    Numeric,
    TypeDecorator,
    UniqueConstraint,
    event,
    inspect,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapper
from sqlmodel import Field, SQLModel

from models.events import BehaviorEvent


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware.

    SQLite keeps no offset; this makes both SQLite and PostgreSQL return aware
    UTC datetimes.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utc_now() -> datetime:
    """Current time, timezone-aware UTC (never call this in workflow code)."""
    return datetime.now(UTC)


def _timestamp(*, nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


class Contact(SQLModel, table=True):
    """A person journeys talk to.

    Consent is stored per channel with when and where it was given, as GDPR
    asks: marketing email needs `email_consent`, SMS needs `sms_consent`.
    """

    __tablename__ = "contacts"

    id: str = Field(primary_key=True, max_length=64)
    email: str | None = Field(default=None, max_length=320, index=True)
    phone: str | None = Field(default=None, max_length=32, index=True)
    first_name: str | None = Field(default=None, max_length=100)
    company: str | None = Field(default=None, max_length=200)
    timezone: str = Field(default="UTC", max_length=64)
    email_consent: bool = False
    email_consent_at: datetime | None = _timestamp()
    email_consent_source: str | None = Field(default=None, max_length=200)
    sms_consent: bool = False
    sms_consent_at: datetime | None = _timestamp()
    sms_consent_source: str | None = Field(default=None, max_length=200)
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    attributes: dict[str, str] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False, server_default="{}")
    )
    lead_score: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    fit_score: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    behavior_score: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    lifecycle_stage: str | None = Field(default=None, max_length=64, index=True)
    score_breakdown: dict[str, int] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False, server_default="{}")
    )
    owner_id: str | None = Field(default=None, max_length=64, index=True)
    owner_assigned_at: datetime | None = _timestamp()
    pipeline_stage: str | None = Field(default=None, max_length=32, index=True)
    segments_due_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True, index=True)
    )
    """When the contact's segments must be evaluated again (by the segment sweep): set to
    now on creation and by every write of the contact's fields (`_segments_due_on_change`), and by a
    refresh to the next moment a time window of a rule lapses (None: nothing pending)."""
    created_at: datetime = Field(
        default_factory=utc_now, sa_column=Column(UTCDateTime(), nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utc_now, sa_column=Column(UTCDateTime(), nullable=False)
    )


SEGMENT_NEUTRAL_FIELDS = frozenset({"segments_due_at", "updated_at"})
"""Contact fields no segment rule reads."""


@event.listens_for(Contact, "before_insert")
def _segments_due_on_creation(
    mapper: Mapper[Contact], connection: Connection, target: Contact
) -> None:
    """A new contact's segments are due now (unless its writer said when)."""
    if target.segments_due_at is None:
        target.segments_due_at = utc_now()


@event.listens_for(Contact, "before_update")
def _segments_due_on_change(
    mapper: Mapper[Contact], connection: Connection, target: Contact
) -> None:
    """A contact written with a field a rule may read: its segments are due now, unless the
    writer set when (the segment refresh itself)."""
    changed = {attr.key for attr in inspect(target).attrs if attr.history.has_changes()}
    if "segments_due_at" not in changed and changed - SEGMENT_NEUTRAL_FIELDS:
        target.segments_due_at = utc_now()


class ContactEvent(SQLModel, table=True):
    """A behaviour event the contact workflow accepted (each `event_id` once per contact).

    Written by the contact workflow's ingest activity; `batch_key` makes a
    retried ingest recognise the rows it wrote itself.
    """

    __tablename__ = "events"
    __table_args__ = (UniqueConstraint("contact_id", "event_id"),)

    id: int | None = Field(default=None, primary_key=True)
    contact_id: str = Field(max_length=64, index=True)
    event_id: str = Field(max_length=128)
    type: str = Field(max_length=64, index=True)
    occurred_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    properties: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    batch_key: str = Field(max_length=200)
    received_at: datetime = Field(
        default_factory=utc_now, sa_column=Column(UTCDateTime(), nullable=False)
    )

    @classmethod
    def of(cls, event: BehaviorEvent, batch_key: str) -> ContactEvent:
        """The row that stores `event`, written by the batch `batch_key`."""
        return cls(
            contact_id=event.contact_id,
            event_id=event.event_id,
            type=event.type,
            occurred_at=event.occurred_at,
            properties=event.properties,
            batch_key=batch_key,
        )

    def behavior_event(self) -> BehaviorEvent:
        """The behaviour event the row holds."""
        return BehaviorEvent(
            event_id=self.event_id,
            contact_id=self.contact_id,
            type=self.type,
            occurred_at=self.occurred_at,
            properties=self.properties,
        )


class EventReceipt(SQLModel, table=True):
    """An event the gateway handed to Temporal (each `event_id` once per contact).

    Written after Temporal accepted the signal, so a client's retry is answered
    `duplicate` at once, even before the contact workflow has stored the event.
    `digest` (type and properties) tells a retry from a different event that
    reuses the id.
    """

    __tablename__ = "event_receipts"
    __table_args__ = (UniqueConstraint("contact_id", "event_id"),)

    id: int | None = Field(default=None, primary_key=True)
    contact_id: str = Field(max_length=64, index=True)
    event_id: str = Field(max_length=128)
    digest: str = Field(max_length=64)
    accepted_at: datetime = Field(
        default_factory=utc_now, sa_column=Column(UTCDateTime(), nullable=False)
    )


class JourneyRun(SQLModel, table=True):
    """One run of a journey for a contact: when it started, how it ended (the funnel's source).

    Also the lasting record that a contact entered a journey: a once-per-contact
    journey is not started again for a workflow id found here, long after
    Temporal's retention has deleted the closed workflow.
    """

    __tablename__ = "journey_runs"

    id: int | None = Field(default=None, primary_key=True)
    run_key: str = Field(max_length=300, unique=True)
    workflow_id: str = Field(max_length=200, index=True)
    journey: str = Field(max_length=64, index=True)
    contact_id: str = Field(max_length=64, index=True)
    status: str = Field(max_length=16, index=True)
    step: str = Field(max_length=64)
    exit_reason: str | None = Field(default=None, max_length=200)
    messages_sent: int = 0
    started_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    ended_at: datetime | None = _timestamp()


class MessageLog(SQLModel, table=True):
    """One row per message a journey sends (the outbox of record).

    The row is written, keyed by `idempotency_key`, before the provider is
    called; a retried send finds it and does not deliver again.
    """

    __tablename__ = "message_log"

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(max_length=300, unique=True)
    contact_id: str = Field(max_length=64, index=True)
    journey: str = Field(max_length=64, index=True)
    step: str = Field(max_length=64)
    channel: str = Field(max_length=16)
    category: str = Field(default="marketing", max_length=16)
    template: str = Field(max_length=200)
    subject: str | None = Field(default=None, max_length=500)
    status: str = Field(max_length=32, index=True)
    status_reason: str | None = Field(default=None, max_length=500)
    provider: str | None = Field(default=None, max_length=32)
    provider_message_id: str | None = Field(default=None, max_length=300)
    created_at: datetime = Field(
        default_factory=utc_now, sa_column=Column(UTCDateTime(), nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utc_now, sa_column=Column(UTCDateTime(), nullable=False)
    )
    sent_at: datetime | None = _timestamp()


MARKETING_ONLY_SUPPRESSIONS = frozenset({("email", "unsubscribed"), ("sms", "unsubscribed")})
"""(channel, reason) of suppressions that stop marketing only: an unsubscribe is a
marketing opt-out, and service messages (a renewal reminder) still go. Every other
reason (a hard bounce, an invalid recipient, a complaint, an erasure, an SMS STOP,
which carriers say ends every text) stops every message on the channel."""


SuppressionScheme = Literal["hmac-sha256", "sha256"]
"""How a suppression's address hash was made: keyed (HMAC-SHA256 with
`SUPPRESSION_HASH_SECRET`), or bare SHA-256 (rows written before revision 0009)."""


class Suppression(SQLModel, table=True):
    """An address that must not be messaged again on a channel.

    Only a keyed hash of the normalised address is kept, so the entry survives
    the erasure of the contact's personal data and still stops a re-import
    from being mailed, while a leaked table cannot be reversed with a
    dictionary of addresses. Rows from before revision 0009 hold a bare
    SHA-256 (`scheme` `sha256`, the column's server default): they are still
    matched, and rewritten keyed when their address is next seen (see
    `rules/suppressions.py`).
    An unsubscribe stops marketing; every other reason stops service messages
    too (`stops_service_messages`).
    """

    __tablename__ = "suppressions"
    __table_args__ = (UniqueConstraint("channel", "address_hash"),)

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=16)
    address_hash: str = Field(max_length=64)
    scheme: str = Field(
        default="hmac-sha256", max_length=16, sa_column_kwargs={"server_default": "sha256"}
    )
    reason: str = Field(max_length=64)
    contact_id: str | None = Field(default=None, max_length=64, index=True)
    created_at: datetime = Field(
        default_factory=utc_now, sa_column=Column(UTCDateTime(), nullable=False)
    )

    @property
    def stops_service_messages(self) -> bool:
        """Whether transactional messages are stopped too (see `MARKETING_ONLY_SUPPRESSIONS`)."""
        return self.reason_stops_service(self.channel, self.reason)

    @staticmethod
    def reason_stops_service(channel: str, reason: str) -> bool:
        """Whether a suppression of `reason` on `channel` stops service messages too."""
        return (channel, reason) not in MARKETING_ONLY_SUPPRESSIONS

    @staticmethod
    def hash_address(address: str, *, key: bytes) -> str:
        """HMAC-SHA256 of the address (trimmed, lower-cased) under `key`."""
        return hmac.new(key, _normalised(address), hashlib.sha256).hexdigest()

    @staticmethod
    def legacy_hash(address: str) -> str:
        """Bare SHA-256 of the address, as rows of scheme `sha256` hold it."""
        return hashlib.sha256(_normalised(address)).hexdigest()


def _normalised(address: str) -> bytes:
    return address.strip().lower().encode()


class ErasedContact(SQLModel, table=True):
    """The tombstone of an erased contact: its id and when, nothing personal.

    Written in the same transaction that deletes the contact's data. Later
    events, enrolments and upserts of the id are refused (410), and a contact
    workflow started for it anyway ends without storing anything.
    """

    __tablename__ = "erased_contacts"

    contact_id: str = Field(primary_key=True, max_length=64)
    erased_at: datetime = Field(
        default_factory=utc_now, sa_column=Column(UTCDateTime(), nullable=False)
    )


class ConsentChange(SQLModel, table=True):
    """One change of a contact's marketing consent on a channel (append-only history).

    Written by every path that grants or withdraws consent: `PUT
    /v1/contacts` (and `journeys contact upsert`), the unsubscribe link, an
    SMS keyword, an `unsubscribed` event and a complaint. Rows are never
    updated; erasure deletes them with the contact. `change_key` makes a path
    that may run twice for one cause (an event seen by the gateway and by the
    contact workflow, a redelivered webhook) record it once.

    Attributes:
        contact_id: Whose consent.
        channel: `email` or `sms`.
        granted: True for an opt-in, False for an opt-out.
        occurred_at: When the contact gave or withdrew it.
        source: Where: `form:lead-magnet` (as the API was told), `unsubscribe-link`,
            `list-unsubscribe`, `sms-keyword`, `event`, `complaint`.
        wording: What the contact agreed to or said: the consent text or purpose
            given to the API, the keyword texted, the page's wording.
        ip: The IP address the change came from, where known.
        user_agent: The browser's user agent, where known.
        change_key: Identifies the cause (an event id, an inbound message id), if any.
        recorded_at: When this row was written.
    """

    __tablename__ = "consent_changes"
    __table_args__ = (UniqueConstraint("contact_id", "change_key"),)

    id: int | None = Field(default=None, primary_key=True)
    contact_id: str = Field(max_length=64, index=True)
    channel: str = Field(max_length=16)
    granted: bool
    occurred_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    source: str = Field(max_length=200)
    wording: str | None = Field(default=None, max_length=1000)
    ip: str | None = Field(default=None, max_length=45)
    user_agent: str | None = Field(default=None, max_length=500)
    change_key: str | None = Field(default=None, max_length=300)
    recorded_at: datetime = Field(
        default_factory=utc_now, sa_column=Column(UTCDateTime(), nullable=False)
    )


class CrmTask(SQLModel, table=True):
    """A task for someone on the account team (renewal follow-ups, escalations).

    Opened by the CRM activity, once per `idempotency_key` (`{workflow_id}/{step}`):
    a retried or replayed request finds the row and opens nothing new.
    """

    __tablename__ = "crm_tasks"

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(max_length=300, unique=True)
    contact_id: str = Field(max_length=64, index=True)
    kind: str = Field(max_length=32)
    assignee_role: str = Field(max_length=32)
    assignee_id: str | None = Field(default=None, max_length=64, index=True)
    title: str = Field(max_length=200)
    details: str = Field(default="", max_length=2000)
    due_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    priority: str = Field(default="normal", max_length=16)
    status: str = Field(default="open", max_length=16, index=True)
    created_at: datetime = Field(
        default_factory=utc_now, sa_column=Column(UTCDateTime(), nullable=False)
    )


class Notification(SQLModel, table=True):
    """A notification to someone on the sales team (hand-off, reminder, escalation).

    The row is written, keyed by `idempotency_key`, before the notifier is
    called; a retry finds it `sent` and does not notify again.
    """

    __tablename__ = "notifications"

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(max_length=300, unique=True)
    contact_id: str = Field(max_length=64, index=True)
    recipient_id: str = Field(max_length=64)
    kind: str = Field(max_length=32)
    title: str = Field(max_length=200)
    text: str = Field(max_length=4000)
    status: str = Field(default="pending", max_length=16)
    provider: str | None = Field(default=None, max_length=32)
    created_at: datetime = Field(
        default_factory=utc_now, sa_column=Column(UTCDateTime(), nullable=False)
    )
    sent_at: datetime | None = _timestamp()


class SlaBreach(SQLModel, table=True):
    """A hand-off SLA that ran out (first touch or qualification), once per key."""

    __tablename__ = "sla_breaches"

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(max_length=300, unique=True)
    contact_id: str = Field(max_length=64, index=True)
    owner_id: str = Field(max_length=64, index=True)
    sla: str = Field(max_length=32)
    due_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    breached_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class PipelineTransition(SQLModel, table=True):
    """A contact's move to a pipeline stage (`models.pipeline.PipelineStage`), with its cause.

    Written once per `idempotency_key` (`rules/pipeline.py: record_transition`); the
    contact's `pipeline_stage` is its latest stage. The report's pipeline section
    (conversion rates, times between stages) is computed from these rows.
    """

    __tablename__ = "pipeline_transitions"

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(max_length=300, unique=True)
    contact_id: str = Field(max_length=64, index=True)
    stage: str = Field(max_length=32, index=True)
    previous_stage: str | None = Field(default=None, max_length=32)
    cause: str = Field(max_length=200)
    occurred_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))


class Deal(SQLModel, table=True):
    """A deal opened when a lead is qualified (`lead_qualified`; `rules/deals.py`).

    `stage` is one of `deals.toml`'s stages; `status` is `open`, `won` or `lost`
    (`models.deals.DealStatus`). The times are the events': `created_at` when the
    lead was qualified, `updated_at` its last change, `closed_at` when it was won
    or lost. Each change is a `DealStageChange`.
    """

    __tablename__ = "deals"

    id: int | None = Field(default=None, primary_key=True)
    contact_id: str = Field(max_length=64, index=True)
    owner_id: str | None = Field(default=None, max_length=64, index=True)
    amount: Decimal | None = Field(default=None, sa_column=Column(Numeric(15, 3), nullable=True))
    currency: str | None = Field(default=None, max_length=3)
    stage: str = Field(max_length=64)
    use_case: str | None = Field(default=None, max_length=200)
    competitors: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    status: str = Field(default="open", max_length=8, index=True)
    lost_reason: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    closed_at: datetime | None = _timestamp()


class DealStageChange(SQLModel, table=True):
    """One change of a deal: opened, moved to a stage, won or lost; once per event.

    Unique per contact and event id: a retried or redelivered event finds its
    row and changes nothing again.
    """

    __tablename__ = "deal_stage_changes"
    __table_args__ = (UniqueConstraint("contact_id", "event_id"),)

    id: int | None = Field(default=None, primary_key=True)
    deal_id: int = Field(index=True)
    contact_id: str = Field(max_length=64, index=True)
    event_id: str = Field(max_length=128)
    event_type: str = Field(max_length=64)
    from_stage: str | None = Field(default=None, max_length=64)
    to_stage: str = Field(max_length=64)
    status: str = Field(max_length=8)
    occurred_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    recorded_at: datetime = Field(
        default_factory=utc_now, sa_column=Column(UTCDateTime(), nullable=False)
    )


class RepAssignment(SQLModel, table=True):
    """Round-robin bookkeeping: how many leads each rep got, and when the last one."""

    __tablename__ = "rep_assignments"

    rep_id: str = Field(primary_key=True, max_length=64)
    assigned_count: int = 0
    last_assigned_at: datetime | None = _timestamp()


class DataKey(SQLModel, table=True):
    """The data key that encrypts one contact's Temporal payloads (or a namespace's).

    `owner` is a contact id, or `namespace:<name>` for payloads that belong to
    no contact. The key is stored wrapped (AES-256-GCM) by the master key
    `master_key_id`. Erasure destroys it: `wrapped_key` becomes NULL and
    `destroyed_at` is set; the row stays so that payloads written later for
    the contact are encrypted with a throwaway key (never readable) rather
    than a new readable one (see `runtime/keys.py`).
    """

    __tablename__ = "data_keys"

    id: str = Field(primary_key=True, max_length=32)
    owner: str = Field(max_length=128, unique=True)
    master_key_id: str | None = Field(default=None, max_length=64, index=True)
    wrapped_key: bytes | None = None
    created_at: datetime = Field(
        default_factory=utc_now, sa_column=Column(UTCDateTime(), nullable=False)
    )
    destroyed_at: datetime | None = _timestamp()


class ContactAlias(SQLModel, table=True):
    """Another id of a contact: a lead merged into it (`starter/services/dedupe.py`).

    Events, upserts and merges addressed to `alias` land on `contact_id` (the
    survivor). Erasure of the survivor deletes its aliases and tombstones them.
    """

    __tablename__ = "contact_aliases"

    alias: str = Field(primary_key=True, max_length=64)
    contact_id: str = Field(max_length=64, index=True)
    created_at: datetime = Field(
        default_factory=utc_now, sa_column=Column(UTCDateTime(), nullable=False)
    )


class ContactMerge(SQLModel, table=True):
    """The audit row of one merge: a lead (`loser_id`) folded into `survivor_id`.

    Attributes:
        survivor_id: The contact that stays.
        loser_id: The id merged into it (now an alias of the survivor).
        matched_by: `email` or `domain+name` (found on entry), or `request`.
        actor: Who: the API key's name (`api:<name>`) or the CLI user (`cli:<user>`).
        merged_at: When.
        loser_created_at: When the loser was created as a contact (a merge on request);
            None for a lead merged on entry (it entered at `merged_at`).
        moved: Rows moved to the survivor, per table.
        signalled_at: When the contact workflows were told (the survivor absorbed the
            loser's scored actions, the loser's journeys ended); None until then.
    """

    __tablename__ = "contact_merges"

    id: int | None = Field(default=None, primary_key=True)
    survivor_id: str = Field(max_length=64, index=True)
    loser_id: str = Field(max_length=64, unique=True)
    matched_by: str = Field(max_length=16)
    actor: str = Field(max_length=100)
    merged_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))
    loser_created_at: datetime | None = _timestamp()
    moved: dict[str, int] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    signalled_at: datetime | None = _timestamp()


class ExperimentExposure(SQLModel, table=True):
    """A contact's arm in an experiment, recorded once, when it was first assigned.

    Attributes:
        experiment: The experiment's name (`models/experiments.py`).
        contact_id: The contact.
        arm: Its arm: a declared arm or `holdout`.
        journey: The journey that declares the experiment.
        workflow_id: The run that recorded it (the journey, or `contact-{id}` at the trigger).
        exposed_at: When (the conversion window counts from here).
    """

    __tablename__ = "experiment_exposures"
    __table_args__ = (UniqueConstraint("experiment", "contact_id"),)

    id: int | None = Field(default=None, primary_key=True)
    experiment: str = Field(max_length=64, index=True)
    contact_id: str = Field(max_length=64, index=True)
    arm: str = Field(max_length=32)
    journey: str = Field(max_length=64)
    workflow_id: str = Field(max_length=200)
    exposed_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class ExperimentDecision(SQLModel, table=True):
    """The audit row of an experiment stopped: who, when, and the winner (None: control).

    From `decided_at` on, every new entrant gets `winner` (or control) and no exposure.
    """

    __tablename__ = "experiment_decisions"

    id: int | None = Field(default=None, primary_key=True)
    experiment: str = Field(max_length=64, unique=True)
    winner: str | None = Field(default=None, max_length=32)
    decided_by: str = Field(max_length=100)
    decided_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    note: str | None = Field(default=None, max_length=500)


class SegmentDefinition(SQLModel, table=True):
    """A segment defined through the API (those in the segments file are not stored here).

    Attributes:
        name: The segment's name (`models/segments.py`), unique across file and API.
        title: What it is, for people.
        rule: Its rule, as `models.segments.SegmentRule` dumps it (JSON).
        defined_by: Who defined it last (`api:<key name>`, `cli:<user>`).
        created_at: When it was first defined.
        updated_at: When its rule last changed.
    """

    __tablename__ = "segments"

    name: str = Field(primary_key=True, max_length=64)
    title: str = Field(default="", max_length=200)
    rule: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    defined_by: str = Field(max_length=100)
    created_at: datetime = Field(
        default_factory=utc_now, sa_column=Column(UTCDateTime(), nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utc_now, sa_column=Column(UTCDateTime(), nullable=False)
    )


class SegmentMember(SQLModel, table=True):
    """A contact in a segment now, since `entered_at` (one row per segment and contact).

    A segment's count is the count of its rows; leaving deletes the row (the
    `segment_changes` row keeps the history).
    """

    __tablename__ = "segment_members"

    segment: str = Field(primary_key=True, max_length=64)
    contact_id: str = Field(primary_key=True, max_length=64, index=True)
    entered_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class SegmentChange(SQLModel, table=True):
    """A contact entering or leaving a segment, with when (append-only history).

    Attributes:
        segment: The segment.
        contact_id: The contact.
        change: `entered` or `left`.
        occurred_at: When the membership changed.
        event_id: The id of the `segment_entered` / `segment_left` event told to the
            contact workflow, when a journey follows the segment; None otherwise.
        delivered_at: When that event was handed to Temporal; None until then (the
            segment sweep delivers what is left).
    """

    __tablename__ = "segment_changes"

    id: int | None = Field(default=None, primary_key=True)
    segment: str = Field(max_length=64, index=True)
    contact_id: str = Field(max_length=64, index=True)
    change: str = Field(max_length=8)
    occurred_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))
    event_id: str | None = Field(default=None, max_length=128)
    delivered_at: datetime | None = _timestamp()


class SegmentEvaluation(SQLModel, table=True):
    """The definition of a segment whose membership was last computed over every contact.

    A segment whose rule digest differs (new, or changed) is evaluated over all
    contacts by the next sweep; until then its members are those of the old rule.
    """

    __tablename__ = "segment_evaluations"

    segment: str = Field(primary_key=True, max_length=64)
    digest: str = Field(max_length=64)
    evaluated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class Broadcast(SQLModel, table=True):
    """A message to a segment's members: once at a time, or on a schedule (`models/broadcasts.py`).

    Attributes:
        name: The broadcast's name: its workflow id is `broadcast-{name}` (one-off) or
            `broadcast-{name}-{occurrence}` (its schedule's runs); its messages are logged
            under the journey `broadcast:{name}`.
        segment: Whose current members get it (`segment_members`), snapshot at each start.
        template: The template sent, e.g. `broadcasts/monthly-update`.
        channel: `email` or `sms`.
        category: `marketing` (consent, suppressions, quiet hours, caps).
        send_at: A one-off's time (UTC); with `local_time`, the wall-clock time it shows
            in each contact's time zone (stored as if it were UTC).
        schedule: A recurring broadcast's cron expression (None: one-off).
        local_time: Each contact gets it at the given wall-clock time in its own zone.
        rate: Sends per second at most.
        status: `scheduled`, `running`, `paused`, `cancelled` or `done`.
        created_by: Who created it (`api:<key name>`, `cli:<user>`).
        created_at: When.
        updated_at: When its status last changed.
    """

    __tablename__ = "broadcasts"

    name: str = Field(primary_key=True, max_length=48)
    segment: str = Field(max_length=64, index=True)
    template: str = Field(max_length=200)
    channel: str = Field(default="email", max_length=16)
    category: str = Field(default="marketing", max_length=16)
    send_at: datetime | None = _timestamp()
    schedule: str | None = Field(default=None, max_length=100)
    local_time: bool = False
    rate: int
    status: str = Field(max_length=16, index=True)
    created_by: str = Field(max_length=100)
    created_at: datetime = Field(
        default_factory=utc_now, sa_column=Column(UTCDateTime(), nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utc_now, sa_column=Column(UTCDateTime(), nullable=False)
    )


class BroadcastRecipient(SQLModel, table=True):
    """One contact of one occurrence of a broadcast: the audience snapshot and its progress.

    Written once when the occurrence starts (the segment's members then), so the audience
    never changes under a running broadcast and never crosses a workflow boundary.

    Attributes:
        broadcast: The broadcast's name.
        occurrence: `once`, or the schedule's time of the run (e.g. `20260701T100000Z`).
        contact_id: The contact.
        due_at: When it may be sent (its local time, or later: deferred by quiet hours or
            a frequency cap).
        status: `queued`, `deferred`, `sent`, `refused` (consent, suppression, no address,
            sunset, contact gone), `failed` (the provider refused it) or `cancelled`.
        reason: Why, for a status other than `queued` and `sent`.
        updated_at: When the status last changed.
    """

    __tablename__ = "broadcast_recipients"

    broadcast: str = Field(primary_key=True, max_length=48)
    occurrence: str = Field(primary_key=True, max_length=32)
    contact_id: str = Field(primary_key=True, max_length=64)
    due_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))
    status: str = Field(max_length=16, index=True)
    reason: str | None = Field(default=None, max_length=500)
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class SendPause(SQLModel, table=True):
    """A journey's marketing sends stopped: by the deliverability guard's circuit breaker
    (a bounce or complaint spike) or by an operator, until an operator resumes them.

    Attributes:
        journey: The journey paused.
        paused_at: When.
        paused_by: `deliverability-guard`, or the operator who paused it.
        reason: Why, with the figures (`bounce rate 8.0% on day0 …`).
        resumed_at: When an operator resumed the sends; none while paused.
        resumed_by: Who resumed them.
    """

    __tablename__ = "send_pauses"

    id: int | None = Field(default=None, primary_key=True)
    journey: str = Field(max_length=64, index=True)
    paused_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    paused_by: str = Field(max_length=100)
    reason: str = Field(max_length=500)
    resumed_at: datetime | None = _timestamp()
    resumed_by: str | None = Field(default=None, max_length=100)


class DeliverabilityAlert(SQLModel, table=True):
    """A journey step's rate past its limit, as the deliverability guard found it.

    One open alert per `key` (`journey/step/metric`): raised (and its owner notified)
    when the rate passes the limit, cleared when a later check finds it back within.

    Attributes:
        key: `journey/step/metric`.
        journey: The journey.
        step: The step.
        metric: `bounce`, `complaint`, `unsubscribe`, `open` or `click`.
        rate: The rate when raised.
        limit: The limit it passed.
        sent: The emails it was measured on.
        pauses: Whether it passed the pause limit.
        raised_at: When.
        notified_at: When the owner was notified; none until then.
        cleared_at: When a check found the rate back within the limit.
    """

    __tablename__ = "deliverability_alerts"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=200, index=True)
    journey: str = Field(max_length=64, index=True)
    step: str = Field(max_length=64)
    metric: str = Field(max_length=16)
    rate: float
    limit: float
    sent: int
    pauses: bool = False
    raised_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    notified_at: datetime | None = _timestamp()
    cleared_at: datetime | None = _timestamp()
