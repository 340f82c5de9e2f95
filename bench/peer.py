"""The peer baseline: the welcome series written by hand, as `temporalio/samples-python` would.

One workflow class, its activities called by function reference
(`bench.peer_activities`), the SDK's default data converter, no toolkit. The
same steps and timing as the product's welcome series
(`workflows/journeys/welcome_series.py`): five emails on days 0, 1, 2, 4 and 7
from enrolment, each one `send_welcome_email` activity (load the contact,
check consent, render the same template, write the outbox file, insert the
message-log row), then on day 7 the route step, one `route_contact` activity
that reads the contact as the product's `lead_status` does; the peer starts
no follow-up journey (the benchmarks' contacts are with sales already, for
which the product starts none either).

No deferral loop, run log, search attributes, details or memo. An `exit`
signal ends it at once, as does an `event` signal naming `unsubscribed` or
`purchased` (what the product exits on); `event` is also what a
signal-with-start carries (`subscribed`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from bench.peer_activities import (
        ACTIVITY_TIMEOUT,
        PEER_JOURNEY,
        PeerEmail,
        route_contact,
        send_welcome_email,
    )

EMAILS = (("day0", 0), ("day1", 1), ("day2", 2), ("day4", 4), ("day7", 7))
"""Each email's step and day, as the product's welcome series has them."""
ROUTE_DAY = 7
EXIT_EVENTS = frozenset({"unsubscribed", "purchased"})
DAY = 86_400.0


@dataclass(frozen=True)
class PeerInput:
    """Whom to welcome, and on what clock.

    Attributes:
        contact_id: The contact.
        day_seconds: Seconds per day (an accelerated clock in benchmarks).
        origin: The instant days count from (epoch seconds); the workflow's start if None.
    """

    contact_id: str
    day_seconds: float = DAY
    origin: float | None = None


def peer_workflow_id(contact_id: str) -> str:
    """The peer's workflow id for a contact (also the prefix of its messages' keys)."""
    return f"{PEER_JOURNEY}-{contact_id}"


@workflow.defn(name=PEER_JOURNEY)
class PeerWelcomeSeries:
    """Five welcome emails over seven days, then the route step (module docstring)."""

    def __init__(self) -> None:
        """Not exited."""
        self._exited = False

    @workflow.signal
    def event(self, event_type: str) -> None:
        """A behaviour event: an unsubscribe or a purchase ends the series."""
        if event_type in EXIT_EVENTS:
            self._exited = True

    @workflow.signal
    def exit(self) -> None:
        """End the series now."""
        self._exited = True

    @workflow.run
    async def run(self, peer: PeerInput) -> list[str]:
        """Send each email on its day, then route; returns the steps sent."""
        start = workflow.now() if peer.origin is None else datetime.fromtimestamp(peer.origin, UTC)
        sent: list[str] = []
        for step, day in EMAILS:
            if not await self._wait_until(start + timedelta(seconds=day * peer.day_seconds)):
                return sent
            email = PeerEmail(workflow.info().workflow_id, peer.contact_id, step)
            outcome = await workflow.execute_activity(
                send_welcome_email, email, start_to_close_timeout=ACTIVITY_TIMEOUT
            )
            if outcome == "sent":
                sent.append(step)
        if await self._wait_until(start + timedelta(seconds=ROUTE_DAY * peer.day_seconds)):
            await workflow.execute_activity(
                route_contact, peer.contact_id, start_to_close_timeout=ACTIVITY_TIMEOUT
            )
        return sent

    async def _wait_until(self, due: datetime) -> bool:
        """Wait until `due` unless exited first; whether to go on."""
        remaining = due - workflow.now()
        if remaining > timedelta(0) and not self._exited:
            try:
                await workflow.wait_condition(lambda: self._exited, timeout=remaining)
            except TimeoutError:
                pass
        return not self._exited
