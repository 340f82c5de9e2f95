"""Replay every saved journey history against today's workflow code.

A change to a journey that alters the commands of runs already in flight
(without `workflow.patched()`) makes the replay fail here, before it fails in
production. Histories are recorded by `python -m tests.record_histories`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from runtime.codec import encrypting_data_converter
from runtime.keys import KeyStore
from workflows import catalog
from workflows.contact import ContactWorkflow

WORKFLOWS: list[type] = [ContactWorkflow, *catalog.all_journeys()]

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_every_journey_and_the_contact_workflow_have_a_saved_history() -> None:
    recorded = {
        json.loads(path.read_text())["events"][0]["workflowExecutionStartedEventAttributes"][
            "workflowType"
        ]["name"]
        for path in HISTORIES
    }
    assert {"contact", *catalog.journey_names()} <= recorded


@pytest.mark.parametrize("path", HISTORIES, ids=[path.stem for path in HISTORIES])
async def test_history_replays_deterministically(path: Path, codec_keys: KeyStore) -> None:
    """With the payload codec, as the worker runs: plain histories pass through it."""
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    replayer = Replayer(workflows=WORKFLOWS, data_converter=encrypting_data_converter(codec_keys))
    await replayer.replay_workflow(history)
