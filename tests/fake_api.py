"""Fake HTTP APIs on loopback: one that answers scripted replies, and the base of the
email APIs that keep a ledger of deliveries and fail on request."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


@dataclass
class Reply:
    """What the fake API answers to one request."""

    status: int = 200
    body: Any = field(default_factory=lambda: {"id": "msg-1"})
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Received:
    """One request the fake API received."""

    path: str
    headers: dict[str, str]
    body: Any


class LoopbackServer:
    """An HTTP server on a free loopback port, served by a thread while in a `with` block."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        """`http://127.0.0.1:<port>`."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


@dataclass(frozen=True)
class Fault:
    """What an email API does to one request instead of answering at once.

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
    """One message an email API delivered."""

    key: str
    message_id: str
    to: str
    journey: str
    step: str


@dataclass(frozen=True)
class Request:
    """One request an email API received: when (monotonic clock), its key, its fault if any."""

    at: float
    key: str
    fault: Fault | None


class LedgerServer(LoopbackServer):
    """An email API that records what it delivered and serves scripted faults.

    Attributes:
        deliveries: Messages delivered, in order.
        requests: Every sending request received, in order (retries included).
    """

    dedupes = True
    """A second request with a delivered key gets the first answer and delivers nothing
    (an API with idempotency keys); False: every request delivers (one without)."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.deliveries: list[Delivery] = []
        self.requests: list[Request] = []
        self._faults: deque[Fault] = deque()
        self._by_key: dict[str, Delivery] = {}
        self._lock = threading.Lock()
        super().__init__(handler)

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

    def new_message_id(self, number: int) -> str:
        """The API's id of its `number`th delivery."""
        return f"api-{number}"

    def worker_environment(self) -> dict[str, str]:
        """The settings of a `journeys worker` that sends through this API."""
        raise NotImplementedError

    def take(
        self, key: str, *, to: str, journey: str, step: str
    ) -> tuple[Fault | None, Delivery | None]:
        """Count a request, pick its fault, deliver unless the fault is an error status."""
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
            self.requests.append(Request(at=time.monotonic(), key=key, fault=fault))
            if fault is not None and fault.status is not None:
                return fault, None
            delivery = self._by_key.get(key) if self.dedupes else None
            if delivery is None:
                delivery = Delivery(
                    key=key,
                    message_id=self.new_message_id(len(self.deliveries) + 1),
                    to=to,
                    journey=journey,
                    step=step,
                )
                self._by_key[key] = delivery
                self.deliveries.append(delivery)
            return fault, delivery


class FakeApi(LoopbackServer):
    """A real HTTP server in a thread: answers scripted replies, records requests."""

    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.received: list[Received] = []
        super().__init__(self._handler_class())

    def answer(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                api.received.append(
                    Received(
                        path=self.path,
                        headers={name.lower(): value for name, value in self.headers.items()},
                        body=json.loads(raw),
                    )
                )
                reply = api.replies.popleft() if api.replies else Reply()
                time.sleep(reply.delay)
                payload = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload.encode())
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (timeout test)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
