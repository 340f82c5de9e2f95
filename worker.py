"""The Temporal worker: every journey workflow and activity on one task queue.

Run it with `journeys worker` (or `python worker.py`). It connects through
the Temporal environment settings (see `runtime/temporal.py`), applies
database migrations, validates every message template before polling, and
shuts down gracefully on SIGTERM / SIGINT: in-flight activities get
`GRACEFUL_SHUTDOWN` to finish. With METRICS_BIND_ADDRESS set it serves
Prometheus metrics at `http://<address>/metrics`: the SDK's own (`temporal_…`:
workflow and activity task latencies, slots, pollers…) and the journeys'
counters the activities add through the SDK meter (`journeys_messages`,
`journeys_sla_breaches`). With WORKER_BUILD_ID set it polls as that version of the
worker deployment WORKER_DEPLOYMENT_NAME (Worker Versioning: `deployment_config`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.common import WorkerDeploymentVersion
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    PrometheusConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)
from temporalio.worker import Worker, WorkerDeploymentConfig
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions
from temporalio.workflow import SandboxImportNotificationPolicy

from activities.broadcasts import BroadcastActivities
from activities.contacts import ContactActivities
from activities.crm import CrmActivities
from activities.deliverability import DeliverabilityActivities
from activities.experiments import ExperimentActivities
from activities.journeys import JourneyLogActivities
from activities.messaging import MessagingActivities
from activities.onboarding import OnboardingActivities
from activities.providers import EmailProvider, SmsProvider
from activities.providers.notifier import Notifier, notifier_from_settings
from activities.sales import SalesActivities
from activities.segments import SegmentActivities
from models.db import create_engine, migrate
from models.deliverability import GuardConfig
from models.settings import Settings, UnsafeSettings, get_settings, refuse_unsafe_settings
from rules.deals import DealConfig
from rules.onboarding import OnboardingConfig
from rules.sales import SalesConfig
from rules.scoring import ScoringModel
from rules.segment_membership import file_segments
from rules.sms_keywords import REPLY_TEMPLATES
from rules.templates import TemplateCatalog, TemplateError
from rules.usage import UsageRule
from runtime.codec import key_store_of
from runtime.keys import key_store
from runtime.logs import configure_logging
from runtime.shutdown import wait_for_shutdown_signal
from runtime.temporal import connect
from runtime.temporal_settings import TemporalSettingsError
from workflows import catalog
from workflows.broadcast import BroadcastWorkflow
from workflows.contact import ContactWorkflow
from workflows.deliverability_guard import DELIVERABILITY_GUARD, DeliverabilityGuard
from workflows.segment_sweep import SEGMENT_SWEEP, SegmentSweep
from workflows.sms_keywords import SmsKeywordReply
from workflows.toolkit import Journey, PlanStep
from workflows.toolkit.plan_check import check_plan
from workflows.versioning import DEFAULT_BEHAVIOR, VersionedRunner

GRACEFUL_SHUTDOWN = timedelta(seconds=20)
SANDBOX_RESTRICTIONS = SandboxRestrictions.default.with_passthrough_modules(
    "workflows.toolkit", "workflows.triggers", "workflows.catalog", "workflows.versioning"
).with_import_notification_policy(
    SandboxImportNotificationPolicy.WARN_ON_DYNAMIC_IMPORT
    | SandboxImportNotificationPolicy.WARN_ON_UNINTENTIONAL_PASSTHROUGH
)
"""The sandbox. A new run executes again only the file that defines its workflow class
(and the packages above it, docstrings); everything workflow files import is passed
through: the journey toolkit, the trigger table, the catalog and the versioning policy
(deterministic, no state between runs) by name here, models, rules and activities by
`workflow.unsafe.imports_passed_through()` where they are imported. A workflow file that
imports anything else gets a warning naming the module (`tests/test_sandbox_imports.py`
fails on it)."""
WORKFLOW_RUNNER = SandboxedWorkflowRunner(restrictions=SANDBOX_RESTRICTIONS)
"""The runner of an unversioned worker."""
VERSIONED_WORKFLOW_RUNNER = SandboxedWorkflowRunner(
    restrictions=SANDBOX_RESTRICTIONS, runner_class=VersionedRunner
)
"""The runner of a versioned worker: each run gets its class's versioning behaviour
(`workflows/versioning.py`)."""
log = structlog.stdlib.get_logger(__name__)


def load_templates(
    settings: Settings, journeys: Sequence[type[Journey]] | None = None
) -> TemplateCatalog:
    """Load and validate the templates, and check every journey's plan and templates.

    Args:
        settings: Where the templates are.
        journeys: The journeys to check (default: every journey in the catalog).

    Raises:
        TemplateError: naming the file that is broken or missing (and the plan
            step that sends a missing one).
        PlanError: a journey's `steps()` sends or runs a step its plan lacks
            (see `workflows.toolkit.plan_check`).
        ValueError: the onboarding configuration (which names the education
            emails) is invalid.
    """
    templates = TemplateCatalog(settings.templates_dir)
    for journey in catalog.all_journeys() if journeys is None else journeys:
        check_plan(journey)
        for step in journey.message_steps():
            _require_template(templates, journey, step)
    templates.require("sms-keyword-reply", REPLY_TEMPLATES)
    onboarding = OnboardingConfig.load(settings.onboarding_file)
    templates.require("onboarding", onboarding.education_templates())
    return templates


def _require_template(templates: TemplateCatalog, journey: type[Journey], step: PlanStep) -> None:
    """Check that the template of a journey's plan step exists (each arm's, for an
    experiment's message).

    Raises:
        TemplateError: naming the journey, the template, its file and the step.
    """
    needed = [(template, str(step.channel)) for template in journey.step_templates(step)]
    try:
        templates.require(journey.name, needed)
    except TemplateError as error:
        raise TemplateError(f"{error} (plan step {step.id!r})") from None


def check_followed_segments(settings: Settings) -> frozenset[str]:
    """The segments journeys follow, each checked to be defined in the segments file.

    Raises:
        ValueError: the segments file is invalid, or a journey follows a segment it lacks.
    """
    defined = file_segments(settings.segments_file)
    followed = catalog.followed_segments()
    for journey in catalog.all_journeys():
        named = {journey.segment_exit, journey.trigger.segment if journey.trigger else None}
        missing = sorted(name for name in named - {None} - set(defined) if name)
        if missing:
            raise ValueError(
                f"journey {journey.name} follows segment {', '.join(missing)}, which "
                f"{settings.segments_file} does not define: a journey follows a segment "
                "reviewed like code; define it there"
            )
    return followed


def deployment_config(settings: Settings) -> WorkerDeploymentConfig | None:
    """The worker's version in its worker deployment; None (unversioned) without a build id.

    Each run gets the versioning behaviour its class declares, pinned by default
    (`workflows/versioning.py`, applied by `VERSIONED_WORKFLOW_RUNNER`).
    """
    if settings.worker_build_id is None:
        return None
    return WorkerDeploymentConfig(
        version=WorkerDeploymentVersion(
            deployment_name=settings.worker_deployment_name, build_id=settings.worker_build_id
        ),
        use_worker_versioning=True,
        default_versioning_behavior=DEFAULT_BEHAVIOR,
    )


def build_worker(
    client: Client,
    settings: Settings,
    engine: AsyncEngine,
    *,
    templates: TemplateCatalog | None = None,
    email_provider: EmailProvider | None = None,
    sms_provider: SmsProvider | None = None,
    notifier: Notifier | None = None,
    journeys: Sequence[type[Journey]] | None = None,
) -> Worker:
    """Create the worker with all workflows and activities registered.

    Args:
        client: Connected client (with the project's data converter). Erasure
            destroys data keys in its codec's key store (so its cache forgets
            them at once), or in the worker's database if it has none.
        settings: Task queue, deployment version, templates and provider settings.
        engine: Database engine the activities use.
        templates: Already validated templates (default: `load_templates`).
        email_provider: Overrides the email provider chosen by the settings.
        sms_provider: Overrides the SMS provider chosen by the settings.
        notifier: Overrides the sales-team notifier chosen by the settings.
        journeys: Journey workflows to run (default: every journey in the catalog);
            the contact workflow always runs.

    Raises:
        TemplateError: a message template is missing, malformed or lacks a fallback,
            or a journey sends a template that does not exist.
        ValueError: the scoring model, the sales, the churn, the onboarding, the
            deliverability configuration or the segments file is invalid (the message names
            the file), or a journey follows a segment the file does not define.
    """
    journeys = list(catalog.all_journeys() if journeys is None else journeys)
    versioning = deployment_config(settings)
    catalog.triggers()  # two journeys on one event type: refused here, not at the first event
    templates = templates or load_templates(settings, journeys)
    messaging = MessagingActivities.from_settings(
        settings,
        engine,
        templates=templates,
        email_provider=email_provider,
        sms_provider=sms_provider,
    )
    broadcasts = BroadcastActivities(engine=engine, messaging=messaging, templates=templates)
    crm = CrmActivities(engine=engine)
    journey_log = JourneyLogActivities(engine=engine)
    experiments = ExperimentActivities(engine=engine)
    contacts = ContactActivities(
        engine=engine,
        scoring=ScoringModel.load(settings.scoring_file),
        outbox_dir=settings.outbox_dir,
        keys=key_store_of(client.data_converter) or key_store(settings, engine=engine),
        suppression_key=settings.suppression_key(),
        usage_rule=UsageRule.load(settings.churn_file),
        deal_config=DealConfig.load(settings.deals_file),
    )
    notifier = notifier or notifier_from_settings(settings)
    sales = SalesActivities(
        engine=engine, config=SalesConfig.load(settings.sales_file), notifier=notifier
    )
    deliverability = DeliverabilityActivities(
        engine=engine, config=GuardConfig.load(settings.deliverability_file), notifier=notifier
    )
    onboarding = OnboardingActivities(
        engine=engine, config=OnboardingConfig.load(settings.onboarding_file)
    )
    segments = SegmentActivities(
        engine=engine,
        client=client,
        segments_file=settings.segments_file,
        followed=check_followed_segments(settings),
        task_queue=settings.task_queue,
        day_seconds=settings.day_seconds,
    )
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[
            ContactWorkflow,
            SmsKeywordReply,
            SegmentSweep,
            DeliverabilityGuard,
            BroadcastWorkflow,
            *journeys,
        ],
        workflow_runner=WORKFLOW_RUNNER if versioning is None else VERSIONED_WORKFLOW_RUNNER,
        deployment_config=versioning,
        activities=[
            messaging.send_message,
            messaging.cancel_messages,
            messaging.send_service_sms,
            broadcasts.snapshot_audience,
            broadcasts.send_broadcast_batch,
            broadcasts.cancel_broadcast_rest,
            broadcasts.record_broadcast_status,
            crm.create_crm_task,
            crm.mark_churn_risk,
            crm.tag_contact,
            crm.recycle_lead,
            crm.open_recycled_review,
            journey_log.record_journey_run,
            experiments.assign_arm,
            journey_log.journey_entered,
            contacts.ingest_events,
            contacts.scoring_model,
            contacts.update_lead_score,
            contacts.lead_status,
            contacts.nurture_profile,
            contacts.cart_purchased,
            contacts.erase_contact,
            contacts.end_contact_workflows,
            contacts.shred_contact_key,
            sales.hand_off_lead,
            sales.raise_lead_priority,
            sales.remind_sla,
            sales.warn_sla,
            sales.escalate_sla_breach,
            sales.last_interaction,
            sales.alert_account_owner,
            onboarding.onboarding_start,
            segments.refresh_segments,
            segments.sweep_segments,
            deliverability.check_deliverability,
        ],
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
    )


def interval_schedule(workflow_name: str, *, every_seconds: int, task_queue: str) -> Schedule:
    """A schedule starting the workflow `workflow_name` every `every_seconds`, one run at a time
    (a run still going when the next is due makes the schedule skip that one)."""
    return Schedule(
        action=ScheduleActionStartWorkflow(workflow_name, id=workflow_name, task_queue=task_queue),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=every_seconds))]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def put_schedule(client: Client, schedule_id: str, schedule: Schedule) -> None:
    """Create the schedule, or give the existing one of this id `schedule`."""
    try:
        await client.create_schedule(schedule_id, schedule)
    except ScheduleAlreadyRunningError:

        def updated(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await client.get_schedule_handle(schedule_id).update(updated)


async def schedule_segment_sweep(client: Client, settings: Settings) -> None:
    """Create the `segment-sweep` schedule, or give the existing one this worker's settings."""
    every = settings.segment_sweep_seconds
    await put_schedule(
        client,
        SEGMENT_SWEEP,
        interval_schedule(SEGMENT_SWEEP, every_seconds=every, task_queue=settings.task_queue),
    )
    log.info("segment sweep scheduled", every_seconds=every)


