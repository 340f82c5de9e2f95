"""Onboarding activities: the configuration and the contact's adoption, read when a journey starts.

The onboarding journey never reads a file or the database itself: it asks
`onboarding_start` once, at its start, for the key features (`onboarding.toml`,
loaded by the worker) and for those the contact already uses — recorded as
`act_adopted_<feature>` tags, or named by a `feature_used` event stored before
the journey started (during a trial, or in the same batch as the purchase).
"""

from __future__ import annotations

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from structlog.contextvars import bound_contextvars
from temporalio import activity

from activities.crm import contact_not_found
from models.db import session_factory
from models.onboarding import OnboardingStart
from models.tables import Contact, ContactEvent
from rules.onboarding import FEATURE_USED, OnboardingConfig, adopted_in_tags, used_feature

log = structlog.stdlib.get_logger(__name__)


class OnboardingActivities:
    """Activities of the onboarding journey; built once in the worker."""

    def __init__(self, *, engine: AsyncEngine, config: OnboardingConfig) -> None:
        """Hold the database engine and the onboarding configuration."""
        self._sessions = session_factory(engine)
        self._config = config

    @activity.defn(name="onboarding_start")
    async def onboarding_start(self, contact_id: str) -> OnboardingStart:
        """The key features, and those the contact already adopted (tags and stored events).

        Raises:
            ApplicationError: non-retryable `ContactNotFound` when the contact
                does not exist.
        """
        with bound_contextvars(contact_id=contact_id):
            async with self._sessions() as session:
                contact = await session.get(Contact, contact_id)
                if contact is None:
                    raise contact_not_found(contact_id)
                used = await session.exec(
                    select(ContactEvent.properties).where(
                        col(ContactEvent.contact_id) == contact_id,
                        col(ContactEvent.type) == FEATURE_USED,
                    )
                )
                adopted = adopted_in_tags(contact.tags)
                adopted |= {
                    feature
                    for properties in used.all()
                    if (feature := used_feature(FEATURE_USED, properties)) is not None
                }
            start = self._config.start(adopted)
            log.info("onboarding starts", adopted=start.adopted)
            return start
