"""Lead scoring: the default model, decay, bands, next change, fit, prune, bad files."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from models.events import CANONICAL_EVENT_TYPES
from models.lead_score import ScoredAction
from models.settings import PROJECT_ROOT
from rules.scoring import (
    ActionRule,
    ScoringModel,
    band_for,
    contribution,
    next_change,
    prune,
    score,
    stage_tag,
)

T0 = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture(scope="module")
def model() -> ScoringModel:
    return ScoringModel.load(PROJECT_ROOT / "scoring.toml")


def act(event_type: str, at: datetime = T0) -> ScoredAction:
    return ScoredAction(event_type=event_type, occurred_at=at)


# The seed's table: action → (event type, points, decay points, decay days).
TABLE = [
    ("email_opened", 1, 1, 30),
    ("email_clicked", 3, 1, 14),
    ("website_visited", 2, 1, 14),
    ("pricing_page_viewed", 10, 2, 7),
    ("demo_requested", 25, 0, None),
    ("content_downloaded", 5, 1, 30),
    ("webinar_registered", 10, 2, 30),
    ("webinar_attended", 15, 2, 30),
    ("trial_started", 30, 0, None),
    ("email_replied", 20, 2, 30),
]


@pytest.mark.parametrize(("event_type", "points", "decay_points", "decay_days"), TABLE)
def test_default_model_reproduces_the_table(
    model: ScoringModel,
    event_type: str,
    points: int,
    decay_points: int,
    decay_days: int | None,
) -> None:
    rule = model.actions[event_type]
    assert (rule.points, rule.decay_points, rule.decay_days) == (points, decay_points, decay_days)
    assert event_type in CANONICAL_EVENT_TYPES


def test_default_model_has_exactly_the_table_bands_and_no_fit(model: ScoringModel) -> None:
    assert set(model.actions) == {row[0] for row in TABLE}
    assert [(b.name, b.min_score) for b in model.bands] == [
        ("Cold", 0),
        ("Warming", 11),
        ("MQL", 26),
        ("SQL", 51),
        ("Hot", 76),
    ]
    assert model.fit == []


@pytest.mark.parametrize(
    ("elapsed", "expected"),
    [
        (timedelta(0), 10),
        (7 * DAY - timedelta(seconds=1), 10),
        (6.99 * DAY, 10),
        (7 * DAY, 8),
        (14 * DAY - timedelta(microseconds=1), 8),
        (14 * DAY, 6),
        (21 * DAY, 4),
        (28 * DAY, 2),
        (35 * DAY - timedelta(seconds=1), 2),
        (35 * DAY, 0),
        (42 * DAY, 0),
        (1000 * DAY, 0),
    ],
)
def test_pricing_visit_decays_by_2_per_full_week_never_below_0(
    model: ScoringModel, elapsed: timedelta, expected: int
) -> None:
    rule = model.actions["pricing_page_viewed"]
    assert contribution(rule, T0, T0 + elapsed) == expected


@pytest.mark.parametrize(
    ("elapsed", "expected"),
    [(timedelta(0), 1), (30 * DAY - timedelta(seconds=1), 1), (30 * DAY, 0), (90 * DAY, 0)],
)
def test_email_open_drops_by_1_after_each_full_30_days(
    model: ScoringModel, elapsed: timedelta, expected: int
) -> None:
    assert contribution(model.actions["email_opened"], T0, T0 + elapsed) == expected


def test_email_reply_steps_down_every_30_days(model: ScoringModel) -> None:
    rule = model.actions["email_replied"]
    values = [contribution(rule, T0, T0 + n * 30 * DAY) for n in range(12)]
    assert values == [20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0, 0]


@pytest.mark.parametrize("event_type", ["demo_requested", "trial_started"])
def test_no_decay_actions_keep_their_points(model: ScoringModel, event_type: str) -> None:
    rule = model.actions[event_type]
    assert contribution(rule, T0, T0 + 1000 * DAY) == rule.points


@pytest.mark.parametrize(
    ("total", "band"),
    [
        (0, "Cold"),
        (10, "Cold"),
        (11, "Warming"),
        (25, "Warming"),
        (26, "MQL"),
        (50, "MQL"),
        (51, "SQL"),
        (75, "SQL"),
        (76, "Hot"),
        (500, "Hot"),
    ],
)
def test_bands_at_the_edges(model: ScoringModel, total: int, band: str) -> None:
    assert band_for(model, total) == band


@pytest.mark.parametrize(
    ("band", "tag"),
    [
        ("Cold", "stage_cold"),
        ("Warming", "stage_warming"),
        ("MQL", "stage_mql"),
        ("SQL", "stage_sql"),
        ("Hot", "stage_hot"),
    ],
)
def test_stage_tags(band: str, tag: str) -> None:
    assert stage_tag(band) == tag


def test_score_sums_the_breakdown_and_bands_it(model: ScoringModel) -> None:
    actions = [
        act("pricing_page_viewed", T0),
        act("pricing_page_viewed", T0 + 7 * DAY),
        act("demo_requested", T0),
        act("email_opened", T0),
        act("signed_guestbook", T0),
    ]
    result = score(model, actions, T0 + 7 * DAY)
    # 8 (a week old) + 10 (fresh) + 25 + 1
    assert result.by_event_type == {
        "demo_requested": 25,
        "email_opened": 1,
        "pricing_page_viewed": 18,
    }
    assert (result.total, result.band, result.fit_points) == (44, "MQL", 0)
    assert stage_tag(result.band) == "stage_mql"


def test_unknown_event_types_score_nothing(model: ScoringModel) -> None:
    result = score(model, [act("signed_guestbook"), act("purchased")], T0)
    assert (result.total, result.band, result.by_event_type) == (0, "Cold", {})


def test_fit_rule_adds_points() -> None:
    model = ScoringModel.model_validate(
        {
            "actions": {"demo_requested": {"points": 25}},
            "bands": [{"name": "Cold", "min_score": 0}, {"name": "SQL", "min_score": 51}],
            "fit": [
                {"field": "job_title", "equals": "VP", "points": 30},
                {"field": "company_size", "equals": "1-10", "points": -5},
            ],
        }
    )
    vp = score(model, [act("demo_requested")], T0, contact_fields={"job_title": "VP"})
    assert (vp.total, vp.fit_points, vp.band) == (55, 30, "SQL")
    intern = score(model, [act("demo_requested")], T0, contact_fields={"job_title": "Intern"})
    assert (intern.total, intern.fit_points, intern.band) == (25, 0, "Cold")
    small_vp = score(
        model,
        [act("demo_requested")],
        T0,
        contact_fields={"job_title": "VP", "company_size": "1-10"},
    )
    assert small_vp.total == 50


def test_next_change_is_the_next_boundary(model: ScoringModel) -> None:
    visit = [act("pricing_page_viewed", T0)]
    assert next_change(model, visit, T0) == T0 + 7 * DAY
    assert next_change(model, visit, T0 + 3 * DAY) == T0 + 7 * DAY
    # On a boundary, the change has happened: the next one is a week later.
    assert next_change(model, visit, T0 + 7 * DAY) == T0 + 14 * DAY
    assert next_change(model, visit, T0 + 28 * DAY) == T0 + 35 * DAY
    assert next_change(model, visit, T0 + 35 * DAY) is None


def test_next_change_is_the_earliest_over_several_actions(model: ScoringModel) -> None:
    actions = [
        act("email_opened", T0),  # drops at T0 + 30d
        act("pricing_page_viewed", T0 + 2 * DAY),  # drops at T0 + 9d
        act("email_clicked", T0 - 10 * DAY),  # drops at T0 + 4d
        act("demo_requested", T0),
    ]
    assert next_change(model, actions, T0) == T0 + 4 * DAY
    assert next_change(model, actions, T0 + 4 * DAY) == T0 + 9 * DAY


def test_next_change_is_none_without_pending_decay(model: ScoringModel) -> None:
    assert next_change(model, [], T0) is None
    assert next_change(model, [act("demo_requested"), act("trial_started")], T0) is None
    decayed = [act("pricing_page_viewed", T0 - 35 * DAY), act("email_opened", T0 - 30 * DAY)]
    assert next_change(model, [*decayed, act("demo_requested"), act("signed_up")], T0) is None


def test_prune_drops_fully_decayed_actions_only(model: ScoringModel) -> None:
    old_demo = act("demo_requested", T0 - 1000 * DAY)
    old_visit = act("pricing_page_viewed", T0 - 35 * DAY)
    fading_visit = act("pricing_page_viewed", T0 - 34 * DAY)
    old_open = act("email_opened", T0 - 30 * DAY)
    unknown = act("signed_guestbook", T0)
    kept = prune(model, [old_demo, old_visit, fading_visit, old_open, unknown], T0)
    assert kept == [old_demo, fading_visit]
    # Pruning never changes the score.
    everything = [old_demo, old_visit, fading_visit, old_open, unknown]
    assert score(model, kept, T0) == score(model, everything, T0)


def test_naive_now_is_refused(model: ScoringModel) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        score(model, [act("demo_requested")], datetime(2025, 3, 1))


def test_action_rule_decay_must_be_consistent() -> None:
    with pytest.raises(ValueError, match="decay_days is missing"):
        ActionRule(points=5, decay_points=1)
    with pytest.raises(ValueError, match="decay_points is 0"):
        ActionRule(points=5, decay_days=7)
    assert not ActionRule(points=5).decays


BANDS = """
[[bands]]
name = "Cold"
min_score = 0

