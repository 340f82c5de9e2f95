"""The journey authors' test kit: what the project's own journey tests use, from one module.

A journey test runs the real journey on the Java time-skipping test server
with the real worker (every workflow and activity, the real templates, a real
SQLite file and outbox folder), and asserts what a contact would notice: which
messages went out, on which journey day, with what content. The fixtures
(`time_skipping_env`, `settings`, `engine`, `make_worker`, `journey_kit`) come
from `tests/conftest.py`; the helpers are here::

    from tests.kit import JourneyKit, Simulation, assert_sent, sample_contact, sent_days

    async def test_trial_nudge(journey_kit: JourneyKit) -> None:
        timeline = await journey_kit.simulate(
            Simulation("trial-nudge", contact=sample_contact(), events=[at("2d", "purchased")])
        )
        assert sent_days(timeline) == [("day0", 0)]
        assert timeline.exit_reason == "purchased"
        assert_sent(journey_kit.outbox, ["day0"])

- `JourneyKit.simulate` is `journeys simulate` (`starter/qa/simulate.py`) on the
  test's server and worker: the contact is stored, the journey enrolled as
  `journeys enroll` does, events go through the contact workflow at their
  journey-time offsets, and the timeline comes back (`Timeline`: sends,
  deferrals and their reasons, exits).
- Contacts: `sample_contact(**fields)` (a `ContactProfile` for `simulate`),
  `add_contact` / `add_lead` (rows straight into the database).
- Outbox: `read_outbox`, `text_body`, `html_body`, `assert_sent`.
- The message log: `message_rows`; events: `event_now`, `at`.
- The replay test: `await journey_kit.save_history(timeline, "trial-nudge-activated")`
  writes the run's history to `tests/histories/` when the tests run with
  `RECORD_HISTORIES=1` (and does nothing otherwise), so a new journey's test
  records the history `tests/test_replay.py` replays.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from models.contacts import ContactProfile
from models.experiments import HOLDOUT
from models.journeys import JourneyState
from models.settings import Settings
from rules.experiment_split import assign_arm
from starter.qa.contacts import SAMPLE
from starter.qa.simulate import (
    Recorder,
    ScheduledEvent,
    Simulation,
    Timeline,
    parse_offset,
    run_simulation,
    timeline_of,
)
from tests.factories import add_contact, add_lead, event_now, message_rows
from tests.outbox import html_body, read_outbox, text_body
from worker import build_worker
from workflows import catalog

HISTORIES = Path(__file__).parent / "histories"
"""Where `tests/test_replay.py` finds the histories it replays."""
RECORD_HISTORIES = "RECORD_HISTORIES"
"""The environment variable that makes `JourneyKit.save_history` write (`1`)."""


def recording_histories() -> bool:
    """Whether this test run records histories (then payloads are not encrypted: a history
    encrypted with a throwaway data key could not be replayed)."""
    return os.environ.get(RECORD_HISTORIES) == "1"


__all__ = [
    "JourneyKit",
    "Recorder",
    "ScheduledEvent",
    "Simulation",
    "Timeline",
    "add_contact",
    "add_lead",
    "assert_sent",
    "at",
    "event_now",
    "html_body",
    "running_kit",
    "kit_settings",
    "message_rows",
    "read_outbox",
    "recording_histories",
    "save_history",
    "sample_contact",
    "sent_days",
    "text_body",
    "timeline_of",
]


def kit_settings(directory: Path) -> Settings:
    """Settings of one test: its own database file, outbox and task queue under `directory`.

    Quiet hours are off: schedule tests run at whatever time of day CI runs
    (the quiet-hours tests, and `simulate` with the shipped policy, turn them on).
    Accelerated journey clocks are allowed, as in `journeys dev`.
    """
    return Settings(
        database_url=f"sqlite:///{directory / 'journeys.db'}",
        outbox_dir=directory / "outbox",
        task_queue=f"test-{uuid.uuid4()}",
        quiet_hours_start=time(0, 0),
        quiet_hours_end=time(0, 0),
        allow_accelerated_clock=True,
        # The test's own key store uses its database; the session's shared one (exported
        # to the CLI's subprocesses in PAYLOAD_KEYS_DATABASE_URL) is the `codec_keys` fixture.
        payload_keys_database_url=None,
    )


def sample_contact(**fields: Any) -> ContactProfile:
    """The sample contact of `journeys simulate` (Ada, consent on both channels), with changes.

    Its id is new on every call (`sample-1f2e…`) unless `id` is given, so two tests of one
    journey on the shared test server do not enrol the same workflow id.
    """
    return SAMPLE.model_copy(update={"id": f"sample-{uuid.uuid4().hex[:12]}", **fields})


def at(offset: str, event_type: str, **properties: Any) -> ScheduledEvent:
    """An event at a journey-time offset from enrolment: `at("3d12h", "purchased")`."""
    return ScheduledEvent(offset=parse_offset(offset), type=event_type, properties=properties)


@dataclass(frozen=True)
class JourneyKit:
    """A running real worker on the test's server, database and outbox (see the module doc)."""

    env: WorkflowEnvironment
    settings: Settings
    engine: AsyncEngine
    recorder: Recorder

    @property
    def outbox(self) -> Path:
        """The outbox folder the worker delivers into."""
        return self.settings.outbox_dir

    async def simulate(self, simulation: Simulation) -> Timeline:
        """Run `simulation` (as `journeys simulate` does) and return its timeline."""
        return await run_simulation(self.env, self.engine, self.settings, self.recorder, simulation)

    async def save_history(self, timeline: Timeline, name: str) -> Path | None:
        """Save the simulated journey's history as `tests/histories/{name}.json` for the replay
        test, when the run records histories (`RECORD_HISTORIES=1`); returns the file written."""
        return await save_history(self.env.client, timeline.workflow_id, name)


