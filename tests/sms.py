"""Texts to our number, as the SMS provider posts them to the gateway (signed)."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx

from starter.api.webhooks import SIGNATURE_HEADER, sign_webhook
from starter.services.sms_keywords import message_digest
from tests.gateway import SMS_WEBHOOK_SECRET


def inbound(from_number: str, body: str, *, message_id: str | None = None) -> dict[str, str]:
    """One inbound message (a fresh provider id unless given)."""
    return {
        "id": message_id or f"SM{uuid.uuid4().hex}",
        "from_number": from_number,
        "body": body,
        "received_at": datetime.now(UTC).isoformat(),
    }


async def post_texts(
    url: str, *messages: dict[str, str], secret: str | None = SMS_WEBHOOK_SECRET
) -> httpx.Response:
    """POST the messages to `/webhooks/sms`, signed with `secret` (unsigned when None)."""
    body = json.dumps({"messages": list(messages)}).encode()
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers[SIGNATURE_HEADER] = sign_webhook(body, secret, timestamp=int(time.time()))
    async with httpx.AsyncClient(base_url=url, timeout=30) as provider:
        return await provider.post("/webhooks/sms", content=body, headers=headers)


def reply_file(outbox: Path, message: dict[str, str]) -> Path:
    """Where the outbox SMS provider writes the answer to an inbound message."""
    return outbox / "sms-keywords" / f"{message_digest(message['id'])}.sms.txt"
