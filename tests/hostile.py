"""Hostile input for property-based tests: strategies and how to run them against a gateway.

Hypothesis drives the synchronous test functions; a gateway served in the test's
event loop is reached from a worker thread (`run_property`), so the loop keeps
serving while hypothesis makes its requests.

`make test` runs a fixed (derandomized) set of examples, so CI is repeatable;
`API_FUZZ_RANDOM=1 API_FUZZ_EXAMPLES=500 .venv/bin/pytest tests/test_hostile_input.py`
explores further.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from models.events import CANONICAL_EVENT_TYPES

EXAMPLES = int(os.environ.get("API_FUZZ_EXAMPLES", "60"))
PROPERTY = settings(
    max_examples=EXAMPLES,
    derandomize=os.environ.get("API_FUZZ_RANDOM") != "1",
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
"""Gateway properties: a modest, repeatable number of examples."""
PER_FIELD = settings(PROPERTY, max_examples=max(EXAMPLES // 4, 5))
"""A property run once per hostile field: fewer examples each."""

HOSTILE_TEXT = (
    "",
    " ",
    "Kim\r\nBcc: evil@attacker.example",
    "a\x00b",
    "line\u2028break",
    "next\x85line",
    "tab\there",
    "\ud800",
    "lone \udfff surrogate",
    "{{ secret }}",
    "{% include 'x' %}",
    "=?utf-8?q?=0D=0ABcc:_evil@attacker.example?=",
    "<script>alert(1)</script>",
    "../../etc/passwd",
    "x" * 129,
    "é" * 70,
    "NaN",
)
"""Strings that have broken, or could break, something downstream."""

INJECTIONS = (
    "\r\nBcc: evil@attacker.example",
    "=?utf-8?q?=0D=0ABcc:_evil@attacker.example?=",
    "=?utf-8?b?DQpCY2M6IGV2aWxAYXR0YWNrZXIuZXhhbXBsZQ==?=",
    "=?iso-8859-1?q?=0ABcc:_evil@attacker.example?=",
    "{{ brand.sender_email }}",
    "{% include 'x' %}{% raw %}",
    "<script>alert(1)</script>",
    "https://[oops",
)
"""What a signup form's name field may carry to break out of a template or a header (the
encoded words hide a line break and `Bcc: …`)."""


def injections() -> st.SearchStrategy[str]:
    """An injection attempt, alone or inside ordinary text."""
    return st.builds("{}{}{}".format, plain_text(8), st.sampled_from(INJECTIONS), plain_text(8))


CONTROL_CHARACTERS = frozenset(
    [*map(chr, range(0x20)), *map(chr, range(0x7F, 0xA0)), "\u2028", "\u2029"]
)


def texts(max_size: int = 40) -> st.SearchStrategy[str]:
    """Any text, lone surrogates and control characters included, or a known troublemaker."""
    return st.sampled_from(HOSTILE_TEXT) | st.text(
        st.characters(codec=None, exclude_categories=()), max_size=max_size
    )


def plain_text(max_size: int = 40) -> st.SearchStrategy[str]:
    """Text of printable characters in any script."""
    return st.text(st.characters(exclude_categories=["Cc", "Cs", "Zl", "Zp"]), max_size=max_size)


def json_values(text: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[Any]:
    """JSON values as a client may post them; with `text` given, only valid JSON (else NaN,
    infinities and hostile text too)."""
    strings = texts() if text is None else text
    numbers = st.floats() if text is None else st.floats(allow_nan=False, allow_infinity=False)
    leaves = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | numbers | strings
    return st.recursive(
        leaves,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(strings, inner, max_size=3),
        max_leaves=12,
    )


def nested(depth: int, leaf: Any = "x") -> Any:
    """`leaf` inside `depth` nested containers (lists and objects in turn)."""
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


def contact_ids(prefix: str) -> st.SearchStrategy[str]:
    """Valid contact ids, all starting with `prefix` (contacts of one test stay apart)."""
    return st.from_regex(r"\A[A-Za-z0-9_.-]{0,12}\Z").map(lambda suffix: prefix + suffix)


def new_prefix() -> str:
    """A fresh prefix for the contact ids of one test."""
    return f"h{uuid.uuid4().hex[:8]}-"


def plausible_times() -> st.SearchStrategy[str]:
    """Past times since 1970, in any time zone, as ISO 8601."""
    return st.builds(
        lambda moment, minutes: moment.astimezone(timezone(timedelta(minutes=minutes))),
        st.datetimes(
            min_value=datetime(1970, 1, 2), max_value=datetime(2026, 1, 1), timezones=st.just(UTC)
        ),
        st.integers(-14 * 60, 14 * 60),
    ).map(datetime.isoformat)


def times() -> st.SearchStrategy[str]:
    """`occurred_at` values: plausible ones, and the edges of `datetime` and of ISO 8601."""
    edges = st.sampled_from(
        [
            "0001-01-01T00:30:00+01:00",
            "0001-01-01T00:00:00Z",
            "1969-12-31T23:59:59Z",
            "9999-12-31T23:30:00-01:00",
            "2999-01-01T00:00:00Z",
            "2026-02-30T10:00:00Z",
            "yesterday",
            "2026-01-01T10:00:00",
        ]
    )
    return plausible_times() | edges


ABSENT = object()
UNCARRIABLE = (
    {"k": "\ud800"},
    {"\udfff": 1},
    {"v": math.nan},
    {"v": [-math.inf]},
)
"""Properties JSON can express (as Python's `json` writes it) but Temporal cannot carry."""

FieldStrategies = dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]]
"""Per field: how a valid value is drawn, and how a hostile one is."""


