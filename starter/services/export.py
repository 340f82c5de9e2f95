"""Access requests (GDPR art. 15): everything held about a contact, as one JSON document.

`GET /v1/contacts/{id}/export` and `journeys export <id>` both call
`export_contact`. The document is built from `SECTIONS`, one small function
per section, each reading one kind of data from the database; a new kind of
data is one more function in that tuple.

What "score history" means here: the database keeps no past scores (the
contact workflow computes the score, with its decay, from the actions it
remembers). What it does keep is every event, so the history lists each
event that scored, with the points it earned when it happened under the
current `scoring.toml`; `score` gives the current score, band and breakdown
as the CRM holds them (decay included).

Erased contacts have nothing left to export: `Gone` (410). Unknown: `NotFound`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.db import session_factory
from models.journeys import JourneyState
from models.tables import (
    Contact,
    ContactEvent,
    CrmTask,
    JourneyRun,
    MessageLog,
    Notification,
    PipelineTransition,
    SlaBreach,
    Suppression,
    utc_now,
)
from rules.consent import consent_history
from rules.scoring import ScoringModel
from starter.services.deals import deal_records
from starter.services.operations import contact_in

if TYPE_CHECKING:  # the Temporal client loads only for a live export
    from temporalio.client import Client

Json = dict[str, Any]
LIVE_STATE_TIMEOUT = timedelta(seconds=5)
"""How long the export waits for a running journey to answer its `state` query."""

_CONSENT_FIELDS = {
    f"{channel}_consent{suffix}"
    for channel in ("email", "sms")
    for suffix in ("", "_at", "_source")
}


@dataclass(frozen=True)
class ExportContext:
    """What a section reads from: the open session, the contact, the scoring model."""

    session: AsyncSession
    contact: Contact
    scoring: ScoringModel


Section = Callable[[ExportContext], Awaitable[Any]]


def _rows(rows: list[Any], *, drop: set[str] | None = None) -> list[Json]:
    """Rows as JSON objects without their surrogate key and contact id (and `drop`)."""
    hidden = {"id", "contact_id", *(drop or set())}
    return [row.model_dump(mode="json", exclude=hidden) for row in rows]


async def _of_contact(context: ExportContext, table: type[SQLModel], order: Any) -> list[Any]:
    """The contact's rows of `table`, in `order`."""
    statement = select(table).where(col(table.contact_id) == context.contact.id)  # type: ignore[attr-defined]
    return list((await context.session.exec(statement.order_by(order))).all())


async def profile(context: ExportContext) -> Json:
    """The contact row: identity, time zone, tags, attributes, owner (consent apart)."""
    return context.contact.model_dump(
        mode="json",
        exclude=_CONSENT_FIELDS
        | {"lead_score", "fit_score", "behavior_score", "lifecycle_stage", "score_breakdown"},
    )


async def consent(context: ExportContext) -> Json:
    """Consent now, per channel: granted or withdrawn, where and when."""
    contact = context.contact
    return {
        channel: {
            "granted": getattr(contact, f"{channel}_consent"),
            "source": getattr(contact, f"{channel}_consent_source"),
            "at": _iso(getattr(contact, f"{channel}_consent_at")),
        }
        for channel in ("email", "sms")
    }


async def consent_changes(context: ExportContext) -> list[Json]:
    """The consent history: every opt-in and opt-out, when, from where, what was agreed to."""
    rows = await consent_history(context.session, context.contact.id)
    return _rows(rows, drop={"change_key"})


async def suppressions(context: ExportContext) -> list[Json]:
    """Channels the contact's addresses are suppressed on, why and since when (no hashes)."""
    rows = await _of_contact(context, Suppression, col(Suppression.created_at))
    return _rows(rows, drop={"address_hash", "scheme"})


async def events(context: ExportContext) -> list[Json]:
    """Every behaviour event stored for the contact, oldest first."""
    rows = await _of_contact(context, ContactEvent, col(ContactEvent.occurred_at))
    return _rows(rows, drop={"batch_key"})


async def messages(context: ExportContext) -> list[Json]:
    """Every message of the message log with its status, oldest first."""
    rows = await _of_contact(context, MessageLog, col(MessageLog.created_at))
    return _rows(rows, drop={"idempotency_key"})


async def tasks(context: ExportContext) -> list[Json]:
    """CRM tasks about the contact."""
    rows = await _of_contact(context, CrmTask, col(CrmTask.created_at))
    return _rows(rows, drop={"idempotency_key"})


async def notifications(context: ExportContext) -> list[Json]:
    """Notifications about the contact sent to the sales team."""
    rows = await _of_contact(context, Notification, col(Notification.created_at))
    return _rows(rows, drop={"idempotency_key"})


