"""`journeys dev` (what `make run` calls): the local stack with a demo, in the foreground.

Starts the Temporal dev server (Web UI on :8233, state in `.data/temporal.db`,
custom search attributes registered), applies database migrations, runs the
worker and the HTTP gateway (:8000, with a local API key kept in
`.data/api-key`; the UI decodes payloads through its codec endpoint, which
answers loopback callers without a key here), enrols demo contacts into the
journeys on an accelerated clock, and sends one demo lead's behaviour events through its contact
workflow. Ctrl-C stops everything. Running it again reuses the saved state:
demo contacts are updated in place, never enrolled twice.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import typer
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from models.contacts import ConsentUpdate, ContactProfile
from models.db import create_engine
from models.events import BehaviorEvent
from models.journeys import JourneyInput
from models.renewals import RenewalInput
from models.search_attributes import ALL_SEARCH_ATTRIBUTES
from models.settings import ApiKey, Settings
from runtime.codec import encrypting_data_converter
from runtime.keys import key_store
from runtime.shutdown import wait_for_shutdown_signal
from runtime.temporal import SERVICE_RETRY, connect
from starter.dev.defaults import DEMO_DAY_SECONDS, TEMPORAL_PORT, UI_PORT
from starter.dev.toolchain import start_dev_server
from starter.services.intake import accept_events
from starter.services.operations import OperationError, enroll, upsert_contact

DATA_DIR = Path(".data")
LOCAL_KEY_FILE = DATA_DIR / "api-key"

_DEMO_CONSENT = ConsentUpdate(granted=True, source="demo:make-run")
DEMO_CONTACTS = (
    ContactProfile(
        id="demo-ada",
        email="ada@example.com",
        first_name="Ada",
        company="Analytical Engines",
        timezone="Europe/London",
        email_consent=_DEMO_CONSENT,
        tags=["src_leadmagnet_email-guide"],
    ),
    ContactProfile(
        id="demo-grace",
        email="grace@example.com",
        phone="+12125550142",
        first_name="Grace",
        timezone="America/New_York",
        email_consent=_DEMO_CONSENT,
        sms_consent=_DEMO_CONSENT,
        tags=["src_webinar_2026-q4-launch"],
    ),
    ContactProfile(
        id="demo-sam",
        email="sam@example.com",
        timezone="Asia/Tokyo",
        email_consent=_DEMO_CONSENT,
        tags=["src_leadmagnet_email-guide"],
    ),
)
DEMO_LEAD = ContactProfile(
    id="demo-lin",
    email="lin@example.com",
    first_name="Lin",
    company="Difference Engines",
    timezone="Europe/Berlin",
    email_consent=_DEMO_CONSENT,
    attributes={"region": "EMEA", "job_title": "VP Marketing"},
)
DEMO_LEAD_EVENTS: tuple[tuple[str, dict[str, str]], ...] = (
    ("subscribed", {"source": "leadmagnet_email-guide"}),
    ("content_downloaded", {"topic": "email-marketing"}),
    ("pricing_page_viewed", {"utm_source": "newsletter", "utm_campaign": "q4-launch"}),
    ("demo_requested", {}),
)
"""What demo-lin does, through the contact workflow: +5, +10, +25 = 40 (MQL). The
trigger rules start the welcome series and the pricing-page follow-up; reaching
MQL hands Lin to sales (lead-sla)."""
DEMO_CUSTOMER = ContactProfile(
    id="demo-noor",
    email="noor@example.com",
    first_name="Noor",
    company="Jacquard Looms",
    timezone="Asia/Dubai",
    email_consent=_DEMO_CONSENT,
)
DEMO_CUSTOMER_EVENTS: tuple[tuple[str, dict[str, str]], ...] = (
    ("purchased", {"plan": "growth"}),
    ("feature_used", {"feature": "contact-import"}),
    ("feature_used", {"feature": "campaign-sent"}),
)
"""What demo-noor does: a purchase starts onboarding, and two of the three key features
(onboarding.toml) are adopted at once, so its education email teaches the third."""


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def local_api_key() -> ApiKey:
    """The gateway key of this checkout: made once, kept in `.data/api-key` (mode 600)."""
    if not LOCAL_KEY_FILE.exists():
        LOCAL_KEY_FILE.touch(mode=0o600)
        LOCAL_KEY_FILE.write_text(secrets.token_urlsafe(24))
    return ApiKey(name="local", key=SecretStr(LOCAL_KEY_FILE.read_text().strip()))


def demo_enrolments(day_seconds: int) -> list[tuple[str, JourneyInput]]:
    """What the demo starts: every contact in the welcome series, plus one each
    in pricing-abandon and renewal-countdown (renewal 95 days out: at 15 s a
    day its reminders come every few minutes and it lapses in about 24)."""
    welcome = [
        ("welcome-series", JourneyInput(contact_id=profile.id, day_seconds=day_seconds))
        for profile in DEMO_CONTACTS
    ]
    return [
        *welcome,
        (
            "pricing-abandon",
            JourneyInput(contact_id="demo-grace", day_seconds=day_seconds, reentry_days=365),
        ),
        (
            "renewal-countdown",
            RenewalInput(
                contact_id="demo-ada",
                day_seconds=day_seconds,
                subscription_id="demo-sub",
                renewal_date=datetime.now(UTC) + timedelta(days=95),
            ),
        ),
    ]


DEMO_EVENT_STREAMS = (
    (DEMO_LEAD, DEMO_LEAD_EVENTS, f"score 40, MQL → sales hand-off lead-sla-{DEMO_LEAD.id}"),
    (
        DEMO_CUSTOMER,
        DEMO_CUSTOMER_EVENTS,
        f"purchase → onboarding-{DEMO_CUSTOMER.id}, 2 of 3 key features adopted",
    ),
)
"""The demo contacts whose events go through their contact workflow, with what they show."""


async def _send_demo_events(
    client: Client,
    engine: AsyncEngine,
    settings: Settings,
    contact_id: str,
    demo_events: tuple[tuple[str, dict[str, str]], ...],
    *,
    day_seconds: int,
) -> str:
    """Send a demo contact's events through its contact workflow, one by one as a service
    would (the same ids again on a restart); returns the contact workflow's id."""
    workflow_id = ""
    for number, (event_type, properties) in enumerate(demo_events, start=1):
        event = BehaviorEvent(
            event_id=f"{contact_id}-demo-{number}",
            contact_id=contact_id,
            type=event_type,
            occurred_at=datetime.now(UTC),
            properties=properties,
        )
        [result] = await accept_events(
            client,
            engine,
            [event],
            task_queue=settings.task_queue,
            day_seconds=day_seconds,
            suppression_key=settings.suppression_key(),
        )
        workflow_id = result.workflow_id
    return workflow_id


