"""Custom search attributes registered on the Temporal cluster (DESIGN.md)."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

CONTACT_ID = SearchAttributeKey.for_keyword("ContactId")
JOURNEY = SearchAttributeKey.for_keyword("Journey")
JOURNEY_STEP = SearchAttributeKey.for_keyword("JourneyStep")
LIFECYCLE_STAGE = SearchAttributeKey.for_keyword("LifecycleStage")
LEAD_SCORE = SearchAttributeKey.for_int("LeadScore")
"""The total: `FitScore` plus `BehaviorScore`."""
FIT_SCORE = SearchAttributeKey.for_int("FitScore")
BEHAVIOR_SCORE = SearchAttributeKey.for_int("BehaviorScore")

ALL_SEARCH_ATTRIBUTES = (
    CONTACT_ID,
    JOURNEY,
    JOURNEY_STEP,
    LIFECYCLE_STAGE,
    LEAD_SCORE,
    FIT_SCORE,
    BEHAVIOR_SCORE,
)
