"""Twilio: the official SDK (async) against a loopback Messages API, and the signed webhooks.

The fake reproduces https://www.twilio.com/docs/messaging/api/message-resource (the
create request and the Message resource) and https://www.twilio.com/docs/api/errors
(21610, 21211, 21614, 20003, 20429); the webhooks are signed as
https://www.twilio.com/docs/usage/webhooks/webhooks-security describes, with the
SDK's `RequestValidator` and a test auth token, and posted to the real gateway.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import WorkflowEnvironment
from twilio.request_validator import RequestValidator

from activities.providers import (
    DeliveryError,
    OutgoingSms,
    TwilioSmsProvider,
    sms_provider_from_settings,
)
from activities.providers.twilio import OPTED_OUT
from models.journeys import JourneyInput, JourneyState
from models.settings import Settings
from tests.factories import add_contact, message_rows
from tests.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio, TwilioReply
from tests.gateway import Gateway, gateway_settings, serving_gateway
from tests.journeys import TextsAndEmails
from tests.test_api import new_id
from tests.test_journey_qa import qa
from tests.test_sms_keywords import contact, replied, sms_suppression
from worker import build_worker
from workflows import catalog

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
        twilio_from_number="+14155559999",
    ).model_copy(update=options)
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


# --- webhooks, through the real gateway and worker -----------------------------------

PUBLIC_URL = "https://journeys.example.test"


@pytest.fixture
async def gateway(dev_env: WorkflowEnvironment, settings: Settings) -> AsyncIterator[Gateway]:
    configured = gateway_settings(
        settings, twilio_auth_token=SecretStr(AUTH_TOKEN), public_base_url=PUBLIC_URL
    )
    async with serving_gateway(dev_env.client, configured) as served:
        yield served


async def post_signed(
    gateway: Gateway,
    path: str,
    form: dict[str, str],
    *,
    token: str | None = AUTH_TOKEN,
    signed_url: str | None = None,
) -> httpx.Response:
    """POST `form` as Twilio does, signed for `signed_url` (default: the public URL)."""
    headers = {}
    if token is not None:
        validator = RequestValidator(token)
        headers["X-Twilio-Signature"] = validator.compute_signature(
            signed_url or PUBLIC_URL + path, form
        )
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as twilio:
        return await twilio.post(path, data=form, headers=headers)


def inbound_text(number: str, body: str) -> dict[str, str]:
    """An inbound-message webhook's fields, as Twilio posts them."""
    return {
        "ToCountry": "US",
        "SmsMessageSid": (sid := f"SM{uuid.uuid4().hex}"),
        "NumMedia": "0",
        "SmsSid": sid,
        "SmsStatus": "received",
        "Body": body,
        "To": "+14155559999",
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": ACCOUNT_SID,
        "From": number,
        "ApiVersion": "2010-04-01",
    }


def status_callback(number: str, sid: str, status: str, error: str | None) -> dict[str, str]:
    """A status callback's fields, as Twilio posts them."""
    form = {
        "SmsSid": sid,
        "SmsStatus": status,
        "MessageStatus": status,
        "To": number,
        "MessageSid": sid,
        "AccountSid": ACCOUNT_SID,
        "From": "+14155559999",
        "ApiVersion": "2010-04-01",
    }
    return form if error is None else form | {"ErrorCode": error}


async def test_the_webhooks_are_not_found_until_the_auth_token_is_set(
    dev_env: WorkflowEnvironment, settings: Settings
) -> None:
    async with serving_gateway(dev_env.client, gateway_settings(settings)) as unconfigured:
        for path in ("/webhooks/twilio/inbound", "/webhooks/twilio/status"):
            answer = await post_signed(unconfigured, path, inbound_text(NUMBER, "STOP"))
            assert answer.status_code == 404, answer.text


async def test_a_signed_stop_suppresses_and_is_answered_once_by_our_path(
    gateway: Gateway, engine: AsyncEngine
) -> None:
    contact_id, number = new_id("twilio-stop"), "+14155550111"
    await add_contact(engine, contact_id, phone=number, sms_consent=True)
    stop = inbound_text(number, "Stop")
    path = "/webhooks/twilio/inbound"

    refused = [
        await post_signed(gateway, path, stop, token=None),
        await post_signed(gateway, path, stop, token="not-the-auth-token"),
        await post_signed(gateway, path, stop, signed_url=f"{gateway.url}{path}"),
        await _tampered(gateway, path, stop),
    ]
    assert [answer.status_code for answer in refused] == [401, 401, 401, 401]
    assert await sms_suppression(engine, number) is None

    for _ in range(2):  # a replay or a redelivery: answered once
        taken = await post_signed(gateway, path, stop)
        assert taken.status_code == 200, taken.text
        assert taken.headers["content-type"].startswith("text/xml")
        assert taken.text == '<?xml version="1.0" encoding="UTF-8"?><Response/>'

    suppression = await sms_suppression(engine, number)
    assert suppression is not None and suppression.reason == "sms_stop"
    reply = await replied(gateway.settings.outbox_dir, {"id": stop["MessageSid"], "body": "Stop"})
    assert f"To: {number}" in reply
    assert len(list((gateway.settings.outbox_dir / "sms-keywords").iterdir())) == 1
    assert not (await contact(engine, contact_id)).sms_consent


