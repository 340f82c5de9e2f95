"""An email API on loopback that keeps a ledger of deliveries, and fails on request.

It behaves like an API with idempotency keys (Resend's, or the generic JSON one):
`POST /emails` with an `Idempotency-Key`
delivers the message once; the same key again gets the first answer back and
delivers nothing. Faults are scripted for the next requests: an error status
(with `Retry-After`), or a slow answer that arrives after the client gave up,
though the message *was* delivered (the case that tempts a sender to send twice).
"""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fake_api import Fault, LedgerServer

__all__ = ["EmailApi", "Fault"]


class EmailApi(LedgerServer):
    """The API server, in a thread of the test process; `url` is the worker's `EMAIL_API_URL`.

    One delivery per idempotency key (`LedgerServer.dedupes`).
    """

    def __init__(self) -> None:
        super().__init__(self._handler_class())

    def worker_environment(self) -> dict[str, str]:
        """The settings of a worker that sends through this API (the generic `http` provider)."""
        return {
            "EMAIL_PROVIDER": "http",
            "EMAIL_API_URL": self.url,
            "EMAIL_API_KEY": "fault-tests-key",
        }

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                headers = body.get("headers", {})
                fault, delivery = api.take(
                    self.headers["Idempotency-Key"],
                    to=body["to"],
                    journey=headers.get("X-Journey", ""),
                    step=headers.get("X-Journey-Step", ""),
                )
                if fault is not None and fault.delay:
                    time.sleep(fault.delay)
                if fault is not None and fault.status is not None:
                    status = fault.status
                    payload = json.dumps({"error": {"message": "scripted fault"}}).encode()
                else:
                    assert delivery is not None
                    status, payload = 202, json.dumps({"id": delivery.message_id}).encode()
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
