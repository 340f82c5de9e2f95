"""What operators see in the Temporal Web UI for a journey waiting on its next day.

Runs the dev server with its Web UI, the real worker and a welcome series on a
slow clock (a day lasts an hour, so the journey sits on its Day-1 timer), then
reads the workflow's page in headless Chromium driven by Playwright: the static
summary, the current details the journey publishes (`Journey._publish_progress`)
and the summary of the pending Day-1 timer, all on the "User Metadata" tab.

Every payload is encrypted (the payload codec): the UI reads them through the
real gateway's codec endpoint, as `journeys dev` sets it up. Before erasure it
shows the journey's decoded input; after, the codec's notice saying why
it cannot; with no codec endpoint, only ciphertext.

The browser is Debian's `chromium` (`.ci/run` installs it; Playwright downloads
no browser). Without it the test is skipped. Screenshots of the pages are kept in
`test-artifacts/operator-ui/` (also when an assertion fails).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Locator, Page, async_playwright, expect
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client, WorkflowHandle, WorkflowQueryFailedError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from models.contacts import ConsentUpdate, ContactProfile
from models.db import create_engine
from models.journeys import JourneyInput, JourneyState
from models.search_attributes import ALL_SEARCH_ATTRIBUTES
from models.settings import Settings
from runtime.codec import ERASED_TEXT, encrypting_data_converter
from runtime.keys import KeyStore
from runtime.temporal import SERVICE_RETRY, connect
from starter.api.server import running_api
from starter.dev.toolchain import start_dev_server
from starter.services.operations import enroll, forget_contact, upsert_contact
from tests.gateway import gateway_settings
from worker import running_worker
from workflows.journeys.welcome_series import WelcomeSeries

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="needs Debian's chromium for the Temporal UI check "
    "(apt-get install chromium; .ci/run installs it)",
)

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "operator-ui"
SCREENSHOT = ARTIFACTS / "welcome-series.png"
ERASURE_SCREENSHOTS = {
    "before": ARTIFACTS / "input-before-erasure.png",
    "after": ARTIFACTS / "input-after-erasure.png",
}
CIPHERTEXT_SCREENSHOT = ARTIFACTS / "input-without-codec-endpoint.png"
CONTACT_ID = "ui-ada"
"""Each test enrols a contact of its own: an erased contact's id stays shredded."""
DAY_SECONDS = 3600
ENCRYPTED_ENCODING_B64 = "YmluYXJ5L2VuY3J5cHRlZA=="
"""`binary/encrypted`, as the UI shows an encrypted payload's metadata (base64)."""
UI_TIMEOUT_MS = 30_000
"""The UI is a single-page app that loads its data after the page: wait for text, generously."""


@dataclass(frozen=True)
class Parked:
    """A welcome series waiting for its Day 1: its ids and state."""

    workflow_id: str
    run_id: str
    state: JourneyState


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@asynccontextmanager
async def _serving_ui(
    settings: Settings, keys: KeyStore, *, codec_endpoint: bool
) -> AsyncIterator[tuple[WorkflowEnvironment, str]]:
    """A dev server with its Web UI; yields it and the UI's URL.

    With `codec_endpoint`, as `journeys dev` starts it: the real gateway on
    loopback serves `/codec` (CORS for the UI's origin, loopback callers need
    no key) and the UI decodes payloads through it (`--ui-codec-endpoint`).
    """
    temporal_port, ui_port = _free_port(), _free_port()
    ui_url = f"http://127.0.0.1:{ui_port}"
    gateway = gateway_settings(
        settings, codec_cors_origins=[ui_url], codec_loopback_without_key=True
    )

    async def temporal() -> Client:
        address = f"127.0.0.1:{temporal_port}"
        return await connect(target_host=address, lazy=True, retry=SERVICE_RETRY, keys=keys)

    async with running_api(
        gateway, host="127.0.0.1", port=0, temporal=temporal, codec_keys=keys
    ) as api_url:
        env = await start_dev_server(
            port=temporal_port,
            ui=True,
            ui_port=ui_port,
            search_attributes=ALL_SEARCH_ATTRIBUTES,
            data_converter=encrypting_data_converter(keys),
            dev_server_extra_args=(
                ["--ui-codec-endpoint", f"{api_url}/codec"] if codec_endpoint else []
            ),
        )
        try:
            await _wait_until_serving(ui_url)
            yield env, ui_url
        finally:
            await env.shutdown()


