"""Email through SendGrid's v3 Mail Send API (httpx: the official `sendgrid` library is
synchronous, and would block the worker's event loop).

Wire format (https://www.twilio.com/docs/sendgrid/api-reference/mail-send/mail-send):

- `POST {base_url}/v3/mail/send`, `Authorization: Bearer <API key>`, JSON body
  `personalizations` (one, to the contact), `from` (`email`, `name`), `reply_to`,
  `subject`, `content` (`text/plain` first, then `text/html`, as SendGrid requires),
  `headers` (our `Message-ID`, List-Unsubscribe, List-Unsubscribe-Post, X-Journey…:
  none of them among SendGrid's reserved headers) and `custom_args`
  (`{"idempotency_key": …}`, which SendGrid echoes in every event of the message).
- Success: `202` with an empty body and the header `X-Message-Id`, which `deliver`
  returns; SendGrid's events name the message `<X-Message-Id>.<suffix>`
  (`sg_message_id`), which the webhook route cuts back to the `X-Message-Id`.

SendGrid offers no idempotency key: the message log row written before the call stops
a retry from sending twice, but a timeout after SendGrid took the message may send it
twice.

How a failure is classified:

- `429` is transient, retried after `Retry-After` or else `X-RateLimit-Reset` (the
  Unix time the limit resets); `5xx`, timeouts and refused connections are transient.
- `400` whose error names the recipient's address
  (`personalizations.N.to.N.email`: not a valid address) is permanent and
  `invalid_recipient`. SendGrid checks nothing more of a recipient at send time:
  an address that does not exist comes back later as a `bounce` or `dropped` event.
- Every other status (`401` wrong key, `403` missing permission or unverified sender,
  `400` malformed request, `413` too large) is permanent for the request: the step
  fails with SendGrid's error messages (addresses masked).
"""

from __future__ import annotations

import re
import time
from datetime import timedelta
from typing import Any

import httpx

from activities.providers.errors import DeliveryError, parse_retry_after, provider_text
from activities.providers.http_api import JsonApi
from activities.providers.messages import OutgoingEmail, header_text

API_LABEL = "SendGrid"
MESSAGE_ID_HEADER = "X-Message-Id"
_RECIPIENT_FIELD = re.compile(r"^personalizations\.\d+\.to\.\d+\.email$")


class SendGridEmailProvider:
    """Delivers email with SendGrid's `POST /v3/mail/send`."""

    name = "sendgrid"

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = "https://api.sendgrid.com",
        client: httpx.AsyncClient | None = None,
        timeout: float = 10.0,
    ) -> None:
        """Configure the API.

        Args:
            api_key: A SendGrid API key with the Mail Send permission.
            base_url: SendGrid's API (a loopback fake in tests).
            client: Shared httpx client; without one, one short-lived client per request.
            timeout: Seconds allowed for one request.

        Raises:
            ValueError: `base_url` is not an absolute http(s) URL.
        """
        self._api = JsonApi(
            base_url,
            api=API_LABEL,
            auth={"Authorization": f"Bearer {api_key}"},
            client=client,
            timeout=timeout,
        )

    async def deliver(self, email: OutgoingEmail) -> str:
        """Hand the email to SendGrid once; return its `X-Message-Id`.

        Raises:
            DeliveryError: classified as the module docstring says.
        """
        response = await self._api.send("/v3/mail/send", json=payload(email))
        if response.status_code != httpx.codes.ACCEPTED:
            raise sendgrid_error(response)
        message_id: str = response.headers.get(MESSAGE_ID_HEADER, "").strip()
        if not message_id:
            raise DeliveryError(
                f"{API_LABEL} answered HTTP 202 without an {MESSAGE_ID_HEADER} header",
                permanent=True,
                status_code=response.status_code,
            )
        return message_id


def payload(email: OutgoingEmail) -> dict[str, Any]:
    """The JSON body of `POST /v3/mail/send` for `email`."""
    headers = {"Message-ID": email.message_id, **email.headers}
    return {
        "personalizations": [{"to": [{"email": email.to_address}]}],
        "from": {"email": email.from_address, "name": header_text(email.from_name)},
        "reply_to": {"email": email.reply_to},
        "subject": header_text(email.subject),
        "content": [
            {"type": "text/plain", "value": email.text},
            {"type": "text/html", "value": email.html},
        ],
        "headers": {name: header_text(value) for name, value in headers.items()},
        "custom_args": {"idempotency_key": email.idempotency_key},
    }


def sendgrid_error(response: httpx.Response) -> DeliveryError:
    """Classify SendGrid's non-202 answer (see the module docstring)."""
    status = response.status_code
    fields, text = _errors(response)
    message = f"{API_LABEL} answered HTTP {status}: {text}"
    if status == httpx.codes.TOO_MANY_REQUESTS or status >= 500:
        return DeliveryError(
            message, permanent=False, retry_after=retry_after(response), status_code=status
        )
    invalid = status == httpx.codes.BAD_REQUEST and any(
        _RECIPIENT_FIELD.match(field) for field in fields
    )
    return DeliveryError(message, permanent=True, invalid_recipient=invalid, status_code=status)


def retry_after(response: httpx.Response) -> timedelta | None:
    """How long a rate-limited answer asks us to wait: `Retry-After`, else `X-RateLimit-Reset`."""
    asked = parse_retry_after(response.headers.get("Retry-After"))
    if asked is not None:
        return asked
    reset = response.headers.get("X-RateLimit-Reset", "").strip()
    if not reset.isdigit():
        return None
    return timedelta(seconds=max(int(reset) - time.time(), 0.0))


def _errors(response: httpx.Response) -> tuple[list[str], str]:
    """The `field`s SendGrid's errors name, and their messages as one short text."""
    fallback = provider_text(response.text) or response.reason_phrase
    try:
        body = response.json()
    except ValueError:
        return [], fallback
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return [], fallback
    listed = [error for error in errors if isinstance(error, dict)]
    fields = [str(error["field"]) for error in listed if error.get("field")]
    messages = [str(error["message"]) for error in listed if error.get("message")]
    return fields, provider_text("; ".join(messages)) if messages else fallback
