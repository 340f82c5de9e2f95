"""Twilio's webhooks: inbound texts (`/webhooks/twilio/inbound`) and message statuses
(`/webhooks/twilio/status`).

Both are form-encoded POSTs signed with `X-Twilio-Signature` (HMAC-SHA1 of the
URL Twilio called and the sorted form fields, keyed with the auth token),
checked with the SDK's `RequestValidator`. The URL is the public one:
`PUBLIC_BASE_URL` + the path (+ the query). 404 until `TWILIO_AUTH_TOKEN` is
set; 401 for a missing or wrong signature; 400 for a malformed form.

Twilio's signature has no timestamp, so a captured request could be replayed:
an inbound text counts once by its `MessageSid` (the keyword's changes and answer
are keyed by it), and a status only ever writes a suppression, which a replay
writes again to no effect.

- Inbound: `Body` is applied as a keyword (`starter/api/hooks/sms.py`); the
  answer is empty TwiML (`<Response/>`): the answer to STOP, START or HELP goes
  out by our own SMS path. Twilio's default opt-out handling answers these
  keywords itself and then refuses our STOP confirmation (21610): turn its
  replies off in the Messaging Service's Advanced Opt-Out (see the README).
- Status: `undelivered` / `failed` with `ErrorCode` 21610 (the number texted
  STOP) suppresses it as a STOP; 30005 (unknown destination handset) and 30006
  (landline or unreachable carrier) as an invalid recipient. 30003 (handset
  unreachable: switched off, out of coverage) is temporary and suppresses
  nothing; nor does any other status.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar
from urllib.parse import parse_qsl

from fastapi import APIRouter, Header, HTTPException, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from twilio.request_validator import RequestValidator

from starter.api.dependencies import ServicesDep
from starter.api.hooks.sms import (
    NumberFailure,
    SmsStatusResult,
    answer_keyword,
    suppress_failed_number,
)
from starter.api.schemas import Problem
from starter.services.sms_keywords import InboundSms

router = APIRouter(tags=["webhooks"])

SIGNATURE_HEADER = "X-Twilio-Signature"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
FAILED_STATUSES = frozenset({"undelivered", "failed"})
NUMBER_FAILURES: dict[str, NumberFailure] = {
    "21610": "opted_out",
    "30005": "invalid_number",
    "30006": "invalid_number",
}
_SID = r"^[A-Za-z0-9]{2,64}$"
_E164 = r"^\+[1-9][0-9]{6,14}$"
_REFUSALS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "Not a form, or a field is missing or malformed."},
    401: {"model": Problem, "description": "Missing or wrong X-Twilio-Signature."},
    404: {"model": Problem, "description": "Twilio webhooks are not configured."},
}


class TwilioInbound(BaseModel):
    """The fields of an inbound text we read (Twilio sends more)."""

    model_config = ConfigDict(extra="ignore")

    MessageSid: Annotated[str, StringConstraints(pattern=_SID)]
    From: Annotated[str, StringConstraints(pattern=_E164)]
    Body: Annotated[str, StringConstraints(max_length=1_600)] = ""


class TwilioStatus(BaseModel):
    """The fields of a status callback we read."""

    model_config = ConfigDict(extra="ignore")

    MessageSid: Annotated[str, StringConstraints(pattern=_SID)]
    MessageStatus: Annotated[str, StringConstraints(max_length=32)]
    To: Annotated[str, StringConstraints(pattern=_E164)]
    ErrorCode: Annotated[str, StringConstraints(max_length=16)] | None = Field(default=None)


Fields = TypeVar("Fields", bound=BaseModel)


class _Form(dict[str, list[str]]):
    """Form fields with every value of a repeated one (what `RequestValidator` signs)."""

    def getall(self, name: str) -> list[str]:
        """Every value of `name`."""
        return self[name]


async def verified_form(request: Request, held: ServicesDep, signature: str | None) -> _Form:
    """The request's form fields, once `X-Twilio-Signature` checks out.

    Raises:
        HTTPException: 404 when the auth token is unset, 400 for a body that is not
            a form, 401 for a missing or wrong signature.
    """
    token = held.settings.twilio_auth_token
    if token is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Twilio webhooks are not configured")
    try:
        pairs = parse_qsl(
            (await request.body()).decode(), keep_blank_values=True, strict_parsing=False
        )
    except UnicodeDecodeError:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "not a form-encoded body") from None
    form = _Form()
    for name, value in pairs:
        form.setdefault(name, []).append(value)
    url = held.settings.public_base_url.rstrip("/") + request.url.path
    if request.url.query:
        url += f"?{request.url.query}"
    if not signature or not RequestValidator(token.get_secret_value()).validate(
        url, form, signature
    ):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, f"missing or wrong {SIGNATURE_HEADER}")
    return form


def _fields(form: _Form, model: type[Fields]) -> Fields:
    try:
        return model.model_validate({name: values[0] for name, values in form.items()})
    except ValidationError as error:
        names = ", ".join(str(problem["loc"][0]) for problem in error.errors())
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, f"missing or malformed Twilio field(s): {names}"
        ) from None


@router.post(
    "/webhooks/twilio/inbound",
    response_class=Response,
    summary="Twilio inbound SMS: STOP, START, HELP (X-Twilio-Signature)",
    responses={200: {"content": {"text/xml": {}}}, **_REFUSALS},
)
async def twilio_inbound(
    request: Request,
    held: ServicesDep,
    signature: Annotated[str | None, Header(alias=SIGNATURE_HEADER)] = None,
) -> Response:
    """Verify the signature, apply the text's keyword, answer empty TwiML."""
    inbound = _fields(await verified_form(request, held, signature), TwilioInbound)
    await answer_keyword(
        held,
        InboundSms(
            id=inbound.MessageSid,
            from_number=inbound.From,
            body=inbound.Body,
            received_at=datetime.now(UTC),
        ),
    )
    return Response(EMPTY_TWIML, media_type="text/xml")


@router.post(
    "/webhooks/twilio/status",
    response_model=SmsStatusResult,
    summary="Twilio message status callbacks (X-Twilio-Signature)",
    responses=_REFUSALS,
)
async def twilio_status(
    request: Request,
    held: ServicesDep,
    signature: Annotated[str | None, Header(alias=SIGNATURE_HEADER)] = None,
) -> SmsStatusResult:
    """Verify the signature; suppress the number a failed status says is gone."""
    callback = _fields(await verified_form(request, held, signature), TwilioStatus)
    failed = callback.MessageStatus in FAILED_STATUSES
    return await suppress_failed_number(
        held,
        number=callback.To,
        message_id=callback.MessageSid,
        failure=NUMBER_FAILURES.get(callback.ErrorCode or "") if failed else None,
        at=datetime.now(UTC),
    )
