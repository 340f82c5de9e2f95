"""`POST /v1/contacts:import`: contacts from a CSV or NDJSON body (the rules:
`starter/services/contact_import.py`).

The body's `Content-Type` says its format: `text/csv` (a header line first) or
`application/x-ndjson` (one JSON object per line); anything else is 415. A body
larger than `API_IMPORT_MAX_BYTES` is 413. The options are query parameters,
as the CLI's: `map=COLUMN=TARGET` and `tag=…` (repeatable), `default_region`,
`trigger=subscribed`, `dry_run=true`.

The answer is the report (200, also when rows were refused: each refusal has its
line and reason). With `stream=true` it is NDJSON instead, written as the import
goes: `{"progress": {"done": 500, "total": 100000}}` after each batch of rows, then
`{"report": {...}}` as the last line (or `{"error": "..."}` if the import could not
finish: what was imported stays, and sending the same file again finishes it).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import StreamingResponse

from models.settings import ApiKey
from starter.api.dependencies import Services, ServicesDep, require
from starter.api.schemas import Problem
from starter.services import contact_import as importer

PATH = "/v1/contacts:import"
FORMATS: dict[str, importer.ImportFormat] = {
    "text/csv": "csv",
    "application/x-ndjson": "ndjson",
    "application/ndjson": "ndjson",
}
"""Content types taken, and the format each means."""

router = APIRouter(tags=["contacts"])


@router.post(
    PATH,
    summary="Import contacts from a CSV or NDJSON file",
    responses={
        200: {
            "description": "The report (JSON), or with `stream=true` NDJSON progress lines "
            "and the report last."
        },
        413: {"model": Problem, "description": "Larger than API_IMPORT_MAX_BYTES."},
        415: {"model": Problem, "description": "Neither text/csv nor application/x-ndjson."},
        422: {"model": Problem, "description": "A column mapped to nothing, a bad option."},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/x-ndjson": {"schema": {"type": "string"}},
            },
        }
    },
)
async def import_contacts(
    request: Request,
    held: ServicesDep,
    key: Annotated[ApiKey, Depends(require("contacts:write"))],
    mapping: Annotated[
        list[str] | None, Query(alias="map", description="COLUMN=TARGET (repeatable).")
    ] = None,
    tag: Annotated[list[str] | None, Query(description="Tag added to every contact.")] = None,
    default_region: Annotated[
        str | None, Query(description="Read national phone numbers in this country (FR).")
    ] = None,
    trigger: Annotated[
        str | None, Query(description="`subscribed`: start the welcome series of new contacts.")
    ] = None,
    dry_run: Annotated[bool, Query(description="Check and count, write nothing.")] = False,
    stream: Annotated[bool, Query(description="Answer NDJSON progress, then the report.")] = False,
) -> Any:
    """Create or update the contacts of the file: validated as `PUT /v1/contacts/{id}`,
    duplicates merged by email address, consent only with its source and time; a second
    run of the same file changes nothing. See the module docstring for the answer."""
    file_format = _format(request.headers.get("content-type", ""))
    text = _text(await request.body())
    columns, rows = importer.read_rows(text, file_format)
    options = importer.ImportOptions.of(
        held.settings,
        columns,
        mapping=mapping or [],
        tags=tag or [],
        default_region=default_region,
        actor=f"api:{key.name}",
        trigger=trigger,
        dry_run=dry_run,
    )
    if not stream:
        report = await importer.run_import(held.engine, rows, options, temporal=_temporal(held))
        return report.as_dict()
    return StreamingResponse(_streamed(held, rows, options), media_type="application/x-ndjson")


def _format(content_type: str) -> importer.ImportFormat:
    media_type = content_type.split(";")[0].strip().lower()
    if media_type not in FORMATS:
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            f"Content-Type {media_type or 'missing'!r}: send the file as text/csv "
            "(a header line first) or application/x-ndjson (one JSON object per line)",
        )
    return FORMATS[media_type]


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise importer.ImportRefused(
            f"the body is not UTF-8 text (byte {error.start}): send it as UTF-8"
        ) from None


def _temporal(held: Services) -> importer.TemporalConnector:
    async def connected() -> Any:
        return held.temporal

    return connected


async def _streamed(
    held: Services, rows: Any, options: importer.ImportOptions
) -> AsyncIterator[str]:
    """Progress lines while the import runs, then the report (or the error) last."""
    lines: asyncio.Queue[str | None] = asyncio.Queue()

    def progress(done: int, total: int) -> None:
        lines.put_nowait(_line({"progress": {"done": done, "total": total}}))

    async def run() -> None:
        try:
            report = await importer.run_import(
                held.engine, rows, options, temporal=_temporal(held), progress=progress
            )
            lines.put_nowait(_line({"report": report.as_dict()}))
        except Exception as error:  # the answer has begun: its last line says what failed
            lines.put_nowait(_line({"error": f"{type(error).__name__}: {error}"}))
        finally:
            lines.put_nowait(None)

    task = asyncio.create_task(run())
    try:
        while (line := await lines.get()) is not None:
            yield line
    finally:
        await task


def _line(value: dict[str, Any]) -> str:
    return json.dumps(value) + "\n"
