"""Run the real `ingest_events` activity for one contact, as the contact workflow does."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import ActivityEnvironment

from activities.contacts import ContactActivities
from models.contact_workflow import IngestRequest, IngestResult
from models.db import session_factory
from models.events import BehaviorEvent
from models.settings import Settings
from models.tables import Contact
from rules.scoring import ScoringModel
from runtime.keys import key_store


class Ingest:
    """Calls `ingest_events` for `contact_id` on a database, one batch per call."""

    def __init__(
        self, engine: AsyncEngine, settings: Settings, contact_id: str, **options: Any
    ) -> None:
        """Build the activities as the worker does; `options` are further constructor
        arguments (e.g. `usage_rule`, `deal_config`)."""
        self.engine, self.contact_id = engine, contact_id
        self.activities = ContactActivities(
            engine=engine,
            scoring=ScoringModel.load(settings.scoring_file),
            outbox_dir=settings.outbox_dir,
            keys=key_store(settings, engine=engine),
            suppression_key=settings.suppression_key(),
            **options,
        )
        self.batches = 0

    async def __call__(self, *events: BehaviorEvent, batch_key: str | None = None) -> IngestResult:
        """Ingest `events` as one batch (`batch_key`: a retry of an earlier batch)."""
        self.batches += 1
        request = IngestRequest(
            batch_key=batch_key or f"run/{self.batches}",
            contact_id=self.contact_id,
            events=list(events),
        )
        result: IngestResult = await ActivityEnvironment().run(
            self.activities.ingest_events, request
        )
        return result

    async def contact(self) -> Contact:
        """The contact's row as it is now."""
        async with session_factory(self.engine)() as session:
            contact = await session.get(Contact, self.contact_id)
        assert contact is not None
        return contact
