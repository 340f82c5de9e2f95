"""The `journeys` command line.

Read commands take `--json` for machine-readable output. Temporal
connection settings come from the environment (TEMPORAL_ADDRESS, …; see
`runtime/temporal.py`), the database from DATABASE_URL.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable, Coroutine
from datetime import datetime
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer
from typer.core import TyperGroup

from models.ids import id_refusal
from starter.cli import broadcasts as broadcast_commands
from starter.cli import deliverability as deliverability_commands
from starter.cli import deploys as deploy_commands
from starter.cli import imports
from starter.cli.support import cli_actor, with_engine
from starter.dev.defaults import DEMO_DAY_SECONDS, TEMPORAL_PORT, UI_PORT
from starter.qa import commands as qa_commands

if TYPE_CHECKING:
    from pydantic import BaseModel
    from sqlalchemy.ext.asyncio import AsyncEngine
    from temporalio.client import WorkflowExecution
    from temporalio.common import SearchAttributeKey
    from typer._click import Context as ClickContext

    from models.handoff import SlaPolicy
    from starter.api.schemas import DealView
    from starter.services.operations import JourneyAction, JourneyRun

# Each command imports what it uses inside its function: `journeys status`
# loads the Temporal client and the database, never the journeys, the worker
# or FastAPI (tests/test_cli_output.py; `make bench` times them: bench/cli_read.py).

app = typer.Typer(help="Durable contact journeys on Temporal.", no_args_is_help=True)
contact_app = typer.Typer(help="Manage contacts.", no_args_is_help=True)
app.add_typer(contact_app, name="contact")
keys_app = typer.Typer(help="Data keys of the payload codec.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
sla_app = typer.Typer(help="Sales hand-off SLAs.", no_args_is_help=True)
app.add_typer(sla_app, name="sla")


class _ReportOrCommand(TyperGroup):
    """A group whose optional argument is not a sub-command: `journeys experiments NAME`
    reports NAME, `journeys experiments stop NAME` runs `stop` (so no experiment can be
    reported by the name of a sub-command, here `stop`). Options may follow NAME."""

    allow_interspersed_args = True

    def parse_args(self, ctx: ClickContext, args: list[str]) -> list[str]:
        """Hand a leading sub-command name (and what follows) to the sub-command."""
        if args and args[0] in self.commands:
            super(TyperGroup, self).parse_args(ctx, [])  # the group's own options: defaults
            ctx._protected_args, ctx.args = args[:1], args[1:]
            return ctx.args
        return super().parse_args(ctx, args)


experiments_app = typer.Typer(cls=_ReportOrCommand)
app.add_typer(experiments_app, name="experiments")
segments_app = typer.Typer(cls=_ReportOrCommand)
app.add_typer(segments_app, name="segments")

P = ParamSpec("P")
T = TypeVar("T")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON.")]
ReportFile = Annotated[
    typer.FileTextWrite | None,
    typer.Option(help="Write the report to this file instead of stdout.", encoding="utf-8"),
]


def _contact_id(value: str | None) -> str | None:
    """Refuse a malformed contact id before anything runs, with the rule's one message."""
    refusal = None if value is None else id_refusal(value, "contact id")
    if refusal:
        typer.secho(f"error: {refusal}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2)
    return value


ContactArgument = Annotated[
    str, typer.Argument(help="Your system's id of the contact.", callback=_contact_id)
]


def main() -> None:
    """Console entry point: run the CLI, then end the process without interpreter teardown.

    The Temporal SDK's bridge threads can abort CPython's finalisation of a
    short-lived client process (temporalio/sdk-python#300), turning a command
    that succeeded into a crash with exit code -6. Everything the command does
    is finished when the CLI exits, so the process ends there.
    """
    try:
        app()
        code = 0
    except SystemExit as exit_request:
        if isinstance(exit_request.code, str):
            sys.stderr.write(f"{exit_request.code}\n")
            code = 1
        else:
            code = exit_request.code or 0
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run_async(function: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, T]:
    """Run an async command; turn expected failures into a one-line error and exit code."""

    @wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return asyncio.run(function(*args, **kwargs))
        except Exception as error:
            from starter.cli.errors import explain

            explained = explain(error)
            if explained is None:
                raise
            code, lines = explained
            for line in lines:
                typer.secho(f"error: {line}", err=True, fg=typer.colors.RED)
            raise typer.Exit(code) from None

    return wrapper


qa_commands.register(app, run_async)
broadcast_commands.register(app, run_async)
deliverability_commands.register(app, run_async)
deploy_commands.register(app, run_async)
imports.register(app, run_async)


def _hand_off_slas() -> SlaPolicy:
    """The SLAs of the sales configuration (`SALES_FILE`); one it cannot read ends the command."""
    from models.settings import get_settings
    from rules.sales import SalesConfig

    try:
        return SalesConfig.load(get_settings().sales_file).sla
    except (OSError, ValueError) as error:
        typer.echo(f"error: {error}; fix SALES_FILE (the sales hand-off configuration)", err=True)
        raise typer.Exit(1) from None


def _moment(text: str | None, option: str, parse: Callable[[str], datetime]) -> datetime | None:
    """An optional date option parsed by `parse`; a bad one is a usage error naming `option`."""
    if text is None:
        return None
    try:
        return parse(text)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint=option) from None


