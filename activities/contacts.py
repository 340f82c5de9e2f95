"""Activities of the contact workflow: store events, keep the CRM's score and tags, erase.

All of them are idempotent. `ingest_events` recognises the rows of its own
batch on a retry (`batch_key`), so an event is accepted exactly once even when
the activity's answer was lost; `erase_contact` deletes what is left.
Erasure runs `end_contact_workflows`, `erase_contact`, then
`shred_contact_key`: once the contact's data key is destroyed no workflow of
the contact may still need to read its payloads.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession
from structlog.contextvars import bound_contextvars
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from activities.providers.outbox import outbox_path
from models.carts import CartQuery
from models.contact_workflow import (
    ContactWorkflows,
    ErasureResult,
    IngestRequest,
    IngestResult,
    LeadScoreUpdate,
    LeadStatus,
)
from models.db import lock_contact, session_factory
from models.nurture import NurtureProfile, NurtureProfileRequest
from models.tables import (
    ConsentChange,
    Contact,
    ContactAlias,
    ContactEvent,
    CrmTask,
    Deal,
    DealStageChange,
    ErasedContact,
    EventReceipt,
    ExperimentExposure,
    JourneyRun,
    MessageLog,
    Notification,
    PipelineTransition,
    SegmentChange,
    SegmentMember,
    SlaBreach,
    Suppression,
)
from rules.consent import apply_event, reachable_channels, suppress_addresses
from rules.deals import DealConfig, apply_deal_events
from rules.email_domains import fit_fields
from rules.erasure import erased_at
from rules.opt_outs import suppression_scope
from rules.scoring import ScoringModel
from rules.usage import UsageRule, clear_churn_risk, clears_churn_risk, usage_signals
from runtime.keys import KeyStore

log = structlog.stdlib.get_logger(__name__)

OUTBOX_SUFFIXES = (".eml", ".sms.txt")
"""Outbox files a message may have left (see `activities/providers/outbox.py`)."""
EXIT_GRACE_SECONDS = 10.0
"""How long erasure lets the contact's journeys finish their exit before terminating them."""
NURTURE_EVENT_TYPES = ("content_downloaded", "pricing_page_viewed")
"""The stored events the nurture reads (`nurture_profile`)."""


