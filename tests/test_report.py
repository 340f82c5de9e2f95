"""`journeys report`: funnel figures counted from a scripted database, in every format."""

from __future__ import annotations

import itertools
import re
import xml.etree.ElementTree as ElementTree
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

from models.db import session_factory
from models.settings import Settings
from models.tables import ContactEvent, JourneyRun, MessageLog
from starter.services.report import (
    FunnelReport,
    JourneyFunnel,
    StepFunnel,
    funnel_report,
    parse_since,
    render_html,
    render_table,
)
from tests.cli import cli_environment, journeys

T0 = datetime(2025, 3, 10, 9, 0, tzinfo=UTC)
"""When the scenario's runs start (inside the `--since` window)."""
OLD = datetime(2025, 2, 1, 9, 0, tzinfo=UTC)
"""Before the `--since` window."""
SINCE = datetime(2025, 3, 1, tzinfo=UTC)

NO_TEMPORAL = "127.0.0.1:1"
"""The report reads the database only: no Temporal server is needed."""

_event_ids = itertools.count()


def run(
    journey: str,
    contact: str,
    status: str,
    step: str,
    reason: str | None = None,
    *,
    started: datetime = T0,
) -> JourneyRun:
    """A journey-run row as the run log writes it."""
    return JourneyRun(
        run_key=f"{journey}-{contact}/{started:%Y%m%dT%H%M%SZ}",
        workflow_id=f"{journey}-{contact}",
        journey=journey,
        contact_id=contact,
        status=status,
        step=step,
        exit_reason=reason,
        started_at=started,
        ended_at=None if status == "running" else started + timedelta(days=1),
    )


def message(
    journey: str, step: str, contact: str, status: str, *, created: datetime = T0
) -> MessageLog:
    """A message-log row of one step for one contact."""
    return MessageLog(
        idempotency_key=f"{journey}-{contact}/{step}",
        contact_id=contact,
        journey=journey,
        step=step,
        channel="email",
        template=f"{journey}/{step}",
        status=status,
        created_at=created,
        updated_at=created,
    )


def email_event(
    event_type: str, contact: str, journey: str, step: str, *, at: datetime = T0
) -> ContactEvent:
    """An email event as the provider webhook stores it (with the message's journey and step)."""
    return ContactEvent(
        contact_id=contact,
        event_id=f"evt-{next(_event_ids)}",
        type=event_type,
        occurred_at=at,
        properties={"message_id": f"msg-{contact}-{step}", "journey": journey, "step": step},
        batch_key="test",
    )


async def add_rows(engine: AsyncEngine, rows: list[SQLModel]) -> None:
    async with session_factory(engine)() as session:
        session.add_all(rows)
        await session.commit()


def welcome(step: str, contact: str, status: str, *, created: datetime = T0) -> MessageLog:
    return message("welcome-series", step, contact, status, created=created)


