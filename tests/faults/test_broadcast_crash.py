"""A 2,000-contact broadcast under quiet hours and caps, its worker killed mid-way: one
message per contact.

The audience: most contacts live where it is day; some where it is night (the
worker's quiet hours end a minute after the start, in their zone); some have had
their two marketing emails of the day (the daily cap frees a slot a minute after the
start); a few never gave consent. The worker is killed with SIGKILL once a quarter of
the messages are delivered, and started again. In the end every contact with consent
has exactly one `sent` row in the message log and one delivery at the email API, the
night and capped contacts got theirs only once allowed, and those without consent are
counted as refused, not sent.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from models.broadcasts import BroadcastProgress, journey_label, workflow_id
from models.db import session_factory
from models.settings import Settings
from models.tables import Contact, MessageLog
from starter.services.broadcasts import BroadcastCreate, create_broadcast
from tests.faults.email_api import EmailApi
from tests.faults.stack import DevServer, WorkerProcess
from tests.segment_kit import evaluate_segment, segments_file_with

AUDIENCE = 2000
NIGHT = 300
CAPPED = 200
NO_CONSENT = 20
DAY_ZONE = "Etc/GMT+3"  # UTC-3
NIGHT_ZONE = "Asia/Tokyo"  # UTC+9: twelve hours from the day zone
SEGMENT = "newsletter"


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    """The test's settings, with the segment `newsletter` (tag `newsletter`) defined."""
    extra = f'[segments.{SEGMENT}]\nhas_tag = "{SEGMENT}"\n'
    return settings.model_copy(update={"segments_file": segments_file_with(tmp_path, extra)})


def _zone_of(number: int) -> str:
    return NIGHT_ZONE if number < NIGHT else DAY_ZONE


async def _audience(engine: AsyncEngine, now: datetime) -> dict[str, str]:
    """Store the contacts (tagged `newsletter`) and the capped ones' earlier sends."""
    kinds: dict[str, str] = {}
    rows: list[object] = []
    for number in range(AUDIENCE):
        contact_id = f"b{number:04d}"
        kind = (
            "night"
            if number < NIGHT
            else "capped"
            if number < NIGHT + CAPPED
            else "no-consent"
            if number < NIGHT + CAPPED + NO_CONSENT
            else "day"
        )
        kinds[contact_id] = kind
        rows.append(
            Contact(
                id=contact_id,
                email=f"{contact_id}@example.com",
                email_consent=kind != "no-consent",
                timezone=_zone_of(number),
                tags=[SEGMENT],
            )
        )
        if kind == "capped":
            for earlier in range(2):
                sent = now - timedelta(hours=24) + timedelta(seconds=60 + earlier)
                rows.append(
                    MessageLog(
                        idempotency_key=f"earlier-{contact_id}-{earlier}",
                        contact_id=contact_id,
                        journey="nurture",
                        step=f"week{earlier}",
                        channel="email",
                        category="marketing",
                        template="nurture/week1",
                        status="sent",
                        created_at=sent,
                        updated_at=sent,
                        sent_at=sent,
                    )
                )
    async with session_factory(engine)() as session:
        session.add_all(rows)
        await session.commit()
    return kinds


def _quiet_hours(now: datetime) -> dict[str, str]:
    """Quiet hours that hold the night zone now and end there a minute from now."""
    local = now.astimezone(ZoneInfo(NIGHT_ZONE))
    start, end = local - timedelta(hours=2), local + timedelta(seconds=60)
    return {
        "QUIET_HOURS_START": start.strftime("%H:%M:%S"),
        "QUIET_HOURS_END": end.strftime("%H:%M:%S"),
    }


@pytest.mark.timeout(360)  # 2,000 sends, a kill and a restart: minutes on a busy 2-core machine
async def test_broadcast_survives_a_killed_worker_and_sends_each_contact_one_message(
    dev_server: DevServer,
    settings: Settings,
    engine: AsyncEngine,
    email_api: EmailApi,
    worker_process: Callable[..., WorkerProcess],
) -> None:
    now = datetime.now(UTC)
    kinds = await _audience(engine, now)
    assert await evaluate_segment(engine, settings.segments_file, SEGMENT) == AUDIENCE
    worker = worker_process("first", **_quiet_hours(now))
    await worker.start()

    await create_broadcast(
        engine,
        dev_server.client,
        settings,
        BroadcastCreate(
            name="june-update",
            segment=SEGMENT,
            template="broadcasts/monthly-update",
            at=datetime.now(UTC) + timedelta(seconds=2),
            rate=300,
        ),
        created_by="test",
        now=datetime.now(UTC),
    )
    async with asyncio.timeout(120):
        while len(email_api.deliveries) < AUDIENCE // 4:
            await asyncio.sleep(0.05)
    worker.kill()
    await worker.wait_killed()
    assert len(email_api.deliveries) < AUDIENCE - NIGHT - CAPPED, "the kill came too late"
    await worker.start()

    handle = dev_server.client.get_workflow_handle(
        workflow_id("june-update"), result_type=BroadcastProgress
    )
    async with asyncio.timeout(400):
        progress = await handle.result()

    with_consent = [c for c, kind in kinds.items() if kind != "no-consent"]
    assert progress.status == "done"
    assert (progress.audience, progress.sent, progress.refused) == (
        AUDIENCE,
        len(with_consent),
        NO_CONSENT,
    )
    assert (progress.deferred, progress.remaining, progress.failed) == (0, 0, 0)

    async with session_factory(engine)() as session:
        logged = list(
            (
                await session.exec(
                    select(MessageLog).where(
                        col(MessageLog.journey) == journey_label("june-update")
                    )
                )
            ).all()
        )
    by_status = Counter((row.contact_id, row.status) for row in logged)
    assert by_status == Counter(
        {
            (c, "sent" if kind != "no-consent" else "skipped_no_consent"): 1
            for c, kind in kinds.items()
        }
    )
    delivered = email_api.copies_by_message()
    assert set(delivered.values()) == {1}, "a contact got the broadcast twice"
    assert {to for to, _journey, _step in delivered} == {f"{c}@example.com" for c in with_consent}

    quiet_end = now + timedelta(seconds=59)
    sent_at = {row.contact_id: row.sent_at for row in logged if row.sent_at is not None}
    for kind in ("night", "capped"):
        early = [c for c, k in kinds.items() if k == kind and sent_at[c] < quiet_end]
        assert not early, f"{kind} contacts sent before allowed: {early[:5]}"
    assert min(sent_at[c] for c, k in kinds.items() if k == "day") < quiet_end
