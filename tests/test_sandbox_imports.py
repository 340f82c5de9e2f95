"""What the workflow sandbox re-executes for a new run: the workflow's own module, no more.

The sandbox runs each workflow run in a fresh module table; every module it
imports that is not passed through is executed again for that run. The
worker passes through everything a workflow module imports (the toolkit,
the trigger table, the catalog, models, rules, activities), so a new run
re-executes only the file that defines its class and the packages above it.
Each workflow the worker runs (the contact workflow, the SMS keyword reply, every
journey) runs twice here on the time-skipping server with the worker's
own runner (`worker.WORKFLOW_RUNNER`); the second run's imports inside the
sandbox must be exactly the allow-list, and the runner's notification policy
must warn on any import it did not mean to sandbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.abc
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from importlib.machinery import ModuleSpec
from types import ModuleType

import pytest
from pydantic import BaseModel
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from temporalio.workflow import SandboxImportNotificationPolicy

from models.carts import Cart, CartInput, CartItem
from models.contact_workflow import ContactInput
from models.handoff import LeadBand, LeadSlaInput
from models.journeys import JourneyInput
from models.messages import ServiceSms
from models.pipeline import RecyclingInput
from models.renewals import RenewalInput
from models.settings import Settings
from worker import WORKFLOW_RUNNER
from workflows import catalog

ALLOWED = {
    "contact": frozenset({"workflows", "workflows.contact"}),
    "sms-keyword-reply": frozenset({"workflows", "workflows.sms_keywords"}),
    "journey": frozenset({"workflows", "workflows.journeys"}),  # + the journey's own file
}
"""What a new run may execute in its sandbox: its own file and the packages above it
(docstrings only). Everything they import is passed through (loaded once per worker)."""
SPECIAL_INPUTS: dict[str, Callable[[str], JourneyInput]] = {
    "renewal-countdown": lambda contact_id: RenewalInput(
        contact_id=contact_id,
        subscription_id="sub_1",
        renewal_date=datetime(2100, 1, 1, tzinfo=UTC),
    ),
    "abandoned-cart": lambda contact_id: CartInput(
        contact_id=contact_id,
        cart=Cart(
            cart_id="cart_1",
            items=[CartItem(name="Mug", price=Decimal(9))],
            total=Decimal(9),
            currency="EUR",
        ),
    ),
    "lead-sla": lambda contact_id: LeadSlaInput(
        contact_id=contact_id, band=LeadBand(band="MQL", score=30)
    ),
    "recycling": lambda contact_id: RecyclingInput(contact_id=contact_id, reason="no-budget"),
}
"""Inputs of the journeys that need more than a contact id."""


class _SandboxedImports(importlib.abc.MetaPathFinder):
    """Names every module a workflow sandbox executes (finds nothing itself)."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if workflow.unsafe.in_sandbox() and not workflow.unsafe.is_imports_passed_through():
            self.names.add(fullname)
        return None


@contextmanager
def sandboxed_imports() -> Iterator[tuple[set[str], list[warnings.WarningMessage]]]:
    """The modules the sandbox executes meanwhile, and the warnings given meanwhile."""
    finder = _SandboxedImports()
    sys.meta_path.insert(0, finder)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield finder.names, caught
    finally:
        sys.meta_path.remove(finder)


def import_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    """The sandbox's warnings about imports (`Module … was not intentionally passed
    through…`, `Module … was imported after initial workflow load`)."""
    return [str(w.message) for w in caught if str(w.message).startswith("Module ")]


def workflow_runs() -> list[tuple[str, BaseModel, frozenset[str]]]:
    """(workflow type, input, allow-list) of every workflow the worker runs."""
    reply = ServiceSms(
        idempotency_key="sms-keywords/sbx", to_number="+15555550100", template="sms-keywords/stop",
        step="stop",
    )  # fmt: skip
    runs: list[tuple[str, BaseModel, frozenset[str]]] = [
        ("contact", ContactInput(contact_id="sbx"), ALLOWED["contact"]),
        ("sms-keyword-reply", reply, ALLOWED["sms-keyword-reply"]),
    ]
    for journey in catalog.all_journeys():
        special = SPECIAL_INPUTS.get(journey.name)
        journey_input = special("sbx") if special else JourneyInput(contact_id="sbx")
        runs.append((journey.name, journey_input, ALLOWED["journey"] | {journey.__module__}))
    return runs


async def first_task_done(client: Client, workflow_id: str) -> None:
    """Wait until the run's first workflow task completed (its module was loaded and ran)."""
    handle = client.get_workflow_handle(workflow_id)
    for _ in range(200):  # polled: the test server answers a long poll only at its timeout
        async for event in handle.fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{workflow_id}: no workflow task completed within 10 s")


async def run_once(
    client: Client, settings: Settings, name: str, workflow_input: BaseModel, run: int
) -> None:
    workflow_id = f"{name}-sandbox-{run}"
    handle = await client.start_workflow(
        name, workflow_input, id=workflow_id, task_queue=settings.task_queue
    )
    await first_task_done(client, workflow_id)
    with contextlib.suppress(RPCError):  # closed already (e.g. lead-sla without a contact)
        await handle.terminate(reason="test over")


def test_the_worker_warns_on_a_module_it_did_not_mean_to_sandbox() -> None:
    policy = WORKFLOW_RUNNER.restrictions.import_notification_policy
    assert SandboxImportNotificationPolicy.WARN_ON_UNINTENTIONAL_PASSTHROUGH in policy
    assert SandboxImportNotificationPolicy.WARN_ON_DYNAMIC_IMPORT in policy


@pytest.mark.parametrize(
    ("name", "workflow_input", "allow_list"),
    workflow_runs(),
    ids=[name for name, _, _ in workflow_runs()],
)
async def test_a_new_run_reexecutes_only_its_own_module(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    make_worker: Callable[[Client], Worker],
    name: str,
    workflow_input: BaseModel,
    allow_list: frozenset[str],
) -> None:
    client = time_skipping_env.client
    async with make_worker(client):
        await run_once(client, settings, name, workflow_input, 1)  # the worker loads what it needs
        with sandboxed_imports() as (executed, warned):
            await run_once(client, settings, name, workflow_input, 2)
    assert import_warnings(warned) == []
    assert executed == allow_list, f"also executed: {sorted(executed - allow_list)}"
