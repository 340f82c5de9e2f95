"""The Worker Versioning policy (`workflows/versioning.py`) and the settings that turn it on.

A pinned journey keeps its release's workers alive until its last run ends, so
it must end within `MAX_PINNED_DAYS`; the contact workflow, which never ends,
must auto-upgrade. Without `WORKER_BUILD_ID` the worker is unversioned, as before.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion

from models.settings import Settings
from worker import deployment_config
from workflows import catalog
from workflows.contact import ContactWorkflow
from workflows.toolkit import Journey
from workflows.versioning import MAX_PINNED_DAYS, behavior_of


def longest_run_days(journey: type[Journey]) -> float:
    """How long a run of the journey lasts at most, in journey days: its last declared step,
    then its re-entry window."""
    last_step = max((step.day for step in journey.declared_steps()), default=0)
    return last_step + (journey.reentry_days or 0)


PINNED_JOURNEYS = [
    journey
    for journey in catalog.all_journeys()
    if behavior_of(journey) == VersioningBehavior.PINNED
]


@pytest.mark.parametrize("journey", PINNED_JOURNEYS, ids=[j.name for j in PINNED_JOURNEYS])
def test_a_pinned_journey_ends_within_the_pinned_limit(journey: type[Journey]) -> None:
    days = longest_run_days(journey)
    assert days <= MAX_PINNED_DAYS, (
        f"{journey.name} may run {days:g} days, more than pinned journeys may "
        f"({MAX_PINNED_DAYS}, workflows/versioning.py): its old workers would stay that long. "
        "Declare versioning_behavior = VersioningBehavior.AUTO_UPGRADE in its class and "
        "guard every change to it with workflow.patched"
    )


def test_the_journeys_that_run_for_months_auto_upgrade() -> None:
    auto_upgrade = {
        journey.name
        for journey in catalog.all_journeys()
        if behavior_of(journey) == VersioningBehavior.AUTO_UPGRADE
    }
    assert auto_upgrade == {"lead-sla", "recycling", "renewal-countdown"}
    assert behavior_of(ContactWorkflow) == VersioningBehavior.AUTO_UPGRADE


def test_without_a_build_id_the_worker_is_unversioned() -> None:
    assert deployment_config(Settings()) is None
    assert Settings(worker_build_id="  ").worker_build_id is None  # `${WORKER_BUILD_ID:-}`


def test_a_build_id_makes_the_worker_a_version_of_its_deployment() -> None:
    config = deployment_config(
        Settings(worker_deployment_name="journeys-eu", worker_build_id="2026.12.1")
    )
    assert config is not None
    assert config.version == WorkerDeploymentVersion("journeys-eu", "2026.12.1")
    assert config.use_worker_versioning
    assert config.default_versioning_behavior == VersioningBehavior.PINNED


@pytest.mark.parametrize(
    ("setting", "value", "named"),
    [
        ("worker_build_id", "v1 beta", "WORKER_BUILD_ID 'v1 beta'"),
        ("worker_build_id", "it's-v2", 'WORKER_BUILD_ID "it\'s-v2"'),
        ("worker_build_id", "__v1", "WORKER_BUILD_ID '__v1'"),
        ("worker_deployment_name", "journeys.eu", "WORKER_DEPLOYMENT_NAME 'journeys.eu'"),
        ("worker_deployment_name", "journeys:eu", "WORKER_DEPLOYMENT_NAME 'journeys:eu'"),
    ],
)
def test_a_malformed_version_setting_is_refused_by_name(
    setting: str, value: str, named: str
) -> None:
    with pytest.raises(ValidationError, match=named):
        Settings.model_validate({setting: value})
