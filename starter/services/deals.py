"""Reading deals (`GET /v1/contacts/{id}/deals`, `journeys deals`): each with its history."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.db import session_factory
from models.deals import DealStatus
from models.tables import Deal, DealStageChange
from rules.deals import open_deal
from starter.services.operations import contact_in


@dataclass(frozen=True)
class DealRecord:
    """A deal and its changes, oldest first."""

    deal: Deal
    changes: list[DealStageChange]


async def contact_deals(engine: AsyncEngine, contact_id: str) -> list[DealRecord]:
    """The contact's deals, oldest first, each with its history.

    Raises:
        NotFound: no such contact.
        Gone: the contact was erased.
    """
    async with session_factory(engine)() as session:
        await contact_in(session, contact_id)
        return await deal_records(session, contact_id)


async def deal_records(session: AsyncSession, contact_id: str) -> list[DealRecord]:
    """The contact's deals, oldest first, each with its history (read in `session`)."""
    return await _records(session, col(Deal.contact_id) == contact_id)


async def list_deals(
    engine: AsyncEngine, *, contact_id: str | None = None, status: DealStatus | None = None
) -> list[DealRecord]:
    """Every deal (of one contact, with one status), oldest first, each with its history."""
    conditions: list[ColumnElement[bool]] = []
    if contact_id is not None:
        conditions.append(col(Deal.contact_id) == contact_id)
    if status is not None:
        conditions.append(col(Deal.status) == status)
    async with session_factory(engine)() as session:
        return await _records(session, *conditions)


async def contact_open_deal(engine: AsyncEngine, contact_id: str) -> DealRecord | None:
    """The contact's open deal with its history, if it has one."""
    async with session_factory(engine)() as session:
        deal = await open_deal(session, contact_id)
        if deal is None:
            return None
        [record] = await _records(session, col(Deal.id) == deal.id)
        return record


async def _records(session: AsyncSession, *conditions: ColumnElement[bool]) -> list[DealRecord]:
    deals = (await session.exec(select(Deal).where(*conditions).order_by(col(Deal.id)))).all()
    changes = await _changes(session, [deal.id for deal in deals if deal.id is not None])
    return [DealRecord(deal, changes.get(deal.id or 0, [])) for deal in deals]


async def _changes(
    session: AsyncSession, deal_ids: Sequence[int]
) -> dict[int, list[DealStageChange]]:
    rows = await session.exec(
        select(DealStageChange)
        .where(col(DealStageChange.deal_id).in_(deal_ids))
        .order_by(col(DealStageChange.occurred_at), col(DealStageChange.id))
    )
    by_deal: dict[int, list[DealStageChange]] = {}
    for row in rows.all():
        by_deal.setdefault(row.deal_id, []).append(row)
    return by_deal
