"""The Temporal server stops and starts again while journeys sleep and events arrive.

Half the fleet subscribes first (their welcome series sleep between emails);
then the dev server is stopped. The other half's `subscribed` events arrive
during the outage: the gateway answers 503 with `Retry-After`, the client
retries, and once the server is back (same port, same database file) they are
accepted. The worker process rides out the outage, and logs it (JSON lines,
the SDK Core's warnings included). Every journey of both
halves completes with each email sent once.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from models.settings import Settings
from starter.client import AsyncJourneysClient
from tests.faults.email_api import EmailApi
from tests.faults.fleet import (
    assert_each_email_delivered_once,
    email_of,
    fleet,
    wait_for_journeys,
)
from tests.faults.stack import DevServer, WorkerProcess
from tests.gateway import FULL_KEY, gateway_settings, serving_gateway
from worker import CORE_LOGGER

OUTAGE_SECONDS = 8


class CountingTransport(httpx.AsyncHTTPTransport):
    """httpx's transport, counting the statuses of the answers (retries included)."""

    def __init__(self) -> None:
        super().__init__()
        self.statuses: Counter[int] = Counter()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        self.statuses[response.status_code] += 1
        return response


async def test_server_restart_while_journeys_sleep_and_events_arrive(
    dev_server: DevServer,
    settings: Settings,
    engine: AsyncEngine,
    email_api: EmailApi,
    worker_process: Callable[..., WorkerProcess],
) -> None:
    sleeping, arriving = fleet(8, "sleeping-"), fleet(8, "arriving-")
    worker = worker_process("worker")
    await worker.start()
    gateway_config = gateway_settings(settings, day_seconds=1, temporal_retry_after_seconds=1)
    transport = CountingTransport()
    async with (
        serving_gateway(dev_server.client, gateway_config, worker=False) as gateway,
        AsyncJourneysClient(
            gateway.url, FULL_KEY, max_retries=120, max_retry_delay=1, transport=transport
        ) as api,
    ):
        consent = {"granted": True, "source": "fault-test"}
        for contact_id in sleeping + arriving:
            await api.upsert_contact(contact_id, email=email_of(contact_id), email_consent=consent)
        await asyncio.gather(*(api.send_event(c, "subscribed") for c in sleeping))
        async with asyncio.timeout(60):
            while len(email_api.deliveries) < len(sleeping):  # each Day-0 email is out
                await asyncio.sleep(0.1)

        await dev_server.stop()
        arrivals = asyncio.gather(*(api.send_event(c, "subscribed") for c in arriving))
        await asyncio.sleep(OUTAGE_SECONDS)
        await dev_server.start()
        answers = await arrivals

    assert [answer.accepted for answer in answers] == [1] * len(arriving)
    assert transport.statuses[503] >= len(arriving), transport.statuses
    await wait_for_journeys(dev_server.client, sleeping + arriving, within=300)
    await assert_each_email_delivered_once(engine, email_api, sleeping + arriving)
    assert await worker.stop() == 0, worker.tail()
    logged = [json.loads(line) for line in worker.log_path.read_text().splitlines()]
    core = [entry for entry in logged if entry["logger"].startswith(CORE_LOGGER)]
    assert any("Unavailable" in entry["event"] for entry in core), "the outage went unlogged"
