"""structlog configuration: JSON when not on a TTY, readable console otherwise.

Activities and services bind context with
`structlog.contextvars.bound_contextvars(workflow_id=…, contact_id=…)`.

No personal data in logs: every line — structlog's own and the standard
library's (uvicorn, temporalio, sqlalchemy, …), JSON and console alike — passes
through `mask_personal_data` just before it is rendered, which masks email
addresses (`ada.lovelace@example.com` → `a***@example.com`) and phone numbers
(`+1 415-555-0123` → `+*********23`) in the message, in every string value
(nested ones too) and in formatted tracebacks. Still, do not log raw email
addresses or phone numbers on purpose: masking is a safety net, not a licence.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable
from typing import Any, Literal

import structlog
from structlog.typing import EventDict, WrappedLogger

# --- personal-data masking ---------------------------------------------------

# An address: a local part of word characters, dots, `%`, `+`, `-`, then `@`
# (or `%40`, as in URL paths and query strings of HTTP access logs), then
# dot-separated labels ending in an alphabetic top-level domain. `*` is
# deliberately not a local-part character, so masked output (`a***@…`) never
# matches again: masking is idempotent.
_EMAIL = re.compile(
    r"(?P<first>[\w%+-])[\w.%+-]*(?P<at>@|%40)"
    r"(?P<domain>(?:[^\W_](?:[\w-]*[^\W_])?\.)+[^\W\d_]{2,})"
)

# Phone numbers. Ordinary numbers (timestamps, durations, ports, statuses,
# counts, ISO dates, UUIDs, run ids) must survive, so only three shapes count:
#   1. E.164 / international: a `+` (or `%2B`, URL-encoded), then 7–15
#      digits, optionally grouped by spaces, dots, dashes or parentheses
#      (`+14155550123`, `+1 415-555-0123`, `+44 (20) 7946 0958`);
#   2. North-American formatted: `(415) 555-0123`, `415-555-0123`,
#      `415.555.0123`, `415 555 0123`, optionally prefixed with `1-`/`1 `;
#   3. national numbers with a trunk `0` and separators, 10–11 digits in all:
#      `020 7946 0958`, `06 12 34 56 78`, `030-1234-5678`.
# Forms 2 and 3 need separators and 10+ digits; none of them may touch a
# letter, digit, dot-digit, dash-digit or colon on either side, which keeps
# `2026-11-22T14:37:05`, `2026-11-22 14:37:05`, `192.168.100.1`, UUIDs and
# `+00:00` offsets intact.
_SEP = r"[ ().-]"
_PHONE = re.compile(
    r"(?<![\w+])(?:\+|%2[Bb])(?:\d" + _SEP + r"{0,2}){6,14}\d(?!\d)"
    r"|(?<![\w.:+-])(?:1[ .-]?)?(?:\(\d{3}\) ?|\d{3}[ .-])\d{3}[ .-]\d{4}(?![\w:]|[.-]\d)"
    r"|(?<![\w.:+-])0\d{1,4}(?:[ .-]\d{2,4}){2,4}(?![\w:]|[.-]\d)"
)
_DIGITS = re.compile(r"\d")

_MAX_DEPTH = 8  # deeper (or self-referencing) structures are masked via repr()


def _mask_email(match: re.Match[str]) -> str:
    return f"{match['first']}***{match['at']}{match['domain']}"


def _mask_phone(match: re.Match[str]) -> str:
    text = match.group()
    digits = _DIGITS.findall(text)
    if text[0] == "+":
        prefix = "+"
    elif text[0] == "%":
        prefix = text[:3]  # `%2B`
        digits = digits[1:]  # the `2` of `%2B` is not part of the number
    elif 10 <= len(digits) <= 12:
        prefix = ""
    else:
        return text  # trunk-prefixed digit groups too short/long for a phone number
    return prefix + "*" * (len(digits) - 2) + "".join(digits[-2:])


def mask_text(text: str) -> str:
    """Mask email addresses and phone numbers in *text* (see `mask_personal_data`)."""
    if "@" in text or "%40" in text:
        text = _EMAIL.sub(_mask_email, text)
    return _PHONE.sub(_mask_phone, text)


_PLAIN = (int, float, complex, bool, type(None))


def _mask_value(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, _PLAIN):
        return value
    try:
        if depth < _MAX_DEPTH:
            if isinstance(value, dict):
                return {k: _mask_value(v, depth + 1) for k, v in value.items()}
            if isinstance(value, list):
                return [_mask_value(v, depth + 1) for v in value]
            if isinstance(value, tuple):
                items = [_mask_value(v, depth + 1) for v in value]
                make: Callable[..., Any] | None = getattr(value, "_make", None)
                return make(items) if make is not None else tuple(items)
            if isinstance(value, set | frozenset):
                return type(value)(_mask_value(v, depth + 1) for v in value)
        # Anything else (a model, an exception, bytes, …) is rendered with
        # repr() by both renderers; if that text holds personal data, log the
        # masked text instead, otherwise leave the object untouched.
        text = repr(value)
        masked = mask_text(text)
        return value if masked == text else masked
    except Exception:  # a log line must never fail
        return value


def mask_personal_data(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """structlog processor: mask email addresses and phone numbers.

    Every value of *event_dict* is masked — the `event` message, other string
    values, strings nested in dicts, lists, tuples and sets, and the
    `exception` text written by `format_exc_info`; keys are not. Ints, floats,
    bools and None pass through. Other objects are checked through their
    `repr()` (which is what the renderers print) and replaced by the masked
    text only if it contained personal data. Containers are copied, never
    mutated, so the caller's data stays intact. The processor never raises.

    * Emails keep the first character of the local part and the whole domain:
      `ada.lovelace@example.com` → `a***@example.com`.
    * Phones keep a leading `+` (if any) and their last two digits; every other
      digit becomes `*` and separators are dropped: `+1 415-555-0123` →
      `+*********23`, `(415) 555-0123` → `********23`. Only `+` followed by
      7–15 digits, or clearly formatted numbers with separators and 10+ digits
      count as phones (see `_PHONE`), so timestamps, durations, ports, HTTP
      statuses, counts, ISO dates and UUIDs are not touched.

    Exceptions: the processor only sees text, so tracebacks must already be
    text when it runs. `configure_logging` therefore runs
    `structlog.processors.format_exc_info` right before it in *both* output
    modes — also for the console renderer, which would otherwise format
    `exc_info` itself after masking (and, with Rich, print local variables).
    The console then shows a plain-text traceback instead of a Rich one; that
    is the simplest arrangement under which no traceback can escape masking.
    """
    for key, value in event_dict.items():
        event_dict[key] = _mask_value(value)
    return event_dict


# --- configuration -------------------------------------------------------------


def configure_logging(
    *, level: str = "INFO", fmt: Literal["auto", "json", "console"] = "auto"
) -> None:
    """Configure structlog and route the standard library's logging through it.

    Both paths end in the handler's `ProcessorFormatter`, whose final chain is
    `format_exc_info` → `mask_personal_data` → renderer, so every rendered line
    is masked. structlog's own events are also masked before they are handed to
    the standard library, so the event dict carried on the `LogRecord` holds no
    personal data for any other handler either (e.g. pytest's `caplog`).

    Args:
        level: Minimum level, e.g. `INFO`.
        fmt: `json`, `console`, or `auto` (JSON unless stderr is a TTY).
    """
    as_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            *shared,
            mask_personal_data,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                mask_personal_data,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("alembic").setLevel(logging.WARNING)
