"""Consent per channel: an email unsubscribe stops email only, an SMS STOP stops texts only,
and every consent change is in the contact's history (API and CLI)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import WorkflowEnvironment

from models.journeys import JourneyInput, JourneyState, JourneyStatus
from models.settings import Settings
from models.tables import ContactEvent, Suppression
from tests.cli import cli_environment, journeys
from tests.factories import add_contact, message_rows, rows_of
from tests.gateway import Gateway, gateway_settings, serving_gateway
from tests.journeys import TextsAndEmails
from tests.sms import inbound, post_texts
from tests.test_api import journey_state, new_id, unsubscribe_token
from worker import build_worker
from workflows import catalog


@pytest.fixture
async def gateway(dev_env: WorkflowEnvironment, settings: Settings) -> AsyncIterator[Gateway]:
    async with serving_gateway(dev_env.client, gateway_settings(settings)) as served:
        yield served


async def test_the_email_link_stops_email_only_and_the_history_says_who_when_and_how(
    gateway: Gateway, dev_env: WorkflowEnvironment, engine: AsyncEngine
) -> None:
    contact_id = new_id("chan")
    email, phone = f"{contact_id}@example.com", "+14155550123"
    form = {"ip": "203.0.113.7", "user_agent": "FormBrowser/2.0"}
    put = await gateway.http.put(
        f"/v1/contacts/{contact_id}",
        json={
            "email": email,
            "phone": phone,
            "email_consent": {"granted": True, "source": "form:signup", **form,
                              "text": "Yes, email me product news."},
            "sms_consent": {"granted": True, "source": "form:signup", **form,
                            "text": "Yes, text me offers."},
        },
    )  # fmt: skip
    assert put.status_code == 200, put.text
    again = await gateway.http.put(  # a CRM sync resends the same consent: nothing changes
        f"/v1/contacts/{contact_id}",
        json={"email_consent": {"granted": True, "source": "form:signup"}},
    )
    assert again.status_code == 200
    path = f"/v1/contacts/{contact_id}/journeys"
    await gateway.http.post(f"{path}/welcome-series")
    pricing = (await gateway.http.post(f"{path}/pricing-abandon")).json()["workflow_id"]
    welcome = f"welcome-series-{contact_id}"
    await journey_state(dev_env.client, welcome, lambda s: s.messages_sent == 1)
    token = unsubscribe_token((gateway.settings.outbox_dir / welcome / "day0.eml").read_bytes())

    async with httpx.AsyncClient(
        base_url=gateway.url, headers={"User-Agent": "MailReader/9.1"}
    ) as browser:
        page = (await browser.get(f"/u/{token}")).text
        done = await browser.post(f"/u/{token}")
        one_click = await browser.post(  # the mail client's one-click afterwards: counts once
            f"/u/{token}",
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    for text in (page, done.text):
        assert email not in text and phone not in text  # masked
        assert f"{contact_id[0]}***@example.com will no longer receive marketing email from " \
            "Northwind Studio." in text  # fmt: skip
        assert "Text messages (sms) to +*********23 are not affected." in text
    assert one_click.status_code == 200

    exited = await journey_state(dev_env.client, welcome, lambda s: s.status == "exited")
    assert exited.exit_reason == "unsubscribed"
    # The pricing follow-up still has a text to send: it goes on.
    assert (await journey_state(dev_env.client, pricing, bool)).status == "running"
    assert {row.channel for row in await rows_of(engine, Suppression, contact_id)} == {"email"}
    contact = (await gateway.http.get(f"/v1/contacts/{contact_id}")).json()
    assert (contact["email_consent"]["granted"], contact["sms_consent"]["granted"]) == (False, True)

    history = (await gateway.http.get(f"/v1/contacts/{contact_id}/consent")).json()
    assert [(c["channel"], c["granted"], c["source"]) for c in history] == [
        ("email", True, "form:signup"),
        ("sms", True, "form:signup"),
        ("email", False, "unsubscribe-link"),
    ]
    assert (history[0]["wording"], history[0]["ip"], history[0]["user_agent"]) == (
        "Yes, email me product news.",
        "203.0.113.7",
        "FormBrowser/2.0",
    )
    assert (history[2]["ip"], history[2]["user_agent"]) == ("127.0.0.1", "MailReader/9.1")
    assert history[2]["wording"] == "unsubscribe from marketing email"

    # An `unsubscribed` event without a channel keeps its meaning: everything stops.
    await gateway.http.post(
        "/v1/events",
        json={"contact_id": contact_id, "type": "unsubscribed", "properties": {"source": "crm"}},
    )
    exited = await journey_state(dev_env.client, pricing, lambda s: s.status == "exited")
    assert exited.exit_reason == "unsubscribed"
    assert {row.channel for row in await rows_of(engine, Suppression, contact_id)} == {
        "email",
        "sms",
    }
    history = (await gateway.http.get(f"/v1/contacts/{contact_id}/consent")).json()
    assert [(c["channel"], c["granted"], c["source"]) for c in history[3:]] == [
        ("sms", False, "event:crm")
    ]

    reader = await gateway.http.get(
        f"/v1/contacts/{contact_id}/consent", headers={"Authorization": "Bearer nope"}
    )
    assert reader.status_code == 401
    assert (await gateway.http.get("/v1/contacts/nobody-here/consent")).status_code == 404


async def test_the_cli_shows_the_consent_history(settings: Settings, engine: AsyncEngine) -> None:
    env = cli_environment(settings, "127.0.0.1:1")  # no Temporal needed
    upsert = await journeys(
        "contact", "upsert", "kim", "--email", "kim@example.com", "--email-consent",
        "--consent-source", "form:webinar", env=env,
    )  # fmt: skip
    assert upsert.returncode == 0, upsert.stderr
    shown = await journeys("contact", "consent", "kim", env=env)
    assert "email granted   form:webinar" in shown.stdout
    as_json = (await journeys("contact", "consent", "kim", "--json", env=env)).json()
    assert [(c["channel"], c["granted"], c["source"]) for c in as_json] == [
        ("email", True, "form:webinar")
    ]
    missing = await journeys("contact", "consent", "nobody", env=env)
    assert missing.returncode != 0 and "does not exist" in missing.stderr


async def test_after_stop_no_further_text_of_the_journey_goes_out_but_its_emails_do(
    time_skipping_env: WorkflowEnvironment, settings: Settings, engine: AsyncEngine
) -> None:
    env, contact_id, number = time_skipping_env, f"texts-{uuid.uuid4().hex[:6]}", "+14155550177"
    await add_contact(engine, contact_id, phone=number, sms_consent=True)
    journeys = [*catalog.all_journeys(), TextsAndEmails]
    async with (
        build_worker(env.client, settings, engine, journeys=journeys),
        serving_gateway(env.client, gateway_settings(settings), worker=False) as gateway,
    ):
        handle = await env.client.start_workflow(
            TextsAndEmails.name,
            JourneyInput(contact_id=contact_id),
            id=f"{TextsAndEmails.name}-{contact_id}",
            task_queue=settings.task_queue,
            result_type=JourneyState,
        )
        first_text = settings.outbox_dir / handle.id / "day0-sms.sms.txt"
        for _ in range(300):
            if first_text.exists():
                break
            await asyncio.sleep(0.1)
        assert "Reply STOP to opt out." in first_text.read_text()

        stop = await post_texts(gateway.url, inbound(number, "STOP"))
        assert stop.json()["messages"][0]["contacts"] == 1
        for _ in range(300):  # the contact workflow has it (and told whom it concerns)
            if await rows_of(engine, ContactEvent, contact_id):
                break
            await asyncio.sleep(0.1)
        await env.sleep(timedelta(minutes=1))
        result = await handle.result()

    assert result.status == JourneyStatus.COMPLETED
    log = {
        row.step: (row.status, row.status_reason)
        for row in await message_rows(engine, contact_id)
        if row.journey == TextsAndEmails.name
    }
    assert log == {
        "day0-sms": ("sent", None),
        "day1-email": ("sent", None),
        "day2-sms": ("suppressed", "address suppressed: sms_stop"),
        "day3-email": ("sent", None),
    }
    sent = sorted(path.name for path in (settings.outbox_dir / handle.id).iterdir())
    assert sent == ["day0-sms.sms.txt", "day1-email.eml", "day3-email.eml"]
