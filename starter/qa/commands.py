"""The QA commands of the `journeys` CLI: `preview`, `test-send`, `simulate`.

`register(app, run_async)` adds them to the CLI. This module imports only
Typer: the rendering, the worker and the test server load inside the commands.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import asdict
from datetime import datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from models.settings import Settings
    from models.tables import Contact
    from starter.qa.preview import StepPreview

RunAsync = Callable[[Callable[..., Coroutine[Any, Any, None]]], Callable[..., None]]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON.")]
JourneyName = Annotated[str, typer.Argument(help="Journey, e.g. welcome-series.")]
ContactOption = Annotated[
    str | None, typer.Option("--contact", help="Render for this contact (from the database).")
]
SampleFlag = Annotated[
    bool,
    typer.Option(
        "--sample", help="Render for the sample contact(s): the default without --contact."
    ),
]


def register(app: typer.Typer, run_async: RunAsync) -> None:
    """Add `preview`, `test-send` and `simulate` to `app`; `run_async` turns errors into exit 1."""
    app.command("preview")(run_async(preview))
    app.command("simulate")(run_async(simulate))
    app.command("test-send")(run_async(test_send))


@asynccontextmanager
async def _engine(settings: Settings, *, migrated: bool) -> AsyncIterator[AsyncEngine]:
    from models.db import create_engine, migrate

    engine = create_engine(settings.database_url)
    try:
        if migrated:
            await migrate(engine)
        yield engine
    finally:
        await engine.dispose()


async def _contacts(engine: AsyncEngine, contact_id: str | None) -> list[Contact]:
    """The contact from the database, or the two samples."""
    from starter.qa.contacts import EMPTY_SAMPLE, SAMPLE, contact_row
    from starter.services import operations

    if contact_id is None:
        return [contact_row(SAMPLE), contact_row(EMPTY_SAMPLE)]
    return [await operations.get_contact(engine, contact_id)]


async def preview(
    journey: JourneyName,
    step: Annotated[
        str | None,
        typer.Option(
            help="Only this step (every arm of an A/B message), e.g. day4; or one arm: day0@b."
        ),
    ] = None,
    contact: ContactOption = None,
    sample: SampleFlag = False,
    out: Annotated[
        Path | None,
        typer.Option(help="Folder for the rendered messages (default: .data/preview/<journey>)."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Render every message of a journey for a contact and check it (links, UTM, footer).

    Writes `<out>/<contact>/<step>.txt` and `.html` (email) or `.sms.txt`, prints a
    summary per step and exits 1 naming the step when a template or a check fails.
    Without --contact it renders for a typical sample contact and for one with no
    optional fields (to show the fallbacks).
    """
    from datetime import UTC, datetime

    from activities.messaging import MessagingActivities
    from activities.providers import OutboxEmailProvider, OutboxSmsProvider
    from models.settings import get_settings
    from starter.qa.catalog import journey_class, message_steps, step_messages
    from starter.qa.preview import ChecksFailed, preview_journey
    from starter.qa.templates import load_catalog

    if contact is not None and sample:
        raise typer.BadParameter("give --contact or --sample, not both", param_hint="--sample")
    settings = get_settings()
    chosen = journey_class(journey)
    steps = step_messages(chosen, step) if step else message_steps(chosen)
    folder = out or Path(".data/preview") / journey
    templates = load_catalog(settings.templates_dir, chosen, steps)
    async with _engine(settings, migrated=contact is not None) as engine:
        composer = MessagingActivities.from_settings(
            settings,
            engine,
            templates=templates,
            email_provider=OutboxEmailProvider(folder),
            sms_provider=OutboxSmsProvider(folder),
        )
        results = preview_journey(
            composer,
            chosen,
            steps,
            await _contacts(engine, contact),
            brand=templates.brand,
            now=datetime.now(UTC),
            out=folder,
        )
    if as_json:
        typer.echo(json.dumps([asdict(r) | {"ok": r.ok} for r in results], indent=2))
    else:
        _print_previews(journey, results, folder)
    failed = [r for r in results if not r.ok]
    if failed:
        raise ChecksFailed(
            "\n".join(
                f"preview failed: {r.template} (contact {r.contact}): {problem}"
                for r in failed
                for problem in r.problems
            )
        )


def _yes(value: bool | None) -> str:
    return "n/a" if value is None else "yes" if value else "NO"


def _print_previews(journey: str, results: list[StepPreview], folder: Path) -> None:
    if not results:
        typer.echo(f"{journey} sends no messages to contacts: nothing to preview")
    for result in results:
        verdict = "ok" if result.ok else "FAILED"
        typer.echo(f"{result.template} [{result.channel}] for {result.contact}: {verdict}")
        if result.subject is not None:
            typer.echo(f"  subject:        {result.subject}")
            typer.echo(f"  preview:        {result.preview}")
        if result.sms is not None:
            typer.echo(f"  SMS:            {result.sms}")
        for link in result.links:
            typer.echo(f"  link:           {link.url} (UTM {'yes' if link.utm else 'NO'})")
        typer.echo(
            f"  unsubscribe:    {_yes(result.unsubscribe)}   postal address: "
            f"{_yes(result.postal_address)}   opt-out line: {_yes(result.opt_out)}"
        )
        typer.echo(f"  fallbacks:      {', '.join(result.fallbacks) or 'none'}")
        for problem in result.problems:
            typer.echo(f"  problem:        {problem}")
    typer.echo(f"rendered messages in {folder}/", err=True)


