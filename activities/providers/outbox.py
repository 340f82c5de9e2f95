"""Local delivery: one file per message in a folder, written once per key.

The file for key `welcome-series-c1/day0` is `<folder>/welcome-series-c1/day0.eml`
(email) or `<folder>/welcome-series-c1/day0.sms.txt` (SMS). It is written to a
temporary file and linked into place, so a file that exists is complete, and
a second delivery of the same key finds it and writes nothing.

The outbox is for development and tests, so a file is not forced to disk
(no fsync): a worker that crashes or is killed loses nothing, since the file is
in the operating system's cache once written; only a power cut or a kernel crash
in the next seconds could leave a file empty.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from collections.abc import Callable
from email.utils import format_datetime
from pathlib import Path

from activities.providers.messages import OutgoingEmail, OutgoingSms, build_mime

_SAFE_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)*$")


def outbox_path(directory: Path, idempotency_key: str, suffix: str) -> Path:
    """Where the message with this key is (or will be) stored.

    Raises:
        ValueError: the key would escape `directory` or is not a plain relative path.
    """
    if not _SAFE_KEY.fullmatch(idempotency_key) or ".." in idempotency_key:
        raise ValueError(f"idempotency key {idempotency_key!r} is not a safe outbox path")
    return directory / f"{idempotency_key}{suffix}"


def write_once(target: Path, content: Callable[[], bytes]) -> None:
    """Atomically create `target` with `content()` unless it already exists.

    `content` is only called when the file is missing. Two concurrent writers
    race on `os.link`; the loser's copy is discarded, the winner's stays.
    """
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(content())
        try:
            os.link(temporary, target)
        except FileExistsError:
            pass
    finally:
        os.unlink(temporary)


class OutboxEmailProvider:
    """Email to `<directory>/<key>.eml` (the RFC 5322 message)."""

    name = "outbox"

    def __init__(self, directory: Path) -> None:
        """Deliver into `directory` (created when needed)."""
        self.directory = directory

    def path_for(self, idempotency_key: str) -> Path:
        """Where the message with this key is (or will be) stored."""
        return outbox_path(self.directory, idempotency_key, ".eml")

    async def deliver(self, email: OutgoingEmail) -> str:
        """Write the message file unless it is already there; return its Message-ID."""
        target = self.path_for(email.idempotency_key)
        await asyncio.to_thread(write_once, target, lambda: bytes(build_mime(email)))
        return email.message_id


class OutboxSmsProvider:
    """Text messages to `<directory>/<key>.sms.txt`.

    The file holds `To:`, `Date:` and `Idempotency-Key:` lines, a blank line
    and the body, in UTF-8.
    """

    name = "outbox"

    def __init__(self, directory: Path) -> None:
        """Deliver into `directory` (created when needed)."""
        self.directory = directory

    def path_for(self, idempotency_key: str) -> Path:
        """Where the message with this key is (or will be) stored."""
        return outbox_path(self.directory, idempotency_key, ".sms.txt")

    async def deliver(self, sms: OutgoingSms) -> str:
        """Write the message file unless it is already there; return its local id."""
        target = self.path_for(sms.idempotency_key)
        await asyncio.to_thread(write_once, target, lambda: _sms_file(sms))
        return sms.message_id


def _sms_file(sms: OutgoingSms) -> bytes:
    head = (
        f"To: {sms.to_number}\n"
        f"Date: {format_datetime(sms.created_at)}\n"
        f"Idempotency-Key: {sms.idempotency_key}\n"
    )
    return f"{head}\n{sms.body}\n".encode()