@pytest.fixture
async def scenario(engine: AsyncEngine) -> AsyncEngine:
    """Five welcome-series runs and two pricing-abandon runs (+ one old welcome run).

    Welcome series (since 2025-03-01): w1-w3 completed, w4 exited `unsubscribed`
    at day1, w5 running at day2. w0 started on 2025-02-01 and exited
    `purchased` at day0. Pricing abandon: p1 exited `purchased` at the email,
    p2 completed.
    """
    later = T0 + timedelta(hours=1)
    await add_rows(
        engine,
        [
            run("welcome-series", "w1", "completed", "route"),
            run("welcome-series", "w2", "completed", "route"),
            run("welcome-series", "w3", "completed", "route"),
            run("welcome-series", "w4", "exited", "day1", "unsubscribed"),
            run("welcome-series", "w5", "running", "day2"),
            run("welcome-series", "w0", "exited", "day0", "purchased", started=OLD),
            run("pricing-abandon", "p1", "exited", "email", "purchased"),
            run("pricing-abandon", "p2", "completed", "day2-sms"),
            # day0: 4 sent, 1 without consent (+ w0's, before the window)
            welcome("day0", "w1", "sent"),
            welcome("day0", "w2", "sent"),
            welcome("day0", "w3", "sent"),
            welcome("day0", "w4", "sent"),
            welcome("day0", "w5", "skipped_no_consent"),
            welcome("day0", "w0", "sent", created=OLD),
            # day1: 3 sent, 1 failed, w4's cancelled when it unsubscribed
            welcome("day1", "w1", "sent"),
            welcome("day1", "w2", "sent"),
            welcome("day1", "w3", "failed"),
            welcome("day1", "w4", "cancelled"),
            welcome("day1", "w5", "sent"),
            # day2: 1 sent, 2 refused by the policy, 1 held back by quiet hours
            welcome("day2", "w1", "sent"),
            welcome("day2", "w2", "skipped_no_address"),
            welcome("day2", "w3", "suppressed"),
            welcome("day2", "w5", "deferred"),
            # day4: 2 sent, 1 waiting for the provider; day7: 3 sent
            welcome("day4", "w1", "sent"),
            welcome("day4", "w2", "sent"),
            welcome("day4", "w3", "pending"),
            welcome("day7", "w1", "sent"),
            welcome("day7", "w2", "sent"),
            welcome("day7", "w3", "sent"),
            message("pricing-abandon", "email", "p1", "sent"),
            message("pricing-abandon", "email", "p2", "sent"),
            message("pricing-abandon", "day2-sms", "p2", "skipped_no_consent"),
            # opens and clicks: w1 opens day0 twice (one contact), w2 once
            email_event("email_opened", "w1", "welcome-series", "day0", at=later),
            email_event("email_opened", "w1", "welcome-series", "day0", at=later),
            email_event("email_opened", "w2", "welcome-series", "day0", at=later),
            email_event("email_clicked", "w1", "welcome-series", "day0", at=later),
            email_event("email_opened", "w1", "welcome-series", "day1", at=later),
            email_event("email_clicked", "w1", "welcome-series", "day1", at=later),
            email_event("email_clicked", "w1", "welcome-series", "day1", at=later),
            email_event("email_opened", "w0", "welcome-series", "day0", at=OLD),
            # not opens or clicks of the welcome series:
            email_event("email_delivered", "w3", "welcome-series", "day0", at=later),
            email_event("email_opened", "w3", "nurture", "week1", at=later),
            email_event("email_opened", "p1", "pricing-abandon", "email", at=later),
            ContactEvent(
                contact_id="w4",
                event_id="no-journey",
                type="email_opened",
                occurred_at=later,
                properties={},
                batch_key="test",
            ),
        ],
    )
    return engine


def step_of(funnel: JourneyFunnel, step: str) -> StepFunnel:
    [found] = [counted for counted in funnel.steps if counted.step == step]
    return found


def counts(step: StepFunnel) -> dict[str, Any]:
    return step.model_dump(exclude={"step", "label"})


def figures(**given: Any) -> dict[str, Any]:
    """Every step column, zero unless given."""
    columns = ["entered", "sent", "pending", "deferred", "suppressed", "failed", "cancelled"]
    columns += ["opened", "clicked", "converted"]
    return {column: 0 for column in columns} | {"exited": {}} | given


