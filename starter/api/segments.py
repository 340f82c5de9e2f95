"""Segments over HTTP: `GET /v1/segments[/{name}]` (counts, members by page),
`PUT` / `DELETE /v1/segments/{name}` (segments defined through the API) and
`POST /v1/segments:preview` (count a rule before saving it); see
`starter/services/segments.py`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field

from models.segments import Condition, Segment, SegmentName
from models.settings import ApiKey
from starter.api.dependencies import ServicesDep, require
from starter.services import segments
from starter.services.segments import SegmentMembers, SegmentSummary

router = APIRouter(prefix="/v1/segments", tags=["segments"])
preview_router = APIRouter(tags=["segments"])

_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No segment of that name."}}
_FILE_SEGMENT: dict[int | str, dict[str, Any]] = {
    409: {"description": "The segments file defines it: change it there."}
}


class SegmentIn(BaseModel):
    """A segment to define through the API.

    Attributes:
        title: What it is, for people.
        rule: Its rule (the syntax of segments.toml, in JSON).
    """

    model_config = ConfigDict(extra="forbid")

    title: str = Field(default="", max_length=200)
    rule: Condition = Field(
        examples=[{"all": [{"event": "pricing_page_viewed", "at_least": 2, "within": "14d"}]}]
    )


class PreviewIn(BaseModel):
    """A rule to count before it is saved."""

    model_config = ConfigDict(extra="forbid")

    rule: Condition


class PreviewOut(BaseModel):
    """How many contacts the rule matches now, of how many, and a few of them."""

    matches: int
    contacts: int
    sample: list[str]


@router.get("", response_model=list[SegmentSummary], summary="List the segments with their counts")
async def list_segments(
    held: ServicesDep, _key: Annotated[ApiKey, Depends(require("contacts:read"))]
) -> list[SegmentSummary]:
    """Every segment (the file's and the API's): its rule, how many contacts it has now and
    whether its current rule was evaluated yet. Needs `contacts:read`."""
    return await segments.segment_summaries(held.engine, held.settings.segments_file)


@router.get(
    "/{name}",
    response_model=SegmentMembers,
    summary="A segment and a page of its members",
    responses=_NOT_FOUND,
)
async def get_segment(
    name: str,
    held: ServicesDep,
    _key: Annotated[ApiKey, Depends(require("contacts:read"))],
    after: Annotated[
        str | None, Query(max_length=64, description="From after this contact id.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Members per page.")] = 100,
) -> SegmentMembers:
    """The segment, its count and its members in contact-id order, since when each entered;
    `next_after` gives the next page. Needs `contacts:read`."""
    return await segments.segment_members(
        held.engine, held.settings.segments_file, name, after=after, limit=limit
    )


@router.put(
    "/{name}",
    response_model=SegmentSummary,
    summary="Define or replace a segment",
    responses={201: {"description": "Defined."}, **_FILE_SEGMENT},
)
async def put_segment(
    name: SegmentName,
    body: SegmentIn,
    response: Response,
    held: ServicesDep,
    key: Annotated[ApiKey, Depends(require("contacts:write"))],
) -> SegmentSummary:
    """Define a segment (201) or replace its rule (200). The next segment sweep evaluates it
    over every contact (`evaluated` turns true); from then on membership is kept current.
    Needs `contacts:write`."""
    segment = Segment(name=name, title=body.title, rule=body.rule)
    path = held.settings.segments_file
    if await segments.define_segment(held.engine, path, segment, actor=f"api:{key.name}"):
        response.status_code = status.HTTP_201_CREATED
    summaries = await segments.segment_summaries(held.engine, path)
    return next(summary for summary in summaries if summary.name == name)


@router.delete(
    "/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove a segment defined through the API",
    responses={**_NOT_FOUND, **_FILE_SEGMENT},
)
async def delete_segment(
    name: str,
    held: ServicesDep,
    _key: Annotated[ApiKey, Depends(require("contacts:write"))],
) -> Response:
    """Remove it; the next sweep drops its members. Needs `contacts:write`."""
    await segments.remove_segment(held.engine, held.settings.segments_file, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@preview_router.post(
    "/v1/segments:preview", response_model=PreviewOut, summary="Count a rule before saving it"
)
async def preview_segment(
    body: PreviewIn,
    held: ServicesDep,
    _key: Annotated[ApiKey, Depends(require("contacts:read"))],
) -> PreviewOut:
    """How many contacts the rule matches now, and a sample of them; nothing is recorded.
    Needs `contacts:read`."""
    found = await segments.preview(held.engine, body.rule)
    return PreviewOut(matches=found.count, contacts=found.contacts, sample=found.sample)
