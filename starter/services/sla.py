"""SLA violations per rep (seed 002, "SLA预警_04": record the number of SLA violations).

Every breached hand-off SLA is a row of `sla_breaches` with its owner and its
SLA (`first_touch`, `qualification`, `sql_follow_up`), written once by the
lead-sla journey's escalation. `sla_violations_by_rep` counts them per rep and
per SLA over a period (by when the SLA was breached); `journeys sla violations`,
`GET /v1/sla/violations` and the report show the figures.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

from pydantic import BaseModel
from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from models.handoff import SlaKind
from models.tables import SlaBreach


class RepViolations(BaseModel):
    """One rep's SLA violations in the period.

    Attributes:
        owner_id: The rep (the lead's owner when the SLA was breached).
        total: Violations of every SLA.
        by_sla: Violations per SLA, every SLA listed (0 when none).
    """

    owner_id: str
    total: int
    by_sla: dict[SlaKind, int]


class SlaViolations(BaseModel):
    """SLA violations per rep over a period, most violations first (then by rep id).

    Attributes:
        since: Breaches from then on (none: from the start).
        until: Breaches before then (none: up to now).
        total: Every violation in the period.
        reps: Per rep with at least one violation.
    """

    since: datetime | None
    until: datetime | None
    total: int
    reps: list[RepViolations]


async def sla_violations_by_rep(
    engine: AsyncEngine, since: datetime | None = None, until: datetime | None = None
) -> SlaViolations:
    """Count the SLA breaches per rep and per SLA, breached in `[since, until)`.

    Args:
        engine: The database.
        since: Only breaches from then on (a naive time is UTC).
        until: Only breaches before then (a naive time is UTC).

    Returns:
        The counts, most violations first.
    """
    since, until = _utc(since), _utc(until)
    statement = select(SlaBreach.owner_id, SlaBreach.sla, func.count()).group_by(
        col(SlaBreach.owner_id), col(SlaBreach.sla)
    )
    if since is not None:
        statement = statement.where(col(SlaBreach.breached_at) >= since)
    if until is not None:
        statement = statement.where(col(SlaBreach.breached_at) < until)
    counts: dict[str, dict[SlaKind, int]] = defaultdict(lambda: dict.fromkeys(SlaKind, 0))
    async with engine.connect() as connection:
        for owner_id, sla, count in (await connection.execute(statement)).all():
            counts[owner_id][SlaKind(sla)] += count
    reps = sorted(
        (
            RepViolations(owner_id=owner, total=sum(by_sla.values()), by_sla=by_sla)
            for owner, by_sla in counts.items()
        ),
        key=lambda rep: (-rep.total, rep.owner_id),
    )
    return SlaViolations(since=since, until=until, total=sum(rep.total for rep in reps), reps=reps)


def _utc(moment: datetime | None) -> datetime | None:
    """`moment` in UTC; a naive one is taken as UTC, as the report's `--since` is."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def render_table(violations: SlaViolations) -> str:
    """The counts as an aligned plain-text table, one line per rep and a total line."""
    header = ["rep", *(str(kind) for kind in SlaKind), "total"]
    rows = [
        [rep.owner_id, *(str(rep.by_sla[kind]) for kind in SlaKind), str(rep.total)]
        for rep in violations.reps
    ]
    totals = [sum(rep.by_sla[kind] for rep in violations.reps) for kind in SlaKind]
    rows.append(["all reps", *(str(total) for total in totals), str(violations.total)])
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    )
