"""Broadcasts on the dev server: pause, resume and cancel; a schedule's occurrences; the
refusals of bad input (API service and CLI)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from models.broadcasts import BroadcastProgress, journey_label, workflow_id
from models.db import session_factory
from models.settings import Settings
from models.tables import BroadcastRecipient, Contact, MessageLog
from starter.services.broadcasts import (
    BroadcastCreate,
    control_broadcast,
    create_broadcast,
    list_broadcasts,
)
from starter.services.operations import InvalidRequest
from starter.services.report import funnel_report
from tests.cli import cli_environment, journeys
from tests.gateway import READ_ONLY_KEY, gateway_settings, serving_gateway
from tests.segment_kit import evaluate_segment, segments_file_with
from worker import build_worker

TEMPLATE = "broadcasts/monthly-update"


def _daytime_zone() -> str:
    """A fixed-offset zone where it is about noon now (outside the default quiet hours)."""
    offset = max(-12, min(14, 12 - datetime.now(UTC).hour))
    return "UTC" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"


MEMBERS = '[segments.members]\ntitle = "The test audience"\nhas_tag = "member"\n'


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    """The test's settings, with the segment `members` (tag `member`) defined."""
    return settings.model_copy(update={"segments_file": segments_file_with(tmp_path, MEMBERS)})


async def _segment(engine: AsyncEngine, settings: Settings, size: int) -> list[str]:
    """`size` contacts tagged `member`, evaluated into the segment `members`."""
    ids = [f"members-{number:02d}" for number in range(size)]
    async with session_factory(engine)() as session:
        for contact_id in ids:
            session.add(
                Contact(
                    id=contact_id,
                    email=f"{contact_id}@example.com",
                    email_consent=True,
                    timezone=_daytime_zone(),
                    tags=["member"],
                )
            )
        await session.commit()
    assert await evaluate_segment(engine, settings.segments_file, "members") == size
    return ids


async def _logged(engine: AsyncEngine, name: str) -> list[MessageLog]:
    async with session_factory(engine)() as session:
        rows = await session.exec(
            select(MessageLog).where(col(MessageLog.journey) == journey_label(name))
        )
        return list(rows.all())


async def _create(
    engine: AsyncEngine, client: Client, settings: Settings, **fields: object
) -> None:
    request = BroadcastCreate.model_validate(
        {"name": "b", "segment": "members", "template": TEMPLATE, **fields}
    )
    await create_broadcast(
        engine, client, settings, request, created_by="test", now=datetime.now(UTC)
    )


async def _progress(engine: AsyncEngine, name: str) -> BroadcastProgress | None:
    (view,) = await list_broadcasts(engine, name)
    return view.occurrences[0] if view.occurrences else None


async def _until(check: Callable[[], object], within: float = 60) -> None:
    async with asyncio.timeout(within):
        while not await check():  # type: ignore[misc]
            await asyncio.sleep(0.2)


async def test_a_broadcast_pauses_resumes_and_cancels(
    dev_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
    make_worker: Callable[[Client], Worker],
) -> None:
    client = dev_env.client
    await _segment(engine, settings, 30)
    async with make_worker(client):
        await _create(engine, client, settings, at=datetime.now(UTC) + timedelta(seconds=1), rate=2)

        async def some_sent() -> bool:
            progress = await _progress(engine, "b")
            return progress is not None and progress.sent >= 1

        await _until(some_sent)
        await control_broadcast(engine, client, "b", "pause", now=datetime.now(UTC))
        handle = client.get_workflow_handle(workflow_id("b"))
        await _until(lambda: _paused(handle))
        held = await _settled(engine, "b")  # the batch in flight ends
        await asyncio.sleep(4)
        assert len(await _logged(engine, "b")) == held, "sent while paused"

        await control_broadcast(engine, client, "b", "resume", now=datetime.now(UTC))

        async def more_sent() -> bool:
            return len(await _logged(engine, "b")) > held

        await _until(more_sent)
        await control_broadcast(engine, client, "b", "cancel", now=datetime.now(UTC))
        result = await client.get_workflow_handle(
            workflow_id("b"), result_type=BroadcastProgress
        ).result()

    assert result.status == "cancelled"
    assert result.cancelled > 0 and result.sent + result.cancelled == 30
    assert len(await _logged(engine, "b")) == result.sent
    (view,) = await list_broadcasts(engine, "b")
    assert view.status == "cancelled"


async def _settled(engine: AsyncEngine, name: str) -> int:
    """The count of messages once it stopped growing (1.5 s apart: 3 sends at 2/s)."""
    before, now = -1, len(await _logged(engine, name))
    while now != before:
        await asyncio.sleep(1.5)
        before, now = now, len(await _logged(engine, name))
    return now


async def _paused(handle: object) -> bool:
    progress = await handle.query("progress", result_type=BroadcastProgress)  # type: ignore[attr-defined]
    return bool(progress.status == "paused")


async def test_a_schedule_starts_occurrences_and_cancel_deletes_it(
    dev_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
    make_worker: Callable[[Client], Worker],
) -> None:
    client = dev_env.client
    ids = await _segment(engine, settings, 5)
    async with make_worker(client):
        await _create(engine, client, settings, schedule="0 10 1 * *", timezone="UTC", rate=50)
        schedule = client.get_schedule_handle(workflow_id("b"))
        described = await schedule.describe()
        assert described.info.next_action_times[0].day == 1
        await schedule.trigger()

        async def all_sent() -> bool:
            return len(await _logged(engine, "b")) == len(ids)

        await _until(all_sent)
        await control_broadcast(engine, client, "b", "cancel", now=datetime.now(UTC))
    with pytest.raises(RPCError):
        await schedule.describe()
    rows = await _logged(engine, "b")
    assert {row.contact_id for row in rows} == set(ids)
    occurrence = rows[0].step
    assert all(row.status == "sent" and row.step == occurrence for row in rows)
    assert rows[0].idempotency_key == f"broadcast-b/{occurrence}/{rows[0].contact_id}"
    report = await funnel_report(engine)
    assert journey_label("b") in {funnel.journey for funnel in report.journeys}


