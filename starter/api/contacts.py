"""Contacts and their journeys: profile upsert / read / erasure, enrolment, status, messages."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from models.contacts import ContactFields, ContactProfile
from models.ids import ContactId
from models.settings import ApiKey
from rules.scoring import ScoringModel
from runtime.temporal import unavailable_as_error
from starter.api.dependencies import Services, ServicesDep, require
from starter.api.events import issues
from starter.api.schemas import (
    ConsentChangeView,
    ContactUpsertView,
    ContactView,
    DealView,
    EnrolmentIn,
    EnrolmentView,
    ErasureView,
    JourneyActionIn,
    JourneyActionView,
    MergeIn,
    MergeView,
    MessageView,
    Problem,
)
from starter.services import deals, dedupe, export, operations
from starter.services.operations import JourneyRun

router = APIRouter(prefix="/v1/contacts", tags=["contacts"])

ContactIdPath = Annotated[ContactId, Path(description="Your system's id of the contact.")]
JourneyPath = Annotated[
    str, Path(pattern=r"^[a-z][a-z0-9-]{0,63}$", description="e.g. `welcome-series`.")
]
Responses = dict[int | str, dict[str, Any]]
_NOT_FOUND: Responses = {404: {"model": Problem, "description": "No such contact or journey."}}
_UNAVAILABLE: Responses = {
    503: {"model": Problem, "description": "Temporal or the database is down."}
}
_CONFLICT: Responses = {409: {"model": Problem, "description": "Email of another contact."}}
_GONE: Responses = {410: {"model": Problem, "description": "The contact was erased."}}
_IN_PROGRESS: Responses = {
    202: {"model": ErasureView, "description": "Erasure accepted, still going on."}
}


@router.put(
    "/{contact_id}",
    response_model=ContactUpsertView,
    summary="Create or update a contact (a duplicate lead is merged)",
    responses=_CONFLICT | _GONE | _UNAVAILABLE,
)
async def put_contact(
    contact_id: ContactIdPath,
    fields: ContactFields,
    held: ServicesDep,
    key: Annotated[ApiKey, Depends(require("contacts:write"))],
) -> ContactUpsertView:
    """Fields given replace the stored ones; tags and attributes are added; consent
    changes are recorded with their source and time. An erased contact's id is
    refused (410).

    A new id whose lead matches an existing contact (same email address; same company
    domain and first name with `DEDUPE_MATCH_DOMAIN_NAME`) is merged into it instead:
    the answer is that contact, with `merged_from` and `matched_by`, and the id given
    becomes its alias (events and `PUT`s sent under it land on it)."""
    profile = ContactProfile.model_validate(
        {**fields.model_dump(exclude_unset=True), "id": contact_id}
    )
    entry = await dedupe.enter_contact(
        held.engine,
        profile,
        key=held.settings.suppression_key(),
        match_domain_name=held.settings.dedupe_match_domain_name,
        actor=f"api:{key.name}",
    )
    if entry.merged_from is not None:
        await _finish_merges(held, entry.contact.id)
    return ContactUpsertView(
        **ContactView.of(entry.contact).model_dump(),
        merged_from=entry.merged_from,
        matched_by=entry.matched_by,
    )


async def _finish_merges(held: Services, survivor: str) -> None:
    """Tell the contact workflows of the survivor's new merges (503 if Temporal is down)."""
    with unavailable_as_error():
        await dedupe.finish_merges(
            held.temporal,
            held.engine,
            survivor,
            scoring=ScoringModel.load(held.settings.scoring_file),
            task_queue=held.settings.task_queue,
            day_seconds=held.settings.day_seconds,
        )


