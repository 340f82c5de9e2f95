"""Broadcasts: one message to a segment's current members, once or on a schedule.

A broadcast is a row of `broadcasts` (`models/tables.py`); each of its occurrences
(`once` for a one-off, the schedule's time for a recurring one) is one run of the
`broadcast` workflow (`workflows/broadcast.py`), whose audience is the segment's
members when the occurrence starts, written to `broadcast_recipients`. Every
message goes through the journeys' send activity, under the idempotency key
`broadcast-{name}/{occurrence}/{contact_id}`, logged as journey `broadcast:{name}`.

Times "in each contact's time zone" (`local_time`): the occurrence starts when the
wall-clock time comes in the earliest time zone (UTC+14), and each contact is due
when it comes in its own zone.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field

from models.messages import Channel, MessageCategory

NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,47}$"
"""A broadcast's name (and a segment's, until the segment catalogue checks those)."""
NAME_RULE = "1 to 48 lower-case letters, digits or '-', starting with a letter or digit"
_NAME = re.compile(NAME_PATTERN)

MAX_RATE = 1000
"""The most sends per second a broadcast may ask for."""
ONCE = "once"
"""The occurrence of a one-off broadcast."""
EARLIEST_ZONE = "Etc/GMT-14"
"""The time zone where a wall-clock time comes first (UTC+14): a local-time occurrence
starts when its time comes there."""
WORKFLOW_TYPE = "broadcast"
PREFIX = "broadcast-"
"""Workflow ids and schedule ids are `broadcast-{name}`; a schedule's runs append their time."""


class BroadcastStatus(StrEnum):
    """Where a broadcast is."""

    SCHEDULED = "scheduled"
    RUNNING = "running"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    DONE = "done"


class RecipientStatus(StrEnum):
    """Where one contact of an occurrence is (`broadcast_recipients.status`)."""

    QUEUED = "queued"
    DEFERRED = "deferred"
    SENT = "sent"
    REFUSED = "refused"
    FAILED = "failed"
    CANCELLED = "cancelled"


OPEN_STATUSES = (RecipientStatus.QUEUED, RecipientStatus.DEFERRED)
"""Recipients still to be sent."""


def name_refusal(value: str, what: str) -> str | None:
    """Why `value` is not a valid `what` name (`broadcast`, `segment`), or None."""
    if _NAME.fullmatch(value):
        return None
    return f"invalid {what} name {value!r}: use {NAME_RULE}"


def workflow_id(name: str, occurrence: str = ONCE) -> str:
    """The workflow id of an occurrence: `broadcast-{name}` (one-off) or with its time."""
    return f"{PREFIX}{name}" if occurrence == ONCE else f"{PREFIX}{name}-{occurrence}"


def journey_label(name: str) -> str:
    """The `journey` of the broadcast's message-log rows (and of `journeys report`)."""
    return f"broadcast:{name}"


def message_key(name: str, occurrence: str, contact_id: str) -> str:
    """The idempotency key of one contact's message of one occurrence."""
    return f"{PREFIX}{name}/{occurrence}/{contact_id}"


OCCURRENCE_FORMAT = "%Y%m%dT%H%M%SZ"
"""A scheduled run's occurrence id: its UTC time, safe in a message key and an outbox path."""


def occurrence_of(when: datetime) -> str:
    """The occurrence id of a scheduled run at `when`, e.g. `20260701T100000Z`."""
    return when.astimezone(UTC).strftime(OCCURRENCE_FORMAT)


def occurrence_time(occurrence: str) -> datetime:
    """When a scheduled occurrence was due (UTC)."""
    return datetime.strptime(occurrence, OCCURRENCE_FORMAT).replace(tzinfo=UTC)


def occurrence_from_workflow_id(name: str, workflow_id_: str) -> str:
    """The occurrence a workflow id names: the time a schedule appended, or `once`."""
    suffix = workflow_id_.removeprefix(f"{PREFIX}{name}").removeprefix("-")
    return occurrence_of(datetime.fromisoformat(suffix)) if suffix else ONCE


def local_start(wall: datetime) -> datetime:
    """When a wall-clock time (naive) first comes anywhere: in UTC+14 (UTC)."""
    return wall.replace(tzinfo=ZoneInfo(EARLIEST_ZONE)).astimezone(UTC)


def wall_time(scheduled: datetime) -> datetime:
    """The wall-clock time (naive) of a local-time schedule's run at `scheduled` (UTC+14)."""
    return scheduled.astimezone(ZoneInfo(EARLIEST_ZONE)).replace(tzinfo=None)


