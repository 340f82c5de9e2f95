"""Experiment results (`starter/services/experiments.py`) from a scripted database.

The scenario (`scripted`): `welcome-subject` (arms a/b 50/50, a 10% holdout, goal
`purchased` within 14 days) with a: 200 exposed / 20 converted, b: 200 / 34,
holdout: 44 / 2, every window closed. The expected statistics were computed once with
statsmodels 0.15.0 / scipy for these counts and written here:

- Wilson (`proportion_confint(c, n, method="wilson")`): 20/200 → [0.06567044866909588,
  0.1494058124327174]; 34/200 → [0.12427907912586969, 0.22815883628312625];
  2/44 → [0.012555109949594953, 0.1513499843762966].
- b − a: 0.17 − 0.10 = 0.07, Newcombe (`confint_proportions_2indep(34, 200, 20, 200,
  method="newcomb")`) [0.0026847943796103613, 0.13753494156648588];
  `proportions_ztest([34, 20], [200, 200])`: p = 0.04051697280293327 (by hand: pooled
  54/400 = 0.135, se = √(0.135 · 0.865 · 2/200) = 0.034171, z = 0.07 / 0.034171 = 2.0484).
- The incremental effect, a and b pooled (54/400 = 0.135) − holdout (2/44 = 0.0454545…)
  = 0.0895454…: Newcombe [-0.020527548126247436, 0.13904258630576496], p =
  0.08947544213706973.
- The split: `chisquare([200, 200, 44], f_exp=[199.8, 199.8, 44.4])`: 0.00400400400400406,
  p = 0.9980000006673337; a broken one, [300, 200, 44] against [244.8, 244.8, 54.4]:
  22.633986928104576, p = 1.2164441854339218e-05.
- Minimum samples (`samplesize_proportions_2indep_onetail`, power 0.8, two-sided 5%):
  baseline 0.05, effect 0.03 → 1058.9 → 1059; baseline 0.10, effect 0.10 → 198.96 → 199.
"""

from __future__ import annotations

import html.parser
import xml.etree.ElementTree as ElementTree
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel, select

from models.db import session_factory
from models.experiments import ExperimentStatus, Goal
from models.tables import ExperimentDecision
from starter.services.experiments import (
    AlreadyStopped,
    ArmReport,
    ExperimentReport,
    UnknownArm,
    VerdictCode,
    experiment_report,
    experiments_overview,
    render_html,
    render_table,
    stop_experiment,
)
from tests.experiments import T0, add_rows, event, exposure, message, population
from workflows import catalog

LATER = T0 + timedelta(days=30)
"""A report's moment with every window of the scenario closed."""
WELCOME = catalog.experiment("welcome-subject")
CLOSE = 1e-12


def engaged(arm: str, event_type: str, contacts: int) -> list[SQLModel]:
    """The first `contacts` of the arm open (or click in) the day-0 message."""
    return [
        event(f"{arm}-{number:03}", event_type, LATER, journey="welcome-series")
        for number in range(contacts)
    ]


@pytest.fixture
async def scripted(database: AsyncEngine) -> AsyncEngine:
    """The scenario of the module docstring, with what must not count around it."""
    window = timedelta(days=14)
    a_last, a_198 = T0 + timedelta(minutes=199), T0 + timedelta(minutes=198)
    await add_rows(
        database,
        [
            *population("a", 200, 19),
            *population("b", 200, 34),
            *population("holdout", 44, 2),
            # a's 20th conversion: one second before its window closes
            event("a-199", "purchased", a_last + window - timedelta(seconds=1)),
            # not conversions: one second after the window, before the exposure, another type
            event("a-198", "purchased", a_198 + window + timedelta(seconds=1)),
            event("a-197", "purchased", T0 - timedelta(days=1)),
            event("a-196", "checkout_started", T0 + timedelta(days=1)),
            # a second purchase of a converter counts once
            event("a-000", "purchased", T0 + timedelta(days=2)),
            # someone never exposed
            event("stranger", "purchased", T0 + timedelta(days=1)),
            # sent: a 190 (10 without an address), b 195 (5 failed); not other steps or contacts
            *(
                message(f"a-{n:03}", "sent" if n < 190 else "skipped_no_address")
                for n in range(200)
            ),
            *(message(f"b-{n:03}", "sent" if n < 195 else "failed") for n in range(200)),
            message("a-000", "sent", step="day1"),
            message("stranger", "sent"),
            # opened: a 60 (a-000 twice), b 80; clicked: a 15, b 25; not other messages
            *engaged("a", "email_opened", 60),
            *engaged("a", "email_opened", 1),
            *engaged("b", "email_opened", 80),
            *engaged("a", "email_clicked", 15),
            *engaged("b", "email_clicked", 25),
            event("b-199", "email_opened", LATER, journey="welcome-series", step="day1"),
            event("b-198", "email_opened", LATER, journey="nurture"),
        ],
    )
    return database


