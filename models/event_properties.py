"""The properties an event type must carry: event type → pydantic model of its properties.

Journeys rely on some events' properties (a cart's id, items and total); a
malformed one would only show as a journey that silently does nothing, so
events are checked where they enter, with the reason: the gateway answers 422
naming the event (its index in a batch), the field and what is wrong; `journeys
event` prints the same in one line per problem. The check applies to new events
only: events already stored or in a workflow's history are never re-validated.

| event type         | model                | what it requires                                  |
|--------------------|----------------------|---------------------------------------------------|
| `cart_updated`     | `CartProperties`     | `cart_id`, `items` (≤ 50), `total`, `currency`    |
| `checkout_started` | `CheckoutProperties` | nothing; a cart id or cart contents, if given     |
| `purchased`        | `PurchaseProperties` | nothing; a cart id, if given                      |
| `lead_qualified`   | `LeadQualifiedProperties` | nothing; amount + currency, stage, use case… |
| `deal_stage_changed` | `DealStageChangedProperties` | `stage`; a `deal_id`, if given            |
| `deal_won`         | `DealWonProperties`  | nothing; a `deal_id`, the amount signed, if given |
| `deal_lost`        | `DealLostProperties` | nothing; a `deal_id`, the `reason`, if given      |
| `meeting_held`     | `MeetingHeldProperties` | `kind`: `demo` or `deep-dive`                  |
| `lead_disqualified` | `LeadDisqualifiedProperties` | nothing; a `reason` (text), if given |

Types not in the table keep free-form properties (bounded by
`models.events.EventProperties`). Each model decides whether keys it does not
name are allowed (`extra`); list items are strict, so a typo (`qty`) is refused
rather than ignored. To add an event type, add its model to `PROPERTIES`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from models.carts import CartProperties, CheckoutProperties, PurchaseProperties
from models.deals import (
    DealLostProperties,
    DealStageChangedProperties,
    DealWonProperties,
    LeadQualifiedProperties,
)
from models.handoff import MeetingHeldProperties
from models.onboarding import FeatureUsedProperties
from models.recycling import LeadDisqualifiedProperties
from models.usage import UsageReported, UsageSignal

PROPERTIES: Mapping[str, type[BaseModel]] = {
    "cart_updated": CartProperties,
    "checkout_started": CheckoutProperties,
    "purchased": PurchaseProperties,
    "feature_used": FeatureUsedProperties,
    "usage_reported": UsageReported,
    "usage_dropped": UsageSignal,
    "usage_recovered": UsageSignal,
    "lead_qualified": LeadQualifiedProperties,
    "deal_stage_changed": DealStageChangedProperties,
    "deal_won": DealWonProperties,
    "deal_lost": DealLostProperties,
    "meeting_held": MeetingHeldProperties,
    "lead_disqualified": LeadDisqualifiedProperties,
}
"""Event type → the model its `properties` must satisfy."""


def check_properties(event_type: str, properties: Mapping[str, Any], *, title: str) -> None:
    """Check an event's properties against the model of its type (if it has one).

    Args:
        event_type: The event's type.
        properties: Its properties.
        title: Names what was validated in the error (e.g. `EventIn`).

    Raises:
        ValidationError: a property is missing or invalid; each issue is located
            under `properties` (`("properties", "items", 0, "price")`).
    """
    model = PROPERTIES.get(event_type)
    if model is None:
        return
    try:
        model.model_validate(properties)
    except ValidationError as error:
        raise ValidationError.from_exception_data(
            title, [_under_properties(issue) for issue in error.errors(include_url=False)]
        ) from None


def _under_properties(issue: Any) -> InitErrorDetails:
    """One issue of a properties model, located under `properties`, its type and message kept."""
    return {
        "type": PydanticCustomError(issue["type"], issue["msg"]),
        "loc": ("properties", *issue["loc"]),
        "input": issue.get("input"),
    }
