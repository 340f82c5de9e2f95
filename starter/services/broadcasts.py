"""Broadcasts for the gateway and the CLI: create, list with progress, pause, resume, cancel.

A one-off broadcast is one `broadcast` workflow (`broadcast-{name}`) that waits for
its time; a recurring one is a Temporal Schedule (`broadcast-{name}`) whose runs are
`broadcast-{name}-{time}`. Progress is read from the database (each occurrence's
recipients), so `journeys broadcast status` needs no worker.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field
from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionExecutionStartWorkflow,
    ScheduleActionStartWorkflow,
    ScheduleHandle,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
)
from temporalio.common import WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode

from models.broadcasts import (
    MAX_RATE,
    OPEN_STATUSES,
    WORKFLOW_TYPE,
    BroadcastPlan,
    BroadcastProgress,
    BroadcastRun,
    BroadcastStatus,
    RecipientStatus,
    local_start,
    name_refusal,
    workflow_id,
)
from models.db import session_factory
from models.messages import Channel
from models.settings import Settings
from models.tables import Broadcast, BroadcastRecipient
from rules.segment_membership import defined_segments
from rules.templates import TemplateCatalog
from starter.services.operations import Conflict, InvalidRequest, NotFound


class BroadcastCreate(BaseModel):
    """A broadcast to create.

    Attributes:
        name: Its name (lower-case letters, digits, '-').
        segment: Whose members get it.
        template: An existing template, e.g. `broadcasts/monthly-update`.
        channel: Email or SMS.
        at: A one-off's time: with an offset, one instant for everyone; without one, that
            wall-clock time in each contact's time zone.
        schedule: A recurring broadcast's cron expression, e.g. `0 10 1 * *` (the 1st of
            each month at 10:00), in each contact's time zone unless `timezone` is given.
        timezone: The schedule's time zone (one instant for everyone).
        rate: Sends per second (default: BROADCAST_RATE).
    """

    name: str = Field(max_length=48)
    segment: str = Field(max_length=64)
    template: str = Field(max_length=200)
    channel: Channel = Channel.EMAIL
    at: datetime | None = None
    schedule: str | None = Field(default=None, max_length=100)
    timezone: str | None = Field(default=None, max_length=64)
    rate: int | None = None


class BroadcastView(BaseModel):
    """A broadcast and the progress of its occurrences.

    Attributes:
        name: Its name.
        segment: Its audience.
        template: What it sends.
        channel: Email or SMS.
        send_at: A one-off's time (for a local time: its wall-clock time, shown as UTC).
        schedule: A recurring broadcast's cron expression.
        local_time: The time is each contact's local time.
        rate: Sends per second.
        status: Scheduled, running, paused, cancelled or done.
        created_by: Who created it.
        created_at: When.
        occurrences: The progress of each occurrence started so far, latest first.
    """

    name: str
    segment: str
    template: str
    channel: str
    send_at: datetime | None
    schedule: str | None
    local_time: bool
    rate: int
    status: str
    created_by: str
    created_at: datetime
    occurrences: list[BroadcastProgress] = Field(default_factory=list)


async def create_broadcast(
    engine: AsyncEngine,
    client: Client,
    settings: Settings,
    request: BroadcastCreate,
    *,
    created_by: str,
    now: datetime,
) -> BroadcastView:
    """Check the request, record the broadcast, and start its workflow or its schedule.

    Raises:
        InvalidRequest: a bad name, rate, time, schedule or time zone, an unknown
            segment or template.
        Conflict: a broadcast of that name exists.
    """
    rate = _rate(request.rate, settings)
    _check_names(request)
    _check_template(settings, request)
    plan = BroadcastPlan(
        name=request.name,
        segment=request.segment,
        template=request.template,
        channel=request.channel,
        send_at=_send_at(request, now),
        local_time=_local_time(request),
        rate=rate,
    )
    async with session_factory(engine)() as session:
        defined = await defined_segments(session, settings.segments_file)
        if request.segment not in defined:
            raise InvalidRequest(
                f"unknown segment {request.segment!r}; defined: "
                f"{', '.join(sorted(defined)) or 'none'} (see `journeys segments`)"
            )
        if await session.get(Broadcast, request.name) is not None:
            raise Conflict(f"broadcast {request.name!r} exists: choose another name")
        row = Broadcast(
            name=plan.name,
            segment=plan.segment,
            template=plan.template,
            channel=plan.channel,
            category=plan.category,
            send_at=plan.send_at,
            schedule=request.schedule,
            local_time=plan.local_time,
            rate=rate,
            status=BroadcastStatus.SCHEDULED,
            created_by=created_by,
            created_at=now,
            updated_at=now,
        )
        session.add(row)
        await _start(client, settings, plan, request)
        await session.commit()
        return _view(row, [])


def _rate(rate: int | None, settings: Settings) -> int:
    if rate is None:
        return settings.broadcast_rate
    if not 1 <= rate <= MAX_RATE:
        raise InvalidRequest(f"bad rate {rate}: give 1 to {MAX_RATE} sends per second")
    return rate


def _check_names(request: BroadcastCreate) -> None:
    for value, what in ((request.name, "broadcast"), (request.segment, "segment")):
        refusal = name_refusal(value, what)
        if refusal is not None:
            raise InvalidRequest(refusal)


def _check_template(settings: Settings, request: BroadcastCreate) -> None:
    templates = TemplateCatalog(settings.templates_dir)
    known = templates.names if request.channel == Channel.EMAIL else templates.sms_names
    if request.template not in known:
        raise InvalidRequest(
            f"unknown {request.channel} template {request.template!r}: add "
            f"templates/{request.template}{'.sms' if request.channel == Channel.SMS else ''}.toml"
            " or see `journeys preview` for the templates"
        )


def _send_at(request: BroadcastCreate, now: datetime) -> datetime | None:
    """A one-off's time (a local time as if in UTC); None for a schedule."""
    if (request.at is None) == (request.schedule is None):
        raise InvalidRequest("give either a time (--at) or a schedule (--schedule), not both")
    if request.at is None:
        return None
    if request.timezone is not None:
        raise InvalidRequest("--timezone is for a schedule; give --at a time with its offset")
    if request.at.tzinfo is None:
        start, send_at = local_start(request.at), request.at.replace(tzinfo=ZoneInfo("UTC"))
    else:
        start = send_at = request.at
    if start <= now:
        raise InvalidRequest(f"time {request.at.isoformat()} has passed: give a time in the future")
    return send_at


