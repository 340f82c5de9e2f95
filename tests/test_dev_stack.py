"""`journeys dev` (`make run`): starts everything, shows every journey, stops, runs twice."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
from pathlib import Path

import httpx
from temporalio.client import Client

from starter.dev.demo import (
    DEMO_LEAD,
    DEMO_NEWCOMER,
    DEMO_STORIES,
    DEMO_SUBSCRIBERS,
    subject_arm,
)
from starter.dev.ports import free_port
from tests.cli import JOURNEYS
from workflows import catalog


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def demo_mei_deal(checkout: Path) -> tuple[str, str, str] | None:
    """Status, owner and stage of demo-mei's deal, as the database holds them."""
    with sqlite3.connect(checkout / ".data" / "journeys.db") as db:
        row = db.execute(
            "select status, owner_id, stage from deals where contact_id = 'demo-mei'"
        ).fetchone()
    return None if row is None else (row[0], row[1], row[2])


def demo_noor_tags(checkout: Path) -> str:
    """The tags of the demo customer, as the database holds them (JSON)."""
    with sqlite3.connect(checkout / ".data" / "journeys.db") as db:
        return str(db.execute("select tags from contacts where id = 'demo-noor'").fetchone()[0])


async def start_stack(
    cwd: Path, temporal_port: int, ui_port: int, api_port: int
) -> tuple[asyncio.subprocess.Process, str]:
    """Start `journeys dev` and return once it says it is ready, with what it printed."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("TEMPORAL_")}
    env.pop("DATABASE_URL", None)
    process = await asyncio.create_subprocess_exec(
        str(JOURNEYS), "dev", "--day-seconds", "2",
        "--temporal-port", str(temporal_port), "--ui-port", str(ui_port),
        cwd=cwd, env={**env, "LOG_FORMAT": "json", "API_PORT": str(api_port)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert process.stdout is not None
    printed: list[str] = []
    async with asyncio.timeout(90):
        while not any("Press Ctrl-C" in line for line in printed):
            line = (await process.stdout.readline()).decode()
            assert line, f"journeys dev exited early: {''.join(printed)}"
            printed.append(line)
    return process, "".join(printed)


async def stop_stack(process: asyncio.subprocess.Process) -> None:
    process.send_signal(signal.SIGINT)
    assert process.stdout is not None
    await asyncio.wait_for(process.stdout.read(), 60)
    assert await asyncio.wait_for(process.wait(), 60) == 0


async def test_dev_stack_runs_demo_stops_cleanly_and_restarts_without_duplicates(
    tmp_path: Path,
) -> None:
    temporal_port, ui_port, api_port = free_port(), free_port(), free_port()
    api = f"http://127.0.0.1:{api_port}"

    process, printed = await start_stack(tmp_path, temporal_port, ui_port, api_port)
    key = (tmp_path / ".data" / "api-key").read_text().strip()
    try:
        assert f"http://localhost:{ui_port}" in printed
        assert f"{api}/docs" in printed and f"Local API key:  {key}" in printed
        async with httpx.AsyncClient(
            base_url=api, headers={"Authorization": f"Bearer {key}"}
        ) as http:
            sent = await http.post(
                "/v1/events", json={"contact_id": "demo-sam", "type": "pricing_page_viewed"}
            )
            assert sent.status_code == 202, sent.text
            contact = await http.get("/v1/contacts/demo-ada")
            assert contact.json()["first_name"] == "Ada"
        assert str(tmp_path / ".data" / "outbox") in printed
        assert printed.count("enrolled demo-") == 6
        assert "segments: dormant-subscribers" in printed
        assert "demo-lin: 4 events → contact-demo-lin" in printed
        for story in DEMO_STORIES:
            assert f"{story.contact.id}: {len(story.events)} event" in printed
        async with httpx.AsyncClient() as http:
            ui = await http.get(f"http://127.0.0.1:{ui_port}/")
        assert ui.status_code == 200
        outbox = tmp_path / ".data" / "outbox"
        for _ in range(100):
            if len(list(outbox.rglob("*.eml"))) >= 6:  # Day 0 and Day 1 of the three contacts
                break
            await asyncio.sleep(0.2)
        assert len(list(outbox.rglob("*.eml"))) >= 6
    finally:
        await stop_stack(process)
    assert not listening(temporal_port), "Ctrl-C must stop the Temporal server"
    assert not listening(ui_port)
    assert not listening(api_port)

    process, printed = await start_stack(tmp_path, temporal_port, ui_port, api_port)
    try:
        assert printed.count("already enrolled") == 6
        assert f"Local API key:  {key}" in printed  # the same key again
        client = await Client.connect(f"127.0.0.1:{temporal_port}")
        demo_runs = [
            # 3 enrolled, demo-lin, demo-fay, 9 of 10 subscribers (1 held out)
            ("welcome-series", 14),
            ("pricing-abandon", 4),  # demo-grace, demo-lin, demo-mei, and demo-sam (the API)
            ("renewal-countdown", 1),
            # demo-grace, on the automation track; then each subscriber whose welcome series
            # ends (7 demo days: 14 s here) and routes it to nurture: at least 1
            ("nurture", 1),
            ("lead-sla", 3),  # demo-lin, demo-mei and demo-omar
            ("abandoned-cart", 1),  # demo-grace's cart, once however often the demo restarts
            ("churn-prevention", 1),  # demo-ravi's usage drop
            ("re-engagement", 1),  # demo-rosa, quiet for 31 journey days
            ("win-back", 1),  # demo-kai, a customer quiet for 31 journey days
            # demo-noor's purchase, demo-kai's, demo-mei's won deal, and two subscribers' (one
            # in the subject test's arm b, one held out of the welcome series)
            ("onboarding", 5),
            ("recycling", 1),  # demo-omar, handed off then disqualified for no budget
            ("first-purchase", 1),  # demo-fay: subscribed 8 days ago, nothing bought (a segment)
        ]
        assert {journey for journey, _ in demo_runs} == set(catalog.journey_names())
        for journey, runs in demo_runs:
            for _ in range(100):  # demo-lin's events may still be on their way
                count = await client.count_workflows(f"Journey = '{journey}'")
                if count.count >= runs:
                    break
                await asyncio.sleep(0.2)
            if journey == "nurture":
                assert count.count >= runs, journey
            else:
                assert count.count == runs, journey
        for _ in range(100):  # demo-noor's feature_used events may still be on their way
            if "act_adopted_campaign-sent" in demo_noor_tags(tmp_path):
                break
            await asyncio.sleep(0.2)
        for _ in range(100):  # demo-mei's deal events may still be on their way
            if demo_mei_deal(tmp_path) == ("won", "sdr-ines", "proposal"):
                break
            await asyncio.sleep(0.2)
    finally:
        await stop_stack(process)

    with sqlite3.connect(tmp_path / ".data" / "journeys.db") as db:
        assert db.execute("select count(*) from contacts").fetchone() == (21,)
        # demo-lin's 4, demo-sam's 1 (the API), demo-grace's cart, demo-noor's 3, demo-ravi's
        # 5 usage reports and the drop derived from them, demo-rosa's visit, demo-kai's
        # purchase, demo-mei's 3 + 6 and the purchase derived from her won deal, demo-omar's
        # 2 + 1, the ten subscribers' sign-ups and five opens, clicks and purchases, demo-fay's
        # sign-up and her entering the segment first-purchase follows (`segment_entered`)
        assert db.execute("select count(*) from events").fetchone() == (47,)
        # The subject test: every subscriber drawn once, demo-lin too (her sign-up), in the
        # arm the split gives; the journeys enrolled directly were never drawn.
        exposures = dict(db.execute("select contact_id, arm from experiment_exposures"))
        assert exposures == {
            contact.id: subject_arm(contact)
            for contact in (*DEMO_SUBSCRIBERS, DEMO_LEAD, DEMO_NEWCOMER)
        }
        stages = db.execute(
            "select stage from pipeline_transitions where contact_id = 'demo-mei' order by id"
        )
        assert [stage for (stage,) in stages][-3:] == ["sql", "opportunity", "customer"]
        [(omar_stage, omar_tags)] = db.execute(
            "select pipeline_stage, tags from contacts where id = 'demo-omar'"
        )
        assert omar_stage == "recycled" and "stage_recycled" in json.loads(omar_tags)
        [(ravi_tags,)] = db.execute("select tags from contacts where id = 'demo-ravi'")
        assert "stage_churn-risk" in json.loads(ravi_tags)
        keys = [row[0] for row in db.execute("select idempotency_key from message_log")]
    assert len(keys) == len(set(keys))
    # `journeys experiments` reports the subject test: the demo's opens, clicks and purchases
    # (each still inside its 14-day window, so pending, not yet in a rate).
    reported = await asyncio.create_subprocess_exec(
        str(JOURNEYS), "experiments", "welcome-subject", "--format", "json",
        cwd=tmp_path, stdout=asyncio.subprocess.PIPE,
        env={key: value for key, value in os.environ.items() if key != "DATABASE_URL"},
    )  # fmt: skip
    report = json.loads((await reported.communicate())[0])
    arms = {arm["arm"]: arm for arm in report["arms"]}
    engaged = {
        arm: (arms[arm]["exposed"], arms[arm]["opened"], arms[arm]["clicked"])
        for arm in ("a", "b", "holdout")
    }
    drawn = [subject_arm(contact) for contact in (*DEMO_SUBSCRIBERS, DEMO_LEAD, DEMO_NEWCOMER)]
    assert engaged == {
        "a": (drawn.count("a"), 1, 0),
        "b": (drawn.count("b"), 1, 1),
        "holdout": (drawn.count("holdout"), 0, 0),
    }
    assert {arm: arms[arm]["converted_pending"] for arm in arms} == {"a": 0, "b": 1, "holdout": 1}
    assert demo_mei_deal(tmp_path) == ("won", "sdr-ines", "proposal")
    adopted = demo_noor_tags(tmp_path)
    assert "act_adopted_contact-import" in adopted and "act_adopted_campaign-sent" in adopted
    assert (tmp_path / ".data" / "temporal.db").exists()
