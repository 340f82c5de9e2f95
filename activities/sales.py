"""Sales hand-off activities (seed 002, step 4): owner, follow-up task, notifications, SLA breaches.

A hand-off gives the lead an owner — the one it has while the ownership lock
lasts, else the least recently assigned of the reps its territory (or the
round-robin pool) allows — moves it to the `mql` pipeline stage, opens a
follow-up task as urgent as the lead's band and a BANT/CHAMP checklist task
(budget, pain, decision chain, timeline, next step), and notifies the owner
with what they need for the first call: score and its breakdown, the last
actions, the source. SLA reminders go to the owner, a warning before due to
the owner and their manager (seed 002: "SLA预警"); a breached SLA is recorded
(and counted once, on the SDK meter's `journeys_sla_breaches` by `sla`), and a
task opened and a notification sent for the owner's manager. An account alert
(a stalled onboarding) opens a task and notifies the customer's owner, or the
customer-success queue.

Every activity is idempotent on its key: its task is `{key}/task` (the
checklist `{key}/checklist`, the MQL transition `{key}/mql`), its
notification `{key}/notify` (a warning's copy to the manager
`{key}/notify-manager`). The notification's row is written `pending` before
the notifier is called and marked `sent` after, so a retry that finds it sent
notifies nobody. Notifications go to chat: they name the contact by
id, first name and company, never by email address or phone number.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from structlog.contextvars import bound_contextvars
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.crm import (
    contact_not_found,
    find_by_key,
    insert_once,
    locked_contact,
    open_crm_task,
    row_id,
)
from activities.providers.errors import DeliveryError, provider_text
from activities.providers.notifier import NotificationKind, Notifier, RepNotification
from models.crm import (
    AccountAlert,
    AssigneeRole,
    CrmTaskKind,
    CrmTaskRequest,
    CrmTaskResult,
    TaskPriority,
)
from models.db import session_factory
from models.events import BehaviorEvent, is_contact_initiated
from models.handoff import (
    HandOff,
    HandOffRequest,
    InteractionQuery,
    LastInteraction,
    LeadBand,
    PriorityRequest,
    SlaKind,
    SlaNotice,
    SlaPolicy,
)
from models.pipeline import PipelineStage
from models.tables import Contact, ContactEvent, CrmTask, Notification, RepAssignment, SlaBreach
from rules.pipeline import record_transition
from rules.sales import Rep, SalesConfig, SalesPerson

log = structlog.stdlib.get_logger(__name__)

RECENT_ACTIONS = 5
"""How many of the lead's last actions a notification lists."""
UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign")
"""The UTM parameters a notification shows, from the lead's latest event that has any."""
SOURCE_TAG_PREFIX = "src_"
"""Tags naming where a contact came from (seed convention), shown with the UTM parameters."""
SLA_BREACHES_METRIC = "journeys_sla_breaches"
"""Counter of the SLA breaches recorded, by `sla` (`first_touch`, `qualification`)."""

REP_INTERACTIONS = frozenset({"rep_contacted", "meeting_held"})
"""Reps' events that count as an interaction with the lead (besides contact-initiated ones)."""
CHECKLIST = ("Budget", "Pain", "Decision chain", "Timeline", "Next step")
"""The BANT/CHAMP checklist the owner fills in before qualifying (seed 002, step 4)."""

_NEVER = datetime.min.replace(tzinfo=UTC)
_SLA_NAMES = {
    SlaKind.FIRST_TOUCH: "First-touch",
    SlaKind.QUALIFICATION: "Qualification",
    SlaKind.SQL_FOLLOW_UP: "SQL follow-up",
}
_SLA_TODO = {
    SlaKind.FIRST_TOUCH: "Contact the lead and record it (`rep_contacted`).",
    SlaKind.QUALIFICATION: (
        "Qualify or disqualify the lead (`lead_qualified` / `lead_disqualified`)."
    ),
    SlaKind.SQL_FOLLOW_UP: (
        "Hold the first demo or deep-dive meeting and record it "
        "(`meeting_held`, kind `demo` or `deep-dive`)."
    ),
}


@dataclass(frozen=True)
class _FollowUp:
    """The task a band calls for."""

    kind: CrmTaskKind
    priority: TaskPriority
    title: str
    due_in: timedelta