async def test_funnel_since_counts_runs_messages_opens_and_conversions(
    scenario: AsyncEngine,
) -> None:
    report = await funnel_report(scenario, since=SINCE)

    assert report.since == SINCE
    assert [funnel.journey for funnel in report.journeys] == [  # the catalog's order: by name
        "nurture",
        "pricing-abandon",
        "welcome-series",
    ]
    nurture, pricing, welcome_funnel = report.journeys

    assert welcome_funnel.model_dump(exclude={"steps"}) == {
        "journey": "welcome-series",
        "title": "Welcome series",
        "entered": 5,
        "running": 1,
        "completed": 3,
        "exited": {"unsubscribed": 1},
        "converted": 0,
        "send_pauses": [],
    }
    assert [step.step for step in welcome_funnel.steps] == [
        "day0",
        "day1",
        "day2",
        "day4",
        "day7",
        "route",
    ]
    day0, day1, day2, day4, day7, route = welcome_funnel.steps
    assert day0.label == "Day 0 → Email 1: Welcome + lead magnet delivery"
    assert counts(day0) == figures(entered=5, sent=4, suppressed=1, opened=2, clicked=1)
    assert counts(day1) == figures(
        entered=5, sent=3, failed=1, cancelled=1, opened=1, clicked=1, exited={"unsubscribed": 1}
    )
    assert counts(day2) == figures(entered=4, sent=1, suppressed=2, deferred=1)
    assert counts(day4) == figures(entered=3, sent=2, pending=1)
    assert counts(day7) == figures(entered=3, sent=3)
    assert counts(route) == figures()

    assert pricing.model_dump(exclude={"steps"}) == {
        "journey": "pricing-abandon",
        "title": "Pricing-page abandon",
        "entered": 2,
        "running": 0,
        "completed": 1,
        "exited": {"purchased": 1},
        "converted": 1,
        "send_pauses": [],
    }
    assert [step.step for step in pricing.steps] == ["email", "day2-sms"]
    assert counts(step_of(pricing, "email")) == figures(
        entered=2, sent=2, opened=1, converted=1, exited={"purchased": 1}
    )
    assert counts(step_of(pricing, "day2-sms")) == figures(entered=1, suppressed=1)

    # Only an open of the nurture's first email: no runs, no messages.
    assert (nurture.entered, nurture.running, nurture.converted) == (0, 0, 0)
    # The plan's steps (the general track, the offer, the roundup), then those of older runs
    # that messages name (the weekly emails before the tracks).
    assert [step.step for step in nurture.steps] == [
        "general.sender-checklist",
        "general.customer-story",
        "general.pre-send-checklist",
        "offer",
        "roundup",
        "week1",
    ]
    assert counts(step_of(nurture, "week1")) == figures(opened=1)


async def test_without_since_older_runs_messages_and_events_count(scenario: AsyncEngine) -> None:
    report = await funnel_report(scenario)

    assert report.since is None
    welcome_funnel = report.journeys[2]
    assert (welcome_funnel.entered, welcome_funnel.converted) == (6, 1)
    assert welcome_funnel.exited == {"purchased": 1, "unsubscribed": 1}
    assert counts(step_of(welcome_funnel, "day0")) == figures(
        entered=6,
        sent=5,
        suppressed=1,
        opened=3,
        clicked=1,
        converted=1,
        exited={"purchased": 1},
    )


async def test_since_is_a_moment_naive_means_utc(scenario: AsyncEngine) -> None:
    naive = await funnel_report(scenario, since=datetime(2025, 3, 1))
    assert naive == await funnel_report(scenario, since=SINCE)

    # 10:30 at +01:00 is 09:30 UTC: after everything the scenario wrote at 09:00
    # except the opens and clicks (10:00 UTC).
    plus_one = timezone(timedelta(hours=1))
    after_t0 = await funnel_report(scenario, since=datetime(2025, 3, 10, 10, 30, tzinfo=plus_one))
    welcome_funnel = after_t0.journeys[2]
    assert welcome_funnel.entered == 0
    assert counts(step_of(welcome_funnel, "day0")) == figures(opened=2, clicked=1)


def test_since_option_takes_iso_dates_and_datetimes() -> None:
    assert parse_since("2025-03-01") == datetime(2025, 3, 1, tzinfo=UTC)
    assert parse_since("2025-03-10T09:30") == datetime(2025, 3, 10, 9, 30, tzinfo=UTC)
    assert parse_since("2025-03-10T10:30:00+01:00") == datetime(2025, 3, 10, 9, 30, tzinfo=UTC)
    assert parse_since("2025-03-10T09:30:00Z") == datetime(2025, 3, 10, 9, 30, tzinfo=UTC)
    for unreadable in ("last tuesday", "9999-12-31T23:59:59-01:00"):  # the latter overflows UTC
        with pytest.raises(ValueError, match="expected an ISO date or datetime"):
            parse_since(unreadable)


