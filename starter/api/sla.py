"""SLA violations per rep: `GET /v1/sla/violations` (see `starter/services/sla.py`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from models.settings import ApiKey
from starter.api.dependencies import ServicesDep, require
from starter.services.sla import SlaViolations, sla_violations_by_rep

router = APIRouter(prefix="/v1/sla", tags=["sla"])


@router.get("/violations", response_model=SlaViolations, summary="SLA violations per rep")
async def sla_violations(
    held: ServicesDep,
    _key: Annotated[ApiKey, Depends(require("journeys:read"))],
    since: Annotated[
        datetime | None, Query(description="Only SLAs breached since then (ISO; naive: UTC).")
    ] = None,
    until: Annotated[
        datetime | None, Query(description="Only SLAs breached before then (ISO; naive: UTC).")
    ] = None,
) -> SlaViolations:
    """The hand-off SLAs breached per rep and per SLA (first touch, qualification, SQL
    follow-up), most violations first. Needs `journeys:read`."""
    return await sla_violations_by_rep(held.engine, since, until)
