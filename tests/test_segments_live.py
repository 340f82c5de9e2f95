"""Segments kept current on the dev server: as events arrive (the contact workflow), as time
passes and as profiles change (the segment sweep on its Temporal Schedule), and the
journey that follows a segment started on entering it and ended on leaving it. Through
the real gateway, worker and CLI."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from temporalio.testing import WorkflowEnvironment

from models.db import session_factory
from models.events import SEGMENT_LEFT
from models.journeys import JourneyStatus
from models.settings import Settings
from models.tables import MessageLog, SegmentChange, SegmentMember
from tests.cli import cli_environment, journeys
from tests.gateway import Gateway, gateway_settings, serving_gateway
from tests.segment_kit import segments_file_with
from tests.test_api import journey_state, new_id, put_contact
from worker import schedule_segment_sweep
from workflows.journeys.first_purchase import SEGMENT as FIRST_PURCHASE_SEGMENT
from workflows.segment_sweep import SEGMENT_SWEEP

HOT = "hot-pricing-visitors"
PRO = '[segments.pro-plan]\ntitle = "On the pro plan"\nattribute = "plan"\nequals = "pro"\n'


@pytest.fixture
async def gateway(
    dev_env: WorkflowEnvironment, settings: Settings, tmp_path: Path
) -> AsyncIterator[Gateway]:
    """The gateway and the worker, with a segment on an attribute and a sweep every second."""
    changed = gateway_settings(
        settings, segments_file=segments_file_with(tmp_path, PRO), segment_sweep_seconds=1
    )
    async with serving_gateway(dev_env.client, changed) as served:
        yield served


@pytest.fixture
async def start_sweep(
    dev_env: WorkflowEnvironment, gateway: Gateway
) -> AsyncIterator[Callable[[], Awaitable[None]]]:
    """Start the segment sweep's schedule when the test says so; delete it after."""
    client, started = dev_env.client, False

    async def start() -> None:
        nonlocal started
        await schedule_segment_sweep(client, gateway.settings)
        started = True

    yield start
    if started:
        await client.get_schedule_handle(SEGMENT_SWEEP).delete()


async def _event(gateway: Gateway, contact_id: str, event_type: str, at: datetime) -> None:
    response = await gateway.http.post(
        "/v1/events",
        json={
            "event_id": f"{event_type}-{at.timestamp()}",
            "contact_id": contact_id,
            "type": event_type,
            "occurred_at": at.isoformat(),
        },
    )
    assert response.status_code == 202, response.text


async def _changes(engine: AsyncEngine, contact_id: str, segment: str) -> list[SegmentChange]:
    async with session_factory(engine)() as session:
        rows = await session.exec(
            select(SegmentChange)
            .where(col(SegmentChange.contact_id) == contact_id, SegmentChange.segment == segment)
            .order_by(col(SegmentChange.id))
        )
        return list(rows.all())


async def _until_changes(
    engine: AsyncEngine, contact_id: str, segment: str, wanted: list[str], within: float = 60
) -> list[SegmentChange]:
    async with asyncio.timeout(within):
        while True:
            found = await _changes(engine, contact_id, segment)
            if [change.change for change in found] == wanted:
                return found
            await asyncio.sleep(0.2)


async def _is_member(engine: AsyncEngine, segment: str, contact_id: str) -> bool:
    async with session_factory(engine)() as session:
        return await session.get(SegmentMember, (segment, contact_id)) is not None


async def test_a_segment_follows_events_as_they_arrive_and_time_as_it_passes(
    gateway: Gateway, engine: AsyncEngine, start_sweep: Callable[[], Awaitable[None]]
) -> None:
    contact_id = new_id("seg")
    await put_contact(gateway, contact_id)
    now = datetime.now(UTC)
    first = now - timedelta(days=14) + timedelta(seconds=8)  # leaves the window in 8 s
    await _event(gateway, contact_id, "pricing_page_viewed", first)
    await _event(gateway, contact_id, "pricing_page_viewed", now)

    # No sweep yet: the contact workflow itself put the contact in, after its events.
    (entered,) = await _until_changes(engine, contact_id, HOT, ["entered"])
    assert entered.occurred_at - now < timedelta(seconds=8)

    await start_sweep()  # now time may pass: the first visit ages out of the 14 days
    _, left = await _until_changes(engine, contact_id, HOT, ["entered", "left"], within=30)
    assert left.occurred_at >= first + timedelta(days=14)
    assert not await _is_member(engine, HOT, contact_id)