async def test_journey_filter_reports_that_journey_only(scenario: AsyncEngine) -> None:
    report = await funnel_report(scenario, journey="pricing-abandon", since=SINCE)

    assert [funnel.journey for funnel in report.journeys] == ["pricing-abandon"]
    assert report.journeys == (await funnel_report(scenario, since=SINCE)).journeys[1:2]


async def test_steps_follow_the_plan_then_enrolled_first_unknown_last(
    engine: AsyncEngine,
) -> None:
    await add_rows(
        engine,
        [
            # renewal-countdown's plan depends on its input: steps as first written
            run("renewal-countdown", "r1", "exited", "reminder-30d", "renewed"),
            run("renewal-countdown", "r2", "exited", "enrolled", "operator"),
            message("renewal-countdown", "reminder-30d", "r1", "sent", created=T0),
            message("renewal-countdown", "reminder-60d", "r1", "sent", created=OLD),
            message("renewal-countdown", "reminder-60d", "r2", "deferred", created=T0),
            # a step the welcome series' plan no longer names, and a journey no longer registered
            message("welcome-series", "day3-old", "w1", "sent"),
            message("spring-promo", "hello", "s1", "sent"),
        ],
    )

    report = await funnel_report(engine)

    assert [funnel.journey for funnel in report.journeys] == [
        "renewal-countdown",
        "welcome-series",
        "spring-promo",
    ]
    renewal, welcome_funnel, promo = report.journeys
    assert [step.step for step in welcome_funnel.steps][-2:] == ["route", "day3-old"]
    assert step_of(welcome_funnel, "day3-old").label is None
    assert [step.step for step in renewal.steps] == ["enrolled", "reminder-60d", "reminder-30d"]
    assert renewal.exited == {"operator": 1, "renewed": 1}
    assert renewal.converted == 1
    assert counts(step_of(renewal, "enrolled")) == figures(exited={"operator": 1})
    assert counts(step_of(renewal, "reminder-60d")) == figures(entered=2, sent=1, deferred=1)
    assert counts(step_of(renewal, "reminder-30d")) == figures(
        entered=1, sent=1, converted=1, exited={"renewed": 1}
    )
    assert (promo.title, [step.step for step in promo.steps]) == (None, ["hello"])


async def test_an_empty_database_gives_an_empty_report(
    engine: AsyncEngine, settings: Settings
) -> None:
    report = await funnel_report(engine, since=SINCE)

    assert report == FunnelReport(since=SINCE, journeys=[])
    assert render_table(report) == "Journey funnel since 2025-03-01 00:00 UTC\nno journey activity"
    assert "<p>No journey activity.</p>" in render_html(report)
    result = await journeys("report", "--json", env=cli_environment(settings, NO_TEMPORAL))
    assert result.returncode == 0, result.stderr
    body = result.json()
    assert (body["since"], body["until"], body["journeys"]) == (None, None, [])
    assert body["pipeline"]["by_source"] == {}  # and no figure has a value:
    assert {figure["value"] for figure in body["pipeline"]["overall"].values()} == {None}


async def test_table_is_aligned_plain_text(scenario: AsyncEngine) -> None:
    report = await funnel_report(scenario, journey="pricing-abandon", since=SINCE)

    assert render_table(report).splitlines() == [
        "Journey funnel since 2025-03-01 00:00 UTC",
        "",
        "Pricing-page abandon (pricing-abandon)",
        "runs: 2 entered, 0 running, 1 completed, 1 exited (purchased 1), 1 converted",
        "step      entered  sent  pending  deferred  suppressed  failed  cancelled  opened"
        "  clicked  converted  exited",
        "email           2     2        0         0           0       0          0       1"
        "        0          1  purchased 1",
        "day2-sms        1     0        0         0           1       0          0       0"
        "        0          0  -",
    ]


