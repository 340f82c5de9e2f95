"""Messaging policy: when a message may go out.

Pure functions, so the rules are easy to read and to test; the send activity
applies them right before delivery, against the database.

- Quiet hours are local to the contact (its IANA time zone, DST included):
  a send inside them is deferred to the end of the quiet period.
- Frequency caps count the contact's marketing messages on the channel across
  all journeys in rolling windows; over a cap, the send is deferred until the
  oldest counted message leaves the window.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from models.policy import FrequencyCap, MessagingPolicy


def _in_quiet_period(local: time, start: time, end: time) -> bool:
    if start == end:
        return False
    if start < end:
        return start <= local < end
    return local >= start or local < end


def quiet_hours_end(now: datetime, timezone: str, policy: MessagingPolicy) -> datetime | None:
    """When the quiet period `now` falls in ends (UTC), or None if `now` is allowed.

    Args:
        now: The send time (timezone-aware).
        timezone: The contact's IANA time zone.
        policy: Quiet hours to apply.
    """
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    if not _in_quiet_period(
        local.timetz().replace(tzinfo=None), policy.quiet_start, policy.quiet_end
    ):
        return None
    end_date = local.date()
    if local.time() >= policy.quiet_end:
        end_date += timedelta(days=1)
    # Local wall-clock time; a nonexistent time (DST gap) is resolved by the zone.
    local_end = datetime.combine(end_date, policy.quiet_end, tzinfo=zone)
    return local_end.astimezone(now.tzinfo)


def frequency_cap_release(
    now: datetime, recent_sends: Sequence[datetime], caps: Sequence[FrequencyCap]
) -> datetime | None:
    """When a further message fits under every cap, or None if it fits now.

    Args:
        now: The send time.
        recent_sends: Times of the contact's counted messages (any order).
        caps: The caps to respect.
    """
    release: datetime | None = None
    ordered = sorted(recent_sends, reverse=True)
    for cap in caps:
        in_window = [sent for sent in ordered if sent > now - cap.window]
        if len(in_window) >= cap.limit:
            frees_at = in_window[cap.limit - 1] + cap.window
            release = frees_at if release is None else max(release, frees_at)
    return release
