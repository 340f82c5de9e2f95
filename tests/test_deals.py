"""Deals: the configuration, the deal events applied by the ingest, and the whole way from
`lead_qualified` to `deal_won` starting onboarding.

The ingest runs the real `ingest_events` activity on a real SQLite file (and a
throwaway PostgreSQL cluster where its binaries are installed): a qualified lead
opens a deal and becomes `sql`, a stage change past the opportunity stage makes it
an `opportunity`, a won deal a `customer` with a derived `purchased`; a retried
batch or a redelivered event changes nothing. End to end, events go in through
the intake as the gateway sends them, on the time-skipping server with the real
worker.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from models.event_properties import check_properties
from models.events import BehaviorEvent
from models.settings import PROJECT_ROOT, Settings
from models.tables import ContactEvent, Deal, DealStageChange, PipelineTransition
from rules.deals import DealConfig
from starter.client import AsyncJourneysClient
from tests.cli import journeys
from tests.contact_kit import journey_when
from tests.factories import add_contact, add_lead, rows_of
from tests.gateway import FULL_KEY, gateway_settings, serving_gateway
from tests.ingest import Ingest

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
CONFIG = DealConfig()
QUALIFIED: dict[str, Any] = {
    "amount": "12000",
    "currency": "EUR",
    "use_case": "Onboarding emails for 40 clinics",
    "competitors": ["Mailchimp", "Brevo"],
}


# --- the configuration ------------------------------------------------------------------


def test_the_shipped_deals_toml_is_the_documented_configuration(tmp_path: Path) -> None:
    assert DealConfig.load(PROJECT_ROOT / "deals.toml") == DealConfig(
        stages=["qualification", "demo", "proposal", "negotiation"], opportunity_stage="demo"
    )
    broken = tmp_path / "deals.toml"
    broken.write_text('stages = ["a", "b"]\nopportunity_stage = "demo"\n')
    with pytest.raises(ValueError, match=r"deals.toml: invalid deal configuration: .*'demo'"):
        DealConfig.load(broken)
    broken.write_text('stages = ["a", "a"]\nopportunity_stage = "a"\n')
    with pytest.raises(ValueError, match="each stage once"):
        DealConfig.load(broken)


def test_the_opportunity_stage_and_every_later_one_make_an_opportunity() -> None:
    assert [CONFIG.is_opportunity(stage) for stage in CONFIG.stages] == [
        False,
        True,
        True,
        True,
    ]


# --- the properties the gateway checks ----------------------------------------------------


def problems(event_type: str, properties: dict[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
    """Where and why the properties of `event_type` are refused ([] when taken)."""
    try:
        check_properties(event_type, properties, title="test")
    except ValidationError as error:
        return [(tuple(issue["loc"]), issue["msg"]) for issue in error.errors()]
    return []


def test_every_deal_property_is_optional_but_the_stage_of_a_stage_change() -> None:
    assert problems("lead_qualified", {}) == []
    assert problems("lead_qualified", {**QUALIFIED, "stage": "demo", "utm_source": "ads"}) == []
    assert problems("deal_won", {}) == problems("deal_lost", {}) == []
    assert problems("deal_stage_changed", {"stage": "demo", "deal_id": 3}) == []
    assert problems("deal_stage_changed", {}) == [(("properties", "stage"), "Field required")]


@pytest.mark.parametrize(
    ("event_type", "properties", "where", "says"),
    [
        ("lead_qualified", {"amount": "12,000", "currency": "EUR"}, ("amount",), "decimal"),
        ("lead_qualified", {"amount": "-1", "currency": "EUR"}, ("amount",), "greater than"),
        ("lead_qualified", {"amount": "12000"}, (), "`amount` and `currency` together"),
        ("lead_qualified", {"currency": "euro", "amount": 1}, ("currency",), "pattern"),
        ("lead_qualified", {"stage": "Demo Booked"}, ("stage",), "pattern"),
        ("lead_qualified", {"use_case": "a\r\nBcc: x"}, ("use_case",), "one line"),
        ("lead_qualified", {"competitors": "Brevo"}, ("competitors",), "valid list"),
        ("lead_qualified", {"competitors": ["x"] * 21}, ("competitors",), "at most 20"),
        ("deal_stage_changed", {"stage": "demo", "deal_id": 0}, ("deal_id",), "greater than"),
        ("deal_won", {"deal_id": "latest"}, ("deal_id",), "valid integer"),
        ("deal_lost", {"reason": "x" * 201}, ("reason",), "200"),
    ],
)
def test_a_malformed_deal_property_is_refused_naming_the_field(
    event_type: str, properties: dict[str, Any], where: tuple[str, ...], says: str
) -> None:
    [(loc, message)] = problems(event_type, properties)
    assert loc == ("properties", *where)
    assert says in message


# --- the ingest ------------------------------------------------------------------------------


class DealIngest(Ingest):
    """The real ingest for contact `dana`, and what it wrote."""

    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        super().__init__(engine, settings, "dana", deal_config=CONFIG)

    async def deals(self) -> list[Deal]:
        return await rows_of(self.engine, Deal, "dana")

    async def deal(self) -> Deal:
        [deal] = await self.deals()
        return deal

    async def stages(self) -> list[tuple[str | None, str, str]]:
        """The contact's pipeline transitions: (from, to, cause)."""
        rows = await rows_of(self.engine, PipelineTransition, "dana")
        return [(row.previous_stage, row.stage, row.cause) for row in rows]


