"""Broadcasts over HTTP: `POST /v1/broadcasts`, `GET /v1/broadcasts[/{name}]`,
`POST /v1/broadcasts/{name}:pause|:resume|:cancel` (see `starter/services/broadcasts.py`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends

from models.settings import ApiKey
from starter.api.dependencies import ServicesDep, require
from starter.services import broadcasts
from starter.services.broadcasts import BroadcastCreate, BroadcastView

router = APIRouter(prefix="/v1/broadcasts", tags=["broadcasts"])


@router.post("", response_model=BroadcastView, status_code=201, summary="Create a broadcast")
async def create_broadcast(
    request: BroadcastCreate,
    held: ServicesDep,
    key: Annotated[ApiKey, Depends(require("journeys:write"))],
) -> BroadcastView:
    """Send `template` to the members of `segment` once (`at`: with an offset one instant,
    without one each contact's local time) or on a `schedule` (cron, in each contact's
    zone unless `timezone`), at `rate` sends per second, through the journeys' policy.
    Needs `journeys:write`; 422 for an unknown segment or template, a bad or past time,
    a bad schedule or rate; 409 for a name in use."""
    return await broadcasts.create_broadcast(
        held.engine,
        held.temporal,
        held.settings,
        request,
        created_by=f"api:{key.name}",
        now=datetime.now(UTC),
    )


@router.get("", response_model=list[BroadcastView], summary="List the broadcasts")
async def list_broadcasts(
    held: ServicesDep, _key: Annotated[ApiKey, Depends(require("reports:read"))]
) -> list[BroadcastView]:
    """Every broadcast with its status and each occurrence's progress. Needs `reports:read`."""
    return await broadcasts.list_broadcasts(held.engine)


@router.get("/{name}", response_model=BroadcastView, summary="A broadcast and its progress")
async def get_broadcast(
    name: str, held: ServicesDep, _key: Annotated[ApiKey, Depends(require("reports:read"))]
) -> BroadcastView:
    """The broadcast, its status and each occurrence's progress (audience, sent, deferred,
    refused, failed, cancelled, remaining). Needs `reports:read`; 404 for an unknown name."""
    return (await broadcasts.list_broadcasts(held.engine, name))[0]


@router.post("/{name}:{action}", response_model=BroadcastView, summary="Pause, resume or cancel")
async def control_broadcast(
    name: str,
    action: Literal["pause", "resume", "cancel"],
    held: ServicesDep,
    _key: Annotated[ApiKey, Depends(require("journeys:write"))],
) -> BroadcastView:
    """Pause (sending stops after the current batch; a schedule starts no run), resume,
    or cancel (nothing more is sent; a schedule is deleted). Needs `journeys:write`; 404
    for an unknown name, 409 when the action does not apply to its status."""
    return await broadcasts.control_broadcast(
        held.engine, held.temporal, name, action, now=datetime.now(UTC)
    )
