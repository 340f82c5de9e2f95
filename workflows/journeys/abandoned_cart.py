"""Abandoned cart: bring a contact back to the cart they left (seed 000: 1 h, 24 h, 72 h).

Trigger: `cart_updated` with the cart (`cart_id`, `items`, `total`, `currency`:
`models/carts.py`; the gateway refuses a malformed or oversized one).
One journey per contact and cart (`abandoned-cart-{contact}-{cart}`), once per
cart: a cart abandoned again after its journey ended is not chased twice; a
new cart is.

- 1 hour after the last cart change: email "you left something in your cart";
- 24 hours after it: email, what is in it and what people ask; if that email
  could not reach the contact (no address, no email consent, unsubscribed from
  email, bounced), an SMS instead, when the contact has SMS consent and a phone;
- 72 hours after it: the last email; the journey ends.

Each email shows the cart's items and total and one link, back to the cart
(`brand.cart_url` with the cart id, UTM-tagged like every link).

The waits count from the LAST change: a later `cart_updated` for the same cart
(or a `checkout_started` naming it) brings the new contents and restarts the
wait for the next reminder, so each reminder goes out at most once per cart,
1 h, 24 h and 72 h after the cart last changed. An emptied cart (no items) ends
the journey (`cart-emptied`). Changes of other carts, and changes older than the
one the journey holds (`occurred_at`), are ignored. A `checkout_started`
cannot start it (one event type starts one journey; pricing-abandon listens to
checkouts, with or without a cart).

Exits at once, at any step, on `purchased` naming this cart (reason
`purchased`); a purchase naming no cart ends every abandoned cart of the
contact (we cannot tell which cart was bought, and a buyer must not be chased),
one naming another cart ends none. A cart already bought when the journey
starts (its `purchased` event arrived first) is not chased. It is a marketing
journey: an unsubscribe ends it.
"""

from __future__ import annotations

from temporalio import workflow

from workflows.toolkit import CRM_RETRY_POLICY, CRM_TIMEOUT, Journey, PlanStep, activity_classes
from workflows.triggers import Trigger

with workflow.unsafe.imports_passed_through():
    from pydantic import JsonValue, ValidationError

    from models.carts import Cart, CartInput, CartQuery, CheckoutProperties
    from models.events import BehaviorEvent
    from models.journeys import JourneyInput, JourneyState
    from models.messages import Channel, DeliveryStatus, MessageCategory

REMINDERS = (("reminder-1h", 1), ("reminder-24h", 24), ("reminder-72h", 72))
"""Each reminder email, and the hours after the last cart change it goes out."""
SMS_FALLBACK = "reminder-24h-sms"
"""Sent with the 24-hour reminder when its email could not reach the contact."""
CART_CHANGES = frozenset({"cart_updated", "checkout_started"})
"""Events that change a cart (when they name it)."""


def cart_input(event: BehaviorEvent, day_seconds: int) -> CartInput:
    """The journey a `cart_updated` event starts: its cart, changed when the event happened.

    Raises:
        ValidationError: the event carries no valid cart, or an empty one.
    """
    return CartInput(
        contact_id=event.contact_id,
        day_seconds=day_seconds,
        cart=Cart.model_validate(event.properties),
        changed_at=event.occurred_at,
    )


def _due_day(changed_on_day: float, hours: int) -> float:
    """The journey day `hours` after a cart change made on `changed_on_day`."""
    return changed_on_day + hours / 24


def _plan(changed_on_day: float) -> tuple[PlanStep, ...]:
    """The reminders, counted from the journey day of the last cart change."""
    titles = {
        "reminder-1h": "Email: you left something in your cart",
        "reminder-24h": "Email: your cart, and what people ask before buying",
        "reminder-72h": "Email: last reminder, your cart is still saved",
    }
    steps = [
        PlanStep(
            step,
            day=_due_day(changed_on_day, hours),
            when=f"{hours} h after the last cart change",
            title=titles[step],
            channel=Channel.EMAIL,
        )
        for step, hours in REMINDERS
    ]
    steps.insert(
        2,
        PlanStep(
            SMS_FALLBACK,
            day=_due_day(changed_on_day, 24),
            when="24 h after the last cart change",
            title="SMS, only if the 24 h email could not reach them (needs SMS consent)",
            channel=Channel.SMS,
            template="abandoned-cart/reminder-24h",
        ),
    )
    return tuple(steps)


