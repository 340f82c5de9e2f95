"""What operators see in the Temporal Web UI for a journey waiting on its next day.

Runs the dev server with its Web UI, the real worker and a welcome series on a
slow clock (a day lasts an hour, so the journey sits on its Day-1 timer), then
reads the workflow's page in headless Chromium driven by Playwright: the static
summary, the current details the journey publishes (`Journey._publish_progress`)
and the summary of the pending Day-1 timer, all on the "User Metadata" tab.

The browser is Debian's `chromium` (`.ci/run` installs it; Playwright downloads
no browser). Without it the test is skipped. A screenshot of the page is kept in
`test-artifacts/operator-ui/` (also when an assertion fails).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Locator, Page, async_playwright, expect
from temporalio.client import WorkflowHandle, WorkflowQueryFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from models.contacts import ConsentUpdate, ContactProfile
from models.db import create_engine
from models.journeys import JourneyInput, JourneyState
from models.search_attributes import ALL_SEARCH_ATTRIBUTES
from models.settings import Settings
from starter.operations import enroll, upsert_contact
from starter.toolchain import start_dev_server
from worker import running_worker
from workflows.welcome_series import WelcomeSeries

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="needs Debian's chromium for the Temporal UI check "
    "(apt-get install chromium; .ci/run installs it)",
)

SCREENSHOT = (
    Path(__file__).resolve().parents[1] / "test-artifacts" / "operator-ui" / "welcome-series.png"
)
CONTACT_ID = "ui-ada"
UI_TIMEOUT_MS = 30_000
"""The UI is a single-page app that loads its data after the page: wait for text, generously."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
async def ui_env() -> AsyncIterator[tuple[WorkflowEnvironment, str]]:
    """A dev server with its Web UI (as `journeys dev` starts it); yields it and the UI's URL."""
    ui_port = _free_port()
    env = await start_dev_server(
        ui=True,
        ui_port=ui_port,
        search_attributes=ALL_SEARCH_ATTRIBUTES,
        data_converter=pydantic_data_converter,
    )
    ui_url = f"http://127.0.0.1:{ui_port}"
    try:
        await _wait_until_serving(ui_url)
        yield env, ui_url
    finally:
        await env.shutdown()


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


async def test_operator_sees_summary_progress_and_pending_timer(
    ui_env: tuple[WorkflowEnvironment, str], settings: Settings
) -> None:
    env, ui_url = ui_env
    assert CHROMIUM is not None
    async with running_worker(env.client, settings):
        engine = create_engine(settings.database_url)
        try:
            await upsert_contact(
                engine,
                ContactProfile(
                    id=CONTACT_ID,
                    email="ada@example.com",
                    first_name="Ada",
                    email_consent=ConsentUpdate(granted=True, source="test:operator-ui"),
                ),
                key=settings.suppression_key(),
            )
            workflow_id = await enroll(
                env.client,
                engine,
                "welcome-series",
                JourneyInput(contact_id=CONTACT_ID, day_seconds=3600),
                task_queue=settings.task_queue,
            )
        finally:
            await engine.dispose()
        handle = env.client.get_workflow_handle(workflow_id)
        state = await asyncio.wait_for(_waiting_for_day_1(handle), timeout=30)
        assert state.next_wake_at is not None
        run_id = (await handle.describe()).run_id

        day0, day1, *later = WelcomeSeries.plan
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        SCREENSHOT.unlink(missing_ok=True)
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
                        f"{ui_url}/namespaces/default/workflows/{workflow_id}/{run_id}",
                        wait_until="domcontentloaded",
                    )
                    await expect(
                        page.get_by_role("heading", name=workflow_id, exact=True, level=1)
                    ).to_be_visible(timeout=UI_TIMEOUT_MS)
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
                            f"✅ {day0.label} (sent)",
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
                finally:
                    with contextlib.suppress(PlaywrightError):
                        await page.screenshot(path=SCREENSHOT, full_page=True)
            finally:
                await browser.close()

    assert SCREENSHOT.is_file() and SCREENSHOT.stat().st_size > 0, SCREENSHOT
