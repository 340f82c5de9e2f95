"""The send activity: policy checks, message log, idempotent delivery."""

from __future__ import annotations

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from structlog.contextvars import bound_contextvars
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.email_providers import EmailProvider, OutgoingEmail
from activities.templates import TemplateCatalog, TemplateError
from models.db import session_factory
from models.messages import DeliveryStatus, SendRequest, SendResult
from models.tables import Contact, MessageLog, utc_now

log = structlog.stdlib.get_logger(__name__)


class MessagingActivities:
    """Activities that send messages to contacts.

    Built once in the worker with the database engine, the template catalogue
    and the configured provider.
    """

    def __init__(
        self, *, engine: AsyncEngine, templates: TemplateCatalog, email_provider: EmailProvider
    ) -> None:
        """Hold the shared resources the activities use."""
        self._sessions = session_factory(engine)
        self._templates = templates
        self._email = email_provider

    @activity.defn(name="send_email")
    async def send_email(self, request: SendRequest) -> SendResult:
        """Send one templated email to a contact, at most once per idempotency key.

        The contact is loaded and checked right before delivery (address and
        email consent). The message-log row is written as `pending` before the
        provider is called; a retry finds it and the provider, idempotent on
        the same key, does not deliver a second copy.

        Raises:
            ApplicationError: non-retryable when the contact or template does not exist.
        """
        with bound_contextvars(
            idempotency_key=request.idempotency_key, contact_id=request.contact_id
        ):
            recorded = await self._find(request.idempotency_key)
            if recorded is not None and recorded.status != DeliveryStatus.PENDING:
                log.info("send already recorded", status=recorded.status)
                return _result(recorded)

            async with self._sessions() as session:
                contact = await session.get(Contact, request.contact_id)
            if contact is None:
                raise ApplicationError(
                    f"contact {request.contact_id!r} does not exist",
                    type="ContactNotFound",
                    non_retryable=True,
                )
            if not contact.email:
                return await self._record_final(
                    request, recorded, DeliveryStatus.SKIPPED_NO_ADDRESS, "contact has no email"
                )
            if not contact.email_consent:
                return await self._record_final(
                    request, recorded, DeliveryStatus.SKIPPED_NO_CONSENT, "no email consent"
                )

            try:
                rendered = self._templates.render_email(
                    request.template,
                    {"first_name": contact.first_name, "company": contact.company},
                )
            except TemplateError as error:
                raise ApplicationError(
                    str(error), type="TemplateError", non_retryable=True
                ) from error

            brand = self._templates.brand
            email = OutgoingEmail(
                idempotency_key=request.idempotency_key,
                to_address=contact.email,
                from_name=f"{brand['sender_name']} from {brand['name']}",
                from_address=brand["sender_email"],
                reply_to=brand["reply_to"],
                subject=rendered.subject,
                text=rendered.text,
                html=rendered.html,
                created_at=activity.info().current_attempt_scheduled_time,
                headers={"X-Journey": request.journey, "X-Journey-Step": request.step},
            )
            if recorded is None:
                recorded = await self._insert_pending(request, rendered.subject)
            message_id = await self._email.deliver(email)
            sent = await self._update(
                recorded.idempotency_key,
                status=DeliveryStatus.SENT,
                provider=self._email.name,
                provider_message_id=message_id,
                sent=True,
            )
            log.info("email sent", journey=request.journey, step=request.step)
            return _result(sent)

    async def _find(self, key: str) -> MessageLog | None:
        async with self._sessions() as session:
            rows = await session.exec(select(MessageLog).where(MessageLog.idempotency_key == key))
            return rows.first()

    async def _insert_pending(self, request: SendRequest, subject: str | None) -> MessageLog:
        row = MessageLog(
            idempotency_key=request.idempotency_key,
            contact_id=request.contact_id,
            journey=request.journey,
            step=request.step,
            channel=request.channel,
            template=request.template,
            subject=subject,
            status=DeliveryStatus.PENDING,
        )
        async with self._sessions() as session:
            session.add(row)
            try:
                await session.commit()
            except IntegrityError:
                await session.rollback()
                existing = await self._find(request.idempotency_key)
                if existing is None:
                    raise
                return existing
        return row

    async def _record_final(
        self,
        request: SendRequest,
        recorded: MessageLog | None,
        status: DeliveryStatus,
        reason: str,
    ) -> SendResult:
        if recorded is None:
            recorded = await self._insert_pending(request, subject=None)
        row = await self._update(recorded.idempotency_key, status=status, reason=reason)
        log.info("send skipped", status=status, reason=reason)
        return _result(row)

    async def _update(
        self,
        key: str,
        *,
        status: DeliveryStatus,
        reason: str | None = None,
        provider: str | None = None,
        provider_message_id: str | None = None,
        sent: bool = False,
    ) -> MessageLog:
        async with self._sessions() as session:
            row = (
                await session.exec(select(MessageLog).where(MessageLog.idempotency_key == key))
            ).one()
            now = utc_now()
            row.status = status
            row.status_reason = reason
            row.provider = provider
            row.provider_message_id = provider_message_id
            row.updated_at = now
            if sent:
                row.sent_at = now
            session.add(row)
            await session.commit()
            return row


def _result(row: MessageLog) -> SendResult:
    return SendResult(
        status=DeliveryStatus(row.status),
        idempotency_key=row.idempotency_key,
        provider_message_id=row.provider_message_id,
        reason=row.status_reason,
    )