@router.post(
    "/{contact_id}/merge",
    response_model=MergeView,
    summary="Merge another contact into this one",
    responses=_NOT_FOUND
    | {409: {"model": Problem, "description": "The other contact was merged elsewhere."}}
    | _GONE
    | {422: {"model": Problem, "description": "A contact merged into itself."}}
    | _UNAVAILABLE,
)
async def merge_contact(
    contact_id: ContactIdPath,
    body: MergeIn,
    held: ServicesDep,
    key: Annotated[ApiKey, Depends(require("contacts:write"))],
) -> MergeView:
    """`{"from": "<loser>"}` is merged into this contact (the survivor): its events,
    messages, tasks, notifications, consent history and pipeline transitions move here,
    its journeys end with reason `merged`, the survivor's go on, and its score counts
    here. The same merge again answers `already merged` and changes nothing."""
    outcome = await dedupe.merge_contacts(
        held.engine, contact_id, body.loser, actor=f"api:{key.name}"
    )
    await _finish_merges(held, contact_id)
    return MergeView.of(outcome.merge, already=outcome.already_merged)


@router.get("/{contact_id}", response_model=ContactView, responses=_NOT_FOUND | _GONE)
async def get_contact(
    contact_id: ContactIdPath,
    held: ServicesDep,
    _key: Annotated[ApiKey, Depends(require("contacts:read"))],
) -> ContactView:
    """The contact with its consent, tags, lead score, stage, owner and open deal."""
    contact = await operations.get_contact(held.engine, contact_id)
    return ContactView.of(contact, open_deal=await deals.contact_open_deal(held.engine, contact_id))


@router.get("/{contact_id}/deals", response_model=list[DealView], responses=_NOT_FOUND | _GONE)
async def list_deals(
    contact_id: ContactIdPath,
    held: ServicesDep,
    _key: Annotated[ApiKey, Depends(require("contacts:read"))],
) -> list[DealView]:
    """The contact's deals, oldest first: amount, stage, use case, competitors, owner,
    status (open, won, lost) and lost reason, each with its changes."""
    return [DealView.of(record) for record in await deals.contact_deals(held.engine, contact_id)]


@router.get("/{contact_id}/consent", response_model=list[ConsentChangeView], responses=_NOT_FOUND)
async def get_consent_history(
    contact_id: ContactIdPath,
    held: ServicesDep,
    _key: Annotated[ApiKey, Depends(require("contacts:read"))],
) -> list[ConsentChangeView]:
    """The contact's consent history, oldest first: every opt-in and opt-out on each channel,
    when, from where (source, IP address and user agent where known) and what it agreed to."""
    rows = await operations.consent_changes(held.engine, contact_id)
    return [ConsentChangeView.of(row) for row in rows]


@router.delete(
    "/{contact_id}",
    response_model=ErasureView,
    summary="Erase a contact (right to be forgotten)",
    responses=_IN_PROGRESS | _UNAVAILABLE,
)
async def delete_contact(
    contact_id: ContactIdPath,
    held: ServicesDep,
    response: Response,
    _key: Annotated[ApiKey, Depends(require("contacts:erase"))],
) -> ErasureView:
    """Every journey of the contact exits, its personal data is deleted (only hashed
    suppressions remain, so a re-import is not mailed). 200 when done; 202 when it
    goes on after the answer (durably)."""
    with unavailable_as_error():
        erased = await operations.forget_contact(
            held.temporal,
            held.engine,
            contact_id,
            task_queue=held.settings.task_queue,
            wait=held.settings.api_erasure_wait_seconds,
        )
    if not erased:
        response.status_code = status.HTTP_202_ACCEPTED
    return ErasureView(contact_id=contact_id, status="erased" if erased else "in_progress")


