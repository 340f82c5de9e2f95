"""Hostile input: whatever clients post is taken or refused with the field named, and what is
taken, Temporal, the database and the worker can carry.

Property-based (hypothesis, see `tests/hostile.py`) at two levels: the payload models
(many cheap examples) and the real gateway on loopback with the real worker on the dev
server (fewer examples, every accepted event checked to arrive in its contact workflow).
Then the edges, one by one: oversized properties and contact fields, malformed signals
sent straight to a contact workflow, and events for contacts that do not exist.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email import policy
from email.parser import BytesParser
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from activities.providers.messages import OutgoingEmail, build_mime
from models.contact_workflow import ContactInput, ContactState
from models.contacts import MAX_CONTACT_ATTRIBUTES, MAX_CONTACT_TAGS, ContactFields
from models.db import session_factory
from models.events import MAX_PROPERTIES_BYTES, MAX_PROPERTIES_DEPTH, BehaviorEvent
from models.journeys import JourneyInput, JourneyStatus
from models.settings import Settings
from models.tables import ContactEvent, Suppression
from rules.templates import ContactFields as TemplateContact
from rules.templates import LinkContext, TemplateCatalog
from runtime.contact_signals import signal_contact
from starter.api.events import to_behavior_event
from starter.api.webhooks import SIGNATURE_HEADER, sign_webhook
from tests.factories import add_contact, message_rows, rows_of
from tests.gateway import WEBHOOK_SECRET, Gateway, gateway_settings, serving_gateway
from tests.hostile import (
    CONTACT_FIELDS,
    CONTROL_CHARACTERS,
    EVENT_FIELDS,
    PATH_IDS,
    PER_FIELD,
    PROPERTY,
    as_json,
    contact_bodies,
    contact_ids,
    nested,
    new_prefix,
    posted_events,
    run_property,
)
from tests.test_api import contact_state, journey_state, new_id, put_contact
from worker import running_worker
from workflows.journeys.welcome_series import WelcomeSeries

Row = TypeVar("Row")
JSON = {"Content-Type": "application/json"}
MAX_FUTURE = timedelta(seconds=300)
MESSAGE_HEADERS = [
    "Message-ID", "Date", "From", "To", "Reply-To", "Subject", "X-Journey", "X-Journey-Step",
    "List-Unsubscribe", "List-Unsubscribe-Post", "MIME-Version", "Content-Type",
]  # fmt: skip
"""Every header of a sent email, in order: contact data adds none."""


@pytest.fixture
async def gateway(dev_env: WorkflowEnvironment, settings: Settings) -> AsyncIterator[Gateway]:
    async with serving_gateway(dev_env.client, gateway_settings(settings)) as served:
        yield served


def refusal(item: Any) -> set[tuple[str | int, ...]] | None:
    """Where the gateway's event model finds problems in `item` (None: it takes it)."""
    try:
        to_behavior_event(item, now=datetime.now(UTC), max_future=MAX_FUTURE)
    except ValidationError as error:
        return {tuple(issue["loc"]) for issue in error.errors()}
    return None


def assert_names_the_problems(detail: Any, expected: set[tuple[str | int, ...]]) -> None:
    """A 422's issues: exactly the expected places, each with a message."""
    assert isinstance(detail, list) and detail, detail
    assert {tuple(issue["loc"]) for issue in detail} == expected, detail
    assert all(issue["msg"] and issue["type"] for issue in detail), detail


async def arrived(client: Client, engine: AsyncEngine, events: set[tuple[str, str]]) -> None:
    """Every (contact id, event id) is stored, and its contact workflow answers with it counted
    (a workflow whose task fails cannot answer a query)."""
    by_contact: dict[str, set[str]] = {}
    for contact_id, event_id in events:
        by_contact.setdefault(contact_id, set()).add(event_id)
    stored: set[tuple[str, str]] = set()
    for _ in range(200):
        async with session_factory(engine)() as session:
            rows = await session.exec(
                select(ContactEvent.contact_id, ContactEvent.event_id).where(
                    col(ContactEvent.contact_id).in_(by_contact)
                )
            )
            stored = set(rows.all())
        if events <= stored:
            break
        await asyncio.sleep(0.1)
    assert events <= stored, sorted(events - stored)
    for contact_id, event_ids in by_contact.items():
        await counted(client, contact_id, len(event_ids))