[[bands]]
name = "Hot"
min_score = 76
"""


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("[actions.email_opened]\npoints = -1\n" + BANDS, "actions.email_opened.points"),
        (
            "[actions.email_opened]\npoints = 1\ndecay_points = 1\n" + BANDS,
            "decay_days is missing",
        ),
        (
            '[actions.email_opened]\npoints = 1\n[[bands]]\nname = "Cold"\nmin_score = 0\n'
            '[[bands]]\nname = "Hot"\nmin_score = 76\n[[bands]]\nname = "SQL"\nmin_score = 51\n',
            "ascending",
        ),
        (
            '[actions.email_opened]\npoints = 1\n[[bands]]\nname = "Warm"\nmin_score = 5\n',
            "must start at 0",
        ),
        ("[actions.email_opened]\npoints = 1\npionts = 2\n" + BANDS, "pionts"),
        ("[actions.email_opened\npoints = 1\n", "not valid TOML"),
    ],
)
def test_malformed_file_raises_value_error_naming_the_file(
    tmp_path: Path, content: str, problem: str
) -> None:
    path = tmp_path / "bad-scoring.toml"
    path.write_text(content)
    with pytest.raises(ValueError, match=problem) as excinfo:
        ScoringModel.load(path)
    assert str(path) in str(excinfo.value)
