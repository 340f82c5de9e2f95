"""Deals (seed 002, step 5): what the deal events carry, and a deal's status.

A qualified lead becomes a deal (`lead_qualified`): its amount, stage, use case,
competitors and owner. `deal_stage_changed` moves it through the configured
stages (`deals.toml`, `rules/deals.py`); `deal_won` and `deal_lost` close it.
Every property is optional but `deal_stage_changed`'s `stage`: a bare
`lead_qualified` still qualifies the lead and opens a deal at the first stage.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from models.carts import Amount, CurrencyCode
from models.contacts import SingleLine

LEAD_QUALIFIED = "lead_qualified"
"""The rep qualified the lead (SQL): a deal is opened."""
DEAL_STAGE_CHANGED = "deal_stage_changed"
"""The deal moved to another stage."""
DEAL_WON = "deal_won"
"""The deal closed won: the contact is a customer (and onboarding starts)."""
DEAL_LOST = "deal_lost"
"""The deal closed lost, with its reason."""
DEAL_EVENT_TYPES = frozenset({LEAD_QUALIFIED, DEAL_STAGE_CHANGED, DEAL_WON, DEAL_LOST})
STAGE_CUSTOMER_TAG = "stage_customer"
"""The seed's lifecycle tag of a customer, set when a deal is won."""
MAX_COMPETITORS = 20

StageName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,63}$")]
"""A deal stage, e.g. `demo` or `closed-won` (lower case, 1–64 characters)."""
Line = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), SingleLine
]
DealId = Annotated[int, Field(ge=1)]


def plain_amount(amount: Decimal) -> Decimal:
    """The amount without trailing zeros or an exponent: `12000.000` → `12000`, `12.50` → `12.5`."""
    return Decimal(format(amount.normalize(), "f"))


class DealStatus(StrEnum):
    """Whether a deal is still being worked on."""

    OPEN = "open"
    WON = "won"
    LOST = "lost"


class _Amount(BaseModel):
    """An amount with its currency: both or neither."""

    model_config = ConfigDict(frozen=True, extra="allow")

    amount: Amount | None = None
    currency: CurrencyCode | None = None

    @model_validator(mode="after")
    def _currency_with_amount(self) -> _Amount:
        if (self.amount is None) != (self.currency is None):
            raise ValueError("give `amount` and `currency` together (e.g. 12000 and EUR)")
        return self


class LeadQualifiedProperties(_Amount):
    """The properties of a `lead_qualified` event: the deal it opens (all optional).

    Attributes:
        amount: Expected amount (a decimal; with `currency`).
        currency: ISO 4217 code, e.g. `EUR` (with `amount`).
        stage: The deal's stage (default: the first configured stage).
        use_case: What the customer wants it for (one line).
        competitors: Who else they consider (at most 20, one line each).
    """

    stage: StageName | None = None
    use_case: Line | None = None
    competitors: list[Line] = Field(default_factory=list, max_length=MAX_COMPETITORS)


class DealStageChangedProperties(BaseModel):
    """The properties of a `deal_stage_changed` event.

    Attributes:
        stage: The stage the deal moved to (one of `deals.toml`'s).
        deal_id: Which deal (default: the contact's open deal).
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    stage: StageName
    deal_id: DealId | None = None


class DealWonProperties(_Amount):
    """The properties of a `deal_won` event (all optional).

    Attributes:
        deal_id: Which deal (default: the contact's open deal).
        amount: The amount signed, if it differs from the expected one (with `currency`).
        currency: Its currency.
    """

    deal_id: DealId | None = None


class DealLostProperties(BaseModel):
    """The properties of a `deal_lost` event (all optional).

    Attributes:
        deal_id: Which deal (default: the contact's open deal).
        reason: Why it was lost, e.g. `no-budget` or `chose a competitor` (one line).
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    deal_id: DealId | None = None
    reason: Line | None = None