@router.post(
    "/{contact_id}/journeys/{journey}",
    status_code=status.HTTP_201_CREATED,
    response_model=EnrolmentView,
    summary="Enrol the contact into a journey",
    responses=_NOT_FOUND
    | {409: {"model": Problem, "description": "Already enrolled."}}
    | _GONE
    | _UNAVAILABLE,
)
async def enrol(
    contact_id: ContactIdPath,
    journey: JourneyPath,
    held: ServicesDep,
    _key: Annotated[ApiKey, Depends(require("journeys:write"))],
    options: Annotated[EnrolmentIn | None, Body()] = None,
) -> EnrolmentView:
    """Start `journey` for the contact (409 while it runs, or for a once-only journey
    it went through)."""
    given = options.model_dump(exclude_none=True) if options else {}
    try:
        journey_input = operations.journey_input_for(
            journey,
            contact_id,
            given,
            accelerated_clock_allowed=held.settings.allow_accelerated_clock,
        )
    except ValidationError as error:  # e.g. renewal-countdown without its renewal_date
        raise RequestValidationError(
            [
                {**issue.model_dump(), "msg": f"{journey}: {issue.msg}"}
                for issue in issues(error, "body")
            ]
        ) from None
    with unavailable_as_error():
        workflow_id = await operations.enroll(
            held.temporal,
            held.engine,
            journey,
            journey_input,
            task_queue=held.settings.task_queue,
        )
    return EnrolmentView(workflow_id=workflow_id, journey=journey, contact_id=contact_id)


@router.post(
    "/{contact_id}/journeys/{journey}/{action}",
    response_model=JourneyActionView,
    summary="Exit, pause, resume or skip the current wait of the contact's journey",
    responses=_NOT_FOUND | _UNAVAILABLE,
)
async def steer(
    contact_id: ContactIdPath,
    journey: JourneyPath,
    action: Literal["exit", "pause", "resume", "skip-wait"],
    held: ServicesDep,
    _key: Annotated[ApiKey, Depends(require("journeys:write"))],
    body: Annotated[JourneyActionIn | None, Body()] = None,
) -> JourneyActionView:
    """`exit` ends it with the reason given; `pause` holds every send until `resume`;
    `skip-wait` fires the current wait now (staging)."""
    with unavailable_as_error():
        workflow_ids = await operations.steer_journey(
            held.temporal,
            contact_id,
            journey,
            action,
            reason=(body or JourneyActionIn()).reason,
        )
    return JourneyActionView(action=action, workflow_ids=workflow_ids)


@router.get("/{contact_id}/journeys", response_model=list[JourneyRun], responses=_UNAVAILABLE)
async def list_journeys(
    contact_id: ContactIdPath,
    held: ServicesDep,
    _key: Annotated[ApiKey, Depends(require("contacts:read"))],
) -> list[JourneyRun]:
    """Running and finished journeys: step, status, next wake-up, messages, exit reason."""
    with unavailable_as_error():
        return await operations.journey_runs(held.temporal, contact_id)


@router.get("/{contact_id}/messages", response_model=list[MessageView])
async def list_messages(
    contact_id: ContactIdPath,
    held: ServicesDep,
    _key: Annotated[ApiKey, Depends(require("contacts:read"))],
    journey: Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9-]{0,63}$")] = None,
) -> list[MessageView]:
    """The contact's message log, oldest first (sent, suppressed, deferred, failed…)."""
    rows = await operations.message_log(held.engine, contact_id=contact_id, journey=journey)
    return [MessageView.of(row) for row in rows]


@router.get(
    "/{contact_id}/export",
    summary="Everything held about the contact (access request)",
    responses=_NOT_FOUND | _GONE,
)
async def export_contact(
    contact_id: ContactIdPath,
    held: ServicesDep,
    _key: Annotated[ApiKey, Depends(require("contacts:export"))],
) -> dict[str, Any]:
    """One JSON document: profile, consent, suppressions, events, messages with their
    status, tasks, notifications, SLA breaches, score history, journeys with their steps
    (and the live state of running ones). See `starter/services/export.py`."""
    return await export.export_contact(
        held.engine,
        contact_id,
        scoring=ScoringModel.load(held.settings.scoring_file),
        temporal=held.temporal,
    )