class ContactActivities:
    """The contact workflow's activities; built once in the worker."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        scoring: ScoringModel,
        outbox_dir: Path,
        keys: KeyStore,
        suppression_key: bytes,
        usage_rule: UsageRule | None = None,
        deal_config: DealConfig | None = None,
    ) -> None:
        """Hold the database engine, the scoring model, the outbox folder, the data keys,
        the suppression hash key, the usage rule (`churn.toml`) and the deal stages
        (`deals.toml`); the last two default to their defaults."""
        self._sessions = session_factory(engine)
        self._usage_rule = usage_rule or UsageRule()
        self._deal_config = deal_config or DealConfig()
        self._keys = keys
        self._suppression_key = suppression_key
        self._scoring = scoring
        self._scoring_digest = scoring.digest()
        self._outbox_dir = outbox_dir

    @activity.defn(name="ingest_events")
    async def ingest_events(self, request: IngestRequest) -> IngestResult:
        """Store the events not stored before, and suppress at once on unsubscribe / hard bounce.

        Usage reports are judged as they are stored (`rules/usage.py`): a drop or a
        recovery is stored as an event of its own, with an id derived from the
        report's, and returned to be routed. `renewed` and a recovery clear the
        contact's `stage_churn-risk` tag. Deal events and purchases are applied
        (`rules/deals.py`): deals, pipeline stages, and a `purchased` derived from
        a `deal_won`, returned to be routed like the usage signals.

        The events of an erased contact (one with a tombstone) are not stored:
        the result says `contact_erased` and the workflow ends.

        Returns:
            The events accepted now (or by an earlier attempt of this batch),
            whether the contact exists (or was erased), its attributes with its
            `email_type` (never the address or its domain), the scoring
            model's fingerprint, the channels marketing can still reach it on and
            the events derived from the batch.
        """
        ids = [event.event_id for event in request.events]
        with bound_contextvars(contact_id=request.contact_id, batch_key=request.batch_key):
            async with self._sessions() as session:
                contact = await session.get(Contact, request.contact_id)
                if contact is None and await erased_at(session, request.contact_id):
                    log.warning("events of an erased contact dropped", events=len(ids))
                    return IngestResult(
                        accepted_event_ids=[],
                        contact_exists=False,
                        contact_erased=True,
                        fit_fields={},
                        scoring_digest=self._scoring_digest,
                    )
                stored = await session.exec(
                    select(ContactEvent.event_id, ContactEvent.batch_key).where(
                        ContactEvent.contact_id == request.contact_id,
                        col(ContactEvent.event_id).in_(ids),
                    )
                )
                earlier = {event_id: batch for event_id, batch in stored.all()}
                accepted = []
                for event in request.events:
                    batch = earlier.get(event.event_id)
                    if batch is None:
                        session.add(ContactEvent.of(event, request.batch_key))
                        earlier[event.event_id] = request.batch_key
                    elif batch != request.batch_key or event.event_id in accepted:
                        continue
                    accepted.append(event.event_id)
                suppressing = [
                    event
                    for event in request.events
                    if event.event_id in accepted and suppression_scope(event) is not None
                ]
                if contact is not None:
                    for event in suppressing:
                        await apply_event(session, contact, event, key=self._suppression_key)
                new = [event for event in request.events if event.event_id in accepted]
                derived = [
                    *await usage_signals(
                        session, new, rule=self._usage_rule, batch_key=request.batch_key
                    ),
                    *await apply_deal_events(
                        session, contact, new, config=self._deal_config, batch_key=request.batch_key
                    ),
                ]
                cleared = (
                    contact is not None
                    and clears_churn_risk([*new, *derived])
                    and clear_churn_risk(contact)
                )
                if cleared:
                    session.add(contact)
                reachable = await reachable_channels(session, contact, key=self._suppression_key)
                await session.commit()
            log.info(
                "events ingested",
                accepted=len(accepted),
                duplicates=len(ids) - len(accepted),
                suppressed=bool(suppressing and contact),
                derived=[event.type for event in derived],
                churn_risk_cleared=cleared,
            )
            return IngestResult(
                accepted_event_ids=accepted,
                contact_exists=contact is not None,
                fit_fields=fit_fields(contact.attributes, contact.email) if contact else {},
                scoring_digest=self._scoring_digest,
                reachable_channels=reachable,
                derived_events=derived,
            )

    @activity.defn(name="scoring_model")
    async def scoring_model(self) -> ScoringModel:
        """The scoring model the worker loaded (`scoring.toml`)."""
        return self._scoring

    @activity.defn(name="update_lead_score")
    async def update_lead_score(self, update: LeadScoreUpdate) -> None:
        """Write the score (total, fit, behaviour), band, breakdown and tags to the contact
        (other tags are kept).

        Writers of the contact's tags take turns (`lock_contact`): a journey tagging the
        contact meanwhile (onboarding's adoption) is not overwritten by a stale read.
        """
        now = activity.info().current_attempt_scheduled_time
        async with self._sessions() as session:
            await lock_contact(session, update.contact_id)
            contact = await session.get(Contact, update.contact_id, with_for_update=True)
            if contact is None:
                log.info("score not written: contact does not exist", contact_id=update.contact_id)
                return
            contact.lead_score = update.score
            contact.fit_score, contact.behavior_score = update.fit, update.behavior
            contact.lifecycle_stage = update.band
            contact.score_breakdown = dict(update.breakdown)
            contact.tags = sorted((set(contact.tags) - set(update.removed_tags)) | set(update.tags))
            contact.updated_at = now
            session.add(contact)
            await session.commit()

    @activity.defn(name="lead_status")
    async def lead_status(self, contact_id: str) -> LeadStatus:
        """The lead's score and band as the CRM has them, and whether it belongs with sales."""
        async with self._sessions() as session:
            contact = await session.get(Contact, contact_id)
        if contact is None or contact.lifecycle_stage is None:
            return LeadStatus(score=0, band=None, sales_ready=False, owner_id=None)
        return LeadStatus(
            score=contact.lead_score,
            band=contact.lifecycle_stage,
            sales_ready=self._scoring.sales_ready(contact.lifecycle_stage),
            owner_id=contact.owner_id,
        )

    @activity.defn(name="nurture_profile")
    async def nurture_profile(self, request: NurtureProfileRequest) -> NurtureProfile:
        """What the nurture reads before each slot: tags, band, time zone, downloads, pricing.

        Downloads count whatever their date (before the enrolment too); pricing
        visits from `request.since` on.
        """
        async with self._sessions() as session:
            contact = await session.get(Contact, request.contact_id)
            if contact is None:
                return NurtureProfile()
            events = (
                await session.exec(
                    select(ContactEvent.type, ContactEvent.occurred_at, ContactEvent.properties)
                    .where(ContactEvent.contact_id == request.contact_id)
                    .where(col(ContactEvent.type).in_(NURTURE_EVENT_TYPES))
                )
            ).all()
        downloaded = {
            str(properties.get("asset"))
            for kind, _, properties in events
            if kind == "content_downloaded" and properties.get("asset")
        }
        return NurtureProfile(
            tags=list(contact.tags),
            band=contact.lifecycle_stage,
            sales_ready=contact.lifecycle_stage is not None
            and self._scoring.sales_ready(contact.lifecycle_stage),
            timezone=contact.timezone,
            downloaded=sorted(downloaded),
            pricing_viewed=any(
                kind == "pricing_page_viewed" and occurred_at >= request.since
                for kind, occurred_at, _ in events
            ),
        )

    @activity.defn(name="cart_purchased")
    async def cart_purchased(self, query: CartQuery) -> bool:
        """Whether the contact has a stored `purchased` event naming the cart (`cart_id`)."""
        statement = select(ContactEvent.properties).where(
            ContactEvent.contact_id == query.contact_id, ContactEvent.type == "purchased"
        )
        async with self._sessions() as session:
            purchases = (await session.exec(statement)).all()
        return any(properties.get("cart_id") == query.cart_id for properties in purchases)

    @activity.defn(name="erase_contact")
    async def erase_contact(self, contact_id: str) -> ErasureResult:
        """Delete everything personal about the contact; keep only hashed suppressions
        and the contact's tombstone (its id and the time of erasure).

        Deleted: the contact row, its consent history, events, message log,
        CRM tasks, sales notifications, SLA breaches, deals and their changes, pipeline
        stage history, and the outbox files of its messages and notifications. Its email
        address and phone number stay suppressed as hashes (a re-import is not mailed), no
        longer linked to the id.
        """
        with bound_contextvars(contact_id=contact_id):
            async with self._sessions() as session:
                await lock_contact(session, contact_id)
                if await erased_at(session, contact_id) is None:
                    session.add(ErasedContact(contact_id=contact_id))
                contact = await session.get(Contact, contact_id, with_for_update=True)
                suppressed = (
                    await suppress_addresses(session, contact, "erased", key=self._suppression_key)
                    if contact
                    else []
                )
                await session.flush()
                message_keys = (
                    await session.exec(
                        select(MessageLog.idempotency_key).where(
                            MessageLog.contact_id == contact_id
                        )
                    )
                ).all()
                notification_keys = (
                    await session.exec(
                        select(Notification.idempotency_key).where(
                            Notification.contact_id == contact_id
                        )
                    )
                ).all()
                rows: dict[str, int] = {}
                for table in (
                    ConsentChange,
                    ContactEvent,
                    EventReceipt,
                    JourneyRun,
                    MessageLog,
                    CrmTask,
                    Notification,
                    SlaBreach,
                    Deal,
                    DealStageChange,
                    PipelineTransition,
                    ExperimentExposure,
                    SegmentMember,
                    SegmentChange,
                ):
                    result = await session.exec(
                        delete(table).where(col(table.contact_id) == contact_id)
                    )
                    rows[table.__tablename__] = result.rowcount
                for suppression in (
                    await session.exec(
                        select(Suppression).where(Suppression.contact_id == contact_id)
                    )
                ).all():
                    suppression.contact_id = None
                    session.add(suppression)
                rows["contact_aliases"] = await _tombstone_aliases(session, contact_id)
                if contact is not None:
                    await session.delete(contact)
                rows["contacts"] = int(contact is not None)
                await session.commit()
            files = [
                outbox_path(self._outbox_dir, key, suffix)
                for key in message_keys
                for suffix in OUTBOX_SUFFIXES
            ] + [
                outbox_path(self._outbox_dir / "notifications", key, ".json")
                for key in notification_keys
            ]
            deleted = await asyncio.to_thread(_delete_files, files, self._outbox_dir)
            log.info("contact erased", rows=rows, files=deleted)
            return ErasureResult(
                rows_deleted=rows, files_deleted=deleted, suppressed_channels=suppressed
            )

    @activity.defn(name="end_contact_workflows")
    async def end_contact_workflows(self, workflows: ContactWorkflows) -> list[str]:
        """Wait for the contact's workflows to finish exiting; terminate those that do not.

        The contact workflow itself is left alone. Heartbeats while it waits.

        Returns:
            The workflows terminated.
        """
        client = activity.client()
        own = f"contact-{workflows.contact_id}"
        ids = set(workflows.workflow_ids)
        query = f"ContactId = '{workflows.contact_id}' AND ExecutionStatus = 'Running'"
        try:
            ids.update([execution.id async for execution in client.list_workflows(query)])
        except RPCError:  # a server without visibility (the time-skipping test server)
            pass
        running = sorted(ids - {own})
        deadline = time.monotonic() + EXIT_GRACE_SECONDS
        while running and time.monotonic() < deadline:
            activity.heartbeat()
            running = [wid for wid in running if await _is_running(client, wid)]
            if running:
                await asyncio.sleep(0.2)
        for workflow_id in running:
            try:
                await client.get_workflow_handle(workflow_id).terminate(reason="contact erased")
            except RPCError:
                continue  # ended meanwhile
        log.info(
            "contact workflows ended", terminated=len(running), contact_id=workflows.contact_id
        )
        return running

    @activity.defn(name="shred_contact_key")
    async def shred_contact_key(self, contact_id: str) -> None:
        """Destroy the contact's data key: its Temporal histories can no longer be read."""
        key_id = await self._keys.destroy(contact_id)
        log.info("data key destroyed", contact_id=contact_id, key_id=key_id)


async def _tombstone_aliases(session: AsyncSession, contact_id: str) -> int:
    """Delete the ids merged into the contact (its aliases), each with a tombstone of its
    own: events sent under one are refused as the contact's are. Returns how many."""
    aliases = (
        await session.exec(select(ContactAlias).where(ContactAlias.contact_id == contact_id))
    ).all()
    for alias in aliases:
        if await erased_at(session, alias.alias) is None:
            session.add(ErasedContact(contact_id=alias.alias))
        await session.delete(alias)
    return len(aliases)


async def _is_running(client: Client, workflow_id: str) -> bool:
    try:
        description = await client.get_workflow_handle(workflow_id).describe()
    except RPCError:
        return False  # never existed
    return description.status == WorkflowExecutionStatus.RUNNING


def _delete_files(files: list[Path], root: Path) -> int:
    """Delete the files that exist, and the folders they leave empty (below `root`)."""
    deleted = 0
    for file in files:
        try:
            file.unlink()
        except FileNotFoundError:
            continue
        deleted += 1
        folder = file.parent
        while folder != root and root in folder.parents:
            try:
                folder.rmdir()
            except OSError:
                break
            folder = folder.parent
    return deleted
