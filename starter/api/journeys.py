"""The journeys the gateway can enrol into: `GET /v1/journeys`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from models.journeys import JourneyDescription
from models.settings import ApiKey
from starter.api.dependencies import require
from starter.services import operations

router = APIRouter(prefix="/v1/journeys", tags=["journeys"])


@router.get("", response_model=list[JourneyDescription], summary="List the journeys")
async def list_journeys(
    _key: Annotated[ApiKey, Depends(require("journeys:read"))],
) -> list[JourneyDescription]:
    """Every journey: title, category, the event that starts it, its enrolment options (the
    body of `POST /v1/contacts/{id}/journeys/{journey}`: type, required, default,
    description) and its plan. Needs `journeys:read`."""
    return operations.journey_catalog()
