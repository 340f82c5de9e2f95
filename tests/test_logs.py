"""No personal data in logs: `mask_personal_data` and `configure_logging` end to end."""

from __future__ import annotations

import json
import logging
from collections import namedtuple
from collections.abc import Iterator
from typing import Any, Literal

import pytest
import structlog

from runtime.logs import configure_logging, mask_personal_data

EMAIL = "ada.lovelace@example.com"
MASKED_EMAIL = "a***@example.com"
PHONE = "+14155550123"
MASKED_PHONE = "+*********23"

FOREIGN_LOGGERS = ("uvicorn", "uvicorn.error", "temporalio", "temporalio.worker")


def mask(value: Any) -> Any:
    """Run the processor on a one-value event dict and return the value."""
    return mask_personal_data(None, "info", {"value": value})["value"]


# --- the processor -------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        (EMAIL, MASKED_EMAIL),
        ("bob@example.org", "b***@example.org"),
        ("ada+news@mail.example.co.uk", "a***@mail.example.co.uk"),
        ("o_brien.x-y@sub-domain.example.io", "o***@sub-domain.example.io"),
        ("zoë.müller@example.de", "z***@example.de"),
        ("sent to <ada@example.com>.", "sent to <a***@example.com>."),
        ("to=ada@example.com,cc=bob@example.org", "to=a***@example.com,cc=b***@example.org"),
        ("GET /contacts/ada%40example.com HTTP/1.1", "GET /contacts/a***%40example.com HTTP/1.1"),
    ],
)
def test_masks_email_addresses(raw: str, masked: str) -> None:
    assert mask(raw) == masked


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("+14155550123", "+*********23"),
        ("+1 415-555-0123", "+*********23"),
        ("+1 (415) 555-0123", "+*********23"),
        ("+44 20 7946 0958", "+**********58"),
        ("+4930123", "+*****23"),  # 7 digits: the shortest E.164 number masked
        ("(415) 555-0123", "********23"),
        ("415-555-0123", "********23"),
        ("415.555.0123", "********23"),
        ("415 555 0123", "********23"),
        ("1-415-555-0123", "*********23"),
        ("020 7946 0958", "*********58"),
        ("06 12 34 56 78", "********78"),
        ("call +14155550123 now", "call +*********23 now"),
        ("phone=+14155550123,", "phone=+*********23,"),
        ("?phone=%2B14155550123&x=1", "?phone=%2B*********23&x=1"),
    ],
)
def test_masks_phone_numbers(raw: str, masked: str) -> None:
    assert mask(raw) == masked


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-22T14:37:05",
        "2026-11-22T14:37:05.123456+00:00",
        "2026-11-22 14:37:05",
        "2026-11-22",
        "12:30 01-02-2026 12:30",
        "took 201.5 ms",
        "duration=0.123456789",
        "at 1732286225.123",
        "ts=1732286225123",
        "count=1234567890",
        "sizes 1024 2048 4096",
        "3f2b8c1e-9d4a-4e2b-8f1a-0c9d8e7f6a5b",
        "welcome-series-c-42/0192f0a1-7b3c-7d2e-9f10-1a2b3c4d5e6f",
        "workflow_id=welcome-1732286225123",
        "127.0.0.1:7233",
        "192.168.100.1",
        "http://localhost:8000/contacts/c-42 200",
        '"GET /contacts HTTP/1.1" 404',
        "+00:00",
        "+3600",
        "v1.2.3",
        "id 0123-4567-8901-2345-6789",
        "retry 3 of 5 in 10 s",
        "no address here @ all",
        "user@localhost",
    ],
)
def test_leaves_ordinary_numbers_and_text_alone(text: str) -> None:
    assert mask(text) == text


def test_masks_every_value_but_no_key() -> None:
    event_dict: dict[str, Any] = {
        "event": f"sent welcome to {EMAIL}",
        "ada@example.com": "the key stays",
        "phone": PHONE,
        "attempt": 3,
        "took": 201.5,
        "ok": True,
        "missing": None,
    }
    assert mask_personal_data(None, "info", event_dict) == {
        "event": f"sent welcome to {MASKED_EMAIL}",
        "ada@example.com": "the key stays",
        "phone": MASKED_PHONE,
        "attempt": 3,
        "took": 201.5,
        "ok": True,
        "missing": None,
    }


def test_masks_nested_structures_without_mutating_them() -> None:
    Pair = namedtuple("Pair", ["email", "phone"])
    payload: dict[str, Any] = {
        "contact": {"email": EMAIL, "phones": [PHONE, "(415) 555-0123"], "age": 36},
        "recipients": (EMAIL, "bob@example.org"),
        "tags": {"vip", EMAIL},
        "pair": Pair(EMAIL, PHONE),
    }
    snapshot = repr(payload)

    masked = mask(payload)

    assert masked == {
        "contact": {"email": MASKED_EMAIL, "phones": [MASKED_PHONE, "********23"], "age": 36},
        "recipients": (MASKED_EMAIL, "b***@example.org"),
        "tags": {"vip", MASKED_EMAIL},
        "pair": Pair(MASKED_EMAIL, MASKED_PHONE),
    }
    assert type(masked["pair"]) is Pair
    assert repr(payload) == snapshot  # the caller's data is untouched


def test_masks_other_objects_through_their_repr() -> None:
    class Contact:
        def __repr__(self) -> str:
            return f"Contact(email={EMAIL!r})"

    class Plain:
        pass

    plain = Plain()
    assert mask(Contact()) == f"Contact(email={MASKED_EMAIL!r})"
    assert mask(ValueError(f"bad {EMAIL}")) == f"ValueError('bad {MASKED_EMAIL}')"
    assert mask(plain) is plain  # nothing personal: the object itself is kept


