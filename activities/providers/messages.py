"""Rendered messages handed to providers, and the provider interfaces.

A provider takes a fully rendered message and delivers it. Every provider is
idempotent on the message's `idempotency_key` as far as its transport allows:
the outboxes write once per key, the HTTP APIs receive the key in an
`Idempotency-Key` header, and SMTP carries a Message-ID derived from the key
so receivers can drop a second copy.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email import policy
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import Protocol


def _key_digest(idempotency_key: str) -> str:
    return hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class OutgoingEmail:
    """A rendered email, ready for a provider.

    Attributes:
        idempotency_key: `{workflow_id}/{step}`; the provider delivers it once.
        to_address: Recipient address.
        from_name: Display name of the sender.
        from_address: Sender address.
        reply_to: Reply-To address.
        subject: Rendered subject line.
        text: Plain-text body.
        html: HTML body.
        created_at: When it was rendered (the Date header).
        headers: Extra headers, e.g. `X-Journey`.
    """

    idempotency_key: str
    to_address: str
    from_name: str
    from_address: str
    reply_to: str
    subject: str
    text: str
    html: str
    created_at: datetime
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def message_id(self) -> str:
        """RFC 5322 Message-ID derived from the idempotency key (stable across retries)."""
        domain = self.from_address.rpartition("@")[2] or "localhost"
        return f"<{_key_digest(self.idempotency_key)}@{domain}>"


_LINE_BREAKS_AND_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_ENCODED_WORD_START = "=?"


def header_text(value: str) -> str:
    """`value` as the text of one header line, with nothing a receiver would read as more.

    Subjects carry contact data (`{{ first_name }}, want a second pair of
    eyes?`), so a header must not let it start another header:

    - line breaks and other control characters become a space;
    - `=?` (how an RFC 2047 encoded word starts) gets a zero-width space, so
      the text is shown as typed and never decoded: the email package itself
      decodes an encoded word in a value it is given, and one that hides a
      line break (`=?utf-8?q?=0D=0ABcc:…?=`) would start a `Bcc:` header.
    """
    text = _LINE_BREAKS_AND_CONTROLS.sub(" ", value)
    return text.replace(_ENCODED_WORD_START, "=\u200b?")


class _HeaderClasses(HeaderRegistry):
    """The standard header registry, which builds each header's class once.

    `HeaderRegistry` makes a new class (a `type()` call) for every header it
    parses, about forty per message; they are the same classes every time.
    """

    def __init__(self) -> None:
        """The standard registry, with no class built yet."""
        super().__init__()
        self._built: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        """The class of the header `name` (built on first use)."""
        key = name.lower()
        built = self._built.get(key)
        if built is None:
            built = self._built[key] = super().__getitem__(name)
        return built


MIME_POLICY = policy.default.clone(max_line_length=998, header_factory=_HeaderClasses())
"""Lines up to RFC 5322's hard limit: a long `List-Unsubscribe` URL stays one plain
`<…>` token (folding it at 78 would turn it into encoded words mail clients do not read).
Header classes are built once (`_HeaderClasses`)."""


def build_mime(email: OutgoingEmail) -> EmailMessage:
    """Build the RFC 5322 message: text and HTML alternatives plus headers (every value
    through `header_text`)."""
    message = EmailMessage(policy=MIME_POLICY)
    headers = {
        "Message-ID": email.message_id,
        "Date": format_datetime(email.created_at),
        "From": formataddr((header_text(email.from_name), email.from_address)),
        "To": email.to_address,
        "Reply-To": email.reply_to,
        "Subject": email.subject,
        **email.headers,
    }
    for name, value in headers.items():
        message[name] = header_text(value)
    message.set_content(email.text)
    message.add_alternative(email.html, subtype="html")
    return message


def needs_smtputf8(email: OutgoingEmail) -> bool:
    """Whether an address of `email` is not ASCII (the relay must take SMTPUTF8)."""
    return not (email.from_address + email.to_address + email.reply_to).isascii()


def wire_bytes(email: OutgoingEmail) -> bytes:
    """`build_mime(email)` as it is handed to a relay (SMTP, SES raw) and DKIM-signed.

    CRLF line endings; bodies in 7 bits (quoted-printable or base64), so no
    relay re-encodes them on the way and breaks the signature; headers in
    UTF-8 only where an address needs it (`needs_smtputf8`), else encoded words.
    """
    wire_policy = MIME_POLICY.clone(linesep="\r\n", cte_type="7bit", utf8=needs_smtputf8(email))
    return build_mime(email).as_bytes(policy=wire_policy)


@dataclass(frozen=True)
class OutgoingSms:
    """A rendered text message, ready for a provider.

    Attributes:
        idempotency_key: `{workflow_id}/{step}`; the provider delivers it once.
        to_number: Recipient phone number (E.164, e.g. `+14155550100`).
        body: Rendered text.
        created_at: When it was rendered.
    """

    idempotency_key: str
    to_number: str
    body: str
    created_at: datetime

    @property
    def message_id(self) -> str:
        """Local message id derived from the idempotency key (stable across retries)."""
        return f"sms-{_key_digest(self.idempotency_key)}"


class EmailProvider(Protocol):
    """Delivers rendered emails, idempotently on their key."""

    name: str

    async def deliver(self, email: OutgoingEmail) -> str:
        """Deliver `email` once; return the provider's message id.

        Raises:
            DeliveryError: the provider did not take the message.
        """
        ...


class SmsProvider(Protocol):
    """Delivers rendered text messages, idempotently on their key."""

    name: str

    async def deliver(self, sms: OutgoingSms) -> str:
        """Deliver `sms` once; return the provider's message id.

        Raises:
            DeliveryError: the provider did not take the message.
        """
        ...
