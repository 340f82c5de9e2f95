"""SendGrid's v3 Mail Send API on loopback, as its documentation describes it.

https://www.twilio.com/docs/sendgrid/api-reference/mail-send/mail-send and
https://www.twilio.com/docs/sendgrid/api-reference/mail-send/errors:

- `Authorization: Bearer <API key>` must be the key: otherwise `401` with
  `{"errors": [{"field": null, "message": …}]}`.
- The body needs `personalizations` (each with `to`: `[{"email"}]`), `from.email`,
  `subject` and `content` (`text/plain` before `text/html`); `headers` and
  `custom_args` are objects of strings, and `headers` may not set a reserved header
  (`To`, `From`, `Subject`, `Reply-To`, `Content-Type`…). Otherwise `400` with the
  `field` at fault; a recipient without `@` names `personalizations.0.to.0.email`.
- Success: `202`, an empty body and `X-Message-Id`.

SendGrid has no idempotency key: every accepted request is a delivery. Scripted
faults (`fail_next`) answer their status with an error message; a 429 carries
`Retry-After` when the fault has one, and `X-RateLimit-Reset` (a Unix time) always.
"""

from __future__ import annotations

import json
import secrets
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fake_api import Fault, LedgerServer

API_KEY = "SG.tests-sendgrid-api-key"
RESERVED_HEADERS = frozenset(
    name.lower()
    for name in (
        "x-sg-id", "x-sg-eid", "received", "dkim-signature", "Content-Type",
        "Content-Transfer-Encoding", "To", "From", "Subject", "Reply-To", "CC", "BCC",
    )
)  # fmt: skip
RATE_LIMIT_RESET_IN = 30


class SendGridApi(LedgerServer):
    """The fake SendGrid API; `received` keeps each accepted body."""

    dedupes = False

    def __init__(self, api_key: str = API_KEY) -> None:
        self.api_key = api_key
        self.received: list[dict[str, Any]] = []
        super().__init__(self._handler_class())

    def new_message_id(self, number: int) -> str:
        """An X-Message-Id (22 URL-safe base64 characters)."""
        return secrets.token_urlsafe(16)[:22]

    def answer(
        self, authorization: str | None, path: str, body: Any
    ) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        """SendGrid's status, JSON answer (None: empty) and headers for one request."""
        if authorization != f"Bearer {self.api_key}":
            return 401, _errors((None, "The provided authorization grant is invalid.")), {}
        if path != "/v3/mail/send":
            return 404, _errors((None, "Not found")), {}
        problem = _invalid(body)
        if problem is not None:
            return 400, _errors(problem), {}
        fault, delivery = self.take(
            body.get("custom_args", {}).get("idempotency_key", ""),
            to=body["personalizations"][0]["to"][0]["email"],
            journey=body.get("headers", {}).get("X-Journey", ""),
            step=body.get("headers", {}).get("X-Journey-Step", ""),
        )
        if fault is not None and fault.status is not None:
            return fault.status, _errors((None, "scripted fault")), _fault_headers(fault)
        assert delivery is not None
        self.received.append(body)
        return 202, None, {"X-Message-Id": delivery.message_id}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                answered: tuple[int, dict[str, Any] | None, dict[str, str]]
                try:
                    body = json.loads(raw)
                except ValueError:
                    answered = 400, _errors((None, "Bad Request")), {}
                else:
                    answered = api.answer(self.headers.get("Authorization"), self.path, body)
                status, answer, headers = answered
                payload = b"" if answer is None else json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


def _fault_headers(fault: Fault) -> dict[str, str]:
    headers = {}
    if fault.status == 429:
        headers["X-RateLimit-Reset"] = str(int(time.time()) + RATE_LIMIT_RESET_IN)
    if fault.retry_after is not None:
        headers["Retry-After"] = str(fault.retry_after)
    return headers


def _errors(*errors: tuple[str | None, str]) -> dict[str, Any]:
    return {"errors": [{"field": field, "message": message} for field, message in errors]}


def _strings(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    )


def _invalid(body: Any) -> tuple[str | None, str] | None:
    """The field SendGrid would refuse and its message, or None."""
    if not isinstance(body, dict):
        return None, "Bad Request"
    personalizations = body.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        return "personalizations", "The personalizations field is required."
    for p, personalization in enumerate(personalizations):
        recipients = personalization.get("to") if isinstance(personalization, dict) else None
        if not isinstance(recipients, list) or not recipients:
            return f"personalizations.{p}.to", "The to array is required."
        for r, recipient in enumerate(recipients):
            if "@" not in str(recipient.get("email", "")):
                return f"personalizations.{p}.to.{r}.email", "Does not contain a valid address."
    if "@" not in str((body.get("from") or {}).get("email", "")):
        return "from.email", "The from email does not contain a valid address."
    if not body.get("subject"):
        return "subject", "The subject is required."
    content = body.get("content")
    if not isinstance(content, list) or not content or content[0].get("type") != "text/plain":
        return "content", "If present, text/plain must be first, followed by text/html."
    headers = body.get("headers", {})
    if not _strings(headers):
        return "headers", "Invalid type. Expected: object of strings."
    if reserved := sorted(name for name in headers if name.lower() in RESERVED_HEADERS):
        return "headers", f"These headers are reserved and cannot be used: {', '.join(reserved)}"
    if not _strings(body.get("custom_args", {})):
        return "custom_args", "Invalid type. Expected: object of strings."
    return None
