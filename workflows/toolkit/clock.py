"""The journey clock: Day N counts from enrolment, pauses stop it, skipped waits move it.

Pausing stops the clock: waits are extended by the time spent paused and
nothing is sent while paused, so a resumed journey carries on where it was
instead of sending the steps it missed in a burst. Skipping a wait moves the
clock forward by what was left of it, so later days keep their spacing.

The clock also keeps the deadline of every relative wait (`deadline`), so a
run that continues as new resumes it instead of starting it again. Pure: the
caller passes the time (`workflow.now()`).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta


class JourneyClock:
    """Journey time since enrolment, pauses and the deadlines of relative waits."""

    def __init__(self) -> None:
        """A clock not started yet (`start` or `restore` sets it)."""
        self.enrolled_at = datetime.min
        self.origin = datetime.min
        self.paused_at: datetime | None = None
        self.waits: dict[str, timedelta] = {}
        self._wait_counts: Counter[str] = Counter()

    def start(self, now: datetime) -> None:
        """Day 0 is `now`."""
        self.enrolled_at = self.origin = now

    def restore(
        self,
        *,
        enrolled_at: datetime,
        origin: datetime,
        paused_at: datetime | None,
        waits: dict[str, timedelta],
    ) -> None:
        """Carry on the clock of the previous run."""
        self.enrolled_at, self.origin, self.paused_at = enrolled_at, origin, paused_at
        self.waits = dict(waits)

    def elapsed(self, now: datetime) -> timedelta:
        """Journey time since Day 0 (time paused does not count)."""
        return now - self.origin

    @property
    def paused(self) -> bool:
        """Whether the clock is stopped."""
        return self.paused_at is not None

    def pause(self, now: datetime) -> bool:
        """Stop the clock; returns False if it was stopped already."""
        if self.paused_at is not None:
            return False
        self.paused_at = now
        return True

    def resume(self, now: datetime) -> bool:
        """Restart the clock, moving Day 0 by the time paused; False if it was running."""
        if self.paused_at is None:
            return False
        self.origin += now - self.paused_at
        self.paused_at = None
        return True

    def skip_to(self, offset: timedelta, now: datetime) -> None:
        """Move the clock forward so that it is `offset` now (a skipped wait)."""
        self.origin -= offset - self.elapsed(now)

    def deadline(self, key: str, duration: timedelta, now: datetime) -> timedelta:
        """The deadline (journey time) of the relative wait `key`, its n-th in this run.

        The deadline it got in an earlier run if any, else `duration` from now.
        """
        self._wait_counts[key] += 1
        return self.waits.setdefault(
            f"{key}#{self._wait_counts[key]}", self.elapsed(now) + duration
        )
