"""The report's pipeline section, checked against a scripted March with exact figures.

The scenario writes what the real code writes: stage moves with
`record_transition` (with the writers' keys and causes), `rep_contacted` events
in the `events` table, SLA breaches as `escalate_sla_breach` records them.

March 2026, the period `[2026-03-01, 2026-04-01)`; SLAs 10 min / 48 h.
Twenty leads: w01-w10 (`src_webinar`), a01-a08 (`src_ads`), u01-u02 (no source).

| contact | lead | hand-off (MQL) → first touch | then |
|---|---|---|---|
| w01 | 03-02 09:00 | 03-04 09:00 → +4 min | SQL 03-06, opportunity 03-12 09:00 (10 days) |
| w02 | | 03-05 09:00 → +12 min (breach) | 48 h breach; SQL 03-08; opportunity 04-03 |
| w03 | | 03-06 09:00 → +6 min | recycled 03-07; MQL again 03-30 12:00 → +15 min (breach) |
| w04 | | 03-31 23:55 → touched 04-01 00:02 | nothing due by the end: not in the SLA shares |
| a01 | 03-03 09:00 | 03-05 09:00 → +2 min | SQL 03-08, opportunity 03-15 09:00 (12 days) |
| a02 | | 03-10 09:00 → +30 min (breach) | qualification breach; recycled 03-20 |
| u01 | | 03-12 09:00 → +9 min | qualification breach; recycled 03-25 |
| o01 (`src_webinar`) | 02-10 09:00 | 02-15 | SQL 02-20, opportunity 03-05 09:00 (23 days) |
| x01 (`src_partner`) | 04-02 | | after the period: not counted, its source not listed |
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from models.db import session_factory
from models.handoff import SlaPolicy
from models.pipeline import PipelineStage
from models.settings import ApiKey, Settings
from models.tables import Contact, ContactEvent, ContactMerge, SlaBreach
from rules.pipeline import record_transition, source_tags
from rules.pipeline_targets import SEED_002_TARGETS, Target
from runtime.temporal import SERVICE_RETRY, connect
from starter.api.server import running_api
from starter.services import pipeline_report
from starter.services.pipeline_report import Figure, PipelineSection, pipeline_section
from starter.services.report import full_report, render_html, render_table
from tests.cli import cli_environment, journeys
from tests.gateway import FULL_KEY, gateway_settings

SINCE = datetime(2026, 3, 1, tzinfo=UTC)
UNTIL = datetime(2026, 4, 1, tzinfo=UTC)
NOW = datetime(2026, 6, 1, tzinfo=UTC)
"""When the report is made (long after the period: figures are measured as of its end)."""
SLA = SlaPolicy()
NO_TEMPORAL = "127.0.0.1:1"

_ids = itertools.count()


def march(day: int, hour: int = 9, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


class Script:
    """Writes the scenario as the real writers do."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def lead(self, contact_id: str, at: datetime, *tags: str) -> None:
        """A contact created at `at` (as `upsert_contact`: the `lead` move, keyed by id)."""
        async with session_factory(self.engine)() as session:
            contact = Contact(id=contact_id, tags=sorted(tags), created_at=at, updated_at=at)
            session.add(contact)
            sources = source_tags(contact.tags)
            cause = f"created ({', '.join(sources)})" if sources else "created"
            await record_transition(
                session, contact, PipelineStage.LEAD, cause=cause, at=at, key=f"{contact_id}/lead"
            )
            await session.commit()

    async def move(self, contact_id: str, stage: PipelineStage, at: datetime) -> None:
        async with session_factory(self.engine)() as session:
            contact = await session.get(Contact, contact_id)
            assert contact is not None
            await record_transition(
                session,
                contact,
                stage,
                cause=f"scenario {stage}",
                at=at,
                key=f"{stage}-{contact_id}/{at:%Y%m%dT%H%M}/{stage}",
            )
            await session.commit()

    async def hand_off(self, contact_id: str, at: datetime, *, touch_after: int | None) -> None:
        """The MQL move of a hand-off (as `hand_off_lead`), and the rep's first touch."""
        await self.move(contact_id, PipelineStage.MQL, at)
        if touch_after is not None:
            await self.touch(contact_id, at + timedelta(minutes=touch_after))

    async def touch(self, contact_id: str, at: datetime) -> None:
        async with session_factory(self.engine)() as session:
            session.add(
                ContactEvent(
                    contact_id=contact_id,
                    event_id=f"touch-{next(_ids)}",
                    type="rep_contacted",
                    occurred_at=at,
                    properties={"rep_id": "sdr-mia"},
                    batch_key="scenario",
                )
            )
            await session.commit()

    async def duplicate_on_entry(self, survivor: str, lead: str, at: datetime) -> None:
        """A lead found to be `survivor` on entry: the audit row the entry merge writes."""
        async with session_factory(self.engine)() as session:
            session.add(
                ContactMerge(
                    survivor_id=survivor,
                    loser_id=lead,
                    matched_by="email",
                    actor="api:test",
                    merged_at=at,
                )
            )
            await session.commit()

    async def breach(self, contact_id: str, handoff: datetime, sla: str, owner: str) -> None:
        """The breach `escalate_sla_breach` records at the deadline."""
        due = handoff + (SLA.first_touch if sla == "first_touch" else SLA.qualification)
        async with session_factory(self.engine)() as session:
            session.add(
                SlaBreach(
                    idempotency_key=f"lead-sla-{contact_id}/{handoff:%Y%m%dT%H%M}/{sla}-breach",
                    contact_id=contact_id,
                    owner_id=owner,
                    sla=sla,
                    due_at=due,
                    breached_at=due,
                )
            )
            await session.commit()


