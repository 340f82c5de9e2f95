"""Record a contact's move to a pipeline stage (seed 002: lead → MQL → SQL → opportunity…).

`record_transition` is called by whatever moves the contact (a new contact, the
hand-off, a qualification, a deal, a recycling, a churn risk), inside that
writer's own session and transaction, so the stage and the work that caused it
are committed together.

The tag `stage_recycled` follows the stage: a lead gets it when it is recycled,
and loses it when it moves on (MQL again, SQL, customer…). A writer that may move a recycled
lead takes the contact's lock first (`models.db.lock_contact`), as tag writers do.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.pipeline import PipelineStage
from models.recycling import RECYCLED_TAG
from models.tables import Contact, PipelineTransition

SOURCE_TAG_PREFIX = "src_"
"""Tags naming where a contact came from (seed 000's convention), e.g. `src_webinar_q4`."""


def source_tags(tags: Iterable[str]) -> list[str]:
    """The contact's `src_` tags, in the order given."""
    return [tag for tag in tags if tag.startswith(SOURCE_TAG_PREFIX)]


async def record_transition(
    session: AsyncSession,
    contact: Contact,
    stage: PipelineStage,
    *,
    cause: str,
    at: datetime,
    key: str,
) -> bool:
    """Move `contact` to `stage` and store the transition, once per `key` (not committed).

    Args:
        session: The caller's session; the caller commits.
        contact: The contact (loaded in `session`); its `pipeline_stage` is updated.
        stage: The stage it moves to.
        cause: What moved it, e.g. `lead_qualified` or `hand-off (MQL, score 74)`.
        at: When (timezone-aware).
        key: Idempotency key, e.g. `{workflow_id}/handoff/stage`; a retry with the
            same key records nothing.

    Returns:
        Whether this call recorded the transition.
    """
    existing = await session.exec(
        select(PipelineTransition.id).where(PipelineTransition.idempotency_key == key)
    )
    if existing.first() is not None:
        return False
    session.add(
        PipelineTransition(
            idempotency_key=key,
            contact_id=contact.id,
            stage=stage,
            previous_stage=contact.pipeline_stage,
            cause=cause[:200],
            occurred_at=at,
        )
    )
    contact.pipeline_stage = stage
    contact.tags = _stage_tags(contact.tags, stage)
    session.add(contact)
    return True


def _stage_tags(tags: list[str], stage: PipelineStage) -> list[str]:
    """The contact's tags with `stage_recycled` while (and only while) it is recycled."""
    others = [tag for tag in tags if tag != RECYCLED_TAG]
    return sorted([*others, RECYCLED_TAG]) if stage == PipelineStage.RECYCLED else others
