"""The contacts the QA commands render and simulate for: samples, a file, the database.

Two samples, because a preview must show both what a typical contact reads and
what a contact with nothing optional on file reads:

- `SAMPLE`: realistic fields (first name, company, tags, phone, a time zone),
  consent on both channels;
- `EMPTY_SAMPLE`: an email address and consent and nothing else, so every
  template falls back (`{{ first_name | default: "there" }}`) where it must.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from pydantic import ValidationError

from models.contacts import ConsentUpdate, ContactProfile
from models.tables import Contact
from starter.services.operations import InvalidRequest


class ContactFileError(InvalidRequest):
    """A contact file is unreadable or invalid; the message names the file and the fix."""


QA_CONSENT_SOURCE = "journeys-qa"
"""The consent source of the samples and of a contact file's `true` / `false`."""


SAMPLE = ContactProfile(
    id="sample",
    email="ada.sample@example.com",
    phone="+15035550100",
    first_name="Ada",
    company="Analytical Engines",
    timezone="America/Los_Angeles",
    email_consent=ConsentUpdate(granted=True, source=QA_CONSENT_SOURCE),
    sms_consent=ConsentUpdate(granted=True, source=QA_CONSENT_SOURCE),
    tags=["src_lead-magnet", "int_product_course"],
    attributes={"region": "AMER"},
)
"""A typical contact: every field templates may use."""

EMPTY_SAMPLE = ContactProfile(
    id="sample-empty",
    email="empty.sample@example.com",
    email_consent=ConsentUpdate(granted=True, source=QA_CONSENT_SOURCE),
)
"""A contact with no optional field: shows every fallback."""


def contact_from_file(path: Path) -> ContactProfile:
    """A contact described in a JSON or TOML file (the fields of `journeys contact upsert`).

    `email_consent` / `sms_consent` may be `true` / `false` (source `journeys-qa`)
    or the API's `{granted, source, …}`; `id` defaults to `sample`.

    Raises:
        ContactFileError: unreadable, not JSON/TOML, or invalid (naming the field).
    """
    try:
        text = path.read_text(encoding="utf-8")
        raw = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (OSError, ValueError) as error:
        raise ContactFileError(f"{path}: {error}") from error
    if not isinstance(raw, dict):
        raise ContactFileError(f"{path}: expected an object of contact fields")
    for channel in ("email_consent", "sms_consent"):
        if isinstance(raw.get(channel), bool):
            raw[channel] = {"granted": raw[channel], "source": QA_CONSENT_SOURCE}
    try:
        return ContactProfile.model_validate({"id": "sample", **raw})
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, item['loc']))}: {item['msg']}" for item in error.errors()
        )
        raise ContactFileError(f"{path}: {problems}") from error


def contact_row(profile: ContactProfile) -> Contact:
    """The contact as the send activity would load it (in memory, not stored)."""
    return Contact(
        id=profile.id,
        email=profile.email,
        phone=profile.phone,
        first_name=profile.first_name,
        company=profile.company,
        timezone=profile.timezone or "UTC",
        email_consent=bool(profile.email_consent and profile.email_consent.granted),
        sms_consent=bool(profile.sms_consent and profile.sms_consent.granted),
        tags=list(profile.tags),
        attributes=dict(profile.attributes),
    )
