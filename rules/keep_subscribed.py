"""Signed "keep me subscribed" tokens: the link in re-engagement's last-chance email.

Same format and lifetime as the unsubscribe token (`rules.unsubscribe`), signed
with a key derived from the same secret for this purpose only: a "keep me
subscribed" token is refused as an unsubscribe token and the other way round,
so neither link can be turned into the other.
"""

from __future__ import annotations

from datetime import datetime

from rules.unsubscribe import InvalidToken, sign_unsubscribe_token, verify_unsubscribe_token

__all__ = ["InvalidToken", "sign_keep_subscribed_token", "verify_keep_subscribed_token"]

_PURPOSE = "keep-subscribed"


def _key(secret: str) -> str:
    return f"{_PURPOSE}:{secret}"


def sign_keep_subscribed_token(
    contact_id: str, channel: str, *, secret: str, issued_at: datetime
) -> str:
    """The token of a contact's "keep me subscribed" link in a message on `channel`."""
    return sign_unsubscribe_token(contact_id, channel, secret=_key(secret), issued_at=issued_at)


def verify_keep_subscribed_token(token: str, *, secret: str, now: datetime) -> str:
    """The contact a valid "keep me subscribed" token names.

    Raises:
        InvalidToken: malformed, forged (or an unsubscribe token), or expired.
    """
    try:
        return verify_unsubscribe_token(token, secret=_key(secret), now=now).contact_id
    except InvalidToken as error:
        raise InvalidToken(str(error).replace("unsubscribe", "keep-subscribed")) from error