@pytest.mark.parametrize(
    ("fields", "refusal"),
    [
        ({"template": "broadcasts/nope"}, "unknown email template"),
        ({"segment": "nobody-here"}, "unknown segment"),
        ({"segment": "Bad Name"}, "invalid segment name"),
        ({"rate": 0}, "bad rate"),
        ({"at": "2020-01-01T10:00:00Z"}, "has passed"),
        ({"at": None}, "either a time"),
        ({"schedule": "every day"}, "either a time"),
    ],
)
async def test_bad_broadcasts_are_refused_with_what_to_do(
    dev_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
    fields: dict[str, object],
    refusal: str,
) -> None:
    await _segment(engine, settings, 1)
    at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    with pytest.raises(InvalidRequest, match=refusal):
        await _create(engine, dev_env.client, settings, **{"at": at, **fields})
    assert await list_broadcasts(engine) == []


async def test_the_cli_refuses_a_bad_schedule_and_a_bad_time_in_one_line(
    dev_env: WorkflowEnvironment, settings: Settings, engine: AsyncEngine
) -> None:
    await _segment(engine, settings, 1)
    env = cli_environment(settings, dev_env.client.service_client.config.target_host)
    for option in (["--at", "tomorrow"], ["--schedule", "0 10 1 *"]):
        result = await journeys(
            "broadcast", "create", "b", "--segment", "members", "--template", TEMPLATE,
            *option, env=env,
        )  # fmt: skip
        assert result.returncode != 0
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert result.stderr.startswith("error: bad "), result.stderr


async def test_the_http_api_creates_lists_and_cancels_and_refuses_bad_input(
    dev_env: WorkflowEnvironment, settings: Settings, engine: AsyncEngine
) -> None:
    await _segment(engine, settings, 3)
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    body = {"name": "http", "segment": "members", "template": TEMPLATE, "at": later}
    async with serving_gateway(dev_env.client, gateway_settings(settings)) as gateway:
        http = gateway.http
        unknown = await http.post("/v1/broadcasts", json={**body, "segment": "nobody-here"})
        assert unknown.status_code == 422 and "unknown segment" in unknown.text
        created = await http.post("/v1/broadcasts", json=body)
        assert created.status_code == 201, created.text
        assert (created.json()["segment"], created.json()["status"]) == ("members", "scheduled")
        again = await http.post("/v1/broadcasts", json=body)
        assert again.status_code == 409, again.text
        listed = await http.get("/v1/broadcasts")
        assert [view["name"] for view in listed.json()] == ["http"]
        reader = {"Authorization": f"Bearer {READ_ONLY_KEY}"}
        refused = await http.post("/v1/broadcasts/http:cancel", headers=reader)
        assert refused.status_code == 403, refused.text
        cancelled = await http.post("/v1/broadcasts/http:cancel")
        assert cancelled.status_code == 200, cancelled.text
        assert (await http.get("/v1/broadcasts/http")).json()["status"] == "cancelled"
        assert (await http.get("/v1/broadcasts/nope")).status_code == 404


async def test_a_local_time_reaches_each_contact_at_that_time_in_its_own_zone(
    dev_env: WorkflowEnvironment, settings: Settings, engine: AsyncEngine
) -> None:
    """10:00 "in each contact's time zone": the run starts when that time comes in UTC+14
    and sends there at once; a contact in UTC+13 is due one hour later, not before."""
    east_now = datetime.now(ZoneInfo("Etc/GMT-14"))
    awake = settings.model_copy(  # quiet hours far from now there
        update={
            "quiet_hours_start": (east_now + timedelta(hours=6)).time(),
            "quiet_hours_end": (east_now + timedelta(hours=7)).time(),
        }
    )
    async with session_factory(engine)() as session:
        for contact_id, zone in (("east", "Etc/GMT-14"), ("west", "Etc/GMT-13")):
            session.add(
                Contact(
                    id=contact_id,
                    email=f"{contact_id}@example.com",
                    email_consent=True,
                    timezone=zone,
                    tags=["member"],
                )
            )
        await session.commit()
    assert await evaluate_segment(engine, settings.segments_file, "members") == 2
    client = dev_env.client
    async with build_worker(client, awake, engine):
        wall = (datetime.now(ZoneInfo("Etc/GMT-14")) + timedelta(seconds=3)).replace(
            tzinfo=None, microsecond=0
        )
        await _create(engine, client, awake, name="local", at=wall)

        async def east_sent() -> bool:
            return [row.contact_id for row in await _logged(engine, "local")] == ["east"]

        await _until(east_sent, within=30)
        async with session_factory(engine)() as session:
            rows = {
                row.contact_id: row
                for row in (await session.exec(select(BroadcastRecipient))).all()
            }
        await control_broadcast(engine, client, "local", "cancel", now=datetime.now(UTC))
    east_due = wall.replace(tzinfo=ZoneInfo("Etc/GMT-14"))
    assert rows["east"].status == "sent"
    assert (rows["west"].status, rows["west"].due_at) == ("queued", east_due + timedelta(hours=1))
    assert [row.contact_id for row in await _logged(engine, "local")] == ["east"]
