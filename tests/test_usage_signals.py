"""Usage signals: the rule (`rules/usage.py`) and the ingest that stores what it derives.

The rule is tested on its own (trailing average, window, share, no history,
recovery); the ingest on a real SQLite file and, where the binaries are
installed, a throwaway PostgreSQL cluster: a drop is derived once, also when
the same batch is retried, and `renewed` or a recovery clears the churn flag.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from models.crm import CHURN_RISK_TAG
from models.db import session_factory
from models.events import BehaviorEvent
from models.settings import PROJECT_ROOT, Settings
from models.tables import Contact, ContactEvent
from models.usage import UsageSignal
from rules.usage import Reading, UsageRule, derived_event_id, judge, trailing_average
from tests.factories import add_contact, rows_of
from tests.ingest import Ingest

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
WEEK = timedelta(days=7)
RULE = UsageRule()


def report(
    value: float, at: datetime = NOW, *, metric: str = "campaigns_sent", n: int = 0
) -> BehaviorEvent:
    return BehaviorEvent(
        event_id=f"use-{metric}-{at:%Y%m%d%H%M}-{n}",
        contact_id="cara",
        type="usage_reported",
        occurred_at=at,
        properties={"metric": metric, "value": value},
    )


def weekly(*values: float, before: datetime = NOW) -> list[Reading]:
    """Readings a week apart, the last one a week before `before`."""
    return [Reading(before - (len(values) - i) * WEEK, v) for i, v in enumerate(values)]


# --- the rule ----------------------------------------------------------------------------


def test_trailing_average_takes_the_readings_inside_the_window_only() -> None:
    readings = [
        Reading(NOW - timedelta(days=29), 1000),  # outside 4 weeks
        Reading(NOW - timedelta(days=28), 100),  # on the edge: inside
        Reading(NOW - timedelta(days=7), 50),
        Reading(NOW, 7),  # the report itself: not before it
        Reading(NOW + timedelta(days=1), 7),  # later
    ]
    assert trailing_average(readings, before=NOW, window=timedelta(days=28)) == (75.0, 2)
    assert trailing_average([], before=NOW, window=timedelta(days=28)) == (0.0, 0)


def test_a_value_below_half_the_four_week_average_is_a_drop_with_its_numbers() -> None:
    verdict = judge(RULE, report(40), weekly(100, 120, 80, 100), None)

    assert verdict is not None
    event_type, signal = verdict
    assert event_type == "usage_dropped"
    assert signal == UsageSignal(
        metric="campaigns_sent",
        value=40,
        trailing_average=100,
        share=0.4,
        threshold=50,
        reports=4,
        window_days=28,
        source_event_id=report(40).event_id,
    )


@pytest.mark.parametrize("value", [50, 51, 100, 300])
def test_half_the_average_or_more_is_no_drop(value: float) -> None:
    assert judge(RULE, report(value), weekly(100, 100, 100, 100), None) is None


def test_no_history_or_too_little_of_it_is_no_drop() -> None:
    assert judge(RULE, report(0), [], None) is None
    assert judge(RULE, report(0), weekly(100), None) is None  # min_reports = 2
    assert judge(RULE, report(0), weekly(0, 0, 0), None) is None  # nothing to drop from


def test_reports_older_than_the_window_do_not_count() -> None:
    old = [Reading(NOW - timedelta(days=60), 100), Reading(NOW - timedelta(days=50), 100)]
    assert judge(RULE, report(10), old, None) is None
    wider = UsageRule(window_days=90)
    assert judge(wider, report(10), old, None) is not None


def test_the_share_is_configurable() -> None:
    strict = UsageRule(drop_share=0.8)
    assert judge(RULE, report(70), weekly(100, 100), None) is None
    verdict = judge(strict, report(70), weekly(100, 100), None)
    assert verdict is not None and verdict[1].threshold == 80


def test_after_a_drop_recovery_is_measured_against_the_drops_threshold() -> None:
    dropped = judge(RULE, report(40), weekly(100, 100, 100, 100), None)
    assert dropped is not None
    drop = dropped[1]
    low_weeks = weekly(100, 100, 40, 45)  # the average is now 71: 45 is above half of it
    # Still below the drop's threshold (50): no recovery, and no second drop.
    assert judge(RULE, report(45), low_weeks, drop) is None
    recovered = judge(RULE, report(55), low_weeks, drop)
    assert recovered is not None
    assert recovered[0] == "usage_recovered"
    assert (recovered[1].value, recovered[1].trailing_average, recovered[1].threshold) == (
        55,
        100,
        50,
    )
    assert recovered[1].share == 0.55


def test_the_shipped_churn_toml_is_the_documented_rule(tmp_path: Path) -> None:
    assert UsageRule.load(PROJECT_ROOT / "churn.toml") == UsageRule(
        window_days=28, drop_share=0.5, min_reports=2
    )
    broken = tmp_path / "churn.toml"
    broken.write_text("drop_share = 1.5\n")
    with pytest.raises(ValueError, match=r"churn.toml: invalid churn configuration: drop_share"):
        UsageRule.load(broken)


def test_derived_ids_are_made_from_the_reports_and_stay_within_128_characters() -> None:
    assert derived_event_id("usage_dropped", "use-1") == "usage_dropped:use-1"
    long = derived_event_id("usage_recovered", "x" * 128)
    assert len(long) <= 128
    assert long == derived_event_id("usage_recovered", "x" * 128)
    assert long != derived_event_id("usage_recovered", "x" * 127 + "y")


# --- the ingest ----------------------------------------------------------------------------


class UsageIngest(Ingest):
    """The real ingest for contact `cara`, and what it wrote."""

    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        super().__init__(engine, settings, "cara", usage_rule=RULE)

    async def derived_rows(self) -> list[tuple[str, str]]:
        rows = await rows_of(self.engine, ContactEvent, "cara")
        return [
            (row.event_id, row.type)
            for row in rows
            if row.type in ("usage_dropped", "usage_recovered")
        ]

    async def tags(self) -> list[str]:
        return (await self.contact()).tags


@pytest.fixture
async def ingest(database: AsyncEngine, settings: Settings) -> UsageIngest:
    await add_contact(database, "cara", first_name="Cara")
    return UsageIngest(database, settings)


def four_weeks_of(*values: float) -> list[BehaviorEvent]:
    return [report(v, NOW - (len(values) - i) * WEEK) for i, v in enumerate(values)]


async def test_the_ingest_derives_a_drop_once_even_when_its_batch_is_retried(
    ingest: UsageIngest,
) -> None:
    history = await ingest(*four_weeks_of(100, 120, 80, 100))
    assert history.derived_events == []

    drop = report(40)
    first = await ingest(drop, batch_key="run/drop")
    retried = await ingest(drop, batch_key="run/drop")  # the answer was lost: same batch again
    redelivered = await ingest(drop)  # an older duplicate, in another batch

    assert first.accepted_event_ids == retried.accepted_event_ids == [drop.event_id]
    assert [event.type for event in first.derived_events] == ["usage_dropped"]
    assert retried.derived_events == first.derived_events
    assert redelivered.accepted_event_ids == [] and redelivered.derived_events == []
    derived = first.derived_events[0]
    assert derived.event_id == f"usage_dropped:{drop.event_id}"
    assert derived.occurred_at == drop.occurred_at
    assert derived.properties == {
        "metric": "campaigns_sent",
        "value": 40.0,
        "trailing_average": 100.0,
        "share": 0.4,
        "threshold": 50.0,
        "reports": 4,
        "window_days": 28,
        "source_event_id": drop.event_id,
    }
    assert await ingest.derived_rows() == [(derived.event_id, "usage_dropped")]


async def test_a_batch_of_reports_is_judged_in_order_and_other_metrics_stay_apart(
    ingest: UsageIngest,
) -> None:
    seats = [report(10, NOW - (4 - i) * WEEK, metric="active_seats", n=1) for i in range(4)]
    result = await ingest(*four_weeks_of(100, 100, 100), report(30), *seats)

    assert [(e.type, e.properties["metric"]) for e in result.derived_events] == [
        ("usage_dropped", "campaigns_sent")
    ]


async def test_a_recovery_clears_the_churn_flag_and_a_low_report_during_the_drop_derives_nothing(
    ingest: UsageIngest,
) -> None:
    await ingest(*four_weeks_of(100, 100, 100, 100), report(40))
    await _tag(ingest.engine, CHURN_RISK_TAG, "act_clicked-pricing")

    still_low = await ingest(report(45, NOW + WEEK))
    assert still_low.derived_events == []
    assert CHURN_RISK_TAG in await ingest.tags()

    back = await ingest(report(60, NOW + 2 * WEEK))
    assert [event.type for event in back.derived_events] == ["usage_recovered"]
    assert back.derived_events[0].properties["trailing_average"] == 100
    assert await ingest.tags() == ["act_clicked-pricing"]
    # A new drop after the recovery is judged afresh.
    again = await ingest(report(5, NOW + 3 * WEEK))
    assert [event.type for event in again.derived_events] == ["usage_dropped"]


async def test_renewed_clears_the_churn_flag(ingest: UsageIngest) -> None:
    await _tag(ingest.engine, CHURN_RISK_TAG, "stage_customer")
    await ingest(_event("website_visited"))
    assert CHURN_RISK_TAG in await ingest.tags()

    await ingest(_event("renewed", subscription_id="sub-1"))
    assert await ingest.tags() == ["stage_customer"]


async def test_a_report_without_a_metric_or_a_numeric_value_derives_nothing(
    ingest: UsageIngest,
) -> None:
    await ingest(*four_weeks_of(100, 100))
    broken = [
        _event("usage_reported", value=1),
        _event("usage_reported", metric="campaigns_sent", value="lots"),
        _event("usage_reported", metric="campaigns_sent", value=-1),
    ]
    result = await ingest(*broken)
    assert len(result.accepted_event_ids) == 3
    assert result.derived_events == []


async def _tag(engine: AsyncEngine, *tags: str) -> None:
    async with session_factory(engine)() as session:
        contact = await session.get(Contact, "cara")
        assert contact is not None
        contact.tags = sorted(tags)
        session.add(contact)
        await session.commit()


_count = iter(range(1_000_000))


def _event(event_type: str, **properties: Any) -> BehaviorEvent:
    return BehaviorEvent(
        event_id=f"evt-{next(_count)}",
        contact_id="cara",
        type=event_type,
        occurred_at=NOW,
        properties=properties,
    )
