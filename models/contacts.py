"""Contact profiles as services and operators submit them."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated
from zoneinfo import available_timezones

from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
)

from models.events import ContactId


def _normalise_email(value: str) -> str:
    try:
        result = validate_email(value, check_deliverability=False)
    except EmailNotValidError as error:
        raise ValueError(str(error)) from error
    return result.normalized.lower()


@lru_cache(maxsize=1)
def _iana_time_zones() -> frozenset[str]:
    return frozenset(available_timezones())


def _known_timezone(value: str) -> str:
    if value not in _iana_time_zones():
        raise ValueError(f"{value!r} is not an IANA time zone name")
    return value


EmailAddress = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=320), AfterValidator(_normalise_email)
]
TimeZoneName = Annotated[str, AfterValidator(_known_timezone)]
AttributeName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
AttributeValue = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]
Tag = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,99}$")]


class ConsentUpdate(BaseModel):
    """Consent given or withdrawn on one channel.

    Attributes:
        granted: True when the contact opted in, False when it opted out.
        source: Where it was given, e.g. `form:lead-magnet`, `import:2026-11`.
        at: When it was given or withdrawn (proof of consent); when it was
            received if omitted.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    granted: bool
    source: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    at: AwareDatetime | None = None


class ContactFields(BaseModel):
    """A contact's fields to create or update; fields left `None` are kept as they are.

    Attributes:
        email: Validated and normalised (lower case) on entry.
        phone: E.164 phone number, e.g. `+14155550123`.
        first_name: For personalisation; templates fall back when absent.
        company: For personalisation.
        timezone: IANA name, e.g. `Europe/Paris`.
        email_consent: Marketing email consent change, if any.
        sms_consent: SMS consent change, if any.
        tags: Tags to add (seed convention: `src_…`, `int_…`, `stage_…`).
        attributes: Other fields (job title, company size, region, industry…)
            that fit scoring and sales territories read; merged into the
            stored ones.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    email: EmailAddress | None = None
    phone: Annotated[str, StringConstraints(pattern=r"^\+[1-9][0-9]{6,14}$")] | None = None
    first_name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] | None = (
        None
    )
    company: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] | None = None
    timezone: TimeZoneName | None = None
    email_consent: ConsentUpdate | None = None
    sms_consent: ConsentUpdate | None = None
    tags: list[Tag] = Field(default_factory=list)
    attributes: dict[AttributeName, AttributeValue] = Field(default_factory=dict, max_length=50)


class ContactProfile(ContactFields):
    """A contact to create or update, with its id (see `ContactFields`).

    Attributes:
        id: Your system's id of the contact.
    """

    id: ContactId
