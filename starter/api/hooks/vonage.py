"""Vonage's SMS API webhooks: inbound texts (`/webhooks/vonage/inbound`) and delivery receipts
(`/webhooks/vonage/status`).

Vonage calls them with the HTTP method set in the dashboard: GET (the parameters in
the query string), POST form-encoded, or POST JSON; all three are taken.

Signed as https://developer.vonage.com/en/getting-started/concepts/signing-messages
describes: every parameter but `sig`, sorted by name, each value with `&` and `=`
replaced by `_`, concatenated as `&name=value`; `md5hash` (Vonage's default) is the
MD5 of that string followed by the signature secret, the others are its HMAC
(MD5, SHA-1, SHA-256, SHA-512) keyed with the secret (`VONAGE_SIGNATURE_SECRET`,
`VONAGE_SIGNATURE_METHOD`). The `sig` is compared in constant time, in any case
(Vonage's md5hash is lower-case hex, its HMACs upper-case). 404 until the secret
is set; 401 without `sig` or `timestamp`, for a `timestamp` more than
`SIGNATURE_TOLERANCE` (5 minutes) from now, or a wrong `sig`; 400 naming the field
for a malformed request.

A captured request can be replayed within those 5 minutes: an inbound text counts
once by its `messageId` (the keyword's changes and answer are keyed by it), and a
receipt only ever writes a suppression, which a replay writes again to no effect.

- Inbound (https://developer.vonage.com/en/messaging/sms/guides/inbound-sms):
  `text` from `msisdn` (international digits, no `+`) is applied as a keyword
  (`starter/api/hooks/sms.py`); the answer goes out by our own SMS path.
- Delivery receipts (https://developer.vonage.com/en/messaging/sms/guides/delivery-receipts,
  err-code table: https://api.support.vonage.com/hc/en-us/articles/204014733):
  a `failed` or `rejected` receipt with err-code 3 (absent subscriber, permanent:
  the number is no longer active) or 4 (call barred by user: permanent) suppresses
  the number as an invalid recipient; 9 (illegal number: the user asked not to get
  messages from this service) suppresses it as a STOP, which a START texted later
  lifts. Every other code (1 unknown, 2 absent subscriber temporary, 6 anti-spam,
  7 handset busy, 8 network error, 12 destination unreachable…) suppresses nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar
from urllib.parse import parse_qsl

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from models.settings import VonageSignatureMethod
from starter.api.dependencies import ServicesDep
from starter.api.hooks.sms import (
    NumberFailure,
    SmsStatusResult,
    answer_keyword,
    suppress_failed_number,
)
from starter.api.schemas import Problem
from starter.api.sms_webhook import InboundResult
from starter.api.webhooks import SIGNATURE_TOLERANCE
from starter.services.sms_keywords import InboundSms

router = APIRouter(tags=["webhooks"])

FAILED_STATUSES = frozenset({"failed", "rejected"})
NUMBER_FAILURES: dict[str, NumberFailure] = {
    "3": "invalid_number",
    "4": "invalid_number",
    "9": "opted_out",
}
_MESSAGE_ID = r"^[A-Za-z0-9-]{1,100}$"
_MSISDN = r"^\+?[1-9][0-9]{6,14}$"
_REFUSALS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "A parameter is missing, repeated or malformed."},
    401: {"model": Problem, "description": "Missing, stale or wrong sig."},
    404: {"model": Problem, "description": "Vonage webhooks are not configured."},
}


class VonageInbound(BaseModel):
    """The parameters of an inbound text we read (Vonage sends more)."""

    model_config = ConfigDict(extra="ignore")

    messageId: Annotated[str, StringConstraints(pattern=_MESSAGE_ID)]
    msisdn: Annotated[str, StringConstraints(pattern=_MSISDN)]
    text: Annotated[str, StringConstraints(max_length=1_600)] = ""


class VonageReceipt(BaseModel):
    """The parameters of a delivery receipt we read."""

    model_config = ConfigDict(extra="ignore")

    messageId: Annotated[str, StringConstraints(pattern=_MESSAGE_ID)]
    msisdn: Annotated[str, StringConstraints(pattern=_MSISDN)]
    status: Annotated[str, StringConstraints(max_length=32)]
    err_code: Annotated[str, StringConstraints(max_length=16)] | None = Field(
        default=None, alias="err-code"
    )


Fields = TypeVar("Fields", bound=BaseModel)


def signature(params: Mapping[str, str], secret: str, method: VonageSignatureMethod) -> str:
    """The hex `sig` Vonage computes for `params` (its own `sig` left out).

    Args:
        params: The request's parameters.
        secret: The signature secret.
        method: `md5hash`, or the HMAC's digest: `md5`, `sha1`, `sha256`, `sha512`.
    """
    signed = "".join(
        f"&{name}={params[name].replace('&', '_').replace('=', '_')}"
        for name in sorted(params)
        if name != "sig"
    ).encode()
    if method == "md5hash":
        return hashlib.md5(signed + secret.encode()).hexdigest()
    return hmac.new(secret.encode(), signed, method).hexdigest()


async def verified_params(request: Request, held: ServicesDep) -> dict[str, str]:
    """The request's parameters, once their `sig` and `timestamp` check out.

    Raises:
        HTTPException: 404 when the signature secret is unset, 400 for parameters
            that cannot be read, 401 for a missing, stale or wrong signature.
    """
    secret = held.settings.vonage_signature_secret
    if secret is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Vonage webhooks are not configured")
    params = await _params(request)
    if "sig" not in params or "timestamp" not in params:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unsigned: no sig or no timestamp")
    try:
        signed_at = int(params["timestamp"])
    except ValueError:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, "timestamp is not a Unix time in seconds"
        ) from None
    if abs(time.time() - signed_at) > SIGNATURE_TOLERANCE:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            f"stale: timestamp is more than {SIGNATURE_TOLERANCE} s from now",
        )
    expected = signature(params, secret.get_secret_value(), held.settings.vonage_signature_method)
    if not hmac.compare_digest(expected.encode(), params["sig"].lower().encode()):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong sig")
    return params


async def _params(request: Request) -> dict[str, str]:
    """The query string of a GET, the form or JSON object of a POST, one value per name."""
    if request.method == "GET":
        return _unique(parse_qsl(request.url.query, keep_blank_values=True))
    body = await request.body()
    if request.headers.get("content-type", "").startswith("application/json"):
        return _json_params(body)
    try:
        return _unique(parse_qsl(body.decode(), keep_blank_values=True))
    except UnicodeDecodeError:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "not a form-encoded body") from None


def _unique(pairs: list[tuple[str, str]]) -> dict[str, str]:
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, f"parameter {name} is repeated")
        params[name] = value
    return params


def _json_params(body: bytes) -> dict[str, str]:
    try:
        document = json.loads(body)
    except ValueError:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "request body is not valid JSON") from None
    if not isinstance(document, dict):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "request body is not a JSON object")
    params: dict[str, str] = {}
    for name, value in document.items():
        if not isinstance(value, str):
            raise HTTPException(status.HTTP_400_BAD_REQUEST, f"parameter {name} is not a string")
        params[name] = value
    return params


def _fields(params: dict[str, str], model: type[Fields]) -> Fields:
    try:
        return model.model_validate(params)
    except ValidationError as error:
        names = ", ".join(str(problem["loc"][0]) for problem in error.errors())
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, f"missing or malformed Vonage parameter(s): {names}"
        ) from None


def _e164(msisdn: str) -> str:
    return "+" + msisdn.removeprefix("+")


@router.get(
    "/webhooks/vonage/inbound",
    response_model=InboundResult,
    summary="Vonage inbound SMS: STOP, START, HELP (signed sig, query string)",
    responses=_REFUSALS,
)
@router.post(
    "/webhooks/vonage/inbound",
    response_model=InboundResult,
    summary="Vonage inbound SMS: STOP, START, HELP (signed sig, form or JSON)",
    responses=_REFUSALS,
)
async def vonage_inbound(request: Request, held: ServicesDep) -> InboundResult:
    """Verify the signature; apply the text's keyword (once per `messageId`)."""
    inbound = _fields(await verified_params(request, held), VonageInbound)
    outcome = await answer_keyword(
        held,
        InboundSms(
            id=inbound.messageId,
            from_number=_e164(inbound.msisdn),
            body=inbound.text,
            received_at=datetime.now(UTC),
        ),
    )
    return InboundResult(
        id=inbound.messageId,
        keyword=outcome.keyword,
        contacts=outcome.contacts,
        replied=outcome.replied,
    )


@router.get(
    "/webhooks/vonage/status",
    response_model=SmsStatusResult,
    summary="Vonage delivery receipts (signed sig, query string)",
    responses=_REFUSALS,
)
@router.post(
    "/webhooks/vonage/status",
    response_model=SmsStatusResult,
    summary="Vonage delivery receipts (signed sig, form or JSON)",
    responses=_REFUSALS,
)
async def vonage_status(request: Request, held: ServicesDep) -> SmsStatusResult:
    """Verify the signature; suppress the number a failed receipt says is gone."""
    receipt = _fields(await verified_params(request, held), VonageReceipt)
    failed = receipt.status in FAILED_STATUSES
    return await suppress_failed_number(
        held,
        number=_e164(receipt.msisdn),
        message_id=receipt.messageId,
        failure=NUMBER_FAILURES.get(receipt.err_code or "") if failed else None,
        at=datetime.now(UTC),
    )
