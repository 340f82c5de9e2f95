"""`POST /webhooks/ses`: Amazon SES events, delivered by an SNS topic's HTTPS subscription.

SES publishes each event of a message sent with the configuration set
(SES_CONFIGURATION_SET) to its SNS event destination; SNS POSTs it here,
signed (`starter/services/sns.py` verifies it). The endpoint answers 404
until `SES_SNS_TOPIC_ARNS` is set; an unsigned, wrongly signed, stale or
foreign-topic message gets 401 (400 when malformed) and changes nothing.

- `SubscriptionConfirmation`: confirmed by GETting its SubscribeURL.
- `UnsubscribeConfirmation`: taken, nothing done.
- `Notification`: its `Message` is an SES event record
  (https://docs.aws.amazon.com/ses/latest/dg/event-publishing-retrieving-sns-contents.html;
  `eventType`, or `notificationType` for identity feedback notifications):

| SES event | notice |
| --- | --- |
| `Delivery` | `delivered` |
| `Bounce` | `bounced`: `hard` for bounceType `Permanent`, else `soft` (one per message) |
| `Complaint` | `complained` |
| `Open` | `opened` |
| `Click` | `clicked` (`click.link`) |

Other events (Send, Reject, DeliveryDelay, Rendering Failure, Subscription)
are taken and ignored. The notice's event id is the SNS `MessageId`, its
message id SES's `mail.messageId` (what `SendEmail` answered).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import structlog
from fastapi import APIRouter, Header, HTTPException, Request, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError

from starter.api.dependencies import ServicesDep
from starter.api.schemas import Problem
from starter.services.delivery_notices import DeliveryNotice, WebhookResult, record_notices
from starter.services.sns import MESSAGE_TYPE_HEADER, SnsMessage, SnsRefused, SnsVerifier

router = APIRouter(tags=["webhooks"])
log = structlog.stdlib.get_logger("journeys.webhooks.ses")

NOTHING = WebhookResult(accepted=0, duplicate=0, unknown_messages=[])


class _Mail(BaseModel):
    model_config = ConfigDict(extra="ignore")
    messageId: str


class _Happened(BaseModel):
    model_config = ConfigDict(extra="ignore")
    timestamp: AwareDatetime


class _Bounce(_Happened):
    bounceType: str


class _Click(_Happened):
    link: str


class SesEvent(BaseModel):
    """The parts of an SES event record read here."""

    model_config = ConfigDict(extra="ignore")

    eventType: str | None = None
    notificationType: str | None = None
    mail: _Mail
    delivery: _Happened | None = None
    bounce: _Bounce | None = None
    complaint: _Happened | None = None
    open: _Happened | None = None
    click: _Click | None = None


@router.post(
    "/webhooks/ses",
    response_model=WebhookResult,
    summary="Amazon SES events through an SNS subscription (signed by SNS)",
    responses={
        400: {"model": Problem, "description": "Not an SNS message, or a malformed one."},
        401: {"model": Problem, "description": "Unsigned, wrongly signed, stale or not ours."},
        404: {"model": Problem, "description": "SES webhooks are not configured."},
        503: {"model": Problem, "description": "The signing certificate could not be fetched."},
    },
)
async def ses_webhook(
    request: Request,
    held: ServicesDep,
    message_type: Annotated[str | None, Header(alias=MESSAGE_TYPE_HEADER)] = None,
) -> WebhookResult:
    """Verify the SNS message, then confirm the subscription or record the SES event."""
    settings = held.settings
    if not settings.ses_sns_topic_arns:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "SES webhooks are not configured")
    verifier = SnsVerifier(
        topic_arns=settings.ses_sns_topic_arns,
        cert_hosts=settings.ses_sns_cert_hosts,
        ca_bundle=settings.ses_sns_ca_bundle,
        timeout=settings.provider_timeout_seconds,
    )
    try:
        message = await verifier.verify(
            await request.body(), message_type=message_type, now=datetime.now(UTC)
        )
        if message.Type == "SubscriptionConfirmation":
            await verifier.confirm(message)
            log.info("ses_sns_subscription_confirmed", topic=message.TopicArn)
    except SnsRefused as refused:
        raise HTTPException(refused.status, refused.detail) from None
    if message.Type != "Notification":
        return NOTHING
    notice = ses_notice(message)
    if notice is None:
        return NOTHING
    return await record_notices(held.temporal, held.engine, settings, [notice], source="ses")


def ses_notice(message: SnsMessage) -> DeliveryNotice | None:
    """The notice an SES event record stands for (None: an event we do not record).

    Raises:
        HTTPException: 422, the notification's Message is not an SES event record.
    """
    try:
        event = SesEvent.model_validate_json(message.Message)
    except ValidationError as error:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"the notification is not an SES event record: {error.errors()[0]['msg']}",
        ) from None
    kind = event.eventType or event.notificationType
    found = _what_happened(event, kind)
    if found is None:
        return None
    notice_kind, happened, extra = found
    return DeliveryNotice(
        event_id=message.MessageId,
        kind=notice_kind,
        message_id=event.mail.messageId,
        occurred_at=happened.timestamp,
        **extra,
    )


_Kind = Literal["delivered", "opened", "clicked", "bounced", "complained"]


def _what_happened(
    event: SesEvent, kind: str | None
) -> tuple[_Kind, _Happened, dict[str, Any]] | None:
    if kind == "Delivery" and event.delivery:
        return "delivered", event.delivery, {}
    if kind == "Bounce" and event.bounce:
        hard = event.bounce.bounceType == "Permanent"
        return "bounced", event.bounce, {"bounce_type": "hard" if hard else "soft"}
    if kind == "Complaint" and event.complaint:
        return "complained", event.complaint, {}
    if kind == "Open" and event.open:
        return "opened", event.open, {}
    if kind == "Click" and event.click:
        return "clicked", event.click, {"url": event.click.link}
    return None
