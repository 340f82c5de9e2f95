"""Deploys under Worker Versioning: which versions of the workers still run journeys.

The workers of one release poll as one version (its build id, `WORKER_BUILD_ID`) of
the worker deployment `WORKER_DEPLOYMENT_NAME`. Temporal routes new runs to the
deployment's current version (or its ramping one, for a share), while a pinned run
stays on the version it started on (`workflows/versioning.py`). A version is:

- `current` / `ramping`: new runs start there;
- `draining`: no longer current, pinned runs still open on it: keep its workers;
- `drained`: no pinned run open on it: its workers can be stopped;
- `inactive`: never made current (a new release before `promote`), or retired.

`deployment_status` reads the deployment (`DescribeWorkerDeployment`) and counts each
version's open pinned runs in visibility with the query Temporal itself uses to judge
drainage (`BuildIds = 'pinned:<deployment>:<build id>'`), per workflow type, and the
auto-upgrade runs whose last task ran there (they move to the current version at
their next task). `promote` makes a version current.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import StrEnum

from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import BaseModel
from temporalio.api.deployment.v1 import RoutingConfig, WorkerDeploymentInfo
from temporalio.api.enums.v1 import VersionDrainageStatus, WorkerDeploymentVersionStatus
from temporalio.api.workflowservice.v1 import (
    DescribeWorkerDeploymentRequest,
    SetWorkerDeploymentCurrentVersionRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from runtime.temporal import unavailable_as_error
from starter.services.operations import NotFound, OperationError


class VersionStatus(StrEnum):
    """Where a version of the workers stands (see the module docstring)."""

    CURRENT = "current"
    RAMPING = "ramping"
    DRAINING = "draining"
    DRAINED = "drained"
    INACTIVE = "inactive"


_STATUSES = {
    WorkerDeploymentVersionStatus.WORKER_DEPLOYMENT_VERSION_STATUS_CURRENT: VersionStatus.CURRENT,
    WorkerDeploymentVersionStatus.WORKER_DEPLOYMENT_VERSION_STATUS_RAMPING: VersionStatus.RAMPING,
    WorkerDeploymentVersionStatus.WORKER_DEPLOYMENT_VERSION_STATUS_DRAINING: VersionStatus.DRAINING,
    WorkerDeploymentVersionStatus.WORKER_DEPLOYMENT_VERSION_STATUS_DRAINED: VersionStatus.DRAINED,
}
_DRAINAGE = {
    VersionDrainageStatus.VERSION_DRAINAGE_STATUS_DRAINING: VersionStatus.DRAINING,
    VersionDrainageStatus.VERSION_DRAINAGE_STATUS_DRAINED: VersionStatus.DRAINED,
}


class VersionView(BaseModel):
    """One version of the workers.

    Attributes:
        build_id: The version's build id (the workers' `WORKER_BUILD_ID`).
        status: Current, ramping, draining, drained or inactive.
        since: When it took that status (became current, started ramping, stopped
            being current; for an inactive one, when its first worker polled).
        ramp_percent: The share of new runs it gets while ramping.
        pinned_running: Open runs pinned to it: its workers must run until it is 0.
        pinned_by_workflow: The same, per workflow type (journey), non-zero only.
        auto_upgrade_last_here: Open auto-upgrade runs whose last task ran on it; they
            move to the current version at their next task (no need to keep it for them).
        can_retire: Drained, with no pinned run open: its workers can be stopped.
        pinned_query: The visibility query of its open pinned runs (UI, `temporal` CLI).
    """

    build_id: str
    status: VersionStatus
    since: datetime | None
    ramp_percent: float | None
    pinned_running: int
    pinned_by_workflow: dict[str, int]
    auto_upgrade_last_here: int
    can_retire: bool
    pinned_query: str


class DeploymentStatus(BaseModel):
    """A worker deployment and its versions, newest first.

    Attributes:
        deployment: Its name (`WORKER_DEPLOYMENT_NAME`).
        namespace: The Temporal namespace.
        current_build_id: The current version; None: new runs go to unversioned workers.
        ramping_build_id: The version taking a share of new runs, if any.
        versions: Every version Temporal knows of it.
    """

    deployment: str
    namespace: str
    current_build_id: str | None
    ramping_build_id: str | None
    versions: list[VersionView]


class Promotion(BaseModel):
    """What `promote` changed.

    Attributes:
        deployment: The worker deployment.
        build_id: The version made current.
        previous_build_id: The version that was current before (None: unversioned workers).
    """

    deployment: str
    build_id: str
    previous_build_id: str | None


class DeploymentNotFound(NotFound):
    """No worker of the deployment has polled with a build id: versioning is not in use."""

    def __init__(self, deployment: str, namespace: str) -> None:
        """Name the deployment and the namespace, and what to do next."""
        super().__init__(
            f"no worker deployment {deployment!r} in namespace {namespace!r}: no worker has "
            "polled with WORKER_BUILD_ID set (Worker Versioning is off); start the workers "
            f"with WORKER_BUILD_ID=<build id> (and WORKER_DEPLOYMENT_NAME={deployment})"
        )


class UnknownBuild(NotFound):
    """A build id no worker of the deployment has polled with."""

    def __init__(self, deployment: str, build_id: str, known: Sequence[str]) -> None:
        """Name the build id, the known ones, and what to do next."""
        super().__init__(
            f"no worker of deployment {deployment!r} runs build {build_id!r} (known: "
            f"{', '.join(known) or 'none'}); start its workers with WORKER_BUILD_ID={build_id} "
            "first, then promote it"
        )


class PromotionRefused(OperationError):
    """Temporal refused to make a version current (e.g. it lacks a task queue the current
    version polls); the message gives its reason."""


def pinned_query(deployment: str, build_id: str) -> str:
    """Visibility query of the open runs pinned to a version (Temporal's drainage query)."""
    return (
        f"BuildIds = {_quoted(f'pinned:{deployment}:{build_id}')} AND ExecutionStatus = 'Running'"
    )


def _auto_upgrade_query(deployment: str, build_id: str) -> str:
    return (
        f"TemporalWorkerDeploymentVersion = {_quoted(f'{deployment}:{build_id}')} "
        "AND TemporalWorkflowVersioningBehavior = 'AutoUpgrade' AND ExecutionStatus = 'Running'"
    )


def _quoted(value: str) -> str:
    """A string literal of a visibility query."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


async def deployment_status(
    client: Client, deployment: str, workflow_types: Sequence[str]
) -> DeploymentStatus:
    """The deployment's versions, each with its status and the runs still pinned to it.

    Args:
        client: Connected client (its namespace is the deployment's).
        deployment: The worker deployment's name.
        workflow_types: The workflow types to count one by one (the journeys and the
            contact workflow); runs of other types are found by listing the rest.

    Raises:
        DeploymentNotFound: no worker of it has polled with a build id.
        TemporalUnavailable: the server cannot be reached.
    """
    info = await _describe(client, deployment)
    routing = info.routing_config
    summaries = sorted(
        info.version_summaries,
        key=lambda s: (s.create_time.seconds, s.create_time.nanos),
        reverse=True,
    )
    return DeploymentStatus(
        deployment=deployment,
        namespace=client.namespace,
        current_build_id=routing.current_deployment_version.build_id or None,
        ramping_build_id=routing.ramping_deployment_version.build_id or None,
        versions=list(
            await asyncio.gather(
                *(
                    _version_view(client, deployment, summary, routing, workflow_types)
                    for summary in summaries
                )
            )
        ),
    )


async def promote(client: Client, deployment: str, build_id: str) -> Promotion:
    """Make version `build_id` the deployment's current one: new runs start on it, the
    auto-upgrade runs move to it at their next task, pinned runs stay where they are.

    Raises:
        DeploymentNotFound: no worker of the deployment has polled with a build id.
        UnknownBuild: no worker of it has polled with `build_id`.
        PromotionRefused: Temporal refused, for the reason it gives.
        TemporalUnavailable: the server cannot be reached.
    """
    info = await _describe(client, deployment)
    known = [summary.deployment_version.build_id for summary in info.version_summaries]
    if build_id not in known:
        raise UnknownBuild(deployment, build_id, known)
    try:
        with unavailable_as_error():
            answer = await client.workflow_service.set_worker_deployment_current_version(
                SetWorkerDeploymentCurrentVersionRequest(
                    namespace=client.namespace,
                    deployment_name=deployment,
                    build_id=build_id,
                    identity=client.identity,
                )
            )
    except RPCError as error:
        raise PromotionRefused(
            f"Temporal refused to make {build_id} current in {deployment}: {error.message}"
        ) from None
    return Promotion(
        deployment=deployment,
        build_id=build_id,
        previous_build_id=answer.previous_deployment_version.build_id or None,
    )


async def _describe(client: Client, deployment: str) -> WorkerDeploymentInfo:
    """The deployment as Temporal describes it.

    Raises:
        DeploymentNotFound: Temporal does not know it.
    """
    try:
        with unavailable_as_error():
            answer = await client.workflow_service.describe_worker_deployment(
                DescribeWorkerDeploymentRequest(
                    namespace=client.namespace, deployment_name=deployment
                )
            )
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            raise DeploymentNotFound(deployment, client.namespace) from None
        raise
    return answer.worker_deployment_info


async def _version_view(
    client: Client,
    deployment: str,
    summary: WorkerDeploymentInfo.WorkerDeploymentVersionSummary,
    routing: RoutingConfig,
    workflow_types: Sequence[str],
) -> VersionView:
    build_id = summary.deployment_version.build_id
    status = _STATUSES.get(summary.status) or _DRAINAGE.get(
        summary.drainage_status, VersionStatus.INACTIVE
    )
    query = pinned_query(deployment, build_id)
    pinned, auto_upgrade = await asyncio.gather(
        _count(client, query), _count(client, _auto_upgrade_query(deployment, build_id))
    )
    return VersionView(
        build_id=build_id,
        status=status,
        since=_since(summary, status),
        ramp_percent=routing.ramping_version_percentage
        if status == VersionStatus.RAMPING
        else None,
        pinned_running=pinned,
        pinned_by_workflow=await _by_workflow(client, query, pinned, workflow_types),
        auto_upgrade_last_here=auto_upgrade,
        can_retire=status == VersionStatus.DRAINED and pinned == 0,
        pinned_query=query,
    )


def _since(
    summary: WorkerDeploymentInfo.WorkerDeploymentVersionSummary, status: VersionStatus
) -> datetime | None:
    """When the version took its status (for an inactive one: when it first polled)."""
    taken = {
        VersionStatus.CURRENT: summary.current_since_time,
        VersionStatus.RAMPING: summary.ramping_since_time,
        VersionStatus.DRAINING: summary.last_deactivation_time,
        VersionStatus.DRAINED: summary.last_deactivation_time,
    }.get(status)
    return (_moment(taken) if taken is not None else None) or _moment(summary.create_time)


def _moment(timestamp: Timestamp) -> datetime | None:
    """A protobuf timestamp as an aware UTC datetime; None when unset."""
    if not timestamp.seconds and not timestamp.nanos:
        return None
    return timestamp.ToDatetime(tzinfo=UTC)


async def _count(client: Client, query: str) -> int:
    with unavailable_as_error():
        return (await client.count_workflows(query)).count


async def _by_workflow(
    client: Client, query: str, total: int, workflow_types: Sequence[str]
) -> dict[str, int]:
    """`total` open runs of `query`, per workflow type: counted for `workflow_types`, the
    rest (few: types a newer release dropped, schedules' runs, broadcasts) listed."""
    if total == 0:
        return {}
    counts = await asyncio.gather(
        *(_count(client, f"{query} AND WorkflowType = {_quoted(name)}") for name in workflow_types)
    )
    found = Counter({name: count for name, count in zip(workflow_types, counts, strict=True)})
    if found.total() < total:
        others = ", ".join(_quoted(name) for name in workflow_types)
        with unavailable_as_error():
            async for execution in client.list_workflows(
                f"{query} AND WorkflowType NOT IN ({others})" if workflow_types else query
            ):
                found[execution.workflow_type] += 1
    return {name: count for name, count in sorted(found.items()) if count}