@pytest.fixture
async def ui_env(
    settings: Settings, codec_keys: KeyStore
) -> AsyncIterator[tuple[WorkflowEnvironment, str]]:
    """A dev server whose UI decodes payloads through the gateway (see `_serving_ui`)."""
    async with _serving_ui(settings, codec_keys, codec_endpoint=True) as served:
        yield served


@pytest.fixture
async def ui_env_without_codec(
    settings: Settings, codec_keys: KeyStore
) -> AsyncIterator[tuple[WorkflowEnvironment, str]]:
    """A dev server whose UI has no codec endpoint: it shows payloads as stored."""
    async with _serving_ui(settings, codec_keys, codec_endpoint=False) as served:
        yield served


async def _wait_until_serving(url: str) -> None:
    async with httpx.AsyncClient(timeout=2) as http:
        for _ in range(150):
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(url)).status_code == 200:
                    return
            await asyncio.sleep(0.2)
    raise AssertionError(f"the Temporal UI did not answer on {url}")


async def _waiting_for_day_1(handle: WorkflowHandle[Any, Any]) -> JourneyState:
    """The journey's state once Day 0 was sent and it waits for Day 1."""
    while True:
        with contextlib.suppress(RPCError, WorkflowQueryFailedError):  # not started yet
            state: JourneyState = await handle.query("state", result_type=JourneyState)
            if state.messages_sent == 1 and state.next_step == "day1" and state.next_wake_at:
                return state
        await asyncio.sleep(0.1)


def _heading(page: Page, name: str) -> Locator:
    return page.get_by_role("heading", name=name, exact=True)


def _rendered(label: str) -> str:
    """`label` as the UI's markdown renderer shows it (typographic apostrophes)."""
    return label.replace("'", "\u2019")


async def _park_on_day_1(client: Client, settings: Settings, contact_id: str) -> Parked:
    """Add the contact and enrol it in the welcome series on a slow clock (a day is an
    hour); return once Day 0 was sent and the journey waits for Day 1."""
    engine = create_engine(settings.database_url)
    try:
        await upsert_contact(
            engine,
            ContactProfile(
                id=contact_id,
                email=f"{contact_id}@example.com",
                first_name="Ada",
                email_consent=ConsentUpdate(granted=True, source="test:operator-ui"),
            ),
            key=settings.suppression_key(),
        )
        workflow_id = await enroll(
            client,
            engine,
            "welcome-series",
            JourneyInput(contact_id=contact_id, day_seconds=DAY_SECONDS),
            task_queue=settings.task_queue,
        )
    finally:
        await engine.dispose()
    handle = client.get_workflow_handle(workflow_id)
    state = await asyncio.wait_for(_waiting_for_day_1(handle), timeout=30)
    return Parked(workflow_id, (await handle.describe()).run_id, state)


@asynccontextmanager
async def _workflow_page(ui_url: str, parked: Parked, screenshot: Path) -> AsyncIterator[Page]:
    """The journey's workflow page in headless Chromium, its heading shown.

    A screenshot of the page as the block leaves it goes to `screenshot` (also
    when an assertion fails).
    """
    assert CHROMIUM is not None
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    screenshot.unlink(missing_ok=True)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(UI_TIMEOUT_MS)
            try:
                # The UI polls the server all the time: the network is never idle.
                await page.goto(
                    f"{ui_url}/namespaces/default/workflows/{parked.workflow_id}/{parked.run_id}",
                    wait_until="domcontentloaded",
                )
                await expect(
                    page.get_by_role("heading", name=parked.workflow_id, exact=True, level=1)
                ).to_be_visible(timeout=UI_TIMEOUT_MS)
                yield page
            finally:
                await _screenshot(page, screenshot)
        finally:
            await browser.close()
    assert screenshot.is_file() and screenshot.stat().st_size > 0, screenshot


async def _screenshot(page: Page, path: Path) -> None:
    with contextlib.suppress(PlaywrightError):
        await page.screenshot(path=path, full_page=True)


def _payload_box(page: Page, name: str) -> Locator:
    """The workflow's `Input` or `Result` as the page shows it (the code editor under it)."""
    other = "Result" if name == "Input" else "Input"
    return (
        page.locator("div")
        .filter(has=_heading(page, name))
        .filter(has_not=_heading(page, other))
        .get_by_role("textbox")
        .first
    )


