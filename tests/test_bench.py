"""The benchmarks: `python -m bench --quick` reports every figure with its two baselines.

The smoke test runs the real thing, small, on one shared stack: a dev server,
the product's, the peer's and the bare baseline's worker processes, the
gateway. What it checks is the report, not the figures (those vary with the
machine; `make bench` measures them; `tests/bench_run.py` has the checks). The
other tests need no stack: the payload codec is refused on the cluster, the peer
baseline keeps the welcome series' steps, targets judge the ratios they name,
and the README's reference tables are the committed results files'. The run on
the cluster is `tests/cluster/test_bench_cluster.py`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.__main__ import main
from bench.benchmarks import outside_holdouts
from bench.peer import EMAILS, ROUTE_DAY
from bench.report import (
    MET,
    NOT_TRIED,
    README,
    REFERENCE_DIR,
    SHORT,
    Figure,
    file_name,
    held_to,
    markdown_report,
    readme_reference,
    reference_section,
    topology,
)
from bench.servers import Topology
from models.experiments import HOLDOUT
from rules.experiment_split import assign_arm
from tests.bench_run import FIGURES, ON_THE_CLUSTER, checked_report, run_bench
from workflows.journeys.welcome_series import WelcomeSeries


@pytest.mark.timeout(240)
async def test_quick_run_reports_every_figure_against_both_baselines(tmp_path: Path) -> None:
    stdout = await run_bench(tmp_path, "--quick", timeout=230)

    report = checked_report(tmp_path, stdout, FIGURES)
    assert (report["mode"], report["topology"]) == ("quick", "dev-server")
    figures = report["figures"]
    memory = next(figure for figure in figures if figure["key"] == "memory_rss_parked")
    assert memory["status"] == NOT_TRIED  # a quick run parks far fewer than 10,000
    throughput = figures[0]["details"]
    assert throughput["emails_sent"] == {"journeys": 50, "peer": 50}  # 10 of each, 5 emails
    assert "database_cpu_ms" not in throughput["cpu"]["journeys"]  # SQLite: inside the processes
    assert figures[-1]["details"]["database"] == "sqlite"  # the contact import's


def test_the_payload_codec_is_refused_on_the_cluster(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as refused:
        main(["--cluster", "--only", "codec"])
    assert refused.value.code == 2
    assert "--only codec does not run with --cluster" in capsys.readouterr().err


def test_the_benchmarks_pick_subscribers_the_welcome_series_does_not_hold_out() -> None:
    [experiment] = WelcomeSeries.experiments
    contacts = outside_holdouts("event-", 100, WelcomeSeries)
    held_out = {f"event-{n}" for n in range(100)} - set(contacts)
    assert len(set(contacts)) == 100 and len(held_out) >= 5  # 10% are held out
    for contact_id in held_out:
        arm = assign_arm(experiment.name, contact_id, experiment.arms, holdout_percent=10)
        assert arm == HOLDOUT, contact_id


def test_the_peer_sends_the_welcome_series_emails_on_their_days() -> None:
    assert EMAILS == tuple((step.id, step.day) for step in WelcomeSeries.emails)
    assert ROUTE_DAY == WelcomeSeries.plan[-1].day


def _figure(journeys: float, peer: float | None, bare: float) -> Figure:
    return Figure("k", "K", "ms", journeys, peer, bare, "how", held_to(peer=1.5, below=250))


def test_a_target_holds_the_journeys_to_the_baseline_and_bound_it_names() -> None:
    assert _figure(140, 100, 10).status == MET
    assert _figure(160, 100, 10).status == SHORT  # over 1.5× the peer
    assert _figure(260, 200, 10).status == SHORT  # within 1.5× the peer, not under 250 ms
    assert _figure(140, None, 10).status == NOT_TRIED  # no peer to hold it to
    rate = Figure("r", "R", "/s", 9, 10, 15, "how", held_to(peer=0.9, bare=0.5, at_least=True))
    assert (rate.status, rate.target and rate.target.text) == (MET, "≥ 0.9× peer and ≥ 0.5× bare")


@pytest.mark.parametrize("where", list(Topology))
def test_the_readme_shows_the_committed_reference_run(where: Topology) -> None:
    name = file_name("latest", {"topology": where})
    document = json.loads((REFERENCE_DIR / f"{name}.json").read_text())
    assert topology(document) == where
    assert readme_reference(README.read_text(), where) == reference_section(document)
    assert (REFERENCE_DIR / f"{name}.md").read_text() == markdown_report(document)
    expected = FIGURES if where == Topology.DEV_SERVER else ON_THE_CLUSTER
    assert [figure["key"] for figure in document["figures"]] == expected
