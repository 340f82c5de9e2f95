"""Segment rules: what a rule may say, whom it matches, and when time alone changes that;
membership recorded in the database (SQLite and PostgreSQL), with entering and leaving."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from temporalio.testing import ActivityEnvironment

from activities.contacts import ContactActivities
from models.db import session_factory
from models.segments import Condition, ScoreKind, Segment, SegmentFile
from models.settings import Settings
from models.tables import Contact, ContactEvent, SegmentChange, SegmentMember
from models.toml_files import load_toml
from rules.scoring import ScoringModel
from rules.segment_membership import preview_rule, refresh_memberships
from rules.segments import ACTIVITY, ContactFacts, WindowCount, WindowKey, matches, next_lapse
from runtime.keys import key_store
from starter.services.dedupe import merge_contacts

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
PRICING_TWICE = {"event": "pricing_page_viewed", "at_least": 2, "within": "14d"}


def rule(data: dict[str, object]) -> Condition:
    return Condition.model_validate(data)


def facts(**values: object) -> ContactFacts:
    base: dict[str, object] = {"contact_id": "c1", "created_at": NOW - timedelta(days=365)}
    return ContactFacts(**{**base, **values})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"event": "pricing_page_viewed"}, "event needs a test"),
        ({"has_tag": "a", "lacks_tag": "b"}, "exactly one of"),
        ({"attribute": "region", "granted": True}, "attribute takes no granted"),
        ({"all": []}, "all needs at least one condition"),
        ({"inactive_for": "0d"}, "is not a duration"),
        ({"event": "x", "at_least": 1, "within": "2 weeks"}, "is not a duration"),
        ({"stage": ["prospect"]}, "stage"),
        ({"consent": "fax"}, "consent"),
        ({"score": "lead"}, "score needs a test"),
        ({"tags": "x"}, "Extra inputs are not permitted"),
    ],
)
def test_a_malformed_rule_is_refused_with_what_is_wrong(
    data: dict[str, object], problem: str
) -> None:
    with pytest.raises(ValidationError, match=problem):
        rule(data)


def test_the_shipped_segments_file_is_valid_and_round_trips() -> None:
    defined = load_toml(SegmentFile, Path("segments.toml"), "segments file").defined()
    assert {"hot-pricing-visitors", "dormant-subscribers"} <= set(defined)
    for segment in defined.values():
        assert segment.source == "file"
        assert rule(segment.rule.dump()) == segment.rule  # the API takes what the file says


def test_a_bad_segments_file_names_the_segment_and_the_field(tmp_path: Path) -> None:
    path = tmp_path / "segments.toml"
    path.write_text('[segments.hot]\nevent = "pricing_page_viewed"\nwithin = "14d"\n')
    with pytest.raises(ValueError, match=r"segments\.hot.*event needs a test"):
        load_toml(SegmentFile, path, "segments file")


@pytest.mark.parametrize(
    ("data", "contact", "expected"),
    [
        ({"attribute": "region", "equals": "emea"}, {"attributes": {"region": "emea"}}, True),
        ({"attribute": "region", "in": ["emea", "apac"]}, {"attributes": {"region": "na"}}, False),
        ({"attribute": "seats", "at_least": 50}, {"attributes": {"seats": "120"}}, True),
        ({"attribute": "seats", "at_most": 50}, {"attributes": {"seats": "120"}}, False),
        ({"attribute": "seats", "at_least": 50}, {"attributes": {"seats": "many"}}, False),
        ({"attribute": "seats", "at_least": 1}, {}, False),
        ({"attribute": "region", "exists": False}, {}, True),
        ({"has_tag": "int_pricing"}, {"tags": frozenset({"int_pricing"})}, True),
        ({"lacks_tag": "act_purchased"}, {"tags": frozenset({"act_purchased"})}, False),
        ({"tag_prefix": "src_"}, {"tags": frozenset({"src_webinar"})}, True),
        ({"score": "fit", "at_least": 20}, {"scores": {ScoreKind.FIT: 25}}, True),
        ({"score": "lead", "at_least": 20}, {"scores": {ScoreKind.FIT: 25}}, False),
        ({"band": ["hot", "warm"]}, {"band": "warm"}, True),
        ({"stage": "mql"}, {"stage": "lead"}, False),
        ({"consent": "email"}, {"consent": frozenset({"email"})}, True),
        ({"consent": "sms", "granted": False}, {"consent": frozenset({"email"})}, True),
        ({"not": {"has_tag": "x"}}, {}, True),
        ({"any": [{"has_tag": "x"}, {"band": "hot"}]}, {"band": "hot"}, True),
        ({"all": [{"has_tag": "x"}, {"band": "hot"}]}, {"band": "hot"}, False),
    ],
)
def test_a_rule_matches_the_contacts_it_describes(
    data: dict[str, object], contact: dict[str, object], expected: bool
) -> None:
    assert matches(rule(data), facts(**contact), NOW) is expected


def test_events_count_in_their_window_and_lapse_when_the_oldest_ages_out() -> None:
    hot = rule(PRICING_TWICE)
    key = WindowKey("pricing_page_viewed", timedelta(days=14))
    oldest = NOW - timedelta(days=13)
    twice = facts(windows={key: WindowCount(2, oldest)})
    assert matches(hot, twice, NOW)
    assert not matches(hot, facts(windows={key: WindowCount(1, oldest)}), NOW)
    assert next_lapse([hot], twice, NOW) == oldest + timedelta(days=14)


def test_no_purchase_in_30_days_turns_true_when_the_last_purchase_ages_out() -> None:
    lapsed = rule({"event": "purchased", "at_most": 0, "within": "30d"})
    key = WindowKey("purchased", timedelta(days=30))
    bought = NOW - timedelta(days=10)
    assert not matches(lapsed, facts(windows={key: WindowCount(1, bought)}), NOW)
    assert matches(lapsed, facts(), NOW)
    assert next_lapse([lapsed], facts(windows={key: WindowCount(1, bought)}), NOW) == bought + (
        timedelta(days=30)
    )


def test_inactivity_counts_only_for_a_contact_known_the_whole_window() -> None:
    dormant = rule({"inactive_for": "30d"})
    key = WindowKey(ACTIVITY, timedelta(days=30))
    newcomer = facts(created_at=NOW - timedelta(days=3))
    assert not matches(dormant, newcomer, NOW)
    assert next_lapse([dormant], newcomer, NOW) == NOW + timedelta(days=27)
    assert matches(dormant, facts(), NOW)
    active = facts(windows={key: WindowCount(1, NOW - timedelta(days=2))})
    assert not matches(dormant, active, NOW)
    assert next_lapse([dormant], active, NOW) == NOW + timedelta(days=28)


async def _contact(engine: AsyncEngine, contact_id: str, **fields: Any) -> None:
    async with session_factory(engine)() as session:
        session.add(Contact(id=contact_id, **fields))
        await session.commit()


async def _event(engine: AsyncEngine, contact_id: str, event_type: str, at: datetime) -> None:
    async with session_factory(engine)() as session:
        session.add(
            ContactEvent(
                contact_id=contact_id,
                event_id=f"{event_type}-{at.isoformat()}",
                type=event_type,
                occurred_at=at,
                properties={},
                batch_key="test",
            )
        )
        await session.commit()


async def _refresh(
    engine: AsyncEngine, segments: list[Segment], now: datetime
) -> list[SegmentChange]:
    async with session_factory(engine)() as session:
        contacts = list((await session.exec(select(Contact).order_by(col(Contact.id)))).all())
        refreshed = await refresh_memberships(
            session, contacts, segments, now, followed=frozenset({"hot"}), every_segment=True
        )
        await session.commit()
        return refreshed.changes


async def test_membership_records_entering_and_leaving_with_their_time(
    database: AsyncEngine,
) -> None:
    hot = Segment(name="hot", rule=rule(PRICING_TWICE))
    quiet = Segment(name="quiet", rule=rule({"inactive_for": "30d"}))
    created = NOW - timedelta(days=60)
    await _contact(database, "ana", created_at=created)
    await _contact(database, "ben", created_at=created)
    for days_ago in (13, 1):
        await _event(database, "ana", "pricing_page_viewed", NOW - timedelta(days=days_ago))

    entered = await _refresh(database, [hot, quiet], NOW)
    assert sorted((c.segment, c.contact_id, c.change) for c in entered) == [
        ("hot", "ana", "entered"),
        ("quiet", "ben", "entered"),
    ]
    assert {c.segment: c.event_id is not None for c in entered} == {"hot": True, "quiet": False}
    assert await _refresh(database, [hot, quiet], NOW) == []  # nothing changed: nothing recorded

    later = NOW + timedelta(days=1, minutes=1)  # the visit 13 days ago has aged out
    left = await _refresh(database, [hot, quiet], later)
    assert [(c.segment, c.contact_id, c.change, c.occurred_at) for c in left] == [
        ("hot", "ana", "left", later)
    ]
    async with session_factory(database)() as session:
        members = (await session.exec(select(SegmentMember))).all()
        ben = await session.get(Contact, "ben")
    assert [(m.segment, m.contact_id, m.entered_at) for m in members] == [("quiet", "ben", NOW)]
    assert ben is not None and ben.segments_due_at is None  # no event: nothing lapses


async def test_the_refresh_sets_when_the_contact_is_due_again(database: AsyncEngine) -> None:
    hot = Segment(name="hot", rule=rule(PRICING_TWICE))
    await _contact(database, "ana")
    first = NOW - timedelta(days=5)
    await _event(database, "ana", "pricing_page_viewed", first)
    await _event(database, "ana", "pricing_page_viewed", NOW - timedelta(hours=1))
    await _refresh(database, [hot], NOW)
    async with session_factory(database)() as session:
        ana = await session.get(Contact, "ana")
    assert ana is not None and ana.segments_due_at == first + timedelta(days=14)


async def test_a_preview_counts_without_recording(database: AsyncEngine) -> None:
    for number in range(5):
        await _contact(database, f"c{number}", attributes={"seats": str(number * 10)})
    async with session_factory(database)() as session:
        found = await preview_rule(
            session, rule({"attribute": "seats", "at_least": 20}), NOW, sample_size=2, page=2
        )
        members = (await session.exec(select(SegmentMember))).all()
    assert (found.count, found.contacts, found.sample) == (3, 5, ["c2", "c3"])
    assert members == []


async def _memberships(engine: AsyncEngine, contact_id: str) -> tuple[list[str], list[str]]:
    """The segments the contact is in now, and its recorded changes."""
    async with session_factory(engine)() as session:
        members = await session.exec(
            select(SegmentMember.segment).where(col(SegmentMember.contact_id) == contact_id)
        )
        changes = await session.exec(
            select(SegmentChange.change).where(col(SegmentChange.contact_id) == contact_id)
        )
        return list(members.all()), list(changes.all())


async def test_erasure_forgets_memberships_and_a_merge_moves_their_history(
    settings: Settings, engine: AsyncEngine
) -> None:
    everyone = Segment(name="everyone", rule=rule({"attribute": "seats", "exists": False}))
    for contact_id in ("ada", "bob", "cy"):
        await _contact(engine, contact_id)
    await _refresh(engine, [everyone], NOW)
    contacts = ContactActivities(
        engine=engine,
        scoring=ScoringModel.load(settings.scoring_file),
        outbox_dir=settings.outbox_dir,
        keys=key_store(settings, engine=engine),
        suppression_key=settings.suppression_key(),
    )

    erased = await ActivityEnvironment().run(contacts.erase_contact, "ada")
    assert (erased.rows_deleted["segment_members"], erased.rows_deleted["segment_changes"]) == (
        1,
        1,
    )
    assert await _memberships(engine, "ada") == ([], [])

    await merge_contacts(engine, "bob", "cy", actor="test")
    assert await _memberships(engine, "cy") == ([], [])
    assert await _memberships(engine, "bob") == (["everyone"], ["entered", "entered"])
