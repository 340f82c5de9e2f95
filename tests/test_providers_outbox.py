"""The outbox providers write one file per idempotency key, once."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from activities.providers import OutboxEmailProvider, OutboxSmsProvider, OutgoingSms


def make_sms(body: str, key: str = "pricing-abandon-ada/nudge") -> OutgoingSms:
    return OutgoingSms(
        idempotency_key=key,
        to_number="+14155550100",
        body=body,
        created_at=datetime(2025, 3, 4, 9, 30, tzinfo=UTC),
    )


async def test_sms_is_written_once_per_key(tmp_path: Path) -> None:
    provider = OutboxSmsProvider(tmp_path)

    first = await provider.deliver(make_sms("Still thinking it over?"))
    target = tmp_path / "pricing-abandon-ada" / "nudge.sms.txt"
    written = target.stat()
    second = await provider.deliver(make_sms("A different body, same key"))

    assert first == second
    assert target.read_text() == (
        "To: +14155550100\n"
        "Date: Tue, 04 Mar 2025 09:30:00 +0000\n"
        "Idempotency-Key: pricing-abandon-ada/nudge\n"
        "\n"
        "Still thinking it over?\n"
    )
    assert target.stat().st_mtime_ns == written.st_mtime_ns
    assert target.stat().st_ino == written.st_ino
    assert sorted(path.name for path in tmp_path.rglob("*") if path.is_file()) == ["nudge.sms.txt"]


async def test_each_key_gets_its_own_sms_file_and_id(tmp_path: Path) -> None:
    provider = OutboxSmsProvider(tmp_path)

    nudge = await provider.deliver(make_sms("one"))
    reminder = await provider.deliver(make_sms("two", key="pricing-abandon-ada/reminder"))

    assert nudge != reminder
    assert (tmp_path / "pricing-abandon-ada" / "reminder.sms.txt").read_text().endswith("two\n")


@pytest.mark.parametrize("key", ["../escape", "/etc/passwd", "a/../../b", ".hidden", "a//b"])
@pytest.mark.parametrize("provider_class", [OutboxEmailProvider, OutboxSmsProvider])
def test_unsafe_keys_are_refused(
    tmp_path: Path, provider_class: type[OutboxEmailProvider | OutboxSmsProvider], key: str
) -> None:
    with pytest.raises(ValueError, match="not a safe outbox path"):
        provider_class(tmp_path).path_for(key)
