"""A contact's scored actions and score breakdown, as they cross workflow boundaries.

The rules that compute them (points, decay, bands) are in `rules/scoring.py`.
"""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class ScoredAction(BaseModel):
    """One action a contact took (or `count` identical ones), as the score sees it.

    Attributes:
        event_type: snake_case event type, e.g. `pricing_page_viewed`.
        occurred_at: When it happened (timezone-aware).
        count: How many times it happened at that instant.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_type: str
    occurred_at: AwareDatetime
    count: int = Field(default=1, ge=1)


class ScoreBreakdown(BaseModel):
    """A contact's score and how it is made up (what the rep sees).

    Attributes:
        total: `fit_points` plus `behavior_points`.
        band: Name of the band the lead is in (`total`'s, or the one below
            the hand-off band while `awaiting_key_behavior`).
        by_event_type: Current points per event type (only types that score).
        fit_points: Points from fit rules (who the contact is).
        behavior_points: Points from actions and inactivity (what it did).
        inactivity_points: The inactivity rule's part of `behavior_points`.
        awaiting_key_behavior: The total reaches the hand-off band, but the
            lead is held below it until a key behaviour (see `rules.scoring`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    total: int
    band: str
    by_event_type: dict[str, int]
    fit_points: int
    behavior_points: int
    inactivity_points: int = 0
    awaiting_key_behavior: bool = False
