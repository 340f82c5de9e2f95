"""`journeys deliverability`: the rates the guard watches, its alerts, and the send pauses.

`register(app, run_async)` adds the group to the CLI. This module imports only Typer:
the database and the service load inside the commands.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Annotated, Any

import typer

from starter.cli.support import cli_actor, with_engine

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from models.deliverability import PauseView
    from starter.services.deliverability import DeliverabilityStatus

RunAsync = Callable[[Callable[..., Coroutine[Any, Any, None]]], Callable[..., None]]
JourneyArgument = Annotated[str, typer.Argument(help="The journey, e.g. welcome-series.")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def register(app: typer.Typer, run_async: RunAsync) -> None:
    """Add the `deliverability` group to `app`; `run_async` turns errors into a one-line error."""
    group = typer.Typer(help="Bounce, complaint, unsubscribe, open, click rates; send pauses.")
    group.command("status")(run_async(status))
    group.command("pause")(run_async(pause))
    group.command("resume")(run_async(resume))
    app.add_typer(group, name="deliverability")


async def status(as_json: JsonFlag = False) -> None:
    """Each journey step's rates over the guard's window, the open alerts, the paused sends."""
    from models.deliverability import GuardConfig
    from models.settings import get_settings
    from starter.services.deliverability import deliverability_status

    config = GuardConfig.load(get_settings().deliverability_file)

    async def act(engine: AsyncEngine) -> DeliverabilityStatus:
        return await deliverability_status(engine, config)

    report = await with_engine(act)
    typer.echo(report.model_dump_json(indent=2) if as_json else render(report))


async def pause(
    journey: JourneyArgument,
    reason: Annotated[str, typer.Option(help="Why, for the record.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Pause a journey's marketing sends (its messages wait) until `resume`."""
    from starter.services.deliverability import pause_journey_sends

    async def act(engine: AsyncEngine) -> PauseView:
        return await pause_journey_sends(engine, journey, actor=cli_actor(), reason=reason)

    _print_pause(await with_engine(act), as_json)


async def resume(journey: JourneyArgument, as_json: JsonFlag = False) -> None:
    """Resume a journey's marketing sends: its waiting messages go out when they next ask."""
    from starter.services.deliverability import resume_journey_sends

    async def act(engine: AsyncEngine) -> PauseView:
        return await resume_journey_sends(engine, journey, actor=cli_actor())

    _print_pause(await with_engine(act), as_json)


def _print_pause(view: PauseView, as_json: bool) -> None:
    if as_json:
        typer.echo(view.model_dump_json(indent=2))
    elif view.resumed_at is None:
        typer.echo(f"{view.journey}: marketing sends paused ({view.reason})")
    else:
        typer.echo(f"{view.journey}: marketing sends resumed by {view.resumed_by}")


def render(report: DeliverabilityStatus) -> str:
    """The status as a table: one line per step, `!` after a rate past its limit."""
    from models.deliverability import Metric

    lines = [f"Emails sent in the last {report.window_hours:g} hours"]
    header = f"{'journey':<22} {'step':<12} {'sent':>6}" + "".join(
        f" {metric.value:>12}" for metric in Metric
    )
    lines.append(header)
    for step in report.steps:
        cells = []
        for metric in Metric:
            rate = step.rates.get(metric)
            flag = "!" if metric in step.breached else " "
            cells.append(f" {'-' if rate is None else f'{rate:.1%}':>11}{flag}")
        lines.append(f"{step.journey:<22} {step.step:<12} {step.sent:>6}" + "".join(cells))
    if not report.steps:
        lines.append("(no email sent in the window)")
    for alert in report.alerts:
        lines.append(
            f"alert: {alert.journey} {alert.step} {alert.metric} {alert.rate:.1%} "
            f"(limit {alert.limit:.1%}) since {alert.raised_at:%Y-%m-%d %H:%M} UTC"
        )
    for paused in report.paused:
        lines.append(
            f"PAUSED: {paused.journey} since {paused.paused_at:%Y-%m-%d %H:%M} UTC by "
            f"{paused.paused_by}: {paused.reason}"
        )
    return "\n".join(lines)
