"""Signed unsubscribe tokens: the link in every marketing message.

A token is `<payload>.<signature>`, both base64url: the payload names the
contact, the channel and an expiry; the signature is an HMAC-SHA256 of the
payload with the configured secret. The gateway verifies it before it
unsubscribes anyone, so a forged or expired link changes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

TOKEN_LIFETIME = timedelta(days=365)
"""Links keep working for a year (CAN-SPAM asks for at least 30 days)."""


class InvalidToken(ValueError):
    """The token is malformed, forged or expired."""


@dataclass(frozen=True)
class UnsubscribeRequest:
    """What a verified token asks for."""

    contact_id: str
    channel: str
    expires_at: datetime


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(payload: str, secret: str) -> str:
    return _encode(hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest())


def sign_unsubscribe_token(
    contact_id: str, channel: str, *, secret: str, issued_at: datetime
) -> str:
    """Create the token for a contact's unsubscribe link on `channel`."""
    expires_at = issued_at + TOKEN_LIFETIME
    payload = _encode(
        json.dumps(
            {"c": contact_id, "ch": channel, "exp": int(expires_at.timestamp())},
            separators=(",", ":"),
        ).encode()
    )
    return f"{payload}.{_signature(payload, secret)}"


def verify_unsubscribe_token(token: str, *, secret: str, now: datetime) -> UnsubscribeRequest:
    """Check the signature and expiry of `token` and return what it asks for.

    Raises:
        InvalidToken: malformed, wrong signature, or expired.
    """
    payload, _, signature = token.partition(".")
    if not payload or not signature:
        raise InvalidToken("malformed unsubscribe token")
    if not hmac.compare_digest(signature.encode(), _signature(payload, secret).encode()):
        raise InvalidToken("unsubscribe token signature does not match")
    try:
        fields = json.loads(_decode(payload))
        request = UnsubscribeRequest(
            contact_id=str(fields["c"]),
            channel=str(fields["ch"]),
            expires_at=datetime.fromtimestamp(int(fields["exp"]), UTC),
        )
    except (ValueError, KeyError, TypeError) as error:
        raise InvalidToken("malformed unsubscribe token payload") from error
    if request.expires_at <= now:
        raise InvalidToken("unsubscribe token has expired")
    return request