@pytest.fixture
async def march_2026(engine: AsyncEngine) -> AsyncEngine:
    """The scenario of the module docstring, in the test's SQLite database."""
    return await write_march_2026(engine)


@pytest.fixture
async def march_2026_any_database(database: AsyncEngine) -> AsyncEngine:
    """The scenario in SQLite, then in PostgreSQL (where its binaries are installed)."""
    return await write_march_2026(database)


async def write_march_2026(engine: AsyncEngine) -> AsyncEngine:
    """Write the scenario of the module docstring."""
    script = Script(engine)
    stage = PipelineStage
    await script.lead("o01", datetime(2026, 2, 10, 9, tzinfo=UTC), "src_webinar")
    await script.hand_off("o01", datetime(2026, 2, 15, 9, tzinfo=UTC), touch_after=3)
    await script.move("o01", stage.SQL, datetime(2026, 2, 20, 9, tzinfo=UTC))
    await script.move("o01", stage.OPPORTUNITY, march(5))

    await script.lead("w01", march(2), "src_webinar", "int_email")
    await script.lead("a01", march(3), "src_ads")
    for number in range(2, 11):
        await script.lead(f"w{number:02}", march(2, 10 + number), "src_webinar")
    for number in range(2, 9):
        await script.lead(f"a{number:02}", march(3, 10 + number), "src_ads")
    await script.lead("u01", march(4))
    await script.lead("u02", march(4, 11))

    await script.duplicate_on_entry("w01", "w01-again", march(9))
    await script.hand_off("w01", march(4), touch_after=4)
    await script.touch("w01", march(4, 10))  # a later touch: not the first
    await script.move("w01", stage.SQL, march(6))
    await script.move("w01", stage.OPPORTUNITY, march(12))

    await script.hand_off("w02", march(5), touch_after=12)
    await script.breach("w02", march(5), "first_touch", "sdr-mia")
    await script.breach("w02", march(5), "qualification", "sdr-mia")
    await script.move("w02", stage.SQL, march(8))
    await script.move("w02", stage.OPPORTUNITY, datetime(2026, 4, 3, 9, tzinfo=UTC))

    await script.hand_off("w03", march(6), touch_after=6)
    await script.move("w03", stage.RECYCLED, march(7))
    await script.hand_off("w03", march(30, 12), touch_after=15)
    await script.breach("w03", march(30, 12), "first_touch", "sdr-leo")

    await script.hand_off("w04", march(31, 23, 55), touch_after=7)  # touched on 04-01
    await script.breach("w04", march(31, 23, 55), "first_touch", "sdr-leo")  # at 04-01 00:05

    await script.hand_off("a01", march(5), touch_after=2)
    await script.move("a01", stage.SQL, march(8))
    await script.move("a01", stage.OPPORTUNITY, march(15))

    await script.hand_off("a02", march(10), touch_after=30)
    await script.breach("a02", march(10), "first_touch", "sdr-leo")
    await script.breach("a02", march(10), "qualification", "sdr-leo")
    await script.move("a02", stage.RECYCLED, march(20))

    await script.hand_off("u01", march(12), touch_after=9)
    await script.breach("u01", march(12), "qualification", "sdr-mia")
    await script.move("u01", stage.RECYCLED, march(25))

    await script.lead("x01", datetime(2026, 4, 2, 9, tzinfo=UTC), "src_partner")
    return engine


Summary = tuple[float | None, int | None, int | None, bool | None]
"""(value, cohort, reached, met) of a figure."""