def arm_of(report: ExperimentReport, name: str) -> ArmReport:
    [found] = [arm for arm in report.arms if arm.arm == name]
    return found


def counts(arm: ArmReport) -> tuple[int, ...]:
    """exposed, sent, opened, clicked, closed, pending, converted, converted_pending."""
    return (
        arm.exposed,
        arm.sent,
        arm.opened,
        arm.clicked,
        arm.closed,
        arm.pending,
        arm.converted,
        arm.converted_pending,
    )


async def test_the_scripted_scenario_counts_and_statistics(scripted: AsyncEngine) -> None:
    report = await experiment_report(scripted, WELCOME, now=LATER)

    assert [arm.arm for arm in report.arms] == ["a", "b", "holdout"]
    assert [arm.share for arm in report.arms] == [45, 45, 10]
    assert report.arms[0].control and not report.arms[1].control
    assert report.message_step == "day0"
    assert counts(arm_of(report, "a")) == (200, 190, 60, 15, 200, 0, 20, 0)
    assert counts(arm_of(report, "b")) == (200, 195, 80, 25, 200, 0, 34, 0)
    assert counts(arm_of(report, "holdout")) == (44, 0, 0, 0, 44, 0, 2, 0)

    expected_rates = {
        "a": (0.10, 0.06567044866909588, 0.1494058124327174),
        "b": (0.17, 0.12427907912586969, 0.22815883628312625),
        "holdout": (2 / 44, 0.012555109949594953, 0.1513499843762966),
    }
    for name, (value, low, high) in expected_rates.items():
        rate = arm_of(report, name).rate
        assert rate is not None
        assert (rate.value, rate.low, rate.high) == pytest.approx((value, low, high), abs=CLOSE)

    b = arm_of(report, "b").versus_control
    assert b is not None and b.against == "a"
    assert (b.difference, b.low, b.high, b.p_value) == pytest.approx(
        (0.07, 0.0026847943796103613, 0.13753494156648588, 0.04051697280293327), abs=CLOSE
    )
    assert b.significant  # p < 0.05: one comparison with control
    assert arm_of(report, "a").versus_control is None
    assert arm_of(report, "holdout").versus_control is None

    effect = report.incremental_effect
    assert effect is not None and effect.against == "holdout"
    assert (effect.difference, effect.low, effect.high, effect.p_value) == pytest.approx(
        (54 / 400 - 2 / 44, -0.020527548126247436, 0.13904258630576496, 0.08947544213706973),
        abs=CLOSE,
    )
    assert not effect.significant

    assert report.sample_ratio is not None
    assert (report.sample_ratio.chi_square, report.sample_ratio.p_value) == pytest.approx(
        (0.00400400400400406, 0.9980000006673337), abs=CLOSE
    )
    assert not report.sample_ratio.mismatch


async def test_no_winner_before_the_minimum_sample(scripted: AsyncEngine) -> None:
    """The declaration's baseline 5% and effect 3 points need 1059 contacts per arm."""
    report = await experiment_report(scripted, WELCOME, now=LATER)

    assert (report.minimum_sample, report.significance) == (1059, 0.05)
    assert report.verdict.code == VerdictCode.COLLECTING
    assert report.verdict.winner is None
    assert report.verdict.reason == (
        "no winner yet: arm(s) a, b have fewer than the minimum sample of 1059 contacts "
        "with a closed window"
    )
    assert report.warnings == [
        "below the minimum sample of 1059 contacts per arm whose 14-day window has closed: "
        "a 200, b 200, holdout 44"
    ]
    assert report.status == ExperimentStatus.RUNNING and report.decision is None