async def counted(client: Client, contact_id: str, events: int) -> None:
    """The contact workflow answers, with at least `events` events accepted."""
    await contact_state(client, contact_id, lambda state: state.events_accepted >= events)


# --- the models: whatever they take can be carried ------------------------------------


@pytest.mark.parametrize("hostile", [None, *EVENT_FIELDS])
@given(data=st.data())
@PER_FIELD
def test_an_event_the_model_takes_can_be_carried_and_a_refusal_names_the_field(
    hostile: str | None, data: st.DataObject
) -> None:
    item = data.draw(posted_events("m-", hostile))
    try:
        event = to_behavior_event(item, now=datetime.now(UTC), max_future=MAX_FUTURE)
    except ValidationError as error:
        for issue in error.errors():
            assert issue["loc"] and issue["msg"], issue
            assert issue["loc"][0] in item or issue["type"] == "missing", issue
        return
    # The project's payload converter: the codec then encrypts the bytes it makes.
    converter = pydantic_data_converter.payload_converter
    [payload] = converter.to_payloads([event])  # a signal's payload: UTF-8 JSON
    assert converter.from_payloads([payload], [BehaviorEvent]) == [event]
    as_stored = json.dumps(event.properties, ensure_ascii=False, allow_nan=False).encode()
    assert len(as_stored) <= MAX_PROPERTIES_BYTES
    assert event.occurred_at.tzinfo == UTC
    assert event.occurred_at + timedelta(days=3650) > event.occurred_at  # the workflow's sums


@given(depth=st.integers(0, MAX_PROPERTIES_DEPTH + 4))
@PROPERTY
def test_properties_nest_at_most_16_levels(depth: int) -> None:
    item = {"contact_id": "c", "type": "x", "properties": {"k": nested(depth)}}
    assert (refusal(item) is None) == (depth <= MAX_PROPERTIES_DEPTH)
    if depth > MAX_PROPERTIES_DEPTH:
        with pytest.raises(ValidationError, match="deeper than 16 levels"):
            to_behavior_event(item, now=datetime.now(UTC), max_future=MAX_FUTURE)


@given(size=st.integers(16_300, 16_450), ascii_only=st.booleans())
@PROPERTY
def test_properties_take_at_most_32_kib_as_utf8_json(size: int, ascii_only: bool) -> None:
    """`{"b": "é…"}` is 9 bytes plus 2 per `é` (what Temporal stores), or 1 per `x`."""
    properties = {"b": ("x" * 2 if ascii_only else "é") * size}
    item = {"contact_id": "c", "type": "x", "properties": properties}
    assert (refusal(item) is None) == (9 + 2 * size <= MAX_PROPERTIES_BYTES)


@pytest.mark.parametrize("hostile", [None, *CONTACT_FIELDS])
@given(data=st.data())
@PER_FIELD
def test_contact_fields_the_model_takes_render_into_a_message_with_only_our_headers(
    catalog: TemplateCatalog, hostile: str | None, data: st.DataObject
) -> None:
    """Day 7 of the welcome series has the first name in its subject and the company in
    its body."""
    body = data.draw(contact_bodies(hostile))
    try:
        fields = ContactFields.model_validate(body)
    except ValidationError as error:
        assert all(issue["loc"] and issue["msg"] for issue in error.errors())
        return
    texts = [fields.first_name or "", fields.company or "", *fields.attributes.values()]
    texts += [consent.source for consent in (fields.email_consent, fields.sms_consent) if consent]
    assert not CONTROL_CHARACTERS & set("".join(texts))
    contact = TemplateContact(first_name=fields.first_name, company=fields.company)
    rendered = catalog.render_email("welcome-series/day7", contact, LinkContext())
    email = OutgoingEmail(
        idempotency_key="welcome-series-c/day7", to_address=fields.email or "c@example.com",
        from_name="Maya from Northwind", from_address="maya@northwind.example",
        reply_to="hello@northwind.example", subject=rendered.subject, text=rendered.text,
        html=rendered.html, created_at=datetime.now(UTC),
        headers={"X-Journey": "welcome-series", "X-Journey-Step": "day7"},
    )  # fmt: skip
    sent = BytesParser(policy=policy.default).parsebytes(bytes(build_mime(email)))
    assert sent.keys() == [*MESSAGE_HEADERS[:8], *MESSAGE_HEADERS[-2:]]
    assert str(sent["To"]) == email.to_address
    assert str(sent["Subject"]).replace("\u200b", "") == rendered.subject.replace("\u200b", "")