def _local_time(request: BroadcastCreate) -> bool:
    if request.at is not None:
        return request.at.tzinfo is None
    return request.timezone is None


async def _start(
    client: Client, settings: Settings, plan: BroadcastPlan, request: BroadcastCreate
) -> None:
    """Start the one-off's workflow, or create the recurring broadcast's schedule."""
    run = BroadcastRun(plan=plan)
    if request.schedule is None:
        await client.start_workflow(
            WORKFLOW_TYPE,
            run,
            id=workflow_id(plan.name),
            task_queue=settings.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
        return
    zone = request.timezone or "Etc/GMT-14"
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidRequest(f"unknown time zone {zone!r}: give an IANA name") from None
    if len(request.schedule.split()) != 5:
        raise InvalidRequest(
            f"bad schedule {request.schedule!r}: give a cron expression of 5 fields, "
            "e.g. '0 10 1 * *' (the 1st of each month at 10:00)"
        )
    try:
        await client.create_schedule(
            workflow_id(plan.name),
            Schedule(
                action=ScheduleActionStartWorkflow(
                    WORKFLOW_TYPE, run, id=workflow_id(plan.name), task_queue=settings.task_queue
                ),
                spec=ScheduleSpec(cron_expressions=[request.schedule], time_zone_name=zone),
                policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.ALLOW_ALL),
            ),
        )
    except RPCError as error:
        if error.status != RPCStatusCode.INVALID_ARGUMENT:
            raise
        raise InvalidRequest(f"bad schedule {request.schedule!r}: {error.message}") from None


async def list_broadcasts(engine: AsyncEngine, name: str | None = None) -> list[BroadcastView]:
    """Every broadcast (or the one named), with the progress of its occurrences.

    Raises:
        NotFound: no broadcast has that name.
    """
    async with session_factory(engine)() as session:
        query = select(Broadcast).order_by(col(Broadcast.created_at).desc())
        if name is not None:
            query = query.where(col(Broadcast.name) == name)
        rows = list((await session.exec(query)).all())
        if name is not None and not rows:
            raise NotFound(f"no broadcast {name!r}: see `journeys broadcast status`")
        return [_view(row, await _occurrences(session, row)) for row in rows]


async def _occurrences(session: AsyncSession, row: Broadcast) -> list[BroadcastProgress]:
    counts = await session.exec(
        select(BroadcastRecipient.occurrence, BroadcastRecipient.status, func.count())
        .where(col(BroadcastRecipient.broadcast) == row.name)
        .group_by(col(BroadcastRecipient.occurrence), col(BroadcastRecipient.status))
    )
    by_occurrence: dict[str, dict[str, int]] = {}
    for occurrence, status, count in counts.all():
        by_occurrence.setdefault(occurrence, {})[status] = count
    return [
        _progress(row, occurrence, found)
        for occurrence, found in sorted(by_occurrence.items(), reverse=True)
    ]


