"""The lead-to-deal pipeline of seed 002: a contact's stage, and what moves it.

A contact's pipeline stage is separate from its score band: the band says how
warm the lead is (Cold, Warming, MQL…), the stage where it stands with sales.
Every transition is stored with its time and cause (`PipelineTransition`,
written by `rules/pipeline.py: record_transition`), and the report's pipeline
section is computed from those rows.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

from models.events import InUtc
from models.journeys import JourneyInput


class PipelineStage(StrEnum):
    """How far a contact has come in the pipeline (seed 002's lead statuses, and beyond)."""

    LEAD = "lead"
    MQL = "mql"
    SQL = "sql"
    OPPORTUNITY = "opportunity"
    CUSTOMER = "customer"
    RECYCLED = "recycled"
    CHURN_RISK = "churn_risk"


Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class RecyclingInput(JourneyInput):
    """What the `recycling` journey is started with.

    Attributes:
        reason: Why the lead was recycled: `no-interaction` (14 days without
            interaction after MQL) or the disqualification reason
            (`no-budget`, `no-project`, `bad-timing`).
    """

    reason: Reason


class RecycleNotice(BaseModel):
    """Tells the contact workflow (`recycled` signal) that its lead was recycled.

    From then on only a key behaviour after `recycled_at` makes the lead MQL
    again (and hands it off again).

    Attributes:
        recycled_at: When the lead was recycled.
        reason: Why (see `RecyclingInput.reason`).
    """

    model_config = ConfigDict(frozen=True)

    recycled_at: InUtc
    reason: Reason
