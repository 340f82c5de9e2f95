"""Per-event-type properties: the table, and its refusals at the gateway and in the CLI."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import WorkflowEnvironment

from models.carts import MAX_CART_ITEMS, CartProperties
from models.event_properties import PROPERTIES, check_properties
from models.settings import Settings
from models.tables import ContactEvent
from tests.cli import journeys
from tests.factories import rows_of
from tests.gateway import Gateway, gateway_settings, serving_gateway
from tests.test_api import contact_state, new_id

MUG = {"name": "Stoneware mug", "quantity": 2, "price": "12.50"}
CART = {"cart_id": "cart-81", "items": [MUG], "total": "25.00", "currency": "EUR"}


def problems(event_type: str, properties: dict[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
    """Where and why the properties of `event_type` are refused ([] when taken)."""
    try:
        check_properties(event_type, properties, title="test")
    except ValidationError as error:
        return [(tuple(issue["loc"]), issue["msg"]) for issue in error.errors()]
    return []


def test_the_table_names_a_model_for_the_events_journeys_read() -> None:
    assert set(PROPERTIES) == {
        "cart_updated",
        "checkout_started",
        "purchased",
        "feature_used",
        "usage_reported",
        "usage_dropped",
        "usage_recovered",
        "lead_qualified",
        "deal_stage_changed",
        "deal_won",
        "deal_lost",
        "meeting_held",
        "lead_disqualified",
    }
    assert problems("website_visited", {"anything": [1, {"x": None}]}) == []


def test_a_feature_used_event_names_its_feature() -> None:
    assert problems("feature_used", {"feature": "contact-import"}) == []
    assert problems("feature_used", {})
    assert problems("feature_used", {"feature": ""})


def test_a_usage_report_needs_a_metric_and_a_finite_value() -> None:
    assert problems("usage_reported", {"metric": "campaigns_sent", "value": 12}) == []
    assert problems("usage_reported", {"metric": "campaigns_sent"})
    assert problems("usage_reported", {"metric": "campaigns_sent", "value": "lots"})


def test_a_cart_is_taken_with_extra_details_and_its_amounts_as_decimals() -> None:
    assert problems("cart_updated", {**CART, "utm_source": "ads"}) == []
    cart = CartProperties.model_validate({**CART, "total": 25})
    assert cart.total == Decimal(25) and cart.items[0].price == Decimal("12.50")


@pytest.mark.parametrize(
    ("change", "where", "says"),
    [
        ({"cart_id": None}, ("properties", "cart_id"), "string"),
        ({"cart_id": "a cart"}, ("properties", "cart_id"), "invalid cart id"),
        ({"items": "mug"}, ("properties", "items"), "valid list"),
        ({"items": [MUG] * (MAX_CART_ITEMS + 1)}, ("properties", "items"), "at most 50"),
        ({"items": [{**MUG, "name": "x" * 201}]}, ("properties", "items", 0, "name"), "200"),
        ({"items": [{**MUG, "name": "Mug\r\nBcc: x"}]}, ("properties", "items", 0, "name"),
         "one line"),
        ({"items": [{**MUG, "quantity": 0}]}, ("properties", "items", 0, "quantity"),
         "greater than or equal to 1"),
        ({"items": [{**MUG, "qty": 2}]}, ("properties", "items", 0, "qty"), "not permitted"),
        ({"items": [{**MUG, "price": "-1"}]}, ("properties", "items", 0, "price"),
         "greater than or equal to 0"),
        ({"total": "12,50"}, ("properties", "total"), "decimal"),
        ({"total": "1e40"}, ("properties", "total"), "12 digits"),
        ({"currency": "euro"}, ("properties", "currency"), "pattern"),
    ],
)  # fmt: skip
def test_a_malformed_or_oversized_cart_is_refused_naming_the_field(
    change: dict[str, Any], where: tuple[Any, ...], says: str
) -> None:
    [(loc, message)] = problems("cart_updated", {**CART, **change})
    assert loc == where
    assert says in message


def test_a_cart_without_its_fields_names_each_one_missing() -> None:
    assert {loc for loc, _ in problems("cart_updated", {})} == {
        ("properties", field) for field in ("cart_id", "items", "total", "currency")
    }


def test_a_checkout_or_purchase_needs_no_cart_but_a_named_one_is_checked() -> None:
    assert problems("checkout_started", {"plan": "pro"}) == []
    assert problems("purchased", {"order": "o-1"}) == []
    assert problems("checkout_started", CART) == []
    [(loc, _)] = problems("purchased", {"cart_id": "../etc"})
    assert loc == ("properties", "cart_id")
    [(loc, _)] = problems("checkout_started", {"cart_id": "c1", "items": [{"name": "Mug"}]})
    assert loc == ("properties", "items", 0, "price")


# --- the gateway ------------------------------------------------------------------------


@pytest.fixture
async def gateway(dev_env: WorkflowEnvironment, settings: Settings) -> AsyncIterator[Gateway]:
    async with serving_gateway(dev_env.client, gateway_settings(settings)) as served:
        yield served


async def test_the_gateway_refuses_a_bad_cart_with_422_naming_the_field(gateway: Gateway) -> None:
    contact_id = new_id("cart")
    bad = {**CART, "items": [{**MUG, "price": "free"}]}
    response = await gateway.http.post(
        "/v1/events", json={"contact_id": contact_id, "type": "cart_updated", "properties": bad}
    )

    assert response.status_code == 422, response.text
    [issue] = response.json()["detail"]
    assert issue["loc"] == ["body", "properties", "items", 0, "price"]
    assert "decimal" in issue["msg"]


async def test_a_batch_rejects_the_bad_cart_by_index_and_takes_the_others(
    gateway: Gateway, dev_env: WorkflowEnvironment, engine: AsyncEngine
) -> None:
    contact_id = new_id("cart-batch")
    events = [
        {"event_id": "ok-1", "contact_id": contact_id, "type": "cart_updated", "properties": CART},
        {"event_id": "bad", "contact_id": contact_id, "type": "cart_updated",
         "properties": {**CART, "currency": "€"}},
        {"event_id": "ok-2", "contact_id": contact_id, "type": "checkout_started",
         "properties": {"plan": "pro"}},
    ]  # fmt: skip
    response = await gateway.http.post("/v1/events", json={"events": events})

    assert response.status_code == 202, response.text
    body = response.json()
    assert [result["status"] for result in body["results"]] == ["accepted", "rejected", "accepted"]
    [issue] = body["results"][1]["errors"]
    assert issue["loc"] == ["body", "events", 1, "properties", "currency"]
    assert "pattern" in issue["msg"]
    await contact_state(dev_env.client, contact_id, lambda state: state.events_accepted == 2)
    stored = await rows_of(engine, ContactEvent, contact_id)
    assert sorted(row.event_id for row in stored) == ["ok-1", "ok-2"]

    only_bad = await gateway.http.post("/v1/events", json={"events": events[1:2]})
    assert only_bad.status_code == 422
    assert only_bad.json()["rejected"] == 1


# --- the CLI ----------------------------------------------------------------------------


async def test_journeys_event_refuses_a_bad_cart_in_one_line_before_sending_anything(
    settings: Settings,
) -> None:
    env = {**os.environ, "DATABASE_URL": settings.database_url, "TEMPORAL_ADDRESS": "127.0.0.1:9"}
    refused = await journeys(
        "event", "kim", "cart_updated", "--property", "cart_id=c1",
        "--property", 'items=[{"name": "Mug", "price": "9.00"}]',
        "--property", "total=9.00", env=env,
    )  # fmt: skip

    assert refused.returncode == 2, refused
    assert refused.stderr == "error: properties.currency: Field required\n"


def test_a_meeting_held_is_a_demo_or_a_deep_dive() -> None:
    assert problems("meeting_held", {"kind": "demo", "notes": "went well"}) == []
    assert problems("meeting_held", {"kind": "deep-dive"}) == []
    assert problems("meeting_held", {"kind": "lunch"}) == [
        (("properties", "kind"), "Input should be 'demo' or 'deep-dive'")
    ]
    assert problems("meeting_held", {}) == [(("properties", "kind"), "Field required")]