def summary(figures: Mapping[str, Figure]) -> dict[str, Summary]:
    return {
        key: (figure.value, figure.cohort, figure.reached, figure.met)
        for key, figure in figures.items()
    }


async def march_section(engine: AsyncEngine) -> PipelineSection:
    return await pipeline_section(engine, since=SINCE, until=UNTIL, now=NOW, sla=SLA)


async def test_every_figure_overall_matches_the_scenario(
    march_2026_any_database: AsyncEngine,
) -> None:
    section = await march_section(march_2026_any_database)

    assert (section.since, section.until, section.as_of) == (SINCE, UNTIL, UNTIL)
    assert summary(section.overall) == {
        # 20 March leads (o01 came earlier, x01 later); 7 became MQL: 35% is inside 20-35%.
        "lead_to_mql": (35.0, 20, 7, True),
        # MQL in March: w01 w02 w03 w04 a01 a02 u01; SQL: w01 w02 a01.
        "mql_to_sql": (42.9, 7, 3, True),
        # SQL in March: w01 w02 a01; opportunity by the end: w01 a01 (w02's is in April).
        "sql_to_opportunity": (66.7, 3, 2, False),
        # Touched hand-offs: 2 4 6 9 12 15 30 minutes (w04's touch is in April).
        "median_first_touch": (9.0, 7, None, True),
        # Deadline passed: all 8 but w04; breached: w02, w03's second, a02.
        "first_touch_sla_met": (57.1, 7, 4, None),
        # 48 h passed: w01 w02 w03 a01 a02 u01 (not w03's second, w04); breached: w02 a02 u01.
        "qualified_within_sla": (50.0, 6, 3, None),
        # New opportunities: w01 10 days, a01 12, o01 23 (its lead in February).
        "median_days_to_opportunity": (12.0, 3, None, True),
        # Recycled in March: w03 a02 u01; MQL again: w03.
        "recycled_to_mql": (33.3, 3, 1, True),
    }
    assert [figure.label for figure in section.overall.values()] == [
        "lead → MQL",
        "MQL → SQL",
        "SQL → opportunity",
        "median time to first touch",
        "first touch within 10 min",
        "qualified within 48 h",
        "median days lead → opportunity",
        "recycled → MQL again",
    ]
    assert {key: figure.target for key, figure in section.overall.items()} == {
        "lead_to_mql": "20–35%",
        "mql_to_sql": "40–60%",
        "sql_to_opportunity": "40–60%",
        "median_first_touch": "≤ 10 min",
        "first_touch_sla_met": None,
        "qualified_within_sla": None,
        "median_days_to_opportunity": "≤ 14 days",
        "recycled_to_mql": "≥ 5%",
    }


async def test_every_figure_per_source_matches_the_scenario(march_2026: AsyncEngine) -> None:
    section = await march_section(march_2026)

    assert list(section.by_source) == ["src_ads", "src_webinar", "unknown"]
    assert summary(section.by_source["src_webinar"]) == {
        "lead_to_mql": (40.0, 10, 4, False),
        "mql_to_sql": (50.0, 4, 2, True),
        "sql_to_opportunity": (50.0, 2, 1, True),
        "median_first_touch": (9.0, 4, None, True),  # 4 6 12 15
        "first_touch_sla_met": (50.0, 4, 2, None),
        "qualified_within_sla": (66.7, 3, 2, None),
        "median_days_to_opportunity": (16.5, 2, None, False),  # w01 10, o01 23
        "recycled_to_mql": (100.0, 1, 1, True),
    }
    assert summary(section.by_source["src_ads"]) == {
        "lead_to_mql": (25.0, 8, 2, True),
        "mql_to_sql": (50.0, 2, 1, True),
        "sql_to_opportunity": (100.0, 1, 1, False),  # above the 40-60% band
        "median_first_touch": (16.0, 2, None, False),  # 2 30
        "first_touch_sla_met": (50.0, 2, 1, None),
        "qualified_within_sla": (50.0, 2, 1, None),
        "median_days_to_opportunity": (12.0, 1, None, True),
        "recycled_to_mql": (0.0, 1, 0, False),
    }
    assert summary(section.by_source["unknown"]) == {
        "lead_to_mql": (50.0, 2, 1, False),
        "mql_to_sql": (0.0, 1, 0, False),
        "sql_to_opportunity": (None, 0, 0, None),
        "median_first_touch": (9.0, 1, None, True),
        "first_touch_sla_met": (100.0, 1, 1, None),
        "qualified_within_sla": (0.0, 1, 0, None),
        "median_days_to_opportunity": (None, 0, None, None),
        "recycled_to_mql": (0.0, 1, 0, False),
    }