async def test_cli_json_is_the_funnel_report(scenario: AsyncEngine, settings: Settings) -> None:
    env = cli_environment(settings, NO_TEMPORAL)

    result = await journeys(
        "report", "--format", "json", "--journey", "welcome-series", "--since", "2025-03-01",
        env=env,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    expected = await funnel_report(scenario, journey="welcome-series", since=SINCE)
    assert result.json() == expected.model_dump(mode="json")
    [welcome_funnel] = result.json()["journeys"]
    assert welcome_funnel["entered"] == 5
    assert welcome_funnel["steps"][1] == {
        "step": "day1",
        "label": "Day 1 → Email 2: Value story + quick win",
        **figures(
            entered=5,
            sent=3,
            failed=1,
            cancelled=1,
            opened=1,
            clicked=1,
            exited={"unsubscribed": 1},
        ),
    }


async def test_cli_refuses_a_since_that_is_not_a_date(
    engine: AsyncEngine, settings: Settings
) -> None:
    result = await journeys(
        "report", "--since", "last tuesday", env=cli_environment(settings, NO_TEMPORAL)
    )

    assert result.returncode == 2
    assert "--since" in result.stderr
    assert "expected an ISO date or datetime" in result.stderr


async def test_cli_html_page_has_tables_and_svg_funnels(
    scenario: AsyncEngine, settings: Settings, tmp_path: Path
) -> None:
    await add_rows(scenario, [message('spring<promo>&"sale"', "<day1>", "s1", "sent")])
    page_file = tmp_path / "funnel.html"

    result = await journeys(
        "report",
        "--format",
        "html",
        "--since",
        "2025-03-01",
        "--output",
        str(page_file),
        env=cli_environment(settings, NO_TEMPORAL),
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert f"report written to {page_file}" in result.stderr
    page = page_file.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    for external in ("<script", "<link", "src=", "href=", "@import"):
        assert external not in page
    assert "<h2>Welcome series (welcome-series)</h2>" in page
    assert "<h2>spring&lt;promo&gt;&amp;&quot;sale&quot;</h2>" in page
    assert "&lt;day1&gt;" in page
    assert "<promo>" not in page and "<day1>" not in page
    assert "runs: 5 entered, 1 running, 3 completed, 1 exited (unsubscribed 1), 0 converted" in page

    day1_row = re.search(r'<tr><th scope="row">day1<br>.*?</tr>', page)
    assert day1_row is not None
    assert re.findall(r'<td class="n">(\d+)</td>', day1_row.group()) == [
        "5", "3", "0", "0", "0", "1", "1", "1", "1", "0",
    ]  # fmt: skip
    assert day1_row.group().endswith("<td>unsubscribed 1</td></tr>")

    charts = re.findall(r"<svg .*?</svg>", page, flags=re.DOTALL)
    assert len(charts) == 4  # nurture, pricing abandon, welcome series, spring promo
    chart = ElementTree.fromstring(charts[2])
    svg = "{http://www.w3.org/2000/svg}"
    [day0] = [group for group in chart.iter(f"{svg}g") if group[1].text == "day0"]
    assert day0[0].text == "Day 0 → Email 1: Welcome + lead magnet delivery"
    labels = [text.text for text in day0.iter(f"{svg}text")]
    assert labels == [
        "day0",
        "entered", "5", "sent", "4", "opened", "2", "clicked", "1", "converted", "0",
    ]  # fmt: skip
    # One scale per journey: its largest figure (5 entered) is the full 420-pixel bar.
    assert [rect.get("width") for rect in day0.iter(f"{svg}rect")] == [
        "420.0", "336.0", "168.0", "84.0", "0.0",
    ]  # fmt: skip
