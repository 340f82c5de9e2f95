"""Email through Postmark's Email API (httpx: Postmark has no maintained async Python SDK).

Wire format (https://postmarkapp.com/developer/api/email-api):

- `POST {base_url}/email`, header `X-Postmark-Server-Token: <server token>`, JSON
  body `From`, `To`, `ReplyTo`, `Subject`, `TextBody`, `HtmlBody`, `Headers`
  (`[{"Name", "Value"}]`: our `Message-ID`, which Postmark keeps, List-Unsubscribe,
  List-Unsubscribe-Post, X-Journey…), `MessageStream` and `Metadata`
  (`{"idempotency_key": …}`, so a webhook or Postmark's activity page names the send).
- Success: `200` with `{"MessageID": "<uuid>", "ErrorCode": 0, …}`; the `MessageID`
  is what `deliver` returns and what Postmark's webhooks name the message by.
- Message streams: everything goes to `POSTMARK_MESSAGE_STREAM` (`outbound`, the
  default transactional stream), except marketing messages (those that carry a
  List-Unsubscribe header) when `POSTMARK_BROADCAST_STREAM` names a broadcast stream.

Postmark offers no idempotency key: the message log row written before the call
stops a retry from sending twice, but a timeout after Postmark took the message
may send it twice.

How a failure is classified (https://postmarkapp.com/developer/api/overview#error-codes):

- `429` and `5xx` are transient (`Retry-After` honoured when given); so is
  `ErrorCode` 100 (maintenance), whatever the status; timeouts and refused
  connections too.
- `422` with `ErrorCode` 406 (inactive recipient: Postmark suppressed the address
  after a hard bounce, a spam complaint or an unsubscribe) is permanent and
  `invalid_recipient`. `ErrorCode` 300 (invalid email request) is `invalid_recipient`
  only when Postmark's message names the `To` address; otherwise (a bad `From`,
  an unconfirmed sender signature…) the request is at fault, not the contact.
- `401` (wrong server token) and every other `422` code are permanent for the
  request: the step fails with Postmark's `ErrorCode` and message (addresses masked).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from email.utils import formataddr
from typing import Any

import httpx

from activities.providers.errors import DeliveryError, provider_text
from activities.providers.http_api import (
    JsonApi,
    answer_error,
    error_body,
    fallback_text,
    message_id_of,
)
from activities.providers.messages import OutgoingEmail, header_text

API_LABEL = "Postmark"
INACTIVE_RECIPIENT = 406
INVALID_REQUEST = 300
MAINTENANCE = 100
METADATA_VALUE_LIMIT = 80
"""Postmark's longest metadata value; a longer idempotency key is sent as its digest."""
_NAMES_TO_ADDRESS = re.compile(r"'To'")
"""How Postmark's ErrorCode 300 message names the recipient ("Invalid 'To' address…",
"Error parsing 'To'…")."""


class PostmarkEmailProvider:
    """Delivers email with Postmark's `POST /email`."""

    name = "postmark"

    def __init__(
        self,
        server_token: str,
        *,
        base_url: str = "https://api.postmarkapp.com",
        message_stream: str = "outbound",
        broadcast_stream: str | None = None,
        client: httpx.AsyncClient | None = None,
        timeout: float = 10.0,
    ) -> None:
        """Configure the API.

        Args:
            server_token: The Postmark server's API token.
            base_url: Postmark's API (a loopback fake in tests).
            message_stream: Stream of every message but marketing ones.
            broadcast_stream: Stream of marketing messages (List-Unsubscribe);
                None: `message_stream`.
            client: Shared httpx client; without one, one short-lived client per request.
            timeout: Seconds allowed for one request.

        Raises:
            ValueError: `base_url` is not an absolute http(s) URL.
        """
        self._api = JsonApi(
            base_url,
            api=API_LABEL,
            auth={"X-Postmark-Server-Token": server_token, "Accept": "application/json"},
            client=client,
            timeout=timeout,
        )
        self.message_stream = message_stream
        self.broadcast_stream = broadcast_stream

    async def deliver(self, email: OutgoingEmail) -> str:
        """Hand the email to Postmark once; return Postmark's `MessageID`.

        Raises:
            DeliveryError: classified as the module docstring says.
        """
        response = await self._api.send("/email", json=self.payload(email))
        if response.status_code != httpx.codes.OK:
            raise postmark_error(response)
        return message_id_of(response, api=API_LABEL, field="MessageID")

    def payload(self, email: OutgoingEmail) -> dict[str, Any]:
        """The JSON body of `POST /email` for `email`."""
        headers = {"Message-ID": email.message_id, **email.headers}
        return {
            "From": formataddr((header_text(email.from_name), email.from_address)),
            "To": email.to_address,
            "ReplyTo": email.reply_to,
            "Subject": header_text(email.subject),
            "TextBody": email.text,
            "HtmlBody": email.html,
            "Headers": [
                {"Name": name, "Value": header_text(value)} for name, value in headers.items()
            ],
            "MessageStream": self._stream(email.headers),
            "Metadata": {"idempotency_key": metadata_key(email.idempotency_key)},
        }

    def _stream(self, headers: Mapping[str, str]) -> str:
        if self.broadcast_stream and "List-Unsubscribe" in headers:
            return self.broadcast_stream
        return self.message_stream


def metadata_key(idempotency_key: str) -> str:
    """The idempotency key as a Postmark metadata value (its SHA-256 when it is too long)."""
    if len(idempotency_key) <= METADATA_VALUE_LIMIT:
        return idempotency_key
    return hashlib.sha256(idempotency_key.encode()).hexdigest()


def postmark_error(response: httpx.Response) -> DeliveryError:
    """Classify Postmark's non-200 answer (see the module docstring)."""
    status = response.status_code
    code, text = _error_details(response)
    label = f"HTTP {status}" if code is None else f"HTTP {status} (ErrorCode {code})"
    message = f"{API_LABEL} answered {label}: {text}"
    invalid = code == INACTIVE_RECIPIENT or (
        code == INVALID_REQUEST and bool(_NAMES_TO_ADDRESS.search(text))
    )
    return answer_error(
        response,
        message,
        transient=status == httpx.codes.TOO_MANY_REQUESTS or status >= 500 or code == MAINTENANCE,
        invalid_recipient=invalid,
    )


def _error_details(response: httpx.Response) -> tuple[int | None, str]:
    """Postmark's `ErrorCode` (if any) and its `Message`, masked and cut."""
    body = error_body(response)
    code, text = body.get("ErrorCode"), body.get("Message")
    return (
        code if isinstance(code, int) else None,
        provider_text(text) if isinstance(text, str) and text else fallback_text(response),
    )
