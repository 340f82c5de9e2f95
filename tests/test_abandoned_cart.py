"""The abandoned-cart journey on the time-skipping server (real worker, DB file and outbox).

Reminders 1 h, 24 h and 72 h after the last cart change, each with the cart's
items, total and a link back to it; a later change restarts the wait with the
new contents; a purchase of that cart ends it at any step; once per cart.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from models.carts import CartInput
from models.events import BehaviorEvent
from models.journeys import JourneyState, JourneyStatus
from models.tables import JourneyRun
from starter.services.intake import accept_events
from starter.services.report import funnel_report
from tests.factories import add_contact, rows_of
from tests.kit import (
    JourneyKit,
    Simulation,
    Timeline,
    at,
    html_body,
    message_rows,
    read_outbox,
    sample_contact,
    text_body,
)
from workflows.journeys.abandoned_cart import AbandonedCart

MUG = {"name": "Stoneware mug", "quantity": 2, "price": "12.50"}
LAMP = {"name": "Desk lamp", "quantity": 1, "price": "40"}
CART = {"cart_id": "cart-1", "items": [MUG], "total": "25.00", "currency": "EUR"}
BIGGER = {**CART, "items": [MUG, LAMP], "total": "65.00"}
CLOSE = timedelta(minutes=2)


def cart_journey(*events: Any, cart: dict[str, Any] = CART, **contact: Any) -> Simulation:
    return Simulation(
        "abandoned-cart", contact=sample_contact(**contact), options={"cart": cart}, events=events
    )


def sent_at(timeline: Timeline) -> dict[str, timedelta]:
    """Each message sent, by step, and when: journey time since enrolment."""
    return {
        entry.step or "": entry.at - timeline.enrolled_at
        for entry in timeline.entries
        if entry.kind == "sent"
    }


def assert_times(timeline: Timeline, expected: dict[str, timedelta]) -> None:
    actual = sent_at(timeline)
    assert list(actual) == list(expected), actual
    for step, when in expected.items():
        assert abs(actual[step] - when) < CLOSE, (step, actual[step], when)


def emails(kit: JourneyKit, timeline: Timeline) -> dict[str, Any]:
    """The journey's delivered emails by step."""
    return {
        key.rsplit("/", 1)[1]: message
        for key, message in read_outbox(kit.outbox).items()
        if key.startswith(f"{timeline.workflow_id}/")
    }


# --- timing and contents ---------------------------------------------------------------


async def test_reminders_go_1h_24h_72h_after_the_change_with_the_cart_and_a_link_back(
    journey_kit: JourneyKit,
) -> None:
    timeline = await journey_kit.simulate(cart_journey(cart=BIGGER))

    assert timeline.workflow_id == f"abandoned-cart-{timeline.contact_id}-cart-1"
    assert timeline.status == "completed"
    assert_times(
        timeline,
        {
            "reminder-1h": timedelta(hours=1),
            "reminder-24h": timedelta(hours=24),
            "reminder-72h": timedelta(hours=72),
        },
    )
    sent = emails(journey_kit, timeline)
    assert str(sent["reminder-1h"]["Subject"]) == "You left something in your cart"
    for step, message in sent.items():
        text = text_body(message)
        assert "• 2 × Stoneware mug: 25.00 EUR" in text, step
        assert "• 1 × Desk lamp: 40.00 EUR" in text, step
        assert "Total: 65.00 EUR" in text, step
        assert (
            "https://northwind.example/cart?utm_source=journeys&utm_medium=email"
            f"&utm_campaign=abandoned-cart&utm_content={step}&cart=cart-1" in text
        ), step
    assert "Unsubscribe: " in text_body(sent["reminder-72h"])  # marketing


async def test_a_later_change_restarts_the_wait_with_the_new_contents(
    journey_kit: JourneyKit,
) -> None:
    timeline = await journey_kit.simulate(
        cart_journey(at("30m", "cart_updated", **BIGGER), at("5h", "cart_updated", **CART))
    )
    await journey_kit.save_history(timeline, "abandoned-cart-changed")

    assert_times(
        timeline,
        {
            "reminder-1h": timedelta(minutes=90),  # 1 h after the change at 30 min
            "reminder-24h": timedelta(hours=29),  # 24 h after the change at 5 h
            "reminder-72h": timedelta(hours=77),
        },
    )
    sent = emails(journey_kit, timeline)
    assert "Desk lamp" in text_body(sent["reminder-1h"])
    assert "Desk lamp" not in text_body(sent["reminder-24h"])
    assert "Total: 25.00 EUR" in text_body(sent["reminder-24h"])


