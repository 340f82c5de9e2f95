"""`journeys broadcast`: create, status, pause, resume, cancel (`starter/services/broadcasts.py`).

`register(app, run_async)` adds the group to the CLI. This module imports only Typer:
the database, Temporal and the service load inside the commands.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from starter.cli.support import cli_actor, with_engine

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from starter.services.broadcasts import BroadcastView

T = TypeVar("T")
RunAsync = Callable[[Callable[..., Coroutine[Any, Any, None]]], Callable[..., None]]
NameArgument = Annotated[str, typer.Argument(help="The broadcast's name.")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def register(app: typer.Typer, run_async: RunAsync) -> None:
    """Add the `broadcast` group to `app`; `run_async` turns errors into a one-line error."""
    group = typer.Typer(help="Messages to a segment's members, once or on a schedule.")
    group.command("create")(run_async(create))
    group.command("status")(run_async(status))
    for action in ("pause", "resume", "cancel"):
        group.command(action, help=f"{action.capitalize()} a broadcast (and its schedule).")(
            run_async(_control(action))
        )
    app.add_typer(group, name="broadcast")


def _time(value: str | None) -> datetime | None:
    """`--at`: an ISO 8601 time; without an offset, each contact's local time."""
    if value is None:
        return None
    from starter.services.operations import InvalidRequest

    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(
            f"bad time {value!r}: give ISO 8601, e.g. 2026-07-01T10:00 (each contact's local "
            "time) or 2026-07-01T10:00Z (one instant)"
        ) from None


async def create(
    name: NameArgument,
    segment: Annotated[str, typer.Option(help="Whose members get it.")],
    template: Annotated[str, typer.Option(help="e.g. broadcasts/monthly-update.")],
    at: Annotated[
        str | None,
        typer.Option(help="When: 2026-07-01T10:00 (each contact's local time) or with an offset."),
    ] = None,
    schedule: Annotated[
        str | None,
        typer.Option(help="Cron, e.g. '0 10 1 * *': the 1st of each month at 10:00."),
    ] = None,
    timezone: Annotated[
        str | None,
        typer.Option(help="The schedule's zone (default: each contact's own)."),
    ] = None,
    rate: Annotated[
        int | None, typer.Option(help="Sends per second (default: BROADCAST_RATE).")
    ] = None,
    sms: Annotated[bool, typer.Option("--sms", help="Send the SMS template.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Create a broadcast to a segment: at a time (--at) or on a schedule (--schedule)."""
    from models.messages import Channel
    from models.settings import get_settings
    from runtime.temporal import connect
    from starter.services.broadcasts import BroadcastCreate, create_broadcast

    request = BroadcastCreate(
        name=name,
        segment=segment,
        template=template,
        channel=Channel.SMS if sms else Channel.EMAIL,
        at=_time(at),
        schedule=schedule,
        timezone=timezone,
        rate=rate,
    )
    client = await connect()

    async def act(engine: AsyncEngine) -> BroadcastView:
        return await create_broadcast(
            engine, client, get_settings(), request, created_by=cli_actor(), now=datetime.now(UTC)
        )

    _print([await with_engine(act)], as_json)


async def status(
    name: Annotated[str | None, typer.Argument(help="One broadcast (default: all).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Broadcasts, their status and each occurrence's progress."""
    from starter.services.broadcasts import list_broadcasts

    async def act(engine: AsyncEngine) -> list[BroadcastView]:
        return await list_broadcasts(engine, name)

    _print(await with_engine(act), as_json)


def _control(action: str) -> Callable[..., Coroutine[Any, Any, None]]:
    async def command(name: NameArgument, as_json: JsonFlag = False) -> None:
        from runtime.temporal import connect
        from starter.services.broadcasts import control_broadcast

        client = await connect()

        async def act(engine: AsyncEngine) -> BroadcastView:
            return await control_broadcast(engine, client, name, action, now=datetime.now(UTC))

        _print([await with_engine(act)], as_json)

    command.__doc__ = f"{action.capitalize()} a broadcast (and its schedule)."
    return command


def _print(views: list[BroadcastView], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps([view.model_dump(mode="json") for view in views], indent=2))
        return
    if not views:
        typer.echo("no broadcasts")
    for view in views:
        when = view.schedule or (view.send_at.isoformat() if view.send_at else "")
        local = " (each contact's local time)" if view.local_time else ""
        typer.echo(
            f"{view.name}: {view.status} · {view.template} to segment {view.segment} · "
            f"{when}{local} · {view.rate}/s"
        )
        for progress in view.occurrences:
            typer.echo(
                f"  {progress.occurrence}: audience {progress.audience}, sent {progress.sent}, "
                f"deferred {progress.deferred}, refused {progress.refused}, failed "
                f"{progress.failed}, cancelled {progress.cancelled}, remaining "
                f"{progress.remaining}"
            )
