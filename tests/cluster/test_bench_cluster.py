"""`python -m bench --cluster`: the benchmarks on the local Temporal cluster on PostgreSQL.

One small run, as a user starts it: a throwaway PostgreSQL, the four Temporal
services on it, the journeys database on the same PostgreSQL, the product's,
the peer's and the bare baseline's worker processes. It checks the report
(`tests/bench_run.py`), not the figures, and that the run was on the cluster:
PostgreSQL did work in every burst (the dev server has no such process), and the
journeys database was PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from starter.dev.postgres import postgres_unavailable
from starter.dev.toolchain import TEMPORAL_SERVER_VERSION, ToolchainError, temporal_server_bundle
from tests.bench_run import IMPORT, THROUGHPUT, checked_report, run_bench

pytestmark = pytest.mark.cluster

JOURNEYS = 3
"""Journeys per burst: the smallest run that still goes through every step of each."""


def _cluster_unavailable() -> str | None:
    """Why the cluster cannot run here (no PostgreSQL, the server not built), or None."""
    try:
        temporal_server_bundle(install=False)
    except ToolchainError as error:
        return f"{error} (`make cluster-tools` builds it)"
    return postgres_unavailable()


@pytest.mark.skipif(_cluster_unavailable() is not None, reason=str(_cluster_unavailable()))
@pytest.mark.timeout(150)
async def test_a_quick_run_on_the_cluster_reports_its_figures(tmp_path: Path) -> None:
    stdout = await run_bench(
        tmp_path, "--quick", "--cluster", "--only", "throughput", "--only", "contact-import",
        "--journeys", str(JOURNEYS), "--import_rows", "100", timeout=140,
    )  # fmt: skip

    report = checked_report(tmp_path, stdout, [*THROUGHPUT, *IMPORT])
    assert (report["mode"], report["topology"]) == ("quick", "cluster")
    assert report["temporal_server"] == TEMPORAL_SERVER_VERSION
    assert "on PostgreSQL" in report["servers"]
    throughput = report["figures"][0]["details"]
    assert throughput["emails_sent"] == {"journeys": 5 * JOURNEYS, "peer": 5 * JOURNEYS}
    for side in ("journeys", "peer", "bare"):
        cpu = throughput["cpu"][side]
        assert cpu["server_cpu_ms"] > 0 and cpu["database_cpu_ms"] > 0, (side, cpu)
    assert report["figures"][-1]["details"]["database"] == "postgresql"
