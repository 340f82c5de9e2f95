"""Dedupe on entry, merge on request and the duplicate rate: the real gateway on loopback, the
real worker, the Temporal dev server and a real database (`starter/services/dedupe.py`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from models.contacts import ContactProfile
from models.db import session_factory
from models.settings import Settings
from models.tables import ConsentChange, ContactEvent, ContactMerge, EventReceipt, MessageLog
from starter.services import dedupe, operations
from tests.cli import cli_environment, journeys
from tests.factories import add_contact, rows_of
from tests.gateway import Gateway, gateway_settings, serving_gateway
from tests.test_api import contact_state, journey_state, new_id


@pytest.fixture
async def gateway(dev_env: WorkflowEnvironment, settings: Settings) -> AsyncIterator[Gateway]:
    async with serving_gateway(dev_env.client, gateway_settings(settings)) as served:
        yield served


async def workflow_status(client: Client, workflow_id: str) -> WorkflowExecutionStatus | None:
    """The workflow's status once it is no longer running (polled for up to 20 s)."""
    status = None
    for _ in range(200):
        status = (await client.get_workflow_handle(workflow_id).describe()).status
        if status != WorkflowExecutionStatus.RUNNING:
            return status
        await asyncio.sleep(0.1)
    return status


async def merges_of(engine: AsyncEngine, survivor: str) -> list[ContactMerge]:
    async with session_factory(engine)() as session:
        rows = await session.exec(select(ContactMerge).where(ContactMerge.survivor_id == survivor))
        return list(rows.all())


async def test_a_new_lead_with_a_known_email_is_merged_into_the_contact_with_its_events(
    gateway: Gateway, dev_env: WorkflowEnvironment, engine: AsyncEngine
) -> None:
    ada, lead = new_id("ada"), new_id("lead")
    since = datetime.now(UTC) - timedelta(seconds=1)
    created = await gateway.http.put(
        f"/v1/contacts/{ada}", json={"email": f"{ada}@Example.com", "first_name": "Ada"}
    )
    assert created.status_code == 200, created.text
    assert created.json()["merged_from"] is None
    early = {"event_id": "early-1", "contact_id": lead, "type": "pricing_page_viewed"}
    assert (await gateway.http.post("/v1/events", json=early)).status_code == 202
    await contact_state(dev_env.client, lead, lambda s: s.events_accepted == 1)

    merged = await gateway.http.put(
        f"/v1/contacts/{lead}",
        json={
            "email": f"{ada.upper()}@EXAMPLE.com",
            "first_name": "Somebody",
            "phone": "+14155550123",
            "company": "Acme",
            "tags": ["src_webinar"],
            "attributes": {"region": "EMEA"},
            "email_consent": {"granted": True, "source": "form:webinar"},
        },
    )
    assert merged.status_code == 200, merged.text
    body = merged.json()
    assert (body["id"], body["merged_from"], body["matched_by"]) == (ada, lead, "email")
    assert body["first_name"] == "Ada"  # the survivor's own field is kept
    assert (body["phone"], body["company"]) == ("+14155550123", "Acme")  # empty ones filled
    assert "src_webinar" in body["tags"] and body["attributes"] == {"region": "EMEA"}
    assert body["email_consent"]["granted"] is True
    history = await rows_of(engine, ConsentChange, ada)
    assert [(row.granted, row.source) for row in history] == [(True, "form:webinar")]
    assert (await gateway.http.get(f"/v1/contacts/{lead}")).status_code == 404  # no second one

    # The event sent before the PUT moved, and the survivor's score counts it.
    assert [row.event_id for row in await rows_of(engine, ContactEvent, ada)] == ["early-1"]
    assert await rows_of(engine, ContactEvent, lead) == []
    state = await contact_state(dev_env.client, ada, lambda s: s.score == 10)
    assert state.journeys == {}  # absorbed, nothing triggered
    assert await workflow_status(dev_env.client, f"contact-{lead}") == (
        WorkflowExecutionStatus.COMPLETED
    )

    # Later events and PUTs sent under the lead's id land on the survivor.
    later = await gateway.http.post(
        "/v1/events", json={"event_id": "later-1", "contact_id": lead, "type": "content_downloaded"}
    )
    assert later.status_code == 202, later.text
    result = later.json()["results"][0]
    assert result["workflow_id"] == f"contact-{ada}"
    assert result["warnings"] == [dedupe_warning(lead, ada)]
    retried = await gateway.http.post("/v1/events", json={**early})  # a retry of the early one
    assert retried.json()["results"][0]["status"] == "duplicate"
    await contact_state(dev_env.client, ada, lambda s: s.score == 15)
    again = await gateway.http.put(f"/v1/contacts/{lead}", json={"timezone": "Europe/Paris"})
    assert again.status_code == 200, again.text
    assert (again.json()["id"], again.json()["matched_by"]) == (ada, "alias")
    assert again.json()["timezone"] == "Europe/Paris"

    [audit] = await merges_of(engine, ada)
    assert (audit.loser_id, audit.matched_by, audit.actor) == (lead, "email", "api:tests")
    assert audit.moved == {"events": 1, "event_receipts": 1}
    assert audit.signalled_at is not None
    rate = await dedupe.duplicate_rate(engine, since, datetime.now(UTC))
    assert (rate.duplicates, rate.leads, rate.rate) == (1, 2, 0.5)

    # Erasing the survivor erases its aliases too: the lead's id takes nothing any more.
    assert (await gateway.http.delete(f"/v1/contacts/{ada}")).status_code == 200
    refused = await gateway.http.post("/v1/events", json={"contact_id": lead, "type": "x"})
    assert refused.status_code == 410, refused.text
    assert (await gateway.http.put(f"/v1/contacts/{lead}", json={})).status_code == 410
    assert await dedupe.alias_targets(engine, [lead]) == {}  # the link between the ids is gone