async def _tampered(gateway: Gateway, path: str, form: dict[str, str]) -> httpx.Response:
    """`form` signed, then changed in transit (another sender)."""
    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC_URL + path, form)
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as twilio:
        return await twilio.post(
            path, data=form | {"From": "+14155550199"}, headers={"X-Twilio-Signature": signature}
        )


async def test_a_malformed_signed_form_is_refused(gateway: Gateway) -> None:
    answer = await post_signed(
        gateway, "/webhooks/twilio/inbound", {"MessageSid": "SM1", "Body": "STOP"}
    )

    assert answer.status_code == 400
    assert "From" in answer.json()["detail"]


@pytest.mark.parametrize(
    ("status", "error", "reason"),
    [
        ("undelivered", "21610", "sms_stop"),
        ("failed", "30005", "invalid_recipient"),
        ("undelivered", "30006", "invalid_recipient"),
        ("undelivered", "30003", None),
        ("delivered", None, None),
    ],
)
async def test_a_status_callback_suppresses_only_a_number_that_is_gone(
    gateway: Gateway, engine: AsyncEngine, status: str, error: str | None, reason: str | None
) -> None:
    number = f"+1415555{uuid.uuid4().int % 10_000:04d}"
    path = "/webhooks/twilio/status"
    callback = status_callback(number, f"SM{uuid.uuid4().hex}", status, error)

    forged = await post_signed(gateway, path, callback, token="not-the-auth-token")
    assert forged.status_code == 401
    assert await sms_suppression(engine, number) is None

    taken = await post_signed(gateway, path, callback)

    assert taken.status_code == 200, taken.text
    assert taken.json() == {"suppressed": reason is not None}
    suppression = await sms_suppression(engine, number)
    assert (suppression and suppression.reason) == reason


async def test_a_journey_text_refused_as_unsubscribed_suppresses_the_number_as_a_stop(
    time_skipping_env: WorkflowEnvironment, settings: Settings, engine: AsyncEngine
) -> None:
    await add_contact(engine, "opted-out", phone=NUMBER, sms_consent=True)
    with FakeTwilio() as twilio:
        twilio.answer(TwilioReply(400, OPTED_OUT, "Attempt to send to unsubscribed recipient"))
        texting = settings.model_copy(
            update={
                "sms_provider": "twilio",
                "twilio_account_sid": ACCOUNT_SID,
                "twilio_auth_token": SecretStr(AUTH_TOKEN),
                "twilio_from_number": "+14155559999",
                "twilio_api_url": twilio.url,
            }
        )
        journeys = [*catalog.all_journeys(), TextsAndEmails]
        async with build_worker(time_skipping_env.client, texting, engine, journeys=journeys):
            await time_skipping_env.client.execute_workflow(
                TextsAndEmails.name,
                JourneyInput(contact_id="opted-out"),
                id=f"{TextsAndEmails.name}-opted-out",
                task_queue=settings.task_queue,
                result_type=JourneyState,
            )

    assert len(twilio.received) == 1, "the second text is not sent to a number that opted out"
    statuses = {row.step: row.status for row in await message_rows(engine, "opted-out")}
    assert (statuses["day0-sms"], statuses["day2-sms"]) == ("failed", "suppressed")
    suppression = await sms_suppression(engine, NUMBER)
    assert suppression is not None and suppression.reason == "sms_stop"  # a START lifts it


async def test_test_send_goes_through_twilio(twilio: FakeTwilio, settings: Settings) -> None:
    done = await qa(
        settings,
        "test-send",
        "pricing-abandon/day2-sms",
        "--to",
        NUMBER,
        SMS_PROVIDER="twilio",
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        TWILIO_FROM_NUMBER="+14155559999",
        TWILIO_API_URL=twilio.url,
    )

    assert done.returncode == 0, done.stderr
    assert "through twilio" in done.stdout
    [form] = twilio.received
    assert form["To"] == NUMBER and form["Body"].startswith("[TEST] ")
