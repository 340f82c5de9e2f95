"""Prometheus metrics: the SDK's runtime telemetry and the journeys' own counters.

The worker runs on a `Runtime` serving `/metrics` (METRICS_BIND_ADDRESS) on a
free loopback port; the journeys' counters (`journeys_messages`,
`journeys_sla_breaches`) go through the activities' SDK meter to the same page.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import socket
from datetime import UTC, datetime, time, timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

import worker
from activities.messaging import MessagingActivities
from activities.providers import (
    OutboxNotifier,
    email_provider_from_settings,
    sms_provider_from_settings,
)
from activities.sales import SalesActivities
from models.handoff import SlaKind, SlaNotice
from models.journeys import JourneyInput
from models.messages import DeliveryStatus, SendRequest
from models.settings import Settings
from rules.sales import SalesConfig
from rules.templates import TemplateCatalog
from runtime.codec import encrypting_data_converter
from runtime.keys import KeyStore
from starter.services.operations import enroll
from tests.factories import add_contact, add_lead, message_rows
from worker import running_worker, worker_runtime, worker_telemetry

T0 = datetime(2026, 3, 4, 9, 0, tzinfo=UTC)

_SAMPLE = re.compile(r"^(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)")
_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


def free_address() -> str:
    """A loopback `host:port` nobody listens on (the runtime binds it right after)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


def with_metrics(settings: Settings) -> Settings:
    return settings.model_copy(update={"metrics_bind_address": free_address()})


async def scrape(settings: Settings) -> str:
    async with httpx.AsyncClient() as http:
        response = await http.get(f"http://{settings.metrics_bind_address}/metrics")
    response.raise_for_status()
    return response.text


def scrape_sync(settings: Settings) -> str:
    response = httpx.get(f"http://{settings.metrics_bind_address}/metrics")
    response.raise_for_status()
    return response.text


def values(page: str, name: str, **labels: str) -> list[float]:
    """Values of the series `name` whose labels include `labels`."""
    found = []
    for line in page.splitlines():
        match = _SAMPLE.match(line)
        if match is None or match["name"] != name:
            continue
        series = dict(_LABEL.findall(match["labels"] or ""))
        if all(series.get(key) == value for key, value in labels.items()):
            found.append(float(match["value"]))
    return found


def total(page: str, name: str, **labels: str) -> float:
    return sum(values(page, name, **labels))


# --- the worker on a metrics runtime, on the dev server ----------------------------------


async def test_worker_serves_sdk_metrics_and_counts_sent_messages(
    dev_env: WorkflowEnvironment, settings: Settings, engine: AsyncEngine, codec_keys: KeyStore
) -> None:
    settings = with_metrics(settings)
    client = await Client.connect(
        dev_env.client.service_client.config.target_host,
        namespace="default",
        data_converter=encrypting_data_converter(codec_keys),
        runtime=worker_runtime(settings),
    )
    await add_contact(engine, "metrics-ada", first_name="Ada")

    async with running_worker(client, settings):
        workflow_id = await enroll(
            client,
            engine,
            "welcome-series",
            JourneyInput(contact_id="metrics-ada", day_seconds=1),
            task_queue=settings.task_queue,
        )
        result = await asyncio.wait_for(client.get_workflow_handle(workflow_id).result(), 60)
        page = await scrape(settings)

    assert result["messages_sent"] == 5
    rows = await message_rows(engine, "metrics-ada")
    assert [row.status for row in rows if row.journey == "welcome-series"] == ["sent"] * 5
    ours = {"task_queue": settings.task_queue}
    welcome = {"journey": "welcome-series", "channel": "email"}
    assert total(page, "journeys_messages", **welcome, status="sent", **ours) == 5
    assert total(page, "journeys_messages", **welcome, **ours) == 5  # no other outcome
    assert values(page, "journeys_messages", status="sent", activity_type="send_message")
    # The SDK's own metrics, from the same runtime.
    assert total(page, "temporal_workflow_completed", workflow_type="welcome-series", **ours) == 1
    assert (
        total(
            page,
            "temporal_activity_execution_latency_count",
            activity_type="send_message",
            **ours,
        )
        >= 5
    )
    assert values(page, "temporal_workflow_task_execution_latency_count", **ours)


async def test_run_worker_serves_metrics_at_the_configured_address(
    dev_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = with_metrics(settings)
    monkeypatch.setenv("TEMPORAL_ADDRESS", dev_env.client.service_client.config.target_host)
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "default")
    pages: list[str] = []

    async def until_the_worker_polls() -> None:  # instead of waiting for SIGTERM
        while True:
            page = await scrape(settings)
            if values(page, "temporal_num_pollers", task_queue=settings.task_queue):
                pages.append(page)
                return
            await asyncio.sleep(0.1)

    monkeypatch.setattr(worker, "wait_for_shutdown_signal", until_the_worker_polls)
    await asyncio.wait_for(worker.run_worker(settings), 60)

    [page] = pages
    assert values(page, "temporal_request", operation="GetSystemInfo")


