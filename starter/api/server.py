"""Serving the gateway with uvicorn inside an asyncio program (`journeys api`, `make run`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import structlog
import uvicorn

from models.db import create_engine, migrate
from models.settings import Settings, refuse_unsafe_settings
from runtime.keys import KeyStore
from runtime.temporal import check_connection
from starter.api.app import TemporalConnector, create_app
from starter.services.operations import OperationError

log = structlog.stdlib.get_logger("journeys.api")


class NoKeysConfigured(OperationError):
    """The gateway would refuse every request: no API key is configured."""


class _EmbeddedServer(uvicorn.Server):
    """Uvicorn without its own signal handling: whoever runs it decides when it stops."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@asynccontextmanager
async def running_api(
    settings: Settings,
    *,
    host: str | None = None,
    port: int | None = None,
    temporal: TemporalConnector | None = None,
    codec_keys: KeyStore | None = None,
) -> AsyncIterator[str]:
    """Migrate the database, serve the gateway until the block exits; yields its base URL.

    Port 0 picks a free port (the URL says which). `temporal` and `codec_keys`
    as in `create_app`. Without `temporal`, the gateway's client from the
    environment is tried once first: wrong connection settings stop the start,
    an unreachable Temporal does not (the gateway answers 503 until it is back).

    Raises:
        UnsafeSettings: development secrets or addresses where real contacts get messages.
        NoKeysConfigured: API_KEYS is empty.
        TemporalSettingsError: a Temporal connection setting is wrong (a TLS file,
            a certificate the server refuses…).
    """
    refuse_unsafe_settings(settings)
    if not settings.api_keys:
        raise NoKeysConfigured(
            'no API keys configured: set API_KEYS, e.g. \'[{"name": "local", "key": "<24+ '
            "random characters>\"}]'"
        )
    if temporal is None:
        unreachable = await check_connection()
        if unreachable is not None:
            log.warning("temporal unreachable at start", reason=unreachable)
    engine = create_engine(settings.database_url)
    try:
        await migrate(engine)
    finally:
        await engine.dispose()
    server = _EmbeddedServer(
        uvicorn.Config(
            create_app(settings, temporal=temporal, codec_keys=codec_keys),
            host=host or settings.api_host,
            port=settings.api_port if port is None else port,
            log_config=None,
            access_log=False,
            lifespan="on",
        )
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            serving.result()  # raises what stopped it (e.g. the port is taken)
            raise OSError("the API server stopped while starting")
        await asyncio.sleep(0.02)
    bound_host, bound_port = server.servers[0].sockets[0].getsockname()[:2]
    try:
        yield f"http://{bound_host}:{bound_port}"
    finally:
        server.should_exit = True
        await serving