def _iso(value: object) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _options(items: list[str] | None) -> dict[str, Any]:
    """`key=value` options; a value that parses as JSON is taken as such (`band={"band": …}`)."""
    options: dict[str, Any] = {}
    for item in items or []:
        key, separator, value = item.partition("=")
        if not separator:
            raise typer.BadParameter(f"expected key=value, got {item!r}", param_hint="--option")
        try:
            options[key] = json.loads(value)
        except ValueError:
            options[key] = value
    return options


def _start(value: str) -> time | None:
    if value == "now":
        return None
    try:
        return time.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"expected HH:MM or now, got {value!r}", param_hint="--start"
        ) from None


async def simulate(
    journey: JourneyName,
    contact_file: Annotated[
        Path | None,
        typer.Option(
            help="The contact: a JSON or TOML file of contact fields (default: a sample)."
        ),
    ] = None,
    event: Annotated[
        list[str] | None,
        typer.Option(
            help="<offset>:<event type> from enrolment, e.g. 2d:email_opened (repeatable)."
        ),
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option(
            help="key=value journey input field, e.g. subscription_id=sub-1 (repeatable)."
        ),
    ] = None,
    start: Annotated[
        str, typer.Option(help="The contact's local time the journey starts at (HH:MM), or now.")
    ] = "10:00",
    as_json: JsonFlag = False,
) -> None:
    """Run the real journey on the time-skipping test server and print its timeline.

    The worker, templates and messaging policy (quiet hours, caps) are the real
    ones; the database, outbox and task queue are temporary. The timeline shows
    each message sent, deferred or suppressed (and why) in journey time and the
    contact's local time, and where the journey exits and why.
    """
    from models.settings import get_settings
    from runtime.logs import configure_logging
    from starter.qa.contacts import SAMPLE, contact_from_file
    from starter.qa.simulate import Simulation, local_time, parse_event
    from starter.qa.simulate import simulate as run

    simulation = Simulation(
        journey=journey,
        contact=SAMPLE if contact_file is None else contact_from_file(contact_file),
        events=[parse_event(spec) for spec in event or []],
        options=_options(option),
        start=_start(start),
    )
    settings = get_settings()
    configure_logging(level="ERROR", fmt=settings.log_format)  # the timeline is the output
    timeline = await run(settings, simulation)
    if as_json:
        typer.echo(json.dumps(asdict(timeline), indent=2, default=_iso))
        return
    typer.echo(
        f"{timeline.journey} for {timeline.contact_id} ({timeline.timezone}), "
        f"enrolled {local_time(timeline.enrolled_at, timeline.timezone)}"
    )
    for entry in timeline.entries:
        what = " ".join(part for part in (entry.step, entry.detail) if part)
        why = "; ".join(
            part for part in (entry.reason, entry.until and f"until {entry.until}") if part
        )
        typer.echo(
            f"  {entry.day:14} {entry.local:24} {entry.kind:10} {what}"
            + (f" ({why})" if why else "")
        )
    ending = f"exited: {timeline.exit_reason}" if timeline.status == "exited" else timeline.status
    typer.echo(f"{timeline.journey} {ending}")


async def test_send(
    target: Annotated[
        str,
        typer.Argument(
            help="<journey>/<step>, e.g. welcome-series/day0 (one A/B arm: .../day0@b)."
        ),
    ],
    to: Annotated[str, typer.Option(help="Send it here (an email address or E.164 number).")],
    contact: ContactOption = None,
    sample: SampleFlag = False,
) -> None:
    """Send one message of a journey, marked as a test, to --to through the configured provider.

    The subject starts with [TEST] and the email carries X-Journeys-Test: 1. It
    writes no message-log row (so no funnel count and no frequency cap), and is
    refused for an address suppressed on the channel.
    """
    from datetime import UTC

    from activities.messaging import MessagingActivities
    from activities.providers import email_provider_from_settings, sms_provider_from_settings
    from models.settings import get_settings
    from starter.qa.catalog import journey_class, message_step
    from starter.qa.templates import load_catalog
    from starter.qa.test_send import check_address, refuse_if_suppressed
    from starter.qa.test_send import test_send as send
    from starter.services.operations import InvalidRequest

    if contact is not None and sample:
        raise typer.BadParameter("give --contact or --sample, not both", param_hint="--sample")
    journey, separator, step_id = target.partition("/")
    if not separator or not step_id:
        raise InvalidRequest(f"{target!r}: expected <journey>/<step>, e.g. welcome-series/day0")
    settings = get_settings()
    chosen = journey_class(journey)
    step = message_step(chosen, step_id)
    check_address(step.channel, to)
    templates = load_catalog(settings.templates_dir, chosen, [step])
    email_provider = email_provider_from_settings(settings)
    sms_provider = sms_provider_from_settings(settings)
    async with _engine(settings, migrated=True) as engine:
        await refuse_if_suppressed(engine, step.channel, to, key=settings.suppression_key())
        [recipient, *_] = await _contacts(engine, contact)
        composer = MessagingActivities.from_settings(settings, engine, templates=templates)
        sent = await send(
            composer,
            chosen,
            step,
            recipient,
            to=to,
            email_provider=email_provider,
            sms_provider=sms_provider,
            now=datetime.now(UTC),
        )
    typer.echo(
        f"test {sent.channel} {target} (rendered for {recipient.id}) sent to the --to address "
        f"through {sent.provider}: {sent.message_id}; not in the message log"
    )
