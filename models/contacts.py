"""Contact profiles as services and operators submit them."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Annotated
from zoneinfo import available_timezones

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyAddress,
    StringConstraints,
)

from models.events import UtcTime
from models.ids import ContactId

_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _normalise_email(value: str) -> str:
    """The address in lower case, its domain in ASCII (IDNA), as headers and SMTP take it."""
    try:
        result = validate_email(value, check_deliverability=False)
    except EmailNotValidError as error:
        raise ValueError(str(error)) from error
    if result.ascii_email is None:
        raise ValueError(
            "the part before the @-sign is not ASCII: such an address needs SMTPUTF8, "
            "which the providers do not use"
        )
    return result.ascii_email.lower()


def normalise_phone(value: str, *, region: str | None = None) -> str:
    """The phone number in E.164 (`+33612345678`), if it is a valid number.

    Parsed with `phonenumbers`: spaces, dots, dashes and brackets may separate the
    digits. Without `region` the number must be in international format (a leading `+`
    and the country code); with it (ISO 3166 code, e.g. `FR`) a national number
    (`06 12 34 56 78`) is read as a number of that country.

    Raises:
        ValueError: not a phone number, or not a valid one (e.g. `+1000000`).
    """
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        hint = (
            "give it in international format (+ and the country code, e.g. +33612345678)"
            if region is None
            else f"give it in international format or as a national number of {region}"
        )
        raise ValueError(f"{value!r} is not a phone number: {hint}") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError(
            f"{value!r} is not a valid phone number of {_number_country(number)}: "
            "check the country code and the digits"
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _number_country(number: phonenumbers.PhoneNumber) -> str:
    region = phonenumbers.region_code_for_number(number)
    return region if region else f"country code +{number.country_code}"


@lru_cache(maxsize=1)
def _iana_time_zones() -> frozenset[str]:
    return frozenset(available_timezones())


def _known_timezone(value: str) -> str:
    if value not in _iana_time_zones():
        raise ValueError(f"{value!r} is not an IANA time zone name")
    return value


def _single_line(value: str) -> str:
    """Refuse control characters and line breaks: names reach subject lines and other
    headers, where a line break would start a header of the sender's choosing."""
    found = _CONTROL_CHARACTER.search(value)
    if found is not None:
        raise ValueError(
            f"must be one line of text without control characters (found U+{ord(found[0]):04X})"
        )
    return value


EmailAddress = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=320), AfterValidator(_normalise_email)
]
PhoneNumber = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64),
    AfterValidator(normalise_phone),
]
"""A valid phone number in international format, stored in E.164."""
TimeZoneName = Annotated[str, AfterValidator(_known_timezone)]
AttributeName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
SingleLine = AfterValidator(_single_line)
AttributeValue = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=200), SingleLine
]
PersonName = Annotated[str, StringConstraints(strip_whitespace=True, max_length=100), SingleLine]
CompanyName = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200), SingleLine]
Tag = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,99}$")]
MAX_TAGS_PER_REQUEST = 100
MAX_ATTRIBUTES_PER_REQUEST = 50
MAX_CONTACT_TAGS = 500
"""Tags a contact may collect through upserts (the scoring's own tags come on top)."""
MAX_CONTACT_ATTRIBUTES = 100
"""Attributes a contact may collect through upserts: they travel in every journey's memo."""


class ConsentUpdate(BaseModel):
    """Consent given or withdrawn on one channel.

    Attributes:
        granted: True when the contact opted in, False when it opted out.
        source: Where it was given, e.g. `form:lead-magnet`, `import:2026-11`.
        at: When it was given or withdrawn (proof of consent, 1970–8999); when
            it was received if omitted.
        text: What the contact agreed to: the consent text shown, or the
            purpose (kept in the consent history).
        ip: The IP address the contact gave it from (e.g. the form's request).
        user_agent: The contact's browser, as the form's request named it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    granted: bool
    source: Annotated[str, StringConstraints(min_length=1, max_length=200), SingleLine]
    at: UtcTime | None = None
    text: Annotated[str, StringConstraints(min_length=1, max_length=1000), SingleLine] | None = None
    ip: IPvAnyAddress | None = None
    user_agent: Annotated[str, StringConstraints(max_length=500), SingleLine] | None = None


class ContactFields(BaseModel):
    """A contact's fields to create or update; fields left `None` are kept as they are.

    Attributes:
        email: Validated and normalised on entry (lower case, the domain in
            ASCII); the part before the @-sign must be ASCII.
        phone: A valid number in international format, e.g. `+1 415 555 0123`,
            stored in E.164 (`+14155550123`); national formats are refused (the
            import reads them with `--default-region`).
        first_name: For personalisation; templates fall back when absent. One
            line (no control characters), like every text field: it may end
            up in a subject line.
        company: For personalisation.
        timezone: IANA name, e.g. `Europe/Paris`.
        email_consent: Marketing email consent change, if any.
        sms_consent: SMS consent change, if any.
        tags: Tags to add (seed convention: `src_…`, `int_…`, `stage_…`), at
            most 100 per request.
        attributes: Other fields (job title, company size, region, industry…)
            that fit scoring and sales territories read; merged into the
            stored ones (at most 50 per request).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    email: EmailAddress | None = None
    phone: PhoneNumber | None = None
    first_name: PersonName | None = None
    company: CompanyName | None = None
    timezone: TimeZoneName | None = None
    email_consent: ConsentUpdate | None = None
    sms_consent: ConsentUpdate | None = None
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS_PER_REQUEST)
    attributes: dict[AttributeName, AttributeValue] = Field(
        default_factory=dict, max_length=MAX_ATTRIBUTES_PER_REQUEST
    )


class ContactProfile(ContactFields):
    """A contact to create or update, with its id (see `ContactFields`).

    Attributes:
        id: Your system's id of the contact.
    """

    id: ContactId