async def test_a_profile_change_reaches_the_segment_through_the_sweep_and_the_cli_lists_it(
    gateway: Gateway,
    engine: AsyncEngine,
    dev_env: WorkflowEnvironment,
    start_sweep: Callable[[], Awaitable[None]],
) -> None:
    contact_id = new_id("pro")
    await put_contact(gateway, contact_id)
    await start_sweep()
    await put_contact(gateway, contact_id, attributes={"plan": "pro"})
    await _until_changes(engine, contact_id, "pro-plan", ["entered"])
    await put_contact(gateway, contact_id, attributes={"plan": "team"})
    await _until_changes(engine, contact_id, "pro-plan", ["entered", "left"])

    response = await gateway.http.get("/v1/segments/pro-plan")
    assert response.status_code == 200, response.text
    assert response.json()["members"] == 0
    env = cli_environment(gateway.settings, dev_env.client.service_client.config.target_host)
    listed = await journeys("segments", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    by_name = {segment["name"]: segment for segment in json.loads(listed.stdout)}
    assert by_name["pro-plan"]["evaluated"] is True
    assert by_name["email-subscribers"]["members"] >= 1


async def test_first_purchase_starts_on_entering_its_segment_and_ends_on_leaving_it(
    gateway: Gateway,
    engine: AsyncEngine,
    dev_env: WorkflowEnvironment,
    start_sweep: Callable[[], Awaitable[None]],
) -> None:
    """Subscribed 7 days less 5 s ago: in the segment 5 s later, with no event (the sweep);
    a new sign-up takes the contact out again (the contact workflow)."""
    contact_id = new_id("fp")
    await put_contact(gateway, contact_id, first_name="Flo")
    await _event(
        gateway, contact_id, "subscribed", datetime.now(UTC) - timedelta(days=7, seconds=-5)
    )
    await start_sweep()
    await _until_changes(engine, contact_id, FIRST_PURCHASE_SEGMENT, ["entered"], within=30)
    workflow_id = f"first-purchase-{contact_id}"
    await journey_state(dev_env.client, workflow_id, lambda state: state.messages_sent == 1)

    await _event(gateway, contact_id, "subscribed", datetime.now(UTC))
    state = await journey_state(dev_env.client, workflow_id, lambda s: s.status != "running")
    assert (state.status, state.exit_reason) == (JourneyStatus.EXITED, SEGMENT_LEFT)
    await _until_changes(engine, contact_id, FIRST_PURCHASE_SEGMENT, ["entered", "left"])
    async with session_factory(engine)() as session:
        steps = (
            await session.exec(
                select(MessageLog.step).where(
                    col(MessageLog.contact_id) == contact_id,
                    MessageLog.journey == "first-purchase",
                )
            )
        ).all()
    assert list(steps) == ["offer"]


async def test_a_segment_defined_through_the_api_is_evaluated_by_the_sweep_and_removed(
    gateway: Gateway, engine: AsyncEngine, start_sweep: Callable[[], Awaitable[None]]
) -> None:
    contact_id = new_id("vip")
    await put_contact(gateway, contact_id, tags=["vip"])
    http = gateway.http
    rule = {"all": [{"has_tag": "vip"}, {"consent": "email"}]}

    preview = await http.post("/v1/segments:preview", json={"rule": rule})
    assert preview.status_code == 200, preview.text
    assert (preview.json()["matches"], preview.json()["sample"]) == (1, [contact_id])
    bad = await http.put("/v1/segments/vips", json={"rule": {"has_tag": "vip", "band": "hot"}})
    assert bad.status_code == 422 and "exactly one of" in bad.text
    file_segment = await http.put("/v1/segments/email-subscribers", json={"rule": rule})
    assert file_segment.status_code == 409 and "segments.toml" in file_segment.text

    created = await http.put("/v1/segments/vips", json={"title": "VIPs", "rule": rule})
    assert created.status_code == 201, created.text
    assert (created.json()["members"], created.json()["evaluated"]) == (0, False)
    await start_sweep()
    await _until_changes(engine, contact_id, "vips", ["entered"])
    page = (await http.get("/v1/segments/vips", params={"limit": 10})).json()
    assert (page["members"], page["evaluated"], page["source"]) == (1, True, "api")
    assert [member["contact_id"] for member in page["page"]] == [contact_id]

    assert (await http.delete("/v1/segments/vips")).status_code == 204
    async with asyncio.timeout(30):
        while await _is_member(engine, "vips", contact_id):
            await asyncio.sleep(0.2)
    assert (await http.get("/v1/segments/vips")).status_code == 404
