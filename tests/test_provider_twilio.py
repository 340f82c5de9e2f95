"""Twilio: the official SDK (async) against a loopback Messages API, and the signed webhooks.

The fake reproduces https://www.twilio.com/docs/messaging/api/message-resource (the
create request and the Message resource) and https://www.twilio.com/docs/api/errors
(21610, 21211, 21614, 20003, 20429); the webhooks are signed as
https://www.twilio.com/docs/usage/webhooks/webhooks-security describes, with the
SDK's `RequestValidator` and a test auth token, and posted to the real gateway.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from activities.providers import (
    DeliveryError,
    OutgoingSms,
    TwilioSmsProvider,
    sms_provider_from_settings,
)
from models.settings import Settings
from tests.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio, TwilioReply

NUMBER = "+14155550100"


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio() as server:
        yield server


def make_sms(key: str = "pricing-abandon-ada/day2-sms") -> OutgoingSms:
    return OutgoingSms(
        idempotency_key=key,
        to_number=NUMBER,
        body="Have questions? Reply STOP to opt out.",
        created_at=datetime(2025, 3, 4, 9, 30, tzinfo=UTC),
    )


def provider(twilio: FakeTwilio, **options: str) -> TwilioSmsProvider:
    settings = Settings(
        _env_file=None,
        sms_provider="twilio",
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=AUTH_TOKEN,
        twilio_api_url=twilio.url,
        **({"twilio_from_number": "+14155559999"} | options),
    )
    built = sms_provider_from_settings(settings)
    assert isinstance(built, TwilioSmsProvider)
    return built


async def refusal(twilio: FakeTwilio, *replies: TwilioReply) -> DeliveryError:
    twilio.answer(*replies)
    with pytest.raises(DeliveryError) as caught:
        await provider(twilio).deliver(make_sms())
    return caught.value


async def test_the_message_is_created_with_auth_and_its_sid_returned(twilio: FakeTwilio) -> None:
    callback = "https://journeys.example.test/webhooks/twilio/status"

    sid = await provider(twilio, twilio_status_callback_url=callback).deliver(make_sms())

    [form] = twilio.received
    assert sid.startswith("SM") and len(sid) == 34
    assert form == {
        "To": NUMBER,
        "From": "+14155559999",
        "Body": "Have questions? Reply STOP to opt out.",
        "StatusCallback": callback,
    }


async def test_a_messaging_service_sends_instead_of_a_number(twilio: FakeTwilio) -> None:
    service = "MG" + "0" * 32

    await provider(twilio, twilio_from_number="", twilio_messaging_service_sid=service).deliver(
        make_sms()
    )

    [form] = twilio.received
    assert form["MessagingServiceSid"] == service and "From" not in form


async def test_an_unsubscribed_recipient_is_suppressed_as_a_stop(twilio: FakeTwilio) -> None:
    error = await refusal(
        twilio,
        TwilioReply(400, 21610, f"Attempt to send to unsubscribed recipient {NUMBER}"),
    )

    assert (error.permanent, error.invalid_recipient, error.opted_out) == (True, True, True)
    assert NUMBER not in str(error) and "21610" in str(error)


@pytest.mark.parametrize("code", [21211, 21614])
async def test_an_invalid_or_non_mobile_number_is_an_invalid_recipient(
    twilio: FakeTwilio, code: int
) -> None:
    error = await refusal(twilio, TwilioReply(400, code, f"The 'To' number {NUMBER} is not valid"))

    assert (error.permanent, error.invalid_recipient, error.opted_out) == (True, True, False)
    assert NUMBER not in str(error)


@pytest.mark.parametrize(
    "reply",
    [
        TwilioReply(429, 20429, "Too Many Requests", {"Retry-After": "7"}),
        TwilioReply(503, 20500, "Service unavailable", {"Retry-After": "7"}),
    ],
)
async def test_throttling_and_server_errors_are_retried_after_retry_after(
    twilio: FakeTwilio, reply: TwilioReply
) -> None:
    error = await refusal(twilio, reply)

    assert not error.permanent
    assert error.retry_after == timedelta(seconds=7)
    assert error.status_code == reply.status


async def test_wrong_credentials_fail_the_request(twilio: FakeTwilio) -> None:
    settings = Settings(
        _env_file=None,
        sms_provider="twilio",
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token="not-the-token",
        twilio_from_number="+14155559999",
        twilio_api_url=twilio.url,
    )

    with pytest.raises(DeliveryError) as caught:
        await sms_provider_from_settings(settings).deliver(make_sms())

    assert (caught.value.permanent, caught.value.invalid_recipient) == (True, False)
    assert "20003" in str(caught.value) and caught.value.status_code == 401


async def test_an_unreachable_api_is_transient() -> None:
    with FakeTwilio() as gone:
        url = gone.url
    unreachable = TwilioSmsProvider(
        ACCOUNT_SID, AUTH_TOKEN, from_number="+14155559999", api_url=url, timeout=5
    )

    with pytest.raises(DeliveryError) as caught:
        await unreachable.deliver(make_sms())

    assert not caught.value.permanent


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"twilio_account_sid": None}, "TWILIO_ACCOUNT_SID"),
        ({"twilio_auth_token": None}, "TWILIO_AUTH_TOKEN"),
        ({"twilio_from_number": None}, "TWILIO_FROM_NUMBER"),
        ({"twilio_messaging_service_sid": "MG1"}, "TWILIO_MESSAGING_SERVICE_SID"),
    ],
)
def test_a_missing_or_contradictory_setting_is_named(changes: dict[str, str], named: str) -> None:
    settings = Settings(
        _env_file=None,
        sms_provider="twilio",
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=AUTH_TOKEN,
        twilio_from_number="+14155559999",
    ).model_copy(update=changes)

    with pytest.raises(ValueError, match=named):
        sms_provider_from_settings(settings)
