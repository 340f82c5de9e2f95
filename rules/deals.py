"""Deals (seed 002, step 5): the deal events, applied as the contact workflow's ingest stores them.

| event                | what it does                                                       |
|----------------------|--------------------------------------------------------------------|
| `lead_qualified`     | opens a deal (amount, stage, use case, competitors; the contact's   |
|                      | owner) unless one is open; the contact becomes `sql` (and           |
|                      | `opportunity` if the deal starts at or past the opportunity stage) |
| `deal_stage_changed` | moves the deal (`deal_id`, default the open one) to a configured   |
|                      | stage; at or past `opportunity_stage` the contact becomes           |
|                      | `opportunity`, once per deal                                        |
| `deal_won`           | closes it won: the contact becomes `customer`, is tagged            |
|                      | `stage_customer`, and a `purchased` event is derived (onboarding)  |
| `deal_lost`          | closes it lost, with its `reason`                                   |
| `purchased`          | the contact becomes `customer`, unless it is one already            |

Each deal event that changes a deal writes a `DealStageChange` row keyed by the
event id, and every pipeline move is keyed by the event (or the deal), so a
retried ingest or a redelivered event changes nothing twice; the derived
`purchased` gets an id made from the `deal_won`'s (`derived_event_id`), and a
retry returns the stored one. An event that names no open deal of the contact
(or an unknown stage) changes nothing and is logged; so are the deal events of
a contact that does not exist (yet). The stages are configured in `deals.toml`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Self

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.deals import (
    DEAL_LOST,
    DEAL_STAGE_CHANGED,
    DEAL_WON,
    LEAD_QUALIFIED,
    STAGE_CUSTOMER_TAG,
    DealLostProperties,
    DealStageChangedProperties,
    DealStatus,
    DealWonProperties,
    LeadQualifiedProperties,
    StageName,
    plain_amount,
)
from models.events import BehaviorEvent
from models.pipeline import PipelineStage
from models.tables import Contact, ContactEvent, Deal, DealStageChange
from models.toml_files import load_toml
from rules.pipeline import record_transition
from rules.usage import derived_event_id

log = structlog.stdlib.get_logger(__name__)

PURCHASED = "purchased"
"""Derived from `deal_won`: what starts onboarding."""


class DealConfig(BaseModel):
    """The deal stages, in order, and the one that makes the contact an opportunity (`deals.toml`).

    Attributes:
        stages: The stages a deal moves through, in order; a new deal starts at the first.
        opportunity_stage: A deal at this stage or a later one makes its contact an
            `opportunity`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    stages: list[StageName] = Field(
        default=["qualification", "demo", "proposal", "negotiation"], min_length=1
    )
    opportunity_stage: StageName = "demo"

    @model_validator(mode="after")
    def _check_stages(self) -> Self:
        if len(set(self.stages)) != len(self.stages):
            raise ValueError("stages: each stage once")
        if self.opportunity_stage not in self.stages:
            raise ValueError(f"opportunity_stage {self.opportunity_stage!r} is not in stages")
        return self

    @classmethod
    def load(cls, path: str | Path) -> DealConfig:
        """Read the configuration from a TOML file.

        Raises:
            OSError: The file cannot be read.
            ValueError: Not valid TOML or not a valid configuration; the message names the file.
        """
        return load_toml(cls, path, "deal configuration")

    def is_opportunity(self, stage: str) -> bool:
        """Whether a deal at `stage` (a configured one) makes its contact an opportunity."""
        return self.stages.index(stage) >= self.stages.index(self.opportunity_stage)


async def apply_deal_events(
    session: AsyncSession,
    contact: Contact | None,
    events: Sequence[BehaviorEvent],
    *,
    config: DealConfig,
    batch_key: str,
) -> list[BehaviorEvent]:
    """Apply the newly stored deal events and `purchased` (see the module's table), in order.

    Args:
        session: The ingest's session; changes are added to it (not committed).
        contact: The contact (None: it does not exist; nothing is applied).
        events: The accepted events of a batch (other types are skipped).
        config: The deal stages.
        batch_key: The ingest's batch, written on derived rows.

    Returns:
        The events derived (a `purchased` per won deal), stored in `session`.
    """
    relevant = [event for event in events if event.type in APPLIED]
    if contact is None:
        if relevant:
            log.warning("deal events of a contact that does not exist: nothing applied")
        return []
    deals = _Deals(session, contact, config=config, batch_key=batch_key)
    derived = [await deals.apply(event) for event in relevant]
    return [event for event in derived if event is not None]