@pytest.fixture
async def ingest(database: AsyncEngine, settings: Settings) -> DealIngest:
    await add_lead(database, "dana", first_name="Dana", owner_id="sdr-ines", tags=["stage_mql"])
    return DealIngest(database, settings)


_count = iter(range(1_000_000))


def event(event_type: str, at: datetime = NOW, **properties: Any) -> BehaviorEvent:
    return BehaviorEvent(
        event_id=f"evt-{next(_count)}",
        contact_id="dana",
        type=event_type,
        occurred_at=at,
        properties=properties,
    )


async def test_lead_qualified_opens_a_deal_owned_by_the_contacts_owner_and_makes_it_sql(
    ingest: DealIngest,
) -> None:
    qualified = event("lead_qualified", **QUALIFIED)
    result = await ingest(qualified)

    assert result.derived_events == []
    deal = await ingest.deal()
    assert deal.id is not None
    assert (deal.owner_id, deal.amount, deal.currency, deal.stage, deal.status) == (
        "sdr-ines",
        Decimal("12000"),
        "EUR",
        "qualification",
        "open",
    )
    assert deal.use_case == "Onboarding emails for 40 clinics"
    assert deal.competitors == ["Mailchimp", "Brevo"]
    assert (deal.created_at, deal.updated_at, deal.closed_at) == (NOW, NOW, None)
    assert await ingest.stages() == [
        (None, "sql", f"lead_qualified (deal {deal.id}, qualification)")
    ]
    assert (await ingest.contact()).pipeline_stage == "sql"
    [change] = await rows_of(ingest.engine, DealStageChange, "dana")
    assert (change.event_id, change.from_stage, change.to_stage, change.status) == (
        qualified.event_id,
        None,
        "qualification",
        "open",
    )


async def test_a_bare_lead_qualified_opens_a_deal_at_the_first_stage(ingest: DealIngest) -> None:
    await ingest(event("lead_qualified"))

    deal = await ingest.deal()
    assert (deal.amount, deal.currency, deal.stage, deal.use_case, deal.competitors) == (
        None,
        None,
        "qualification",
        None,
        [],
    )
    assert [stage for _, stage, _ in await ingest.stages()] == ["sql"]


async def test_the_deal_moves_through_its_stages_and_the_opportunity_stage_counts_once(
    ingest: DealIngest,
) -> None:
    await ingest(event("lead_qualified", **QUALIFIED))
    deal_id = (await ingest.deal()).id

    await ingest(event("deal_stage_changed", NOW + HOUR, stage="demo"))
    await ingest(event("deal_stage_changed", NOW + 2 * HOUR, stage="proposal", deal_id=deal_id))
    await ingest(event("deal_stage_changed", NOW + 3 * HOUR, stage="demo"))  # back: no new move

    deal = await ingest.deal()
    assert (deal.stage, deal.updated_at) == ("demo", NOW + 3 * HOUR)
    assert await ingest.stages() == [
        (None, "sql", f"lead_qualified (deal {deal_id}, qualification)"),
        ("sql", "opportunity", f"deal_stage_changed (deal {deal_id}, demo)"),
    ]
    changes = await rows_of(ingest.engine, DealStageChange, "dana")
    assert [(c.from_stage, c.to_stage) for c in changes] == [
        (None, "qualification"),
        ("qualification", "demo"),
        ("demo", "proposal"),
        ("proposal", "demo"),
    ]


async def test_a_deal_opened_at_the_opportunity_stage_makes_the_contact_an_opportunity_at_once(
    ingest: DealIngest,
) -> None:
    await ingest(event("lead_qualified", stage="proposal"))

    assert [stage for _, stage, _ in await ingest.stages()] == ["sql", "opportunity"]
    assert (await ingest.deal()).stage == "proposal"


