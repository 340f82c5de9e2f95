"""Text messages through Vonage's SMS API (httpx).

The official `vonage` SDK (v4) is synchronous: it would block the worker's event
loop, so the documented HTTP API is spoken here with httpx, our HTTP client.

`POST {VONAGE_API_URL}/sms/json`, form-encoded `api_key`, `api_secret`, `from`,
`to` (international format without the `+`), `text`, `type` (`unicode` when the
text is not ASCII) and `client-ref` (our idempotency key, or its digest past
Vonage's 100 characters; the delivery receipts echo it). The answer is HTTP 200
with one entry per message part, each with a `status` (0: accepted) and a
`message-id`; `deliver` returns the first part's id, which the delivery receipts
name as `messageId` (`starter/api/hooks/vonage.py`).

Vonage has no idempotency key: the message-log row written before the call
stops a retry from sending twice; an ambiguous failure (a timeout after Vonage
took the message) may send twice.

How a part's `status` is classified (https://developer.vonage.com/en/api-errors/sms):

- 1 (throttled), 5 (internal error), 10 (too many binds): transient;
- 6 (invalid message: an unrecognised number prefix), 7 (number barred),
  33 (number de-activated): `invalid_recipient`;
- every other (2 missing / 3 invalid parameters, 4 invalid credentials, 8
  account barred, 9 no credit, 15 invalid sender, 29 non-whitelisted
  destination…): permanent for the request.

An answer other than 200 is classified as the JSON API's are (429 and 5xx
transient, with `Retry-After`); a timeout or a connection failure is transient.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from activities.providers.errors import DeliveryError, provider_text
from activities.providers.http_api import delivery_error_from_response, http_client
from activities.providers.messages import OutgoingSms

VONAGE_API_URL = "https://rest.nexmo.com"
API = "Vonage SMS API"
TRANSIENT_STATUSES = frozenset({"1", "5", "10"})
INVALID_NUMBER_STATUSES = frozenset({"6", "7", "33"})
CLIENT_REF_LIMIT = 100
_BARE_NUMBER = re.compile(r"\b\d{7,15}\b")


class VonageSmsProvider:
    """Text messages through Vonage's SMS API (see the module docstring)."""

    name = "vonage"

    def __init__(
        self,
        api_key: str,
        api_secret: str,
        *,
        sender: str,
        api_url: str = VONAGE_API_URL,
        client: httpx.AsyncClient | None = None,
        timeout: float = 10.0,
    ) -> None:
        """Configure the account and the sender.

        Args:
            api_key: The account's API key.
            api_secret: Its secret.
            sender: A Vonage number (E.164; the `+` is dropped) or an alphanumeric id.
            api_url: Base URL of the SMS API.
            client: Shared HTTP client (default: one per request, never retrying).
            timeout: Seconds allowed for connecting, sending and reading the answer.
        """
        self._credentials = {"api_key": api_key, "api_secret": api_secret}
        self._sender = sender.removeprefix("+")
        self._url = f"{api_url.rstrip('/')}/sms/json"
        self._client = client
        self._timeout = timeout

    async def deliver(self, sms: OutgoingSms) -> str:
        """Hand the message to Vonage once; return the first part's `message-id`.

        Raises:
            DeliveryError: classified as described in the module docstring.
        """
        form = {
            **self._credentials,
            "from": self._sender,
            "to": sms.to_number.removeprefix("+"),
            "text": sms.body,
            "type": "text" if sms.body.isascii() else "unicode",
            "client-ref": client_ref(sms),
        }
        try:
            async with http_client(self._client) as client:
                response = await client.post(self._url, data=form, timeout=self._timeout)
        except httpx.RequestError as error:
            raise DeliveryError(
                f"{API} unreachable: {type(error).__name__}: {provider_text(str(error))}",
                permanent=False,
            ) from error
        if response.status_code != 200:
            raise delivery_error_from_response(response, api=API)
        return _accepted_message_id(response)


def client_ref(sms: OutgoingSms) -> str:
    """What Vonage keeps as the message's `client-ref`: the idempotency key, if short enough."""
    key = sms.idempotency_key
    return key if len(key) <= CLIENT_REF_LIMIT else sms.message_id


def _accepted_message_id(response: httpx.Response) -> str:
    """The first part's id when every part has status 0; else the first refusal's error."""
    try:
        parts: Any = response.json()["messages"]
    except (ValueError, KeyError, TypeError):
        parts = None
    if not isinstance(parts, list) or not parts or not all(isinstance(p, dict) for p in parts):
        raise DeliveryError(
            f"{API} answered without messages: {provider_text(response.text)}", permanent=True
        )
    for part in parts:
        if str(part.get("status")) != "0":
            raise vonage_error(str(part.get("status")), str(part.get("error-text", "")))
    message_id = parts[0].get("message-id")
    if not isinstance(message_id, str) or not message_id:
        raise DeliveryError(f"{API} accepted the message without a message-id", permanent=True)
    return message_id


def vonage_error(status: str, text: str) -> DeliveryError:
    """The `DeliveryError` of a refused part (see the module docstring).

    Args:
        status: The part's `status`.
        text: Its `error-text` (numbers in it are masked here).
    """
    message = f"{API} refused the message, status {status}: " + provider_text(
        _BARE_NUMBER.sub("<phone>", text)
    )
    if status in TRANSIENT_STATUSES:
        return DeliveryError(message, permanent=False)
    return DeliveryError(
        message, permanent=True, invalid_recipient=status in INVALID_NUMBER_STATUSES
    )