async def test_a_winner_once_the_sample_the_split_and_the_difference_hold(
    scripted: AsyncEngine,
) -> None:
    """The operator's baseline 10% and effect 10 points need 199 per arm: b wins. The
    holdout's 44 only warn (they measure the journey, not the arms)."""
    report = await experiment_report(
        scripted, WELCOME, now=LATER, baseline_rate=0.10, minimum_detectable_effect=0.10
    )

    assert report.minimum_sample == 199
    assert report.verdict.code == VerdictCode.WINNER
    assert report.verdict.winner == "b"
    assert report.verdict.reason == (
        "b wins: +7.0 points vs a [+0.3, +13.8], p = 0.0405 (p < 0.05 needed)"
    )
    assert report.warnings == [
        "below the minimum sample of 199 contacts per arm whose 14-day window has closed: "
        "holdout 44"
    ]


async def test_several_arms_share_the_significance_level(engine: AsyncEngine) -> None:
    """Three arms, two comparisons with control: each needs p < 0.025 (Bonferroni), so b's
    p = 0.0405 is no longer enough."""
    three = replace(WELCOME, arms={"a": 1, "b": 1, "c": 1}, holdout_percent=0)
    await add_rows(
        engine, [*population("a", 200, 20), *population("b", 200, 34), *population("c", 200, 20)]
    )

    report = await experiment_report(
        engine, three, now=LATER, baseline_rate=0.10, minimum_detectable_effect=0.10
    )

    assert report.significance == 0.025
    b = arm_of(report, "b").versus_control
    assert b is not None and b.p_value == pytest.approx(0.04051697280293327, abs=CLOSE)
    assert not b.significant
    assert report.verdict.code == VerdictCode.NO_DIFFERENCE
    assert report.verdict.reason == (
        "no winner: no arm converts significantly better than control a (p < 0.025 needed)"
    )
    assert report.incremental_effect is None
    assert [arm.arm for arm in report.arms] == ["a", "b", "c"]


async def test_a_broken_split_is_flagged_and_names_no_winner(engine: AsyncEngine) -> None:
    await add_rows(
        engine,
        [*population("a", 300, 30), *population("b", 200, 34), *population("holdout", 44, 2)],
    )

    report = await experiment_report(
        engine, WELCOME, now=LATER, baseline_rate=0.10, minimum_detectable_effect=0.10
    )

    assert report.sample_ratio is not None
    assert (report.sample_ratio.chi_square, report.sample_ratio.p_value) == pytest.approx(
        (22.633986928104576, 1.2164441854339218e-05), abs=1e-9
    )
    assert report.sample_ratio.mismatch
    b = arm_of(report, "b").versus_control
    assert b is not None and b.significant  # b would win on its numbers
    assert report.verdict.code == VerdictCode.SAMPLE_RATIO_MISMATCH
    assert report.verdict.winner is None
    assert report.verdict.reason == (
        "no winner: the split is broken (sample-ratio mismatch, p = 1.22e-05)"
    )
    assert report.warnings[0].startswith(
        "sample-ratio mismatch: the exposures per arm do not match the declared split "
        "(chi-square 22.6, p = 1.22e-05 < 0.001)"
    )


