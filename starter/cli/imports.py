"""`journeys import contacts FILE`: contacts from a CSV or NDJSON file (see
`starter/services/contact_import.py` for the rules).

`register(app, run_async)` adds the `import` group to the CLI. This module imports
only Typer: the import service and the database load inside the command.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

if TYPE_CHECKING:
    from starter.services.contact_import import ImportFormat, ImportReport

RunAsync = Callable[[Callable[..., Coroutine[Any, Any, None]]], Callable[..., None]]
NDJSON_SUFFIXES = (".ndjson", ".jsonl")
BAR_WIDTH = 30


def register(app: typer.Typer, run_async: RunAsync) -> None:
    """Add `import contacts` to `app`; `run_async` turns expected errors into one line."""
    import_app = typer.Typer(help="Import contacts from a file.", no_args_is_help=True)
    import_app.command("contacts")(run_async(import_contacts))
    app.add_typer(import_app, name="import")


async def import_contacts(
    file: Annotated[
        Path,
        typer.Argument(help="CSV (header line first) or NDJSON file.", exists=True, dir_okay=False),
    ],
    file_format: Annotated[
        Literal["csv", "ndjson"] | None,
        typer.Option("--format", help="csv or ndjson (default: from the file's suffix)."),
    ] = None,
    mapping: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            help="COLUMN=TARGET: a field (email, phone, first_name, company, timezone, id), "
            "attr:<name>, tags, a consent part (email_consent, email_consent_source, "
            "email_consent_at, email_consent_text, sms_…) or - to skip (repeatable).",
        ),
    ] = None,
    tag: Annotated[
        list[str] | None, typer.Option(help="Tag added to every contact (repeatable).")
    ] = None,
    default_region: Annotated[
        str | None,
        typer.Option(help="Read national phone numbers as numbers of this country (e.g. FR)."),
    ] = None,
    trigger: Annotated[
        str | None,
        typer.Option(help="subscribed: start the welcome series of each contact created."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check and count, write nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Create or update contacts from FILE; each refused row is reported with its line and
    reason, and the others are imported. Exit code 1 when a row was refused."""
    from models.db import create_engine, migrate
    from models.settings import get_settings
    from runtime.temporal import connect
    from starter.services import contact_import as importer

    settings = get_settings()
    text = _read(file)
    columns, rows = importer.read_rows(text, file_format or _format_of(file))
    options = importer.ImportOptions.of(
        settings,
        columns,
        mapping=mapping or [],
        tags=tag or [],
        default_region=default_region,
        actor=f"import:{file.name}",
        trigger=trigger,
        dry_run=dry_run,
    )
    engine = create_engine(settings.database_url)
    bar = TerminalProgress() if sys.stderr.isatty() else None
    try:
        await migrate(engine)
        report = await importer.run_import(engine, rows, options, temporal=connect, progress=bar)
    finally:
        if bar is not None:
            bar.close()
        await engine.dispose()
    _print(report, as_json=as_json)
    if report.refused:
        raise typer.Exit(1)


def _read(file: Path) -> str:
    """The file's text (UTF-8, a byte-order mark skipped); other encodings are refused."""
    from starter.services.contact_import import ImportRefused

    try:
        return file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise ImportRefused(
            f"{file} is not UTF-8 text (byte {error.start}): save it as UTF-8 and import again"
        ) from None


def _format_of(file: Path) -> ImportFormat:
    return "ndjson" if file.suffix.lower() in NDJSON_SUFFIXES else "csv"


def _print(report: ImportReport, *, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
        return
    from starter.services.contact_import import OUTCOMES

    counts = ", ".join(f"{getattr(report, outcome)} {outcome}" for outcome in OUTCOMES)
    prefix = "dry run, nothing written: " if report.dry_run else ""
    typer.echo(f"{prefix}{report.rows} rows: {counts}")
    if report.triggered:
        typer.echo(f"{report.triggered} subscribed events handed to the contact workflows")
    notes = [(refusal.line, f"refused: {refusal.reason}") for refusal in report.refusals]
    for merge in report.merges:
        where = f"line {merge.into_line}" if merge.into_line else "an existing contact"
        notes.append((merge.line, f"{merge.contact_id} merged into {merge.into} ({where})"))
    for line, note in sorted(notes):
        typer.echo(f"line {line}: {note}")


class TerminalProgress:
    """A progress bar on stderr (only when it is a terminal): rows done of all."""

    def __init__(self) -> None:
        self._shown = False

    def __call__(self, done: int, total: int) -> None:
        """Redraw the bar."""
        filled = BAR_WIDTH * done // total if total else BAR_WIDTH
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        sys.stderr.write(f"\rimporting [{bar}] {done}/{total} rows")
        sys.stderr.flush()
        self._shown = True

    def close(self) -> None:
        """End the bar's line."""
        if self._shown:
            sys.stderr.write("\n")
            sys.stderr.flush()
