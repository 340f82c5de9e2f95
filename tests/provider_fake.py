"""A provider's API faked by a real HTTP server on loopback: it answers each request the way
the provider documents (a function of the request), unless a test scripted the next replies."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs

from activities.providers import OutgoingEmail
from tests.fake_api import LoopbackServer, Reply

UNSUBSCRIBE_URL = "https://journeys.example.test/u/tok"


def with_unsubscribe(email: OutgoingEmail) -> OutgoingEmail:
    """`email` with the one-click unsubscribe headers the send activity adds."""
    return replace(
        email,
        headers={
            **email.headers,
            "List-Unsubscribe": f"<{UNSUBSCRIBE_URL}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    )


@dataclass(frozen=True)
class Request:
    """One request the fake received."""

    path: str
    headers: dict[str, str]
    raw: bytes

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.raw)

    def form(self) -> dict[str, list[str]]:
        """The body as `application/x-www-form-urlencoded` fields."""
        return parse_qs(self.raw.decode(), keep_blank_values=True, strict_parsing=True)


Responder = Callable[[Request], Reply]


class ProviderFake(LoopbackServer):
    """Answers each POST with `responder(request)`, or the next scripted reply."""

    def __init__(self, responder: Responder) -> None:
        self.responder = responder
        self.scripted: deque[Reply] = deque()
        self.received: list[Request] = []
        super().__init__(self._handler_class())

    def answer(self, *replies: Reply) -> None:
        """Answer the next requests with `replies`, whatever they are."""
        self.scripted.extend(replies)

    def _reply(self, request: Request) -> Reply:
        self.received.append(request)
        return self.scripted.popleft() if self.scripted else self.responder(request)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                headers = {name.lower(): value for name, value in self.headers.items()}
                reply = fake._reply(Request(self.path, headers, raw))
                payload = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload.encode())

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
