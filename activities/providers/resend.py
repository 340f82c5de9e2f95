"""Email through Resend's API (httpx): `POST {RESEND_API_URL}/emails`.

Resend's official Python SDK (`resend`) is synchronous (it calls `requests`),
so this adapter speaks the documented API with our async httpx client instead.

- Auth: `Authorization: Bearer <RESEND_API_KEY>`.
- Idempotency: the `Idempotency-Key` header (Resend keeps a key 24 hours and
  answers a retry with the first answer, sending nothing twice). Keys are 1–256
  characters: ours is sent as is when it fits, else as `sha256-<hex digest>`.
- Body: `from`, `to`, `reply_to`, `subject`, `text`, `html`, `headers` (ours,
  with List-Unsubscribe, List-Unsubscribe-Post and our `Message-ID`), and `tags`
  `journey` / `step` (names and values only ASCII letters, digits, `_` and `-`:
  anything else becomes `_`). Answer: `{"id": "<uuid>"}`, which `deliver` returns
  and Resend's webhooks name as `data.email_id`.

Errors (`{"statusCode": …, "name": "<code>", "message": "…"}`,
https://resend.com/docs/api-reference/errors):

- transient: 5xx, `rate_limit_exceeded` and `daily_quota_exceeded` (429;
  `Retry-After`, else `ratelimit-reset`, becomes the retry delay) and
  `concurrent_idempotent_requests` (409: the first request with the key is
  still being processed);
- permanent for the recipient: a `validation_error` about the `to` field
  (Resend has no other recipient error: bounces come later, by webhook);
- permanent for the request: everything else, e.g. `invalid_idempotent_request`
  (the key was used with another body), `monthly_quota_exceeded`, a wrong API
  key (401/403), `invalid_from_address`.
"""

from __future__ import annotations

import hashlib
import re
from email.utils import formataddr

import httpx

from activities.providers.errors import DeliveryError, parse_retry_after, provider_text
from activities.providers.http_api import JsonApi, bearer, error_body, fallback_text
from activities.providers.messages import OutgoingEmail, header_text

IDEMPOTENCY_KEY_LIMIT = 256
"""Resend's longest `Idempotency-Key`."""
TAG_LIMIT = 256
TAG_HEADERS = (("journey", "X-Journey"), ("step", "X-Journey-Step"))
"""The tags of a message (`name`, the header holding its value)."""
TRANSIENT_ERRORS = frozenset(
    {"rate_limit_exceeded", "daily_quota_exceeded", "concurrent_idempotent_requests"}
)
_TAG_FORBIDDEN = re.compile(r"[^A-Za-z0-9_-]")
_TO_FIELD = re.compile(r"\binvalid\W+to\W+field\b", re.IGNORECASE)


def idempotency_key(key: str) -> str:
    """Our key as Resend's `Idempotency-Key`: itself when it fits, else its digest."""
    if 0 < len(key) <= IDEMPOTENCY_KEY_LIMIT:
        return key
    return "sha256-" + hashlib.sha256(key.encode()).hexdigest()


def tag_text(value: str) -> str:
    """`value` in the characters Resend allows in a tag name or value (others become `_`)."""
    return _TAG_FORBIDDEN.sub("_", value)[:TAG_LIMIT] or "_"


def resend_error(response: httpx.Response, *, api: str) -> DeliveryError:
    """Classify a Resend error answer (see the module docstring)."""
    status = response.status_code
    name, text = _error_details(response)
    message = (
        f"{api} answered HTTP {status} {name}: {text}"
        if name
        else f"{api} answered HTTP {status}: {text}"
    )
    if status >= 500 or name in TRANSIENT_ERRORS:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if retry_after is None:
            retry_after = parse_retry_after(response.headers.get("ratelimit-reset"))
        return DeliveryError(message, permanent=False, retry_after=retry_after, status_code=status)
    return DeliveryError(
        message,
        permanent=True,
        invalid_recipient=name == "validation_error" and bool(_TO_FIELD.search(text)),
        status_code=status,
    )


def _error_details(response: httpx.Response) -> tuple[str | None, str]:
    """Resend's error `name` (if any) and a short text of its answer."""
    body = error_body(response)
    name, text = body.get("name"), body.get("message")
    return (
        name if isinstance(name, str) else None,
        provider_text(text) if isinstance(text, str) else fallback_text(response),
    )


class ResendEmailProvider:
    """Email through Resend (see the module docstring for the wire format)."""

    name = "resend"

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str,
        client: httpx.AsyncClient | None = None,
        timeout: float = 10.0,
    ) -> None:
        """Configure the API.

        Args:
            api_key: The Resend API key.
            base_url: Resend's API, `https://api.resend.com` (a loopback fake in tests).
            client: Shared httpx client (default: one per request).
            timeout: Seconds allowed for one call.

        Raises:
            ValueError: `base_url` is not an absolute http(s) URL.
        """
        self._api = JsonApi(
            base_url,
            api="Resend",
            auth=bearer(api_key),
            client=client,
            timeout=timeout,
            classify=resend_error,
        )

    async def deliver(self, email: OutgoingEmail) -> str:
        """Hand the email to Resend once; return Resend's email id.

        Raises:
            DeliveryError: classified as described in the module docstring.
        """
        headers = {name: header_text(value) for name, value in email.headers.items()}
        headers["Message-ID"] = email.message_id
        payload = {
            "from": formataddr((header_text(email.from_name), email.from_address)),
            "to": [email.to_address],
            "reply_to": email.reply_to,
            "subject": header_text(email.subject),
            "text": email.text,
            "html": email.html,
            "headers": headers,
            "tags": [
                {"name": name, "value": tag_text(value)}
                for name, header in TAG_HEADERS
                if (value := email.headers.get(header))
            ],
        }
        return await self._api.post(
            "/emails", payload, idempotency_key=idempotency_key(email.idempotency_key)
        )
