"""Email delivery providers.

A provider takes a fully rendered `OutgoingEmail` and delivers it. Every
provider is idempotent on `OutgoingEmail.idempotency_key`: delivering the same
key twice delivers once and returns the same provider message id, so a
retried activity never sends a second copy.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from pathlib import Path
from typing import Protocol

_SAFE_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)*$")


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
        digest = hashlib.sha256(self.idempotency_key.encode()).hexdigest()[:32]
        domain = self.from_address.rpartition("@")[2] or "localhost"
        return f"<{digest}@{domain}>"


def build_mime(email: OutgoingEmail) -> EmailMessage:
    """Build the RFC 5322 message: text and HTML alternatives plus headers."""
    message = EmailMessage()
    message["Message-ID"] = email.message_id
    message["Date"] = format_datetime(email.created_at)
    message["From"] = formataddr((email.from_name, email.from_address))
    message["To"] = email.to_address
    message["Reply-To"] = email.reply_to
    message["Subject"] = email.subject
    for name, value in email.headers.items():
        message[name] = value
    message.set_content(email.text)
    message.add_alternative(email.html, subtype="html")
    return message


class EmailProvider(Protocol):
    """Delivers rendered emails, idempotently on their key."""

    name: str

    async def deliver(self, email: OutgoingEmail) -> str:
        """Deliver `email` once; return the provider's message id."""
        ...


class OutboxEmailProvider:
    """Local delivery: one `.eml` file per message under a folder.

    The file for key `welcome-series-c1/day0` is `<folder>/welcome-series-c1/day0.eml`.
    It is written to a temporary file and linked into place, so a file that
    exists is complete, and a second delivery of the same key finds it and
    writes nothing.
    """

    name = "outbox"

    def __init__(self, directory: Path) -> None:
        """Deliver into `directory` (created when needed)."""
        self.directory = directory

    def path_for(self, idempotency_key: str) -> Path:
        """Where the message with this key is (or will be) stored."""
        if not _SAFE_KEY.fullmatch(idempotency_key) or ".." in idempotency_key:
            raise ValueError(f"idempotency key {idempotency_key!r} is not a safe outbox path")
        return self.directory / f"{idempotency_key}.eml"

    async def deliver(self, email: OutgoingEmail) -> str:
        """Write the message file unless it is already there."""
        await asyncio.to_thread(self._write_once, email)
        return email.message_id

    def _write_once(self, email: OutgoingEmail) -> None:
        target = self.path_for(email.idempotency_key)
        if target.exists():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(bytes(build_mime(email)))
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(temporary, target)
            except FileExistsError:
                pass
        finally:
            os.unlink(temporary)
