"""Carts: what a `cart_updated` event carries, and the abandoned-cart journey's input.

A cart is contact-supplied input (a shop reports what the contact put in it),
so every part of it is bounded: at most `MAX_CART_ITEMS` lines, names of one
line of text up to `MAX_ITEM_NAME_LENGTH` characters, quantities and amounts in
range. Templates render it as text (`rules/templates.py`), never as template code.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StringConstraints, field_validator

from models.contacts import SingleLine
from models.events import UtcTime
from models.ids import CartId, ContactId
from models.journeys import KEPT_BY_THE_JOURNEY, JourneyInput

MAX_CART_ITEMS = 50
"""Most lines a cart may have."""
MAX_ITEM_NAME_LENGTH = 200
MAX_ITEM_QUANTITY = 9_999

Amount = Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=3)]
"""A non-negative amount of money: a decimal (a JSON string such as `"49.90"`, or a number),
at most 12 digits, 3 of them after the point."""
CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
"""An ISO 4217 currency code in capitals, e.g. `EUR`."""
ItemName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_ITEM_NAME_LENGTH),
    SingleLine,
]


class CartItem(BaseModel):
    """One line of a cart.

    Attributes:
        name: What it is, as the shop names it (one line, 1–200 characters).
        quantity: How many (1–9,999).
        price: Unit price, in the cart's currency.
        sku: The shop's product code, if it has one (1–64 characters).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: ItemName
    quantity: int = Field(default=1, ge=1, le=MAX_ITEM_QUANTITY)
    price: Amount
    sku: Annotated[str, StringConstraints(min_length=1, max_length=64), SingleLine] | None = None

    def template_variables(self) -> dict[str, JsonValue]:
        """The line as templates see it: `name`, `quantity`, `price`, `line_total`, `sku`."""
        line: dict[str, JsonValue] = {
            "name": self.name,
            "quantity": self.quantity,
            "price": _money(self.price),
            "line_total": _money(self.price * self.quantity),
        }
        return line | ({"sku": self.sku} if self.sku else {})


class Cart(BaseModel):
    """What a contact's cart holds.

    Attributes:
        cart_id: The shop's id of the cart (an id: letters, digits, `_`, `.`, `-`).
        items: Its lines, at most 50; an empty list means the cart was emptied.
        total: What it comes to, in `currency`.
        currency: ISO 4217 code of `total` and the item prices, e.g. `EUR`.
    """

    model_config = ConfigDict(frozen=True)

    cart_id: CartId
    items: list[CartItem] = Field(max_length=MAX_CART_ITEMS)
    total: Amount
    currency: CurrencyCode

    def template_variables(self) -> dict[str, JsonValue]:
        """The cart as its messages' templates see it (`cart.*`): text and numbers only.

        `id`, `items` (each `name`, `quantity`, `price`, `line_total`, `sku` if
        any), `item_count` (units), `total` and `currency`; amounts as text with
        at least two decimals (`12.50`).
        """
        return {
            "id": self.cart_id,
            "items": [item.template_variables() for item in self.items],
            "item_count": sum(item.quantity for item in self.items),
            "total": _money(self.total),
            "currency": self.currency,
        }


def _money(amount: Decimal) -> str:
    """`12.5` as `12.50`; more decimals, when given, are kept (`0.125`)."""
    exponent = amount.as_tuple().exponent
    places = max(2, -exponent) if isinstance(exponent, int) else 2
    return f"{amount:.{places}f}"


class CartProperties(Cart):
    """The properties of a `cart_updated` event: a cart, and any other details the shop adds
    (UTM parameters, `source`…), which the event's 32 KiB bound keeps small."""

    model_config = ConfigDict(frozen=True, extra="allow")


class CheckoutProperties(BaseModel):
    """The properties of a `checkout_started` event: the cart's, when it names one.

    A checkout without a cart id (a plan checkout, as the pricing follow-up
    sees it) is valid; one that names a cart id must carry a valid one, and
    any cart contents it carries are checked like a `cart_updated`'s.
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    cart_id: CartId | None = None
    items: list[CartItem] | None = Field(default=None, max_length=MAX_CART_ITEMS)
    total: Amount | None = None
    currency: CurrencyCode | None = None


class PurchaseProperties(BaseModel):
    """The properties of a `purchased` event: the cart bought, if any (other details allowed).

    A purchase naming no cart ends every abandoned cart of the contact (see
    `workflows/journeys/abandoned_cart.py`).
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    cart_id: CartId | None = None


class CartInput(JourneyInput):
    """What an abandoned-cart journey is started with: the cart, as its latest change left it.

    Attributes:
        cart: The cart; one journey per contact and cart
            (`abandoned-cart-{contact}-{cart}`).
        changed_at: `occurred_at` of the event that last changed the cart
            (None: enrolled by hand); older changes are ignored. Set by the
            journey when the cart changes.
        changed_on_day: Journey day of the last change (0: at enrolment): the
            reminders count from it. Set by the journey when the cart changes.
    """

    cart: Cart
    changed_at: UtcTime | None = Field(default=None, json_schema_extra=KEPT_BY_THE_JOURNEY)
    changed_on_day: float = Field(default=0, ge=0, json_schema_extra=KEPT_BY_THE_JOURNEY)

    @field_validator("cart")
    @classmethod
    def _not_empty(cls, cart: Cart) -> Cart:
        if not cart.items:
            raise ValueError("the cart is empty: there is nothing to come back for")
        return cart


class CartQuery(BaseModel):
    """A contact's cart asked about: was it bought?

    Attributes:
        contact_id: The contact.
        cart_id: The cart.
    """

    model_config = ConfigDict(frozen=True)

    contact_id: ContactId
    cart_id: CartId