@pytest.fixture(scope="module")
def catalog() -> TemplateCatalog:
    return TemplateCatalog(Path(__file__).parents[1] / "templates")


# --- the gateway: never a 5xx, every refusal names the field ----------------------------


async def test_posted_events_are_taken_and_arrive_or_are_refused_naming_the_field(
    gateway: Gateway, dev_env: WorkflowEnvironment, engine: AsyncEngine
) -> None:
    taken: set[tuple[str, str]] = set()
    prefix = new_prefix()
    with httpx.Client(base_url=gateway.url, headers=dict(gateway.http.headers)) as http:

        @given(data=st.data())
        @PER_FIELD
        def each_event_is_taken_or_refused(hostile: str | None, data: st.DataObject) -> None:
            item = data.draw(posted_events(prefix, hostile))
            response = http.post("/v1/events", content=as_json(item), headers=JSON)
            expected = refusal(item)
            if expected is not None:
                assert response.status_code == 422, response.text
                assert_names_the_problems(
                    response.json()["detail"], {("body", *loc) for loc in expected}
                )
                return
            assert response.status_code in (200, 202, 409), response.text  # 409: id reused
            if response.status_code == 409:
                assert "already used for a different event" in response.json()["detail"]
                return
            [result] = response.json()["results"]
            assert result["status"] in ("accepted", "duplicate")
            assert result["warnings"] and "does not exist yet" in result["warnings"][0]
            taken.add((item["contact_id"], result["event_id"]))

        for hostile in (None, *EVENT_FIELDS):
            await run_property(partial(each_event_is_taken_or_refused, hostile))
    assert taken, "no valid event was generated"
    await arrived(dev_env.client, engine, taken)


async def test_batches_are_judged_per_event_and_the_good_ones_arrive(
    gateway: Gateway, dev_env: WorkflowEnvironment, engine: AsyncEngine
) -> None:
    taken: set[tuple[str, str]] = set()
    with httpx.Client(base_url=gateway.url, headers=dict(gateway.http.headers)) as http:

        @given(items=st.lists(posted_events(new_prefix(), "any"), min_size=1, max_size=6))
        @PROPERTY
        def each_event_of_a_batch_is_judged(items: list[dict[str, Any]]) -> None:
            response = http.post("/v1/events", content=as_json({"events": items}), headers=JSON)
            assert response.status_code in (200, 202, 422), response.text
            body = response.json()
            assert [result["index"] for result in body["results"]] == list(range(len(items)))
            for index, (item, result) in enumerate(zip(items, body["results"], strict=True)):
                expected = refusal(item)
                if expected is not None:
                    assert result["status"] == "rejected"
                    assert_names_the_problems(
                        result["errors"], {("body", "events", index, *loc) for loc in expected}
                    )
                elif result["status"] == "rejected":  # an id reused, in the batch or before
                    [issue] = result["errors"]
                    assert issue["loc"] == ["body", "events", index, "event_id"], issue
                else:
                    taken.add((item["contact_id"], result["event_id"]))
            statuses = {result["status"] for result in body["results"]}
            code = 202 if "accepted" in statuses else 422 if "rejected" in statuses else 200
            assert response.status_code == code

        await run_property(each_event_of_a_batch_is_judged)
    assert taken, "no valid event was generated"
    await arrived(dev_env.client, engine, taken)