def test_metrics_are_off_unless_an_address_is_set(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert settings.metrics_bind_address is None
    assert worker_telemetry(settings).metrics is None
    monkeypatch.setenv("METRICS_BIND_ADDRESS", "127.0.0.1:9464")
    assert Settings(_env_file=None).metrics_bind_address == "127.0.0.1:9464"


def test_a_bad_metrics_address_names_the_setting(settings: Settings) -> None:
    with pytest.raises(ValueError, match="METRICS_BIND_ADDRESS 'nonsense'"):
        worker_runtime(settings.model_copy(update={"metrics_bind_address": "nonsense"}))
    taken = with_metrics(settings)
    serving = worker_runtime(taken)  # serves until it is dropped
    with pytest.raises(ValueError, match="METRICS_BIND_ADDRESS .*in use"):
        worker_runtime(taken)
    assert values(scrape_sync(taken), "journeys_messages") == []
    del serving


# --- the counters, from the activities alone ---------------------------------------------


def attempt(
    runtime: Runtime, activity_type: str, number: int = 1, *, at: datetime = T0
) -> ActivityEnvironment:
    """An activity environment on the runtime's meter: attempt `number`, scheduled at `at`."""
    env = ActivityEnvironment()
    env.metric_meter = runtime.metric_meter
    env.info = dataclasses.replace(
        env.info,
        activity_type=activity_type,
        attempt=number,
        scheduled_time=at,
        current_attempt_scheduled_time=at,
    )
    return env


async def test_each_send_outcome_is_counted_once_per_execution_that_records_it(
    settings: Settings, engine: AsyncEngine
) -> None:
    settings = with_metrics(
        settings.model_copy(update={"quiet_hours_start": time(0, 0), "quiet_hours_end": time(23)})
    )
    runtime = worker_runtime(settings)
    messaging = MessagingActivities(
        engine=engine,
        templates=TemplateCatalog(settings.templates_dir),
        email_provider=email_provider_from_settings(settings),
        sms_provider=sms_provider_from_settings(settings),
        policy=settings.messaging_policy(),
        unsubscribe_base_url=settings.public_base_url,
        unsubscribe_secret=settings.unsubscribe_secret.get_secret_value(),
        suppression_key=settings.suppression_key(),
    )
    await add_contact(engine, "quiet-ada")
    await add_contact(engine, "no-consent", email_consent=False)

    def request(contact_id: str) -> SendRequest:
        return SendRequest(
            idempotency_key=f"welcome-series-{contact_id}/day1",
            contact_id=contact_id,
            journey="welcome-series",
            step="day1",
            template="welcome-series/day1",
        )

    send = messaging.send_message
    skipped = await attempt(runtime, "send_message").run(send, request("no-consent"))
    # A retry finds the final outcome recorded and returns it: not counted again.
    await attempt(runtime, "send_message", 2).run(send, request("no-consent"))
    deferred = await attempt(runtime, "send_message").run(send, request("quiet-ada"))
    # A retry of the attempt that deferred (it failed after recording): not counted again.
    await attempt(runtime, "send_message", 2).run(send, request("quiet-ada"))
    # The journey asks again later (a new execution), still in quiet hours: counted.
    later = T0 + timedelta(hours=1)
    await attempt(runtime, "send_message", at=later).run(send, request("quiet-ada"))

    assert skipped.status == DeliveryStatus.SKIPPED_NO_CONSENT
    assert deferred.status == DeliveryStatus.DEFERRED
    page = await scrape(settings)
    counted = {"journey": "welcome-series", "channel": "email"}
    assert total(page, "journeys_messages", **counted, status="skipped_no_consent") == 1
    assert total(page, "journeys_messages", **counted, status="deferred") == 2
    assert total(page, "journeys_messages", **counted) == 3


async def test_an_sla_breach_is_counted_once_by_sla(
    settings: Settings, engine: AsyncEngine
) -> None:
    settings = with_metrics(settings)
    runtime = worker_runtime(settings)
    sales = SalesActivities(
        engine=engine,
        config=SalesConfig.load(settings.sales_file),
        notifier=OutboxNotifier(settings.outbox_dir),
    )
    await add_lead(engine, "late-ada", owner_id="sdr-mia", owner_assigned_at=T0)

    def breach(sla: SlaKind) -> SlaNotice:
        return SlaNotice(
            idempotency_key=f"lead-sla-late-ada-1/{sla}-breach",
            contact_id="late-ada",
            owner_id="sdr-mia",
            sla=sla,
            due_at=T0 + timedelta(minutes=10),
        )

    escalate = sales.escalate_sla_breach
    await attempt(runtime, "escalate_sla_breach").run(escalate, breach(SlaKind.FIRST_TOUCH))
    await attempt(runtime, "escalate_sla_breach", 2).run(escalate, breach(SlaKind.FIRST_TOUCH))
    await attempt(runtime, "escalate_sla_breach").run(escalate, breach(SlaKind.QUALIFICATION))

    page = await scrape(settings)
    assert total(page, "journeys_sla_breaches", sla="first_touch") == 1
    assert total(page, "journeys_sla_breaches", sla="qualification") == 1
    [series] = [line for line in page.splitlines() if line.startswith("journeys_sla_breaches{")][:1]
    assert "owner" not in series  # no high-cardinality labels
