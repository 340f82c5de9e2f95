"""One-click unsubscribe: the link in every marketing message (RFC 8058).

`GET /u/{token}` shows a confirmation page with a button; `POST /u/{token}`
unsubscribes (mail clients post `List-Unsubscribe=One-Click` there without
showing anything). The token's HMAC and expiry are checked first: a forged or
expired token gets 400 and changes nothing. Unsubscribing is an
`unsubscribed` event through the same intake as any other. The link of an
erased contact still answers "You are unsubscribed" (its addresses are
suppressed as `erased`) and sends no event: nothing may start its workflow
again.

Per channel. The token names the channel of the message it came in: an
email link suppresses the email address and withdraws the email consent
only; SMS is not affected (and the page says so, with the addresses
masked). Marketing journeys that have nothing left to send the contact
exit; the others go on without the channel (see `workflows/contact.py`).
The consent change is recorded with this request's IP address and user
agent, and whether a mail client's one-click (`list-unsubscribe`) or the
page's button (`unsubscribe-link`) made it.

Replays. A valid link is honoured whenever it is used, also long after the
message and after the contact opted in again: an opt-out must be as easy as
the opt-in and never be refused (CAN-SPAM, GDPR art. 21(3), RFC 8058); the
token can do nothing but what the person it was sent to asks; and the cost of
honouring a stale click (a person who re-subscribes) is small next to the
cost of ignoring a real one (mail nobody wanted, a complaint, a fine). What a
replay must not do is count twice: the event id is derived from the token and
what the click opts out of, the contact's address on the channel and when it
last granted consent there (its consent history).
Clicking twice, or a mail client retrying, is one event; a click after the
contact re-consented or changed its address is a new opt-out that suppresses
the current address and makes the journeys started since exit.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from html import escape

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse

from models.db import session_factory
from models.events import BehaviorEvent
from models.tables import Contact
from rules.consent import ConsentOrigin, address_on, apply_scope, latest_grant
from rules.opt_outs import suppression_scope
from rules.templates import load_brand
from rules.unsubscribe import InvalidToken, UnsubscribeRequest, verify_unsubscribe_token
from runtime.logs import mask_text
from starter.api.dependencies import Services, ServicesDep
from starter.services.intake import accept_events
from starter.services.operations import Gone, NotFound, get_contact

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


CHANNEL_NAMES = {"email": "email", "sms": "text messages (SMS)"}
"""How the pages name a channel."""
ONE_CLICK_BODY = b"List-Unsubscribe=One-Click"
"""What a mail client posts for RFC 8058 one-click (the page's button posts nothing)."""


def click_id(token: str, address: str | None, granted_at: datetime | None) -> str:
    """The event id of an unsubscribe click: the same for a replay, new once the contact's
    address changed or it opted in again on the channel (see the module docstring)."""
    click = f"{token}|{address or ''}|{granted_at.isoformat() if granted_at else ''}"
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


def what_changes(contact: Contact, channel: str, brand: str) -> str:
    """`k***@example.com will no longer receive marketing email from Brand.`, and what is
    not affected: the contact's other channel (addresses masked; HTML-escaped)."""
    address = address_on(contact, channel)
    who = mask_text(address) if address else "You"
    sentence = (
        f"{escape(who)} will no longer receive marketing {CHANNEL_NAMES[channel]} "
        f"from {escape(brand)}."
    )
    other = "sms" if channel == "email" else "email"
    other_address = address_on(contact, other)
    if other_address:
        sentence += (
            f" {CHANNEL_NAMES[other].capitalize()} to {escape(mask_text(other_address))} "
            "are not affected."
        )
    return sentence


async def _one_click(request: Request) -> bool:
    """Whether a mail client's RFC 8058 one-click made the request (not the page's button)."""
    return (await request.body()).strip() == ONE_CLICK_BODY


def _brand_name(held: Services) -> str:
    return load_brand(held.settings.templates_dir)["name"]


@router.get("/u/{token}", response_class=HTMLResponse, summary="Unsubscribe confirmation page")
async def confirm_page(held: ServicesDep, token: str = TokenPath) -> HTMLResponse:
    """Ask for confirmation (a link prefetcher or scanner must not unsubscribe anyone)."""
    request = _verify(token, held.settings.unsubscribe_secret.get_secret_value())
    if isinstance(request, HTMLResponse):
        return request
    try:
        contact = await get_contact(held.engine, request.contact_id)
    except (NotFound, Gone):  # erased: nothing left to send to, and no event to send
        return page("You are unsubscribed", "<p>You will not hear from us again.</p>")
    return page(
        "Unsubscribe?",
        f"<p>{what_changes(contact, _channel(request), _brand_name(held))}</p>"
        '<form method="post"><button type="submit">Unsubscribe</button></form>',
    )


def _channel(request: UnsubscribeRequest) -> str:
    """The token's channel (tokens are only issued for email and SMS; any other counts as email)."""
    return request.channel if request.channel in CHANNEL_NAMES else "email"


@router.post("/u/{token}", response_class=HTMLResponse, summary="One-click unsubscribe")
async def unsubscribe(request: Request, held: ServicesDep, token: str = TokenPath) -> HTMLResponse:
    """Unsubscribe the contact the token names from marketing on the token's channel.

    The suppression and the consent change (with this request's IP address
    and user agent) are written first; then the `unsubscribed` event (with
    the channel) makes the journeys that have nothing left to send exit.
    """
    verified = _verify(token, held.settings.unsubscribe_secret.get_secret_value())
    if isinstance(verified, HTMLResponse):
        return verified
    channel = _channel(verified)
    origin = ConsentOrigin(
        source="list-unsubscribe" if await _one_click(request) else "unsubscribe-link",
        wording=f"unsubscribe from marketing {CHANNEL_NAMES[channel]}",
        ip=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
    )
    async with session_factory(held.engine)() as session:
        contact = await session.get(Contact, verified.contact_id)
        if contact is None:  # erased meanwhile: nothing left to send to
            return page("You are unsubscribed", "<p>You will not hear from us again.</p>")
        granted_at = await latest_grant(session, contact.id, channel)
        event = BehaviorEvent(
            event_id=click_id(token, address_on(contact, channel), granted_at),
            contact_id=contact.id,
            type="unsubscribed",
            occurred_at=datetime.now(UTC),
            properties={"channel": channel, "source": "one-click"},
        )
        scope = suppression_scope(event)
        assert scope is not None
        await apply_scope(
            session,
            contact,
            scope,
            key=held.settings.suppression_key(),
            at=event.occurred_at,
            origin=origin,
            change_key=event.event_id,
        )
        await session.commit()
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
        f"<p>{what_changes(contact, channel, _brand_name(held))} "
        "Messages about your account (renewals, receipts) may still reach you.</p>",
    )