async def test_contact_upserts_are_stored_as_given_or_refused_naming_the_field(
    gateway: Gateway,
) -> None:
    path_pattern = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
    prefix = new_prefix()
    with httpx.Client(base_url=gateway.url, headers=dict(gateway.http.headers)) as http:

        @given(data=st.data())
        @PER_FIELD
        def each_upsert_is_stored_or_refused(hostile: str | None, data: st.DataObject) -> None:
            ids = st.sampled_from(PATH_IDS) if hostile == "id" else contact_ids(prefix)
            contact_id = data.draw(ids)
            body = data.draw(contact_bodies(None if hostile == "id" else hostile))
            path = f"/v1/contacts/{quote(contact_id, safe='')}"
            response = http.put(path, content=as_json(body), headers=JSON)
            expected: set[tuple[str | int, ...]] = set()
            if not path_pattern.fullmatch(contact_id):
                expected.add(("path", "contact_id"))
            try:
                fields = ContactFields.model_validate(body)
            except ValidationError as error:
                expected |= {("body", *issue["loc"]) for issue in error.errors()}
            if expected:
                assert response.status_code == 422, response.text
                assert_names_the_problems(response.json()["detail"], expected)
                return
            if response.status_code == 409:  # generated addresses may repeat
                assert "already belongs to contact" in response.json()["detail"]
                return
            if response.status_code == 200 and response.json()["merged_from"] is not None:
                assert response.json()["matched_by"] in ("email", "alias")  # a repeated
                return  # address: the new id was merged into its contact (test_dedupe.py)
            assert response.status_code == 200, response.text
            stored = http.get(path).json()
            for name in ("email", "phone", "first_name", "company", "timezone"):
                if name in body:
                    assert stored[name] == getattr(fields, name), name
            assert set(fields.tags) <= set(stored["tags"])
            assert fields.attributes.items() <= stored["attributes"].items()

        for hostile in (None, "id", *CONTACT_FIELDS):
            await run_property(partial(each_upsert_is_stored_or_refused, hostile))


async def test_enrolment_options_and_webhook_times_are_refused_naming_the_field(
    gateway: Gateway,
) -> None:
    """These were 500s: a journey input's own validation error escaped the route, and
    `datetime` overflowed on the way to UTC (a webhook for a message we sent)."""
    path = f"/v1/contacts/{new_id('enrol')}/journeys/renewal-countdown"
    options: list[tuple[dict[str, str], set[tuple[str | int, ...]]]] = [
        ({}, {("body", "subscription_id"), ("body", "renewal_date")}),
        ({"subscription_id": "s", "renewal_date": "0001-01-01T00:30:00+01:00"},
         {("body", "renewal_date")}),
        ({"subscription_id": "s", "renewal_date": "9999-12-31T23:30:00-01:00"},
         {("body", "renewal_date")}),
    ]  # fmt: skip
    for body, expected in options:
        refused = await gateway.http.post(path, json=body)
        assert refused.status_code == 422, refused.text
        assert_names_the_problems(refused.json()["detail"], expected)
    delivery = {"id": "d1", "type": "opened", "message_id": "m1"}
    for occurred_at in ("0001-01-01T00:30:00+01:00", "1969-12-31T23:59:59Z"):
        raw = json.dumps({"events": [{**delivery, "occurred_at": occurred_at}]}).encode()
        signed = sign_webhook(raw, WEBHOOK_SECRET, timestamp=int(time.time()))
        refused = await gateway.http.post(
            "/webhooks/email", content=raw, headers={**JSON, SIGNATURE_HEADER: signed}
        )
        assert refused.status_code == 422, refused.text
        assert "occurred_at" in refused.json()["detail"]


# --- oversized contact fields -------------------------------------------------------------