def dedupe_warning(alias: str, contact_id: str) -> str:
    from starter.api.events import merged_contact

    return merged_contact(alias, contact_id)


async def test_merge_on_request_moves_everything_ends_the_losers_journeys_and_is_idempotent(
    gateway: Gateway, dev_env: WorkflowEnvironment, engine: AsyncEngine
) -> None:
    client = dev_env.client
    survivor, loser = new_id("keep"), new_id("lose")
    for contact_id, behaviour in ((survivor, "website_visited"), (loser, "content_downloaded")):
        response = await gateway.http.put(
            f"/v1/contacts/{contact_id}",
            json={
                "email": f"{contact_id}@example.com",
                "email_consent": {"granted": True, "source": f"form:{contact_id}"},
            },
        )
        assert response.status_code == 200, response.text
        for kind in ("subscribed", behaviour):
            event = {"event_id": f"{kind}-{contact_id}", "contact_id": contact_id, "type": kind}
            assert (await gateway.http.post("/v1/events", json=event)).status_code == 202
    for contact_id in (survivor, loser):
        await journey_state(client, f"welcome-series-{contact_id}", lambda s: s.messages_sent == 1)
    kept = await contact_state(client, survivor, lambda s: s.events_accepted == 2)
    lost = await contact_state(client, loser, lambda s: s.events_accepted == 2)
    assert kept.score and lost.score

    merged = await gateway.http.post(f"/v1/contacts/{survivor}/merge", json={"from": loser})
    assert merged.status_code == 200, merged.text
    body = merged.json()
    assert (body["status"], body["survivor"], body["loser"]) == ("merged", survivor, loser)
    assert (body["matched_by"], body["actor"]) == ("request", "api:tests")
    assert body["moved"]["events"] == 2 and body["moved"]["message_log"] == 1
    assert body["moved"]["consent_changes"] == 1

    ended = await journey_state(
        client, f"welcome-series-{loser}", lambda s: s.status in ("exited", "completed")
    )
    assert (ended.status, ended.exit_reason) == ("exited", "merged")
    assert await workflow_status(client, f"contact-{loser}") == WorkflowExecutionStatus.COMPLETED
    going_on = await journey_state(client, f"welcome-series-{survivor}", lambda s: True)
    assert going_on.status == "running"
    await contact_state(client, survivor, lambda s: s.score == kept.score + lost.score)
    journeys_of = {row.journey for row in await rows_of(engine, MessageLog, survivor)}
    assert len(await rows_of(engine, MessageLog, survivor)) == 2 and journeys_of == {
        "welcome-series"
    }
    assert len(await rows_of(engine, EventReceipt, survivor)) == 4
    assert {row.source for row in await rows_of(engine, ConsentChange, survivor)} == {
        f"form:{survivor}",
        f"form:{loser}",
    }
    assert (await gateway.http.get(f"/v1/contacts/{loser}")).status_code == 404

    again = await gateway.http.post(f"/v1/contacts/{survivor}/merge", json={"from": loser})
    assert again.status_code == 200, again.text
    assert again.json() == {**body, "status": "already merged"}
    assert len(await merges_of(engine, survivor)) == 1

    other = new_id("other")
    await gateway.http.put(f"/v1/contacts/{other}", json={"email": f"{other}@example.com"})
    for path, payload, code, says in [
        (survivor, {"from": survivor}, 422, "into itself"),
        (survivor, {"from": "nobody-here"}, 404, "does not exist"),
        ("nobody-here", {"from": other}, 404, "does not exist"),
        (other, {"from": loser}, 409, f"already merged into {survivor!r}"),
        (loser, {"from": other}, 409, f"merge into {survivor!r} instead"),
    ]:
        refused = await gateway.http.post(f"/v1/contacts/{path}/merge", json=payload)
        assert refused.status_code == code, (path, payload, refused.text)
        assert says in refused.json()["detail"]
    assert (await gateway.http.delete(f"/v1/contacts/{other}")).status_code == 200
    erased = await gateway.http.post(f"/v1/contacts/{survivor}/merge", json={"from": other})
    assert erased.status_code == 410, erased.text