async def run_demo(client: Client, settings: Settings, *, day_seconds: int) -> None:
    """Upsert the demo contacts, start the demo journeys and send demo-lin's and demo-noor's
    events (once)."""
    engine = create_engine(settings.database_url)
    try:
        for profile in (*DEMO_CONTACTS, DEMO_LEAD, DEMO_CUSTOMER):
            await upsert_contact(engine, profile, key=settings.suppression_key())
        for journey, journey_input in demo_enrolments(day_seconds):
            try:
                workflow_id = await enroll(
                    client, engine, journey, journey_input, task_queue=settings.task_queue
                )
                typer.echo(f"  enrolled {journey_input.contact_id} → {workflow_id}")
            except OperationError as error:
                typer.echo(f"  {error} (kept from an earlier run)")
        for profile, demo_events, shows in DEMO_EVENT_STREAMS:
            workflow_id = await _send_demo_events(
                client, engine, settings, profile.id, demo_events, day_seconds=day_seconds
            )
            typer.echo(f"  {profile.id}: {len(demo_events)} events → {workflow_id} ({shows})")
    finally:
        await engine.dispose()


async def run_dev(
    settings: Settings,
    *,
    day_seconds: int = DEMO_DAY_SECONDS,
    temporal_port: int = TEMPORAL_PORT,
    ui_port: int = UI_PORT,
) -> None:
    """Run the local stack until Ctrl-C (see the module docstring)."""
    from starter.api.server import running_api  # FastAPI loads only for the commands that serve it
    from worker import running_worker  # the journeys load only for the command that runs them

    busy = [port for port in (temporal_port, ui_port, settings.api_port) if _port_in_use(port)]
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
            typer.echo(
                "Demo: welcome series for three sample contacts, a pricing-page follow-up, "
                f"a renewal countdown and onboarding (1 journey day = {day_seconds} s)"
            )
            await run_demo(env.client, settings, day_seconds=day_seconds)
            typer.echo(
                "\n"
                f"  Temporal UI:    http://localhost:{ui_port}/namespaces/default/workflows\n"
                f"  Sent messages:  {settings.outbox_dir.resolve()}/  (one .eml per message)\n"
                "  Message log:    .venv/bin/journeys messages --json\n"
                "  Journey status: .venv/bin/journeys status demo-ada\n"
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