def _follow_up(band: LeadBand, sla: SlaPolicy) -> _FollowUp:
    """Hot: call now; SQL: priority follow-up; other bands: follow up within the first-touch SLA."""
    match band.band.casefold():
        case "hot":
            return _FollowUp(CrmTaskKind.LEAD_CALL, TaskPriority.URGENT, "Call now", timedelta(0))
        case "sql":
            return _FollowUp(
                CrmTaskKind.LEAD_FOLLOW_UP, TaskPriority.HIGH, "Priority follow-up", sla.first_touch
            )
        case _:
            return _FollowUp(
                CrmTaskKind.LEAD_FOLLOW_UP,
                TaskPriority.NORMAL,
                f"Follow up new {band.band}",
                sla.first_touch,
            )


@dataclass(frozen=True)
class _Lead:
    """What notifications say about a lead, loaded from the database.

    Attributes:
        contact: The contact.
        recent: Its last actions, newest first.
        utm: UTM parameters of its latest event that carries any.
    """

    contact: Contact
    recent: Sequence[ContactEvent]
    utm: Mapping[str, str]


class SalesActivities:
    """Activities of the sales hand-off; built once in the worker.

    Failures: a missing contact is a non-retryable `ContactNotFound`, an owner
    no longer in the configuration a non-retryable `UnknownRep`; a notifier's
    `DeliveryError` becomes `DeliveryRejected` (permanent, non-retryable) or
    `DeliveryDeferred` (retried after the `Retry-After` the service asked for).
    """

    def __init__(self, *, engine: AsyncEngine, config: SalesConfig, notifier: Notifier) -> None:
        """Hold the database engine, the sales configuration and the notifier."""
        self._sessions = session_factory(engine)
        self._config = config
        self._notifier = notifier

    @activity.defn(name="hand_off_lead")
    async def hand_off_lead(self, request: HandOffRequest) -> HandOff:
        """Give the lead an owner, open their follow-up task and notify them; once per key.

        Returns:
            The owner, their manager, the task and the SLAs in force.
        """
        key, band, sla = request.idempotency_key, request.band, self._config.sla
        with bound_contextvars(idempotency_key=key, contact_id=request.contact_id):
            lead = await self._lead(request.contact_id)
            task = await find_by_key(self._sessions, CrmTask, f"{key}/task")
            if task is None:
                owner = await self._assign_owner(request.contact_id, key=key, band=band)
                task, _ = await self._open_follow_up(key, lead, band, owner)
            else:  # a retry: the task names the owner
                owner = self._rep(task.assignee_id)
            checklist, _ = await self._open_checklist(key, lead, owner)
            await self._notify(
                owner,
                key=key,
                kind="hand_off",
                contact_id=request.contact_id,
                title=f"New {band.band} lead: {_who(lead.contact)}, score {band.score}",
                lines=[
                    *_lead_lines(lead, band),
                    _task_line(task),
                    _task_line(checklist),
                    f"SLA: first touch within {_duration(sla.first_touch)}, "
                    f"qualification within {_duration(sla.qualification)}",
                ],
            )
            log.info("lead handed off", owner_id=owner.id, task_id=task.id, band=band.band)
            return HandOff(
                owner_id=owner.id,
                owner_name=owner.name,
                manager_id=self._config.manager_of(owner).id,
                task_id=row_id(task),
                sla=sla,
            )

    @activity.defn(name="raise_lead_priority")
    async def raise_lead_priority(self, request: PriorityRequest) -> CrmTaskResult:
        """The lead moved up a band: open the owner's SQL or Hot task and notify them; once per key.

        Returns:
            The task, and whether this call opened it.
        """
        with bound_contextvars(
            idempotency_key=request.idempotency_key, contact_id=request.contact_id
        ):
            owner = self._rep(request.owner_id)
            lead = await self._lead(request.contact_id)
            task, created = await self._open_follow_up(
                request.idempotency_key, lead, request.band, owner
            )
            await self._notify(
                owner,
                key=request.idempotency_key,
                kind="priority",
                contact_id=request.contact_id,
                title=f"{_who(lead.contact)} moved up to {request.band.band}: {task.title}",
                lines=[*_lead_lines(lead, request.band), _task_line(task)],
            )
            return CrmTaskResult(task_id=row_id(task), created=created)

    @activity.defn(name="remind_sla")
    async def remind_sla(self, notice: SlaNotice) -> None:
        """Remind the owner that an SLA is running out; once per key."""
        with bound_contextvars(
            idempotency_key=notice.idempotency_key, contact_id=notice.contact_id
        ):
            owner = self._rep(notice.owner_id)
            contact = await self._contact(notice.contact_id)
            sla = _SLA_NAMES[notice.sla]
            await self._notify(
                owner,
                key=notice.idempotency_key,
                kind="sla_reminder",
                contact_id=notice.contact_id,
                title=f"Reminder: {sla} SLA for {_who(contact)} due {_when(notice.due_at)}",
                lines=[
                    _contact_line(contact),
                    f"{sla} SLA due {_when(notice.due_at)}",
                    _SLA_TODO[notice.sla],
                ],
            )

    @activity.defn(name="warn_sla")
    async def warn_sla(self, notice: SlaNotice) -> None:
        """Warn the owner and their manager that an SLA is due soon (seed 002: 2 hours before);
        once per key."""
        with bound_contextvars(
            idempotency_key=notice.idempotency_key, contact_id=notice.contact_id
        ):
            owner = self._rep(notice.owner_id)
            contact = await self._contact(notice.contact_id)
            sla = _SLA_NAMES[notice.sla]
            title = f"Warning: {sla} SLA for {_who(contact)} due {_when(notice.due_at)}"
            lines = [
                _contact_line(contact),
                f"{sla} SLA due {_when(notice.due_at)}; owner {owner.name} ({owner.id})",
                _SLA_TODO[notice.sla],
            ]
            for to, suffix in (
                (owner, "notify"),
                (self._config.manager_of(owner), "notify-manager"),
            ):
                await self._notify(
                    to,
                    key=notice.idempotency_key,
                    kind="sla_warning",
                    contact_id=notice.contact_id,
                    title=title,
                    lines=lines,
                    suffix=suffix,
                )

    @activity.defn(name="last_interaction")
    async def last_interaction(self, query: InteractionQuery) -> LastInteraction:
        """The lead's last interaction since `query.since`: a contact-initiated event or a
        rep's (`REP_INTERACTIONS`), from the events stored.

        Returns:
            When it occurred, or none.
        """
        newest_first = (
            select(ContactEvent)
            .where(
                ContactEvent.contact_id == query.contact_id,
                col(ContactEvent.occurred_at) >= query.since,
            )
            .order_by(col(ContactEvent.occurred_at).desc(), col(ContactEvent.id).desc())
        )
        async with self._sessions() as session:
            events = await session.stream_scalars(newest_first)
            try:
                async for event in events:
                    if _interaction(event):
                        return LastInteraction(at=event.occurred_at)
            finally:
                await events.close()
        return LastInteraction()

    @activity.defn(name="escalate_sla_breach")
    async def escalate_sla_breach(self, notice: SlaNotice) -> None:
        """Record the breach, open a task for the owner's manager and notify them; once per key.

        The breach time is when the activity was scheduled (the first attempt).
        """
        info = activity.info()
        with bound_contextvars(
            idempotency_key=notice.idempotency_key, contact_id=notice.contact_id
        ):
            owner = self._rep(notice.owner_id)
            manager = self._config.manager_of(owner)
            contact = await self._contact(notice.contact_id)
            _, recorded = await insert_once(
                self._sessions,
                SlaBreach(
                    idempotency_key=notice.idempotency_key,
                    contact_id=notice.contact_id,
                    owner_id=owner.id,
                    sla=notice.sla,
                    due_at=notice.due_at,
                    breached_at=info.scheduled_time,
                ),
            )
            if recorded:
                log.warning("sla breached", sla=notice.sla, owner_id=owner.id)
                activity.metric_meter().create_counter(
                    SLA_BREACHES_METRIC, description="SLA breaches recorded", unit="1"
                ).add(1, {"sla": str(notice.sla)})
            sla = _SLA_NAMES[notice.sla]
            breach = f"{sla} SLA was due {_when(notice.due_at)}; owner {owner.name} ({owner.id})"
            task, _ = await open_crm_task(
                self._sessions,
                CrmTaskRequest(
                    idempotency_key=f"{notice.idempotency_key}/task",
                    contact_id=notice.contact_id,
                    kind=CrmTaskKind.SLA_ESCALATION,
                    assignee_role=AssigneeRole.SALES_MANAGER,
                    assignee_id=manager.id,
                    title=f"{sla} SLA breached: {_who(contact)}",
                    details=f"{_contact_line(contact)}\n{breach}",
                    due_at=info.scheduled_time,
                    priority=TaskPriority.HIGH,
                ),
                now=info.current_attempt_scheduled_time,
            )
            await self._notify(
                manager,
                key=notice.idempotency_key,
                kind="sla_escalation",
                contact_id=notice.contact_id,
                title=f"{sla} SLA breached by {owner.name}: {_who(contact)}",
                lines=[_contact_line(contact), breach, _task_line(task)],
            )

    @activity.defn(name="alert_account_owner")
    async def alert_account_owner(self, alert: AccountAlert) -> CrmTaskResult:
        """Open a task for the contact's owner and notify them, with the journey's context and
        the contact's last actions; once per key.

        A contact without an owner (or whose owner left the configuration) goes
        to the customer-success queue of `sales.toml`.

        Returns:
            The task, and whether this call opened it.
        """
        info = activity.info()
        with bound_contextvars(idempotency_key=alert.idempotency_key, contact_id=alert.contact_id):
            lead = await self._lead(alert.contact_id)
            owner = self._config.rep(lead.contact.owner_id) if lead.contact.owner_id else None
            assignee = owner or self._config.customer_success
            title = provider_text(f"{alert.title}: {_who(lead.contact)}", 200)
            details = [
                _contact_line(lead.contact),
                *alert.lines,
                "Last actions:" if lead.recent else "Last actions: none recorded",
                *(f"• {event.type} · {_when(event.occurred_at)}" for event in lead.recent),
            ]
            task, created = await open_crm_task(
                self._sessions,
                CrmTaskRequest(
                    idempotency_key=f"{alert.idempotency_key}/task",
                    contact_id=alert.contact_id,
                    kind=alert.kind,
                    assignee_role=AssigneeRole.ACCOUNT_OWNER
                    if owner
                    else AssigneeRole.CUSTOMER_SUCCESS,
                    assignee_id=assignee.id,
                    title=title,
                    details=_clip("\n".join(details), 2000),
                    due_at=alert.due_at,
                    priority=alert.priority,
                ),
                now=info.current_attempt_scheduled_time,
            )
            await self._notify(
                assignee,
                key=alert.idempotency_key,
                kind="account_alert",
                contact_id=alert.contact_id,
                title=title,
                lines=[*details, _task_line(task)],
            )
            log.info("account alert", assignee_id=assignee.id, task_id=task.id, kind=alert.kind)
            return CrmTaskResult(task_id=row_id(task), created=created)

    def _rep(self, rep_id: str | None) -> Rep:
        rep = self._config.rep(rep_id) if rep_id else None
        if rep is None:
            raise ApplicationError(
                f"rep {rep_id!r} is not in the sales configuration",
                type="UnknownRep",
                non_retryable=True,
            )
        return rep

    async def _contact(self, contact_id: str) -> Contact:
        async with self._sessions() as session:
            contact = await session.get(Contact, contact_id)
        if contact is None:
            raise contact_not_found(contact_id)
        return contact

    async def _lead(self, contact_id: str) -> _Lead:
        """The contact, its last actions and the UTM parameters of its latest tagged event."""
        contact = await self._contact(contact_id)
        recent: list[ContactEvent] = []
        utm: dict[str, str] | None = None
        newest_first = (
            select(ContactEvent)
            .where(ContactEvent.contact_id == contact_id)
            .order_by(col(ContactEvent.occurred_at).desc(), col(ContactEvent.id).desc())
        )
        async with self._sessions() as session:
            events = await session.stream_scalars(newest_first)
            try:
                async for event in events:
                    if len(recent) < RECENT_ACTIONS:
                        recent.append(event)
                    if utm is None and any(name.startswith("utm_") for name in event.properties):
                        utm = _utm(event.properties)
                    if utm is not None and len(recent) == RECENT_ACTIONS:
                        break
            finally:
                await events.close()
        return _Lead(contact=contact, recent=recent, utm=utm or {})

    async def _assign_owner(self, contact_id: str, *, key: str, band: LeadBand) -> Rep:
        """The current owner while the ownership lock lasts, else the next candidate in turn;
        the contact moves to the `mql` pipeline stage in the same transaction (`{key}/mql`).

        The next in turn is the candidate assigned least recently; candidates
        never assigned come first, ties go in configured order.
        """
        now = activity.info().current_attempt_scheduled_time
        lock = timedelta(days=self._config.sla.ownership_days)
        async with self._sessions() as session:
            contact = await locked_contact(session, contact_id)  # the MQL move retags it
            current = self._config.rep(contact.owner_id) if contact.owner_id else None
            assigned_at = contact.owner_assigned_at
            await record_transition(
                session,
                contact,
                PipelineStage.MQL,
                cause=f"hand-off ({band.band}, score {band.score})",
                at=now,
                key=f"{key}/mql",
            )
            if current is not None and assigned_at is not None and now - assigned_at < lock:
                await session.commit()
                log.info("owner kept", owner_id=current.id, assigned_at=assigned_at.isoformat())
                return current
            candidates = self._config.candidates(contact.attributes)
            rows = await session.exec(
                select(RepAssignment)
                .where(col(RepAssignment.rep_id).in_([rep.id for rep in candidates]))
                .with_for_update()
            )
            assignments = {row.rep_id: row for row in rows.all()}
            owner = min(candidates, key=lambda rep: _last_assigned(assignments.get(rep.id)))
            assignment = assignments.get(owner.id) or RepAssignment(rep_id=owner.id)
            assignment.assigned_count += 1
            assignment.last_assigned_at = now
            contact.owner_id = owner.id
            contact.owner_assigned_at = now
            contact.updated_at = now
            session.add_all([assignment, contact])
            await session.commit()
        log.info("owner assigned", owner_id=owner.id, candidates=[rep.id for rep in candidates])
        return owner

    async def _open_follow_up(
        self, key: str, lead: _Lead, band: LeadBand, owner: Rep
    ) -> tuple[CrmTask, bool]:
        """Open the owner's task for the band (`{key}/task`), due from the activity's scheduling."""
        info = activity.info()
        follow_up = _follow_up(band, self._config.sla)
        return await open_crm_task(
            self._sessions,
            CrmTaskRequest(
                idempotency_key=f"{key}/task",
                contact_id=lead.contact.id,
                kind=follow_up.kind,
                assignee_role=AssigneeRole.SALES_REP,
                assignee_id=owner.id,
                title=follow_up.title,
                details=_clip("\n".join(_lead_lines(lead, band)), 2000),
                due_at=info.scheduled_time + follow_up.due_in,
                priority=follow_up.priority,
            ),
            now=info.current_attempt_scheduled_time,
        )

    async def _open_checklist(self, key: str, lead: _Lead, owner: Rep) -> tuple[CrmTask, bool]:
        """Open the owner's BANT/CHAMP checklist task (`{key}/checklist`), due with the
        qualification SLA."""
        info = activity.info()
        return await open_crm_task(
            self._sessions,
            CrmTaskRequest(
                idempotency_key=f"{key}/checklist",
                contact_id=lead.contact.id,
                kind=CrmTaskKind.LEAD_CHECKLIST,
                assignee_role=AssigneeRole.SALES_REP,
                assignee_id=owner.id,
                title=f"Qualification checklist (BANT/CHAMP): {_who(lead.contact)}",
                details="\n".join(
                    [_contact_line(lead.contact), *(f"{item}: ?" for item in CHECKLIST)]
                ),
                due_at=info.scheduled_time + self._config.sla.qualification,
                priority=TaskPriority.NORMAL,
            ),
            now=info.current_attempt_scheduled_time,
        )

    async def _notify(
        self,
        to: SalesPerson,
        *,
        key: str,
        kind: NotificationKind,
        contact_id: str,
        title: str,
        lines: Sequence[str],
        suffix: str = "notify",
    ) -> None:
        """Notify `to` once per key (`{key}/{suffix}`): row `pending`, notifier, row `sent`.

        A retry that finds the row pending sends what the row holds.

        Raises:
            ApplicationError: from the notifier's `DeliveryError`; the row is
                marked `failed` when the failure is permanent.
        """
        now = activity.info().current_attempt_scheduled_time
        row, _ = await insert_once(
            self._sessions,
            Notification(
                idempotency_key=f"{key}/{suffix}",
                contact_id=contact_id,
                recipient_id=to.id,
                kind=kind,
                title=provider_text(title, 200),
                text=_clip("\n".join(lines), 4000),
                status="pending",
                created_at=now,
            ),
        )
        if row.status == "sent":
            log.info("notification already sent", kind=kind, recipient_id=to.id)
            return
        notification = RepNotification(
            idempotency_key=row.idempotency_key,
            recipient_id=to.id,
            recipient=to.addressed,
            kind=kind,
            contact_id=contact_id,
            title=row.title,
            text=row.text,
        )
        try:
            await self._notifier.notify(notification)
        except DeliveryError as error:
            log.warning(
                "notification not delivered",
                kind=kind,
                recipient_id=to.id,
                permanent=error.permanent,
                error=str(error),
            )
            if error.permanent:
                await self._mark(row.idempotency_key, "failed", now=now)
            raise error.to_application_error() from error
        await self._mark(row.idempotency_key, "sent", now=now)
        log.info("notification sent", kind=kind, recipient_id=to.id, notifier=self._notifier.name)

    async def _mark(self, key: str, status: str, *, now: datetime) -> None:
        async with self._sessions() as session:
            await session.exec(
                update(Notification)
                .where(col(Notification.idempotency_key) == key)
                .values(
                    status=status,
                    provider=self._notifier.name,
                    sent_at=now if status == "sent" else None,
                )
            )
            await session.commit()


