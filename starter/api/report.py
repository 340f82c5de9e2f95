"""The report over HTTP: `GET /v1/report` (what `journeys report` prints)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse

from models.settings import ApiKey
from rules.sales import SalesConfig
from starter.api.dependencies import ServicesDep, require
from starter.services import report
from starter.services.report import FunnelReport

router = APIRouter(prefix="/v1/report", tags=["report"])

_MOMENT = "An ISO date or datetime (2025-03-01, 2025-03-01T09:00:00+01:00); no offset means UTC."


@router.get(
    "",
    response_model=FunnelReport,
    summary="The funnel and pipeline report",
    responses={200: {"content": {"text/html": {}}, "description": "The report."}},
)
async def get_report(
    held: ServicesDep,
    _key: Annotated[ApiKey, Depends(require("reports:read"))],
    since: Annotated[str | None, Query(description=f"Start of the period. {_MOMENT}")] = None,
    until: Annotated[
        str | None, Query(description=f"End of the period (exclusive; default now). {_MOMENT}")
    ] = None,
    journey: Annotated[
        str | None, Query(description="Only this journey's funnel, and no pipeline section.")
    ] = None,
    output_format: Annotated[
        Literal["json", "html"], Query(alias="format", description="`html`: a standalone page.")
    ] = "json",
) -> FunnelReport | HTMLResponse:
    """Per journey and step: entered, sent, opened, clicked, converted, exit reasons; and
    (without `journey`) the pipeline section: seed 002's stage rates, time to first touch,
    SLA shares, days to opportunity and re-activation, overall and per `src_` source, each
    with its target and whether it is met (see `journeys report --help` for the
    definitions). Needs `reports:read`; a 422 names a `since` / `until` it cannot read."""
    start = _moment(since, "since")
    end = _moment(until, "until")
    if start is not None and end is not None and end <= start:
        raise _invalid("until", "must be after since")
    try:
        sla = SalesConfig.load(held.settings.sales_file).sla
    except (OSError, ValueError) as error:  # the server's configuration, not the request
        raise HTTPException(
            status.HTTP_500_INTERNAL_SERVER_ERROR,
            f"the sales configuration (SALES_FILE) cannot be read: {error}",
        ) from None
    counted = await report.full_report(
        held.engine, journey=journey, since=start, until=end, sla=sla
    )
    if output_format == "html":
        return HTMLResponse(report.render_html(counted))
    return counted


def _moment(text: str | None, name: str) -> datetime | None:
    if text is None:
        return None
    try:
        return report.parse_since(text)
    except ValueError as error:
        raise _invalid(name, str(error)) from None


def _invalid(name: str, message: str) -> RequestValidationError:
    return RequestValidationError(
        [{"loc": ("query", name), "msg": message, "type": "value_error", "input": name}]
    )