def test_never_raises() -> None:
    class Hostile:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    hostile = Hostile()
    loop: list[Any] = [EMAIL]
    loop.append(loop)
    deep: Any = EMAIL
    for _ in range(50):
        deep = [deep]

    assert mask(hostile) is hostile
    assert EMAIL not in repr(mask(loop))
    assert EMAIL not in repr(mask(deep))
    assert mask(b"bytes for ada@example.com") == "b'bytes for a***@example.com'"


def test_masking_is_idempotent() -> None:
    once = mask(f"{EMAIL} {PHONE} (415) 555-0123 020 7946 0958")
    assert mask(once) == once


# --- end to end: configure_logging, structlog and stdlib, JSON and console ----------


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Undo `configure_logging` (root handlers/level, structlog) after the test."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    alembic = logging.getLogger("alembic")
    saved_alembic_level = alembic.level
    saved_foreign = {}
    for name in FOREIGN_LOGGERS:
        logger = logging.getLogger(name)
        saved_foreign[name] = (logger.handlers[:], logger.level, logger.propagate, logger.disabled)
        # Make sure these records reach the root handler whatever earlier tests did.
        logger.handlers[:], logger.propagate, logger.disabled = [], True, False
        logger.setLevel(logging.NOTSET)
    try:
        yield
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        alembic.setLevel(saved_alembic_level)
        for name, (handlers, level, propagate, disabled) in saved_foreign.items():
            logger = logging.getLogger(name)
            logger.handlers[:], logger.propagate, logger.disabled = handlers, propagate, disabled
            logger.setLevel(level)
        structlog.reset_defaults()


def _log_everything() -> None:
    """Log personal data through every route `configure_logging` handles."""
    log = structlog.get_logger("starter.test")
    log.info(
        f"sent welcome to {EMAIL}",
        to=EMAIL,
        phone=PHONE,
        contact={"email": EMAIL, "phones": ["(415) 555-0123"]},
        attempt=3,
        took=201.5,
        run_id="0192f0a1-7b3c-7d2e-9f10-1a2b3c4d5e6f",
        at="2026-11-22T14:37:05",
    )
    logging.getLogger("uvicorn.error").info("request from %s / %s", EMAIL, "+1 415-555-0123")
    logging.getLogger("temporalio.worker").warning(f"activity failed for {EMAIL}")
    try:
        raise ValueError(f"cannot deliver to {EMAIL} or {PHONE}")
    except ValueError:
        log.exception("delivery failed")
        logging.getLogger("temporalio").exception("stdlib saw it too: %s", EMAIL)


def _assert_masked(output: str) -> None:
    assert output  # the handler wrote to the captured stream
    for raw in (EMAIL, "ada.lovelace", PHONE, "415-555-0123", "(415) 555-0123"):
        assert raw not in output
    assert MASKED_EMAIL in output
    assert MASKED_PHONE in output
    assert f"ValueError: cannot deliver to {MASKED_EMAIL} or {MASKED_PHONE}" in output


@pytest.mark.usefixtures("restore_logging")
def test_json_output_is_masked(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(fmt="json")  # after capture started: the handler writes to it

    _log_everything()

    err = capsys.readouterr().err
    _assert_masked(err)
    lines = [json.loads(line) for line in err.splitlines()]
    assert [line["logger"] for line in lines] == [
        "starter.test",
        "uvicorn.error",
        "temporalio.worker",
        "starter.test",
        "temporalio",
    ]
    first = lines[0]
    assert first["event"] == f"sent welcome to {MASKED_EMAIL}"
    assert first["to"] == MASKED_EMAIL
    assert first["contact"] == {"email": MASKED_EMAIL, "phones": ["********23"]}
    # Ordinary values survive, with their types.
    assert first["attempt"] == 3
    assert first["took"] == 201.5
    assert first["run_id"] == "0192f0a1-7b3c-7d2e-9f10-1a2b3c4d5e6f"
    assert first["at"] == "2026-11-22T14:37:05"
    assert first["timestamp"].startswith("20")  # the real ISO timestamp is intact
    assert lines[1]["event"] == f"request from {MASKED_EMAIL} / {MASKED_PHONE}"
    for line in lines[3:]:
        assert "Traceback (most recent call last)" in line["exception"]
        assert f"cannot deliver to {MASKED_EMAIL}" in line["exception"]


@pytest.mark.usefixtures("restore_logging")
def test_console_output_is_masked(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(fmt="console")

    _log_everything()

    err = capsys.readouterr().err
    _assert_masked(err)
    assert "request from" in err and "stdlib saw it too" in err
    assert "0192f0a1-7b3c-7d2e-9f10-1a2b3c4d5e6f" in err
    assert "2026-11-22T14:37:05" in err
    assert err.count("Traceback (most recent call last)") == 2


@pytest.mark.parametrize("fmt", ["json", "console"])
@pytest.mark.usefixtures("restore_logging")
def test_records_reaching_other_handlers_carry_masked_structlog_events(
    fmt: Literal["json", "console"], capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(fmt=fmt)
    seen: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    logging.getLogger().addHandler(Collect())
    structlog.get_logger("starter.test").info("sent", to=EMAIL)

    assert EMAIL not in repr(seen[0].msg)
    assert MASKED_EMAIL in repr(seen[0].msg)
    assert EMAIL not in capsys.readouterr().err