async def test_the_goal_window_counts_from_the_exposure(engine: AsyncEngine) -> None:
    """A week's window: one second before it closes counts, one second after does not, nor
    does a purchase before the exposure; a window still open is pending, not in the rate."""
    week = replace(WELCOME, goal=Goal("purchased", window=timedelta(days=7)), holdout_percent=0)
    window = timedelta(days=7)
    now = T0 + timedelta(days=10)
    second = timedelta(seconds=1)
    await add_rows(
        engine,
        [
            exposure("inside", "a", T0),
            event("inside", "purchased", T0 + window - second),
            exposure("at-the-edge", "a", T0),
            event("at-the-edge", "purchased", T0 + window),
            exposure("too-late", "a", T0),
            event("too-late", "purchased", T0 + window + second),
            exposure("before", "a", T0),
            event("before", "purchased", T0 - second),
            event("before", "purchased", T0 + window + second),
            exposure("pending", "b", now - timedelta(days=1)),
            event("pending", "purchased", now - timedelta(hours=1)),
            exposure("closed-b", "b", T0),
            # after the report's moment: neither the exposure nor the purchase count yet
            exposure("pending-2", "b", now - timedelta(days=2)),
            event("pending-2", "purchased", now + second),
            exposure("tomorrow", "b", now + timedelta(days=1)),
        ],
    )

    report = await experiment_report(engine, week, now=now)

    a, b = report.arms
    assert (a.exposed, a.closed, a.pending, a.converted) == (4, 4, 0, 2)
    assert (b.exposed, b.closed, b.pending, b.converted, b.converted_pending) == (3, 1, 2, 0, 1)
    assert b.rate is not None and b.rate.value == 0  # pending contacts are not in the rate
    assert a.rate is not None and a.rate.value == 0.5
    assert report.warnings[-1] == (
        "2 exposed contacts are still inside their 7-day window (1 converted so far): "
        "they are not in the rates yet, the counts will move"
    )


async def test_a_goal_on_the_message_counts_only_events_about_it(engine: AsyncEngine) -> None:
    clicks = replace(
        WELCOME,
        goal=Goal("email_clicked", window=timedelta(days=7), on_message=True),
        holdout_percent=0,
    )
    await add_rows(
        engine,
        [
            exposure("day0-click", "a", T0),
            event("day0-click", "email_clicked", T0 + timedelta(hours=1), journey="welcome-series"),
            exposure("day1-click", "a", T0),
            event(
                "day1-click",
                "email_clicked",
                T0 + timedelta(days=1),
                journey="welcome-series",
                step="day1",
            ),
            exposure("other-journey", "a", T0),
            event("other-journey", "email_clicked", T0 + timedelta(hours=1), journey="nurture"),
            exposure("no-properties", "a", T0),
            event("no-properties", "email_clicked", T0 + timedelta(hours=1)),
        ],
    )

    on_message = await experiment_report(engine, clicks, now=LATER)
    any_click = await experiment_report(
        engine, replace(clicks, goal=Goal("email_clicked", window=timedelta(days=7))), now=LATER
    )

    assert (on_message.arms[0].converted, on_message.arms[0].clicked) == (1, 1)
    assert any_click.arms[0].converted == 4
    assert on_message.goal.on_message and not any_click.goal.on_message


async def test_stop_records_who_when_and_the_winner_once(engine: AsyncEngine) -> None:
    decided_at = T0 + timedelta(days=20)

    decision = await stop_experiment(
        engine, "welcome-subject", winner="b", decided_by="cli:ada", note="b wins", now=decided_at
    )

    assert (decision.winner, decision.decided_by, decision.decided_at) == (
        "b",
        "cli:ada",
        decided_at,
    )
    async with session_factory(engine)() as session:
        [row] = (await session.exec(select(ExperimentDecision))).all()
    assert (row.experiment, row.winner, row.decided_by, row.decided_at, row.note) == (
        "welcome-subject", "b", "cli:ada", decided_at, "b wins"
    )  # fmt: skip
    report = await experiment_report(engine, WELCOME, now=LATER)
    assert report.status == ExperimentStatus.STOPPED
    assert report.decision == decision

    with pytest.raises(AlreadyStopped) as refused:
        await stop_experiment(
            engine, "welcome-subject", winner=None, decided_by="cli:bo", now=LATER
        )
    assert str(refused.value) == (
        "experiment 'welcome-subject' was already stopped by cli:ada at 2026-03-22 09:00:00 UTC "
        "(winner: b); an experiment stops once"
    )


async def test_stop_without_a_winner_sends_everyone_to_control(engine: AsyncEngine) -> None:
    decision = await stop_experiment(
        engine, "welcome-subject", winner=None, decided_by="api:dashboard", now=LATER
    )

    assert decision.winner is None
    report = await experiment_report(engine, WELCOME, now=LATER)
    assert report.decision is not None and report.decision.decided_by == "api:dashboard"
    assert render_table(report).splitlines()[2] == (
        "status: stopped by api:dashboard at 2026-04-01 09:00 UTC, winner none: control a"
    )


