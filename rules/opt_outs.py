"""What an opt-out or a bounce stops: which channels, for what reason, and whether consent goes.

Pure and deterministic (the contact workflow uses it too); writing the
suppression and the consent change is `rules/consent.py`'s job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from models.events import ALL_CHANNELS

COMPLAINED = "email_complained"
"""The event of a spam report (a provider's complaint notification)."""
SUPPRESSING_EVENTS = {
    "unsubscribed": "unsubscribed",
    "email_bounced": "hard_bounce",
    COMPLAINED: "complaint",
}
"""Events that suppress the contact's addresses, with the reason recorded."""


COMPLAINT = "complaint"
"""The reason recorded for a spam report (`email_complained`, or an `unsubscribed` event with
this reason): it stops service messages too."""


class EventLike(Protocol):
    """What `suppression_scope` reads: a `BehaviorEvent` or a stored event row."""

    @property
    def type(self) -> str: ...

    @property
    def properties(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class SuppressionScope:
    """What a suppressing event stops.

    Attributes:
        reason: `unsubscribed`, `complaint` or `hard_bounce`, as the suppression records it.
        channels: The channels whose addresses are suppressed.
        withdraws_consent: The contact opted out (an unsubscribe or a
            complaint), so its marketing consent on those channels is withdrawn
            and the change recorded; a bounce is not a consent change.
    """

    reason: str
    channels: frozenset[str]
    withdraws_consent: bool

    @property
    def all_channels(self) -> bool:
        """Whether it stops every channel (today's meaning of a plain `unsubscribed`)."""
        return self.channels == ALL_CHANNELS


def suppression_scope(event: EventLike) -> SuppressionScope | None:
    """What the event suppresses, or None if it suppresses nothing.

    - `unsubscribed` with `properties.channel` `email` or `sms`: that channel
      only (the email link, List-Unsubscribe, an SMS STOP);
    - `unsubscribed` without a channel (or with any other value): every
      channel, all marketing (a complaint, a service's opt-out);
    - a hard `email_bounced`: the email address only (not a soft bounce);
    - a complaint (`email_complained`, or `unsubscribed` with `reason: complaint`)
      is recorded as such, on every channel: it stops service messages too (see
      `Suppression.stops_service_messages`).
    """
    reason = SUPPRESSING_EVENTS.get(event.type)
    if reason is None:
        return None
    if event.type == "email_bounced":
        if event.properties.get("bounce_type") == "soft":
            return None
        return SuppressionScope(reason, frozenset({"email"}), withdraws_consent=False)
    if event.type == COMPLAINED:
        return SuppressionScope(COMPLAINT, ALL_CHANNELS, withdraws_consent=True)
    if event.properties.get("reason") == COMPLAINT:
        reason = COMPLAINT
    channel = event.properties.get("channel")
    channels = frozenset({channel}) if channel in ALL_CHANNELS else ALL_CHANNELS
    return SuppressionScope(reason, channels, withdraws_consent=True)
