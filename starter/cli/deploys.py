"""`journeys deploy-status` and `journeys deploy-promote`: deploys under Worker Versioning.

`register(app, run_async)` adds both commands to the CLI. This module imports only
Typer: the Temporal client, the catalog and the service load inside the commands.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from starter.services.deploys import DeploymentStatus, Promotion, VersionView

RunAsync = Callable[[Callable[..., Coroutine[Any, Any, None]]], Callable[..., None]]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON.")]
BuildIdArgument = Annotated[str, typer.Argument(help="The build id (WORKER_BUILD_ID) of it.")]


def register(app: typer.Typer, run_async: RunAsync) -> None:
    """Add `deploy-status` and `deploy-promote` to `app`; `run_async` turns errors into a
    one-line error."""
    app.command("deploy-status")(run_async(deploy_status))
    app.command("deploy-promote")(run_async(deploy_promote))


async def deploy_status(as_json: JsonFlag = False) -> None:
    """Each version (build id) of the workers: current, ramping, draining or drained, and
    the runs still pinned to it, per journey: an old version's workers may stop once it
    is drained."""
    from models.settings import get_settings
    from runtime.contact_signals import CONTACT_WORKFLOW
    from runtime.temporal import connect
    from starter.services.deploys import deployment_status
    from workflows import catalog  # the journey files' names only

    status = await deployment_status(
        await connect(),
        get_settings().worker_deployment_name,
        [CONTACT_WORKFLOW, *catalog.journey_names()],
    )
    typer.echo(status.model_dump_json(indent=2) if as_json else render(status))


async def deploy_promote(build_id: BuildIdArgument, as_json: JsonFlag = False) -> None:
    """Make a version current: new runs start on it, auto-upgrade runs (the contact
    workflow…) move to it at their next task, pinned runs finish where they are."""
    from models.settings import get_settings
    from runtime.temporal import connect
    from starter.services.deploys import promote

    promotion = await promote(await connect(), get_settings().worker_deployment_name, build_id)
    typer.echo(promotion.model_dump_json(indent=2) if as_json else _promoted(promotion))


def _promoted(promotion: Promotion) -> str:
    before = promotion.previous_build_id or "unversioned workers"
    return (
        f"{promotion.deployment}: {promotion.build_id} is current (was {before}); "
        "follow the old version's drainage with `journeys deploy-status`"
    )


def render(status: DeploymentStatus) -> str:
    """The deployment as a table, newest version first, then what to do about each one."""
    current = status.current_build_id or "none (new runs go to unversioned workers)"
    lines = [
        f"worker deployment {status.deployment} (namespace {status.namespace}): current {current}",
        f"{'build id':<20} {'status':<10} {'since (UTC)':<17} {'pinned':>7} {'auto-upgrade':>13}",
    ]
    for version in status.versions:
        since = f"{version.since:%Y-%m-%d %H:%M}" if version.since else "—"
        label = str(version.status)
        if version.ramp_percent is not None:
            label = f"{label} {version.ramp_percent:g}%"
        lines.append(
            f"{version.build_id:<20} {label:<10} {since:<17} {version.pinned_running:>7} "
            f"{version.auto_upgrade_last_here:>13}"
        )
        lines.extend(
            f"  {workflow:<47} {count:>7}" for workflow, count in version.pinned_by_workflow.items()
        )
    lines.extend(_advice(version) for version in status.versions)
    if status.current_build_id is None:
        lines.append(
            "no current version: make one current with `journeys deploy-promote <build id>`"
        )
    lines.append(
        "pinned: open runs that finish on that version; auto-upgrade: open runs whose last "
        "task ran there (they move to the current version at their next task)"
    )
    return "\n".join(lines)


def _advice(version: VersionView) -> str:
    """What an operator may do about a version's workers."""
    name = version.build_id
    if version.can_retire:
        return f"{name}: drained: its workers can be stopped"
    if version.status in ("current", "ramping"):
        return f"{name}: {version.status}: new runs start on it"
    if version.status == "inactive":
        return f"{name}: not current: `journeys deploy-promote {name}` makes it current"
    if version.pinned_running == 0:
        return f"{name}: no pinned run open; Temporal marks it drained at its next check"
    return (
        f"{name}: {version.pinned_running} pinned run(s) open: keep its workers running "
        f'(temporal workflow list --query "{version.pinned_query}")'
    )
