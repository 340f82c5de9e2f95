"""The nurture journey's input and what it reads about the contact before each email."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field

from models.ids import ContactId
from models.journeys import KEPT_BY_THE_JOURNEY, JourneyInput

DEFAULT_SEND_HOUR = 10
"""Local hour of the nurture emails unless the enrolment says otherwise."""


class NurtureInput(JourneyInput):
    """What a nurture is started with, and where it is (kept by the journey).

    Attributes:
        send_hour: Local hour (0-23, the contact's time zone) of every email.
        anchor: The contact's local date at enrolment; slots count from it.
        slot: The next slot to serve (see `rules.nurture.slot_day`).
        track: The track of the last content email.
        tags_seen: The contact's tags at the last email (a new interest moves the track).
    """

    send_hour: int = Field(default=DEFAULT_SEND_HOUR, ge=0, le=23)
    anchor: date | None = Field(default=None, json_schema_extra=KEPT_BY_THE_JOURNEY)
    slot: int = Field(default=0, ge=0, json_schema_extra=KEPT_BY_THE_JOURNEY)
    track: str | None = Field(default=None, json_schema_extra=KEPT_BY_THE_JOURNEY)
    tags_seen: list[str] = Field(default_factory=list, json_schema_extra=KEPT_BY_THE_JOURNEY)


class NurtureProfileRequest(BaseModel):
    """Which contact to read, and since when pricing visits count.

    Attributes:
        contact_id: The contact.
        since: Pricing visits from this moment on count (the enrolment).
    """

    model_config = ConfigDict(frozen=True)

    contact_id: ContactId
    since: datetime


class NurtureProfile(BaseModel):
    """What the nurture journey reads about its contact before each slot.

    Attributes:
        tags: The contact's CRM tags (`int_…`, `src_…`…).
        band: Its lead band, if scored.
        sales_ready: At or above the hand-off band.
        timezone: Its IANA time zone.
        downloaded: Assets it downloaded (`content_downloaded` events, ever).
        pricing_viewed: Whether it viewed the pricing page since `since`.
    """

    model_config = ConfigDict(frozen=True)

    tags: list[str] = Field(default_factory=list)
    band: str | None = None
    sales_ready: bool = False
    timezone: str = "UTC"
    downloaded: list[str] = Field(default_factory=list)
    pricing_viewed: bool = False
