"""`journeys dev` (what `make run` calls): the local stack with a demo, in the foreground.

Starts the Temporal dev server (Web UI on :8233, state in `.data/temporal.db`,
custom search attributes registered), applies database migrations, runs the
worker and the HTTP gateway (:8000, with a local API key kept in
`.data/api-key`; the UI decodes payloads through its codec endpoint, which
answers loopback callers without a key here), and runs the demo
(`starter/dev/demo.py`): sample contacts in every journey on an accelerated
clock, some enrolled, the others started by their behaviour events. Ctrl-C
stops everything. Running it again reuses the saved state: demo contacts are
updated in place, never enrolled twice.
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import typer
from pydantic import SecretStr
from temporalio.client import Client

from models.search_attributes import ALL_SEARCH_ATTRIBUTES
from models.settings import ApiKey, Settings
from runtime.codec import encrypting_data_converter
from runtime.keys import key_store
from runtime.shutdown import wait_for_shutdown_signal
from runtime.temporal import SERVICE_RETRY, connect
from starter.dev import demo
from starter.dev.defaults import (
    DEMO_DAY_SECONDS,
    DEMO_DELIVERABILITY_CHECK_SECONDS,
    DEMO_SEGMENT_SWEEP_SECONDS,
    TEMPORAL_PORT,
    UI_PORT,
)
from starter.dev.ports import port_in_use
from starter.dev.toolchain import start_dev_server
from starter.services.operations import OperationError

DATA_DIR = Path(".data")
LOCAL_KEY_FILE = DATA_DIR / "api-key"


def local_api_key() -> ApiKey:
    """The gateway key of this checkout: made once, kept in `.data/api-key` (mode 600)."""
    if not LOCAL_KEY_FILE.exists():
        LOCAL_KEY_FILE.touch(mode=0o600)
        LOCAL_KEY_FILE.write_text(secrets.token_urlsafe(24))
    return ApiKey(name="local", key=SecretStr(LOCAL_KEY_FILE.read_text().strip()))


async def run_dev(
    settings: Settings,
    *,
    day_seconds: int = DEMO_DAY_SECONDS,
    temporal_port: int = TEMPORAL_PORT,
    ui_port: int = UI_PORT,
) -> None:
    """Run the local stack until Ctrl-C (see the module docstring)."""
    from starter.api.server import running_api  # FastAPI loads only for the commands that serve it
    from worker import (
        running_worker,
        schedule_upkeep,
        sweep_segments_once,
    )  # the journeys load here only

    busy = [port for port in (temporal_port, ui_port, settings.api_port) if port_in_use(port)]
    if busy:
        raise OperationError(
            f"port(s) {', '.join(map(str, busy))} already in use: is another Temporal server "
            "or `make run` running? Stop it first."
        )
    DATA_DIR.mkdir(exist_ok=True)
    key = local_api_key()
    ui_origins = [f"http://localhost:{ui_port}", f"http://127.0.0.1:{ui_port}"]
    settings = settings.model_copy(
        update={
            "api_keys": [*settings.api_keys, key],
            "day_seconds": day_seconds,
            "allow_accelerated_clock": True,
            "codec_cors_origins": [*settings.codec_cors_origins, *ui_origins],
            "codec_loopback_without_key": True,  # the dev UI sends no credentials
            "segment_sweep_seconds": DEMO_SEGMENT_SWEEP_SECONDS,
            "deliverability_check_seconds": DEMO_DELIVERABILITY_CHECK_SECONDS,
        }
    )
    keys = key_store(settings)
    shutdown = asyncio.create_task(wait_for_shutdown_signal())
    typer.echo("Starting the Temporal dev server…")
    env = await start_dev_server(
        port=temporal_port,
        ui=True,
        ui_port=ui_port,
        search_attributes=ALL_SEARCH_ATTRIBUTES,
        dev_server_database_filename=str(DATA_DIR / "temporal.db"),
        data_converter=encrypting_data_converter(keys),
        dev_server_extra_args=[
            "--ui-codec-endpoint",
            f"http://{settings.api_host}:{settings.api_port}/codec",
        ],
    )
    address = f"127.0.0.1:{temporal_port}"

    async def gateway_client() -> Client:
        return await connect(target_host=address, lazy=True, retry=SERVICE_RETRY, keys=keys)

    try:
        async with (
            running_worker(env.client, settings),
            running_api(settings, temporal=gateway_client) as api_url,
        ):
            # New segments are evaluated (silently) before the demo's events arrive, so an
            # entry the demo makes (demo-fay's) is an entry, not an existing membership.
            await sweep_segments_once(env.client, settings)
            await schedule_upkeep(env.client, settings)
            typer.echo(f"Demo: {demo.SUMMARY} (1 journey day = {day_seconds} s)")
            await demo.run_demo(env.client, settings, day_seconds=day_seconds)
            typer.echo(
                "\n"
                f"  Temporal UI:    http://localhost:{ui_port}/namespaces/default/workflows\n"
                f"  Sent messages:  {settings.outbox_dir.resolve()}/  (one .eml per message)\n"
                "  Message log:    .venv/bin/journeys messages --json\n"
                "  Journey status: .venv/bin/journeys status demo-ada\n"
                "  A/B test:       .venv/bin/journeys experiments welcome-subject\n"
                f"  HTTP API:       {api_url}/docs\n"
                f"  Local API key:  {key.key.get_secret_value()}  (kept in {LOCAL_KEY_FILE})\n"
                f"  Send an event:  curl -X POST {api_url}/v1/events "
                '-H "Authorization: Bearer $(cat .data/api-key)" '
                "-H 'Content-Type: application/json' "
                """-d '{"contact_id": "demo-sam", "type": "pricing_page_viewed"}'\n"""
                "\nPress Ctrl-C to stop.\n"
            )
            await shutdown
    finally:
        shutdown.cancel()
        await env.shutdown()
        typer.echo("Stopped the worker and the Temporal dev server.")
