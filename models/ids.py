"""Ids that become part of workflow ids and file paths: one rule, one message, everywhere.

A contact id (and a subscription or sales-person id, which share its shape)
is written into workflow ids (`welcome-series-{contact_id}`), visibility
queries and outbox paths, so it is restricted to characters safe in all three.
The HTTP API (path and body), the Python client, the CLI and the payload
models all check it here, and all refuse a bad one with the same sentence.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import AfterValidator, WithJsonSchema

SAFE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
"""The shape of an id that goes into a workflow id (the JSON schema's `pattern`)."""

_SAFE_ID = re.compile(SAFE_ID_PATTERN.removeprefix("^").removesuffix("$"))

SAFE_ID_RULE = "1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit"
"""What a safe id is, as the error messages say it."""


def is_contact_id(value: str) -> bool:
    """Whether `value` is a valid contact id (for code that sorts ids out rather than refuses)."""
    return _SAFE_ID.fullmatch(value) is not None


def id_refusal(value: str, what: str) -> str | None:
    """Why `value` is not a valid `what` (e.g. `contact id`), or None when it is.

    The message never repeats the value: it may be an email address.
    """
    if is_contact_id(value):
        return None
    return f"invalid {what}: use {SAFE_ID_RULE} (your system's id, not an email address)"


def _checker(what: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        refusal = id_refusal(value, what)
        if refusal:
            raise ValueError(refusal)
        return value

    return check


def _schema(description: str) -> dict[str, Any]:
    return {
        "type": "string",
        "pattern": SAFE_ID_PATTERN,
        "minLength": 1,
        "maxLength": 64,
        "description": description,
    }


check_contact_id = _checker("contact id")
"""Return a valid contact id unchanged; raise `ValueError` (the shared message) otherwise."""

ContactId = Annotated[
    str,
    AfterValidator(check_contact_id),
    WithJsonSchema(_schema("Your system's id of the contact.")),
]
"""A contact id: 1–64 characters of letters, digits, `_`, `.`, `-`.

Use your own system's user id, never an email address (workflow ids are
visible in the UI).
"""

SubscriptionId = Annotated[
    str,
    AfterValidator(_checker("subscription id")),
    WithJsonSchema(_schema("The subscription's id (part of the workflow id).")),
]
"""A subscription id, shaped like a contact id: it becomes part of the workflow id."""

CartId = Annotated[
    str,
    AfterValidator(_checker("cart id")),
    WithJsonSchema(_schema("Your shop's id of the cart (part of the workflow id).")),
]
"""A cart id, shaped like a contact id: it becomes part of the abandoned-cart workflow id."""

PersonId = Annotated[
    str,
    AfterValidator(_checker("sales person id")),
    WithJsonSchema(_schema("Id of a rep or manager, e.g. `sdr-mia`.")),
]
"""Id of a rep or manager, e.g. `sdr-mia`."""
