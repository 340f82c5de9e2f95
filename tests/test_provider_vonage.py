"""Vonage's SMS API against a loopback server reproducing https://developer.vonage.com/en/api/sms
(form-encoded `POST /sms/json`, the `messages` answer with per-part `status`) and its status
table (https://developer.vonage.com/en/api-errors/sms)."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs

import pytest

from activities.providers import DeliveryError, OutgoingSms, sms_provider_from_settings
from models.settings import Settings
from tests.fake_api import LoopbackServer

API_KEY, API_SECRET = "abcd1234", "tests-vonage-secret"


class FakeVonage(LoopbackServer):
    """Checks the credentials and required fields; answers 200 with scripted part statuses."""

    def __init__(self) -> None:
        self.statuses: deque[tuple[str, str]] = deque()
        self.received: list[dict[str, str]] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"])).decode()
                form = {name: values[0] for name, values in parse_qs(raw).items()}
                body = api.answer(form) if self.path == "/sms/json" else {}
                self.send_response(200 if self.path == "/sms/json" else 404)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(json.dumps(body).encode())

            def log_message(self, format: str, *args: Any) -> None:
                pass

        super().__init__(Handler)

    def answer(self, form: dict[str, str]) -> dict[str, Any]:
        missing = [f for f in ("api_key", "api_secret", "from", "to", "text") if f not in form]
        if missing:
            part = {"status": "2", "error-text": f"Missing {missing[0]}"}
        elif (form["api_key"], form["api_secret"]) != (API_KEY, API_SECRET):
            part = {"status": "4", "error-text": "Bad Credentials"}
        else:
            self.received.append(form)
            status, text = self.statuses.popleft() if self.statuses else ("0", "")
            part = {"status": status, "error-text": text} if status != "0" else {
                "to": form["to"], "message-id": "0A0000000123ABCD1", "status": "0",
                "remaining-balance": "3.14159265", "message-price": "0.03330000",
                "network": "12345", "client-ref": form.get("client-ref", ""),
            }  # fmt: skip
        return {"message-count": "1", "messages": [part]}


@pytest.fixture
def vonage() -> Iterator[FakeVonage]:
    with FakeVonage() as server:
        yield server


def send(vonage: FakeVonage, *, secret: str = API_SECRET, body: str = "Have questions?") -> Any:
    provider = sms_provider_from_settings(
        Settings(
            _env_file=None,
            sms_provider="vonage",
            vonage_api_key=API_KEY,
            vonage_api_secret=secret,
            vonage_from="+14155559999",
            vonage_api_url=vonage.url,
        )
    )
    sms = OutgoingSms("pricing-abandon-ada/day2-sms", "+14155550100", body, datetime.now(UTC))
    return provider.deliver(sms)


async def test_the_message_is_posted_and_its_message_id_returned(vonage: FakeVonage) -> None:
    assert await send(vonage, body="Café?") == "0A0000000123ABCD1"

    [form] = vonage.received
    assert (form["to"], form["from"], form["text"], form["type"]) == (
        "14155550100",
        "14155559999",
        "Café?",
        "unicode",
    )
    assert form["client-ref"] == "pricing-abandon-ada/day2-sms"


@pytest.mark.parametrize(
    ("status", "permanent", "invalid"),
    [("1", False, False), ("5", False, False), ("6", True, True), ("7", True, True),
     ("3", True, False), ("9", True, False)],
)  # fmt: skip
async def test_part_statuses_are_classified(
    vonage: FakeVonage, status: str, permanent: bool, invalid: bool
) -> None:
    vonage.statuses.append((status, "Non White-listed Destination 14155550100"))

    with pytest.raises(DeliveryError) as caught:
        await send(vonage)

    assert (caught.value.permanent, caught.value.invalid_recipient) == (permanent, invalid)
    assert "14155550100" not in str(caught.value)


async def test_bad_credentials_fail_the_request(vonage: FakeVonage) -> None:
    with pytest.raises(DeliveryError, match="status 4") as caught:
        await send(vonage, secret="wrong")

    assert caught.value.permanent and not caught.value.invalid_recipient