async def test_without_an_end_the_figures_are_measured_now(march_2026: AsyncEngine) -> None:
    """From March on, measured at NOW: April's moves count, and every deadline has passed."""
    section = await pipeline_section(march_2026, since=SINCE, until=None, now=NOW, sla=SLA)

    assert (section.until, section.as_of) == (None, NOW)
    overall = summary(section.overall)
    assert overall["lead_to_mql"] == (33.3, 21, 7, True)  # x01 came in April
    assert overall["sql_to_opportunity"] == (100.0, 3, 3, False)  # w02's April opportunity
    # w04 is touched (7 min) and its first-touch deadline has passed, breached.
    assert overall["median_first_touch"] == (8.0, 8, None, True)
    assert overall["first_touch_sla_met"] == (50.0, 8, 4, None)
    assert overall["qualified_within_sla"] == (62.5, 8, 5, None)
    assert list(section.by_source) == ["src_ads", "src_partner", "src_webinar", "unknown"]


async def test_duplicates_and_violations_per_rep_come_from_the_merges_and_breaches(
    march_2026: AsyncEngine,
) -> None:
    section = await march_section(march_2026)

    # 20 contacts created in March, and w01's duplicate found on entry on 03-09.
    assert summary({"duplicate_rate": section.duplicate_rate}) == {
        "duplicate_rate": (4.8, 21, 1, False)
    }
    # w04's first-touch breach falls on 04-01 00:05, after the period.
    assert section.sla_violations_by_rep == {"sdr-leo": 3, "sdr-mia": 3}
    assert pipeline_report.render_table(section)[-2:] == [
        "duplicate rate: 4.8% (1/21) ✗ (target ≤ 2%)",
        "SLA violations per rep: sdr-leo 3, sdr-mia 3",
    ]


def test_targets_are_seed_002s_and_a_band_is_met_only_inside_it() -> None:
    assert {key: str(target) for key, target in SEED_002_TARGETS.items()} == {
        "lead_to_mql": "20–35%",
        "mql_to_sql": "40–60%",
        "sql_to_opportunity": "40–60%",
        "median_first_touch": "≤ 10 min",
        "median_days_to_opportunity": "≤ 14 days",
        "recycled_to_mql": "≥ 5%",
        "duplicate_rate": "≤ 2%",
    }
    band = Target(low=20, high=35)
    assert [band.met(value) for value in (19.9, 20, 35, 35.1, None)] == [
        False,
        True,
        True,
        False,
        None,
    ]
    assert Target(high=10, unit="min").met(10) and not Target(high=10, unit="min").met(10.1)
    assert Target(low=5).met(5) and not Target(low=5).met(4.9)


# --- rendering ------------------------------------------------------------------------------


async def test_table_shows_each_figure_per_source_with_its_target_and_mark(
    march_2026: AsyncEngine,
) -> None:
    report = await full_report(march_2026, since=SINCE, until=UNTIL, sla=SLA, now=NOW)

    text = render_table(report).splitlines()
    start = text.index("Pipeline 2026-03-01 00:00 – 2026-04-01 00:00 UTC (seed 002's targets)")
    assert text[0] == "Journey funnel 2026-03-01 00:00 – 2026-04-01 00:00 UTC"
    assert text[start:] == [
        "Pipeline 2026-03-01 00:00 – 2026-04-01 00:00 UTC (seed 002's targets)",
        "figure                          target     all              src_ads"
        "          src_webinar        unknown",
        "lead → MQL                      20–35%     35% (7/20) ✓     25% (2/8) ✓"
        "      40% (4/10) ✗       50% (1/2) ✗",
        "MQL → SQL                       40–60%     42.9% (3/7) ✓    50% (1/2) ✓"
        "      50% (2/4) ✓        0% (0/1) ✗",
        "SQL → opportunity               40–60%     66.7% (2/3) ✗    100% (1/1) ✗"
        "     50% (1/2) ✓        -",
        "median time to first touch      ≤ 10 min   9 min (n=7) ✓    16 min (n=2) ✗"
        "   9 min (n=4) ✓      9 min (n=1) ✓",
        "first touch within 10 min       -          57.1% (4/7)      50% (1/2)"
        "        50% (2/4)          100% (1/1)",
        "qualified within 48 h           -          50% (3/6)        50% (1/2)"
        "        66.7% (2/3)        0% (0/1)",
        "median days lead → opportunity  ≤ 14 days  12 days (n=3) ✓  12 days (n=1) ✓"
        "  16.5 days (n=2) ✗  -",
        "recycled → MQL again            ≥ 5%       33.3% (1/3) ✓    0% (0/1) ✗"
        "       100% (1/1) ✓       0% (0/1) ✗",
        "duplicate rate: 4.8% (1/21) ✗ (target ≤ 2%)",
        "SLA violations per rep: sdr-leo 3, sdr-mia 3",
    ]


