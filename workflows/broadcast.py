"""One occurrence of a broadcast: a message to a segment's members, at a controlled rate.

1. Wait for the start (a one-off's time; a schedule's run starts at once).
2. Snapshot the audience: the segment's members now, written to `broadcast_recipients`
   by an activity (the ids never travel in a payload; a missing template stops it here).
3. Send in batches (`send_broadcast_batch`), each through the journeys' send path at
   `rate` sends per second. Contacts deferred by quiet hours or a frequency cap are due
   again when allowed; when nothing is due, wait for the next due time.
4. Done when nobody is left; cancelled: what was not sent is cancelled.

Pause, resume and cancel are signals, honoured between batches (a batch lasts a few
seconds). Progress is in the current details and the `progress` query. The history
stays bounded: the run continues as new every `BATCHES_PER_RUN` batches (or when the
server suggests it), carrying its progress; the recipients' state is in the database.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

from workflows.toolkit.retries import CRM_TIMEOUT

with workflow.unsafe.imports_passed_through():
    from activities.broadcasts import BroadcastActivities
    from models.broadcasts import (
        WORKFLOW_TYPE,
        BatchRequest,
        BroadcastProgress,
        BroadcastRun,
        BroadcastStatus,
        CloseRequest,
        RecipientStatus,
        SnapshotRequest,
        StatusChange,
        Tally,
        local_start,
        occurrence_from_workflow_id,
        occurrence_time,
        wall_time,
    )

BATCH_SECONDS = 5
"""A batch holds about this many seconds of sends (at the broadcast's rate)."""
MAX_BATCH = 500
BATCHES_PER_RUN = 100
"""Batches before the run continues as new (each adds about 6 history events)."""
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    non_retryable_error_types=["TemplateError"],
)
"""Activities retry until they succeed, except for a missing template."""
HEARTBEAT = timedelta(seconds=20)
"""A batch that stops heart-beating (its worker died) is retried after this."""