async def test_operator_sees_summary_progress_and_pending_timer(
    ui_env: tuple[WorkflowEnvironment, str], settings: Settings
) -> None:
    env, ui_url = ui_env
    async with running_worker(env.client, settings):
        parked = await _park_on_day_1(env.client, settings, CONTACT_ID)
        state = parked.state
        assert state.next_wake_at is not None
        day0, day1, *later = WelcomeSeries.plan
        async with _workflow_page(ui_url, parked, SCREENSHOT) as page:
            await page.get_by_role("tab", name="User Metadata").click()

            # Summary and Current Details are markdown, rendered in an
            # <iframe title="output"> each, under their heading.
            summary = (
                page.locator("div")
                .filter(has=_heading(page, "Summary"))
                .filter(has_not=_heading(page, "Details"))
                .filter(has=page.locator("iframe"))
                .locator("iframe[title='output']")
                .content_frame
            )
            await expect(summary.locator("body")).to_have_text(
                f"Welcome series for contact {CONTACT_ID}", timeout=UI_TIMEOUT_MS
            )

            details = (
                page.locator("div")
                .filter(has=_heading(page, "Current Details"))
                .filter(has_not=_heading(page, "Summary"))
                .filter(has=page.locator("iframe"))
                .locator("iframe[title='output']")
                .content_frame
            )
            await expect(details.locator("body")).to_contain_text(
                f"Welcome series · contact {CONTACT_ID} · running", timeout=UI_TIMEOUT_MS
            )
            await expect(details.locator("body")).to_contain_text(
                f"Next: {day1.label} at {state.next_wake_at:%Y-%m-%d %H:%M:%S} UTC",
                timeout=UI_TIMEOUT_MS,
            )
            plan = details.locator("li")
            await expect(plan).to_have_text(
                [
                    # enrolled directly, never drawn for the subject test: control, shown
                    f"✅ {day0.label} · A/B welcome-subject: arm a (sent)",
                    f"⏳ {day1.label} (next)",
                    *(f"▫️ {_rendered(step.label)}" for step in later),
                ],
                timeout=UI_TIMEOUT_MS,
            )
            # What is done and what comes next show without scrolling.
            for line in (plan.nth(0), plan.nth(1)):
                await expect(line).to_be_in_viewport(ratio=1, timeout=UI_TIMEOUT_MS)

            # "Events with Metadata" lists the pending Day-1 timer by its summary.
            timer = (
                page.locator("div")
                .filter(has=page.get_by_text("Timer", exact=True))
                .filter(has=page.get_by_text(day1.label, exact=True))
                .filter(has=page.get_by_text("Started", exact=True))
                .filter(has_not=page.get_by_text("Activity", exact=True))
            )
            await expect(timer).to_be_visible(timeout=UI_TIMEOUT_MS)


async def test_ui_shows_the_decoded_input_until_erasure_then_says_why_it_cannot(
    ui_env: tuple[WorkflowEnvironment, str], settings: Settings, engine: AsyncEngine
) -> None:
    """Through the gateway's codec endpoint the UI decrypts the journey's input; once the
    contact is erased (its data key destroyed) it shows the codec's notice instead."""
    env, ui_url = ui_env
    contact_id = f"{CONTACT_ID}-erased"
    async with running_worker(env.client, settings):
        parked = await _park_on_day_1(env.client, settings, contact_id)
        async with _workflow_page(ui_url, parked, ERASURE_SCREENSHOTS["after"]) as page:
            given = _payload_box(page, "Input")
            await expect(given).to_contain_text(
                f'"contact_id": "{contact_id}"', timeout=UI_TIMEOUT_MS
            )
            await expect(given).to_contain_text(f'"day_seconds": {DAY_SECONDS}')
            await _screenshot(page, ERASURE_SCREENSHOTS["before"])

            assert await forget_contact(
                env.client, engine, contact_id, task_queue=settings.task_queue, wait=60
            )
            await page.reload(wait_until="domcontentloaded")
            for name in ("Input", "Result"):  # the journey exited when its contact was erased
                await expect(_payload_box(page, name)).to_have_text(
                    f'"{ERASED_TEXT}"', timeout=UI_TIMEOUT_MS
                )
            await expect(page.locator("body")).not_to_contain_text("day_seconds")


async def test_without_the_codec_endpoint_the_ui_shows_only_ciphertext(
    ui_env_without_codec: tuple[WorkflowEnvironment, str], settings: Settings
) -> None:
    env, ui_url = ui_env_without_codec
    async with running_worker(env.client, settings):
        parked = await _park_on_day_1(env.client, settings, f"{CONTACT_ID}-sealed")
        async with _workflow_page(ui_url, parked, CIPHERTEXT_SCREENSHOT) as page:
            given = _payload_box(page, "Input")
            await expect(given).to_contain_text(ENCRYPTED_ENCODING_B64, timeout=UI_TIMEOUT_MS)
            await expect(given).not_to_contain_text("day_seconds")
