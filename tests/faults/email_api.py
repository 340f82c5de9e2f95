"""An email API on loopback that keeps a ledger of deliveries, and fails on request.

It behaves like Postmark or Resend: `POST /emails` with an `Idempotency-Key`
delivers the message once; the same key again gets the first answer back and
delivers nothing. Faults are scripted for the next requests: an error status
(with `Retry-After`), or a slow answer that arrives after the client gave up,
though the message *was* delivered (the case that tempts a sender to send twice).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fake_api import LoopbackServer


@dataclass(frozen=True)
class Fault:
    """What the API does to one request instead of answering at once.

    Attributes:
        status: An error status answered without delivering (None: deliver).
        retry_after: `Retry-After` header of the error answer.
        delay: Seconds the answer is held back (after delivering, when `status` is None).
    """

    status: int | None = None
    retry_after: int | None = None
    delay: float = 0.0


@dataclass(frozen=True)
class Delivery:
    """One message the API delivered."""

    key: str
    message_id: str
    to: str
    journey: str
    step: str


@dataclass(frozen=True)
class Request:
    """One request the API received: when (monotonic clock), its key, its fault if any."""

    at: float
    key: str
    fault: Fault | None


class EmailApi(LoopbackServer):
    """The API server, in a thread of the test process; `url` is the worker's `EMAIL_API_URL`.

    Attributes:
        deliveries: Messages delivered, in order; one per idempotency key.
        requests: Every request received, in order (retries included).
    """

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self.requests: list[Request] = []
        self._faults: deque[Fault] = deque()
        self._by_key: dict[str, Delivery] = {}
        self._lock = threading.Lock()
        super().__init__(self._handler_class())

    def fail_next(self, count: int, fault: Fault) -> None:
        """Serve `fault` to the next `count` requests (after the faults already queued)."""
        with self._lock:
            self._faults.extend([fault] * count)

    @property
    def faults_pending(self) -> int:
        """Scripted faults not served yet."""
        with self._lock:
            return len(self._faults)

    def copies_by_message(self) -> Counter[tuple[str, str, str]]:
        """How many times each (recipient, journey, step) was delivered, whatever the key."""
        with self._lock:
            return Counter((d.to, d.journey, d.step) for d in self.deliveries)

    def _receive(self, key: str, body: dict[str, Any]) -> tuple[Fault | None, str]:
        """Count the request, pick its fault, deliver unless the fault is an error."""
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
            self.requests.append(Request(at=time.monotonic(), key=key, fault=fault))
            if fault is not None and fault.status is not None:
                return fault, ""
            delivery = self._by_key.get(key)
            if delivery is None:
                headers = body.get("headers", {})
                delivery = Delivery(
                    key=key,
                    message_id=f"api-{len(self.deliveries) + 1}",
                    to=body["to"],
                    journey=headers.get("X-Journey", ""),
                    step=headers.get("X-Journey-Step", ""),
                )
                self._by_key[key] = delivery
                self.deliveries.append(delivery)
            return fault, delivery.message_id

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fault, message_id = api._receive(self.headers["Idempotency-Key"], body)
                if fault is not None and fault.delay:
                    time.sleep(fault.delay)
                if fault is not None and fault.status is not None:
                    status = fault.status
                    payload = json.dumps({"error": {"message": "scripted fault"}}).encode()
                else:
                    status, payload = 202, json.dumps({"id": message_id}).encode()
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