async def open_deal(session: AsyncSession, contact_id: str) -> Deal | None:
    """The contact's open deal, if any (the latest, should there be several)."""
    rows = await session.exec(
        select(Deal)
        .where(Deal.contact_id == contact_id, Deal.status == DealStatus.OPEN)
        .order_by(col(Deal.id).desc())
    )
    return rows.first()


_MODELS: dict[str, type[BaseModel]] = {
    LEAD_QUALIFIED: LeadQualifiedProperties,
    DEAL_STAGE_CHANGED: DealStageChangedProperties,
    DEAL_WON: DealWonProperties,
    DEAL_LOST: DealLostProperties,
}
"""The deal events and their properties."""
APPLIED = frozenset({*_MODELS, PURCHASED})
"""The event types this module applies."""
CUSTOMERS = frozenset({PipelineStage.CUSTOMER, PipelineStage.CHURN_RISK})
"""Stages a deal's `sql` and `opportunity` do not move a contact back from (an upsell)."""


class _Deals:
    """Applies one contact's deal events inside the ingest's session."""

    def __init__(
        self, session: AsyncSession, contact: Contact, *, config: DealConfig, batch_key: str
    ) -> None:
        self._session, self._contact, self._config = session, contact, config
        self._batch_key = batch_key

    async def apply(self, event: BehaviorEvent) -> BehaviorEvent | None:
        """Apply one event, unless an earlier attempt did; returns what it derives."""
        if event.type == PURCHASED:
            await self._become_customer(event, cause=PURCHASED, key=event.event_id)
            return None
        if await self._applied(event):  # a retried batch: return what the first attempt derived
            won = event.type == DEAL_WON
            return await self._stored(derived_event_id(PURCHASED, event.event_id)) if won else None
        try:
            properties = _MODELS[event.type].model_validate(event.properties)
        except ValidationError:
            log.warning("deal event with invalid properties ignored", event_id=event.event_id)
            return None
        match properties:
            case LeadQualifiedProperties():
                await self._qualify(event, properties)
            case DealStageChangedProperties():
                await self._move(event, properties)
            case DealWonProperties():
                return await self._win(event, properties)
            case DealLostProperties():
                await self._lose(event, properties)
        return None

    async def _qualify(self, event: BehaviorEvent, properties: LeadQualifiedProperties) -> None:
        if await open_deal(self._session, self._contact.id) is not None:
            log.info("lead qualified with a deal open: no second deal", event_id=event.event_id)
            return
        stage = self._stage(properties.stage, event) or self._config.stages[0]
        deal = Deal(
            contact_id=self._contact.id,
            owner_id=self._contact.owner_id,
            amount=properties.amount,
            currency=properties.currency,
            stage=stage,
            use_case=properties.use_case,
            competitors=list(properties.competitors),
            created_at=event.occurred_at,
            updated_at=event.occurred_at,
        )
        self._session.add(deal)
        await self._session.flush()  # the deal's id
        self._changed(deal, event, from_stage=None)
        await self._transition(PipelineStage.SQL, event, deal, key=event.event_id)
        await self._reach_opportunity(deal, event)

    async def _move(self, event: BehaviorEvent, properties: DealStageChangedProperties) -> None:
        deal = await self._deal(properties.deal_id, event)
        stage = self._stage(properties.stage, event)
        if deal is None or stage is None:
            return
        from_stage, deal.stage, deal.updated_at = deal.stage, stage, event.occurred_at
        self._changed(deal, event, from_stage=from_stage)
        await self._reach_opportunity(deal, event)

    async def _win(
        self, event: BehaviorEvent, properties: DealWonProperties
    ) -> BehaviorEvent | None:
        deal = await self._deal(properties.deal_id, event)
        if deal is None:
            return None
        if properties.amount is not None:
            deal.amount, deal.currency = properties.amount, properties.currency
        self._close(deal, event, DealStatus.WON)
        await self._become_customer(
            event, cause=f"{event.type} (deal {deal.id})", key=f"deal-{deal.id}"
        )
        if STAGE_CUSTOMER_TAG not in self._contact.tags:
            self._contact.tags = sorted({*self._contact.tags, STAGE_CUSTOMER_TAG})
        return self._derive_purchase(deal, event)

    async def _lose(self, event: BehaviorEvent, properties: DealLostProperties) -> None:
        deal = await self._deal(properties.deal_id, event)
        if deal is not None:
            deal.lost_reason = properties.reason
            self._close(deal, event, DealStatus.LOST)

    # --- parts --------------------------------------------------------------------------

    async def _applied(self, event: BehaviorEvent) -> bool:
        """Whether the event changed a deal already (an earlier attempt of the batch)."""
        rows = await self._session.exec(
            select(DealStageChange.id).where(
                DealStageChange.contact_id == self._contact.id,
                DealStageChange.event_id == event.event_id,
            )
        )
        return rows.first() is not None

    async def _stored(self, event_id: str) -> BehaviorEvent | None:
        rows = await self._session.exec(
            select(ContactEvent).where(
                ContactEvent.contact_id == self._contact.id, ContactEvent.event_id == event_id
            )
        )
        row = rows.first()
        return row.behavior_event() if row is not None else None

    def _stage(self, stage: str | None, event: BehaviorEvent) -> str | None:
        """`stage` if configured; None (logged) otherwise."""
        if stage is not None and stage not in self._config.stages:
            log.warning(
                "not a configured deal stage: ignored", stage=stage, event_id=event.event_id
            )
            return None
        return stage

    async def _deal(self, deal_id: int | None, event: BehaviorEvent) -> Deal | None:
        """The open deal the event names (`deal_id`), or the contact's open deal; None, logged."""
        if deal_id is None:
            deal = await open_deal(self._session, self._contact.id)
        else:
            deal = await self._session.get(Deal, deal_id)
        if deal is None or deal.contact_id != self._contact.id or deal.status != DealStatus.OPEN:
            log.warning("no open deal for the event: ignored", event_id=event.event_id)
            return None
        return deal

    def _changed(self, deal: Deal, event: BehaviorEvent, *, from_stage: str | None) -> None:
        assert deal.id is not None, "flushed"
        self._session.add(deal)
        self._session.add(
            DealStageChange(
                deal_id=deal.id,
                contact_id=self._contact.id,
                event_id=event.event_id,
                event_type=event.type,
                from_stage=from_stage,
                to_stage=deal.stage,
                status=deal.status,
                occurred_at=event.occurred_at,
            )
        )

    def _close(self, deal: Deal, event: BehaviorEvent, status: DealStatus) -> None:
        deal.status, deal.closed_at, deal.updated_at = status, event.occurred_at, event.occurred_at
        self._changed(deal, event, from_stage=deal.stage)

    async def _reach_opportunity(self, deal: Deal, event: BehaviorEvent) -> None:
        if self._config.is_opportunity(deal.stage):
            await self._transition(PipelineStage.OPPORTUNITY, event, deal, key="opportunity")

    async def _transition(
        self, stage: PipelineStage, event: BehaviorEvent, deal: Deal, *, key: str
    ) -> None:
        """Record the contact's move to `sql` or `opportunity`, once per deal and `key`;
        not for a customer (`CUSTOMERS`)."""
        if self._contact.pipeline_stage in CUSTOMERS:
            return
        await record_transition(
            self._session,
            self._contact,
            stage,
            cause=f"{event.type} (deal {deal.id}, {deal.stage})",
            at=event.occurred_at,
            key=f"{self._contact.id}/deal-{deal.id}/{key}/{stage}",
        )

    async def _become_customer(self, event: BehaviorEvent, *, cause: str, key: str) -> None:
        """Record the move to `customer`, once per `key`, unless the contact is one already."""
        if self._contact.pipeline_stage == PipelineStage.CUSTOMER:
            return
        await record_transition(
            self._session,
            self._contact,
            PipelineStage.CUSTOMER,
            cause=cause,
            at=event.occurred_at,
            key=f"{self._contact.id}/{key}/customer",
        )

    def _derive_purchase(self, deal: Deal, won: BehaviorEvent) -> BehaviorEvent:
        properties: dict[str, object] = {"deal_id": deal.id, "source_event_id": won.event_id}
        if deal.amount is not None:
            properties |= {"amount": str(plain_amount(deal.amount)), "currency": deal.currency}
        row = ContactEvent(
            contact_id=self._contact.id,
            event_id=derived_event_id(PURCHASED, won.event_id),
            type=PURCHASED,
            occurred_at=won.occurred_at,
            properties=properties,
            batch_key=self._batch_key,
        )
        self._session.add(row)
        return row.behavior_event()