async def schedule_deliverability_guard(client: Client, settings: Settings) -> None:
    """Create the `deliverability-guard` schedule, or give the existing one this worker's
    settings."""
    every = settings.deliverability_check_seconds
    await put_schedule(
        client,
        DELIVERABILITY_GUARD,
        interval_schedule(
            DELIVERABILITY_GUARD, every_seconds=every, task_queue=settings.task_queue
        ),
    )
    log.info("deliverability guard scheduled", every_seconds=every)


async def sweep_segments_once(client: Client, settings: Settings) -> None:
    """Run one segment sweep now and wait for it (a new segment's first, silent evaluation)."""
    await client.execute_workflow(
        SegmentSweep.run, id=f"{SEGMENT_SWEEP}-now", task_queue=settings.task_queue
    )


async def schedule_upkeep(client: Client, settings: Settings) -> None:
    """The schedules the worker's upkeep workflows run on: the segment sweep, the
    deliverability guard."""
    await schedule_segment_sweep(client, settings)
    await schedule_deliverability_guard(client, settings)


@asynccontextmanager
async def running_worker(
    client: Client, settings: Settings, *, templates: TemplateCatalog | None = None
) -> AsyncIterator[Worker]:
    """Migrate the database, then run a worker until the block exits."""
    engine = create_engine(settings.database_url)
    try:
        await migrate(engine)
        worker = build_worker(client, settings, engine, templates=templates)
        async with worker:
            log.info(
                "worker started",
                task_queue=settings.task_queue,
                journeys=catalog.journey_names(),
                deployment=settings.worker_deployment_name if settings.worker_build_id else None,
                build_id=settings.worker_build_id,
            )
            yield worker
        log.info("worker stopped")
    finally:
        await engine.dispose()


