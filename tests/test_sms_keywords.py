"""SMS keywords through the real gateway and worker on the dev server, outbox SMS provider.

STOP suppresses SMS (only), withdraws the SMS consent with its history, tells the contact
workflow and is confirmed once; START lifts only a STOP; HELP answers with the brand's text.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from temporalio.testing import WorkflowEnvironment

from models.db import session_factory
from models.settings import Settings
from models.tables import ConsentChange, Contact, ContactEvent, MessageLog, Suppression
from rules.sms_keywords import keyword_of
from rules.templates import load_brand
from starter.services.sms_keywords import message_digest
from tests.factories import add_contact, rows_of
from tests.fake_api import FakeApi, Reply
from tests.gateway import REAL_PROVIDER_LINKS, Gateway, gateway_settings, serving_gateway
from tests.sms import inbound, post_texts, reply_file
from tests.test_api import journey_state, new_id


@pytest.fixture
async def gateway(dev_env: WorkflowEnvironment, settings: Settings) -> AsyncIterator[Gateway]:
    async with serving_gateway(dev_env.client, gateway_settings(settings)) as served:
        yield served


async def replied(outbox: Path, message: dict[str, str]) -> str:
    """The answer the worker sent to `message` (waits for it up to 30 s)."""
    path = reply_file(outbox, message)
    for _ in range(300):
        if path.exists():
            return path.read_text()
        await asyncio.sleep(0.1)
    raise AssertionError(f"no answer to {message['body']!r} in {path}")


SUPPRESSION_KEY = Settings(_env_file=None).suppression_key()
"""The tests' (development) suppression hash key."""


async def sms_suppression(engine: AsyncEngine, number: str) -> Suppression | None:
    async with session_factory(engine)() as session:
        rows = await session.exec(
            select(Suppression).where(
                Suppression.channel == "sms",
                Suppression.address_hash == Suppression.hash_address(number, key=SUPPRESSION_KEY),
            )
        )
        return rows.first()


async def contact(engine: AsyncEngine, contact_id: str) -> Contact:
    async with session_factory(engine)() as session:
        found = await session.get(Contact, contact_id)
    assert found is not None
    return found


@pytest.mark.parametrize(
    ("body", "keyword"),
    [
        ("STOP", "STOP"),
        (" stop. ", "STOP"),
        ("Stop!", "STOP"),
        ("StopAll", "STOPALL"),
        ("unsubscribe", "UNSUBSCRIBE"),
        ("Cancel", "CANCEL"),
        ("end", "END"),
        ("QUIT", "QUIT"),
        ("start", "START"),
        ("Unstop", "UNSTOP"),
        ("help?", "HELP"),
        ("stop texting me please", None),
        ("STOP 🛑", None),
        ("STOPP", None),
        ("", None),
    ],
)
def test_a_keyword_is_the_whole_message_in_any_case_without_punctuation(
    body: str, keyword: str | None
) -> None:
    assert keyword_of(body) == keyword


async def test_stop_suppresses_sms_only_and_is_confirmed_once(
    gateway: Gateway, dev_env: WorkflowEnvironment, engine: AsyncEngine
) -> None:
    contact_id, number = new_id("stop"), "+14155550101"
    await add_contact(engine, contact_id, phone=number, sms_consent=True)
    enrolled = await gateway.http.post(f"/v1/contacts/{contact_id}/journeys/pricing-abandon")
    pricing = enrolled.json()["workflow_id"]
    outbox = gateway.settings.outbox_dir

    unsigned = await post_texts(gateway.url, inbound(number, "STOP"), secret=None)
    assert unsigned.status_code == 401
    forged = await post_texts(gateway.url, inbound(number, "STOP"), secret="x" * 24)
    assert forged.status_code == 401
    assert await sms_suppression(engine, number) is None

    stop = inbound(number, " Stop. ")
    for answer in (True, False):  # the provider redelivers: nothing happens twice
        taken = await post_texts(gateway.url, stop)
        assert taken.status_code == 200, taken.text
        assert taken.json()["messages"] == [
            {"id": stop["id"], "keyword": "STOP", "contacts": 1, "replied": answer}
        ]
    reply = await replied(outbox, stop)
    assert f"To: {number}" in reply
    assert "you are unsubscribed and will receive no more text messages" in reply
    assert "Reply STOP" not in reply  # a service answer, not marketing
    assert len(list((outbox / "sms-keywords").iterdir())) == 1

    suppression = await sms_suppression(engine, number)
    assert suppression is not None and suppression.reason == "sms_stop"
    assert {row.channel for row in await rows_of(engine, Suppression, contact_id)} == {"sms"}
    stopped = await contact(engine, contact_id)
    assert (stopped.sms_consent, stopped.email_consent) == (False, True)
    [change] = await rows_of(engine, ConsentChange, contact_id)
    assert (change.channel, change.granted, change.source, change.wording) == (
        "sms",
        False,
        "sms-keyword",
        "texted STOP",
    )
    [log] = [row for row in await rows_of(engine, MessageLog, contact_id)]
    assert (log.journey, log.step, log.channel, log.category, log.status) == (
        "sms-keywords",
        "stop",
        "sms",
        "transactional",
        "sent",
    )
    for _ in range(200):  # the contact workflow stores the event
        events = await rows_of(engine, ContactEvent, contact_id)
        if events:
            break
        await asyncio.sleep(0.1)
    assert [(e.type, e.properties["channel"]) for e in events] == [("unsubscribed", "sms")]
    # The pricing follow-up still has an email to send: it goes on, without texts.
    state = await journey_state(dev_env.client, pricing, lambda s: s.status == "running")
    assert state.exit_reason is None


