"""Operating experiments: `journeys experiments [NAME]` / `journeys experiments stop` (the real
command line, as a subprocess) and `/v1/experiments` (the real gateway on loopback).

The database holds `welcome-subject`'s scenario of `tests/test_experiment_report.py`
(a 200 exposed / 20 converted, b 200 / 34, holdout 44 / 2): its figures are checked
there; here, that the CLI and the API give that report and refuse bad input.
"""

from __future__ import annotations

import getpass
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from models.settings import ApiKey, Settings
from runtime.temporal import SERVICE_RETRY, connect
from starter.api.server import running_api
from tests.cli import Completed, cli_environment, journeys
from tests.experiments import add_rows, population
from tests.gateway import FULL_KEY, READ_ONLY_KEY, gateway_settings

NO_TEMPORAL = "127.0.0.1:1"
"""Experiments read and write the database only: no Temporal server is needed."""
REPORTS_KEY = "tests-reports-key-0123456789abcd"
"""A key with `reports:read` only."""


@pytest.fixture
async def scenario(engine: AsyncEngine) -> AsyncEngine:
    """The scenario, exposed 60 days ago: every 14-day window has closed when the CLI and
    the API count (now)."""
    start = datetime.now(UTC) - timedelta(days=60)
    await add_rows(
        engine,
        [
            *population("a", 200, 20, start=start),
            *population("b", 200, 34, start=start),
            *population("holdout", 44, 2, start=start),
        ],
    )
    return engine


async def experiments(settings: Settings, *args: str) -> Completed:
    return await journeys("experiments", *args, env=cli_environment(settings, NO_TEMPORAL))


def arms(report: dict[str, Any]) -> list[tuple[str, int, int]]:
    """Each arm's name, exposures and conversions (with every window closed by now)."""
    return [(arm["arm"], arm["exposed"], arm["converted"]) for arm in report["arms"]]


SCENARIO = [("a", 200, 20), ("b", 200, 34), ("holdout", 44, 2)]


async def test_cli_reports_one_experiment_or_all(scenario: AsyncEngine, settings: Settings) -> None:
    overview = await experiments(settings)
    assert overview.returncode == 0, overview.stderr
    header, line = overview.stdout.splitlines()
    assert header.split() == ["experiment", "journey", "status", "exposed", "verdict", "headline"]
    assert line.split()[:5] == ["welcome-subject", "welcome-series", "running", "444", "collecting"]
    assert line.endswith("b +7.0 points vs a [+0.3, +13.8], p = 0.0405")

    [summary] = (await experiments(settings, "--json")).json()
    assert (summary["experiment"], summary["exposed"], summary["verdict"]["code"]) == (
        "welcome-subject", 444, "collecting"
    )  # fmt: skip

    report = (await experiments(settings, "welcome-subject", "--format", "json")).json()
    assert arms(report) == SCENARIO
    assert (report["minimum_sample"], report["verdict"]["winner"]) == (1059, None)

    # the operator's own baseline and effect: 199 per arm, and b wins
    planned = await experiments(
        settings, "welcome-subject", "--baseline", "0.1", "--mde", "0.1", "--json"
    )
    assert planned.returncode == 0, planned.stderr
    assert (planned.json()["minimum_sample"], planned.json()["verdict"]["winner"]) == (199, "b")

    table = await experiments(settings, "welcome-subject")
    assert table.stdout.splitlines()[0].startswith("welcome-subject (welcome-series, message day0)")
    assert table.stdout.splitlines()[-1].startswith("verdict: no winner yet")


