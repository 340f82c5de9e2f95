"""Nurture by interest and band: the content tracks, which one a contact reads, and when.

Tracks (each email offers one asset; the templates are `nurture/<track>-<asset>`,
the general track's are the original weekly emails `nurture/week1`…`week3`):

- `automation`: an `int_…` tag naming automation or workflows, else a `src_…`
  tag naming a webinar; flow recipes, automation teardown, first-flow checklist.
- `ecommerce`: an `int_…` tag naming ecommerce, commerce, shop, store or retail,
  else a `src_…` tag naming shopify or ecommerce; abandoned-cart guide, store
  story, product-launch checklist.
- `general`: anything else; sender checklist, customer story, pre-send checklist.

Choosing (`choose_track`): an interest the contact gained since the last send
wins (the newest interest moves the contact to its track at the next send);
else the track of the last send stays; else an interest, then a source; else
general. An interest always beats a source.

Schedule (`slot_time`): slots fall on the contact's local calendar, counted from
the local date of enrolment, at a fixed local hour (DST-correct through
`zoneinfo`): the main slot on the enrolment's weekday each week (Days 7, 14,
21…) and a mid-week slot three days after each main one (Days 3, 10, 17…). A
Cold contact is sent only the main slots (weekly); a Warming one every slot
(twice a week, 3 and 4 days apart). Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_TIMEZONE = "UTC"
"""The zone of a contact whose time zone is missing or unknown."""
FREQUENT_BANDS = frozenset({"Warming"})
"""Bands sent every slot (twice a week); the others below the hand-off band weekly."""
MIDWEEK_DAY = 3
"""The mid-week slot, days after the main one (Tuesday → Friday)."""
CONTENT_EMAILS = 3
"""Content emails before the roundup that ends the journey."""


@dataclass(frozen=True)
class Asset:
    """One piece of content a nurture email offers.

    Attributes:
        id: The asset, as `content_downloaded` names it (`properties.asset`).
        title: What it is, for the plan.
        template: Its email's template, if not `nurture/<track>-<id>`.
    """

    id: str
    title: str
    template: str | None = None


@dataclass(frozen=True)
class Track:
    """A content track: the assets it offers and the tags that choose it.

    Attributes:
        id: Track name, e.g. `automation`.
        title: Human name.
        interests: Words an `int_…` tag names to choose it (e.g. `automation`).
        sources: Words a `src_…` tag names to choose it (e.g. `webinar`).
        assets: Its assets, in the order they are offered.
    """

    id: str
    title: str
    interests: frozenset[str]
    sources: frozenset[str]
    assets: tuple[Asset, ...]

    def step(self, asset: Asset) -> str:
        """The journey step that offers `asset`: `automation.flow-recipes`."""
        return f"{self.id}.{asset.id}"

    def template(self, asset: Asset) -> str:
        """The template of the email that offers `asset`."""
        return asset.template or f"nurture/{self.id}-{asset.id}"


GENERAL = Track(
    "general",
    "General",
    frozenset(),
    frozenset(),
    (
        Asset("sender-checklist", "Industry insight: the sender checklist", "nurture/week1"),
        Asset("customer-story", "Customer story", "nurture/week2"),
        Asset("pre-send-checklist", "Practical how-to: the pre-send checklist", "nurture/week3"),
    ),
)
TRACKS = (
    Track(
        "automation",
        "Automation",
        frozenset({"automation", "automations", "workflow", "workflows"}),
        frozenset({"webinar"}),
        (
            Asset("flow-recipes", "Industry insight: five flow recipes"),
            Asset("automation-teardown", "Customer story: an automation teardown"),
            Asset("first-flow-checklist", "Practical how-to: the first-flow checklist"),
        ),
    ),
    Track(
        "ecommerce",
        "Ecommerce",
        frozenset({"ecommerce", "commerce", "shop", "store", "retail"}),
        frozenset({"shopify", "ecommerce"}),
        (
            Asset("abandoned-cart-guide", "Industry insight: the abandoned-cart guide"),
            Asset("store-story", "Customer story: a store's first 90 days"),
            Asset("launch-checklist", "Practical how-to: the product-launch checklist"),
        ),
    ),
    GENERAL,
)
"""Every track, topic tracks first (their order breaks ties); `general` last."""


def track_named(name: str | None) -> Track | None:
    """The track called `name`, if any."""
    return next((track for track in TRACKS if track.id == name), None)


def _words(tag: str, prefix: str) -> set[str]:
    return set(re.split(r"[_\-]", tag[len(prefix) :])) if tag.startswith(prefix) else set()


def _by_tags(tags: Iterable[str], prefix: str, field: str) -> Track | None:
    """The first topic track one of `tags` (with `prefix`) chooses by its `field` words."""
    words: set[str] = set()
    for tag in tags:
        words |= _words(tag, prefix)
    return next((t for t in TRACKS if getattr(t, field) & words), None)


def choose_track(tags: Collection[str], *, seen: Collection[str], current: str | None) -> Track:
    """The track of the next email (see the module docstring).

    Args:
        tags: The contact's tags now.
        seen: The contact's tags at the previous send (empty at the first).
        current: The track of the previous send, if any.
    """
    gained = _by_tags(set(tags) - set(seen), "int_", "interests")
    if gained is not None and seen:
        return gained
    kept = track_named(current)
    if kept is not None:
        return kept
    return _by_tags(tags, "int_", "interests") or _by_tags(tags, "src_", "sources") or GENERAL


def next_asset(
    track: Track, *, offered: Collection[str], downloaded: Collection[str]
) -> tuple[Track, Asset] | None:
    """The first asset of `track`, then of general, neither offered (step) nor downloaded."""
    for candidate in (track, GENERAL):
        for asset in candidate.assets:
            if candidate.step(asset) not in offered and asset.id not in downloaded:
                return candidate, asset
    return None


def zone_of(timezone: str | None) -> ZoneInfo:
    """The contact's zone; `DEFAULT_TIMEZONE` when it has none or an unknown one."""
    try:
        return ZoneInfo(timezone or DEFAULT_TIMEZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_TIMEZONE)


def local_date(moment: datetime, timezone: str | None) -> date:
    """The contact's calendar date at `moment`."""
    return moment.astimezone(zone_of(timezone)).date()


def slot_day(index: int) -> int:
    """Days after the enrolment date of slot `index`: 3, 7, 10, 14, 17, 21…"""
    week, midweek = divmod(index, 2)
    return 7 * week + (MIDWEEK_DAY if midweek == 0 else 7)


def is_main_slot(index: int) -> bool:
    """Whether slot `index` is a weekly (main) slot, sent to every band."""
    return index % 2 == 1


def slot_time(anchor: date, index: int, *, hour: int, timezone: str | None) -> datetime:
    """When slot `index` is (UTC): `hour` o'clock local, `slot_day(index)` after `anchor`."""
    local = datetime.combine(
        anchor + timedelta(days=slot_day(index)), time(hour), tzinfo=zone_of(timezone)
    )
    return local.astimezone(UTC)


def sent_this_slot(index: int, band: str | None) -> bool:
    """Whether a contact in `band` gets an email at slot `index` (Warming: all; else main)."""
    return is_main_slot(index) or band in FREQUENT_BANDS
