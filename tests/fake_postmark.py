"""Postmark's Email API on loopback, as its documentation describes it.

https://postmarkapp.com/developer/api/email-api (`POST /email`, the body, the answer)
and https://postmarkapp.com/developer/api/overview#error-codes (the errors):

- `X-Postmark-Server-Token` must be the server's token: otherwise `401` with
  `{"ErrorCode": 10, "Message": …}`.
- The body needs `From`, `To`, `Subject` and `TextBody` or `HtmlBody`; `Headers` is a
  list of `{"Name", "Value"}` strings; `Metadata` at most 10 string fields, names of up
  to 20 and values of up to 80 characters. Otherwise `422` with `ErrorCode` 300
  ("Invalid email request"); a `To` without `@` gets 300 naming `'To'`.
- An address made inactive (`inactive`) gets `422` with `ErrorCode` 406.
- Success: `200` with `{"To", "SubmittedAt", "MessageID", "ErrorCode": 0, "Message": "OK"}`.

Postmark has no idempotency key: every accepted request is a delivery
(`LedgerServer.dedupes` is off). Scripted faults (`fail_next`) answer 429 with
`ErrorCode` 429, 503 with `ErrorCode` 100 (maintenance), or another status with a
plain JSON message, after their delay, without delivering.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fake_api import Delivery, Fault, LedgerServer

TOKEN = "tests-postmark-server-token"
_FAULT_CODES = {429: (429, "Rate limit exceeded."), 503: (100, "Maintenance")}


class PostmarkApi(LedgerServer):
    """The fake Postmark API; `received` keeps each accepted body, `inactive` the
    addresses Postmark suppressed."""

    dedupes = False

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.received: list[dict[str, Any]] = []
        self.inactive: set[str] = set()
        super().__init__(self._handler_class())

    def new_message_id(self, number: int) -> str:
        """A Postmark MessageID (a UUID)."""
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.url}/{number}"))

    def worker_environment(self) -> dict[str, str]:
        """The settings of a worker that sends through this API."""
        return {
            "EMAIL_PROVIDER": "postmark",
            "POSTMARK_API_URL": self.url,
            "POSTMARK_SERVER_TOKEN": self.token,
        }

    def answer(
        self, token: str | None, path: str, body: Any
    ) -> tuple[int, dict[str, Any], Fault | None]:
        """Postmark's status and JSON answer to one request, and the fault it served."""
        if token != self.token:
            return 401, _error(10, "Request does not contain a valid Server token."), None
        if path != "/email":
            return 404, _error(0, "Not found."), None
        problem = _invalid(body)
        if problem is not None:
            return 422, _error(300, problem), None
        if body["To"].lower() in self.inactive:
            return 422, _error(406, f"Found inactive addresses: {body['To']}."), None
        return self._deliver(body)

    def _deliver(self, body: dict[str, Any]) -> tuple[int, dict[str, Any], Fault | None]:
        headers = {header["Name"]: header["Value"] for header in body.get("Headers", [])}
        fault, delivery = self.take(
            body.get("Metadata", {}).get("idempotency_key", ""),
            to=body["To"],
            journey=headers.get("X-Journey", ""),
            step=headers.get("X-Journey-Step", ""),
        )
        if fault is not None and fault.status is not None:
            code, message = _FAULT_CODES.get(fault.status, (None, "Internal server error."))
            return (
                fault.status,
                ({"Message": message} if code is None else _error(code, message)),
                fault,
            )
        assert isinstance(delivery, Delivery)
        self.received.append(body)
        return 200, _success(body["To"], delivery.message_id), fault

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                try:
                    body = json.loads(raw)
                except ValueError:
                    status, answer, fault = 422, _error(402, "Received invalid JSON input."), None
                else:
                    status, answer, fault = api.answer(
                        self.headers.get("X-Postmark-Server-Token"), self.path, body
                    )
                if fault is not None and fault.delay:
                    time.sleep(fault.delay)
                payload = json.dumps(answer).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    if fault is not None and fault.retry_after is not None:
                        self.send_header("Retry-After", str(fault.retry_after))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


def _error(code: int, message: str) -> dict[str, Any]:
    return {"ErrorCode": code, "Message": message}


def _success(to: str, message_id: str) -> dict[str, Any]:
    return {
        "To": to,
        "SubmittedAt": datetime.now(UTC).isoformat(),
        "MessageID": message_id,
        "ErrorCode": 0,
        "Message": "OK",
    }


def _invalid(body: Any) -> str | None:
    """What Postmark would refuse in the body (ErrorCode 300), or None."""
    if not isinstance(body, dict):
        return "Invalid email request: the body is not an object."
    for field in ("From", "To", "Subject"):
        if not isinstance(body.get(field), str) or not body[field]:
            return f"Invalid email request: no '{field}'."
    if "@" not in body["To"]:
        return (
            f"Error parsing 'To': Illegal email address '{body['To']}'. "
            "It must contain the '@' symbol."
        )
    if not (body.get("TextBody") or body.get("HtmlBody")):
        return "Provide either email TextBody or HtmlBody or both."
    headers = body.get("Headers", [])
    if not isinstance(headers, list) or not all(
        isinstance(header, dict)
        and set(header) == {"Name", "Value"}
        and all(isinstance(value, str) for value in header.values())
        for header in headers
    ):
        return "Invalid email request: Headers must be a list of {Name, Value} strings."
    metadata = body.get("Metadata", {})
    if (
        not isinstance(metadata, dict)
        or len(metadata) > 10
        or not all(
            isinstance(name, str)
            and len(name) <= 20
            and isinstance(value, str)
            and len(value) <= 80
            for name, value in metadata.items()
        )
    ):
        return "Invalid email request: Metadata is limited to 10 fields of 20 and 80 characters."
    return None
