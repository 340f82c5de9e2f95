"""The `journeys` CLI as a person reads it: no raw `None`, errors that say what to do next,
and one rule (one message) for contact ids at every entry point."""

from __future__ import annotations

import ast
import os
import socket
import sys
from datetime import UTC, datetime

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import WorkflowEnvironment

from models.ids import SAFE_ID_RULE
from models.journeys import JourneyState, JourneyStatus
from models.settings import Settings
from starter.cli.commands import journey_line
from starter.services.operations import JourneyRun
from tests.cli import cli_environment, journeys, run
from tests.gateway import gateway_settings, serving_gateway

WAKE = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
BAD_ID = "ada@example.com"
"""A contact id people get wrong: an email address (never echoed back)."""
REFUSAL = f"invalid contact id: use {SAFE_ID_RULE} (your system's id, not an email address)"


def _run(status: JourneyStatus, **state: object) -> JourneyRun:
    return JourneyRun(
        workflow_id="welcome-series-kim",
        run_id="r1",
        execution_status="RUNNING" if status == JourneyStatus.RUNNING else "COMPLETED",
        state=JourneyState(
            journey="welcome-series",
            contact_id="kim",
            step="day1",
            status=status,
            enrolled_at=WAKE,
            messages_sent=2,
            **state,
        ),
    )


def test_status_lines_name_the_next_step_or_say_there_is_none() -> None:
    named = journey_line(_run(JourneyStatus.RUNNING, next_wake_at=WAKE, next_step="day2"))
    unnamed = journey_line(_run(JourneyStatus.RUNNING, next_wake_at=WAKE))
    waiting = journey_line(_run(JourneyStatus.RUNNING))
    exited = journey_line(_run(JourneyStatus.EXITED, exit_reason="unsubscribed"))
    unread = journey_line(JourneyRun(workflow_id="w", run_id="r", execution_status="FAILED"))
    split = journey_line(_run(JourneyStatus.RUNNING, arms={"welcome-subject": "b"}))

    assert named.endswith("step day1, 2 sent, next: day2 at 2026-03-02 09:00:00Z")
    assert unnamed.endswith("step day1, 2 sent, next: wake-up at 2026-03-02 09:00:00Z")
    assert waiting.endswith("step day1, 2 sent, no next step scheduled")
    assert exited.endswith("step day1, 2 sent, exited: unsubscribed")
    assert unread.endswith("(no state reported)")
    assert split.endswith("step day1, 2 sent, A/B welcome-subject: b, no next step scheduled")
    for line in (named, unnamed, waiting, exited, unread):
        assert "None" not in line


READ_COMMANDS = (
    ("status", "kim"),
    ("list",),
    ("messages", "kim"),
    ("export", "kim", "--no-live"),
    ("contact", "consent", "kim"),
    ("deals", "--contact", "kim"),
)
NOT_FOR_READING = ("workflows", "activities", "worker", "fastapi", "alembic", "liquid")
"""What a read command has no use for: the journeys, the worker, the gateway, migrations."""
LOADED = """
import sys
from starter.cli.commands import app
try:
    app(sys.argv[1:])
except SystemExit:
    pass
print(sorted({name.split(".")[0] for name in sys.modules}))
"""


async def test_read_commands_load_neither_the_journeys_nor_the_worker_nor_the_gateway(
    settings: Settings, engine: AsyncEngine
) -> None:
    """On a database at the newest revision (a fresh one is migrated: that loads Alembic)."""
    for command in READ_COMMANDS:
        ran = await run(sys.executable, "-c", LOADED, *command, env=_env(settings))

        loaded = ast.literal_eval(ran.stdout.splitlines()[-1])
        assert [name for name in NOT_FOR_READING if name in loaded] == [], command


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _env(settings: Settings, **changes: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "TEMPORAL_ADDRESS": f"127.0.0.1:{_closed_port()}",
        "LOG_FORMAT": "json",
        **changes,
    }


async def test_an_unknown_contact_is_refused_with_how_to_create_it(settings: Settings) -> None:
    missing = await journeys("contact", "consent", "ghost", env=_env(settings))

    assert missing.returncode == 1
    assert missing.stderr == (
        "error: contact 'ghost' does not exist; "
        "create it with `journeys contact upsert ghost --email …`\n"
    )


async def test_temporal_unreachable_says_how_to_start_it(settings: Settings) -> None:
    down = await journeys("status", "kim", env=_env(settings))

    assert down.returncode == 1
    assert "Traceback" not in down.stderr
    assert down.stderr.splitlines()[-1] == (
        "error: start Temporal with `make run`, or set TEMPORAL_ADDRESS (and "
        "TEMPORAL_NAMESPACE) to your cluster"
    )


async def test_a_database_that_does_not_answer_is_named_without_its_password(
    settings: Settings,
) -> None:
    url = f"postgresql://journeys:s3cret-pw@127.0.0.1:{_closed_port()}/journeys"
    down = await journeys("messages", env=_env(settings, DATABASE_URL=url))

    assert down.returncode == 1
    assert "Traceback" not in down.stderr and "s3cret-pw" not in down.stderr
    [line] = down.stderr.splitlines()
    assert line.startswith("error: cannot open the database postgresql://journeys:***@127.0.0.1:")
    assert line.endswith(
        "start it, or set DATABASE_URL to one that runs (`make run` keeps its own in "
        ".data/journeys.db)"
    )


async def test_steering_a_journey_that_is_not_running_points_at_status(
    dev_env: WorkflowEnvironment, settings: Settings
) -> None:
    env = cli_environment(settings, dev_env.client.service_client.config.target_host)
    idle = await journeys("pause", "ghost", "welcome-series", env=env)

    assert idle.returncode == 1
    assert idle.stderr == (
        "error: contact 'ghost' has no running welcome-series journey; "
        "see its journeys with `journeys status ghost`\n"
    )


async def test_the_cli_refuses_a_bad_contact_id_with_the_rule(settings: Settings) -> None:
    for command in (("status", BAD_ID), ("contact", "upsert", BAD_ID), ("messages", BAD_ID)):
        refused = await journeys(*command, env=_env(settings))

        assert refused.returncode == 2, command
        assert refused.stderr == f"error: {REFUSAL}\n", command


async def test_the_cli_refuses_an_invalid_phone_number_in_one_line(settings: Settings) -> None:
    refused = await journeys(
        "contact", "upsert", "ok-id", "--phone", "+1000000", env=_env(settings)
    )

    assert refused.returncode == 2
    assert refused.stderr == (
        "error: phone: '+1000000' is not a valid phone number of country code +1: "
        "check the country code and the digits\n"
    )


async def test_the_api_refuses_a_bad_contact_id_with_the_same_rule(
    dev_env: WorkflowEnvironment, settings: Settings
) -> None:
    async with serving_gateway(dev_env.client, gateway_settings(settings), worker=False) as api:
        path = await api.http.get(f"/v1/contacts/{BAD_ID}")
        body = await api.http.post("/v1/events", json={"contact_id": BAD_ID, "type": "x"})
        put = await api.http.put("/v1/contacts/ok-id", json={"email": "a@example.com"})

    assert put.status_code == 200, put.text  # a good id passes the same rule
    for response in (path, body):
        assert response.status_code == 422, response.text
        assert _messages(response) == [f"Value error, {REFUSAL}"]
        assert BAD_ID not in response.text.replace(f'"input":"{BAD_ID}"', "")


def _messages(response: httpx.Response) -> list[str]:
    detail = response.json()["detail"]
    return [issue["msg"] for issue in detail if issue["loc"][-1] in {"contact_id", "id"}]