async def test_oversized_contact_fields_are_refused_and_a_contact_at_the_limits_is_mailed(
    gateway: Gateway, dev_env: WorkflowEnvironment
) -> None:
    contact_id = new_id("big")
    path = f"/v1/contacts/{contact_id}"
    for body, loc, says in [
        ({"first_name": "x" * 101}, ["body", "first_name"], "at most 100 characters"),
        ({"company": "x" * 201}, ["body", "company"], "at most 200 characters"),
        ({"tags": [f"t{n}" for n in range(101)]}, ["body", "tags"], "at most 100 items"),
        ({"attributes": {f"a{n}": "v" for n in range(51)}}, ["body", "attributes"], "at most 50"),
        ({"attributes": {"a": "x" * 201}}, ["body", "attributes", "a"], "at most 200"),
    ]:
        refused = await gateway.http.put(path, json=body)
        assert refused.status_code == 422, body
        [issue] = refused.json()["detail"]
        assert issue["loc"] == loc and says in issue["msg"], issue

    tags = [f"t{n:03d}-" + "x" * 95 for n in range(MAX_CONTACT_TAGS)]  # 100 characters each
    for start in range(0, MAX_CONTACT_TAGS, 100):
        await put_contact(gateway, contact_id, tags=tags[start : start + 100])
    for start in range(0, MAX_CONTACT_ATTRIBUTES, 50):
        attributes = {f"a{n}": "v" * 200 for n in range(start, start + 50)}
        await put_contact(gateway, contact_id, attributes=attributes)
    await put_contact(gateway, contact_id, tags=tags[:3])  # nothing new: still within the limit
    for body, says in [
        ({"tags": ["one-more"]}, f"would hold {MAX_CONTACT_TAGS + 1} tags; at most 500"),
        ({"attributes": {"extra": "v"}}, "would hold 101 attributes; at most 100"),
    ]:
        refused = await gateway.http.put(path, json=body)
        assert refused.status_code == 422
        assert refused.json()["detail"] == f"contact {contact_id!r} {says}"

    await put_contact(gateway, contact_id, first_name="F" * 100, company="C" * 200)
    enrolled = await gateway.http.post(f"{path}/journeys/welcome-series")
    assert enrolled.status_code == 201, enrolled.text
    workflow_id = enrolled.json()["workflow_id"]
    await journey_state(dev_env.client, workflow_id, lambda state: state.messages_sent == 1)
    memo = await (await dev_env.client.get_workflow_handle(workflow_id).describe()).memo()
    assert len(memo["contact"]["tags"]) >= MAX_CONTACT_TAGS
    assert len(memo["contact"]["attributes"]) == MAX_CONTACT_ATTRIBUTES


# --- signals straight to a contact workflow ---------------------------------------------


def event_fields(contact_id: str, event_id: str, **changes: Any) -> dict[str, Any]:
    """A valid event as JSON, with `changes`."""
    return {
        "event_id": event_id,
        "contact_id": contact_id,
        "type": "website_visited",
        "occurred_at": datetime.now(UTC).isoformat(),
        "properties": {},
        **changes,
    }


MALFORMED_SIGNALS: list[tuple[str, Any]] = [
    ("event", {"garbage": True}),
    ("event", "not an event"),
    ("event", event_fields("{contact}", "far", occurred_at="9999-12-31T23:59:59Z")),
    ("event", event_fields("{contact}", "moon", occurred_at="1969-07-20T20:17:00Z")),
    ("event", event_fields("{contact}", "deep", properties={"k": nested(40)})),
    ("event", event_fields("{contact}", "crlf\r\n", type="x")),
    ("event", event_fields("someone-else", "other")),
    ("events", {"events": []}),
    ("events", {"events": [event_fields("{contact}", f"b{n}") for n in range(501)]}),
    ("journey_enrolled", {"workflow_id": "", "journey": ""}),
    ("forget", "everything"),
    ("no_such_signal", {"x": 1}),
]
"""Signals that bypass the gateway (a script, the Temporal UI's *Send a signal*); `{contact}`
stands for the contact workflow's own contact. The year 9999 used to fail every workflow task
of the contact (an overflow in the decay arithmetic)."""


def addressed(payload: Any, contact_id: str) -> Any:
    """`payload` with `{contact}` replaced by `contact_id`."""
    return json.loads(json.dumps(payload).replace("{contact}", contact_id))