async def test_cli_writes_the_html_report(
    scenario: AsyncEngine, settings: Settings, tmp_path: Path
) -> None:
    page = tmp_path / "welcome-subject.html"

    written = await experiments(
        settings, "welcome-subject", "--format", "html", "--output", str(page)
    )

    assert written.returncode == 0, written.stderr
    assert written.stderr.strip() == f"report written to {page}"
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "<svg" in text
    assert '<section id="welcome-subject">' in text


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("welcome-subjekt",), "unknown experiment 'welcome-subjekt'; declared: welcome-subject"),
        (("welcome-subject", "--format", "pdf"), "expected table, json or html"),
        (("welcome-subject", "--baseline", "0.9", "--mde", "0.2"), "baseline + effect below 1"),
        (("welcome-subject", "--mde", "-0.1"), "is not in (0, 1)"),
        (("stop", "welcome-subjekt"), "unknown experiment 'welcome-subjekt'"),
        (("stop", "welcome-subject", "--winner", "holdout"), "'holdout' is not an arm"),
    ],
)
async def test_cli_refuses_bad_input_with_the_reason(
    engine: AsyncEngine, settings: Settings, args: tuple[str, ...], says: str
) -> None:
    refused = await experiments(settings, *args)

    assert refused.returncode == 2, refused.stdout
    assert says in " ".join(refused.stderr.replace("│", " ").split())  # unwrap a usage error
    assert "Traceback" not in refused.stderr


async def test_cli_stop_is_recorded_once_with_who(engine: AsyncEngine, settings: Settings) -> None:
    stopped = await experiments(settings, "stop", "welcome-subject", "--winner", "b")

    assert stopped.returncode == 0, stopped.stderr
    user = f"cli:{getpass.getuser()}"
    assert stopped.stdout.strip() == (
        f"experiment welcome-subject stopped by {user} (winner b); new entrants get b from now on"
    )
    report = (await experiments(settings, "welcome-subject", "--json")).json()
    assert report["status"] == "stopped"
    assert (report["decision"]["winner"], report["decision"]["decided_by"]) == ("b", user)

    again = await experiments(settings, "stop", "welcome-subject", "--by", "cli:someone-else")
    assert again.returncode == 2
    [line] = again.stderr.splitlines()
    assert line.startswith(f"error: experiment 'welcome-subject' was already stopped by {user} at ")
    assert line.endswith("(winner: b); an experiment stops once")


async def test_cli_stop_without_a_winner_says_control(
    engine: AsyncEngine, settings: Settings
) -> None:
    stopped = await experiments(
        settings, "stop", "welcome-subject", "--by", "ops:ines", "--note", "no difference", "--json"
    )

    assert stopped.returncode == 0, stopped.stderr
    body = stopped.json()
    assert (body["experiment"], body["winner"], body["decided_by"], body["note"]) == (
        "welcome-subject", None, "ops:ines", "no difference"
    )  # fmt: skip


