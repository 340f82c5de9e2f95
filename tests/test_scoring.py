"""Lead scoring: both profiles (seed 000's default, seed 002's), decay, bands, fit, the MQL
rule, recycling, next change, prune, bad files. Figures are computed by hand from the seeds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from models.contact_workflow import LeadScoreUpdate
from models.events import CANONICAL_EVENT_TYPES
from models.lead_score import ScoredAction
from models.settings import PROJECT_ROOT
from rules.email_domains import email_type, fit_fields, free_mail_domains
from rules.scoring import (
    ActionRule,
    FitRule,
    MqlRule,
    ScoringModel,
    band_for,
    contribution,
    next_change,
    next_inactivity_change,
    prune,
    sales_qualified,
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
        ("[actions.email_opened]\npoints = 0\n" + BANDS, "points must not be 0"),
        (
            '[actions.email_opened]\npoints = 1\n[[fit]]\nfield = "x"\nequals = "a"\nmin = 1\n'
            "points = 1\n" + BANDS,
            "exactly one of equals, one_of, or min/max",
        ),
        (
            '[actions.email_opened]\npoints = 1\n[[fit]]\nfield = "x"\nmin = 9\nmax = 1\n'
            "points = 1\n" + BANDS,
            "min 9.0 is above max 1.0",
        ),
        (
            'mql_rule = "band-and-key-behavior"\nhandoff_band = "Hot"\n'
            "[actions.email_opened]\npoints = 1\n" + BANDS,
            "needs handoff_band and at least one key_behaviors",
        ),
        (
            'handoff_band = "Cold"\n[actions.email_opened]\npoints = 1\n' + BANDS,
            "is the first band",
        ),
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


# --- seed 000 (the default profile): key behaviours and recycling -----------------------


def test_default_profile_hands_off_on_the_band_alone_and_names_its_key_behaviours(
    model: ScoringModel,
) -> None:
    assert (model.mql_rule, model.handoff_band, model.inactivity) == (MqlRule.BAND, "MQL", None)
    assert set(model.key_behaviors) == {
        "pricing_page_viewed",
        "demo_requested",
        "webinar_attended",
        "trial_started",
    }
    # Two replies and a click: 43, MQL, with no key behaviour at all.
    replies = [act("email_replied"), act("email_replied"), act("email_clicked")]
    qualified = sales_qualified(model, key_behavior_at=None, recycled_at=None)
    result = score(model, replies, T0, qualified=qualified)
    assert (result.total, result.band, result.awaiting_key_behavior) == (43, "MQL", False)
    assert (result.fit_points, result.behavior_points) == (0, 43)


def test_a_recycled_default_lead_is_held_below_mql_until_a_key_behaviour_after_it(
    model: ScoringModel,
) -> None:
    recycled_at = T0 + DAY
    demo = act("demo_requested", T0)
    trial = act("trial_started", T0)
    # 25 + 30 = 55: SQL, but the key behaviours came before the recycling: Warming.
    before = sales_qualified(model, key_behavior_at=T0, recycled_at=recycled_at)
    held = score(model, [demo, trial], T0 + 2 * DAY, qualified=before)
    assert (held.total, held.band, held.awaiting_key_behavior) == (55, "Warming", True)
    assert stage_tag(held.band) == "stage_warming"
    # A pricing visit after it: 65, SQL again.
    after = sales_qualified(model, key_behavior_at=T0 + 2 * DAY, recycled_at=recycled_at)
    visit = act("pricing_page_viewed", T0 + 2 * DAY)
    again = score(model, [demo, trial, visit], T0 + 2 * DAY, qualified=after)
    assert (again.total, again.band, again.awaiting_key_behavior) == (65, "SQL", False)
    # Below the hand-off band, nothing is held.
    low = score(model, [act("email_clicked")], T0, qualified=False)
    assert (low.total, low.band, low.awaiting_key_behavior) == (3, "Cold", False)


# --- seed 002 -------------------------------------------------------------------------

SEED_002_ACTIONS = [
    ("email_opened", 2),
    ("email_clicked", 5),
    ("content_downloaded", 10),
    ("webinar_attended", 25),
    ("pricing_page_viewed", 20),
    ("demo_requested", 40),
    ("unsubscribed", -50),
]


@pytest.fixture(scope="module")
def seed_002() -> ScoringModel:
    return ScoringModel.load(PROJECT_ROOT / "scoring.seed-002.toml")


@pytest.mark.parametrize(("event_type", "points"), SEED_002_ACTIONS)
def test_seed_002_behaviour_points_do_not_decay(
    seed_002: ScoringModel, event_type: str, points: int
) -> None:
    assert event_type in CANONICAL_EVENT_TYPES
    result = score(seed_002, [act(event_type)], T0 + 1000 * DAY)
    assert result.by_event_type == {event_type: points}
    assert (result.behavior_points, result.fit_points) == (points, 0)


def test_seed_002_bands_mql_rule_and_inactivity(seed_002: ScoringModel) -> None:
    assert [(b.name, b.min_score) for b in seed_002.bands] == [
        ("Cold", 0),
        ("Warming", 40),
        ("MQL", 70),
    ]
    assert (seed_002.mql_rule, seed_002.handoff_band) == (MqlRule.BAND_AND_KEY_BEHAVIOR, "MQL")
    assert seed_002.key_behaviors == ["pricing_page_viewed", "webinar_attended", "demo_requested"]
    assert seed_002.inactivity is not None
    assert (seed_002.inactivity.days, seed_002.inactivity.points) == (90, -15)


@pytest.mark.parametrize(
    ("fields", "fit"),
    [
        ({}, 0),
        ({"job_title": "CEO"}, 30),
        ({"job_title": "  vice   president "}, 30),  # case and spaces do not matter
        ({"job_title": "Manager"}, 20),
        ({"job_title": "Intern"}, 0),
        ({"industry": "software"}, 20),
        ({"company_size": "50"}, 20),
        ({"company_size": "500"}, 20),
        ({"company_size": "1,200"}, 0),
        ({"company_size": "49"}, 0),
        ({"company_size": "50-500"}, 0),  # not a number: no match
        ({"region": "East China"}, 10),
        ({"email_type": "corporate"}, 10),
        ({"email_type": "free"}, -10),
        # Everything: 30 + 20 + 20 + 10 + 10.
        (
            {
                "job_title": "Director",
                "industry": "Manufacturing",
                "company_size": "120",
                "region": "East China",
                "email_type": "corporate",
            },
            90,
        ),
    ],
)
def test_seed_002_fit_points(seed_002: ScoringModel, fields: dict[str, str], fit: int) -> None:
    assert score(seed_002, [], T0, contact_fields=fields).fit_points == fit


FIT_60 = {"job_title": "VP", "company_size": "120", "email_type": "corporate"}  # 30 + 20 + 10


def test_seed_002_needs_70_and_a_key_behaviour_for_mql(seed_002: ScoringModel) -> None:
    reading = [act("email_opened"), act("email_clicked"), act("content_downloaded")]
    no_key = sales_qualified(seed_002, key_behavior_at=None, recycled_at=None)
    # 60 + 2 + 5 + 10 = 77: at least 70, no key behaviour → Warming, not handed off.
    held = score(seed_002, reading, T0, contact_fields=FIT_60, qualified=no_key)
    assert (held.fit_points, held.behavior_points, held.total) == (60, 17, 77)
    assert (held.band, held.awaiting_key_behavior) == ("Warming", True)
    assert not seed_002.sales_ready(held.band)
    # A pricing visit: 97, MQL.
    key = sales_qualified(seed_002, key_behavior_at=T0, recycled_at=None)
    mql = score(
        seed_002,
        [*reading, act("pricing_page_viewed")],
        T0,
        contact_fields=FIT_60,
        qualified=key,
    )
    assert (mql.fit_points, mql.behavior_points, mql.total, mql.band) == (60, 37, 97, "MQL")
    # A key behaviour below 70 is not enough either: 30 + 20 - 10 (free mail) + 20 = 60.
    free = {**FIT_60, "email_type": "free"}
    low = score(seed_002, [act("pricing_page_viewed")], T0, contact_fields=free, qualified=key)
    assert (low.total, low.band, low.awaiting_key_behavior) == (60, "Warming", False)


def test_seed_002_soft_bounce_costs_10_a_hard_one_nothing(seed_002: ScoringModel) -> None:
    soft = seed_002.rule_for("email_bounced", {"bounce_type": "soft"})
    assert soft is not None and soft.points == -10
    assert seed_002.rule_for("email_bounced", {"bounce_type": "hard"}) is None
    assert seed_002.rule_for("email_bounced", {}) is None
    assert seed_002.rule_for("email_opened", {"anything": "at all"}) is not None


def test_seed_002_unsubscribe_takes_50_and_totals_may_fall_below_0(
    seed_002: ScoringModel,
) -> None:
    result = score(
        seed_002,
        [act("email_clicked"), act("unsubscribed")],
        T0,
        contact_fields={"email_type": "free"},
    )
    assert (result.fit_points, result.behavior_points, result.total) == (-10, -45, -55)
    assert result.band == "Cold"
    # A penalty is kept (never pruned): it is worth points forever.
    assert prune(seed_002, [act("unsubscribed", T0 - 1000 * DAY)], T0) == [
        act("unsubscribed", T0 - 1000 * DAY)
    ]


def test_seed_002_ninety_days_without_activity_cost_15_until_the_next_activity(
    seed_002: ScoringModel,
) -> None:
    click = [act("email_clicked")]
    day_89 = score(seed_002, click, T0 + 89 * DAY, inactive_since=T0)
    day_90 = score(seed_002, click, T0 + 90 * DAY, inactive_since=T0)
    assert (day_89.behavior_points, day_89.inactivity_points) == (5, 0)
    assert (day_90.behavior_points, day_90.inactivity_points, day_90.total) == (-10, -15, -10)
    # Once, not every 90 days.
    assert score(seed_002, click, T0 + 400 * DAY, inactive_since=T0).behavior_points == -10
    assert next_inactivity_change(seed_002, T0, T0 + DAY) == T0 + 90 * DAY
    assert next_inactivity_change(seed_002, T0, T0 + 90 * DAY) is None
    assert next_inactivity_change(seed_002, None, T0) is None


def test_the_default_profile_has_no_inactivity_points(model: ScoringModel) -> None:
    assert score(model, [], T0 + 400 * DAY, inactive_since=T0).inactivity_points == 0
    assert next_inactivity_change(model, T0, T0) is None


def test_a_negative_action_decays_towards_0() -> None:
    rule = ActionRule(points=-10, decay_points=4, decay_days=7)
    assert [contribution(rule, T0, T0 + days * DAY) for days in (0, 7, 14, 21)] == [-10, -6, -2, 0]


def test_a_fit_range_may_be_open_ended() -> None:
    big = FitRule(field="company_size", min=1000, points=5)
    assert big.matches({"company_size": "5000"}) and not big.matches({"company_size": "999"})
    assert not big.matches({})


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("ada@gmail.com", "free"),
        ("ada@QQ.com", "free"),
        ("wang@163.com", "free"),
        ("ada@outlook.com", "free"),
        ("ada@mail.yahoo.co.jp", "free"),  # a subdomain of a listed domain
        ("ada@acme.com", "corporate"),
        ("ada@gmail.com.acme.io", "corporate"),
        ("ada@", None),
        ("not-an-address", None),
        (None, None),
    ],
)
def test_email_type_from_the_domain(address: str | None, kind: str | None) -> None:
    assert email_type(address) == kind


def test_the_free_mail_list_holds_the_well_known_providers() -> None:
    assert {"gmail.com", "qq.com", "163.com", "outlook.com", "yahoo.com"} <= free_mail_domains()
    assert len(free_mail_domains()) >= 30


def test_fit_fields_carry_the_email_type_never_the_address() -> None:
    fields = fit_fields({"industry": "Software"}, "ada@acme.com")
    assert fields == {"industry": "Software", "email_type": "corporate"}
    assert "acme" not in repr(fields)
    # Without an address, a stored email_type attribute stands.
    assert fit_fields({"email_type": "free"}, None) == {"email_type": "free"}


def test_a_model_from_before_profiles_keeps_its_fingerprint() -> None:
    """Recorded contact histories compare a recorded fingerprint with that of the recorded
    model: the fields profiles added must not change it (or a replay loads the model again)."""
    before_profiles = ScoringModel.model_validate(
        {
            "handoff_band": "MQL",
            "fit": [{"field": "job_title", "equals": "VP", "points": 30}],
            "actions": {
                "email_opened": {"points": 1, "decay_points": 1, "decay_days": 30, "tag": "act_x"}
            },
            "bands": [{"name": "Cold", "min_score": 0}, {"name": "MQL", "min_score": 26}],
        }
    )
    assert before_profiles.digest() == "b42280449b2c6084"  # as the worker computed it then
    with_a_key_behaviour = before_profiles.model_copy(update={"key_behaviors": ["email_opened"]})
    assert with_a_key_behaviour.digest() != before_profiles.digest()


def test_a_crm_update_scheduled_before_fit_and_behaviour_takes_them_from_its_breakdown() -> None:
    older = {"contact_id": "ada", "score": 70, "band": "SQL", "tags": []}
    update = LeadScoreUpdate.model_validate(
        {**older, "breakdown": {"fit": 30, "trial_started": 40}}
    )
    assert (update.fit, update.behavior) == (30, 40)
    without_fit = LeadScoreUpdate.model_validate({**older, "breakdown": {"trial_started": 70}})
    assert (without_fit.fit, without_fit.behavior) == (0, 70)
