"""The send activity: messaging policy, message log, idempotent delivery.

Right before delivery, against the database, in this order:

1. a final outcome already recorded for the idempotency key is returned as is;
2. the contact needs an address on the channel;
3. a suppressed address is never sent marketing (unsubscribed, SMS STOP, bounced,
   invalid, complained, erased), nor a service message unless the suppression is
   a marketing opt-out (`Suppression.stops_service_messages`); checked before
   consent, which an opt-out also withdraws, so the log says `suppressed`;
   marketing also needs the contact's consent on the channel;
   a sunset contact (tag `eng_sunset`: no response to re-engagement) gets no
   marketing (`skipped_sunset`) until it does something again; service messages
   go on (list hygiene, not an opt-out: consent and suppressions are untouched);
   a marketing message of a journey whose sends are paused (the deliverability
   guard's circuit breaker, or an operator: `rules/deliverability.py`) is deferred
   by `pause_recheck` and asks again, until an operator resumes them;
4. every journey message waits out the contact's quiet hours (unless exempt):
   deferred;
5. marketing email fits under the frequency caps across all journeys, or is
   deferred; the check and the reservation of the message-log row happen in one
   transaction that holds the contact's row, so two journeys cannot both take
   the last slot;
6. the row is `pending` before the provider is called; providers are
   idempotent on the key, so a retry delivers once.

One attempt uses one database session: steps 1-6 read and then commit the
outcome (skipped, suppressed, deferred) or the `pending` row in one
transaction; after the delivery a second one records it `sent` (or `failed`).

A message's category is its journey's (`Journey.category`). Marketing email carries
the signed unsubscribe link in its footer and the List-Unsubscribe headers; a
service (transactional) message carries the service footer instead.

The policy clock is the scheduled time of the activity attempt (the server's
clock), which is also what the time-skipping test server advances. A journey on
an accelerated clock (demos, staging: a day of `day_seconds`) is held to the
same rules in journey time, where the worker allows accelerated clocks
(ALLOW_ACCELERATED_CLOCK): quiet hours fall on the journey's nights and caps
count journey days, so staging shows what production would do. A worker that
does not allow them evaluates every request in real time.

Every outcome an attempt records (sent, deferred, suppressed, skipped, failed)
adds one to the `journeys_messages` counter of the SDK's metric meter, by
journey, channel and status; an outcome already recorded, returned again to a
retry, is not counted again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from sqlalchemy import func, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from structlog.contextvars import bound_contextvars
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.providers import (
    DeliveryError,
    EmailProvider,
    OutgoingEmail,
    OutgoingSms,
    SmsProvider,
    email_provider_from_settings,
    sms_provider_from_settings,
)
from models.db import session_factory
from models.messages import (
    SUNSET_TAG,
    CancelRequest,
    Channel,
    DeliveryStatus,
    MessageCategory,
    SendRequest,
    SendResult,
    ServiceSms,
)
from models.policy import JourneyClock, MessagingPolicy
from models.settings import Settings
from models.tables import Contact, MessageLog
from rules.consent import STOP_REASON
from rules.deliverability import active_pause
from rules.keep_subscribed import sign_keep_subscribed_token
from rules.policy import frequency_cap_release, quiet_hours_end
from rules.sms_keywords import SERVICE_SMS_JOURNEY
from rules.suppressions import find_suppression, suppress_address
from rules.templates import (
    ContactFields,
    LinkContext,
    RenderedEmail,
    TemplateCatalog,
    TemplateError,
)
from rules.unsubscribe import sign_unsubscribe_token

log = structlog.stdlib.get_logger(__name__)

_COUNTED = (DeliveryStatus.SENT, DeliveryStatus.PENDING)

MESSAGES_METRIC = "journeys_messages"
"""Counter of the send outcomes recorded, by `journey`, `channel` and `status`."""


@dataclass(frozen=True)
class ComposedMessage:
    """A message rendered for one contact (`MessagingActivities.compose`).

    Attributes:
        links: The UTM parameters and unsubscribe link it was rendered with.
        email: The rendered email (email channel).
        sms: The SMS body, opt-out line included (SMS channel).
    """

    links: LinkContext
    email: RenderedEmail | None = None
    sms: str | None = None


class MessagingActivities:
    """Activities that send messages to contacts.

    Built once in the worker with the database engine, the template
    catalogue, the configured providers and the messaging policy.
    """

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        templates: TemplateCatalog,
        email_provider: EmailProvider,
        sms_provider: SmsProvider,
        policy: MessagingPolicy,
        unsubscribe_base_url: str,
        unsubscribe_secret: str,
        suppression_key: bytes,
        accelerated_clock_allowed: bool = False,
        pause_recheck: timedelta = timedelta(minutes=10),
    ) -> None:
        """Hold the shared resources the activities use.

        `suppression_key` is the suppression hash key (`Settings.suppression_key`).
        `accelerated_clock_allowed` (ALLOW_ACCELERATED_CLOCK): evaluate the policy in
        journey time for journeys on an accelerated clock; otherwise in real time.
        `pause_recheck`: how long a marketing message of a journey whose sends are
        paused is deferred before it asks again.
        """
        self._sessions = session_factory(engine)
        self._suppression_key = suppression_key
        self._templates = templates
        self._email = email_provider
        self._sms = sms_provider
        self._policy = policy
        self._unsubscribe_base_url = unsubscribe_base_url.rstrip("/")
        self._unsubscribe_secret = unsubscribe_secret
        self._accelerated_clock_allowed = accelerated_clock_allowed
        self._pause_recheck = pause_recheck

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        engine: AsyncEngine,
        *,
        templates: TemplateCatalog,
        email_provider: EmailProvider | None = None,
        sms_provider: SmsProvider | None = None,
    ) -> MessagingActivities:
        """The activities as the worker builds them: providers, policy and links from `settings`.

        Args:
            settings: Providers, messaging policy, unsubscribe links, clock rules.
            engine: The database (message log, contacts, suppressions).
            templates: The validated template catalogue.
            email_provider: Overrides the email provider chosen by the settings.
            sms_provider: Overrides the SMS provider chosen by the settings.
        """
        return cls(
            engine=engine,
            templates=templates,
            email_provider=email_provider or email_provider_from_settings(settings),
            sms_provider=sms_provider or sms_provider_from_settings(settings),
            policy=settings.messaging_policy(),
            unsubscribe_base_url=settings.public_base_url,
            unsubscribe_secret=settings.unsubscribe_secret.get_secret_value(),
            accelerated_clock_allowed=settings.allow_accelerated_clock,
            suppression_key=settings.suppression_key(),
            pause_recheck=timedelta(seconds=settings.send_pause_recheck_seconds),
        )

    @activity.defn(name="send_message")
    async def send_message(self, request: SendRequest) -> SendResult:
        """Send one templated message to a contact, at most once per idempotency key.

        One database session: the checks and the reservation of the `pending`
        row (one transaction), the delivery, then the outcome (a second one).

        Returns:
            Sent, deferred (with the time to ask again), suppressed, skipped, or
            failed (a permanent provider refusal).

        Raises:
            ApplicationError: non-retryable when the contact or template does not
                exist; retryable (with the provider's `Retry-After`) when the
                provider failed transiently.
        """
        return await self.send(request, now=activity.info().current_attempt_scheduled_time)

    async def send(self, request: SendRequest, *, now: datetime) -> SendResult:
        """`send_message` with the policy clock at `now`: the one send path.

        The send activity and the broadcasts' batch activity (`activities/broadcasts.py`)
        both send through it, inside an activity (for its attempt and metric meter).

        Raises:
            ApplicationError: as `send_message`.
        """
        with bound_contextvars(
            idempotency_key=request.idempotency_key,
            contact_id=request.contact_id,
            channel=request.channel,
        ):
            async with self._sessions() as session:
                found, contact = await _row_and_contact(session, request)
                if found is not None and DeliveryStatus(found.status).is_final:
                    log.info("send already recorded", status=found.status)
                    return _result(found)
                attempt = _Attempt(request, session, now, self._clock(request, now), found)
                if contact is None:
                    raise ApplicationError(
                        f"contact {request.contact_id!r} does not exist",
                        type="ContactNotFound",
                        non_retryable=True,
                    )
                held_back = await self._held_back(attempt, contact)
                if held_back is not None:
                    return held_back
                composed = self._compose_to_send(request, contact, now)
                held_back = await self._reserve(attempt, composed)
                if held_back is not None:
                    return held_back
                return await self._deliver(attempt, contact, composed)

    @activity.defn(name="send_service_sms")
    async def send_service_sms(self, reply: ServiceSms) -> SendResult:
        """Send a service text (an answer to an SMS keyword), at most once per idempotency key.

        It answers a message the person just sent, so neither consent nor a
        suppression (the one a STOP has just written) holds it back. It is
        logged as `transactional`, with the contact if one has the number.

        Raises:
            ApplicationError: non-retryable for an unknown template; retryable
                (with the provider's `Retry-After`) when the provider failed
                transiently.
        """
        now = activity.info().current_attempt_scheduled_time
        with bound_contextvars(idempotency_key=reply.idempotency_key, contact_id=reply.contact_id):
            async with self._sessions() as session:
                recorded = await _row(session, reply.idempotency_key)
                if recorded is not None and DeliveryStatus(recorded.status).is_final:
                    return _result(recorded)
                try:
                    body = self._templates.render_sms(
                        reply.template, ContactFields(), LinkContext(), opt_out=False
                    )
                except TemplateError as error:
                    raise ApplicationError(
                        str(error), type="TemplateError", non_retryable=True
                    ) from error
                row = recorded or _service_row(reply, now)
                row.status, row.updated_at = DeliveryStatus.PENDING, now
                session.add(row)
                await session.commit()
                try:
                    message_id = await self._sms.deliver(
                        OutgoingSms(
                            idempotency_key=reply.idempotency_key,
                            to_number=reply.to_number,
                            body=body,
                            created_at=now,
                        )
                    )
                except DeliveryError as error:
                    if not error.permanent:
                        raise error.to_application_error() from error
                    log.warning("service SMS refused", error=str(error))
                    row.status, row.status_reason = DeliveryStatus.FAILED, str(error)
                    await session.commit()
                    return _result(row)
                await _mark_sent(
                    session, row, provider=self._sms.name, message_id=message_id, now=now
                )
                log.info("service SMS sent", step=reply.step)
                return _result(row)

    @activity.defn(name="cancel_messages")
    async def cancel_messages(self, request: CancelRequest) -> int:
        """Mark those of the messages that are still deferred as cancelled.

        Returns:
            How many were cancelled (messages sent meanwhile are left as they are).
        """
        now = activity.info().current_attempt_scheduled_time
        async with self._sessions() as session:
            rows = await session.exec(
                select(MessageLog).where(
                    col(MessageLog.idempotency_key).in_(request.idempotency_keys),
                    MessageLog.status == DeliveryStatus.DEFERRED,
                )
            )
            cancelled = list(rows.all())
            for row in cancelled:
                row.status = DeliveryStatus.CANCELLED
                row.status_reason = f"{row.status_reason}; {request.reason}"
                row.updated_at = now
                session.add(row)
            await session.commit()
        log.info("deferred messages cancelled", count=len(cancelled), reason=request.reason)
        return len(cancelled)

    def _clock(self, request: SendRequest, now: datetime) -> JourneyClock:
        """The clock the policy is evaluated on: the journey's, where allowed; else real time."""
        if not self._accelerated_clock_allowed or request.clock_origin is None:
            return JourneyClock(origin=now)
        return JourneyClock(origin=request.clock_origin, day_seconds=request.day_seconds)

    async def _held_back(self, attempt: _Attempt, contact: Contact) -> SendResult | None:
        """The outcome when the message must not go out now: refused, its journey's sends
        paused, or in quiet hours."""
        request = attempt.request
        refusal = await self._refusal(attempt.session, request, contact)
        if refusal is not None:
            status, reason = refusal
            return await _record(attempt, status, reason)
        if request.category == MessageCategory.MARKETING:
            pause = await active_pause(attempt.session, request.journey)
            if pause is not None:
                why = f"sends of {request.journey} paused by {pause.paused_by}; asked again"
                return await _defer(attempt, attempt.now + self._pause_recheck, why)
        if request.quiet_hours_exempt:
            return None
        clock = attempt.clock
        quiet_until = quiet_hours_end(
            clock.journey_time(attempt.now), contact.timezone, self._policy
        )
        if quiet_until is None:
            return None
        return await _defer(attempt, clock.real_time(quiet_until), "quiet hours")

    async def _refusal(
        self, session: AsyncSession, request: SendRequest, contact: Contact
    ) -> tuple[DeliveryStatus, str] | None:
        """Why the message must not go out at all (address, consent, suppression).

        A legacy suppression row found is re-keyed in `session`, committed with the outcome.
        """
        if request.channel == Channel.EMAIL:
            address, consent = contact.email, contact.email_consent
        else:
            address, consent = contact.phone, contact.sms_consent
        if not address:
            return DeliveryStatus.SKIPPED_NO_ADDRESS, f"contact has no {request.channel} address"
        suppression = await find_suppression(
            session, request.channel, address, key=self._suppression_key
        )
        if suppression is not None and (
            request.category == MessageCategory.MARKETING or suppression.stops_service_messages
        ):
            return DeliveryStatus.SUPPRESSED, f"address suppressed: {suppression.reason}"
        if request.category == MessageCategory.MARKETING and not consent:
            return DeliveryStatus.SKIPPED_NO_CONSENT, f"no {request.channel} consent"
        if request.category == MessageCategory.MARKETING and SUNSET_TAG in contact.tags:
            return DeliveryStatus.SKIPPED_SUNSET, "contact sunset: no response to re-engagement"
        return None

    def _compose_to_send(
        self, request: SendRequest, contact: Contact, now: datetime
    ) -> ComposedMessage:
        """`compose`, with a template that cannot render as a non-retryable failure."""
        try:
            return self.compose(request, contact, now)
        except TemplateError as error:
            raise ApplicationError(str(error), type="TemplateError", non_retryable=True) from error

    def compose(self, request: SendRequest, contact: Contact, now: datetime) -> ComposedMessage:
        """Render the message of `request` for `contact` as it would be sent at `now`.

        The send activity and the QA commands (`journeys preview`, `journeys
        test-send`) share it: links tagged with UTM, the footer, the unsubscribe
        link of a marketing message, the SMS opt-out line.

        Raises:
            TemplateError: unknown template, or it cannot render.
        """
        links = self._links(request, contact, now)
        fields = ContactFields(
            first_name=contact.first_name, company=contact.company, tags=contact.tags
        )
        if request.channel == Channel.EMAIL:
            email = self._templates.render_email(
                request.template, fields, links, variables=request.variables
            )
            return ComposedMessage(links=links, email=email)
        sms = self._templates.render_sms(
            request.template, fields, links, variables=request.variables
        )
        return ComposedMessage(links=links, sms=sms)

    def _links(self, request: SendRequest, contact: Contact, now: datetime) -> LinkContext:
        """UTM parameters, and the unsubscribe link of a marketing message (not a service one)."""
        utm = {
            "utm_source": "journeys",
            "utm_medium": str(request.channel),
            "utm_campaign": request.journey,
            "utm_content": request.step,
        }
        if request.category != MessageCategory.MARKETING:
            return LinkContext(utm=utm)
        token = sign_unsubscribe_token(
            contact.id, request.channel, secret=self._unsubscribe_secret, issued_at=now
        )
        keep = sign_keep_subscribed_token(
            contact.id, request.channel, secret=self._unsubscribe_secret, issued_at=now
        )
        return LinkContext(
            utm=utm,
            unsubscribe_url=f"{self._unsubscribe_base_url}/u/{token}",
            keep_subscribed_url=f"{self._unsubscribe_base_url}/k/{keep}",
        )

    def outgoing_email(
        self,
        request: SendRequest,
        address: str,
        rendered: RenderedEmail,
        links: LinkContext,
        now: datetime,
    ) -> OutgoingEmail:
        """The email a provider delivers: sender, headers (List-Unsubscribe…), both bodies."""
        brand = self._templates.brand
        headers = {"X-Journey": request.journey, "X-Journey-Step": request.step}
        if links.unsubscribe_url:
            headers["List-Unsubscribe"] = f"<{links.unsubscribe_url}>"
            headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        return OutgoingEmail(
            idempotency_key=request.idempotency_key,
            to_address=address,
            from_name=f"{brand['sender_name']} from {brand['name']}",
            from_address=brand["sender_email"],
            reply_to=brand["reply_to"],
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            created_at=now,
            headers=headers,
        )

    async def _reserve(self, attempt: _Attempt, composed: ComposedMessage) -> SendResult | None:
        """Commit the `pending` row, unless a frequency cap defers the message.

        A capped message holds the contact's row while it counts the recent
        sends and writes its own, so two journeys cannot both take the last
        slot. The caps count journey days on the attempt's clock.

        Returns:
            None when reserved; otherwise the deferral.
        """
        request, session, clock, now = attempt.request, attempt.session, attempt.clock, attempt.now
        if request.channel == Channel.EMAIL and request.category == MessageCategory.MARKETING:
            await _hold_contact(session, request.contact_id)
            recent = await self._recent_marketing_email(session, request, clock, now)
            release = frequency_cap_release(
                clock.journey_time(now),
                [clock.journey_time(sent) for sent in recent],
                self._policy.email_caps,
            )
            if release is not None:
                return await _defer(attempt, clock.real_time(release), "frequency cap")
        row = attempt.row()
        row.status = DeliveryStatus.PENDING
        row.status_reason = None
        row.subject = composed.email.subject if composed.email is not None else None
        row.updated_at = now
        await session.commit()
        return None

    async def _recent_marketing_email(
        self, session: AsyncSession, request: SendRequest, clock: JourneyClock, now: datetime
    ) -> list[datetime]:
        longest = clock.real_duration(
            max((cap.window for cap in self._policy.email_caps), default=timedelta(0))
        )
        counted_at = func.coalesce(col(MessageLog.sent_at), col(MessageLog.updated_at))
        rows = await session.exec(
            select(counted_at).where(
                MessageLog.contact_id == request.contact_id,
                MessageLog.channel == Channel.EMAIL,
                MessageLog.category == MessageCategory.MARKETING,
                col(MessageLog.status).in_(_COUNTED),
                MessageLog.idempotency_key != request.idempotency_key,
                counted_at > now - longest,
            )
        )
        return list(rows.all())

    async def _deliver(
        self, attempt: _Attempt, contact: Contact, composed: ComposedMessage
    ) -> SendResult:
        """Hand the reserved message to its provider and record the outcome."""
        request, now = attempt.request, attempt.now
        try:
            if composed.email is not None:
                assert contact.email is not None
                message_id = await self._email.deliver(
                    self.outgoing_email(request, contact.email, composed.email, composed.links, now)
                )
                provider = self._email.name
            else:
                assert contact.phone is not None and composed.sms is not None
                message_id = await self._sms.deliver(
                    OutgoingSms(
                        idempotency_key=request.idempotency_key,
                        to_number=contact.phone,
                        body=composed.sms,
                        created_at=now,
                    )
                )
                provider = self._sms.name
        except DeliveryError as error:
            return await self._delivery_failed(attempt, contact, error)
        row = attempt.row()
        await _mark_sent(attempt.session, row, provider=provider, message_id=message_id, now=now)
        _count_outcome(request, DeliveryStatus.SENT)
        log.info("message sent", journey=request.journey, step=request.step)
        return _result(row)

    async def _delivery_failed(
        self, attempt: _Attempt, contact: Contact, error: DeliveryError
    ) -> SendResult:
        """Record a permanent refusal (suppressing an invalid address); re-raise a transient one."""
        if not error.permanent:
            log.warning("delivery failed, will retry", error=str(error))
            raise error.to_application_error() from error
        request = attempt.request
        if error.invalid_recipient:
            address = contact.email if request.channel == Channel.EMAIL else contact.phone
            assert address is not None
            await suppress_address(
                attempt.session,
                request.channel,
                address,
                key=self._suppression_key,
                reason=STOP_REASON if error.opted_out else "invalid_recipient",
                contact_id=contact.id,
                at=attempt.now,
            )
        log.warning("delivery refused", error=str(error))
        return await _record(attempt, DeliveryStatus.FAILED, str(error))


@dataclass
class _Attempt:
    """One attempt at a send, in its database session.

    Attributes:
        request: What to send.
        session: The attempt's one session.
        now: The policy clock's now (the attempt's scheduled time).
        clock: The clock quiet hours and caps are evaluated on.
        found: The message-log row of the key, as the attempt found it (None: new).
    """

    request: SendRequest
    session: AsyncSession
    now: datetime
    clock: JourneyClock
    found: MessageLog | None
    found_status: str | None = field(init=False)

    def __post_init__(self) -> None:
        """Remember the status found: a retry that records it again does not count it again."""
        self.found_status = None if self.found is None else self.found.status

    def row(self) -> MessageLog:
        """The key's message-log row: the one found, or a new one added to the session."""
        if self.found is None:
            self.found = _new_row(self.request, self.now)
            self.session.add(self.found)
        return self.found


async def _row(session: AsyncSession, key: str) -> MessageLog | None:
    rows = await session.exec(select(MessageLog).where(MessageLog.idempotency_key == key))
    return rows.first()


async def _row_and_contact(
    session: AsyncSession, request: SendRequest
) -> tuple[MessageLog | None, Contact | None]:
    """The key's message-log row (None: a first attempt) and the contact, in one query."""
    rows = await session.exec(
        select(Contact, MessageLog)
        .join(MessageLog, col(MessageLog.idempotency_key) == request.idempotency_key, isouter=True)
        .where(col(Contact.id) == request.contact_id)
    )
    found: tuple[Contact, MessageLog | None] | None = rows.first()
    if found is None:  # no such contact; an outcome may still have been recorded for it
        return await _row(session, request.idempotency_key), None
    contact, row = found
    return row, contact


async def _hold_contact(session: AsyncSession, contact_id: str) -> None:
    """Hold the contact's row until the transaction ends (serialises its capped sends).

    A write that changes nothing; on SQLite it takes the database's write lock, and
    opens the attempt's first transaction there (the driver begins one at the first
    write: the reads before it wait for no lock and see what is committed).
    """
    await session.exec(
        update(Contact)
        .where(col(Contact.id) == contact_id)
        .values(updated_at=Contact.updated_at)
        .execution_options(synchronize_session=False)
    )


async def _record(attempt: _Attempt, status: DeliveryStatus, reason: str) -> SendResult:
    """Commit an outcome that is not a delivery in the key's row (new or found)."""
    request = attempt.request
    # A retry of an attempt that recorded this outcome (a deferral) and then failed.
    repeated = attempt.found_status == status and activity.info().attempt > 1
    row = attempt.row()
    row.status = status
    row.status_reason = reason
    row.updated_at = attempt.now
    await attempt.session.commit()
    if not repeated:
        _count_outcome(request, status)
    if status != DeliveryStatus.DEFERRED:
        log.info("send not delivered", status=status, reason=reason)
    return _result(row)


async def _defer(attempt: _Attempt, until: datetime, why: str) -> SendResult:
    reason = f"{why} until {until:%Y-%m-%d %H:%M} UTC"
    await _record(attempt, DeliveryStatus.DEFERRED, reason)
    log.info("send deferred", reason=reason)
    return SendResult(
        status=DeliveryStatus.DEFERRED,
        idempotency_key=attempt.request.idempotency_key,
        reason=reason,
        deferred_until=until,
    )


async def _mark_sent(
    session: AsyncSession, row: MessageLog, *, provider: str, message_id: str, now: datetime
) -> None:
    """Commit the row as sent by `provider` (its message id)."""
    row.status = DeliveryStatus.SENT
    row.status_reason = None
    row.provider = provider
    row.provider_message_id = message_id
    row.updated_at = now
    row.sent_at = now
    session.add(row)
    await session.commit()


def _new_row(request: SendRequest, now: datetime) -> MessageLog:
    """A message-log row for the request; the caller sets its status."""
    return MessageLog(
        idempotency_key=request.idempotency_key,
        contact_id=request.contact_id,
        journey=request.journey,
        step=request.step,
        channel=request.channel,
        category=request.category,
        template=request.template,
        created_at=now,
        updated_at=now,
        status=DeliveryStatus.PENDING,
    )


def _service_row(reply: ServiceSms, now: datetime) -> MessageLog:
    """The message-log row of a service SMS (`journey` `sms-keywords`; no contact: empty id)."""
    return MessageLog(
        idempotency_key=reply.idempotency_key,
        contact_id=reply.contact_id or "",
        journey=SERVICE_SMS_JOURNEY,
        step=reply.step,
        channel=Channel.SMS,
        category=MessageCategory.TRANSACTIONAL,
        template=reply.template,
        created_at=now,
        updated_at=now,
        status=DeliveryStatus.PENDING,
    )


def _count_outcome(request: SendRequest, status: DeliveryStatus) -> None:
    """Add one to `journeys_messages` (the SDK's meter: a no-op unless metrics are on)."""
    activity.metric_meter().create_counter(
        MESSAGES_METRIC, description="Send outcomes recorded in the message log", unit="1"
    ).add(1, {"journey": request.journey, "channel": str(request.channel), "status": str(status)})


def _result(row: MessageLog) -> SendResult:
    return SendResult(
        status=DeliveryStatus(row.status),
        idempotency_key=row.idempotency_key,
        provider_message_id=row.provider_message_id,
        reason=row.status_reason,
    )
