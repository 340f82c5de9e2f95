"""`POST /v1/events`: one behaviour event, or a batch of them.

A single event is answered 202 (accepted), 200 (duplicate: this `event_id`
was accepted before), 409 (the `event_id` was used for a different event),
410 (its contact was erased: the event goes nowhere) or 422 (invalid, naming
the field). A batch (`{"events": [...]}`) is judged per event, so one bad
event loses none of the others: 202 when any was accepted, 200 when all were
duplicates, 410 when all were for erased contacts, 422 when none could be
taken. Whatever the
answer says `accepted` is durable in Temporal; 503 (with `Retry-After`) means
Temporal could not be reached and the request should be sent again.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from models.event_properties import check_properties
from models.events import BehaviorEvent
from models.settings import ApiKey
from starter.api.dependencies import ServicesDep, require
from starter.api.schemas import (
    EventBatchIn,
    EventIn,
    EventResult,
    EventsResponse,
    Problem,
    ValidationIssue,
)
from starter.services.intake import IntakeResult, accept_events

router = APIRouter(tags=["events"])

_BODY_SCHEMA = {
    "oneOf": [
        {"$ref": "#/components/schemas/EventIn"},
        {"$ref": "#/components/schemas/EventBatchIn"},
    ]
}
SCHEMA_MODELS = (EventIn, EventBatchIn)
"""Models the request body refers to; `create_app` adds them to the OpenAPI components."""


class InvalidBody(Exception):
    """The body is not JSON, or not an event or a batch of events."""


def issues(error: ValidationError, *prefix: str | int) -> list[ValidationIssue]:
    """A pydantic error as `ValidationIssue`s located under `prefix`."""
    return [
        ValidationIssue(loc=[*prefix, *issue["loc"]], msg=issue["msg"], type=issue["type"])
        for issue in error.errors(include_url=False, include_context=False, include_input=False)
    ]


def to_behavior_event(item: Any, *, now: datetime, max_future: timedelta) -> BehaviorEvent:
    """Validate one posted event and fill in what the gateway assigns (id, time).

    Raises:
        ValidationError: a field is missing or invalid (the properties too, for an event
            type with a properties model: `models/event_properties.py`), or `occurred_at`
            is too far in the future.
    """
    posted = EventIn.model_validate(item)
    check_properties(posted.type, posted.properties, title="EventIn")
    occurred_at = posted.occurred_at or now
    if occurred_at > now + max_future:
        raise ValidationError.from_exception_data(
            "EventIn",
            [
                {
                    "type": "value_error",
                    "loc": ("occurred_at",),
                    "input": item,
                    "ctx": {
                        "error": ValueError(
                            f"occurred_at {occurred_at.isoformat()} is in the future (more "
                            f"than {max_future.total_seconds():.0f} s ahead of the gateway's "
                            "clock)"
                        )
                    },
                }
            ],
        )
    return BehaviorEvent(
        event_id=posted.event_id or f"evt_{uuid.uuid4().hex}",
        contact_id=posted.contact_id,
        type=posted.type,
        occurred_at=occurred_at,
        properties=posted.properties,
    )


_REFUSALS = {
    "conflict": (status.HTTP_409_CONFLICT, "event_id", "event_id_conflict"),
    "erased": (status.HTTP_410_GONE, "contact_id", "contact_erased"),
}
"""Intake outcomes that refuse an event: the answer to it alone, and the issue in a batch."""


def _erased(result: EventResult) -> bool:
    return any(issue.type == "contact_erased" for issue in result.errors)


def unknown_contact(contact_id: str) -> str:
    """The warning of an event whose contact does not exist (see `starter.services.intake`)."""
    return (
        f"contact {contact_id!r} does not exist yet: the event is kept and scored, but starts "
        f"no journey; create the contact first (PUT /v1/contacts/{contact_id})"
    )


def merged_contact(alias: str, contact_id: str) -> str:
    """The warning of an event sent under the id of a lead merged into another contact."""
    return (
        f"contact {alias!r} was merged into {contact_id!r}: the event went to {contact_id!r} "
        "(use that id from now on)"
    )


def _warnings(contact_id: str, outcome: IntakeResult) -> list[str]:
    """What to know about an event taken: its contact merged into another (the one whose
    workflow, `contact-<id>`, took it), or unknown."""
    warnings = [] if outcome.contact_known else [unknown_contact(contact_id)]
    if outcome.merged_from is not None:
        warnings.insert(
            0, merged_contact(outcome.merged_from, outcome.workflow_id.removeprefix("contact-"))
        )
    return warnings


def _decode(raw: bytes) -> tuple[list[Any], bool]:
    """The posted items and whether they came as a batch."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidBody(f"request body is not valid JSON: {error}") from None
    except RecursionError:
        raise InvalidBody("request body nests too deeply") from None
    if not isinstance(body, dict):
        raise InvalidBody('request body must be a JSON object: an event or {"events": [...]}')
    if "events" not in body:
        return [body], False
    extra = sorted(set(body) - {"events"})
    if extra:
        raise InvalidBody(f"a batch holds only `events`; unexpected: {', '.join(extra)}")
    if not isinstance(body["events"], list) or not body["events"]:
        raise InvalidBody("`events` must be a non-empty list of events")
    return body["events"], True