def _interaction(event: ContactEvent) -> bool:
    """Whether a stored event is an interaction: the contact's own act or a rep's."""
    if event.type in REP_INTERACTIONS:
        return True
    return is_contact_initiated(
        BehaviorEvent(
            event_id=event.event_id,
            contact_id=event.contact_id,
            type=event.type,
            occurred_at=event.occurred_at,
            properties=event.properties,
        )
    )


def _last_assigned(assignment: RepAssignment | None) -> datetime:
    if assignment is None or assignment.last_assigned_at is None:
        return _NEVER
    return assignment.last_assigned_at


def _utm(properties: Mapping[str, Any]) -> dict[str, str]:
    return {
        name: provider_text(str(properties[name]), 100)
        for name in UTM_FIELDS
        if properties.get(name) is not None
    }


def _who(contact: Contact) -> str:
    """First name and company, one line (never the email address)."""
    name = provider_text(contact.first_name or "", 60) or "Unnamed lead"
    company = provider_text(contact.company or "", 80)
    return f"{name} ({company})" if company else name


def _contact_line(contact: Contact) -> str:
    return f"Contact: {_who(contact)} · id {contact.id}"


def _lead_lines(lead: _Lead, band: LeadBand) -> list[str]:
    """Who the lead is, its score and breakdown, its last actions and its source."""
    breakdown = lead.contact.score_breakdown
    actions = sorted(
        ((name, points) for name, points in breakdown.items() if name != "fit"),
        key=lambda item: (-item[1], item[0]),
    )
    points = [f"{name} {value:+d}" for name, value in actions]
    if "fit" in breakdown:
        points.append(f"fit {breakdown['fit']:+d}")
    source = [f"{name}={value}" for name, value in lead.utm.items()]
    source += [tag for tag in lead.contact.tags if tag.startswith(SOURCE_TAG_PREFIX)]
    return [
        _contact_line(lead.contact),
        f"Score: {band.score} ({band.band})",
        f"Breakdown: {', '.join(points) or 'none'}",
        "Last actions:" if lead.recent else "Last actions: none recorded",
        *(f"• {event.type} · {_when(event.occurred_at)}" for event in lead.recent),
        f"Source: {', '.join(source) or 'unknown'}",
    ]


def _task_line(task: CrmTask) -> str:
    return f"Task #{task.id}: {task.title} ({task.priority}), due {_when(task.due_at)}"


def _when(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _duration(span: timedelta) -> str:
    seconds = span.total_seconds()
    if seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
