"""Vonage's SMS API against a loopback server reproducing https://developer.vonage.com/en/api/sms
(form-encoded `POST /sms/json`, the `messages` answer with per-part `status`) and its status
table (https://developer.vonage.com/en/api-errors/sms); its webhooks through the real gateway:
inbound texts (https://developer.vonage.com/en/messaging/sms/guides/inbound-sms) and delivery
receipts (https://developer.vonage.com/en/messaging/sms/guides/delivery-receipts, err-codes:
https://api.support.vonage.com/hc/en-us/articles/204014733), as GET, form or JSON, signed in
the test as https://developer.vonage.com/en/getting-started/concepts/signing-messages
describes, with a test signature secret (and the Vonage SDK's md5hash test vector)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import WorkflowEnvironment

from activities.providers import DeliveryError, OutgoingSms, sms_provider_from_settings
from models.settings import Settings, VonageSignatureMethod
from starter.api.hooks.vonage import signature
from tests.factories import add_contact
from tests.fake_api import LoopbackServer
from tests.gateway import Gateway, gateway_settings, serving_gateway
from tests.test_api import new_id
from tests.test_journey_qa import qa
from tests.test_sms_keywords import contact, replied, sms_suppression

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


# --- signed webhooks, through the real gateway and worker ------------------------------

SIGNATURE_SECRET = "tests-vonage-signature-secret"
INBOUND, STATUS = "/webhooks/vonage/inbound", "/webhooks/vonage/status"


def signed(
    params: dict[str, str],
    *,
    secret: str = SIGNATURE_SECRET,
    method: str = "md5hash",
    timestamp: float | None = None,
) -> dict[str, str]:
    """`params` with the `timestamp`, `nonce` and `sig` Vonage adds, by the documented recipe
    (https://developer.vonage.com/en/getting-started/concepts/signing-messages)."""
    stamped = params | {
        "timestamp": str(int(time.time() if timestamp is None else timestamp)),
        "nonce": str(uuid.uuid4()),
    }
    text = "".join(
        f"&{name}={value.replace('&', '_').replace('=', '_')}"
        for name, value in sorted(stamped.items())
    )
    if method == "md5hash":
        sig = hashlib.md5(f"{text}{secret}".encode()).hexdigest()
    else:  # Vonage's HMACs are upper-case hex
        sig = hmac.new(secret.encode(), text.encode(), method).hexdigest().upper()
    return stamped | {"sig": sig}


def test_the_sdk_test_vector_is_reproduced() -> None:
    params = {"a": "1", "b": "2", "timestamp": "1461605396"}

    assert signature(params, "secret", "md5hash") == "6af838ef94998832dbfc29020b564830"
    assert signature(params | {"sig": "x"}, "secret", "md5hash") == (
        "6af838ef94998832dbfc29020b564830"
    )


@pytest.mark.parametrize("method", ["md5", "sha1", "sha256", "sha512"])
def test_the_hmac_methods_sign_the_sorted_escaped_parameters(method: VonageSignatureMethod) -> None:
    params = {"timestamp": "1461605396", "text": "a=b&c", "a": "1"}
    signed_text = b"&a=1&text=a_b_c&timestamp=1461605396"

    assert (
        signature(params, "secret", method) == hmac.new(b"secret", signed_text, method).hexdigest()
    )


@pytest.fixture
async def gateway(dev_env: WorkflowEnvironment, settings: Settings) -> AsyncIterator[Gateway]:
    configured = gateway_settings(settings, vonage_signature_secret=SecretStr(SIGNATURE_SECRET))
    async with serving_gateway(dev_env.client, configured) as served:
        yield served


async def call(
    gateway: Gateway, path: str, params: dict[str, Any], *, as_: str = "form"
) -> httpx.Response:
    """Call the webhook as Vonage does: GET with a query string, POST form or POST JSON."""
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as vonage:
        if as_ == "get":
            return await vonage.get(path, params=params)
        if as_ == "json":
            return await vonage.post(path, json=params)
        return await vonage.post(path, data=params)


def inbound_text(msisdn: str, text: str) -> dict[str, str]:
    """An inbound SMS's parameters, as Vonage sends them (before signing)."""
    return {
        "api-key": API_KEY,
        "msisdn": msisdn,
        "to": "14155559999",
        "messageId": f"0A0000{uuid.uuid4().hex[:11].upper()}",
        "text": text,
        "type": "text",
        "keyword": text.strip().upper(),
        "message-timestamp": "2025-03-04 09:30:00",
    }


def receipt(msisdn: str, status: str, err_code: str) -> dict[str, str]:
    """A delivery receipt's parameters, as Vonage sends them (before signing)."""
    return {
        "msisdn": msisdn,
        "to": "14155559999",
        "network-code": "310090",
        "messageId": f"0B0000{uuid.uuid4().hex[:11].upper()}",
        "price": "0.00750000",
        "status": status,
        "scts": "2503040930",
        "err-code": err_code,
        "api-key": API_KEY,
        "client-ref": "pricing-abandon-ada/day2-sms",
        "message-timestamp": "2025-03-04 09:30:29",
    }


def fresh_msisdn() -> str:
    return f"1415555{uuid.uuid4().int % 10_000:04d}"


async def test_the_webhooks_are_not_found_until_the_signature_secret_is_set(
    dev_env: WorkflowEnvironment, settings: Settings
) -> None:
    async with serving_gateway(dev_env.client, gateway_settings(settings)) as unconfigured:
        for path in (INBOUND, STATUS):
            answer = await call(unconfigured, path, signed(inbound_text(fresh_msisdn(), "STOP")))
            assert answer.status_code == 404, answer.text


async def test_a_signed_stop_suppresses_and_a_replay_counts_once(
    gateway: Gateway, engine: AsyncEngine
) -> None:
    msisdn = fresh_msisdn()
    contact_id = new_id("vonage-stop")
    await add_contact(engine, contact_id, phone=f"+{msisdn}", sms_consent=True)
    stop = inbound_text(msisdn, "Stop")
    good = signed(stop)

    refused = [
        await call(gateway, INBOUND, stop),
        await call(gateway, INBOUND, {name: v for name, v in good.items() if name != "sig"}),
        await call(gateway, INBOUND, signed(stop, secret="not-the-signature-secret")),
        await call(gateway, INBOUND, signed(stop, timestamp=time.time() - 301)),
        await call(gateway, INBOUND, signed(stop, timestamp=time.time() + 301)),
        await call(gateway, INBOUND, signed(stop, method="sha256")),
        await call(gateway, INBOUND, good | {"msisdn": "14155550199"}),
    ]
    assert [answer.status_code for answer in refused] == [401] * 7, refused[-1].text
    assert await sms_suppression(engine, f"+{msisdn}") is None

    taken = [await call(gateway, INBOUND, good, as_=as_) for as_ in ("get", "form", "json")]

    assert [answer.status_code for answer in taken] == [200] * 3, taken[-1].text
    assert [answer.json()["replied"] for answer in taken] == [True, False, False]
    assert taken[0].json() | {"replied": True} == {
        "id": stop["messageId"], "keyword": "STOP", "contacts": 1, "replied": True,
    }  # fmt: skip
    suppression = await sms_suppression(engine, f"+{msisdn}")
    assert suppression is not None and suppression.reason == "sms_stop"
    reply = await replied(gateway.settings.outbox_dir, {"id": stop["messageId"], "body": "Stop"})
    assert f"To: +{msisdn}" in reply
    assert len(list((gateway.settings.outbox_dir / "sms-keywords").iterdir())) == 1
    assert not (await contact(engine, contact_id)).sms_consent


@pytest.mark.parametrize(
    ("params", "as_", "named"),
    [
        (lambda: signed({"messageId": "0A01", "text": "STOP"}), "form", "msisdn"),
        (lambda: signed(inbound_text("0044", "STOP")), "get", "msisdn"),
        (lambda: signed(inbound_text("14155550100", "STOP")) | {"timestamp": "now"}, "form",
         "timestamp"),
        (lambda: {"messageId": ["0A01"], "sig": "00", "timestamp": "1"}, "json", "messageId"),
    ],
)  # fmt: skip
async def test_a_malformed_request_is_refused_naming_the_parameter(
    gateway: Gateway, params: Callable[[], dict[str, Any]], as_: str, named: str
) -> None:
    answer = await call(gateway, INBOUND, params(), as_=as_)

    assert answer.status_code == 400, answer.text
    assert named in answer.json()["detail"]


@pytest.mark.parametrize(
    ("status", "err_code", "reason"),
    [
        ("failed", "3", "invalid_recipient"),
        ("rejected", "4", "invalid_recipient"),
        ("failed", "9", "sms_stop"),
        ("failed", "2", None),
        ("expired", "3", None),
        ("delivered", "0", None),
    ],
)
async def test_a_receipt_suppresses_only_a_number_that_is_gone(
    gateway: Gateway, engine: AsyncEngine, status: str, err_code: str, reason: str | None
) -> None:
    msisdn = fresh_msisdn()
    dlr = receipt(msisdn, status, err_code)

    forged = await call(gateway, STATUS, signed(dlr, secret="not-the-signature-secret"))
    assert forged.status_code == 401
    assert await sms_suppression(engine, f"+{msisdn}") is None

    taken = await call(gateway, STATUS, signed(dlr))

    assert taken.status_code == 200, taken.text
    assert taken.json() == {"suppressed": reason is not None}
    suppression = await sms_suppression(engine, f"+{msisdn}")
    assert (suppression and suppression.reason) == reason


async def test_an_hmac_signature_method_is_checked_as_configured(
    dev_env: WorkflowEnvironment, settings: Settings, engine: AsyncEngine
) -> None:
    configured = gateway_settings(
        settings,
        vonage_signature_secret=SecretStr(SIGNATURE_SECRET),
        vonage_signature_method="sha512",
    )
    msisdn = fresh_msisdn()
    dlr = receipt(msisdn, "failed", "3")
    async with serving_gateway(dev_env.client, configured) as gateway:
        md5hash = await call(gateway, STATUS, signed(dlr), as_="get")
        sha512 = await call(gateway, STATUS, signed(dlr, method="sha512"), as_="json")

    assert (md5hash.status_code, sha512.status_code) == (401, 200), sha512.text
    suppression = await sms_suppression(engine, f"+{msisdn}")
    assert suppression is not None and suppression.reason == "invalid_recipient"


async def test_test_send_goes_through_vonage(vonage: FakeVonage, settings: Settings) -> None:
    done = await qa(
        settings,
        "test-send",
        "pricing-abandon/day2-sms",
        "--to",
        "+14155550100",
        SMS_PROVIDER="vonage",
        VONAGE_API_KEY=API_KEY,
        VONAGE_API_SECRET=API_SECRET,
        VONAGE_FROM="+14155559999",
        VONAGE_API_URL=vonage.url,
    )

    assert done.returncode == 0, done.stderr
    assert "through vonage" in done.stdout
    [form] = vonage.received
    assert form["to"] == "14155550100" and form["text"].startswith("[TEST] ")