def _with_one_hostile(
    draw: st.DrawFn, fields: FieldStrategies, hostile: str | None
) -> dict[str, Any]:
    """Every field valid but `hostile`; `surprise` (not a field) is one too many."""
    drawn = {name: draw(fields[name][name == hostile]) for name in fields}
    if hostile == "surprise":
        drawn["surprise"] = draw(json_values())
    return {name: value for name, value in drawn.items() if value is not ABSENT}


def _event_fields(prefix: str) -> FieldStrategies:
    return {
        "contact_id": (contact_ids(prefix), texts() | st.integers() | st.just(ABSENT)),
        "type": (
            st.sampled_from(sorted(CANONICAL_EVENT_TYPES))
            | st.from_regex(r"\A[a-z][a-z0-9_]{0,20}\Z"),
            texts() | st.just(ABSENT),
        ),
        "event_id": (st.just(ABSENT) | st.from_regex(r"\A[!-~]{1,40}\Z"), texts(150)),
        "occurred_at": (st.just(ABSENT) | plausible_times(), times()),
        "properties": (
            st.just(ABSENT)
            | st.dictionaries(plain_text(12), json_values(plain_text()), max_size=4),
            st.sampled_from(UNCARRIABLE)
            | st.dictionaries(texts(12), json_values(), max_size=4)
            | json_values()
            | st.builds(lambda depth: {"k": nested(depth)}, st.integers(14, 18))
            | st.builds(lambda size: {"blob": "é" * size}, st.integers(16_370, 16_390)),
        ),
    }


EVENT_FIELDS = (*_event_fields(""), "surprise")
"""What `posted_events` can make hostile."""


def posted_events(prefix: str, hostile: str | None = None) -> st.SearchStrategy[dict[str, Any]]:
    """Events as a client may post them: valid but for the `hostile` field (hostile text,
    the wrong type, absent, over a limit); any of them (or none) when `hostile` is `"any"`."""
    if hostile == "any":
        return st.sampled_from([None, *EVENT_FIELDS]).flatmap(
            lambda field: posted_events(prefix, field)
        )
    fields = _event_fields(prefix)
    return st.composite(lambda draw: _with_one_hostile(draw, fields, hostile))()


def _contact_fields() -> FieldStrategies:
    consent = st.fixed_dictionaries(
        {"granted": st.booleans(), "source": st.sampled_from(["form:signup", "import:2026"])},
        optional={"at": plausible_times()},
    )
    return {
        "email": (st.emails(), texts()),
        "phone": (st.from_regex(r"\A\+[1-9][0-9]{6,14}\Z"), texts()),
        "first_name": (plain_text(100), injections() | texts(110)),
        "company": (plain_text(200), injections() | texts(210)),
        "timezone": (st.sampled_from(["Europe/Paris", "UTC", "America/Sao_Paulo"]), texts()),
        "email_consent": (consent, json_values()),
        "sms_consent": (consent, st.fixed_dictionaries({"granted": st.booleans(), "at": times()})),
        "tags": (
            st.lists(st.sampled_from(["src_ads", "int_pricing", "vip"]), max_size=3),
            st.lists(texts(), max_size=3)
            | st.integers(99, 101).map(lambda count: [f"t{number}" for number in range(count)]),
        ),
        "attributes": (
            st.dictionaries(st.sampled_from(["region", "industry"]), plain_text(200)),
            st.dictionaries(texts(), texts(210), max_size=3)
            | st.integers(49, 51).map(lambda count: {f"a{number}": "v" for number in range(count)}),
        ),
    }


CONTACT_FIELDS = (*_contact_fields(), "surprise")
"""What `contact_bodies` can make hostile."""


def contact_bodies(hostile: str | None = None) -> st.SearchStrategy[dict[str, Any]]:
    """Bodies of `PUT /v1/contacts/{id}`: some of the fields, valid but for the `hostile` one
    (hostile text, the wrong type, over its limit)."""
    fields = _contact_fields()

    def body(draw: st.DrawFn) -> dict[str, Any]:
        given = {name for name in fields if name == hostile or draw(st.booleans())}
        drawn = _with_one_hostile(draw, fields, hostile)
        return {name: value for name, value in drawn.items() if name in given | {"surprise"}}

    return st.composite(body)()


PATH_IDS = ("a b", "ä", "a\r\nb", "a\x00", "x" * 65, "-a", "{{x}}", "%2e%2e", "a'b")
"""Contact ids in a path that the gateway must refuse (never `/` or dot segments: those
route elsewhere)."""


def as_json(value: Any) -> bytes:
    """`value` as a client would send it: lone surrogates escaped, NaN as the bare token."""
    return json.dumps(value).encode()


async def run_property(test: Callable[[], None]) -> None:
    """Run a hypothesis test in a worker thread (the event loop goes on serving the gateway)."""
    await asyncio.to_thread(test)
