"""`journeys simulate`: run a real journey on the time-skipping test server and read its timeline.

What runs is what production runs: the worker (`worker.build_worker`: every
workflow and activity, the templates, the messaging policy of the settings:
quiet hours and frequency caps), the contact workflow that events go through
(`starter.services.intake.accept_events`), enrolment as `journeys enroll` does it
(`starter.services.operations.enroll`). Only the surroundings are temporary: a SQLite
database, an outbox folder and a task queue of its own; providers are the
outbox, so nothing leaves the machine.

The timeline is recorded by an activity interceptor on the worker (`Recorder`):
every `send_message` with its outcome (sent, deferred until when and why,
suppressed or skipped and why), deferred messages called off, other side
effects (CRM tasks, hand-off, escalations), journeys started for the contact,
and the journey's end from its run log (completed, or exited and why). Times
are shown in journey time (`Day N + hh:mm` from enrolment) and in the
contact's local time.

The journey starts at `start` (a local time of the contact, 10:00 by default)
on the next day it comes, so quiet hours fall where they would for a real
contact, whatever the time of day the simulation runs.

The journey authors' test kit (`tests/kit.py`) records timelines with the same
`Recorder` and `timeline_of`.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio import client as temporal_client
from temporalio import worker as temporal_worker
from temporalio.testing import WorkflowEnvironment

from models.contacts import ContactProfile
from models.events import BehaviorEvent
from models.experiments import ArmAssignment, ArmRequest
from models.journeys import JourneyInput, JourneyRunRecord, JourneyState, JourneyStatus
from models.messages import CancelRequest, DeliveryStatus, SendRequest, SendResult
from models.settings import Settings
from starter.services.operations import InvalidRequest, OperationError

_OFFSET = re.compile(r"(\d+(?:\.\d+)?)([dhms])")
_UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
_BOOKKEEPING = frozenset(
    {"record_journey_run", "journey_entered", "lead_status", "ingest_events", "scoring_model"}
)
"""Activities that are not a step of the journey (the run log, reads, the contact's intake)."""
_SETTLE = timedelta(seconds=1)
"""Time skipped past a wake-up, so the journey's timer has fired when it is asked again."""
RESULT_TIMEOUT = timedelta(minutes=3)
"""How long (real time) a simulated journey may take before the server is taken as stuck."""


class SimulationFailed(OperationError):
    """The simulation could not run to the end; the message says what to do."""


@dataclass(frozen=True)
class ScheduledEvent:
    """A behaviour event at an offset in journey time from enrolment (`2d:email_opened`)."""

    offset: timedelta
    type: str
    properties: Mapping[str, Any] = field(default_factory=dict)


def parse_offset(text: str) -> timedelta:
    """`2d`, `3d12h`, `30m`, `90s` (units d, h, m, s, in any combination) as a duration.

    Raises:
        InvalidRequest: not such a duration.
    """
    parts = _OFFSET.findall(text)
    if not text or "".join(number + unit for number, unit in parts) != text:
        raise InvalidRequest(f"offset {text!r}: expected e.g. 2d, 3d12h, 30m or 90s")
    return sum((timedelta(**{_UNITS[unit]: float(number)}) for number, unit in parts), timedelta(0))


def parse_event(spec: str) -> ScheduledEvent:
    """`<offset>:<event type>`, e.g. `3d12h:purchased`.

    Raises:
        InvalidRequest: naming the malformed part.
    """
    offset, separator, event_type = spec.partition(":")
    if not separator or not re.fullmatch(r"[a-z][a-z0-9_]*", event_type):
        raise InvalidRequest(
            f"--event {spec!r}: expected <offset>:<event type>, e.g. 2d:email_opened"
        )
    return ScheduledEvent(offset=parse_offset(offset), type=event_type)


@dataclass(frozen=True)
class ActivityRecord:
    """One completed activity of the worker: what it was asked and answered, and when."""

    activity_type: str
    workflow_id: str
    at: datetime
    args: Sequence[Any]
    result: Any


class Recorder(temporal_client.Interceptor, temporal_worker.Interceptor):
    """Records every activity a worker completes (give it to the client the worker uses)."""

    def __init__(self) -> None:
        """Start with nothing recorded."""
        self.records: list[ActivityRecord] = []

    def intercept_activity(
        self, next: temporal_worker.ActivityInboundInterceptor
    ) -> temporal_worker.ActivityInboundInterceptor:
        """Wrap the worker's activity calls."""
        return _RecordActivity(next, self.records)

    def client(self, client: temporal_client.Client) -> temporal_client.Client:
        """`client` with this recorder added (same connection, converter and namespace)."""
        config = client.config()
        config["interceptors"] = [*config["interceptors"], self]
        return temporal_client.Client(**config)


class _RecordActivity(temporal_worker.ActivityInboundInterceptor):
    def __init__(
        self, next: temporal_worker.ActivityInboundInterceptor, records: list[ActivityRecord]
    ) -> None:
        super().__init__(next)
        self._records = records

    async def execute_activity(self, input: temporal_worker.ExecuteActivityInput) -> Any:
        info = activity.info()
        result = await super().execute_activity(input)
        self._records.append(
            ActivityRecord(
                activity_type=info.activity_type,
                workflow_id=info.workflow_id or "",
                at=info.current_attempt_scheduled_time,
                args=list(input.args),
                result=result,
            )
        )
        return result


@dataclass(frozen=True)
class TimelineEntry:
    """One thing that happened in a simulated journey.

    Attributes:
        at: When, UTC.
        day: Journey time from enrolment, `Day 2 + 00:30`.
        local: The contact's local time, `2026-03-04 10:30 PST`.
        kind: `sent`, `deferred`, `suppressed`, `skipped_no_consent`,
            `skipped_no_address`, `failed`, `cancelled`, `event`, `split` (the
            contact's arm in an experiment), `action`, `started`, `exited` or `completed`.
        step: The journey step, where there is one.
        detail: What: the channel and template, the event type, the activity,
            the journey started.
        reason: Why it was deferred, suppressed, skipped, cancelled; why it exited.
        until: A deferred message: when it may go out, in the contact's local time.
    """

    at: datetime
    day: str
    local: str
    kind: str
    step: str | None = None
    detail: str = ""
    reason: str | None = None
    until: str | None = None


@dataclass(frozen=True)
class Timeline:
    """What a simulated journey did, in order, and how it ended."""

    journey: str
    workflow_id: str
    contact_id: str
    timezone: str
    enrolled_at: datetime
    entries: list[TimelineEntry]
    status: str
    exit_reason: str | None = None

    @property
    def sent(self) -> list[str]:
        """The steps whose message was sent, in order."""
        return [entry.step or "" for entry in self.entries if entry.kind == "sent"]

    def of_kind(self, kind: str) -> list[TimelineEntry]:
        """The entries of one kind (`deferred`, `sent`…)."""
        return [entry for entry in self.entries if entry.kind == kind]


def journey_day(enrolled_at: datetime, at: datetime) -> str:
    """`Day N + hh:mm` of `at` on a journey enrolled at `enrolled_at`."""
    minutes = round(max(at - enrolled_at, timedelta(0)).total_seconds() / 60)
    days, minutes = divmod(minutes, 24 * 60)
    return f"Day {days} + {minutes // 60:02d}:{minutes % 60:02d}"


def local_time(at: datetime, timezone: str) -> str:
    """`at` in the contact's time zone, `2026-03-04 10:30 PST`."""
    return f"{at.astimezone(ZoneInfo(timezone)):%Y-%m-%d %H:%M %Z}"


def timeline_of(
    records: Sequence[ActivityRecord],
    *,
    workflow_id: str,
    contact_id: str,
    timezone: str = "UTC",
    events: Sequence[BehaviorEvent] = (),
) -> Timeline:
    """The timeline of the journey `workflow_id` from what the worker recorded."""
    ours = [r for r in records if r.workflow_id == workflow_id]
    runs = [r.args[0] for r in ours if r.activity_type == "record_journey_run"]
    enrolled_at = runs[0].at if runs else min((r.at for r in ours), default=datetime.now(UTC))
    raw = [_Raw(event.occurred_at, "event", detail=event.type) for event in events]
    for record in records:
        raw += _entries_of(record, workflow_id=workflow_id, contact_id=contact_id)
    ended = next((run for run in reversed(runs) if run.status != JourneyStatus.RUNNING), None)
    if ended is not None:
        kind = "completed" if ended.status == JourneyStatus.COMPLETED else "exited"
        raw.append(_Raw(ended.at, kind, step=ended.step, reason=ended.exit_reason))
    entries = [
        TimelineEntry(
            at=entry.at,
            day=journey_day(enrolled_at, entry.at),
            local=local_time(entry.at, timezone),
            kind=entry.kind,
            step=entry.step,
            detail=entry.detail,
            reason=entry.reason,
            until=local_time(entry.until, timezone) if entry.until else None,
        )
        for entry in sorted(raw, key=lambda entry: entry.at)
    ]
    return Timeline(
        journey=runs[0].journey if runs else workflow_id,
        workflow_id=workflow_id,
        contact_id=contact_id,
        timezone=timezone,
        enrolled_at=enrolled_at,
        entries=entries,
        status=str(ended.status) if ended else str(JourneyStatus.RUNNING),
        exit_reason=ended.exit_reason if ended else None,
    )


@dataclass(frozen=True)
class _Raw:
    """A timeline entry before its times are formatted."""

    at: datetime
    kind: str
    step: str | None = None
    detail: str = ""
    reason: str | None = None
    until: datetime | None = None


def _entries_of(record: ActivityRecord, *, workflow_id: str, contact_id: str) -> list[_Raw]:
    """The timeline entries of one activity (none for bookkeeping and other workflows)."""
    argument = record.args[0] if record.args else None
    if isinstance(argument, JourneyRunRecord):
        started = (
            argument.workflow_id != workflow_id
            and argument.contact_id == contact_id
            and argument.status == JourneyStatus.RUNNING
        )
        return [_Raw(argument.at, "started", detail=argument.workflow_id)] if started else []
    if record.workflow_id != workflow_id or record.activity_type in _BOOKKEEPING:
        return []
    result = record.result
    if isinstance(argument, SendRequest) and isinstance(result, SendResult):
        deferred = result.status == DeliveryStatus.DEFERRED
        reason = result.reason.split(" until ")[0] if deferred and result.reason else result.reason
        return [
            _Raw(
                record.at,
                str(result.status),
                step=argument.step,
                detail=f"{argument.channel} {argument.template}",
                reason=reason,
                until=result.deferred_until,
            )
        ]
    if isinstance(argument, CancelRequest):
        return [_Raw(record.at, "cancelled", reason=argument.reason)]
    if isinstance(argument, ArmRequest) and isinstance(result, ArmAssignment):
        detail = f"{argument.experiment}: arm {result.arm}"
        return [_Raw(argument.at, "split", detail=detail, reason=result.reason)]
    return [_Raw(record.at, "action", detail=record.activity_type)]


@dataclass(frozen=True)
class Simulation:
    """What to simulate: the journey, for whom, with which events and options.

    Attributes:
        journey: Journey name.
        contact: The contact (stored in the simulation's database).
        events: Behaviour events at their offsets from enrolment.
        options: The journey's input fields (`journeys enroll` options).
        start: Local time of the contact at which the journey starts.
    """

    journey: str
    contact: ContactProfile
    events: Sequence[ScheduledEvent] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    start: time | None = time(10, 0)


async def run_simulation(
    env: WorkflowEnvironment,
    engine: AsyncEngine,
    settings: Settings,
    recorder: Recorder,
    simulation: Simulation,
) -> Timeline:
    """Enrol the contact, signal the events on time, and wait for the journey to end.

    A worker for `settings.task_queue` must be running on a client that has
    `recorder` (see `Recorder.client`).

    Raises:
        OperationError: the journey, the contact or an option is invalid.
        SimulationFailed: the test server stopped skipping time.
    """
    from starter.qa.catalog import journey_class
    from starter.services import operations

    journey = journey_class(simulation.journey)
    contact = simulation.contact
    timezone = contact.timezone or "UTC"
    await operations.upsert_contact(engine, contact, key=settings.suppression_key())
    journey_input = operations.journey_input_for(
        journey.name, contact.id, dict(simulation.options), accelerated_clock_allowed=True
    )
    if simulation.start is not None:
        await env.sleep(await _until_local(env, simulation.start, timezone))
    enrolled = await env.get_current_time()
    workflow_id = await operations.enroll(
        env.client, engine, journey.name, journey_input, task_queue=settings.task_queue
    )
    sent_events = await _drive(
        env, engine, settings, simulation, workflow_id, journey_input, enrolled=enrolled
    )
    return timeline_of(
        recorder.records,
        workflow_id=workflow_id,
        contact_id=contact.id,
        timezone=timezone,
        events=sent_events,
    )


async def _until_local(env: WorkflowEnvironment, start: time, timezone: str) -> timedelta:
    """How long until the next `start` o'clock in `timezone` on the server's clock."""
    now = (await env.get_current_time()).astimezone(ZoneInfo(timezone))
    target = now.replace(hour=start.hour, minute=start.minute, second=0, microsecond=0)
    if target <= now:
        target += timedelta(days=1)
    return target - now


async def _drive(
    env: WorkflowEnvironment,
    engine: AsyncEngine,
    settings: Settings,
    simulation: Simulation,
    workflow_id: str,
    journey_input: JourneyInput,
    *,
    enrolled: datetime,
) -> list[BehaviorEvent]:
    """Skip time to each of the journey's wake-ups and each event, until the journey ends.

    Time is skipped to the next thing that happens (the journey's `next_wake_at`
    or the next event), never past the journey's end: `result()` would skip on
    into the journeys it starts (a nurture after the welcome series).

    Returns:
        The events signalled (those due after the journey ended are not).

    Raises:
        SimulationFailed: the journey did not end within `RESULT_TIMEOUT` of real time.
    """
    from starter.services.intake import accept_events

    handle = env.client.get_workflow_handle(workflow_id)
    pending = sorted(simulation.events, key=lambda scheduled: scheduled.offset)
    signalled: list[BehaviorEvent] = []
    deadline = asyncio.get_running_loop().time() + RESULT_TIMEOUT.total_seconds()
    while asyncio.get_running_loop().time() < deadline:
        state = await handle.query("state", result_type=JourneyState)
        if state.status in (JourneyStatus.COMPLETED, JourneyStatus.EXITED):
            return signalled
        now = await env.get_current_time()
        wake = state.next_wake_at + _SETTLE if state.next_wake_at else now + _SETTLE
        if pending and enrolled + pending[0].offset <= wake:
            scheduled = pending.pop(0)
            await _sleep_until(env, enrolled + scheduled.offset)
            event = BehaviorEvent(
                event_id=f"simulate-{len(signalled)}-{uuid.uuid4().hex[:8]}",
                contact_id=simulation.contact.id,
                type=scheduled.type,
                occurred_at=await env.get_current_time(),
                properties=dict(scheduled.properties),
            )
            await accept_events(
                env.client,
                engine,
                [event],
                task_queue=settings.task_queue,
                day_seconds=journey_input.day_seconds,
                suppression_key=settings.suppression_key(),
            )
            signalled.append(event)
        elif not await _sleep_until(env, wake):
            await asyncio.sleep(0.05)  # the journey is at work (an activity): let it
    raise SimulationFailed(
        f"{workflow_id} did not end within {RESULT_TIMEOUT} of real time: the test "
        "server stopped skipping time; run the simulation again"
    )


async def _sleep_until(env: WorkflowEnvironment, at: datetime) -> bool:
    """Skip time to `at` on the server's clock; False if it is already past."""
    wait = at - await env.get_current_time()
    if wait <= timedelta(0):
        return False
    await env.sleep(wait)
    return True


def simulation_settings(settings: Settings, directory: Path) -> Settings:
    """`settings` with a database, outbox and task queue of the simulation's own.

    The messaging policy (quiet hours, caps), templates and brand are kept;
    every provider is the outbox.
    """
    return settings.model_copy(
        update={
            "database_url": f"sqlite:///{directory / 'journeys.db'}",
            "payload_keys_database_url": None,
            "outbox_dir": directory / "outbox",
            "task_queue": f"simulate-{uuid.uuid4()}",
            "email_provider": "outbox",
            "sms_provider": "outbox",
            "notifier": "outbox",
            "metrics_bind_address": None,
        }
    )


async def simulate(settings: Settings, simulation: Simulation) -> Timeline:
    """Run `simulation` on a fresh time-skipping server with the real worker (see the module doc).

    Raises:
        OperationError: the journey, the contact or an option is invalid.
        SimulationFailed: the test server stopped skipping time.
        ToolchainError: the test server cannot be found or fetched.
    """
    from models.db import create_engine, migrate
    from runtime.codec import encrypting_data_converter
    from runtime.keys import key_store
    from starter.dev.cluster import register_search_attributes
    from starter.dev.toolchain import start_time_skipping_server
    from worker import build_worker, worker_runtime

    with tempfile.TemporaryDirectory(prefix="journeys-simulate-") as folder:
        sim_settings = simulation_settings(settings, Path(folder))
        engine = create_engine(sim_settings.database_url)
        try:
            await migrate(engine)
            recorder = Recorder()
            env = await start_time_skipping_server(
                data_converter=encrypting_data_converter(key_store(sim_settings, engine=engine)),
                interceptors=[recorder],
                runtime=worker_runtime(sim_settings),  # the Core's warnings as log lines
            )
            async with env:
                await register_search_attributes(env.client)
                async with build_worker(env.client, sim_settings, engine):
                    return await run_simulation(env, engine, sim_settings, recorder, simulation)
        finally:
            await engine.dispose()
