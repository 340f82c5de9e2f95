"""The "keep me subscribed" link of re-engagement's last-chance email.

`GET /k/{token}` shows a page with one button; `POST /k/{token}` records a
`subscription_confirmed` event (a contact-initiated event) through the same
intake as any other. The contact workflow then ends the re-engagement journey
as `reactivated`, resets the inactivity timer and lifts a sunset. Consent is not
touched: the contact had it (and keeps it); this only says they are listening.

The GET does not act on its own, like the unsubscribe page: mail security
scanners open every link in a message, and a GET that counted would mark every
contact behind such a scanner as active, which defeats the list hygiene the
sunset is for. The token is checked first (HMAC, expiry, purpose): a forged,
expired or unsubscribe token gets 400 and changes nothing. A replay (a double
click, a retry) is one event: its id is derived from the token.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from html import escape

from fastapi import APIRouter, Path
from fastapi.responses import HTMLResponse

from models.events import BehaviorEvent
from rules.keep_subscribed import InvalidToken, verify_keep_subscribed_token
from starter.api.dependencies import Services, ServicesDep
from starter.api.unsubscribe import page
from starter.services.intake import accept_events
from starter.services.operations import Gone, NotFound, get_contact

router = APIRouter(tags=["unsubscribe"])

TokenPath = Path(max_length=1_000, description='The signed token of the "keep me subscribed" link.')

CONFIRMED_EVENT = "subscription_confirmed"
"""What a click records: contact-initiated, so it reactivates (`models.events`)."""


def _contact_of(token: str, held: Services) -> str | HTMLResponse:
    """The contact the token names, or the page saying why the link is refused."""
    try:
        return verify_keep_subscribed_token(
            token, secret=held.settings.unsubscribe_secret.get_secret_value(), now=datetime.now(UTC)
        )
    except InvalidToken as error:
        return page(
            "This link is not valid",
            f"<p>{escape(str(error).capitalize())}. Nothing was changed. To keep hearing from "
            "us, use the link in a recent email, or reply to it.</p>",
            status_code=400,
        )


@router.get("/k/{token}", response_class=HTMLResponse, summary="Keep me subscribed: the page")
async def keep_page(held: ServicesDep, token: str = TokenPath) -> HTMLResponse:
    """Offer the one button that keeps the contact on the list."""
    contact_id = _contact_of(token, held)
    if isinstance(contact_id, HTMLResponse):
        return contact_id
    return page(
        "Keep getting our emails?",
        "<p>One click and you stay on the list.</p>"
        '<form method="post"><button type="submit">Keep me subscribed</button></form>',
    )


@router.post("/k/{token}", response_class=HTMLResponse, summary="Keep me subscribed")
async def keep_subscribed(held: ServicesDep, token: str = TokenPath) -> HTMLResponse:
    """Record `subscription_confirmed` for the contact the token names."""
    contact_id = _contact_of(token, held)
    if isinstance(contact_id, HTMLResponse):
        return contact_id
    try:
        await get_contact(held.engine, contact_id)
    except (NotFound, Gone):  # erased or deleted: nobody left to keep
        return page("Nothing to keep", "<p>We no longer have this address on our list.</p>")
    event = BehaviorEvent(
        event_id=f"keep-subscribed-{hashlib.sha256(token.encode()).hexdigest()[:40]}",
        contact_id=contact_id,
        type=CONFIRMED_EVENT,
        occurred_at=datetime.now(UTC),
        properties={"source": "keep-subscribed-link"},
    )
    await accept_events(
        held.temporal,
        held.engine,
        [event],
        task_queue=held.settings.task_queue,
        day_seconds=held.settings.day_seconds,
        suppression_key=held.settings.suppression_key(),
    )
    return page("You're still on the list", "<p>Thanks! You'll keep getting our emails.</p>")
