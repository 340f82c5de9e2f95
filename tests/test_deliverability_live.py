"""The deliverability guard end to end on the Temporal dev server, through the real gateway.

Welcome series run for a handful of contacts; a scripted burst of signed bounce
webhooks comes in; the guard's workflow (what its schedule starts) pauses the
journey's marketing sends and notifies its owner; a new contact's Day-0 email
waits; `journeys deliverability resume` lets it go. A spam complaint through the
same webhook suppresses the contact at once and ends its journey.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import WorkflowEnvironment

from models.deliverability import GuardResult
from models.journeys import JourneyState
from models.messages import DeliveryStatus
from models.settings import Settings
from models.tables import ContactEvent, MessageLog, Suppression
from starter.api.webhooks import SIGNATURE_HEADER, sign_webhook
from tests.cli import cli_environment, journeys
from tests.factories import message_rows, rows_of
from tests.gateway import READ_ONLY_KEY, WEBHOOK_SECRET, Gateway, gateway_settings, serving_gateway
from tests.kit import enters_welcome_series
from workflows.deliverability_guard import DELIVERABILITY_GUARD, DeliverabilityGuard

GUARD_FILE = """\
min_sends = 5
settle_hours = 0
[alert]
bounce = 0.02
[pause]
bounce = 0.05
[owners]
default = "ops-kai"
[[people]]
id = "ops-kai"
name = "Kai"
"""


@pytest.fixture
async def gateway(
    dev_env: WorkflowEnvironment, settings: Settings, tmp_path: Path
) -> AsyncIterator[Gateway]:
    guard_file = tmp_path / "deliverability.toml"
    guard_file.write_text(GUARD_FILE)
    changed = gateway_settings(
        settings, deliverability_file=guard_file, send_pause_recheck_seconds=2
    )
    async with serving_gateway(dev_env.client, changed) as served:
        yield served


def welcome_id() -> str:
    while not enters_welcome_series(contact_id := f"dlv-{uuid.uuid4().hex[:8]}"):
        pass
    return contact_id


async def enrol(gateway: Gateway, contact_id: str) -> None:
    body = {
        "email": f"{contact_id}@example.com",
        "email_consent": {"granted": True, "source": "form:test"},
    }
    assert (await gateway.http.put(f"/v1/contacts/{contact_id}", json=body)).status_code == 200
    enrolled = await gateway.http.post(f"/v1/contacts/{contact_id}/journeys/welcome-series")
    assert enrolled.status_code in (200, 201, 202), enrolled.text


async def day0(engine: AsyncEngine, contact_id: str, status: DeliveryStatus) -> MessageLog:
    """The contact's Day-0 message once it has `status` (polled for up to 30 s)."""
    rows: list[MessageLog] = []
    for _ in range(300):
        rows = [row for row in await message_rows(engine, contact_id) if row.step == "day0"]
        if rows and rows[0].status == status:
            return rows[0]
        await asyncio.sleep(0.1)
    raise AssertionError(f"{contact_id}'s day0 never became {status}: {rows}")


async def post_events(gateway: Gateway, events: list[dict[str, str]]) -> dict[str, object]:
    body = json.dumps({"events": events}).encode()
    signature = sign_webhook(body, WEBHOOK_SECRET, timestamp=int(time.time()))
    answer = await gateway.http.post(
        "/webhooks/email",
        content=body,
        headers={SIGNATURE_HEADER: signature, "Content-Type": "application/json"},
    )
    assert answer.status_code == 200, answer.text
    result: dict[str, object] = answer.json()
    return result


async def check(dev_env: WorkflowEnvironment, gateway: Gateway) -> GuardResult:
    """One run of the guard's workflow, as its schedule starts it."""
    return await dev_env.client.execute_workflow(
        DeliverabilityGuard.run,
        id=f"{DELIVERABILITY_GUARD}-{uuid.uuid4().hex[:8]}",
        task_queue=gateway.settings.task_queue,
    )