async def signal_then_a_good_event(
    client: Client, settings: Settings, contact_id: str, signals: list[tuple[str, Any]]
) -> ContactState:
    """Start `contact-{contact_id}` with `signals`, then send a good event (pricing, +10);
    the state once that event is counted. Fails as soon as a workflow task fails."""
    handle = await client.start_workflow(
        "contact",
        ContactInput(contact_id=contact_id),
        id=f"contact-{contact_id}",
        task_queue=settings.task_queue,
        start_signal=signals[0][0],
        start_signal_args=[signals[0][1]],
    )
    for name, payload in signals[1:]:
        await handle.signal(name, payload)
    good = event_fields(contact_id, "good", type="pricing_page_viewed")
    await handle.signal("event", BehaviorEvent.model_validate(good))
    for _ in range(200):
        history = [event.event_type async for event in handle.fetch_history_events()]
        assert EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED not in history
        state: ContactState | None
        try:
            state = await handle.query(
                "state", result_type=ContactState, rpc_timeout=timedelta(seconds=1)
            )
        except RPCError:  # no workflow task completed yet, or a timeout
            state = None
        if state is not None and state.events_accepted:
            return state
        await asyncio.sleep(0.1)
    raise AssertionError(f"contact-{contact_id} never took the good event")


async def test_malformed_signals_to_a_contact_workflow_are_dropped_and_it_goes_on(
    dev_env: WorkflowEnvironment, settings: Settings, engine: AsyncEngine
) -> None:
    """Payloads the SDK cannot read as the signal's model are dropped (and logged); those
    it can read are judged by the workflow (another contact's event is dropped)."""
    contact_id = new_prefix() + "direct"
    signals = [(name, addressed(payload, contact_id)) for name, payload in MALFORMED_SIGNALS]
    async with running_worker(dev_env.client, settings):
        state = await signal_then_a_good_event(dev_env.client, settings, contact_id, signals)
    assert (state.events_accepted, state.duplicates_dropped, state.score) == (1, 0, 10)
    assert not state.erased
    assert [row.event_id for row in await rows_of(engine, ContactEvent, contact_id)] == ["good"]


async def test_a_null_event_signal_does_not_stop_the_contact_workflow(
    dev_env: WorkflowEnvironment, settings: Settings
) -> None:
    contact_id = new_prefix() + "null"
    async with running_worker(dev_env.client, settings):
        state = await signal_then_a_good_event(
            dev_env.client, settings, contact_id, [("event", None)]
        )
    assert state.events_accepted == 1


async def test_many_large_events_pending_at_once_do_not_end_the_contact_workflow(
    dev_env: WorkflowEnvironment, settings: Settings
) -> None:
    """Events pile up while the worker is away (a deploy, a crash), then arrive together."""
    client = dev_env.client
    contact_id = new_prefix() + "pile"
    blob = "x" * 31_000
    for number in range(70):
        event = event_fields(contact_id, f"e{number}", properties={"blob": blob})
        await signal_contact(
            client, contact_id, "event", BehaviorEvent.model_validate(event),
            task_queue=settings.task_queue,
        )  # fmt: skip
    handle = client.get_workflow_handle(f"contact-{contact_id}")
    async with running_worker(client, settings):
        for _ in range(200):
            description = await handle.describe()
            assert description.status == WorkflowExecutionStatus.RUNNING, description.status
            try:
                state = await handle.query(
                    "state", result_type=ContactState, rpc_timeout=timedelta(seconds=1)
                )
            except RPCError:
                state = None
            if state is not None and state.events_accepted == 70:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the 70 events were never processed")