@workflow.defn(name=WORKFLOW_TYPE)
class BroadcastWorkflow:
    """Send one occurrence of a broadcast to its audience, once per contact."""

    @workflow.init
    def __init__(self, run: BroadcastRun) -> None:
        plan = run.plan
        self._plan = plan
        occurrence = occurrence_from_workflow_id(plan.name, workflow.info().workflow_id)
        self._progress = run.progress or BroadcastProgress(
            name=plan.name, occurrence=occurrence, rate=plan.rate
        )
        self._paused = run.paused
        self._cancelling = run.cancelling
        self._batches = 0

    @workflow.run
    async def run(self, run: BroadcastRun) -> BroadcastProgress:
        """Wait for the start, snapshot the audience, send; return the final progress."""
        if self._progress.status == BroadcastStatus.SCHEDULED:
            await self._start()
        while self._progress.status not in (BroadcastStatus.DONE, BroadcastStatus.CANCELLED):
            await workflow.wait_condition(lambda: not self._paused or self._cancelling)
            if self._cancelling:
                await self._cancel()
                break
            tally = await self._batch()
            if tally.remaining and not tally.handled and tally.next_due_at is not None:
                await self._wait_until(tally.next_due_at, "next deferred contact due")
            if self._batches >= BATCHES_PER_RUN or workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(
                    BroadcastRun(
                        plan=self._plan,
                        progress=self._progress,
                        paused=self._paused,
                        cancelling=self._cancelling,
                    )
                )
        return self._progress

    @workflow.signal
    def pause(self) -> None:
        """Stop sending after the current batch, until resumed."""
        self._paused = True
        self._show()

    @workflow.signal
    def resume(self) -> None:
        """Send again."""
        self._paused = False
        self._show()

    @workflow.signal
    def cancel(self) -> None:
        """Send nothing more: what was not sent is cancelled."""
        self._cancelling = True

    @workflow.query
    def progress(self) -> BroadcastProgress:
        """Audience, sent, deferred, refused, failed, cancelled, remaining, rate."""
        if self._paused and self._progress.status == BroadcastStatus.RUNNING:
            return self._progress.model_copy(update={"status": BroadcastStatus.PAUSED})
        return self._progress

    async def _start(self) -> None:
        """Wait for the start time, then take the audience snapshot."""
        start, wall = self._start_and_wall()
        self._progress.starts_at = start
        self._show()
        await self._wait_until(start, "start")
        if self._cancelling:
            return
        tally = await workflow.execute_activity_method(
            BroadcastActivities.snapshot_audience,
            SnapshotRequest(
                broadcast=self._plan.name,
                occurrence=self._progress.occurrence,
                segment=self._plan.segment,
                template=self._plan.template,
                channel=self._plan.channel,
                start=max(start, workflow.now()),
                wall=wall,
            ),
            start_to_close_timeout=timedelta(minutes=10),
            heartbeat_timeout=timedelta(minutes=1),
            retry_policy=RETRY,
            summary=f"Audience: segment {self._plan.segment}",
        )
        self._progress.status = BroadcastStatus.RUNNING
        self._apply(tally)
        await self._record(BroadcastStatus.RUNNING)

    def _start_and_wall(self) -> tuple[datetime, datetime | None]:
        """When the occurrence starts, and its wall-clock time if each contact's zone counts."""
        plan = self._plan
        if plan.send_at is None:  # a schedule's run: its time is its occurrence
            scheduled = occurrence_time(self._progress.occurrence)
            return scheduled, wall_time(scheduled) if plan.local_time else None
        if not plan.local_time:
            return plan.send_at, None
        wall = plan.send_at.replace(tzinfo=None)
        return local_start(wall), wall

    async def _batch(self) -> Tally:
        limit = max(1, min(MAX_BATCH, self._plan.rate * BATCH_SECONDS))
        tally = await workflow.execute_activity_method(
            BroadcastActivities.send_broadcast_batch,
            BatchRequest(plan=self._plan, occurrence=self._progress.occurrence, limit=limit),
            start_to_close_timeout=timedelta(seconds=limit / self._plan.rate + 120),
            heartbeat_timeout=HEARTBEAT,
            retry_policy=RETRY,
            summary=f"Send up to {limit} at {self._plan.rate}/s",
        )
        self._batches += 1
        self._apply(tally)
        if not tally.remaining:
            self._progress.status = BroadcastStatus.DONE
            self._show()
            await self._record(BroadcastStatus.DONE)
        return tally

    async def _cancel(self) -> None:
        tally = await workflow.execute_activity_method(
            BroadcastActivities.cancel_broadcast_rest,
            CloseRequest(broadcast=self._plan.name, occurrence=self._progress.occurrence),
            start_to_close_timeout=CRM_TIMEOUT,
            retry_policy=RETRY,
            summary="Cancel what was not sent",
        )
        self._progress.status = BroadcastStatus.CANCELLED
        self._apply(tally)
        await self._record(BroadcastStatus.CANCELLED)

    async def _wait_until(self, when: datetime, what: str) -> None:
        """Wait until `when`, or a cancellation."""
        delay = when - workflow.now()
        if delay <= timedelta(0):
            return
        try:
            await workflow.wait_condition(
                lambda: self._cancelling, timeout=delay, timeout_summary=f"Wait: {what}"
            )
        except TimeoutError:
            pass

    async def _record(self, status: BroadcastStatus) -> None:
        """Record a one-off broadcast's status (a schedule's status is the schedule's)."""
        if self._plan.send_at is None:
            return
        await workflow.execute_activity_method(
            BroadcastActivities.record_broadcast_status,
            StatusChange(broadcast=self._plan.name, status=status),
            start_to_close_timeout=CRM_TIMEOUT,
            retry_policy=RETRY,
            summary=f"Status: {status}",
        )

    def _apply(self, tally: Tally) -> None:
        progress = self._progress
        progress.audience = sum(tally.counts.values())
        progress.sent = tally.count(RecipientStatus.SENT)
        progress.deferred = tally.count(RecipientStatus.DEFERRED)
        progress.refused = tally.count(RecipientStatus.REFUSED)
        progress.failed = tally.count(RecipientStatus.FAILED)
        progress.cancelled = tally.count(RecipientStatus.CANCELLED)
        progress.remaining = tally.remaining
        self._show()

    def _show(self) -> None:
        """The progress as the Temporal UI shows it (current details)."""
        progress = self.progress()
        status = progress.status
        plan = self._plan
        workflow.set_current_details(
            f"**Broadcast `{plan.name}`** ({progress.occurrence}): `{plan.template}` to "
            f"segment `{plan.segment}`, {plan.rate}/s: **{status}**\n\n"
            f"| audience | sent | deferred | refused | failed | cancelled | remaining |\n"
            f"|---|---|---|---|---|---|---|\n"
            f"| {progress.audience} | {progress.sent} | {progress.deferred} | "
            f"{progress.refused} | {progress.failed} | {progress.cancelled} | "
            f"{progress.remaining} |"
        )