@workflow.defn(name="abandoned-cart")
class AbandonedCart(Journey):
    """Remind a contact of the cart they left: 1 h, 24 h and 72 h after its last change."""

    name = "abandoned-cart"
    title = "Abandoned cart"
    category = MessageCategory.MARKETING
    trigger = Trigger("cart_updated", input_from=cart_input)
    exit_on = frozenset({"purchased"})
    listens_to = CART_CHANGES
    started_by = "properties `cart_id`, `items`, `total`, `currency`; once per cart"
    exit_reasons = (("cart-emptied", "a change leaves the cart without items"),)
    input_model = CartInput
    plan = _plan(0.0)
    """As at enrolment; each cart change moves the steps not done yet (`journey_plan`)."""

    @classmethod
    def workflow_id_for(cls, journey_input: JourneyInput) -> str:
        """One journey per contact and cart: `abandoned-cart-{contact}-{cart}`.

        Raises:
            TypeError: the input is not a `CartInput`.
        """
        if not isinstance(journey_input, CartInput):
            raise TypeError(f"{cls.name} takes a CartInput, not {type(journey_input).__name__}")
        return f"{cls.name}-{journey_input.contact_id}-{journey_input.cart.cart_id}"

    @workflow.init
    def __init__(self, journey_input: CartInput) -> None:
        """Know the cart from the start, so event handlers can match it."""
        super().__init__(journey_input)

    @workflow.run
    async def run(self, journey_input: CartInput) -> JourneyState:
        """Enrol the contact and remind them of their cart."""
        return await self.run_journey(journey_input)

    async def steps(self) -> None:
        """Each reminder once, its hours after the last cart change; a change restarts the wait."""
        if await self._bought_before_we_started():
            self.leave("purchased")
        for step, hours in REMINDERS:
            while await self.wait_until_day(self._due(hours), until=self._cart_changed):
                self._take_change()
            sent = await self.send(step, variables=self._variables())
            if step == "reminder-24h" and sent.status != DeliveryStatus.SENT:
                await self.send(SMS_FALLBACK, variables=self._variables())

    # --- the cart and its changes -----------------------------------------------------

    def journey_plan(self) -> tuple[PlanStep, ...]:
        """The reminders, counted from the last cart change."""
        return _plan(self._cart().changed_on_day)

    def ends_journey(self, event: BehaviorEvent) -> bool:
        """A purchase of this cart, or naming no cart, ends it; one of another cart does not."""
        if event.type == "purchased":
            bought = event.properties.get("cart_id")
            return bought is None or bought == self._cart().cart.cart_id
        return super().ends_journey(event)

    def _cart(self) -> CartInput:
        cart = self.journey_input
        assert isinstance(cart, CartInput)
        return cart

    def _due(self, hours: int) -> float:
        return _due_day(self._cart().changed_on_day, hours)

    def _newest_change(self) -> BehaviorEvent | None:
        """The newest change of this cart received after the one the journey holds."""
        current = self._cart()
        newest: BehaviorEvent | None = None
        for event in self.events:
            if event.type not in CART_CHANGES:
                continue
            if event.properties.get("cart_id") != current.cart.cart_id:
                continue
            if current.changed_at is not None and event.occurred_at <= current.changed_at:
                continue
            if newest is None or event.occurred_at >= newest.occurred_at:
                newest = event
        return newest

    def _cart_changed(self) -> bool:
        return self._newest_change() is not None

    def _take_change(self) -> None:
        """Make the newest change the cart's state, from now on; an emptied cart ends it."""
        change = self._newest_change()
        assert change is not None
        current = self._cart()
        cart = _contents(change, current.cart)
        if not cart.items:
            self.leave("cart-emptied")
        workflow.logger.info("cart changed on day %.3f", self.elapsed / self.day)
        self.journey_input = current.model_copy(
            update={
                "cart": cart,
                "changed_at": change.occurred_at,
                "changed_on_day": max(self.elapsed / self.day, 0.0),
            }
        )
        self.publish_progress()

    def _variables(self) -> dict[str, JsonValue]:
        """What the reminders show: the cart (`cart.*`, see `Cart.template_variables`)."""
        return {"cart": self._cart().cart.template_variables()}

    async def _bought_before_we_started(self) -> bool:
        """Whether a `purchased` of this cart was stored before the journey started."""
        return await workflow.execute_local_activity_method(
            activity_classes.contacts().cart_purchased,
            CartQuery(contact_id=self.contact_id, cart_id=self._cart().cart.cart_id),
            start_to_close_timeout=CRM_TIMEOUT,
            retry_policy=CRM_RETRY_POLICY,
            summary="Was this cart bought already?",
        )


def _contents(change: BehaviorEvent, current: Cart) -> Cart:
    """The cart after `change`: its contents if it carries a whole cart, else `current`'s
    (a `checkout_started` naming only the cart id)."""
    try:
        if change.type == "checkout_started":
            checkout = CheckoutProperties.model_validate(change.properties)
            if checkout.items is None or checkout.total is None or checkout.currency is None:
                return current
        return Cart.model_validate(change.properties)
    except ValidationError:  # checked at the gateway; one signalled past it keeps the cart
        workflow.logger.warning("cart change %s carries no valid cart", change.event_id)
        return current