async def test_large_events_a_journey_remembers_go_over_to_its_next_run_within_the_limit(
    dev_env: WorkflowEnvironment, settings: Settings, engine: AsyncEngine
) -> None:
    """A journey keeps recent events for `wait_for`; when it continues as new, only the
    newest that fit in one payload go over (70 of 31 KB would not: over 2 MB)."""
    client = dev_env.client
    contact_id = new_prefix() + "carry"
    await add_contact(engine, contact_id)
    handle = await client.start_workflow(
        WelcomeSeries.run,
        JourneyInput(contact_id=contact_id, day_seconds=1, history_limit=40),
        id=f"welcome-series-{contact_id}",
        task_queue=settings.task_queue,
    )
    for number in range(70):  # before any worker: all in the first run's history
        event = event_fields(contact_id, f"e{number}", properties={"blob": "x" * 31_000})
        await handle.signal(WelcomeSeries.event, BehaviorEvent.model_validate(event))
    async with running_worker(client, settings):
        result = await asyncio.wait_for(handle.result(), 120)
    assert result.status == JourneyStatus.COMPLETED
    assert result.messages_sent == 5
    last_run = await client.get_workflow_handle(handle.id).describe()
    assert last_run.run_id != handle.first_execution_run_id  # it continued as new


# --- events for contacts that do not exist ----------------------------------------------


async def test_events_for_unknown_contacts_are_kept_with_a_warning_and_start_nothing(
    gateway: Gateway, dev_env: WorkflowEnvironment, engine: AsyncEngine
) -> None:
    stranger, known = new_id("stranger"), new_id("known")
    await put_contact(gateway, known)
    response = await gateway.http.post(
        "/v1/events",
        json={
            "events": [
                {"event_id": "v1", "contact_id": stranger, "type": "pricing_page_viewed"},
                {"event_id": "k1", "contact_id": known, "type": "website_visited"},
            ]
        },
    )
    assert response.status_code == 202, response.text
    [unknown, fine] = response.json()["results"]
    assert unknown["status"] == "accepted" and fine["status"] == "accepted"
    [warning] = unknown["warnings"]
    assert f"contact {stranger!r} does not exist yet" in warning
    assert "starts no journey" in warning and f"PUT /v1/contacts/{stranger}" in warning
    assert fine["warnings"] == []

    state = await contact_state(dev_env.client, stranger, lambda s: s.events_accepted == 1)
    assert state.score == 10  # scored in the workflow all the same
    assert [row.event_id for row in await rows_of(engine, ContactEvent, stranger)] == ["v1"]
    with pytest.raises(RPCError, match="not found"):  # no pricing follow-up for a stranger
        await dev_env.client.get_workflow_handle(f"pricing-abandon-{stranger}").describe()
    missing = await gateway.http.get(f"/v1/contacts/{stranger}")
    assert missing.status_code == 404 and "does not exist" in missing.json()["detail"]


async def test_an_unsubscribe_that_comes_before_its_contact_suppresses_it_when_created(
    gateway: Gateway, dev_env: WorkflowEnvironment, engine: AsyncEngine
) -> None:
    early = new_id("early")
    response = await gateway.http.post(
        "/v1/events", json={"event_id": "u1", "contact_id": early, "type": "unsubscribed"}
    )
    assert response.status_code == 202 and response.json()["results"][0]["warnings"]
    await eventually(lambda: rows_of(engine, ContactEvent, early))  # stored by the workflow

    await put_contact(gateway, early)  # created afterwards, with email consent
    assert [row.channel for row in await rows_of(engine, Suppression, early)] == ["email"]
    enrolled = await gateway.http.post(f"/v1/contacts/{early}/journeys/welcome-series")
    assert enrolled.status_code == 201, enrolled.text
    welcome = await journey_state(
        dev_env.client,
        enrolled.json()["workflow_id"],
        lambda state: state.status == "exited" or "day0" in state.steps_done,
    )  # the contact workflow's exits for the unsubscribe may still be on their way: a race
    expected = ["suppressed"] if "day0" in welcome.steps_done else []  # never "sent"
    assert [row.status for row in await message_rows(engine, early)] == expected


async def eventually(rows: Callable[[], Awaitable[list[Row]]]) -> list[Row]:
    """The rows `rows` reads once there are any (polled for up to 20 s)."""
    for _ in range(200):
        found = await rows()
        if found:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError("no rows within 20 s")
