"""One-click unsubscribe: the link in every marketing message (RFC 8058).

`GET /u/{token}` shows a confirmation page with a button; `POST /u/{token}`
unsubscribes (mail clients post `List-Unsubscribe=One-Click` there without
showing anything). The token's HMAC and expiry are checked first: a forged or
expired token gets 400 and changes nothing. Unsubscribing is an
`unsubscribed` event through the same intake as any other. The link of an
erased contact still answers "You are unsubscribed" (its addresses are
suppressed as `erased`) and sends no event: nothing may start its workflow
again.

Replays. A valid link is honoured whenever it is used, also long after the
message and after the contact opted in again: an opt-out must be as easy as
the opt-in and never be refused (CAN-SPAM, GDPR art. 21(3), RFC 8058); the
token can do nothing but what the person it was sent to asks; and the cost of
honouring a stale click (a person who re-subscribes) is small next to the
cost of ignoring a real one (mail nobody wanted, a complaint, a fine). What a
replay must not do is count twice: the event id is derived from the token and
what the click opts out of, the contact's address and consent on the channel.
Clicking twice, or a mail client retrying, is one event; a click after the
contact re-consented or changed its address is a new opt-out that suppresses
the current address and makes the journeys started since exit.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from html import escape

from fastapi import APIRouter, Path
from fastapi.responses import HTMLResponse

from activities.unsubscribe import InvalidToken, UnsubscribeRequest, verify_unsubscribe_token
from models.events import BehaviorEvent
from models.tables import Contact
from starter.api.dependencies import ServicesDep
from starter.intake import accept_events
from starter.operations import Gone, NotFound, get_contact

router = APIRouter(tags=["unsubscribe"])

TokenPath = Path(max_length=1_000, description="The signed token of the unsubscribe link.")

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem}}
button{{font-size:1rem;padding:.6rem 1.2rem}}</style></head>
<body><h1>{title}</h1>{body}</body></html>
"""


def page(title: str, body_html: str, *, status_code: int = 200) -> HTMLResponse:
    """A minimal standalone HTML page (`body_html` must already be escaped)."""
    return HTMLResponse(
        _PAGE.format(title=escape(title), body=body_html),
        status_code=status_code,
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


def click_id(token: str, contact: Contact, channel: str) -> str:
    """The event id of an unsubscribe click: the same for a replay, new once the contact's
    address or consent on `channel` changed (see the module docstring)."""
    sms = channel == "sms"
    address = contact.phone if sms else contact.email
    consent_at = contact.sms_consent_at if sms else contact.email_consent_at
    click = f"{token}|{address}|{consent_at.isoformat() if consent_at else ''}"
    return f"unsubscribe-{hashlib.sha256(click.encode()).hexdigest()[:40]}"


def _verify(token: str, secret: str) -> UnsubscribeRequest | HTMLResponse:
    try:
        return verify_unsubscribe_token(token, secret=secret, now=datetime.now(UTC))
    except InvalidToken as error:
        return page(
            "This link is not valid",
            f"<p>{escape(str(error).capitalize())}. Nothing was changed. To unsubscribe, "
            "use the link in a recent message, or reply to it and ask us.</p>",
            status_code=400,
        )


@router.get("/u/{token}", response_class=HTMLResponse, summary="Unsubscribe confirmation page")
async def confirm_page(held: ServicesDep, token: str = TokenPath) -> HTMLResponse:
    """Ask for confirmation (a link prefetcher or scanner must not unsubscribe anyone)."""
    request = _verify(token, held.settings.unsubscribe_secret.get_secret_value())
    if isinstance(request, HTMLResponse):
        return request
    return page(
        "Unsubscribe?",
        f"<p>You will no longer receive marketing {escape(request.channel)} from us.</p>"
        '<form method="post"><button type="submit">Unsubscribe</button></form>',
    )


@router.post("/u/{token}", response_class=HTMLResponse, summary="One-click unsubscribe")
async def unsubscribe(held: ServicesDep, token: str = TokenPath) -> HTMLResponse:
    """Unsubscribe the contact the token names; every marketing journey exits at once."""
    request = _verify(token, held.settings.unsubscribe_secret.get_secret_value())
    if isinstance(request, HTMLResponse):
        return request
    try:
        contact = await get_contact(held.engine, request.contact_id)
    except (NotFound, Gone):  # erased: nothing left to send to, and no event to send
        return page("You are unsubscribed", "<p>You will not hear from us again.</p>")
    event = BehaviorEvent(
        event_id=click_id(token, contact, request.channel),
        contact_id=request.contact_id,
        type="unsubscribed",
        occurred_at=datetime.now(UTC),
        properties={"channel": request.channel, "source": "one-click"},
    )
    await accept_events(
        held.temporal,
        held.engine,
        [event],
        task_queue=held.settings.task_queue,
        day_seconds=held.settings.day_seconds,
        suppression_key=held.settings.suppression_key(),
    )
    return page(
        "You are unsubscribed",
        f"<p>You will no longer receive marketing {escape(request.channel)} from us. "
        "Messages about your account (renewals, receipts) may still reach you.</p>",
    )