async def test_changes_of_another_cart_are_ignored_a_checkout_of_this_one_counts(
    journey_kit: JourneyKit,
) -> None:
    other = {**BIGGER, "cart_id": "cart-2"}  # a checkout: a cart_updated would start its own
    timeline = await journey_kit.simulate(
        cart_journey(
            at("20m", "checkout_started", **other),
            at("30m", "checkout_started", plan="pro"),  # no cart: pricing-abandon's
            at("2h", "checkout_started", cart_id="cart-1"),  # this cart: the clock restarts
        )
    )

    assert_times(
        timeline,
        {
            "reminder-1h": timedelta(hours=1),
            "reminder-24h": timedelta(hours=26),
            "reminder-72h": timedelta(hours=74),
        },
    )
    assert "Desk lamp" not in text_body(emails(journey_kit, timeline)["reminder-24h"])


async def test_an_emptied_cart_ends_the_journey(journey_kit: JourneyKit) -> None:
    timeline = await journey_kit.simulate(
        cart_journey(at("3h", "cart_updated", **{**CART, "items": [], "total": "0"}))
    )

    assert list(sent_at(timeline)) == ["reminder-1h"]
    assert (timeline.status, timeline.exit_reason) == ("exited", "cart-emptied")


async def test_cart_contents_render_as_text_never_as_template_code(
    journey_kit: JourneyKit,
) -> None:
    hostile = {"name": "<script>alert(1)</script> {{ brand.name }} {% raw %}", "price": "1"}
    timeline = await journey_kit.simulate(
        cart_journey(at("2h", "purchased"), cart={**CART, "items": [hostile], "total": "1"})
    )

    message = emails(journey_kit, timeline)["reminder-1h"]
    assert "• 1 × <script>alert(1)</script> {{ brand.name }} {% raw %}: 1.00 EUR" in text_body(
        message
    )
    html = html_body(message)
    assert "&lt;script&gt;alert(1)&lt;/script&gt; {{ brand.name }} {% raw %}" in html
    assert "<script>" not in html


# --- exits -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bought_at", "before"),
    [("30m", []), ("2h", ["reminder-1h"]), ("30h", ["reminder-1h", "reminder-24h"])],
)
async def test_a_purchase_of_that_cart_ends_it_at_each_step(
    journey_kit: JourneyKit, bought_at: str, before: list[str]
) -> None:
    timeline = await journey_kit.simulate(
        cart_journey(at(bought_at, "purchased", cart_id="cart-1", order="o-1"))
    )

    assert list(sent_at(timeline)) == before
    assert (timeline.status, timeline.exit_reason) == ("exited", "purchased")


async def test_a_purchase_of_another_cart_does_not_end_it_one_naming_no_cart_does(
    journey_kit: JourneyKit,
) -> None:
    other = await journey_kit.simulate(cart_journey(at("2h", "purchased", cart_id="cart-9")))
    unnamed = await journey_kit.simulate(
        cart_journey(at("2h", "purchased"), email="another@example.com")
    )

    assert other.status == "completed"
    assert list(sent_at(other)) == ["reminder-1h", "reminder-24h", "reminder-72h"]
    assert (unnamed.exit_reason, list(sent_at(unnamed))) == ("purchased", ["reminder-1h"])


async def test_an_unsubscribe_ends_it(journey_kit: JourneyKit) -> None:
    timeline = await journey_kit.simulate(cart_journey(at("2h", "unsubscribed")))

    assert (timeline.exit_reason, list(sent_at(timeline))) == ("unsubscribed", ["reminder-1h"])


async def test_without_email_the_24h_reminder_goes_by_sms_to_a_consenting_contact(
    journey_kit: JourneyKit,
) -> None:
    timeline = await journey_kit.simulate(cart_journey(email=None, email_consent=None))

    assert list(sent_at(timeline)) == ["reminder-24h-sms"]
    [sms] = (journey_kit.outbox / timeline.workflow_id).rglob("*.sms.txt")
    body = sms.read_text()
    assert "cart is still saved (25.00 EUR)" in body
    assert "cart=cart-1" in body and "Reply STOP to opt out." in body


