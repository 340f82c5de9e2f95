"""Contacts and events as services submit them: validated on entry, stored on upsert."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from models.contacts import ConsentUpdate, ContactProfile, normalise_phone
from models.db import session_factory
from models.events import BehaviorEvent
from models.settings import DEVELOPMENT_SUPPRESSION_HASH_SECRET
from models.tables import Contact, MessageLog
from starter.services.operations import message_log, upsert_contact

KEY = DEVELOPMENT_SUPPRESSION_HASH_SECRET.encode()


def _error_fields(error: ValidationError) -> list[tuple[str | int, ...]]:
    return [tuple(item["loc"]) for item in error.errors()]


# --- ContactProfile ----------------------------------------------------------------------


def test_email_is_normalised_to_lower_case() -> None:
    assert ContactProfile(id="ada", email="Ada@Example.COM").email == "ada@example.com"
    assert ContactProfile(id="ada", email="grace@EXAMPLE.org").email == "grace@example.org"


@pytest.mark.parametrize("email", ["not-an-email", "ada@", "@example.com", "ada@@example.com"])
def test_invalid_email_is_refused_naming_the_field(email: str) -> None:
    with pytest.raises(ValidationError) as raised:
        ContactProfile(id="ada", email=email)

    assert _error_fields(raised.value) == [("email",)]


@pytest.mark.parametrize("name", ["Europe/Paris", "America/New_York", "UTC", "Asia/Kolkata"])
def test_iana_timezone_is_accepted(name: str) -> None:
    assert ContactProfile(id="ada", timezone=name).timezone == name


@pytest.mark.parametrize(
    "name", ["Mars/Olympus", "CEST", "+02:00", "europe/paris", "Europe", "../../etc/passwd", ""]
)
def test_unknown_timezone_is_refused(name: str) -> None:
    with pytest.raises(ValidationError) as raised:
        ContactProfile(id="ada", timezone=name)

    assert _error_fields(raised.value) == [("timezone",)]
    assert "is not an IANA time zone name" in str(raised.value)


@pytest.mark.parametrize(
    ("phone", "e164"),
    [
        ("+14155550123", "+14155550123"),
        ("+33612345678", "+33612345678"),
        ("+1 415 555 0123", "+14155550123"),
        ("+1-415-555-0123", "+14155550123"),
        ("+44 (20) 7946 0958", "+442079460958"),
    ],
)
def test_international_phone_is_accepted_in_e164(phone: str, e164: str) -> None:
    assert ContactProfile(id="ada", phone=phone).phone == e164


@pytest.mark.parametrize(
    ("phone", "reason"),
    [
        ("4155550123", "international format"),  # national: no country to read it in
        ("+0123456789", "international format"),
        ("+1234567890123456", "not a valid phone number"),
        ("+1000000", "not a valid phone number"),  # the old pattern took it
        ("+33 1 23", "not a valid phone number"),
    ],
)
def test_invalid_phone_is_refused(phone: str, reason: str) -> None:
    with pytest.raises(ValidationError) as raised:
        ContactProfile(id="ada", phone=phone)

    assert _error_fields(raised.value) == [("phone",)]
    assert reason in str(raised.value)


def test_national_phone_is_read_in_the_region_given() -> None:
    assert normalise_phone("06 12 34 56 78", region="FR") == "+33612345678"
    assert normalise_phone("+1 415 555 0123", region="FR") == "+14155550123"


@pytest.mark.parametrize("contact_id", ["ada", "user_42", "crm.0001-a", "A" * 64])
def test_contact_id_is_accepted(contact_id: str) -> None:
    assert ContactProfile(id=contact_id).id == contact_id


@pytest.mark.parametrize(
    "contact_id", ["ada lovelace", "ada@example.com", "a" * 65, "", "-ada", "ada/1", "ada\n"]
)
def test_contact_id_unsafe_for_workflow_ids_is_refused(contact_id: str) -> None:
    with pytest.raises(ValidationError) as raised:
        ContactProfile(id=contact_id)

    assert _error_fields(raised.value) == [("id",)]


def test_tags_must_be_lower_case_slugs() -> None:
    assert ContactProfile(id="ada", tags=["src_webinar", "stage.mql", "int-email"]).tags == [
        "src_webinar",
        "stage.mql",
        "int-email",
    ]
    with pytest.raises(ValidationError) as raised:
        ContactProfile(id="ada", tags=["ok", "Src_Webinar", "has space", "-x", "t" * 101])

    assert _error_fields(raised.value) == [("tags", 1), ("tags", 2), ("tags", 3), ("tags", 4)]


def test_unknown_profile_fields_are_refused() -> None:
    data: dict[str, Any] = {"id": "ada", "emial": "ada@example.com"}
    with pytest.raises(ValidationError) as raised:
        ContactProfile.model_validate(data)

    assert _error_fields(raised.value) == [("emial",)]
    assert raised.value.errors()[0]["type"] == "extra_forbidden"


def test_consent_needs_a_source() -> None:
    with pytest.raises(ValidationError) as raised:
        ConsentUpdate(granted=True, source="")

    assert _error_fields(raised.value) == [("source",)]


# --- BehaviorEvent -------------------------------------------------------------------------


def _event(**overrides: Any) -> BehaviorEvent:
    data: dict[str, Any] = {
        "event_id": "evt-1",
        "contact_id": "ada",
        "type": "pricing_page_viewed",
        "occurred_at": "2026-11-22T10:00:00+02:00",
        **overrides,
    }
    return BehaviorEvent.model_validate(data)


def test_event_time_is_normalised_to_utc() -> None:
    event = _event(occurred_at=datetime(2026, 11, 22, 10, 0, tzinfo=timezone(timedelta(hours=2))))

    assert event.occurred_at == datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
    assert event.occurred_at.utcoffset() == timedelta(0)
    assert event.occurred_at.hour == 8
    assert _event().occurred_at.isoformat() == "2026-11-22T08:00:00+00:00"


@pytest.mark.parametrize("occurred_at", [datetime(2026, 11, 22, 10, 0), "2026-11-22T10:00:00"])
def test_event_without_timezone_is_refused(occurred_at: datetime | str) -> None:
    with pytest.raises(ValidationError) as raised:
        _event(occurred_at=occurred_at)

    assert _error_fields(raised.value) == [("occurred_at",)]
    assert raised.value.errors()[0]["type"] == "timezone_aware"


@pytest.mark.parametrize(
    "event_type", ["PricingPageViewed", "pricing-page-viewed", "1st_visit", ""]
)
def test_event_type_must_be_snake_case(event_type: str) -> None:
    with pytest.raises(ValidationError) as raised:
        _event(type=event_type)

    assert _error_fields(raised.value) == [("type",)]


def test_non_canonical_snake_case_type_is_accepted() -> None:
    assert _event(type="invoice_paid").type == "invoice_paid"


def test_unknown_event_fields_are_refused() -> None:
    with pytest.raises(ValidationError) as raised:
        _event(email="ada@example.com")

    assert _error_fields(raised.value) == [("email",)]
    assert raised.value.errors()[0]["type"] == "extra_forbidden"


# --- upsert_contact -------------------------------------------------------------------------


async def _stored(engine: AsyncEngine, contact_id: str) -> Contact:
    async with session_factory(engine)() as session:
        contact = await session.get(Contact, contact_id)
    assert contact is not None
    return contact


async def test_upsert_creates_the_contact(engine: AsyncEngine) -> None:
    before = datetime.now(UTC)
    await upsert_contact(
        engine,
        ContactProfile(
            id="ada",
            email="Ada@Example.COM",
            phone="+14155550123",
            first_name="  Ada ",
            company="Analytical Engines",
            timezone="Europe/London",
            email_consent=ConsentUpdate(granted=True, source="form:lead-magnet"),
            tags=["src_webinar", "int_email"],
        ),
        key=KEY,
    )

    contact = await _stored(engine, "ada")
    assert contact.email == "ada@example.com"
    assert contact.phone == "+14155550123"
    assert contact.first_name == "Ada"
    assert contact.company == "Analytical Engines"
    assert contact.timezone == "Europe/London"
    assert contact.tags == ["int_email", "src_webinar"]
    assert contact.email_consent is True
    assert contact.email_consent_source == "form:lead-magnet"
    assert contact.email_consent_at is not None
    assert before <= contact.email_consent_at <= datetime.now(UTC)
    assert contact.email_consent_at.tzinfo is UTC
    # SMS consent was not given: not recorded.
    assert contact.sms_consent is False
    assert contact.sms_consent_at is None
    assert contact.sms_consent_source is None


async def test_upsert_defaults_for_a_bare_contact(engine: AsyncEngine) -> None:
    await upsert_contact(engine, ContactProfile(id="bare"), key=KEY)

    contact = await _stored(engine, "bare")
    assert contact.email is None
    assert contact.timezone == "UTC"
    assert contact.tags == []
    assert contact.email_consent is False
    assert contact.email_consent_at is None


async def test_upsert_updates_only_the_fields_given(engine: AsyncEngine) -> None:
    await upsert_contact(
        engine,
        ContactProfile(
            id="ada",
            email="ada@example.com",
            first_name="Ada",
            company="Analytical Engines",
            timezone="Europe/London",
        ),
        key=KEY,
    )
    created = await _stored(engine, "ada")

    await upsert_contact(engine, ContactProfile(id="ada", company="Babbage & Co"), key=KEY)

    contact = await _stored(engine, "ada")
    assert contact.company == "Babbage & Co"
    assert contact.email == "ada@example.com"
    assert contact.first_name == "Ada"
    assert contact.timezone == "Europe/London"
    assert contact.created_at == created.created_at
    assert contact.updated_at > created.updated_at


async def test_upsert_adds_tags_instead_of_replacing_them(engine: AsyncEngine) -> None:
    await upsert_contact(
        engine, ContactProfile(id="ada", tags=["src_webinar", "int_email"]), key=KEY
    )
    await upsert_contact(engine, ContactProfile(id="ada", tags=["stage_mql", "int_email"]), key=KEY)
    await upsert_contact(engine, ContactProfile(id="ada"), key=KEY)

    contact = await _stored(engine, "ada")
    assert contact.tags == ["int_email", "src_webinar", "stage_mql"]


async def test_upsert_records_and_withdraws_consent(engine: AsyncEngine) -> None:
    await upsert_contact(
        engine,
        ContactProfile(
            id="ada",
            email="ada@example.com",
            email_consent=ConsentUpdate(granted=True, source="form:lead-magnet"),
            sms_consent=ConsentUpdate(granted=True, source="form:lead-magnet"),
        ),
        key=KEY,
    )
    granted = await _stored(engine, "ada")
    assert granted.email_consent is True
    assert granted.email_consent_at is not None

    # A later update that says nothing about consent keeps it.
    await upsert_contact(engine, ContactProfile(id="ada", first_name="Ada"), key=KEY)
    unchanged = await _stored(engine, "ada")
    assert unchanged.email_consent is True
    assert unchanged.email_consent_at == granted.email_consent_at
    assert unchanged.email_consent_source == "form:lead-magnet"

    await upsert_contact(
        engine,
        ContactProfile(
            id="ada", email_consent=ConsentUpdate(granted=False, source="link:unsubscribe")
        ),
        key=KEY,
    )
    withdrawn = await _stored(engine, "ada")
    assert withdrawn.email_consent is False
    assert withdrawn.email_consent_source == "link:unsubscribe"
    assert withdrawn.email_consent_at is not None
    assert withdrawn.email_consent_at > granted.email_consent_at
    # Only the email channel changed.
    assert withdrawn.sms_consent is True
    assert withdrawn.sms_consent_source == "form:lead-magnet"
    assert withdrawn.sms_consent_at == granted.sms_consent_at


async def test_upsert_returns_the_stored_contact(engine: AsyncEngine) -> None:
    returned = await upsert_contact(
        engine,
        ContactProfile(id="ada", email="ADA@example.com", tags=["b", "a"]),
        key=KEY,
    )

    assert returned.id == "ada"
    assert returned.email == "ada@example.com"
    assert returned.tags == ["a", "b"]


# --- message_log ------------------------------------------------------------------------------


async def test_message_log_filters_by_contact_and_journey_oldest_first(
    engine: AsyncEngine,
) -> None:
    start = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    rows = [
        ("ada", "welcome-series", "day1", start + timedelta(days=1)),
        ("ada", "welcome-series", "day0", start),
        ("ada", "renewal", "t-30", start + timedelta(hours=2)),
        ("bob", "welcome-series", "day0", start + timedelta(minutes=5)),
    ]
    async with session_factory(engine)() as session:
        for contact_id, journey, step, created_at in rows:
            session.add(
                MessageLog(
                    idempotency_key=f"{journey}-{contact_id}/{step}",
                    contact_id=contact_id,
                    journey=journey,
                    step=step,
                    channel="email",
                    template=f"{journey}/{step}",
                    status="sent",
                    created_at=created_at,
                )
            )
        await session.commit()

    def keys(log: list[MessageLog]) -> list[str]:
        return [row.idempotency_key for row in log]

    assert keys(await message_log(engine)) == [
        "welcome-series-ada/day0",
        "welcome-series-bob/day0",
        "renewal-ada/t-30",
        "welcome-series-ada/day1",
    ]
    assert keys(await message_log(engine, contact_id="ada")) == [
        "welcome-series-ada/day0",
        "renewal-ada/t-30",
        "welcome-series-ada/day1",
    ]
    assert keys(await message_log(engine, contact_id="ada", journey="welcome-series")) == [
        "welcome-series-ada/day0",
        "welcome-series-ada/day1",
    ]
    assert keys(await message_log(engine, journey="renewal")) == ["renewal-ada/t-30"]
    assert await message_log(engine, contact_id="nobody") == []
