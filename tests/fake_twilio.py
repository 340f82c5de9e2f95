"""A fake Twilio Messages API: a real HTTP server on loopback, as Twilio documents it.

`POST /2010-04-01/Accounts/{AccountSid}/Messages.json`, form-encoded, HTTP basic
auth (account SID, auth token); 201 with the Message resource, or an error body
`{"code", "message", "more_info", "status"}`
(https://www.twilio.com/docs/messaging/api/message-resource,
https://www.twilio.com/docs/api/errors).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs

from tests.fake_api import LoopbackServer

ACCOUNT_SID = "AC" + "0" * 31 + "1"
AUTH_TOKEN = "tests-twilio-auth-token"


@dataclass
class TwilioReply:
    """A scripted answer: an error `code` (None: the Message resource) and headers."""

    status: int = 201
    code: int | None = None
    message: str = ""
    headers: dict[str, str] = field(default_factory=dict)


def error_body(status: int, code: int, message: str) -> dict[str, Any]:
    """Twilio's error body."""
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def message_resource(form: dict[str, str], sid: str) -> dict[str, Any]:
    """The Message resource Twilio answers a create with (fields as documented)."""
    path = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}"
    return {
        "account_sid": ACCOUNT_SID,
        "api_version": "2010-04-01",
        "body": form["Body"],
        "date_created": "Thu, 24 Aug 2023 05:01:45 +0000",
        "date_sent": None,
        "date_updated": "Thu, 24 Aug 2023 05:01:45 +0000",
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": form.get("From"),
        "messaging_service_sid": form.get("MessagingServiceSid"),
        "num_media": "0",
        "num_segments": "1",
        "price": None,
        "price_unit": "USD",
        "sid": sid,
        "status": "queued" if "From" in form else "accepted",
        "subresource_uris": {"media": f"{path}/Media.json"},
        "to": form["To"],
        "uri": f"{path}.json",
    }


class FakeTwilio(LoopbackServer):
    """Checks auth, path and the documented form fields; answers scripted replies."""

    def __init__(self) -> None:
        self.replies: deque[TwilioReply] = deque()
        self.received: list[dict[str, str]] = []
        super().__init__(self._handler_class())

    def answer(self, *replies: TwilioReply) -> None:
        self.replies.extend(replies)

    def _answer(
        self, form: dict[str, str], auth: str | None, path: str
    ) -> tuple[int, Any, dict[str, str]]:
        expected = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
        if auth != expected:
            return 401, error_body(401, 20003, "Authenticate"), {}
        if path != f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json":
            return 404, error_body(404, 20404, "The requested resource was not found"), {}
        if "To" not in form:
            return 400, error_body(400, 21604, "A 'To' phone number is required."), {}
        if ("From" in form) == ("MessagingServiceSid" in form):
            return 400, error_body(400, 21603, "A 'From' or 'MessagingServiceSid' is required"), {}
        self.received.append(form)
        reply = self.replies.popleft() if self.replies else TwilioReply()
        if reply.code is not None:
            return reply.status, error_body(reply.status, reply.code, reply.message), reply.headers
        return reply.status, message_resource(form, f"SM{uuid.uuid4().hex}"), reply.headers

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"])).decode()
                form = {name: values[0] for name, values in parse_qs(raw).items()}
                status, body, headers = api._answer(form, self.headers["Authorization"], self.path)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(json.dumps(body).encode())

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