async def test_start_lifts_only_a_stop_and_restores_only_consent_that_was_given(
    gateway: Gateway, engine: AsyncEngine
) -> None:
    consented, never = new_id("start"), new_id("never")
    await add_contact(engine, consented, phone="+14155550102", sms_consent=True)
    await add_contact(engine, never, phone="+14155550103", sms_consent=False)
    outbox = gateway.settings.outbox_dir
    async with session_factory(engine)() as session:  # its consent, as the API records it
        session.add(
            ConsentChange(
                contact_id=consented,
                channel="sms",
                granted=True,
                occurred_at=(await contact(engine, consented)).created_at,
                source="form:test",
            )
        )
        await session.commit()

    for number in ("+14155550102", "+14155550103"):
        assert (await post_texts(gateway.url, inbound(number, "STOP"))).status_code == 200
    for number in ("+14155550102", "+14155550103"):
        start = inbound(number, "Unstop")
        assert (await post_texts(gateway.url, start)).json()["messages"][0]["keyword"] == "UNSTOP"
        assert "you are resubscribed" in await replied(outbox, start)
        assert await sms_suppression(engine, number) is None

    assert (await contact(engine, consented)).sms_consent is True
    history = await rows_of(engine, ConsentChange, consented)
    assert [(row.granted, row.source) for row in history] == [
        (True, "form:test"),
        (False, "sms-keyword"),
        (True, "sms-keyword"),
    ]
    assert (await contact(engine, never)).sms_consent is False  # START is no marketing opt-in

    # A number refused by the provider (not a STOP) stays suppressed after START.
    async with session_factory(engine)() as session:
        session.add(
            Suppression(
                channel="sms",
                address_hash=Suppression.hash_address("+14155550104", key=SUPPRESSION_KEY),
                reason="invalid_recipient",
            )
        )
        await session.commit()
    await post_texts(gateway.url, inbound("+14155550104", "START"))
    refused = await sms_suppression(engine, "+14155550104")
    assert refused is not None and refused.reason == "invalid_recipient"


async def test_unknown_numbers_are_suppressed_and_help_gets_the_brand_text(
    gateway: Gateway, engine: AsyncEngine
) -> None:
    number, outbox = "+14155550199", gateway.settings.outbox_dir
    stop, help_, chat = (
        inbound(number, "QUIT"),
        inbound(number, "HELP"),
        inbound(number, "what is this?"),
    )
    taken = await post_texts(gateway.url, stop, help_, chat)
    assert [(m["keyword"], m["contacts"], m["replied"]) for m in taken.json()["messages"]] == [
        ("QUIT", 0, True),
        ("HELP", 0, True),
        (None, 0, False),
    ]
    assert await sms_suppression(engine, number) is not None
    assert "no more text messages" in await replied(outbox, stop)
    help_text = load_brand(gateway.settings.templates_dir)["sms_help"]
    assert help_text in await replied(outbox, help_)  # sent though the number is suppressed
    assert not reply_file(outbox, chat).exists()


async def test_sms_webhook_is_off_without_its_secret(
    dev_env: WorkflowEnvironment, settings: Settings
) -> None:
    unconfigured = gateway_settings(settings, sms_webhook_secret=None)
    async with serving_gateway(dev_env.client, unconfigured, worker=False) as gateway:
        response = await post_texts(gateway.url, inbound("+14155550100", "STOP"))
    assert response.status_code == 404
    assert response.json()["detail"] == "SMS webhooks are not configured"


async def test_the_json_sms_api_gets_one_answer_with_the_inbound_ids_key(
    dev_env: WorkflowEnvironment, settings: Settings
) -> None:
    with FakeApi() as api:
        api.answer(Reply(201, {"id": "SM-answer-1"}))
        http_sms = gateway_settings(
            settings,
            sms_provider="http",
            sms_api_url=api.url,
            sms_api_key=SecretStr("k" * 24),
            **REAL_PROVIDER_LINKS,
        )
        async with serving_gateway(dev_env.client, http_sms) as gateway:
            stop = inbound("+14155550142", "end")
            for _ in range(2):  # redelivered
                assert (await post_texts(gateway.url, stop)).status_code == 200
            for _ in range(300):
                if api.received:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(1)  # time for a second request, were there one
    [request] = api.received
    assert request.path == "/messages"
    assert request.headers["idempotency-key"] == f"sms-keywords/{message_digest(stop['id'])}"
    assert request.body["to"] == "+14155550142"
    assert request.body["body"].startswith("Northwind Studio: you are unsubscribed")