async def test_domain_and_name_match_only_where_configured_and_unambiguous(
    engine: AsyncEngine, settings: Settings
) -> None:
    key = settings.suppression_key()

    async def enter(contact_id: str, email: str, name: str, *, by_domain: bool) -> dedupe.Entry:
        profile = ContactProfile(id=contact_id, email=email, first_name=name)
        return await dedupe.enter_contact(
            engine, profile, key=key, match_domain_name=by_domain, actor="cli:test"
        )

    await enter("ada-1", "ada@acme.com", "Ada", by_domain=False)
    off = await enter("ada-2", "a.lovelace@acme.com", "ada", by_domain=False)
    assert off.merged_from is None and off.contact.id == "ada-2"  # off by default: two contacts
    on = await enter("ada-3", "lovelace@acme.com", " ADA ", by_domain=True)
    assert on.merged_from is None  # two Adas at acme.com: ambiguous, not merged

    await enter("bob-1", "bob@initech.com", "Bob", by_domain=False)
    matched = await enter("bob-2", "robert@initech.com", "bob", by_domain=True)
    assert (matched.contact.id, matched.matched_by) == ("bob-1", "domain+name")
    assert matched.contact.email == "bob@initech.com"  # the survivor's address is kept
    other_name = await enter("bob-3", "rob@initech.com", "Rob", by_domain=True)
    assert other_name.merged_from is None

    await enter("gil-1", "gil@gmail.com", "Gil", by_domain=False)
    free_mail = await enter("gil-2", "gil.other@gmail.com", "Gil", by_domain=True)
    assert free_mail.merged_from is None  # a free-mail domain is no company

    with pytest.raises(operations.Conflict):  # an existing contact taking another's email
        await enter("bob-3", "bob@initech.com", "Rob", by_domain=False)