async def sleep_until(env: WorkflowEnvironment, moment: datetime) -> None:
    """Skip the time-skipping server's clock to `moment` (nothing when it is past)."""
    remaining = moment - await env.get_current_time()
    if remaining > timedelta(0):
        await env.sleep(remaining)


async def journey_run(client: Client, workflow_id: str) -> WorkflowHandle[Any, JourneyState]:
    """The handle of a running journey's current run. Its `result()` outlasts the
    time-skipping server's empty long polls, where a handle without a run id raises
    "No completion event found" when a long journey's wait for its end runs out."""
    run_id = (await client.get_workflow_handle(workflow_id).describe()).run_id
    return client.get_workflow_handle(workflow_id, run_id=run_id, result_type=JourneyState)


def enters_welcome_series(contact_id: str) -> bool:
    """Whether a `subscribed` event starts the welcome series for this contact id: the
    Day-0 subject test (`welcome-subject`) holds 10% of sign-ups out of the series, drawn
    from the id. Tests about something else pick ids that enter."""
    declared = catalog.experiment("welcome-subject")
    drawn = assign_arm(
        declared.name, contact_id, declared.arms, holdout_percent=declared.holdout_percent
    )
    return drawn != HOLDOUT


async def workflow_exists(client: Client, workflow_id: str) -> bool:
    """Whether the server knows a workflow of that id (running or closed)."""
    try:
        await client.get_workflow_handle(workflow_id).describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


async def save_history(client: Client, workflow_id: str, name: str) -> Path | None:
    """Save a workflow's history as `tests/histories/{name}.json` for the replay test, when
    the run records histories (`RECORD_HISTORIES=1`); returns the file written."""
    if not recording_histories():
        return None
    path = HISTORIES / f"{name}.json"
    path.write_text((await client.get_workflow_handle(workflow_id).fetch_history()).to_json())
    return path


@asynccontextmanager
async def running_kit(
    env: WorkflowEnvironment, settings: Settings, engine: AsyncEngine
) -> AsyncIterator[JourneyKit]:
    """Run the real worker for `settings` on `env`, recording what its activities do."""
    recorder = Recorder()
    async with build_worker(recorder.client(env.client), settings, engine):
        yield JourneyKit(env=env, settings=settings, engine=engine, recorder=recorder)


def sent_days(timeline: Timeline) -> list[tuple[str, int]]:
    """(step, journey day) of every message sent, in order: `[("day0", 0), ("day1", 1)]`."""
    return [
        (entry.step or "", (entry.at - timeline.enrolled_at).days)
        for entry in timeline.entries
        if entry.kind == "sent"
    ]


def sent_local_days(timeline: Timeline, timezone: str) -> list[tuple[str, int]]:
    """(step, calendar days after the enrolment's date) of every message sent, in the
    contact's time zone: a journey that sends at a local hour on Day N (the nurture's
    slots) is on Day N whatever the hour of the enrolment."""
    zone = ZoneInfo(timezone)
    enrolled = timeline.enrolled_at.astimezone(zone).date()
    return [
        (entry.step or "", (entry.at.astimezone(zone).date() - enrolled).days)
        for entry in timeline.entries
        if entry.kind == "sent"
    ]


def assert_sent(outbox: Path | Timeline, steps: list[str]) -> None:
    """Assert which steps' messages were delivered.

    Args:
        outbox: The outbox folder (every message delivered there, in step order
            as given: compared as a set), or a `Timeline` (in the order sent).
        steps: Step ids, e.g. `["day0", "day1"]`.
    """
    if isinstance(outbox, Timeline):
        assert outbox.sent == steps, f"sent {outbox.sent}, expected {steps}"
        return
    delivered = sorted(
        path.name.split(".")[0] for path in outbox.rglob("*") if path.suffix in (".eml", ".txt")
    )
    assert delivered == sorted(steps), f"delivered {delivered}, expected {sorted(steps)}"
