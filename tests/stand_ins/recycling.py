"""STAND-IN for the `recycling` journey, ONLY for `tests/test_lead_sla.py`'s worker.

The real journey (`workflows/journeys/recycling.py`) is built on the branch
`recycling`; when both are merged, the lead deletes this file and the
`recycling_stand_in` fixture, and the lead-sla test runs against the real one.
It declares what lead-sla relies on (name, workflow id `recycling-{contact}`,
input `RecyclingInput`) and does nothing.
"""

from __future__ import annotations

from temporalio import workflow

from workflows.toolkit import Journey

with workflow.unsafe.imports_passed_through():
    from models.journeys import JourneyState
    from models.messages import MessageCategory
    from models.pipeline import RecyclingInput


@workflow.defn(name="recycling")
class RecyclingStandIn(Journey):
    """Stand-in: starts, is recorded, completes."""

    name = "recycling"
    title = "Recycling (test stand-in)"
    category = MessageCategory.MARKETING
    input_model = RecyclingInput
    plan = ()

    @workflow.run
    async def run(self, journey_input: RecyclingInput) -> JourneyState:
        """Run the (empty) journey."""
        return await self.run_journey(journey_input)

    async def steps(self) -> None:
        """Nothing: lead-sla's test only checks that it was started, and with what."""
