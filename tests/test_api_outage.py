"""Temporal stops under the gateway: 503 with Retry-After, and nothing acknowledged is lost."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import WorkflowEnvironment

from models.contact_workflow import ContactState
from models.search_attributes import ALL_SEARCH_ATTRIBUTES
from models.settings import Settings
from models.tables import ContactEvent
from runtime.codec import encrypting_data_converter
from runtime.keys import KeyStore
from starter.dev.ports import free_port
from starter.dev.toolchain import start_dev_server
from tests.factories import rows_of
from tests.gateway import gateway_settings, serving_gateway
from worker import running_worker


async def dev_server(port: int, database: Path, keys: KeyStore) -> WorkflowEnvironment:
    return await start_dev_server(
        port=port,
        search_attributes=ALL_SEARCH_ATTRIBUTES,
        dev_server_database_filename=str(database),
        data_converter=encrypting_data_converter(keys),
    )


def event(event_id: str) -> dict[str, str]:
    return {"event_id": event_id, "contact_id": "outage", "type": "website_visited"}


async def test_temporal_down_means_503_and_every_acknowledged_event_arrives(
    tmp_path: Path, settings: Settings, engine: AsyncEngine, codec_keys: KeyStore
) -> None:
    port, database = free_port(), tmp_path / "temporal.db"
    env = await dev_server(port, database, codec_keys)
    restarted: WorkflowEnvironment | None = None
    try:
        async with serving_gateway(env.client, gateway_settings(settings), worker=False) as gateway:
            before = await gateway.http.post("/v1/events", json=event("e1"))
            assert before.status_code == 202

            await env.shutdown()
            down = await gateway.http.post("/v1/events", json=event("e2"))
            assert down.status_code == 503, down.text
            assert down.headers["Retry-After"] == str(settings.temporal_retry_after_seconds)
            assert "nothing in this request was acknowledged" in down.json()["detail"]
            batch = {"events": [event("e3"), event("e4")]}
            assert (await gateway.http.post("/v1/events", json=batch)).status_code == 503
            ready = await gateway.http.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["temporal"].startswith("unavailable")
            assert ready.json()["checks"]["database"] == "ok"

            restarted = await dev_server(port, database, codec_keys)
            retried = await gateway.http.post("/v1/events", json=event("e2"))
            assert retried.status_code == 202, retried.text
            retried_batch = await gateway.http.post("/v1/events", json=batch)
            assert retried_batch.status_code == 202
            assert retried_batch.json()["accepted"] == 2
            again = await gateway.http.post("/v1/events", json=event("e1"))
            assert again.json()["results"][0]["status"] == "duplicate"

        async with running_worker(restarted.client, settings):
            handle = restarted.client.get_workflow_handle("contact-outage")
            for _ in range(100):
                state = await handle.query("state", result_type=ContactState)
                if state.events_accepted == 4:
                    break
                await asyncio.sleep(0.1)
            assert state.events_accepted == 4
            assert state.duplicates_dropped == 0
        stored = sorted(row.event_id for row in await rows_of(engine, ContactEvent, "outage"))
        assert stored == ["e1", "e2", "e3", "e4"]
    finally:
        await (restarted or env).shutdown()