CORE_LOGGER = "temporalio.core"
"""Logger of the SDK Core's own messages (poll retries, lost task completions…)."""


def worker_telemetry(settings: Settings) -> TelemetryConfig:
    """Telemetry of the worker's SDK runtime.

    The Core's warnings and errors are forwarded to the `temporalio.core`
    logger, so they come out as our log lines (JSON, masked) rather than the
    Core's own console format. With `metrics_bind_address` set, Prometheus
    metrics are served there; otherwise there are none.
    """
    address = settings.metrics_bind_address
    return TelemetryConfig(
        logging=LoggingConfig(
            filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
            forwarding=LogForwardingConfig(logger=logging.getLogger(CORE_LOGGER)),
        ),
        metrics=PrometheusConfig(bind_address=address) if address else None,
    )


def worker_runtime(settings: Settings) -> Runtime:
    """The SDK runtime of the worker, with `worker_telemetry(settings)`.

    Raises:
        ValueError: the metrics address is malformed or cannot be bound (in use…).
    """
    try:
        runtime = Runtime(telemetry=worker_telemetry(settings))
    except ValueError as error:
        raise ValueError(
            f"METRICS_BIND_ADDRESS {settings.metrics_bind_address!r}: {error}"
        ) from error
    if settings.metrics_bind_address:
        log.info("serving metrics", url=f"http://{settings.metrics_bind_address}/metrics")
    return runtime


async def run_worker(settings: Settings) -> None:
    """Check the settings and templates, connect, run the worker, stop on SIGINT / SIGTERM.

    The client (and so the worker) runs on `worker_runtime(settings)`.

    Raises:
        UnsafeSettings: development secrets or addresses where real contacts get messages.
        TemporalSettingsError: a Temporal connection setting is wrong (a TLS file,
            a certificate the server refuses…).
    """
    refuse_unsafe_settings(settings)
    templates = load_templates(settings)
    client = await connect(runtime=worker_runtime(settings), keys=key_store(settings))
    await schedule_upkeep(client, settings)
    async with running_worker(client, settings, templates=templates):
        await wait_for_shutdown_signal()


def main() -> None:
    """Entry point of `python worker.py`."""
    settings = get_settings()
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    try:
        asyncio.run(run_worker(settings))
    except (UnsafeSettings, TemporalSettingsError) as error:
        raise SystemExit(str(error)) from None


if __name__ == "__main__":
    main()