async def sla_breaches(context: ExportContext) -> list[Json]:
    """Hand-off SLAs that ran out for the contact."""
    rows = await _of_contact(context, SlaBreach, col(SlaBreach.breached_at))
    return _rows(rows, drop={"idempotency_key"})


async def pipeline(context: ExportContext) -> list[Json]:
    """The contact's pipeline stages, oldest first: stage, the one before, cause, time."""
    rows = await _of_contact(context, PipelineTransition, col(PipelineTransition.id))
    return _rows(rows, drop={"idempotency_key"})


async def deals(context: ExportContext) -> list[Json]:
    """The contact's deals, each with its changes (opened, moved, won, lost)."""
    return [
        {
            **record.deal.model_dump(mode="json", exclude={"contact_id"}),
            "changes": _rows(record.changes, drop={"deal_id", "event_id"}),
        }
        for record in await deal_records(context.session, context.contact.id)
    ]


async def score(context: ExportContext) -> Json:
    """The current score, band and breakdown, and the events that scored (module docstring)."""
    contact = context.contact
    model = context.scoring
    rows = await _of_contact(context, ContactEvent, col(ContactEvent.occurred_at))
    scored = [(row, model.rule_for(row.type, row.properties)) for row in rows]
    return {
        "current": {
            "score": contact.lead_score,
            "fit": contact.fit_score,
            "behavior": contact.behavior_score,
            "band": contact.lifecycle_stage,
            "breakdown": contact.score_breakdown,
        },
        "history": [
            {
                "event_id": row.event_id,
                "type": row.type,
                "occurred_at": _iso(row.occurred_at),
                "points": rule.points,
            }
            for row, rule in scored
            if rule is not None
        ],
    }


async def journeys(context: ExportContext) -> list[Json]:
    """Each journey run (journey-run log) with the message steps it took."""
    runs = await _of_contact(context, JourneyRun, col(JourneyRun.started_at))
    steps = await _of_contact(context, MessageLog, col(MessageLog.created_at))
    return [
        {
            **_rows([run], drop={"run_key"})[0],
            "steps": [
                {
                    "step": message.step,
                    "channel": message.channel,
                    "status": message.status,
                    "at": _iso(message.sent_at or message.updated_at),
                }
                for message in steps
                if message.idempotency_key.startswith(f"{run.workflow_id}/")
            ],
        }
        for run in runs
    ]


SECTIONS: tuple[tuple[str, Section], ...] = (
    ("profile", profile),
    ("consent", consent),
    ("consent_history", consent_changes),
    ("suppressions", suppressions),
    ("events", events),
    ("messages", messages),
    ("tasks", tasks),
    ("notifications", notifications),
    ("sla_breaches", sla_breaches),
    ("deals", deals),
    ("pipeline", pipeline),
    ("score", score),
    ("journeys", journeys),
)
"""The sections of an export, in order: (key, function reading it)."""


async def export_contact(
    engine: AsyncEngine, contact_id: str, *, scoring: ScoringModel, temporal: Client | None = None
) -> Json:
    """Everything held about the contact, as one JSON-ready document.

    Args:
        engine: The database.
        contact_id: The contact.
        scoring: The scoring model (for the points of the score history).
        temporal: When given, each running journey adds its live `state`.

    Raises:
        NotFound: no such contact.
        Gone: the contact was erased.
    """
    async with session_factory(engine)() as session:
        contact = await contact_in(session, contact_id)
        context = ExportContext(session=session, contact=contact, scoring=scoring)
        document: Json = {"contact_id": contact_id, "exported_at": _iso(utc_now())}
        for key, section in SECTIONS:
            document[key] = await section(context)
    if temporal is not None:
        for run in document["journeys"]:
            if run["status"] in ("running", "paused"):
                run["live_state"] = await _live_state(temporal, run["workflow_id"])
    return document


async def _live_state(temporal: Client, workflow_id: str) -> Json | None:
    """The running journey's `state` query, or None when it does not answer."""
    from temporalio.client import WorkflowQueryFailedError
    from temporalio.service import RPCError

    try:
        state = await temporal.get_workflow_handle(workflow_id).query(
            "state", result_type=JourneyState, rpc_timeout=LIVE_STATE_TIMEOUT
        )
    except (RPCError, WorkflowQueryFailedError):
        return None
    live: Json = state.model_dump(mode="json")
    return live


_TIME = TypeAdapter(datetime | None)


def _iso(value: datetime | None) -> str | None:
    """A time as the rows' JSON has it (`…Z`)."""
    iso: str | None = _TIME.dump_python(value, mode="json")
    return iso
