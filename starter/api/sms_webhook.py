"""`POST /webhooks/sms`: texts people send to our number, for the carrier keywords.

Signed like the email webhook (`Webhook-Signature: t=<unix time>,v1=<hex
HMAC-SHA256 of "<t>.<raw body>">`), with `SMS_WEBHOOK_SECRET`; 404 until it is
set, 401 for a missing, wrong or expired signature. The body is `{"messages":
[{"id", "from_number", "body", "received_at"}]}`; what each keyword does is in
`starter/services/sms_keywords.py`. A redelivery (same message `id`) changes nothing
and sends no second answer. 503 with `Retry-After` when Temporal is down: the
provider retries, and what was already written counts once.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from models.events import UtcTime
from starter.api.dependencies import ServicesDep
from starter.api.schemas import Problem
from starter.api.webhooks import SIGNATURE_HEADER, verified_body
from starter.services.sms_keywords import InboundSms, handle_inbound

router = APIRouter(tags=["webhooks"])


class InboundMessage(BaseModel):
    """One text received by our number.

    Attributes:
        id: The provider's id of the message (no control characters).
        from_number: The sender, E.164 (`+14155550123`).
        body: The text (a keyword is the whole message, any case, punctuation ignored).
        received_at: When it was received (1970–8999).
    """

    model_config = ConfigDict(extra="ignore")

    id: Annotated[str, StringConstraints(pattern=r"^[^\x00-\x1f\x7f]{1,100}$")]
    from_number: Annotated[str, StringConstraints(pattern=r"^\+[1-9][0-9]{6,14}$")]
    body: Annotated[str, StringConstraints(max_length=1_600)]
    received_at: UtcTime


class InboundMessages(BaseModel):
    """The body of an SMS webhook request."""

    messages: list[InboundMessage] = Field(min_length=1, max_length=500)


class InboundResult(BaseModel):
    """What became of one inbound message.

    Attributes:
        id: The provider's id of the message.
        keyword: The keyword it is (`STOP`, `START`, `HELP`…), or null when it is none.
        contacts: How many contacts have the sender's number.
        replied: Whether an answer was started now (false: a redelivery, or not a keyword).
    """

    id: str
    keyword: str | None
    contacts: int
    replied: bool


class InboundResults(BaseModel):
    """One result per message, in order."""

    messages: list[InboundResult]


@router.post(
    "/webhooks/sms",
    response_model=InboundResults,
    summary="Inbound SMS: STOP, START, HELP (signed)",
    responses={
        401: {"model": Problem, "description": "Missing, wrong or expired signature."},
        404: {"model": Problem, "description": "SMS webhooks are not configured."},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/InboundMessages"}}
            },
        }
    },
)
async def sms_webhook(
    request: Request,
    held: ServicesDep,
    signature: Annotated[str | None, Header(alias=SIGNATURE_HEADER)] = None,
) -> InboundResults:
    """Verify the signature, then apply each message's keyword and answer it once."""
    posted = await verified_body(
        request,
        held.settings.sms_webhook_secret,
        signature,
        InboundMessages,
        webhooks="SMS webhooks",
        body_name="an inbound-messages",
    )
    results = []
    for message in posted.messages:
        outcome = await handle_inbound(
            held.temporal,
            held.engine,
            InboundSms(
                id=message.id,
                from_number=message.from_number,
                body=message.body,
                received_at=message.received_at,
            ),
            task_queue=held.settings.task_queue,
            suppression_key=held.settings.suppression_key(),
            day_seconds=held.settings.day_seconds,
        )
        results.append(
            InboundResult(
                id=message.id,
                keyword=outcome.keyword,
                contacts=outcome.contacts,
                replied=outcome.replied,
            )
        )
    return InboundResults(messages=results)
