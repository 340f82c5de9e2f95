"""Which behaviour event starts which journey: the trigger rules, in one place.

| Event                 | Starts                                  | Already running  |
|-----------------------|-----------------------------------------|------------------|
| `subscribed`          | welcome-series (once per contact)       | nothing          |
| `pricing_page_viewed` | pricing-abandon (at most once per 30 d) | nothing          |
| `renewal_scheduled`   | renewal-countdown for the subscription  | moves its date   |

Journeys started here get the contact workflow's `day_seconds`. Events are
also forwarded to every journey concerned by their type (see
`Journey.concerned_by`); the contact workflow does that, not the rules.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pydantic import ValidationError
from temporalio import workflow

from workflows.journeys.pricing_abandon import PricingAbandon
from workflows.journeys.renewal_countdown import RenewalCountdown
from workflows.journeys.welcome_series import WelcomeSeries
from workflows.toolkit import Journey

with workflow.unsafe.imports_passed_through():
    from models.events import BehaviorEvent
    from models.journeys import JourneyInput
    from models.renewals import RenewalInput


def _plain_input(event: BehaviorEvent, day_seconds: int) -> JourneyInput:
    return JourneyInput(contact_id=event.contact_id, day_seconds=day_seconds)


def _renewal_input(event: BehaviorEvent, day_seconds: int) -> JourneyInput:
    """From the event's `subscription_id` and `renewal_date` (ISO 8601) properties."""
    return RenewalInput(
        contact_id=event.contact_id,
        day_seconds=day_seconds,
        subscription_id=event.properties.get("subscription_id"),
        renewal_date=event.properties.get("renewal_date"),
        rescheduled_by_event_at=event.occurred_at,
    )


@dataclass(frozen=True)
class Trigger:
    """An event type that starts a journey.

    Attributes:
        event_type: The event that starts it.
        journey: The journey started.
        journey_input: Builds the journey's input from the event and the
            contact's journey clock; raises `ValidationError` when the event
            lacks what the journey needs (the event is still scored).
    """

    event_type: str
    journey: type[Journey]
    journey_input: Callable[[BehaviorEvent, int], JourneyInput] = _plain_input

    def input_for(self, event: BehaviorEvent, day_seconds: int) -> JourneyInput | None:
        """The journey's input, or None (logged) when the event cannot start it."""
        try:
            return self.journey_input(event, day_seconds)
        except ValidationError as error:
            workflow.logger.warning(
                "%s %s cannot start %s: %s",
                event.type,
                event.event_id,
                self.journey.name,
                "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()),
            )
            return None


TRIGGERS = {
    trigger.event_type: trigger
    for trigger in (
        Trigger("subscribed", WelcomeSeries),
        Trigger("pricing_page_viewed", PricingAbandon),
        Trigger("renewal_scheduled", RenewalCountdown, _renewal_input),
    )
}
"""Trigger rules by event type."""
