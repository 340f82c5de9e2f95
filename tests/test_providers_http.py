"""The JSON HTTP email and SMS providers against a real HTTP server on loopback."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from activities.providers import (
    DeliveryError,
    HttpEmailProvider,
    HttpSmsProvider,
    OutgoingSms,
    sms_provider_from_settings,
)
from models.settings import Settings
from tests.factories import outgoing_email
from tests.fake_api import FakeApi, Reply

API_KEY = "test-key-123"


@pytest.fixture
def api() -> Iterator[FakeApi]:
    """A fresh fake API per test."""
    with FakeApi() as server:
        yield server


def make_sms(key: str = "pricing-abandon-ada/nudge") -> OutgoingSms:
    return OutgoingSms(
        idempotency_key=key,
        to_number="+14155550100",
        body="Still thinking it over? Reply STOP to opt out.",
        created_at=datetime(2025, 3, 4, 9, 30, tzinfo=UTC),
    )


def email_provider(api: FakeApi, *, timeout: float = 5) -> HttpEmailProvider:
    return HttpEmailProvider(f"{api.url}/v1/", API_KEY, timeout=timeout)


async def failure(api: FakeApi, *replies: Reply) -> DeliveryError:
    """The DeliveryError the email provider raises when the API answers `replies`."""
    api.answer(*replies)
    with pytest.raises(DeliveryError) as caught:
        await email_provider(api).deliver(outgoing_email())
    return caught.value


async def test_email_is_posted_as_json_with_key_and_auth(api: FakeApi) -> None:
    api.answer(Reply(202, {"id": "prov-777"}))

    message_id = await email_provider(api).deliver(outgoing_email())

    assert message_id == "prov-777"
    [request] = api.received
    assert request.path == "/v1/emails"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["idempotency-key"] == "welcome-series-ada/day0"
    assert request.headers["content-type"] == "application/json"
    assert request.body == {
        "from": "Grace from Acme <grace@acme.test>",
        "to": "ada@example.com",
        "reply_to": "hello@acme.test",
        "subject": "Welcome to Acme, Ada",
        "text": "Hi Ada, welcome aboard.",
        "html": "<p>Hi Ada, welcome aboard.</p>",
        "headers": {"X-Journey": "welcome-series", "X-Journey-Step": "day0"},
    }


async def test_429_with_retry_after_seconds(api: FakeApi) -> None:
    error = await failure(
        api, Reply(429, {"error": {"message": "slow down"}}, headers={"Retry-After": "7"})
    )

    assert error.permanent is False
    assert error.invalid_recipient is False
    assert error.retry_after == timedelta(seconds=7)
    assert error.status_code == 429
    assert "429" in str(error)
    assert "slow down" in str(error)


async def test_429_with_retry_after_http_date(api: FakeApi) -> None:
    until = datetime.now(UTC) + timedelta(seconds=120)
    error = await failure(
        api, Reply(429, {}, headers={"Retry-After": format_datetime(until, usegmt=True)})
    )

    assert error.permanent is False
    assert error.retry_after is not None
    assert timedelta(seconds=110) < error.retry_after <= timedelta(seconds=120)


async def test_server_error_then_success_with_the_same_key(api: FakeApi) -> None:
    api.answer(Reply(500, {"error": {"message": "upstream down"}}), Reply(200, {"id": "prov-9"}))
    provider = email_provider(api)

    with pytest.raises(DeliveryError) as caught:
        await provider.deliver(outgoing_email())
    assert caught.value.permanent is False
    assert caught.value.retry_after is None
    assert "500" in str(caught.value)
    assert "upstream down" in str(caught.value)

    assert await provider.deliver(outgoing_email()) == "prov-9"
    keys = [request.headers["idempotency-key"] for request in api.received]
    assert keys == ["welcome-series-ada/day0", "welcome-series-ada/day0"]


@pytest.mark.parametrize(
    ("reply", "permanent", "invalid_recipient"),
    [
        (
            Reply(
                422, {"error": {"code": "invalid_recipient", "message": "ada@example.com: no MX"}}
            ),
            True,
            True,
        ),
        (Reply(400, {"error": {"code": "invalid_recipient"}}), True, True),
        (Reply(422, {"error": {"code": "missing_subject"}}), True, False),
        (Reply(401, {"error": {"message": "bad api key"}}), True, False),
        (Reply(404, "<html>not found</html>"), True, False),
        (Reply(409, {"error": {"message": "request in progress"}}), False, False),
        (Reply(503, "<html>busy</html>"), False, False),
        (Reply(200, {"status": "queued"}), True, False),
    ],
    ids=[
        "422-invalid",
        "400-invalid",
        "422-other",
        "401",
        "404",
        "409-in-progress",
        "503",
        "200-without-id",
    ],
)
async def test_answers_are_classified(
    api: FakeApi, reply: Reply, permanent: bool, invalid_recipient: bool
) -> None:
    error = await failure(api, reply)

    assert error.permanent is permanent
    assert error.invalid_recipient is invalid_recipient
    assert error.status_code == reply.status
    assert str(reply.status) in str(error)
    assert "ada@example.com" not in str(error)  # error texts end up in logs and history


async def test_long_error_text_is_truncated(api: FakeApi) -> None:
    error = await failure(api, Reply(400, {"error": {"message": "x" * 5000}}))

    assert "xxxx" in str(error)
    assert len(str(error)) < 300


async def test_slow_server_is_a_transient_timeout(api: FakeApi) -> None:
    api.answer(Reply(delay=1.0))

    with pytest.raises(DeliveryError) as caught:
        await email_provider(api, timeout=0.2).deliver(outgoing_email())

    assert caught.value.permanent is False
    assert caught.value.status_code is None
    assert "Timeout" in str(caught.value)


async def test_unreachable_server_is_transient() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    provider = HttpEmailProvider(f"http://127.0.0.1:{port}", API_KEY, timeout=2)

    with pytest.raises(DeliveryError) as caught:
        await provider.deliver(outgoing_email())

    assert caught.value.permanent is False


@pytest.mark.parametrize("url", ["ftp://mail.example.com", "/emails", "api.example.com"])
def test_base_url_must_be_absolute_http(url: str) -> None:
    with pytest.raises(ValueError, match="http"):
        HttpEmailProvider(url, API_KEY)


async def test_sms_is_posted_as_json_with_key_and_auth(api: FakeApi) -> None:
    api.answer(Reply(201, {"id": "SM123"}))

    message_id = await HttpSmsProvider(api.url, API_KEY, timeout=5).deliver(make_sms())

    assert message_id == "SM123"
    [request] = api.received
    assert request.path == "/messages"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["idempotency-key"] == "pricing-abandon-ada/nudge"
    assert request.body == {
        "to": "+14155550100",
        "body": "Still thinking it over? Reply STOP to opt out.",
    }


async def test_sms_429_is_transient_with_retry_after(api: FakeApi) -> None:
    api.answer(
        Reply(429, {"error": "rate limited for +14155550100"}, headers={"Retry-After": "30"})
    )

    with pytest.raises(DeliveryError) as caught:
        await HttpSmsProvider(api.url, API_KEY, timeout=5).deliver(make_sms())

    assert caught.value.permanent is False
    assert caught.value.retry_after == timedelta(seconds=30)
    assert "SMS API" in str(caught.value)
    assert "rate limited for <phone>" in str(caught.value)


async def test_the_factory_passes_a_shared_client(api: FakeApi) -> None:
    sent: list[httpx.Request] = []

    async def record(request: httpx.Request) -> None:
        sent.append(request)

    settings = Settings(sms_provider="http", sms_api_url=api.url, sms_api_key=API_KEY)
    async with httpx.AsyncClient(event_hooks={"request": [record]}) as client:
        provider = sms_provider_from_settings(settings, http_client=client)
        assert await provider.deliver(make_sms()) == "msg-1"

    assert [request.url.path for request in sent] == ["/messages"]
    [request] = api.received
    assert request.path == "/messages"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert API_KEY not in repr(settings)