def _key_values(items: list[str] | None, option: str) -> dict[str, str]:
    """`key=value` options as a dict; a malformed one is a usage error naming `option`."""
    malformed = [item for item in items or [] if "=" not in item]
    if malformed:
        raise typer.BadParameter(f"expected key=value, got {malformed}", param_hint=option)
    return dict(item.split("=", 1) for item in items or [])


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str))


def _dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json")


@app.command()
@run_async
async def dev(
    day_seconds: Annotated[
        int, typer.Option(help="Demo clock: seconds per journey day.")
    ] = DEMO_DAY_SECONDS,
    temporal_port: Annotated[int, typer.Option(help="Temporal frontend port.")] = TEMPORAL_PORT,
    ui_port: Annotated[int, typer.Option(help="Temporal Web UI port.")] = UI_PORT,
) -> None:
    """Start the local stack with the demo (what `make run` runs)."""
    from models.settings import get_settings
    from runtime.logs import configure_logging
    from starter.dev.stack import run_dev

    settings = get_settings()
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    await run_dev(settings, day_seconds=day_seconds, temporal_port=temporal_port, ui_port=ui_port)


@app.command()
@run_async
async def cluster(
    with_demo: Annotated[
        bool, typer.Option("--demo/--no-demo", help="Run the demo contacts on it.")
    ] = True,
) -> None:
    """Start a Temporal cluster on PostgreSQL, two workers and the gateway (`make cluster`)."""
    from models.settings import get_settings
    from runtime.logs import configure_logging
    from starter.dev.cluster_stack import run_cluster

    settings = get_settings()
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    await run_cluster(settings, with_demo=with_demo)


@app.command()
@run_async
async def worker() -> None:
    """Run the Temporal worker (all journeys and activities) until SIGINT / SIGTERM."""
    from models.settings import get_settings
    from runtime.logs import configure_logging
    from worker import run_worker  # the journeys and activities load for this command only

    settings = get_settings()
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    await run_worker(settings)


@app.command("api")
@run_async
async def api_command(
    host: Annotated[str | None, typer.Option(help="Interface (default: API_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: API_PORT).")] = None,
) -> None:
    """Serve the HTTP gateway for backend services until SIGINT / SIGTERM."""
    from models.settings import get_settings
    from runtime.logs import configure_logging
    from runtime.shutdown import wait_for_shutdown_signal
    from starter.api.server import running_api  # FastAPI loads only for this command

    settings = get_settings()
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    async with running_api(settings, host=host, port=port) as url:
        typer.echo(f"gateway listening on {url} (API docs: {url}/docs)", err=True)
        await wait_for_shutdown_signal()


@app.command("migrate")
@run_async
async def migrate_command() -> None:
    """Apply database migrations (the worker also does this at start)."""
    from models.db import create_engine, migrate
    from models.settings import get_settings

    engine = create_engine(get_settings().database_url)
    try:
        await migrate(engine)
    finally:
        await engine.dispose()
    typer.echo("database is up to date")


@keys_app.command("rotate")
@run_async
async def keys_rotate() -> None:
    """Rewrap every data key under the active master key (PAYLOAD_MASTER_KEY_ID).

    Run it after adding a new master key and making it active; once it has
    run, the old master key can be removed from PAYLOAD_MASTER_KEYS.
    """
    from models.db import create_engine, migrate
    from models.settings import get_settings
    from runtime.keys import key_store

    settings = get_settings()
    engine = create_engine(settings.database_url)
    try:
        await migrate(engine)
        rewrapped = await key_store(settings, engine=engine).rotate()
    finally:
        await engine.dispose()
    typer.echo(f"{rewrapped} data keys rewrapped under master key {settings.master_keys()[0]!r}")


