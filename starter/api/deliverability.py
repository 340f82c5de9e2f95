"""Deliverability over HTTP: `GET /v1/deliverability` (the guard's figures, alerts, pauses),
`PUT` / `DELETE /v1/deliverability/pauses/{journey}` (pause a journey's marketing sends by
hand, resume them); see `starter/services/deliverability.py`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends
from pydantic import BaseModel, ConfigDict, Field

from models.deliverability import GuardConfig, PauseView
from models.settings import ApiKey
from starter.api.dependencies import ServicesDep, require
from starter.services.deliverability import (
    DeliverabilityStatus,
    deliverability_status,
    pause_journey_sends,
    resume_journey_sends,
)

router = APIRouter(prefix="/v1/deliverability", tags=["deliverability"])


class PauseIn(BaseModel):
    """Why the sends are paused."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=300)


@router.get("", response_model=DeliverabilityStatus, summary="Rates, alerts and send pauses")
async def get_deliverability(
    held: ServicesDep, _key: Annotated[ApiKey, Depends(require("reports:read"))]
) -> DeliverabilityStatus:
    """Each journey step's bounce, complaint, unsubscribe, open and click rates over the
    guard's window, the alerts it holds open and the journeys whose sends are paused.
    Needs `reports:read`."""
    config = GuardConfig.load(held.settings.deliverability_file)
    return await deliverability_status(held.engine, config)


_PAUSE_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No journey of that name."},
    409: {"description": "Its sends are paused already."},
}


@router.put(
    "/pauses/{journey}",
    response_model=PauseView,
    status_code=201,
    summary="Pause a journey's marketing sends",
    responses=_PAUSE_ERRORS,
)
async def pause(
    journey: str,
    held: ServicesDep,
    key: Annotated[ApiKey, Depends(require("journeys:write"))],
    body: Annotated[PauseIn | None, Body()] = None,
) -> PauseView:
    """Its marketing messages wait (deferred, asked again) until the sends are resumed.
    Needs `journeys:write`."""
    return await pause_journey_sends(
        held.engine, journey, actor=f"api:{key.name}", reason=body.reason if body else ""
    )


@router.delete(
    "/pauses/{journey}",
    response_model=PauseView,
    summary="Resume a journey's marketing sends",
    responses={404: {"description": "Its sends are not paused."}},
)
async def resume(
    journey: str, held: ServicesDep, key: Annotated[ApiKey, Depends(require("journeys:write"))]
) -> PauseView:
    """End the pause (the guard's or an operator's); waiting messages go out when they next
    ask. Needs `journeys:write`."""
    return await resume_journey_sends(held.engine, journey, actor=f"api:{key.name}")
