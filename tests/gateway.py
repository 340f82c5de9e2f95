"""Running the real HTTP gateway on loopback for tests, with a worker behind it."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext
from dataclasses import dataclass

import httpx
from pydantic import SecretStr
from temporalio.client import Client

from models.search_attributes import ALL_SEARCH_ATTRIBUTES
from models.settings import ApiKey, Settings
from runtime.codec import encrypting_data_converter, key_store_of
from runtime.keys import key_store
from runtime.temporal import SERVICE_RETRY, connect
from starter.api.server import running_api
from starter.dev.toolchain import start_dev_server
from worker import running_worker

FULL_KEY = "tests-full-access-key-0123456789"
READ_ONLY_KEY = "tests-read-only-key-0123456789ab"
WEBHOOK_SECRET = "tests-webhook-secret"
SMS_WEBHOOK_SECRET = "tests-sms-webhook-secret"
PRODUCTION_MASTER_KEYS = {"tests-production": SecretStr(base64.b64encode(b"k" * 32).decode())}
"""A master key of one's own, as the start-up guard asks for with a real provider."""
REAL_PROVIDER_ENVIRONMENT = {
    "UNSUBSCRIBE_SECRET": "tests-unsubscribe-secret-of-32-bytes-or-more",
    "PUBLIC_BASE_URL": "https://journeys.example.test",
    "SUPPRESSION_HASH_SECRET": "tests-suppression-hash-secret-of-32-bytes",
    "PAYLOAD_MASTER_KEYS": json.dumps(
        {key_id: key.get_secret_value() for key_id, key in PRODUCTION_MASTER_KEYS.items()}
    ),
}
"""What the start-up guard asks for once a real provider is configured, as the environment
of a `journeys worker` process."""
REAL_PROVIDER_LINKS = {
    "unsubscribe_secret": SecretStr(REAL_PROVIDER_ENVIRONMENT["UNSUBSCRIBE_SECRET"]),
    "public_base_url": REAL_PROVIDER_ENVIRONMENT["PUBLIC_BASE_URL"],
    "suppression_hash_secret": SecretStr(REAL_PROVIDER_ENVIRONMENT["SUPPRESSION_HASH_SECRET"]),
    "payload_master_keys": PRODUCTION_MASTER_KEYS,
}
"""The same as settings (the gateway's codec keys come from the test's client, see
`serving_gateway`)."""


def gateway_settings(settings: Settings, **changes: object) -> Settings:
    """A test's settings plus two API keys (full access, read-only) and the webhook secrets."""
    return settings.model_copy(
        update={
            "api_keys": [
                ApiKey(name="tests", key=SecretStr(FULL_KEY)),
                ApiKey(name="reader", key=SecretStr(READ_ONLY_KEY), scopes={"contacts:read"}),
            ],
            "email_webhook_secret": SecretStr(WEBHOOK_SECRET),
            "sms_webhook_secret": SecretStr(SMS_WEBHOOK_SECRET),
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

    keys = key_store_of(client.data_converter)
    assert keys is not None, "the test's client encrypts: the gateway uses its keys"

    async def temporal() -> Client:
        return await connect(target_host=address, lazy=True, retry=SERVICE_RETRY, keys=keys)

    async with (
        running_worker(client, settings) if worker else nullcontext(),
        running_api(settings, host="127.0.0.1", port=0, temporal=temporal, codec_keys=keys) as url,
        httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {FULL_KEY}"}, timeout=30
        ) as http,
    ):
        yield Gateway(url=url, http=http, settings=settings)


class GatewayThread:
    """A Temporal dev server, the worker and the gateway in their own thread and event loop.

    For synchronous test drivers (schemathesis) that block the test's thread
    while they make requests. `with GatewayThread(settings) as url: …`
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._url: str | None = None
        self._failure: BaseException | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name="gateway", daemon=True)

    def __enter__(self) -> str:
        self._thread.start()
        if not self._ready.wait(120):
            raise TimeoutError("the gateway thread did not start within 120 s")
        if self._failure is not None or self._url is None:
            raise RuntimeError("the gateway thread failed to start") from self._failure
        return self._url

    def __exit__(self, *exc_info: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:  # reported to the test's thread
            self._failure = error
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        env = await start_dev_server(
            search_attributes=ALL_SEARCH_ATTRIBUTES,
            data_converter=encrypting_data_converter(key_store(self._settings)),
        )
        try:
            async with serving_gateway(env.client, self._settings) as gateway:
                self._url = gateway.url
                self._ready.set()
                await self._stop.wait()
        finally:
            await env.shutdown()
