"""`POST /webhooks/postmark`: Postmark's delivery, bounce, spam-complaint, open, click and
subscription-change webhooks, as behaviour events.

Verification (https://postmarkapp.com/developer/webhooks/webhooks-overview): Postmark
signs nothing; its webhook URL carries HTTP basic-auth credentials
(`https://<user>:<password>@<gateway>/webhooks/postmark`), which this route compares,
in constant time, with `POSTMARK_WEBHOOK_USERNAME` and `POSTMARK_WEBHOOK_PASSWORD`.
404 until both are set; 401 (with `WWW-Authenticate: Basic`) for missing or wrong
credentials; 400 for a body that is not JSON, 422 for a record without what it needs.
Basic auth has no timestamp, so a replayed request is not refused: it changes
nothing, because each record's event id is already known (below).

One record per request, told apart by `RecordType`:

| record (`RecordType`, bounce `Type`) | notice |
| --- | --- |
| `Delivery` | delivered (at `DeliveredAt`) |
| `Bounce`: `HardBounce`, `BadEmailAddress`, `ManuallyDeactivated` | bounced, hard |
| `Bounce`: `SoftBounce`, `DnsError`, `Blocked`, `SpamNotification`, | bounced, soft |
| `VirusNotification`, `DMARCPolicy`, `Unknown` | |
| `Bounce`: `Unsubscribe` | unsubscribed |
| `SpamComplaint`, or `Bounce`: `SpamComplaint` | complained |
| `Open` | opened (at `ReceivedAt`) |
| `Click` | clicked (`OriginalLink`) |
| `SubscriptionChange` suppressing (`SuppressSending` true) for | unsubscribed |
| `ManualSuppression` (the recipient's or an operator's unsubscribe) | (at `ChangedAt`) |

Ignored (answered 200, nothing recorded): a `Transient` bounce (a delay, as SendGrid's
`deferred`), the informational bounce types (`AutoResponder`, `AddressChange`,
`Subscribe`, `ChallengeVerification`, `OpenRelayTest`, `Unconfirmed`, `SMTPApiError`,
`InboundError`, `TemplateRenderingFailed`), a subscription change that lifts a
suppression or whose reason is a hard bounce or a spam complaint (those arrive as
their own `Bounce` / `SpamComplaint` records), a record without a `MessageID`, and
record types this route does not know (inbound mail…).

Postmark gives a record no id of its own, so the event id is derived: the first 32
hex digits of the SHA-256 of `RecordType`, `MessageID`, the record's time (as
parsed, in UTC), the bounce `ID` and the clicked link. A redelivered record gets the
same id and is processed once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Header, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints, TypeAdapter

from models.events import UtcTime
from starter.api.dependencies import ServicesDep
from starter.api.hooks.bodies import json_body
from starter.api.schemas import Problem
from starter.services.delivery_notices import (
    DeliveryNotice,
    NoticeKind,
    WebhookResult,
    record_notices,
)

router = APIRouter(tags=["webhooks"])

SOURCE = "postmark"
HARD_BOUNCES = frozenset({"HardBounce", "BadEmailAddress", "ManuallyDeactivated"})
SOFT_BOUNCES = frozenset(
    {
        "SoftBounce",
        "DnsError",
        "Blocked",
        "SpamNotification",
        "VirusNotification",
        "DMARCPolicy",
        "Unknown",
    }
)
_NOTHING = WebhookResult(accepted=0, duplicate=0, unknown_messages=[])

Bounce = Literal["hard", "soft"]


class PostmarkRecord(BaseModel):
    """The fields of a Postmark webhook record this route reads (Postmark's names as aliases).

    Attributes:
        record_type: `Delivery`, `Bounce`, `SpamComplaint`, `Open`, `Click`, `SubscriptionChange`…
        message_id: The `MessageID` the send answered.
        bounce_id: A bounce's or complaint's `ID`.
        bounce_type: A bounce's `Type` (`HardBounce`, `SoftBounce`…).
        original_link: The clicked link.
        suppress_sending: A subscription change suppresses (true) or reactivates (false).
        suppression_reason: `HardBounce`, `SpamComplaint` or `ManualSuppression`.
        delivered_at: When a delivery happened.
        bounced_at: When a bounce or complaint happened.
        received_at: When an open or click happened.
        changed_at: When a subscription changed.
    """

    model_config = ConfigDict(extra="ignore")

    record_type: Annotated[str, StringConstraints(max_length=64)] = Field(alias="RecordType")
    message_id: Annotated[str, StringConstraints(min_length=1, max_length=300)] | None = Field(
        default=None, alias="MessageID"
    )
    bounce_id: int | None = Field(default=None, alias="ID")
    bounce_type: Annotated[str, StringConstraints(max_length=64)] | None = Field(
        default=None, alias="Type"
    )
    original_link: Annotated[str, StringConstraints(max_length=2_000)] | None = Field(
        default=None, alias="OriginalLink"
    )
    suppress_sending: bool | None = Field(default=None, alias="SuppressSending")
    suppression_reason: str | None = Field(default=None, alias="SuppressionReason")
    delivered_at: UtcTime | None = Field(default=None, alias="DeliveredAt")
    bounced_at: UtcTime | None = Field(default=None, alias="BouncedAt")
    received_at: UtcTime | None = Field(default=None, alias="ReceivedAt")
    changed_at: UtcTime | None = Field(default=None, alias="ChangedAt")


def check_credentials(authorization: str | None, username: SecretStr, password: SecretStr) -> None:
    """Refuse (401) a request without the configured basic-auth credentials.

    Both parts are compared in constant time, and both always.
    """
    scheme, _, encoded = (authorization or "").partition(" ")
    try:
        given = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        given = b""
    user, separator, secret = given.partition(b":")
    user_ok = hmac.compare_digest(user, username.get_secret_value().encode())
    secret_ok = hmac.compare_digest(secret, password.get_secret_value().encode())
    if scheme.lower() != "basic" or not separator or not (user_ok and secret_ok):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing or wrong webhook credentials",
            headers={"WWW-Authenticate": 'Basic realm="postmark-webhooks"'},
        )


def event_id(record: PostmarkRecord, occurred_at: datetime) -> str:
    """The derived id of a record (Postmark gives none): see the module docstring."""
    parts = (
        record.record_type,
        record.message_id or "",
        occurred_at.isoformat(),
        "" if record.bounce_id is None else str(record.bounce_id),
        record.original_link or "",
    )
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def _what(record: PostmarkRecord) -> tuple[NoticeKind, Bounce | None] | None:
    """What the record says happened, or None when it is one this route ignores."""
    kind = record.record_type
    if kind == "Bounce" and record.bounce_type == "SpamComplaint":
        kind = "SpamComplaint"
    match kind:
        case "Delivery":
            return "delivered", None
        case "Open":
            return "opened", None
        case "Click":
            return "clicked", None
        case "SpamComplaint":
            return "complained", None
        case "Bounce" if record.bounce_type == "Unsubscribe":
            return "unsubscribed", None
        case "Bounce" if record.bounce_type in HARD_BOUNCES:
            return "bounced", "hard"
        case "Bounce" if record.bounce_type in SOFT_BOUNCES:
            return "bounced", "soft"
        case "SubscriptionChange" if (
            record.suppress_sending and record.suppression_reason == "ManualSuppression"
        ):
            return "unsubscribed", None
    return None


def _when(record: PostmarkRecord) -> datetime | None:
    match record.record_type:
        case "Delivery":
            return record.delivered_at
        case "Bounce" | "SpamComplaint":
            return record.bounced_at
        case "Open" | "Click":
            return record.received_at
        case "SubscriptionChange":
            return record.changed_at
    return None


def notice_of(record: PostmarkRecord) -> DeliveryNotice | None:
    """The notice a record becomes, or None when it is ignored (see the module docstring).

    Raises:
        HTTPException: 422 for a record this route reads without its time.
    """
    what = _what(record)
    if what is None or record.message_id is None:
        return None
    occurred_at = _when(record)
    if occurred_at is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"a {record.record_type} record needs its time",
        )
    kind, bounce_type = what
    return DeliveryNotice(
        event_id=event_id(record, occurred_at),
        kind=kind,
        message_id=record.message_id,
        occurred_at=occurred_at,
        url=record.original_link if kind == "clicked" else None,
        bounce_type=bounce_type,
    )


_RECORD = TypeAdapter(PostmarkRecord)


@router.post(
    "/webhooks/postmark",
    response_model=WebhookResult,
    summary="Postmark webhooks (HTTP basic auth)",
    responses={
        400: {"model": Problem, "description": "The body is not JSON."},
        401: {"model": Problem, "description": "Missing or wrong basic-auth credentials."},
        404: {"model": Problem, "description": "Postmark webhooks are not configured."},
    },
)
async def postmark_webhook(
    request: Request,
    held: ServicesDep,
    authorization: Annotated[str | None, Header()] = None,
) -> WebhookResult:
    """Check the credentials, then turn the record into a behaviour event (or ignore it)."""
    username = held.settings.postmark_webhook_username
    password = held.settings.postmark_webhook_password
    if username is None or password is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Postmark webhooks are not configured")
    check_credentials(authorization, username, password)
    record = json_body(await request.body(), _RECORD, what="a Postmark webhook record")
    notice = notice_of(record)
    if notice is None:
        return _NOTHING
    return await record_notices(held.temporal, held.engine, held.settings, [notice], source=SOURCE)