@pytest.fixture
async def http(scenario: AsyncEngine, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway (without Temporal) with a full key, a contacts-only key and a reports key."""
    served = gateway_settings(settings)
    served.api_keys.append(
        ApiKey(name="reports", key=SecretStr(REPORTS_KEY), scopes={"reports:read"})
    )

    async def temporal() -> Client:
        return await connect(target_host=NO_TEMPORAL, lazy=True, retry=SERVICE_RETRY)

    async with (
        running_api(served, host="127.0.0.1", port=0, temporal=temporal) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        yield client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_api_reports_experiments(http: httpx.AsyncClient) -> None:
    reader = bearer(REPORTS_KEY)

    [summary] = (await http.get("/v1/experiments", headers=reader)).json()
    assert (summary["experiment"], summary["status"], summary["exposed"]) == (
        "welcome-subject", "running", 444
    )  # fmt: skip

    answer = await http.get("/v1/experiments/welcome-subject", headers=reader)
    assert answer.status_code == 200, answer.text
    assert arms(answer.json()) == SCENARIO
    assert answer.json()["verdict"]["code"] == "collecting"

    planned = await http.get(
        "/v1/experiments/welcome-subject", params={"baseline": 0.1, "mde": 0.1}, headers=reader
    )
    assert planned.json()["verdict"]["winner"] == "b"

    page = await http.get("/v1/experiments/welcome-subject?format=html", headers=reader)
    assert page.headers["content-type"].startswith("text/html")
    assert page.text.startswith("<!DOCTYPE html>") and "<svg" in page.text


@pytest.mark.parametrize(
    ("query", "field", "says"),
    [
        ({"baseline": "2"}, "baseline", "less than 1"),
        ({"mde": "0"}, "mde", "greater than 0"),
        ({"baseline": "0.9", "mde": "0.2"}, "mde", "baseline + effect below 1"),
        ({"baseline": "often"}, "baseline", "valid number"),
    ],
)
async def test_api_refuses_a_baseline_or_effect_with_422(
    http: httpx.AsyncClient, query: dict[str, str], field: str, says: str
) -> None:
    refused = await http.get(
        "/v1/experiments/welcome-subject", params=query, headers=bearer(REPORTS_KEY)
    )

    assert refused.status_code == 422
    [issue] = refused.json()["detail"]
    assert issue["loc"] == ["query", field]
    assert says in issue["msg"]


async def test_api_needs_a_key_and_its_scope(http: httpx.AsyncClient) -> None:
    assert (await http.get("/v1/experiments")).status_code == 401
    assert (await http.get("/v1/experiments/welcome-subject")).status_code == 401
    contacts_only = bearer(READ_ONLY_KEY)
    assert (await http.get("/v1/experiments", headers=contacts_only)).status_code == 403
    refused = await http.post(
        "/v1/experiments/welcome-subject/stop", json={}, headers=bearer(REPORTS_KEY)
    )
    assert refused.status_code == 403
    assert "lacks the 'journeys:write' scope" in refused.json()["detail"]


async def test_api_stops_an_experiment_once(http: httpx.AsyncClient) -> None:
    full = bearer(FULL_KEY)

    unknown = await http.get("/v1/experiments/welcome-subjekt", headers=full)
    assert unknown.status_code == 404
    assert "declared: welcome-subject" in unknown.json()["detail"]
    assert (
        await http.post("/v1/experiments/welcome-subjekt/stop", json={}, headers=full)
    ).status_code == 404
    for winner in ("c", "holdout"):
        bad_arm = await http.post(
            "/v1/experiments/welcome-subject/stop", json={"winner": winner}, headers=full
        )
        assert bad_arm.status_code == 422
        assert f"{winner!r} is not an arm" in bad_arm.json()["detail"]

    stopped = await http.post(
        "/v1/experiments/welcome-subject/stop",
        json={"winner": "b", "note": "b's subject converts better"},
        headers=full,
    )
    assert stopped.status_code == 200, stopped.text
    body = stopped.json()
    assert (body["experiment"], body["winner"], body["decided_by"], body["note"]) == (
        "welcome-subject", "b", "api:tests", "b's subject converts better"
    )  # fmt: skip

    again = await http.post("/v1/experiments/welcome-subject/stop", headers=full)
    assert again.status_code == 409
    assert again.json()["detail"].startswith(
        "experiment 'welcome-subject' was already stopped by api:tests at "
    )
    report = (await http.get("/v1/experiments/welcome-subject", headers=full)).json()
    assert (report["status"], report["decision"]["winner"]) == ("stopped", "b")


async def test_the_openapi_schema_describes_the_experiment_routes(
    http: httpx.AsyncClient,
) -> None:
    paths = (await http.get("/openapi.json")).json()["paths"]

    stop = paths["/v1/experiments/{name}/stop"]["post"]
    assert set(stop["responses"]) >= {"200", "404", "409", "422"}
    assert "journeys:write" in stop["description"]
    report = paths["/v1/experiments/{name}"]["get"]
    assert {parameter["name"] for parameter in report["parameters"]} == {
        "name", "baseline", "mde", "format"
    }  # fmt: skip
    assert "reports:read" in paths["/v1/experiments"]["get"]["description"]
