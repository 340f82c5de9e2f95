"""Erasure tombstones: an erased contact id stays erased, whoever asks."""

from __future__ import annotations

from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from models.tables import ErasedContact


async def erased_at(session: AsyncSession, contact_id: str) -> datetime | None:
    """When the contact was erased (its tombstone), or None."""
    tombstone = await session.get(ErasedContact, contact_id)
    return tombstone.erased_at if tombstone is not None else None