@pytest.mark.parametrize("winner", ["c", "holdout"])
async def test_stop_refuses_a_winner_that_is_not_an_arm(engine: AsyncEngine, winner: str) -> None:
    with pytest.raises(
        UnknownArm, match=f"'{winner}' is not an arm of experiment 'welcome-subject'"
    ):
        await stop_experiment(engine, "welcome-subject", winner=winner, decided_by="t", now=LATER)

    with pytest.raises(catalog.UnknownExperiment, match="declared: welcome-subject"):
        await stop_experiment(engine, "welcome-subjekt", winner=None, decided_by="t", now=LATER)
    async with session_factory(engine)() as session:
        assert (await session.exec(select(ExperimentDecision))).all() == []


async def test_the_overview_lists_every_declared_experiment(scripted: AsyncEngine) -> None:
    [summary] = await experiments_overview(scripted, now=LATER)

    assert (summary.experiment, summary.journey, summary.status, summary.exposed) == (
        "welcome-subject", "welcome-series", ExperimentStatus.RUNNING, 444
    )  # fmt: skip
    assert summary.headline == "b +7.0 points vs a [+0.3, +13.8], p = 0.0405"
    assert summary.verdict.code == VerdictCode.COLLECTING


async def test_the_table_reads_as_the_report(scripted: AsyncEngine) -> None:
    report = await experiment_report(scripted, WELCOME, now=LATER)

    lines = render_table(report).splitlines()
    assert lines[5:9] == [
        "arm          share  exposed  sent  opened  clicked  closed  pending  converted  "
        "rate [95% interval]   vs control",
        "a (control)    45%      200   190      60       15     200        0         20  "
        "10.0% [6.6%, 14.9%]   -",
        "b              45%      200   195      80       25     200        0         34  "
        "17.0% [12.4%, 22.8%]  +7.0 points vs a [+0.3, +13.8], p = 0.0405",
        "holdout        10%       44     0       0        0      44        0          2  "
        "4.5% [1.3%, 15.1%]    -",
    ]
    assert lines[-1] == f"verdict: {report.verdict.reason}"
    assert (
        "incremental effect (declared arms pooled vs holdout): +9.0 points vs holdout "
        "[-2.1, +13.9], p = 0.0895"
    ) in lines


class _Page(html.parser.HTMLParser):
    """The text of a page, its row headings and the SVG's text."""

    def __init__(self) -> None:
        super().__init__()
        self.row_headings: list[str] = []
        self.tags: set[str] = set()
        self._in_row_heading = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self._in_row_heading = tag == "th" and ("scope", "row") in attrs

    def handle_data(self, data: str) -> None:
        if self._in_row_heading:
            self.row_headings.append(data)
            self._in_row_heading = False


async def test_the_html_page_charts_every_arm_and_escapes_names(engine: AsyncEngine) -> None:
    hostile = replace(
        WELCOME,
        arms={"a": 1, "b": 1},
        title='<script>alert("subject")</script>',
        journey="welcome-series",
    )
    await add_rows(
        engine, [*population("a", 40, 4), *population("b", 40, 9), *population("holdout", 8, 0)]
    )
    report = await experiment_report(engine, hostile, now=LATER)

    page = render_html([report])

    assert "<script>" not in page and "&lt;script&gt;alert(&quot;subject&quot;)" in page
    parsed = _Page()
    parsed.feed(page)
    assert parsed.row_headings == ["a (control)", "b", "holdout"]
    assert "script" not in parsed.tags and "link" not in parsed.tags and "img" not in parsed.tags
    [svg] = page.split("<svg")[1:]
    chart = ElementTree.fromstring("<svg" + svg.split("</svg>")[0] + "</svg>")
    namespace = "{http://www.w3.org/2000/svg}"
    assert [text.text for text in chart.iter(f"{namespace}text")][:6] == [
        "a", "10.0% [4.0%, 23.1%]", "b", "22.5% [12.3%, 37.5%]", "holdout", "0.0% [0.0%, 32.4%]"
    ]  # fmt: skip
    intervals = [line for line in chart.iter(f"{namespace}line") if line.get("class") == "interval"]
    assert len(intervals) == 3 and len(list(chart.iter(f"{namespace}circle"))) == 3
    assert "no winner yet" in page
