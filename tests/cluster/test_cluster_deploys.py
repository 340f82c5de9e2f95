"""Release 2 of a journey deploys while release 1's runs are mid-flight, on the real cluster.

The test of `tests/test_deploys.py` (see there), with the session's Temporal cluster on
PostgreSQL as its server: worker deployments, pinned and auto-upgrade runs, drainage
and `journeys deploy-status` as a production cluster runs them (its dynamic config
checks drainage every 5 s, `starter/dev/temporal_cluster.py`).
"""

from __future__ import annotations

import pytest
from temporalio.client import Client

from tests.cluster.conftest import LocalCluster
from tests.test_deploys import (
    TemporalServer,
    test_release_2_deploys_while_release_1_runs_finish_on_release_1,
)

__all__ = ["test_release_2_deploys_while_release_1_runs_finish_on_release_1"]


@pytest.fixture
def deploy_server(cluster: LocalCluster, client: Client) -> TemporalServer:
    """The session's cluster, with the test's client (the workers' data keys)."""
    return TemporalServer(cluster.address, client)