# --- the trigger: once per cart --------------------------------------------------------


async def _send(
    kit: JourneyKit, contact_id: str, event_id: str, event_type: str, **props: Any
) -> None:
    event = BehaviorEvent(
        event_id=event_id,
        contact_id=contact_id,
        type=event_type,
        occurred_at=await kit.env.get_current_time(),
        properties=props,
    )
    [result] = await accept_events(
        kit.env.client,
        kit.engine,
        [event],
        task_queue=kit.settings.task_queue,
        day_seconds=86_400,
        suppression_key=kit.settings.suppression_key(),
    )
    assert result.status == "accepted", result


async def _final(kit: JourneyKit, workflow_id: str) -> JourneyState:
    """The journey's state once closed (time skipped a week at most)."""
    handle = kit.env.client.get_workflow_handle(workflow_id, result_type=JourneyState)
    for _ in range(100):
        try:
            description = await handle.describe()
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND:
                raise
            await asyncio.sleep(0.05)
            continue
        if description.status != WorkflowExecutionStatus.RUNNING:
            final: JourneyState = await handle.result()
            return final
        await kit.env.sleep(timedelta(days=1))
    raise AssertionError(f"{workflow_id} never ended")


async def test_cart_updated_starts_it_once_per_cart_and_a_new_cart_again(
    journey_kit: JourneyKit,
) -> None:
    contact_id = "cart-once"
    await add_contact(journey_kit.engine, contact_id)
    first = f"abandoned-cart-{contact_id}-cart-1"

    await _send(journey_kit, contact_id, "e1", "cart_updated", **CART)
    assert (await _final(journey_kit, first)).messages_sent == 3
    await _send(journey_kit, contact_id, "e2", "cart_updated", **BIGGER)  # the same cart again
    await _send(journey_kit, contact_id, "e3", "cart_updated", **{**CART, "cart_id": "cart-2"})
    second = await _final(journey_kit, f"abandoned-cart-{contact_id}-cart-2")

    assert second.messages_sent == 3
    runs = await rows_of(journey_kit.engine, JourneyRun, contact_id)
    assert sorted(run.workflow_id for run in runs) == [first, f"abandoned-cart-{contact_id}-cart-2"]
    first_rows = [row for row in await message_rows(journey_kit.engine, contact_id)]
    assert sum(row.idempotency_key.startswith(f"{first}/") for row in first_rows) == 3

    report = await funnel_report(journey_kit.engine, journey="abandoned-cart")
    [funnel] = report.journeys
    assert (funnel.entered, funnel.completed) == (2, 2)
    assert [(step.step, step.sent) for step in funnel.steps][:3] == [
        ("reminder-1h", 2),
        ("reminder-24h", 2),
        ("reminder-24h-sms", 0),
    ]


async def test_a_cart_bought_before_its_change_arrived_is_not_chased(
    journey_kit: JourneyKit,
) -> None:
    contact_id = "cart-bought"
    await add_contact(journey_kit.engine, contact_id)

    await _send(journey_kit, contact_id, "p1", "purchased", cart_id="cart-1")
    await _send(journey_kit, contact_id, "e1", "cart_updated", **CART)
    state = await _final(journey_kit, f"abandoned-cart-{contact_id}-cart-1")

    assert (state.status, state.exit_reason, state.messages_sent) == (
        JourneyStatus.EXITED,
        "purchased",
        0,
    )
    cart_messages = [
        row
        for row in await message_rows(journey_kit.engine, contact_id)
        if row.journey == "abandoned-cart"
    ]
    assert cart_messages == []  # (the purchase started onboarding, whose emails are its own)


def test_an_empty_cart_starts_nothing_and_the_input_names_the_cart() -> None:
    with pytest.raises(ValueError, match="the cart is empty"):
        CartInput.model_validate({"contact_id": "c", "cart": {**CART, "items": []}})
    cart_input = CartInput.model_validate({"contact_id": "c", "cart": CART})
    assert AbandonedCart.workflow_id_for(cart_input) == "abandoned-cart-c-cart-1"
