"""Email through Mailgun's Messages API (httpx): `POST {MAILGUN_API_URL}/v3/{domain}/messages`.

Mailgun's Python SDK (`mailgun`) is well kept and has an httpx-based
`AsyncClient`, but for one form POST it adds a dependency and an untyped,
attribute-built client (`client.messages.create(data=…)`) while classifying no
errors: this adapter posts the documented form with our httpx client instead.

- Auth: HTTP basic, user `api`, password `MAILGUN_API_KEY`.
- Body (form-encoded): `from`, `to`, `subject`, `text`, `html`, `h:Reply-To`,
  `h:Message-Id` (ours), `h:<name>` for each of our headers (List-Unsubscribe,
  List-Unsubscribe-Post, X-Journey…), and the variables `v:idempotency-key`,
  `v:journey`, `v:step`, which Mailgun hands back in its webhooks
  (`user-variables`).
- Answer: `{"id": "<20250304093000.1.ABC@mg.acme.test>", "message": "Queued.
  Thank you."}`. Mailgun's webhooks name the message without the angle brackets
  (`message.headers.message-id`), so `deliver` returns the id without them.
- Idempotency: Mailgun has none. The message log row written before the call
  stops a retry from sending twice; an ambiguous failure (a timeout after
  Mailgun took the message) may send twice. Our stable `Message-Id` lets
  receivers drop the second copy.

Errors (`{"message": "…"}`):

- transient: 429 (`Retry-After` honoured) and 5xx, timeouts, no connection;
- permanent for the recipient: a 400 whose message says the `to` address is
  not valid (`to parameter is not a valid address. please check documentation`);
- permanent for the request: everything else (401 a wrong key, 403, 404 an
  unknown domain, another 400).
"""

from __future__ import annotations

import re
from email.utils import formataddr

import httpx

from activities.providers.errors import DeliveryError, provider_text
from activities.providers.http_api import (
    JsonApi,
    answer_error,
    basic_auth,
    error_body,
    fallback_text,
)
from activities.providers.messages import OutgoingEmail, header_text

VARIABLE_HEADERS = (("journey", "X-Journey"), ("step", "X-Journey-Step"))
"""The `v:` variables taken from our headers (variable, header)."""
_INVALID_TO = re.compile(r"\bto parameter is not a valid address\b", re.IGNORECASE)


def normalise_message_id(message_id: str) -> str:
    """Mailgun's message id as its webhooks give it: without the angle brackets."""
    return message_id.strip().removeprefix("<").removesuffix(">")


def mailgun_error(response: httpx.Response, *, api: str) -> DeliveryError:
    """Classify a Mailgun error answer (see the module docstring)."""
    status = response.status_code
    text = _error_text(response)
    message = f"{api} answered HTTP {status}: {text}"
    return answer_error(
        response,
        message,
        transient=status >= 500 or status == 429,
        invalid_recipient=status == 400 and bool(_INVALID_TO.search(text)),
    )


def _error_text(response: httpx.Response) -> str:
    text = error_body(response).get("message")
    return provider_text(text) if isinstance(text, str) else fallback_text(response)


class MailgunEmailProvider:
    """Email through Mailgun (see the module docstring for the wire format)."""

    name = "mailgun"

    def __init__(
        self,
        api_key: str,
        *,
        domain: str,
        base_url: str,
        client: httpx.AsyncClient | None = None,
        timeout: float = 10.0,
    ) -> None:
        """Configure the API.

        Args:
            api_key: The Mailgun API key.
            domain: The sending domain (`mg.acme.example`).
            base_url: `https://api.mailgun.net`, `https://api.eu.mailgun.net` for
                the EU region (a loopback fake in tests).
            client: Shared httpx client (default: one per request).
            timeout: Seconds allowed for one call.

        Raises:
            ValueError: `base_url` is not an absolute http(s) URL, or `domain`
                is not a domain name.
        """
        if not domain or "/" in domain or domain.strip() != domain:
            raise ValueError(f"MAILGUN_DOMAIN must be a domain name, got {domain!r}")
        self.domain = domain
        self._api = JsonApi(
            base_url,
            api="Mailgun",
            auth=basic_auth("api", api_key),
            client=client,
            timeout=timeout,
            classify=mailgun_error,
        )

    async def deliver(self, email: OutgoingEmail) -> str:
        """Hand the email to Mailgun; return its message id (without angle brackets).

        Raises:
            DeliveryError: classified as described in the module docstring.
        """
        form = {
            "from": formataddr((header_text(email.from_name), email.from_address)),
            "to": email.to_address,
            "subject": header_text(email.subject),
            "text": email.text,
            "html": email.html,
            "h:Reply-To": email.reply_to,
            "h:Message-Id": email.message_id,
            **{f"h:{name}": header_text(value) for name, value in email.headers.items()},
            "v:idempotency-key": email.idempotency_key,
            **{
                f"v:{variable}": value
                for variable, header in VARIABLE_HEADERS
                if (value := email.headers.get(header))
            },
        }
        message_id = await self._api.submit(f"/v3/{self.domain}/messages", data=form)
        return normalise_message_id(message_id)