@router.post(
    "/v1/events",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Send one behaviour event or a batch",
    response_model=EventsResponse,
    responses={
        200: {"model": EventsResponse, "description": "Duplicates only: processed before."},
        400: {"model": Problem, "description": "Not JSON, or neither an event nor a batch."},
        409: {"model": Problem, "description": "The event_id belongs to a different event."},
        410: {
            "model": EventsResponse | Problem,
            "description": "The contact was erased (a batch: every event's contact was).",
        },
        422: {
            "model": EventsResponse | Problem,
            "description": "An invalid event (`detail` names the fields), or a batch none "
            "of whose events could be taken (per-event `results`).",
        },
        503: {"model": Problem, "description": "Temporal unreachable: retry after Retry-After."},
    },
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": _BODY_SCHEMA}}}
    },
)
async def post_events(
    request: Request,
    held: ServicesDep,
    _key: Annotated[ApiKey, Depends(require("events:write"))],
) -> JSONResponse:
    """Hand events to their contacts' workflows; see the module docstring for the answers."""
    settings = held.settings
    try:
        items, is_batch = _decode(await request.body())
    except InvalidBody as error:
        return JSONResponse({"detail": str(error)}, status_code=status.HTTP_400_BAD_REQUEST)
    if len(items) > settings.api_max_batch_events:
        return JSONResponse(
            {
                "detail": f"a batch holds at most {settings.api_max_batch_events} events; "
                f"got {len(items)}: split it"
            },
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        )
    now = datetime.now(UTC)
    max_future = timedelta(seconds=settings.event_max_future_seconds)
    results: list[EventResult] = []
    valid: list[tuple[int, BehaviorEvent]] = []
    for index, item in enumerate(items):
        prefix: tuple[str | int, ...] = ("body", "events", index) if is_batch else ("body",)
        try:
            event = to_behavior_event(item, now=now, max_future=max_future)
        except ValidationError as error:
            if not is_batch:
                raise RequestValidationError(
                    [issue.model_dump() for issue in issues(error, *prefix)]
                ) from None
            results.append(
                EventResult(index=index, status="rejected", errors=issues(error, *prefix))
            )
            continue
        valid.append((index, event))
    intake = await accept_events(
        held.temporal,
        held.engine,
        [event for _, event in valid],
        task_queue=settings.task_queue,
        day_seconds=settings.day_seconds,
        suppression_key=settings.suppression_key(),
    )
    for (index, event), outcome in zip(valid, intake, strict=True):
        if outcome.status in _REFUSALS:
            code, field, kind = _REFUSALS[outcome.status]
            if not is_batch:
                return JSONResponse({"detail": outcome.detail}, status_code=code)
            issue = ValidationIssue(
                loc=["body", "events", index, field], msg=outcome.detail or kind, type=kind
            )
            results.append(
                EventResult(index=index, event_id=event.event_id, status="rejected", errors=[issue])
            )
            continue
        results.append(
            EventResult(
                index=index,
                event_id=event.event_id,
                status=outcome.status,
                workflow_id=outcome.workflow_id,
                warnings=_warnings(event.contact_id, outcome),
            )
        )
    results.sort(key=lambda result: result.index)
    counts = {kind: sum(r.status == kind for r in results) for kind in ("accepted", "duplicate")}
    answer = EventsResponse(
        accepted=counts["accepted"],
        duplicate=counts["duplicate"],
        rejected=len(results) - counts["accepted"] - counts["duplicate"],
        results=results,
    )
    if answer.accepted:
        code = status.HTTP_202_ACCEPTED
    elif results and all(_erased(result) for result in results):
        code = status.HTTP_410_GONE
    elif answer.rejected:
        code = status.HTTP_422_UNPROCESSABLE_CONTENT
    else:
        code = status.HTTP_200_OK
    return JSONResponse(jsonable_encoder(answer), status_code=code)