def due_at(wall: datetime | None, timezone: str, *, start: datetime) -> datetime:
    """When one contact is due: `start`, or the wall-clock time in its zone (not before `start`).

    Args:
        wall: The wall-clock time (naive) of a local-time occurrence; None: at once.
        timezone: The contact's IANA time zone (an unknown one counts as UTC).
        start: When the occurrence started.
    """
    if wall is None:
        return start
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    return max(start, wall.replace(tzinfo=zone).astimezone(UTC))


class BroadcastPlan(BaseModel):
    """What a broadcast sends, to whom and how fast: the workflow's input.

    Attributes:
        name: The broadcast's name.
        segment: Whose members get it.
        template: The template, e.g. `broadcasts/monthly-update`.
        channel: Email or SMS.
        category: Marketing (consent, suppressions, quiet hours, caps).
        send_at: A one-off's start (UTC); None: a schedule's run (starts at once).
        local_time: The time is a wall-clock time in each contact's zone.
        rate: Sends per second at most.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    segment: str
    template: str
    channel: Channel = Channel.EMAIL
    category: MessageCategory = MessageCategory.MARKETING
    send_at: datetime | None = None
    local_time: bool = False
    rate: int = Field(default=20, ge=1, le=MAX_RATE)


class BroadcastProgress(BaseModel):
    """An occurrence's progress, as the workflow shows it (query `progress`, current details).

    Attributes:
        name: The broadcast.
        occurrence: `once`, or the scheduled time.
        status: Scheduled, running, paused, cancelled or done.
        audience: Contacts in the snapshot (0 until it is taken).
        sent: Messages sent.
        deferred: Waiting for the end of quiet hours or a frequency cap (sent then, once).
        refused: Not sent by policy (no consent, suppressed, no address, sunset, gone).
        failed: Refused by the provider.
        cancelled: Not sent because the broadcast was cancelled.
        remaining: Still to send (queued or deferred).
        rate: Sends per second.
        starts_at: When it starts (sends begin).
    """

    name: str
    occurrence: str
    status: BroadcastStatus = BroadcastStatus.SCHEDULED
    audience: int = 0
    sent: int = 0
    deferred: int = 0
    refused: int = 0
    failed: int = 0
    cancelled: int = 0
    remaining: int = 0
    rate: int = 0
    starts_at: datetime | None = None


class BroadcastRun(BaseModel):
    """The input of one run of the workflow; continue-as-new carries it on.

    Attributes:
        plan: The broadcast.
        progress: Where the occurrence is (None: a first run).
        paused: It was paused when the run continued as new.
        cancelling: A cancellation was asked for.
    """

    plan: BroadcastPlan
    progress: BroadcastProgress | None = None
    paused: bool = False
    cancelling: bool = False


class SnapshotRequest(BaseModel):
    """Take an occurrence's audience: the segment's members now (`snapshot_audience`).

    Attributes:
        broadcast: The broadcast.
        occurrence: The occurrence.
        segment: Whose members.
        template: Checked first: a missing template stops the broadcast.
        channel: The template's channel.
        start: When the occurrence started (the earliest due time).
        wall: The wall-clock time of a local-time occurrence (naive); None: everyone at once.
    """

    model_config = ConfigDict(frozen=True)

    broadcast: str
    occurrence: str
    segment: str
    template: str
    channel: Channel
    start: datetime
    wall: datetime | None = None


class BatchRequest(BaseModel):
    """Send to the next recipients that are due (`send_broadcast_batch`).

    Attributes:
        plan: The broadcast.
        occurrence: The occurrence.
        limit: How many at most.
    """

    model_config = ConfigDict(frozen=True)

    plan: BroadcastPlan
    occurrence: str
    limit: int = Field(ge=1)


class Tally(BaseModel):
    """The recipients of an occurrence by status, and when the next deferred one is due.

    Attributes:
        counts: Recipients per `RecipientStatus`.
        next_due_at: The earliest due time of those still to send (None: none left).
        handled: Recipients the batch handled (0: nothing was due).
    """

    counts: dict[str, int] = Field(default_factory=dict)
    next_due_at: datetime | None = None
    handled: int = 0

    def count(self, status: RecipientStatus) -> int:
        """How many recipients have `status`."""
        return self.counts.get(status, 0)

    @property
    def remaining(self) -> int:
        """Recipients still to send."""
        return sum(self.count(status) for status in OPEN_STATUSES)


class CloseRequest(BaseModel):
    """Cancel what an occurrence has not sent (`cancel_broadcast_rest`).

    Attributes:
        broadcast: The broadcast.
        occurrence: The occurrence.
    """

    model_config = ConfigDict(frozen=True)

    broadcast: str
    occurrence: str


class StatusChange(BaseModel):
    """Record a broadcast's status (`record_broadcast_status`).

    Attributes:
        broadcast: The broadcast.
        status: Its new status.
    """

    model_config = ConfigDict(frozen=True)

    broadcast: str
    status: BroadcastStatus