@contact_app.command("upsert")
@run_async
async def contact_upsert(
    contact_id: ContactArgument,
    email: Annotated[str | None, typer.Option(help="Email address.")] = None,
    phone: Annotated[str | None, typer.Option(help="E.164 phone number.")] = None,
    first_name: Annotated[str | None, typer.Option(help="First name.")] = None,
    company: Annotated[str | None, typer.Option(help="Company.")] = None,
    timezone: Annotated[str | None, typer.Option(help="IANA time zone.")] = None,
    email_consent: Annotated[
        bool | None, typer.Option("--email-consent/--no-email-consent", help="Email opt-in/out.")
    ] = None,
    sms_consent: Annotated[
        bool | None, typer.Option("--sms-consent/--no-sms-consent", help="SMS opt-in/out.")
    ] = None,
    consent_source: Annotated[str, typer.Option(help="Where consent was given.")] = "cli",
    tag: Annotated[list[str] | None, typer.Option(help="Tag to add (repeatable).")] = None,
    attribute: Annotated[
        list[str] | None,
        typer.Option(help="key=value attribute, e.g. region=EMEA (repeatable)."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create or update a contact; a new id whose email (or, with DEDUPE_MATCH_DOMAIN_NAME,
    company domain and first name) matches a contact is merged into it."""
    from models.contacts import ConsentUpdate, ContactProfile
    from models.settings import get_settings
    from starter.services import dedupe

    profile = ContactProfile(
        id=contact_id,
        email=email,
        phone=phone,
        first_name=first_name,
        company=company,
        timezone=timezone,
        email_consent=None
        if email_consent is None
        else ConsentUpdate(granted=email_consent, source=consent_source),
        sms_consent=None
        if sms_consent is None
        else ConsentUpdate(granted=sms_consent, source=consent_source),
        tags=tag or [],
        attributes=_key_values(attribute, "--attribute"),
    )
    settings = get_settings()

    async def enter(engine: AsyncEngine) -> dedupe.Entry:
        entry = await dedupe.enter_contact(
            engine,
            profile,
            key=settings.suppression_key(),
            match_domain_name=settings.dedupe_match_domain_name,
            actor=cli_actor(),
        )
        if entry.merged_from is not None:
            await _finish_merges(engine, entry.contact.id)
        return entry

    entry = await with_engine(enter)
    if as_json:
        _print_json(
            {
                **entry.contact.model_dump(mode="json"),
                "merged_from": entry.merged_from,
                "matched_by": entry.matched_by,
            }
        )
    elif entry.merged_from is None:
        typer.echo(f"contact {entry.contact.id} saved")
    else:
        typer.echo(
            f"contact {entry.merged_from} merged into {entry.contact.id} "
            f"(matched by {entry.matched_by}); {entry.contact.id} saved"
        )


async def _finish_merges(engine: AsyncEngine, survivor: str) -> None:
    """Tell the contact workflows of the survivor's new merges (see `dedupe.finish_merges`)."""
    from models.settings import get_settings
    from rules.scoring import ScoringModel
    from runtime.temporal import connect
    from starter.services import dedupe

    settings = get_settings()
    await dedupe.finish_merges(
        await connect(),
        engine,
        survivor,
        scoring=ScoringModel.load(settings.scoring_file),
        task_queue=settings.task_queue,
        day_seconds=settings.day_seconds,
    )


@contact_app.command("merge")
@run_async
async def contact_merge(
    survivor: ContactArgument,
    loser: Annotated[
        str, typer.Argument(help="The contact merged into SURVIVOR.", callback=_contact_id)
    ],
    as_json: JsonFlag = False,
) -> None:
    """Merge LOSER into SURVIVOR: events, messages, tasks, consent history move; LOSER's
    journeys end (`merged`), SURVIVOR's go on; LOSER's id becomes an alias of SURVIVOR."""
    from starter.services import dedupe

    async def merge(engine: AsyncEngine) -> dedupe.MergeOutcome:
        outcome = await dedupe.merge_contacts(engine, survivor, loser, actor=cli_actor())
        await _finish_merges(engine, survivor)
        return outcome

    outcome = await with_engine(merge)
    if as_json:
        _print_json(_merge_row(outcome.merge, already=outcome.already_merged))
        return
    if outcome.already_merged:
        typer.echo(f"contact {loser} was already merged into {survivor}: nothing changed")
        return
    moved = ", ".join(f"{count} {table}" for table, count in outcome.merge.moved.items())
    typer.echo(f"contact {loser} merged into {survivor}" + (f" (moved: {moved})" if moved else ""))


def _merge_row(merge: Any, *, already: bool = False) -> dict[str, Any]:
    from starter.api.schemas import MergeView

    return MergeView.of(merge, already=already).model_dump(mode="json")


@contact_app.command("merges")
@run_async
async def contact_merges(
    since: Annotated[
        str | None, typer.Option(help="From this ISO date or datetime (UTC without an offset).")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Until this ISO date or datetime (excluded); default now.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """The merges (audit rows) and the duplicate rate of the period (seed 002: at most 2%)."""
    from datetime import UTC

    from starter.services import dedupe
    from starter.services.report import parse_since

    try:
        start = datetime(1970, 1, 1, tzinfo=UTC) if since is None else parse_since(since)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--since") from None
    try:
        end = datetime.now(UTC) if until is None else parse_since(until)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--until") from None

    async def read(engine: AsyncEngine) -> tuple[list[Any], dedupe.DuplicateRate]:
        merges = await dedupe.list_merges(engine, since=start, until=end)
        return merges, await dedupe.duplicate_rate(engine, start, end)

    merges, rate = await with_engine(read)
    if as_json:
        _print_json(
            {
                "merges": [_merge_row(merge) for merge in merges],
                "duplicate_rate": {
                    "duplicates": rate.duplicates,
                    "leads": rate.leads,
                    "rate": rate.rate,
                    "target": rate.target,
                },
            }
        )
        return
    for merge in merges:
        typer.echo(
            f"{merge.merged_at:%Y-%m-%d %H:%M:%S} {merge.loser_id} → {merge.survivor_id} "
            f"({merge.matched_by}, {merge.actor})"
        )
    shown = "n/a" if rate.rate is None else f"{rate.rate:.1%}"
    typer.echo(
        f"duplicate rate: {shown} ({rate.duplicates} duplicates found on entry of "
        f"{rate.leads} leads; target ≤ {rate.target:.0%})"
    )


@contact_app.command("show")
@run_async
async def contact_show(contact_id: ContactArgument, as_json: JsonFlag = False) -> None:
    """Show a contact as the CRM holds it: score (total, fit, behaviour), band, owner, tags."""
    from starter.api.schemas import ContactView
    from starter.services import operations

    contact = ContactView.of(
        await with_engine(lambda engine: operations.get_contact(engine, contact_id))
    )
    if as_json:
        _print_json(contact.model_dump(mode="json"))
        return
    typer.echo(
        f"{contact.id}: score {contact.lead_score} (fit {contact.fit_score}, behaviour "
        f"{contact.behavior_score}), band {contact.lifecycle_stage or 'unscored'}, "
        f"owner {contact.owner_id or NOTHING}"
    )
    if contact.score_breakdown:
        parts = ", ".join(f"{kind} {points}" for kind, points in contact.score_breakdown.items())
        typer.echo(f"breakdown: {parts}")
    if contact.tags:
        typer.echo(f"tags: {', '.join(contact.tags)}")


@contact_app.command("consent")
@run_async
async def contact_consent(
    contact_id: ContactArgument,
    as_json: JsonFlag = False,
) -> None:
    """Show a contact's consent history: every opt-in and opt-out, when, from where, what."""
    from starter.api.schemas import ConsentChangeView
    from starter.services import operations

    rows = await with_engine(lambda engine: operations.consent_changes(engine, contact_id))
    if as_json:
        _print_json([ConsentChangeView.of(row).model_dump(mode="json") for row in rows])
        return
    for row in rows:
        line = f"{row.occurred_at:%Y-%m-%d %H:%M:%S} {row.channel:5} "
        line += f"{'granted' if row.granted else 'withdrawn':9} {row.source}"
        extras = [part for part in (row.wording, row.ip, row.user_agent) if part]
        typer.echo(line + (f" ({'; '.join(extras)})" if extras else ""))


@app.command("catalog")
@run_async
async def journey_catalog(
    journey: Annotated[
        str | None, typer.Argument(help="One journey, with its options described.")
    ] = None,
    as_json: JsonFlag = False,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="As the README's journey table (Markdown).")
    ] = False,
) -> None:
    """List the journeys: trigger, enrolment options (`enroll --option`), plan and exits."""
    from starter.services import operations

    described = [operations.describe_journey(journey)] if journey else operations.journey_catalog()
    if as_json:
        _print_json([_dump(description) for description in described])
        return
    if markdown:
        from starter.cli.journey_table import journey_table

        typer.echo(journey_table(described))
        return
    for description in described:
        started_by = f", started by {description.trigger}" if description.trigger else ""
        typer.echo(f"{description.name}: {description.title} ({description.category}{started_by})")
        for option in description.options:
            given = "required" if option.required else f"default {json.dumps(option.default)}"
            about = f": {option.description}" if journey and option.description else ""
            typer.echo(f"  --option {option.name}=<{option.type}> ({given}){about}")
        for step in description.plan:
            typer.echo(f"  {step.label}")
        for ending in description.exits:
            typer.echo(f"  ends early: {ending.reason} ({ending.when})")


def _enroll_option(field: str) -> str:
    """How `enroll` names an input field in messages: `--day-seconds`, `--option renewal_date`."""
    return "--day-seconds" if field == "day_seconds" else f"--option {field}"


def _option_values(
    items: list[str] | None, option: str = "--option", *, text_if_not_json: bool = False
) -> dict[str, Any]:
    """`--option key=value` as input fields; a value written as a JSON list or object is parsed
    (`--option reminder_days=[30,7]`), any other stays a string for the journey's model.

    Args:
        items: The `key=value` options.
        option: The option's name, for the error.
        text_if_not_json: Keep a value that starts like JSON but is not as text
            (event properties are free-form) instead of refusing it.
    """
    options: dict[str, Any] = _key_values(items, option)
    for key, value in options.items():
        if value.startswith(("[", "{")):
            try:
                options[key] = json.loads(value)
            except json.JSONDecodeError as error:
                if not text_if_not_json:
                    raise typer.BadParameter(
                        f"{key}: not JSON ({error})", param_hint=option
                    ) from None
    return options


@app.command()
@run_async
async def enroll(
    journey: Annotated[str, typer.Argument(help="Journey, e.g. welcome-series.")],
    contact_id: ContactArgument,
    option: Annotated[
        list[str] | None,
        typer.Option(
            help="key=value (repeatable): the journey's options, e.g. "
            "renewal_date=2027-03-01T00:00Z (`journeys catalog JOURNEY` lists them)."
        ),
    ] = None,
    day_seconds: Annotated[
        int | None, typer.Option(help="Accelerated clock: seconds per journey day.")
    ] = None,
) -> None:
    """Enrol a contact into a journey."""
    from models.settings import get_settings
    from runtime.temporal import connect
    from starter.services import operations

    options = _option_values(option)
    if day_seconds is not None:
        options["day_seconds"] = day_seconds
    journey_input = operations.journey_input_for(
        journey,
        contact_id,
        options,
        accelerated_clock_allowed=get_settings().allow_accelerated_clock,
        option_name=_enroll_option,
    )
    client = await connect()
    settings = get_settings()
    workflow_id = await with_engine(
        lambda engine: operations.enroll(
            client, engine, journey, journey_input, task_queue=settings.task_queue
        )
    )
    typer.echo(f"enrolled: {workflow_id}")


@app.command()
@run_async
async def event(
    contact_id: ContactArgument,
    event_type: Annotated[str, typer.Argument(help="Event type, e.g. unsubscribed.")],
    event_id: Annotated[str | None, typer.Option("--id", help="Idempotency key.")] = None,
    prop: Annotated[
        list[str] | None,
        typer.Option(
            "--property",
            help="key=value (repeatable); a JSON list or object as the value is parsed, e.g. "
            'items=\'[{"name": "Mug", "quantity": 2, "price": "12.00"}]\'.',
        ),
    ] = None,
    day_seconds: Annotated[
        int | None,
        typer.Option(
            help="Clock of a contact workflow the event starts: seconds per journey day "
            "(default: the DAY_SECONDS setting)."
        ),
    ] = None,
) -> None:
    """Send a behaviour event to the contact workflow (scoring, triggers, journeys)."""
    import uuid
    from datetime import UTC, datetime

    from models.event_properties import check_properties
    from models.events import BehaviorEvent
    from models.settings import accelerated_clock_refusal, get_settings
    from runtime.temporal import connect
    from starter.services import operations
    from starter.services.intake import accept_events

    properties = _option_values(prop, "--property", text_if_not_json=True)
    check_properties(event_type, properties, title="event")
    behavior_event = BehaviorEvent(
        event_id=event_id or f"cli-{uuid.uuid4()}",
        contact_id=contact_id,
        type=event_type,
        occurred_at=datetime.now(UTC),
        properties=properties,
    )
    settings = get_settings()
    if day_seconds is not None:
        clock_refusal = accelerated_clock_refusal(
            day_seconds, allowed=settings.allow_accelerated_clock, name="--day-seconds"
        )
        if clock_refusal:
            raise operations.InvalidRequest(clock_refusal)
    client = await connect()
    [result] = await with_engine(
        lambda engine: accept_events(
            client,
            engine,
            [behavior_event],
            task_queue=settings.task_queue,
            day_seconds=day_seconds or settings.day_seconds,
            suppression_key=settings.suppression_key(),
        )
    )
    if result.status == "erased":
        raise operations.Gone(result.detail)
    if result.status == "conflict":
        raise operations.Conflict(result.detail)
    if result.status == "duplicate":
        typer.echo(f"event {behavior_event.event_id} was already accepted by {result.workflow_id}")
    else:
        typer.echo(f"event {behavior_event.event_id} accepted by {result.workflow_id}")
    if not result.contact_known:
        typer.echo(
            f"warning: contact {contact_id} does not exist yet: the event is kept and scored, "
            f"but starts no journey; create it first (journeys contact upsert {contact_id} …)",
            err=True,
        )


@app.command()
@run_async
async def forget(contact_id: ContactArgument) -> None:
    """Erase a contact: end its journeys, delete its personal data (hashed suppressions stay)."""
    from models.settings import get_settings
    from runtime.temporal import connect
    from starter.services import operations

    client = await connect()
    await with_engine(
        lambda engine: operations.forget_contact(
            client, engine, contact_id, task_queue=get_settings().task_queue
        )
    )
    typer.echo(f"contact {contact_id} erased")


@app.command("export")
@run_async
async def export_command(
    contact_id: ContactArgument,
    output: Annotated[
        Path | None,
        typer.Option(help="Write the JSON document to this file instead of stdout."),
    ] = None,
    live: Annotated[
        bool,
        typer.Option(
            "--live/--no-live", help="Add the live state of running journeys (asks Temporal)."
        ),
    ] = True,
) -> None:
    """Everything held about a contact, as one JSON document (an access request)."""
    from models.settings import get_settings
    from rules.scoring import ScoringModel
    from starter.services.export import export_contact

    settings = get_settings()
    temporal = None
    if live:
        from runtime.temporal import connect

        temporal = await connect()
    document = await with_engine(
        lambda engine: export_contact(
            engine,
            contact_id,
            scoring=ScoringModel.load(settings.scoring_file),
            temporal=temporal,
        )
    )
    text = json.dumps(document, indent=2, ensure_ascii=False)
    if output is None:
        typer.echo(text)
        return
    output.write_text(text + "\n", encoding="utf-8")
    typer.echo(f"export of {contact_id} written to {output}", err=True)


async def _steer(
    contact_id: str, journey: str, action: JourneyAction, reason: str = "operator"
) -> None:
    from runtime.temporal import connect
    from starter.services import operations

    workflow_ids = await operations.steer_journey(
        await connect(), contact_id, journey, action, reason=reason
    )
    typer.echo(f"{action} sent to {', '.join(workflow_ids)}")


JourneyArgument = Annotated[str, typer.Argument(help="Journey, e.g. welcome-series.")]


@app.command("exit")
@run_async
async def exit_command(
    contact_id: ContactArgument,
    journey: JourneyArgument,
    reason: Annotated[str, typer.Option(help="Recorded as the exit reason.")] = "operator",
) -> None:
    """End a contact's running journey now (every run of it)."""
    await _steer(contact_id, journey, "exit", reason)


@app.command()
@run_async
async def pause(contact_id: ContactArgument, journey: JourneyArgument) -> None:
    """Pause a contact's running journey: it sends nothing until resumed."""
    await _steer(contact_id, journey, "pause")


@app.command()
@run_async
async def resume(contact_id: ContactArgument, journey: JourneyArgument) -> None:
    """Resume a paused journey."""
    await _steer(contact_id, journey, "resume")


@app.command("skip-wait")
@run_async
async def skip_wait(contact_id: ContactArgument, journey: JourneyArgument) -> None:
    """Fire the journey's current wait now (staging): later days keep their spacing."""
    await _steer(contact_id, journey, "skip-wait")


@app.command("list")
@run_async
async def list_command(
    journey: Annotated[str | None, typer.Option(help="Only this journey.")] = None,
    step: Annotated[str | None, typer.Option(help="Only journeys at this step, e.g. day4.")] = None,
    all_runs: Annotated[
        bool, typer.Option("--all", help="Finished runs too, not only running ones.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """List journey workflows by journey and step (the search attributes the UI filters on)."""
    from models.search_attributes import CONTACT_ID, JOURNEY, JOURNEY_STEP
    from runtime.temporal import connect
    from starter.services import operations

    executions = await operations.list_journeys(
        await connect(), journey=journey, step=step, running=not all_runs
    )
    rows = [
        {
            "workflow_id": execution.id,
            "journey": _keyword(execution, JOURNEY),
            "contact_id": _keyword(execution, CONTACT_ID),
            "step": _keyword(execution, JOURNEY_STEP),
            "status": execution.status.name if execution.status else "UNKNOWN",
            "started_at": execution.start_time,
        }
        for execution in executions
    ]
    if as_json:
        _print_json(rows)
        return
    for execution, row in zip(executions, rows, strict=True):
        typer.echo(
            f"{row['workflow_id']:40} {row['status']:10} step {row['step'] or NOTHING} "
            f"started {_when(execution.start_time)}"
        )
    typer.echo(f"{len(rows)} journey(s)", err=True)


def _keyword(execution: WorkflowExecution, key: SearchAttributeKey[str]) -> str | None:
    values = execution.typed_search_attributes.get(key)
    return values if isinstance(values, str) else None


@app.command()
@run_async
async def setup(
    retention_days: Annotated[
        int, typer.Option(help="History retention of a namespace created here.")
    ] = 30,
) -> None:
    """Prepare a Temporal cluster: the namespace (if missing) and the search attributes.

    Idempotent: run it again and it changes nothing.
    """
    from datetime import timedelta

    from runtime.temporal import connect
    from starter.dev.cluster import register_namespace, register_search_attributes

    client = await connect()
    created = await register_namespace(client, retention=timedelta(days=retention_days))
    typer.echo(f"namespace {client.namespace}: " + ("created" if created else "already exists"))
    added = await register_search_attributes(client)
    typer.echo("search attributes: " + (f"added {', '.join(added)}" if added else "all registered"))


LAST_MESSAGES = 5
"""Messages `status` shows, newest last."""

NOTHING = "—"
"""What a human-readable line shows where a value is missing (never `None`)."""


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S}Z"


def journey_line(run: JourneyRun) -> str:
    """One journey of `status`, as a person reads it: step, sends, what comes next, why it ended.

    Example: `welcome-series-kim  RUNNING  step day1, 2 sent, A/B welcome-subject: b, next: day2
    at 2026-03-02 09:00:00Z`.
    """
    line = f"{run.workflow_id:40} {run.execution_status:12}"
    state = run.state
    if state is None:
        return f"{line} (no state reported)"
    parts = [f"step {state.step}", f"{state.messages_sent} sent"]
    parts += [f"A/B {experiment}: {arm}" for experiment, arm in state.arms.items()]
    if state.status == "paused":
        parts.append("PAUSED")
    if state.next_wake_at is not None:
        parts.append(f"next: {state.next_step or 'wake-up'} at {_when(state.next_wake_at)}")
    elif state.status in ("running", "paused"):
        parts.append("no next step scheduled")
    if state.exit_reason:
        parts.append(f"exited: {state.exit_reason}")
    return f"{line} {', '.join(parts)}"


@app.command()
@run_async
async def status(contact_id: ContactArgument, as_json: JsonFlag = False) -> None:
    """Show a contact's journeys (step, status, next wake-up) and its last messages."""
    from runtime.temporal import connect
    from starter.services import operations

    runs = await operations.journey_runs(await connect(), contact_id)
    recent = (
        await with_engine(lambda engine: operations.message_log(engine, contact_id=contact_id))
    )[-LAST_MESSAGES:]
    if as_json:
        _print_json(
            {
                "journeys": [_dump(run) for run in runs],
                "last_messages": [row.model_dump(mode="json") for row in recent],
            }
        )
        return
    if not runs:
        typer.echo(f"no journeys for {contact_id}")
    for run in runs:
        typer.echo(journey_line(run))
    if recent:
        typer.echo("last messages:")
    for row in recent:
        typer.echo(f"  {row.created_at:%Y-%m-%d %H:%M:%S} {row.journey}/{row.step} {row.status}")


@app.command()
@run_async
async def messages(
    contact_id: Annotated[
        str | None, typer.Argument(help="Only this contact.", callback=_contact_id)
    ] = None,
    journey: Annotated[str | None, typer.Option(help="Only this journey.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List the message log (one row per message)."""
    from starter.services import operations

    rows = await with_engine(
        lambda engine: operations.message_log(engine, contact_id=contact_id, journey=journey)
    )
    if as_json:
        _print_json([row.model_dump(mode="json") for row in rows])
        return
    for row in rows:
        typer.echo(
            f"{row.created_at:%Y-%m-%d %H:%M:%S} {row.contact_id:16} {row.journey}/{row.step:8}"
            f" {row.status:20} {row.subject or NOTHING}"
        )


@app.command()
@run_async
async def deals(
    contact_id: Annotated[
        str | None, typer.Option("--contact", help="Only this contact.", callback=_contact_id)
    ] = None,
    status: Annotated[str | None, typer.Option(help="Only open, won or lost deals.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List deals (opened by `lead_qualified`): stage, status, amount, owner, use case."""
    from models.deals import DealStatus
    from starter.api.schemas import DealView
    from starter.services.deals import list_deals

    try:
        wanted = None if status is None else DealStatus(status)
    except ValueError:
        raise typer.BadParameter(
            f"expected open, won or lost, got {status!r}", param_hint="--status"
        ) from None
    records = await with_engine(
        lambda engine: list_deals(engine, contact_id=contact_id, status=wanted)
    )
    views = [DealView.of(record) for record in records]
    if as_json:
        _print_json([_dump(view) for view in views])
        return
    if not views:
        typer.echo("no deals" + (f" for {contact_id}" if contact_id else ""))
    for view in views:
        typer.echo(deal_line(view))


def deal_line(deal: DealView) -> str:
    """One deal of `journeys deals`, e.g.
    `#3    dana             won    negotiation    12000 EUR      sdr-ines   Onboarding emails`."""
    amount = f"{deal.amount} {deal.currency}" if deal.amount is not None else NOTHING
    line = (
        f"#{deal.id:<4} {deal.contact_id:16} {deal.status:6} {deal.stage:14} {amount:14}"
        f" {deal.owner_id or NOTHING:10} {deal.use_case or NOTHING}"
    )
    return f"{line} (lost: {deal.lost_reason})" if deal.lost_reason else line


@app.command()
@run_async
async def report(
    journey: Annotated[
        str | None, typer.Option(help="Only this journey's funnel (and no pipeline section).")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            help="Start of the period: runs started, messages written, email events and "
            "pipeline moves from then on. An ISO date or datetime (2025-03-01, "
            "2025-03-01T09:00:00+01:00); no offset means UTC."
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            help="End of the period (exclusive), as --since; default: now. The pipeline "
            "figures are measured as of this moment."
        ),
    ] = None,
    output_format: Annotated[
        str, typer.Option("--format", help="table, json or html (a standalone page).")
    ] = "table",
    output: ReportFile = None,
    as_json: JsonFlag = False,
) -> None:
    """Funnel per journey and step (entered, sent, opened, clicked, converted, exit reasons),
    and the pipeline against seed 002's targets, overall and per `src_` source.

    Pipeline rates (lead → MQL, MQL → SQL, SQL → opportunity, recycled → MQL
    again): of the contacts that first moved to the first stage in the period,
    the share that moved to the second by the end of the period. First touch:
    from the hand-off (the MQL move) to the first `rep_contacted`. SLA shares:
    the hand-offs of the period whose deadline has passed, without a breach.
    Days to opportunity: from the lead to the period's new opportunities.
    """
    from starter.services import report as funnel

    try:
        chosen = funnel.ReportFormat("json" if as_json else output_format)
    except ValueError:
        raise typer.BadParameter(
            f"expected table, json or html, got {output_format!r}", param_hint="--format"
        ) from None
    start = _moment(since, "--since", funnel.parse_since)
    end = _moment(until, "--until", funnel.parse_since)
    if start is not None and end is not None and end <= start:
        raise typer.BadParameter("must be after --since", param_hint="--until")
    sla = _hand_off_slas()
    counted = await with_engine(
        lambda engine: funnel.full_report(engine, journey=journey, since=start, until=end, sla=sla)
    )
    typer.echo(funnel.render(counted, chosen), file=output)
    if output is not None:
        typer.echo(f"report written to {output.name}", err=True)


@sla_app.command("violations")
@run_async
async def sla_violations(
    since: Annotated[
        str | None,
        typer.Option(
            help="Only SLAs breached since then: an ISO date or datetime (2025-03-01, "
            "2025-03-01T09:00:00+01:00); no offset means UTC."
        ),
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Only SLAs breached before then (same format).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """SLA violations per rep and per SLA (first touch, qualification, SQL follow-up)."""
    from starter.services import report, sla

    bounds = {}
    for name, text in (("since", since), ("until", until)):
        try:
            bounds[name] = None if text is None else report.parse_since(text)
        except ValueError as error:
            raise typer.BadParameter(str(error), param_hint=f"--{name}") from None
    counted = await with_engine(
        lambda engine: sla.sla_violations_by_rep(engine, bounds["since"], bounds["until"])
    )
    if as_json:
        _print_json(_dump(counted))
    else:
        typer.echo(sla.render_table(counted))


@experiments_app.callback(invoke_without_command=True)
@run_async
async def experiments(
    ctx: typer.Context,
    name: Annotated[
        str | None,
        typer.Argument(
            metavar="NAME", help="One experiment, e.g. welcome-subject: its full report."
        ),
    ] = None,
    output_format: Annotated[
        str, typer.Option("--format", help="table, json or html (a standalone page).")
    ] = "table",
    baseline: Annotated[
        float | None,
        typer.Option(
            help="Control's expected conversion rate for the minimum sample, e.g. 0.05 "
            "(default: the experiment's declaration)."
        ),
    ] = None,
    mde: Annotated[
        float | None,
        typer.Option(
            help="Minimum detectable effect: the smallest absolute difference of rates worth "
            "finding, e.g. 0.03 for 3 points (default: the declaration's)."
        ),
    ] = None,
    output: ReportFile = None,
    as_json: JsonFlag = False,
) -> None:
    """A/B tests and holdouts: per arm exposed, sent, opened, clicked, converted, the
    conversion rate with its 95% interval, the difference to control and its p-value; the
    split check, the minimum sample and the verdict (no winner until the data allows one).

    Without NAME: every declared experiment, one line each (html: every full report).
    Rates count the contacts whose conversion window has closed; those still inside
    it are shown as pending. `journeys experiments stop NAME` ends one.
    """
    if ctx.invoked_subcommand is not None:
        return
    from datetime import UTC

    from starter.services import experiments as results

    try:
        chosen = results.ExperimentFormat("json" if as_json else output_format)
    except ValueError:
        raise typer.BadParameter(
            f"expected table, json or html, got {output_format!r}", param_hint="--format"
        ) from None
    now = datetime.now(UTC)
    if name is None and chosen != results.ExperimentFormat.HTML:
        if baseline is not None or mde is not None:
            raise typer.BadParameter("give NAME with --baseline / --mde", param_hint="NAME")
        summaries = await with_engine(lambda engine: results.experiments_overview(engine, now=now))
        text = (
            json.dumps([_dump(summary) for summary in summaries], indent=2)
            if chosen == results.ExperimentFormat.JSON
            else results.render_overview_table(summaries)
        )
    else:
        reports = await with_engine(
            lambda engine: _experiment_reports(engine, name, now, baseline=baseline, mde=mde)
        )
        text = results.render_html(reports) if name is None else results.render(reports[0], chosen)
    typer.echo(text, file=output)
    if output is not None:
        typer.echo(f"report written to {output.name}", err=True)


async def _experiment_reports(
    engine: AsyncEngine,
    name: str | None,
    now: datetime,
    *,
    baseline: float | None,
    mde: float | None,
) -> list[Any]:
    """The report of experiment `name`, or of every declared one (by name)."""
    from starter.services import experiments as results
    from starter.services import operations
    from workflows import catalog

    declared = [catalog.experiment(name)] if name else list(catalog.experiments().values())
    try:
        return [
            await results.experiment_report(
                engine, experiment, now=now, baseline_rate=baseline, minimum_detectable_effect=mde
            )
            for experiment in sorted(declared, key=lambda experiment: experiment.name)
        ]
    except operations.InvalidRequest as error:
        raise typer.BadParameter(str(error), param_hint="--baseline / --mde") from None


@experiments_app.command("stop")
@run_async
async def experiments_stop(
    name: Annotated[str, typer.Argument(help="The experiment, e.g. welcome-subject.")],
    winner: Annotated[
        str | None,
        typer.Option(help="The arm every new entrant gets from now on (default: control)."),
    ] = None,
    by: Annotated[
        str | None, typer.Option(help="Who decides, for the audit (default: cli:<login name>).")
    ] = None,
    note: Annotated[str | None, typer.Option(help="Why, for the audit.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Stop an experiment: every new entrant gets the winning arm (or control) from now on;
    contacts already in it keep their arm. Recorded with who and when; it stops once."""
    from datetime import UTC

    from starter.services import experiments as results

    decision = await with_engine(
        lambda engine: results.stop_experiment(
            engine,
            name,
            winner=winner,
            decided_by=by or cli_actor(),
            note=note,
            now=datetime.now(UTC),
        )
    )
    if as_json:
        _print_json({"experiment": name, **_dump(decision)})
        return
    chosen = f"winner {decision.winner}" if decision.winner else "no winner: control"
    typer.echo(
        f"experiment {name} stopped by {decision.decided_by} ({chosen}); new entrants get "
        f"{decision.winner or 'control'} from now on"
    )


@segments_app.callback(invoke_without_command=True)
@run_async
async def segments(
    ctx: typer.Context,
    name: Annotated[
        str | None,
        typer.Argument(metavar="NAME", help="One segment, e.g. hot-pricing-visitors: its members."),
    ] = None,
    after: Annotated[
        str | None, typer.Option(help="Members after this contact id (the next page).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Members per page.")] = 50,
    as_json: JsonFlag = False,
) -> None:
    """Segments (`segments.toml` and the API): each with its rule and how many contacts it
    has now. With NAME: that segment and a page of its members, since when.
    `journeys segments preview RULE` counts a rule before it is saved.
    """
    if ctx.invoked_subcommand is not None:
        return
    from models.settings import get_settings
    from starter.services import segments as segment_service

    path = get_settings().segments_file
    if name is None:
        summaries = await with_engine(
            lambda engine: segment_service.segment_summaries(engine, path)
        )
        if as_json:
            _print_json([_dump(summary) for summary in summaries])
            return
        typer.echo(segment_service.render_table(summaries))
        return
    members = await with_engine(
        lambda engine: segment_service.segment_members(engine, path, name, after=after, limit=limit)
    )
    if as_json:
        _print_json(_dump(members))
        return
    typer.echo(segment_service.render_members(members))


@segments_app.command("preview")
@run_async
async def segments_preview(
    rule: Annotated[
        str,
        typer.Argument(
            help="The rule, in JSON or as a TOML inline table, "
            "e.g. '{ has_tag = \"int_pricing\" }'."
        ),
    ],
    as_json: JsonFlag = False,
) -> None:
    """How many contacts a rule matches now, with a sample, before it is saved (nothing is
    recorded; the rule syntax is in segments.toml)."""
    from starter.services import segments as segment_service

    condition = segment_service.parse_rule(rule)
    found = await with_engine(lambda engine: segment_service.preview(engine, condition))
    if as_json:
        _print_json({"matches": found.count, "contacts": found.contacts, "sample": found.sample})
        return
    sample = ", ".join(found.sample) or "none"
    typer.echo(f"{found.count} of {found.contacts} contacts match; e.g. {sample}")