async def test_cli_merges_and_lists_merges_with_the_duplicate_rate(
    dev_env: WorkflowEnvironment, settings: Settings, engine: AsyncEngine
) -> None:
    env = cli_environment(settings, dev_env.client.service_client.config.target_host)
    first = await journeys("contact", "upsert", "cli-kim", "--email", "kim@example.com", env=env)
    assert first.returncode == 0, first.stderr
    duplicate = await journeys(
        "contact", "upsert", "cli-kim-2", "--email", "Kim@Example.com", "--phone", "+14155550199",
        env=env,
    )  # fmt: skip
    assert duplicate.returncode == 0, duplicate.stderr
    assert "contact cli-kim-2 merged into cli-kim (matched by email)" in duplicate.stdout
    other = await journeys("contact", "upsert", "cli-lee", "--email", "lee@example.com", env=env)
    assert other.returncode == 0, other.stderr

    merged = await journeys("contact", "merge", "cli-kim", "cli-lee", env=env)
    assert merged.returncode == 0, merged.stderr
    assert merged.stdout.startswith("contact cli-lee merged into cli-kim")
    again = await journeys("contact", "merge", "cli-kim", "cli-lee", env=env)
    assert (
        again.stdout.strip() == "contact cli-lee was already merged into cli-kim: nothing changed"
    )
    itself = await journeys("contact", "merge", "cli-kim", "cli-kim", env=env)
    assert itself.returncode == 1
    assert itself.stderr.strip().splitlines() == [
        "error: cannot merge contact 'cli-kim' into itself; name two contacts"
    ]
    unknown = await journeys("contact", "merge", "cli-kim", "nobody", env=env)
    assert unknown.returncode == 1 and "'nobody' does not exist" in unknown.stderr

    listed = await journeys("contact", "merges", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    document = listed.json()
    assert [(m["loser"], m["matched_by"]) for m in document["merges"]] == [
        ("cli-kim-2", "email"),
        ("cli-lee", "request"),
    ]
    assert document["merges"][1]["actor"].startswith("cli")
    assert document["duplicate_rate"] == {
        "duplicates": 1,
        "leads": 3,
        "rate": 1 / 3,
        "target": 0.02,
    }
    table = await journeys("contact", "merges", env=env)
    assert "duplicate rate: 33.3% (1 duplicates found on entry of 3 leads; target ≤ 2%)" in (
        table.stdout
    )


async def test_a_merge_keeps_one_copy_of_an_event_both_hold_and_moves_the_rest(
    database: AsyncEngine,
) -> None:
    """On SQLite and PostgreSQL: an event id both contacts hold stays the survivor's once
    (unique per contact), the others move with the batch key the survivor's absorb reads."""
    await add_contact(database, "sv", email="sv@example.com")
    await add_contact(database, "ls", email="ls@example.com", phone="+14155550111")
    at = datetime(2026, 12, 1, tzinfo=UTC)
    async with session_factory(database)() as session:
        for contact_id, event_id in (("sv", "shared"), ("ls", "shared"), ("ls", "own")):
            session.add(
                ContactEvent(
                    contact_id=contact_id, event_id=event_id, type="pricing_page_viewed",
                    occurred_at=at, properties={}, batch_key="b",
                )
            )  # fmt: skip
        await session.commit()

    outcome = await dedupe.merge_contacts(database, "sv", "ls", actor="cli:test")
    assert outcome.merge.moved == {"events": 1}
    stored = {(row.event_id, row.batch_key) for row in await rows_of(database, ContactEvent, "sv")}
    assert stored == {("shared", "b"), ("own", "merge/ls")}
    survivor = await operations.get_contact(database, "sv")
    assert (survivor.email, survivor.phone) == ("sv@example.com", "+14155550111")
    assert await dedupe.alias_targets(database, ["ls", "sv"]) == {"ls": "sv"}
