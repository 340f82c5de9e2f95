"""The journey toolkit: what every journey workflow shares (see `journey.Journey`)."""

from __future__ import annotations

from workflows.toolkit.journey import (
    CRM_RETRY_POLICY,
    CRM_TIMEOUT,
    Journey,
    PlanStep,
    start_journey,
)

__all__ = ["CRM_RETRY_POLICY", "CRM_TIMEOUT", "Journey", "PlanStep", "start_journey"]
