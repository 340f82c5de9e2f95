"""Running the real HTTP gateway on loopback for tests, with a worker behind it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext
from dataclasses import dataclass

import httpx
from pydantic import SecretStr
from temporalio.client import Client

from models.settings import ApiKey, Settings
from starter.api import running_api
from starter.temporal import SERVICE_RETRY, connect
from worker import running_worker

FULL_KEY = "tests-full-access-key-0123456789"
READ_ONLY_KEY = "tests-read-only-key-0123456789ab"
WEBHOOK_SECRET = "tests-webhook-secret"


def gateway_settings(settings: Settings, **changes: object) -> Settings:
    """A test's settings plus two API keys (full access, read-only) and a webhook secret."""
    return settings.model_copy(
        update={
            "api_keys": [
                ApiKey(name="tests", key=SecretStr(FULL_KEY)),
                ApiKey(name="reader", key=SecretStr(READ_ONLY_KEY), scopes={"contacts:read"}),
            ],
            "email_webhook_secret": SecretStr(WEBHOOK_SECRET),
            **changes,
        }
    )


@dataclass(frozen=True)
class Gateway:
    """A gateway being served: its URL, an authenticated HTTP client, its settings."""

    url: str
    http: httpx.AsyncClient
    settings: Settings


@asynccontextmanager
async def serving_gateway(
    client: Client, settings: Settings, *, worker: bool = True
) -> AsyncIterator[Gateway]:
    """Serve the gateway (its own lazily connecting Temporal client, as in production)
    on a free loopback port, with the real worker on the same task queue if `worker`."""
    address = client.service_client.config.target_host

    async def temporal() -> Client:
        return await connect(target_host=address, lazy=True, retry=SERVICE_RETRY)

    async with (
        running_worker(client, settings) if worker else nullcontext(),
        running_api(settings, host="127.0.0.1", port=0, temporal=temporal) as url,
        httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {FULL_KEY}"}, timeout=30
        ) as http,
    ):
        yield Gateway(url=url, http=http, settings=settings)