async def test_deal_won_closes_it_makes_a_customer_and_derives_the_purchase_once(
    ingest: DealIngest,
) -> None:
    await ingest(event("lead_qualified", **QUALIFIED), event("deal_stage_changed", stage="demo"))
    won = event("deal_won", NOW + HOUR, amount="11500.50", currency="EUR")

    first = await ingest(won, batch_key="run/won")
    retried = await ingest(won, batch_key="run/won")  # the answer was lost: same batch again
    redelivered = await ingest(won)  # a duplicate in a later batch

    deal = await ingest.deal()
    assert (deal.status, deal.closed_at, deal.amount) == ("won", NOW + HOUR, Decimal("11500.5"))
    [purchase] = first.derived_events
    assert purchase.event_id == f"purchased:{won.event_id}"
    assert (purchase.type, purchase.occurred_at) == ("purchased", NOW + HOUR)
    assert purchase.properties == {
        "deal_id": deal.id,
        "source_event_id": won.event_id,
        "amount": "11500.5",
        "currency": "EUR",
    }
    assert retried.derived_events == first.derived_events
    assert redelivered.accepted_event_ids == [] and redelivered.derived_events == []
    assert [stage for _, stage, _ in await ingest.stages()] == ["sql", "opportunity", "customer"]
    contact = await ingest.contact()
    assert contact.pipeline_stage == "customer"
    assert contact.tags == ["stage_customer", "stage_mql"]
    stored = await rows_of(ingest.engine, ContactEvent, "dana")
    assert [row.event_id for row in stored if row.type == "purchased"] == [purchase.event_id]
    assert len(await rows_of(ingest.engine, DealStageChange, "dana")) == 3


async def test_deal_lost_closes_it_with_its_reason_and_a_new_qualification_opens_another(
    ingest: DealIngest,
) -> None:
    await ingest(event("lead_qualified"))
    await ingest(event("lead_qualified"))  # a deal is open: no second one
    assert len(await ingest.deals()) == 1

    lost = await ingest(event("deal_lost", NOW + HOUR, reason="chose a competitor"))

    assert lost.derived_events == []
    deal = await ingest.deal()
    assert (deal.status, deal.lost_reason, deal.closed_at) == (
        "lost",
        "chose a competitor",
        NOW + HOUR,
    )
    assert (await ingest.contact()).pipeline_stage == "sql"
    await ingest(event("lead_qualified", NOW + 2 * HOUR))
    assert [d.status for d in await ingest.deals()] == ["lost", "open"]


async def test_events_naming_no_open_deal_or_an_unknown_stage_change_nothing(
    ingest: DealIngest,
) -> None:
    assert (await ingest(event("deal_won"))).derived_events == []  # no deal yet
    await ingest(event("deal_stage_changed", stage="demo"))
    assert await ingest.deals() == [] and await ingest.stages() == []

    await ingest(event("lead_qualified", stage="no-such-stage"))  # opened at the first stage
    deal = await ingest.deal()
    await ingest(event("deal_stage_changed", stage="no-such-stage"))
    await ingest(event("deal_stage_changed", stage="demo", deal_id=(deal.id or 0) + 1))
    await ingest(event("deal_lost", reason="no-budget"))
    await ingest(event("deal_won"))  # closed already

    deal = await ingest.deal()
    assert (deal.stage, deal.status) == ("qualification", "lost")
    assert [stage for _, stage, _ in await ingest.stages()] == ["sql"]


async def test_a_plain_purchase_makes_a_customer_once(ingest: DealIngest) -> None:
    await ingest(event("purchased"), event("purchased", NOW + HOUR))

    assert await ingest.stages() == [(None, "customer", "purchased")]
    await ingest(event("lead_qualified", NOW + 2 * HOUR))  # an upsell: the customer stays one
    assert [stage for _, stage, _ in await ingest.stages()] == ["customer"]
    assert len(await ingest.deals()) == 1


async def test_erasure_deletes_the_contacts_deals_and_their_history(ingest: DealIngest) -> None:
    await ingest(event("lead_qualified", **QUALIFIED), event("deal_won"))

    erased = await ActivityEnvironment().run(ingest.activities.erase_contact, "dana")

    assert (erased.rows_deleted["deals"], erased.rows_deleted["deal_stage_changes"]) == (1, 2)
    assert await ingest.deals() == []
    assert await rows_of(ingest.engine, DealStageChange, "dana") == []


async def test_deal_events_of_a_contact_that_does_not_exist_change_nothing(
    database: AsyncEngine, settings: Settings
) -> None:
    await add_contact(database, "someone-else")
    ingest = DealIngest(database, settings)

    result = await ingest(event("lead_qualified"), event("deal_won"))

    assert len(result.accepted_event_ids) == 2 and result.derived_events == []
    assert await ingest.deals() == []