async def test_html_section_marks_met_and_unmet_cells(march_2026: AsyncEngine) -> None:
    report = await full_report(march_2026, since=SINCE, until=UNTIL, sla=SLA, now=NOW)

    page = render_html(report)

    [section] = re.findall(r'<section id="pipeline">.*?</section>', page, flags=re.DOTALL)
    assert "<th>figure</th><th>target</th><th>all</th><th>src_ads</th>" in section
    row = re.search(r'<tr><th scope="row">SQL → opportunity</th>.*?</tr>', section)
    assert row is not None
    assert re.findall(r'<td class="n( \w+)?">([^<]*)</td>', row.group()) == [
        (" unmet", "66.7% (2/3) ✗"),
        (" unmet", "100% (1/1) ✗"),
        (" met", "50% (1/2) ✓"),
        ("", "-"),
    ]
    assert "<td>40–60%</td>" in row.group()
    assert "<p>duplicate rate: 4.8% (1/21) ✗ (target ≤ 2%)</p>" in section


async def test_cli_json_has_the_pipeline_section_and_refuses_a_bad_until(
    march_2026: AsyncEngine, settings: Settings, tmp_path: Path
) -> None:
    env = cli_environment(settings, NO_TEMPORAL)

    result = await journeys(
        "report", "--json", "--since", "2026-03-01", "--until", "2026-04-01", env=env
    )

    assert result.returncode == 0, result.stderr
    body = result.json()
    assert (body["since"], body["until"]) == ("2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z")
    expected = await march_section(march_2026)
    assert body["pipeline"] == expected.model_dump(mode="json")
    assert body["pipeline"]["overall"]["mql_to_sql"] == {
        "label": "MQL → SQL",
        "value": 42.9,
        "unit": "%",
        "cohort": 7,
        "reached": 3,
        "target": "40–60%",
        "met": True,
    }

    one_journey = await journeys("report", "--json", "--journey", "welcome-series", env=env)
    assert one_journey.json()["pipeline"] is None

    unreadable = await journeys("report", env={**env, "SALES_FILE": str(tmp_path / "missing.toml")})
    assert unreadable.returncode == 1
    assert unreadable.stderr.strip().endswith("fix SALES_FILE (the sales hand-off configuration)")
    assert "Traceback" not in unreadable.stderr

    for until, problem in (("soon", "expected an ISO date"), ("2026-02-01", "after --since")):
        refused = await journeys("report", "--since", "2026-03-01", "--until", until, env=env)
        assert refused.returncode == 2
        assert "--until" in refused.stderr and problem in refused.stderr


async def test_api_serves_the_report_with_its_pipeline_section(
    march_2026: AsyncEngine, settings: Settings
) -> None:
    served = gateway_settings(settings)
    served.api_keys.append(
        ApiKey(
            name="reports",
            key=SecretStr("tests-reports-key-0123456789abcd"),
            scopes={"reports:read"},
        )
    )

    async def temporal() -> Client:  # the report reads the database only
        return await connect(target_host=NO_TEMPORAL, lazy=True, retry=SERVICE_RETRY)

    async with (
        running_api(served, host="127.0.0.1", port=0, temporal=temporal) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as http,
    ):
        reader = {"Authorization": "Bearer tests-reports-key-0123456789abcd"}
        query = {"since": "2026-03-01", "until": "2026-04-01"}
        answer = await http.get("/v1/report", params=query, headers=reader)
        assert answer.status_code == 200, answer.text
        expected = await march_section(march_2026)
        assert answer.json()["pipeline"] == expected.model_dump(mode="json")

        page = await http.get("/v1/report", params={**query, "format": "html"}, headers=reader)
        assert page.headers["content-type"].startswith("text/html")
        assert '<section id="pipeline">' in page.text and "42.9% (3/7) ✓" in page.text

        bad = await http.get("/v1/report", params={"until": "next week"}, headers=reader)
        assert bad.status_code == 422
        assert bad.json()["detail"][0]["loc"] == ["query", "until"]
        assert "expected an ISO date" in bad.json()["detail"][0]["msg"]

        contacts_only = {"Authorization": "Bearer tests-read-only-key-0123456789ab"}
        refused = await http.get("/v1/report", headers=contacts_only)
        assert refused.status_code == 403
        assert (
            await http.get("/v1/report", headers={"Authorization": f"Bearer {FULL_KEY}"})
        ).status_code == 200
