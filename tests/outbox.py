"""Reading what the outbox provider delivered."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path


def read_outbox(directory: Path) -> dict[str, EmailMessage]:
    """All delivered messages, keyed by idempotency key (`welcome-series-ada/day0`)."""
    parser = BytesParser(policy=policy.default)
    messages: dict[str, EmailMessage] = {}
    for path in sorted(directory.rglob("*.eml")):
        key = path.relative_to(directory).with_suffix("").as_posix()
        parsed = parser.parsebytes(path.read_bytes())
        assert isinstance(parsed, EmailMessage)
        messages[key] = parsed
    return messages


def text_body(message: EmailMessage) -> str:
    """The text/plain part."""
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def html_body(message: EmailMessage) -> str:
    """The text/html part."""
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())