# --- end to end: the gateway, the contact workflow, onboarding ------------------------------


async def test_a_qualified_lead_goes_through_its_deal_to_a_customer_in_onboarding(
    time_skipping_env: WorkflowEnvironment, settings: Settings, engine: AsyncEngine
) -> None:
    contact_id = f"dana-{uuid.uuid4().hex[:6]}"
    await add_lead(engine, contact_id, first_name="Dana", owner_id="sdr-ines")
    async with serving_gateway(time_skipping_env.client, gateway_settings(settings)) as gateway:

        async def post(event_id: str, event_type: str, **properties: Any) -> httpx.Response:
            body = {"event_id": event_id, "contact_id": contact_id, "type": event_type}
            return await gateway.http.post("/v1/events", json={**body, "properties": properties})

        async def deals() -> list[dict[str, Any]]:
            response = await gateway.http.get(f"/v1/contacts/{contact_id}/deals")
            assert response.status_code == 200, response.text
            found: list[dict[str, Any]] = response.json()
            return found

        async def deals_when(condition: Callable[[list[dict[str, Any]]], bool]) -> Any:
            for _ in range(300):
                if condition(found := await deals()):
                    return found
                await asyncio.sleep(0.05)
            raise AssertionError(f"deals never matched: {await deals()}")

        refused = await post("q0", "lead_qualified", amount="12000")
        assert refused.status_code == 422, refused.text
        assert "`amount` and `currency` together" in refused.json()["detail"][0]["msg"]

        assert (await post("q1", "lead_qualified", **QUALIFIED)).status_code == 202
        [deal] = await deals_when(lambda found: len(found) == 1)
        assert (deal["stage"], deal["status"], deal["amount"], deal["owner_id"]) == (
            "qualification",
            "open",
            "12000",
            "sdr-ines",
        )
        assert deal["competitors"] == ["Mailchimp", "Brevo"]
        shown = (await gateway.http.get(f"/v1/contacts/{contact_id}")).json()
        assert shown["open_deal"]["id"] == deal["id"]

        assert (await post("s1", "deal_stage_changed", stage="demo")).status_code == 202
        assert (await post("s1", "deal_stage_changed", stage="demo")).status_code == 200
        await deals_when(lambda found: found[0]["stage"] == "demo")
        assert (await post("w1", "deal_won")).status_code == 202

        onboarding = await journey_when(
            time_skipping_env.client, f"onboarding-{contact_id}", lambda s: s.messages_sent >= 1
        )
        assert onboarding.contact_id == contact_id
        [won] = await deals_when(lambda found: found[0]["status"] == "won")
        assert [(c["event_id"], c["to_stage"], c["status"]) for c in won["changes"]] == [
            ("q1", "qualification", "open"),
            ("s1", "demo", "open"),
            ("w1", "demo", "won"),
        ]
        async with AsyncJourneysClient(gateway.url, FULL_KEY) as client:
            [through_the_client] = await client.deals(contact_id)
        assert (through_the_client.status, through_the_client.amount) == ("won", Decimal(12000))
        shown = (await gateway.http.get(f"/v1/contacts/{contact_id}")).json()
        assert shown["open_deal"] is None
        assert "stage_customer" in shown["tags"]
        exported = (await gateway.http.get(f"/v1/contacts/{contact_id}/export")).json()
        assert [(d["id"], d["status"], len(d["changes"])) for d in exported["deals"]] == [
            (won["id"], "won", 3)
        ]

    transitions = await rows_of(engine, PipelineTransition, contact_id)
    assert [row.stage for row in transitions] == ["sql", "opportunity", "customer"]
    stored = await rows_of(engine, ContactEvent, contact_id)
    assert [row.event_id for row in stored if row.type == "purchased"] == ["purchased:w1"]
    listed = await journeys("deals", "--contact", contact_id, env=_cli_env(settings))
    assert listed.returncode == 0, listed.stderr
    assert f"#{won['id']:<4} {contact_id:16} won    demo" in listed.stdout
    assert "12000 EUR" in listed.stdout and "Onboarding emails for 40 clinics" in listed.stdout


async def test_journeys_deals_refuses_an_unknown_status_in_one_line(settings: Settings) -> None:
    refused = await journeys("deals", "--status", "closed", env=_cli_env(settings))

    assert refused.returncode == 2
    assert "expected open, won or lost, got 'closed'" in refused.stderr
    assert "Traceback" not in refused.stderr


def _cli_env(settings: Settings) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": settings.database_url, "LOG_FORMAT": "json"}
