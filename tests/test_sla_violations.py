"""SLA violations per rep: the service over a real database, `journeys sla violations` and
`GET /v1/sla/violations` on the real gateway on loopback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import WorkflowEnvironment

from models.db import session_factory
from models.handoff import SlaKind
from models.settings import Settings
from models.tables import SlaBreach
from starter.services.sla import sla_violations_by_rep
from tests.cli import cli_environment, journeys
from tests.gateway import READ_ONLY_KEY, gateway_settings, serving_gateway

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)
NO_TEMPORAL = "127.0.0.1:1"
"""The command reads the database only: no Temporal server is needed."""


@pytest.fixture
async def breaches(engine: AsyncEngine) -> AsyncEngine:
    """Mia: 2 first-touch breaches and 1 SQL follow-up; Leo: 1 qualification; one of Mia's
    before the period (T0 - 1 day)."""
    rows = [
        ("a", "sdr-mia", SlaKind.FIRST_TOUCH, T0 - DAY),
        ("b", "sdr-mia", SlaKind.FIRST_TOUCH, T0),
        ("c", "sdr-mia", SlaKind.FIRST_TOUCH, T0 + DAY),
        ("d", "sdr-mia", SlaKind.SQL_FOLLOW_UP, T0 + 2 * DAY),
        ("e", "sdr-leo", SlaKind.QUALIFICATION, T0 + 3 * DAY),
    ]
    async with session_factory(engine)() as session:
        session.add_all(
            SlaBreach(
                idempotency_key=f"lead-sla-{contact}/{sla}-breach",
                contact_id=contact,
                owner_id=owner,
                sla=sla,
                due_at=breached_at,
                breached_at=breached_at,
            )
            for contact, owner, sla, breached_at in rows
        )
        await session.commit()
    return engine


def per_rep(counted: object) -> list[tuple[str, int, dict[str, int]]]:
    assert hasattr(counted, "reps")
    return [(rep.owner_id, rep.total, dict(rep.by_sla)) for rep in counted.reps]


async def test_violations_are_counted_per_rep_and_sla_in_the_period(breaches: AsyncEngine) -> None:
    everything = await sla_violations_by_rep(breaches, None, None)
    period = await sla_violations_by_rep(breaches, T0, T0 + 3 * DAY)

    assert everything.total == 5
    assert per_rep(everything) == [
        ("sdr-mia", 4, {"first_touch": 3, "qualification": 0, "sql_follow_up": 1}),
        ("sdr-leo", 1, {"first_touch": 0, "qualification": 1, "sql_follow_up": 0}),
    ]
    # From T0 (included) to T0 + 3 days (excluded): Leo's is out, so is Mia's first one.
    assert (period.since, period.until, period.total) == (T0, T0 + 3 * DAY, 3)
    assert per_rep(period) == [
        ("sdr-mia", 3, {"first_touch": 2, "qualification": 0, "sql_follow_up": 1}),
    ]
    naive = await sla_violations_by_rep(breaches, T0.replace(tzinfo=None), None)
    assert naive.total == 4


async def test_cli_prints_a_table_and_json_and_refuses_a_bad_date_in_one_line(
    breaches: AsyncEngine, settings: Settings
) -> None:
    env = cli_environment(settings, NO_TEMPORAL)

    table = await journeys("sla", "violations", "--since", "2026-03-02", env=env)
    as_json = await journeys("sla", "violations", "--json", "--until", "2026-03-02", env=env)
    refused = await journeys("sla", "violations", "--since", "last week", env=env)

    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines() == [
        "rep       first_touch  qualification  sql_follow_up  total",
        "sdr-mia   2            0              1              3",
        "sdr-leo   0            1              0              1",
        "all reps  2            1              1              4",
    ]
    assert as_json.returncode == 0, as_json.stderr
    assert as_json.json()["reps"] == [
        {
            "owner_id": "sdr-mia",
            "total": 1,
            "by_sla": {"first_touch": 1, "qualification": 0, "sql_follow_up": 0},
        }
    ]
    assert refused.returncode == 2
    assert "--since" in refused.stderr
    assert "expected an ISO date or datetime" in refused.stderr
    assert "Traceback" not in refused.stderr


async def test_api_route_counts_per_rep_and_refuses_a_bad_date_with_422(
    breaches: AsyncEngine, settings: Settings, time_skipping_env: WorkflowEnvironment
) -> None:
    async with serving_gateway(
        time_skipping_env.client, gateway_settings(settings), worker=False
    ) as gateway:
        counted = await gateway.http.get(
            "/v1/sla/violations", params={"since": "2026-03-02T00:00:00Z"}
        )
        bad = await gateway.http.get("/v1/sla/violations", params={"since": "last week"})
        reader = await gateway.http.get(
            "/v1/sla/violations", headers={"Authorization": f"Bearer {READ_ONLY_KEY}"}
        )

    assert counted.status_code == 200, counted.text
    assert counted.json()["total"] == 4
    assert [(rep["owner_id"], rep["total"]) for rep in counted.json()["reps"]] == [
        ("sdr-mia", 3),
        ("sdr-leo", 1),
    ]
    assert bad.status_code == 422
    assert "since" in bad.text
    assert reader.status_code == 403  # the read-only key has contacts:read only