async def test_a_bounce_burst_pauses_the_journey_until_an_operator_resumes_it(
    gateway: Gateway, dev_env: WorkflowEnvironment, engine: AsyncEngine
) -> None:
    contacts = [welcome_id() for _ in range(6)]
    for contact_id in contacts:
        await enrol(gateway, contact_id)
    sent = [await day0(engine, contact_id, DeliveryStatus.SENT) for contact_id in contacts]
    calm = await check(dev_env, gateway)
    assert calm.paused_journeys == [] and calm.open_alerts == []

    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    burst = [
        {
            "id": f"bounce-{message.contact_id}",
            "type": "bounced",
            "bounce_type": "hard",
            "message_id": message.provider_message_id or "",
            "occurred_at": now,
        }
        for message in sent[:2]
    ]
    assert (await post_events(gateway, burst))["accepted"] == 2
    for message in sent[:2]:
        await _stored_event(engine, message.contact_id, "email_bounced")

    tripped = await check(dev_env, gateway)

    assert tripped.paused == ["welcome-series"], tripped
    notification = _notification(gateway.settings)
    assert notification["title"] == "Sends paused: welcome-series (bounce rate 33.3%)"
    assert notification["recipient"] == "Kai"
    newcomer = welcome_id()
    await enrol(gateway, newcomer)
    waiting = await day0(engine, newcomer, DeliveryStatus.DEFERRED)
    assert "sends of welcome-series paused by deliverability-guard" in (waiting.status_reason or "")

    env = cli_environment(gateway.settings, dev_env.client.service_client.config.target_host)
    env["DELIVERABILITY_FILE"] = str(gateway.settings.deliverability_file)
    status = await journeys("deliverability", "status", env=env)
    assert status.returncode == 0, status.stderr
    assert "PAUSED: welcome-series" in status.stdout and "33.3%!" in status.stdout
    report = await journeys("report", "--journey", "welcome-series", env=env)
    assert "sends paused" in report.stdout and "still paused" in report.stdout, report.stdout
    resumed = await journeys("deliverability", "resume", "welcome-series", env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert "marketing sends resumed" in resumed.stdout

    await day0(engine, newcomer, DeliveryStatus.SENT)
    after = await check(dev_env, gateway)
    assert after.paused_journeys == [], "judged on what was sent since the resume"
    again = await journeys("deliverability", "resume", "welcome-series", env=env)
    assert again.returncode != 0 and "not paused" in again.stderr


async def test_a_spam_complaint_suppresses_the_contact_at_once_and_ends_its_journey(
    gateway: Gateway, dev_env: WorkflowEnvironment, engine: AsyncEngine
) -> None:
    contact_id = welcome_id()
    await enrol(gateway, contact_id)
    message = await day0(engine, contact_id, DeliveryStatus.SENT)
    complaint = {
        "id": f"complaint-{contact_id}",
        "type": "complained",
        "message_id": message.provider_message_id or "",
        "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }

    assert (await post_events(gateway, [complaint]))["accepted"] == 1

    suppressions = await rows_of(engine, Suppression, contact_id)
    assert {(row.channel, row.reason) for row in suppressions} == {("email", "complaint")}, (
        "at once: written before the webhook answered (the contact has no phone to suppress)"
    )
    handle = dev_env.client.get_workflow_handle(
        f"welcome-series-{contact_id}", result_type=JourneyState
    )
    result = await asyncio.wait_for(handle.result(), 30)
    assert (result.status, result.exit_reason) == ("exited", "complaint")
    stored = {event.type for event in await rows_of(engine, ContactEvent, contact_id)}
    assert "email_complained" in stored


async def _stored_event(engine: AsyncEngine, contact_id: str, event_type: str) -> None:
    for _ in range(200):
        if any(row.type == event_type for row in await rows_of(engine, ContactEvent, contact_id)):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{contact_id} never stored {event_type}")


def _notification(settings: Settings) -> dict[str, str]:
    [path] = (settings.outbox_dir / "notifications").rglob("*.json")
    note: dict[str, str] = json.loads(path.read_text())
    return note


async def test_operators_see_and_steer_pauses_over_http(gateway: Gateway) -> None:
    reader = {"Authorization": f"Bearer {READ_ONLY_KEY}"}
    assert (await gateway.http.get("/v1/deliverability", headers=reader)).status_code == 403
    assert (await gateway.http.put("/v1/deliverability/pauses/nurtur")).status_code == 404

    paused = await gateway.http.put(
        "/v1/deliverability/pauses/nurture", json={"reason": "moving the sending domain"}
    )
    again = await gateway.http.put("/v1/deliverability/pauses/nurture")
    shown = await gateway.http.get("/v1/deliverability")
    resumed = await gateway.http.delete("/v1/deliverability/pauses/nurture")
    not_paused = await gateway.http.delete("/v1/deliverability/pauses/nurture")

    assert paused.status_code == 201, paused.text
    assert paused.json()["paused_by"] == "api:tests"
    assert again.status_code == 409
    assert shown.status_code == 200
    assert [(view["journey"], view["reason"]) for view in shown.json()["paused"]] == [
        ("nurture", "moving the sending domain")
    ]
    assert shown.json()["limits"] == {"bounce": 0.02}
    assert (resumed.status_code, resumed.json()["resumed_by"]) == (200, "api:tests")
    assert not_paused.status_code == 404
