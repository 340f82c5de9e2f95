"""Refusing a replayed webhook request: the values (tokens, ids) this process has taken lately.

A signed request stays valid for its provider's tolerance window, so a copy
replayed within it would verify. The route remembers what makes a request
unique once it has handled it, and refuses the same value again while the
window lasts. The memory is this process's own (a restart or a second gateway
forgets it); what the request carries is deduplicated again by the intake, by
the provider's event id, so a replay that gets through changes nothing.
"""

from __future__ import annotations

from collections import OrderedDict


class RecentlySeen:
    """Values taken in the last `ttl` seconds (at most `limit`, the oldest forgotten first)."""

    def __init__(self, ttl: float, *, limit: int = 100_000) -> None:
        """Remember values for `ttl` seconds, at most `limit` of them."""
        self._ttl = ttl
        self._limit = limit
        self._expiry: OrderedDict[str, float] = OrderedDict()

    def seen(self, value: str, *, now: float) -> bool:
        """Whether `value` was taken less than `ttl` seconds before `now`."""
        return self._expiry.get(value, now) > now

    def add(self, value: str, *, now: float) -> None:
        """Remember `value` from `now` on; forget what has expired."""
        while self._expiry and (
            next(iter(self._expiry.values())) <= now or len(self._expiry) >= self._limit
        ):
            self._expiry.popitem(last=False)
        self._expiry[value] = now + self._ttl
