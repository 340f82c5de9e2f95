"""The activity classes, for calls by method (`workflow.execute_activity_method`).

Each is imported when a workflow first calls one of its activities, not when a
workflow module is imported: the activities load the database, the providers
and the template engine (seconds), which the CLI and the gateway, that import
the journeys, do not need. The worker has them loaded already, so the import
costs nothing where workflows run (it is passed through the sandbox).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from temporalio import workflow

if TYPE_CHECKING:
    from activities.contacts import ContactActivities
    from activities.crm import CrmActivities
    from activities.deliverability import DeliverabilityActivities
    from activities.experiments import ExperimentActivities
    from activities.journeys import JourneyLogActivities
    from activities.messaging import MessagingActivities
    from activities.onboarding import OnboardingActivities
    from activities.sales import SalesActivities
    from activities.segments import SegmentActivities


def contacts() -> type[ContactActivities]:
    """`ContactActivities`: store events, scores and tags; erase a contact."""
    with workflow.unsafe.imports_passed_through():
        from activities.contacts import ContactActivities
    return ContactActivities


def crm() -> type[CrmActivities]:
    """`CrmActivities`: CRM tasks and tags."""
    with workflow.unsafe.imports_passed_through():
        from activities.crm import CrmActivities
    return CrmActivities


def deliverability() -> type[DeliverabilityActivities]:
    """`DeliverabilityActivities`: the deliverability guard's check."""
    with workflow.unsafe.imports_passed_through():
        from activities.deliverability import DeliverabilityActivities
    return DeliverabilityActivities


def experiments() -> type[ExperimentActivities]:
    """`ExperimentActivities`: a contact's arm in an experiment."""
    with workflow.unsafe.imports_passed_through():
        from activities.experiments import ExperimentActivities
    return ExperimentActivities


def journey_log() -> type[JourneyLogActivities]:
    """`JourneyLogActivities`: the journey-run log."""
    with workflow.unsafe.imports_passed_through():
        from activities.journeys import JourneyLogActivities
    return JourneyLogActivities


def messaging() -> type[MessagingActivities]:
    """`MessagingActivities`: send and cancel messages."""
    with workflow.unsafe.imports_passed_through():
        from activities.messaging import MessagingActivities
    return MessagingActivities


def onboarding() -> type[OnboardingActivities]:
    """`OnboardingActivities`: the key features and the contact's adoption."""
    with workflow.unsafe.imports_passed_through():
        from activities.onboarding import OnboardingActivities
    return OnboardingActivities


def sales() -> type[SalesActivities]:
    """`SalesActivities`: the sales hand-off and its SLAs."""
    with workflow.unsafe.imports_passed_through():
        from activities.sales import SalesActivities
    return SalesActivities


def segments() -> type[SegmentActivities]:
    """`SegmentActivities`: segment membership and the segment sweep."""
    with workflow.unsafe.imports_passed_through():
        from activities.segments import SegmentActivities
    return SegmentActivities
