"""Whether a contact meets a segment's rule, and when that may change with time alone.

One evaluator serves every path: the contact workflow's refresh after its events,
the segment sweep, a new segment's first evaluation and `journeys segments
preview`. It reads `ContactFacts`, which `rules/segment_membership.py` loads:
the profile and, per event window a rule names, how many events fell in it and
the oldest of them.

A rule that counts events in a window can change with nothing happening: the
oldest event in the window ages out. `next_lapse` says when, so the sweep
evaluates the contact again then (not before, not on a poll).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from models.segments import Condition, ScoreKind

ACTIVITY = None
"""The `event` of a window key that counts every contact-initiated event (`inactive_for`)."""


@dataclass(frozen=True)
class WindowKey:
    """Events a rule counts: of one type (or every contact-initiated one), in a window."""

    event: str | None
    window: timedelta | None


@dataclass(frozen=True)
class WindowCount:
    """How many of a window's events a contact has, and when the oldest of them happened."""

    count: int
    oldest: datetime | None = None


@dataclass(frozen=True)
class ContactFacts:
    """What the rules read of one contact (see `rules/segment_membership.py: load_facts`)."""

    contact_id: str
    created_at: datetime
    attributes: Mapping[str, str] = field(default_factory=dict)
    tags: frozenset[str] = frozenset()
    scores: Mapping[ScoreKind, int] = field(default_factory=dict)
    band: str | None = None
    stage: str | None = None
    consent: frozenset[str] = frozenset()
    windows: Mapping[WindowKey, WindowCount] = field(default_factory=dict)

    def count(self, key: WindowKey) -> int:
        """Events of `key` the contact has (0 when none were found)."""
        found = self.windows.get(key)
        return found.count if found else 0


def window_key(condition: Condition) -> WindowKey | None:
    """The events an `event` or `inactive_for` condition counts (None for other subjects)."""
    if condition.event is not None:
        return WindowKey(condition.event, condition.within)
    if condition.inactive_for is not None:
        return WindowKey(ACTIVITY, condition.inactive_for)
    return None


def window_keys(rules: Iterable[Condition]) -> set[WindowKey]:
    """Every event window the rules count."""
    return {
        key
        for rule in rules
        for condition in rule.walk()
        if (key := window_key(condition)) is not None
    }


def matches(rule: Condition, facts: ContactFacts, now: datetime) -> bool:
    """Whether the contact meets `rule` at `now`."""
    match rule.subject:
        case "all":
            return all(matches(child, facts, now) for child in rule.children())
        case "any":
            return any(matches(child, facts, now) for child in rule.children())
        case "not":
            return not matches(rule.children()[0], facts, now)
        case "attribute":
            return _attribute_matches(rule, facts.attributes.get(rule.attribute or ""))
        case "has_tag":
            return rule.has_tag in facts.tags
        case "lacks_tag":
            return rule.lacks_tag not in facts.tags
        case "tag_prefix":
            return any(tag.startswith(rule.tag_prefix or "") for tag in facts.tags)
        case "score":
            return _in_range(rule, facts.scores.get(rule.score or ScoreKind.LEAD, 0))
        case "band":
            return facts.band in (rule.band or [])
        case "stage":
            return facts.stage in (rule.stage or [])
        case "consent":
            wanted = True if rule.granted is None else rule.granted
            return (rule.consent in facts.consent) == wanted
        case "event":
            key = window_key(rule)
            return key is not None and _in_range(rule, facts.count(key))
        case _:  # inactive_for: no contact-initiated event in the window, known that long
            key = window_key(rule)
            window = rule.inactive_for or timedelta(0)
            return key is not None and facts.count(key) == 0 and facts.created_at <= now - window


def _attribute_matches(rule: Condition, value: str | None) -> bool:
    if rule.exists is not None and (value is not None) != rule.exists:
        return False
    if value is None:
        return rule.exists is False
    if rule.equals is not None and value != rule.equals:
        return False
    if rule.in_ is not None and value not in rule.in_:
        return False
    if rule.at_least is None and rule.at_most is None:
        return True
    try:
        number = float(value)
    except ValueError:
        return False  # a range over an attribute that is not a number here
    return _in_range(rule, number)


def _in_range(rule: Condition, value: float) -> bool:
    if rule.at_least is not None and value < rule.at_least:
        return False
    return rule.at_most is None or value <= rule.at_most


def next_lapse(rules: Iterable[Condition], facts: ContactFacts, now: datetime) -> datetime | None:
    """The next moment the rules' truth may change for this contact with no event: the
    oldest event of a window ageing out of it, or (`inactive_for`) the contact becoming
    known for the whole window. None when nothing can change with time alone."""
    moments: list[datetime] = []
    for key in window_keys(rules):
        if key.window is None:
            continue
        found = facts.windows.get(key)
        if found is not None and found.count and found.oldest is not None:
            moments.append(found.oldest + key.window)
        if key.event is ACTIVITY:
            moments.append(facts.created_at + key.window)
    later = [moment for moment in moments if moment > now]
    return min(later, default=None)
