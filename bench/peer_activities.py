"""The peer baseline's activities: plain functions, as `temporalio/samples-python` writes them.

`send_welcome_email` does, per email, the side effects the product's send
activity does, through the product's own parts (public interfaces only):

1. load the contact (`models.tables.Contact`) and check its address and
   email consent (the consent the product's send activity requires of a
   marketing email; an opt-out withdraws it);
2. render the welcome series' Liquid template with the product's renderer
   (`rules.templates.TemplateCatalog.render_email`), links tagged with UTM and
   a signed unsubscribe link (`rules.unsubscribe.sign_unsubscribe_token`);
3. write the message through the outbox provider
   (`activities.providers.outbox.OutboxEmailProvider.deliver`);
4. insert its `message_log` row, `sent` (`models.tables.MessageLog`).

What it does not do is the product's policy: no suppression list, quiet hours,
frequency caps, deferral or run log. `route_contact` reads the contact as the
welcome series' route step does (`lead_status`) and starts nothing.

The settings (database, outbox folder, templates, unsubscribe secret) are the
product's, read from the environment once per process (`resources`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.providers.messages import OutgoingEmail
from activities.providers.outbox import OutboxEmailProvider
from models.db import create_engine, session_factory
from models.messages import DeliveryStatus
from models.settings import Settings
from models.tables import Contact, MessageLog
from rules.templates import ContactFields, LinkContext, TemplateCatalog
from rules.unsubscribe import sign_unsubscribe_token

PEER_JOURNEY = "peer-welcome-series"
"""The peer's journey name in the message log (and its workflow type)."""
TEMPLATES = "welcome-series"
"""The product's welcome-series templates, which the peer renders too."""
ACTIVITY_TIMEOUT = timedelta(seconds=30)


@dataclass(frozen=True)
class PeerEmail:
    """One welcome email to send.

    Attributes:
        workflow_id: The sending workflow (with `step`, the message's idempotency key).
        contact_id: Whom to.
        step: `day0` … `day7`; the template is `welcome-series/<step>`.
    """

    workflow_id: str
    contact_id: str
    step: str


@dataclass(frozen=True)
class Resources:
    """What the activities share in a worker process."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    templates: TemplateCatalog
    outbox: OutboxEmailProvider


@cache
def resources() -> Resources:
    """The process's settings, database, templates and outbox (built on first use)."""
    settings = Settings()
    engine = create_engine(settings.database_url)
    return Resources(
        settings,
        engine,
        session_factory(engine),
        TemplateCatalog(settings.templates_dir),
        OutboxEmailProvider(settings.outbox_dir),
    )


def _links(shared: Resources, contact_id: str, step: str, now: datetime) -> LinkContext:
    settings = shared.settings
    token = sign_unsubscribe_token(
        contact_id, "email", secret=settings.unsubscribe_secret.get_secret_value(), issued_at=now
    )
    return LinkContext(
        utm={
            "utm_source": "journeys",
            "utm_medium": "email",
            "utm_campaign": PEER_JOURNEY,
            "utm_content": step,
        },
        unsubscribe_url=f"{settings.public_base_url.rstrip('/')}/u/{token}",
    )


@activity.defn
async def send_welcome_email(email: PeerEmail) -> str:
    """Send one welcome email if the contact consents; returns `sent` or why not.

    Raises:
        ApplicationError: non-retryable when the contact does not exist.
    """
    shared = resources()
    now = datetime.now(UTC)
    key = f"{email.workflow_id}/{email.step}"
    async with shared.sessions() as session:
        contact = await session.get(Contact, email.contact_id)
        if contact is None:
            raise ApplicationError("no such contact", type="ContactNotFound", non_retryable=True)
        if not contact.email or not contact.email_consent:
            return "no consent"
        links = _links(shared, contact.id, email.step, now)
        rendered = shared.templates.render_email(
            f"{TEMPLATES}/{email.step}",
            ContactFields(
                first_name=contact.first_name, company=contact.company, tags=contact.tags
            ),
            links,
        )
        brand = shared.templates.brand
        message_id = await shared.outbox.deliver(
            OutgoingEmail(
                idempotency_key=key,
                to_address=contact.email,
                from_name=f"{brand['sender_name']} from {brand['name']}",
                from_address=brand["sender_email"],
                reply_to=brand["reply_to"],
                subject=rendered.subject,
                text=rendered.text,
                html=rendered.html,
                created_at=now,
                headers={"List-Unsubscribe": f"<{links.unsubscribe_url}>"},
            )
        )
        session.add(
            MessageLog(
                idempotency_key=key,
                contact_id=contact.id,
                journey=PEER_JOURNEY,
                step=email.step,
                channel="email",
                template=f"{TEMPLATES}/{email.step}",
                subject=rendered.subject,
                status=DeliveryStatus.SENT,
                provider=shared.outbox.name,
                provider_message_id=message_id,
                sent_at=now,
            )
        )
        try:
            await session.commit()
        except IntegrityError:  # a retry after the row was written: sent already
            await session.rollback()
    return "sent"


@activity.defn
async def route_contact(contact_id: str) -> bool:
    """Whether the contact is already with sales (the CRM's owner), as the route step reads it."""
    async with resources().sessions() as session:
        contact = await session.get(Contact, contact_id)
    return contact is not None and contact.owner_id is not None