def _progress(row: Broadcast, occurrence: str, counts: dict[str, int]) -> BroadcastProgress:
    remaining = sum(counts.get(status, 0) for status in OPEN_STATUSES)
    status = row.status
    if row.schedule is not None and status != BroadcastStatus.PAUSED:
        status = BroadcastStatus.RUNNING if remaining else BroadcastStatus.DONE
    return BroadcastProgress(
        name=row.name,
        occurrence=occurrence,
        status=BroadcastStatus(status),
        audience=sum(counts.values()),
        sent=counts.get(RecipientStatus.SENT, 0),
        deferred=counts.get(RecipientStatus.DEFERRED, 0),
        refused=counts.get(RecipientStatus.REFUSED, 0),
        failed=counts.get(RecipientStatus.FAILED, 0),
        cancelled=counts.get(RecipientStatus.CANCELLED, 0),
        remaining=remaining,
        rate=row.rate,
    )


def _view(row: Broadcast, occurrences: list[BroadcastProgress]) -> BroadcastView:
    return BroadcastView(
        name=row.name,
        segment=row.segment,
        template=row.template,
        channel=row.channel,
        send_at=row.send_at,
        schedule=row.schedule,
        local_time=row.local_time,
        rate=row.rate,
        status=row.status,
        created_by=row.created_by,
        created_at=row.created_at,
        occurrences=occurrences,
    )


_NEXT_STATUS = {
    "pause": BroadcastStatus.PAUSED,
    "resume": BroadcastStatus.SCHEDULED,
    "cancel": BroadcastStatus.CANCELLED,
}
_ALLOWED_FROM = {
    "pause": (BroadcastStatus.SCHEDULED, BroadcastStatus.RUNNING),
    "resume": (BroadcastStatus.PAUSED,),
    "cancel": (BroadcastStatus.SCHEDULED, BroadcastStatus.RUNNING, BroadcastStatus.PAUSED),
}


async def control_broadcast(
    engine: AsyncEngine, client: Client, name: str, action: str, *, now: datetime
) -> BroadcastView:
    """Pause, resume or cancel a broadcast: its running workflow(s), and its schedule.

    Raises:
        NotFound: no broadcast has that name.
        Conflict: the action does not apply to its status (e.g. resume a running one).
        InvalidRequest: an unknown action.
    """
    if action not in _NEXT_STATUS:
        raise InvalidRequest(f"unknown action {action!r}: pause, resume or cancel")
    async with session_factory(engine)() as session:
        row = await session.get(Broadcast, name)
        if row is None:
            raise NotFound(f"no broadcast {name!r}: see `journeys broadcast status`")
        if row.status not in _ALLOWED_FROM[action]:
            raise Conflict(f"broadcast {name!r} is {row.status}: it cannot {action}")
        if row.schedule is not None:
            running = await _running_occurrences(client, name)
            await _steer_schedule(client.get_schedule_handle(workflow_id(name)), action)
            for occurrence in running:
                await _signal(client, occurrence, action)
        else:
            await _signal(client, workflow_id(name), action)
        row.status = _status_after(row, action, await _started(session, name))
        row.updated_at = now
        session.add(row)
        await session.commit()
        return _view(row, await _occurrences(session, row))


def _status_after(row: Broadcast, action: str, started: bool) -> BroadcastStatus:
    status = _NEXT_STATUS[action]
    if status == BroadcastStatus.SCHEDULED and row.schedule is None and started:
        return BroadcastStatus.RUNNING
    return status


async def _started(session: AsyncSession, name: str) -> bool:
    found = await session.exec(
        select(BroadcastRecipient.contact_id).where(col(BroadcastRecipient.broadcast) == name)
    )
    return found.first() is not None


async def _steer_schedule(handle: ScheduleHandle, action: str) -> None:
    if action == "pause":
        await handle.pause(note="paused by an operator")
    elif action == "resume":
        await handle.unpause(note="resumed by an operator")
    else:
        await handle.delete()


async def _running_occurrences(client: Client, name: str) -> list[str]:
    """The workflow ids of a recurring broadcast's runs still going."""
    description = await client.get_schedule_handle(workflow_id(name)).describe()
    return [
        action.workflow_id
        for action in description.info.running_actions
        if isinstance(action, ScheduleActionExecutionStartWorkflow)
    ]


async def _signal(client: Client, workflow_id_: str, action: str) -> None:
    try:
        await client.get_workflow_handle(workflow_id_).signal(action)
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
