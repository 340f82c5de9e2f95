"""Contact import: `journeys import contacts FILE` and `POST /v1/contacts:import`.

The CLI runs as a process and the gateway on loopback, against the test's database
and the dev server (merges and triggers tell the contact workflows).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from temporalio.testing import WorkflowEnvironment

from models.db import session_factory
from models.settings import Settings
from models.tables import (
    ConsentChange,
    Contact,
    ContactAlias,
    ContactEvent,
    ErasedContact,
    Suppression,
)
from starter.services.contact_import import (
    ColumnMap,
    EntryOptions,
    ImportOptions,
    read_rows,
    run_import,
)
from tests.cli import cli_environment, journeys
from tests.gateway import Gateway, gateway_settings, serving_gateway
from tests.kit import enters_welcome_series, workflow_exists
from tests.test_api import journey_state, new_id

HEADER = (
    "id,email,phone,first_name,timezone,tags,email_consent,email_consent_source,"
    "email_consent_at,Job Title"
)
CONSENT_AT = "2026-11-01T10:00:00Z"


def bad_rows_csv(prefix: str) -> str:
    """A file with good rows and one bad row of each kind (lines numbered as in the file)."""
    return "\n".join(
        [
            HEADER,  # line 1
            f"{prefix}-ada,Ada@Example.com,+33 6 12 34 56 78,Ada,Europe/Paris,src_fair;vip,"
            f"yes,form:fair,{CONSENT_AT},CTO",  # 2
            f"{prefix}-bad-email,not-an-email,,,,,,,,",  # 3
            f"{prefix}-bad-phone,bp@example.com,+1000000,,,,,,,",  # 4
            f"{prefix}-bad-tz,tz@example.com,,,Mars/Olympus,,,,,",  # 5
            f"{prefix}-no-source,ns@example.com,,,,,yes,,{CONSENT_AT},",  # 6
            f"{prefix}-adele,ADA@example.com,,Adele,,int_pricing,,,,",  # 7: Ada's address
            f"{prefix}-gone,gone@example.com,,,,,,,,",  # 8: erased before
            f"{prefix}-bob,bob@example.com,06 12 34 56 79,Bob,,,no,import:crm,{CONSENT_AT},",  # 9
        ]
    )


@pytest.fixture
async def gateway(dev_env: WorkflowEnvironment, settings: Settings) -> AsyncIterator[Gateway]:
    limited = gateway_settings(settings, api_import_max_bytes=4096)
    async with serving_gateway(dev_env.client, limited) as served:
        yield served


async def erase(engine: AsyncEngine, contact_id: str) -> None:
    """The tombstone an erasure leaves (the contact's data is gone, its id refused)."""
    async with session_factory(engine)() as session:
        session.add(ErasedContact(contact_id=contact_id))
        await session.commit()


async def contacts_of(engine: AsyncEngine, prefix: str) -> dict[str, Contact]:
    async with session_factory(engine)() as session:
        found = await session.exec(select(Contact).where(col(Contact.id).startswith(prefix)))
        return {contact.id: contact for contact in found.all()}


async def consent_history(engine: AsyncEngine, contact_id: str) -> list[ConsentChange]:
    async with session_factory(engine)() as session:
        found = await session.exec(
            select(ConsentChange).where(ConsentChange.contact_id == contact_id)
        )
        return list(found.all())


async def test_the_cli_imports_the_good_rows_and_reports_each_bad_one_by_line(
    dev_env: WorkflowEnvironment, settings: Settings, engine: AsyncEngine, tmp_path: Path
) -> None:
    prefix = new_id("imp")
    await erase(engine, f"{prefix}-gone")
    file = tmp_path / "contacts.csv"
    file.write_text(bad_rows_csv(prefix), encoding="utf-8")
    env = cli_environment(settings, dev_env.client.service_client.config.target_host)
    args = [*("import", "contacts", str(file), "--map", "Job Title=attr:job_title")]
    args += ["--tag", "src_import", "--default-region", "FR", "--json"]

    first = await journeys(*args, env=env)

    assert first.returncode == 1, first.stderr  # rows were refused; the others imported
    report = first.json()
    counts = {k: report[k] for k in ("rows", "created", "updated", "unchanged", "merged")}
    assert counts == {"rows": 8, "created": 2, "updated": 0, "unchanged": 0, "merged": 1}
    reasons = {refusal["line"]: refusal["reason"] for refusal in report["refusals"]}
    assert sorted(reasons) == [3, 4, 5, 6, 8]
    assert reasons[3].startswith("email: ")
    assert reasons[4] == (
        "phone: '+1000000' is not a valid phone number of country code +1: "
        "check the country code and the digits"
    )
    assert reasons[5] == "timezone: 'Mars/Olympus' is not an IANA time zone name"
    assert "email_consent is given without its source" in reasons[6]
    assert f"contact '{prefix}-gone' was erased" in reasons[8]
    assert report["merges"] == [
        {"line": 7, "contact_id": f"{prefix}-adele", "into": f"{prefix}-ada", "into_line": 2}
    ]

    stored = await contacts_of(engine, prefix)
    assert sorted(stored) == [f"{prefix}-ada", f"{prefix}-bob"]
    ada, bob = stored[f"{prefix}-ada"], stored[f"{prefix}-bob"]
    assert (ada.email, ada.phone, ada.first_name) == ("ada@example.com", "+33612345678", "Ada")
    assert ada.tags == ["int_pricing", "src_fair", "src_import", "vip"]  # Adele's row's too
    assert ada.attributes == {"job_title": "CTO"}
    assert (ada.email_consent, ada.email_consent_source) == (True, "form:fair")
    assert bob.phone == "+33612345679"  # a national number, read in --default-region FR
    assert (bob.email_consent, bob.email_consent_source) == (False, "import:crm")
    assert [(c.granted, c.source) for c in await consent_history(engine, ada.id)] == [
        (True, "form:fair")
    ]
    assert ada.segments_due_at is not None and bob.segments_due_at is not None
    async with session_factory(engine)() as session:
        alias = await session.get(ContactAlias, f"{prefix}-adele")
    assert alias is not None and alias.contact_id == ada.id

    again = await journeys(*args, env=env)

    report = again.json()
    counts = {k: report[k] for k in ("created", "updated", "unchanged", "merged", "refused")}
    assert counts == {"created": 0, "updated": 0, "unchanged": 2, "merged": 1, "refused": 5}
    after = await contacts_of(engine, prefix)
    for contact_id, contact in stored.items():
        assert after[contact_id].updated_at == contact.updated_at
        assert after[contact_id].segments_due_at == contact.segments_due_at
    assert len(await consent_history(engine, ada.id)) == 1


async def test_the_cli_prints_the_report_and_refuses_an_unmapped_column(
    settings: Settings, engine: AsyncEngine, tmp_path: Path
) -> None:
    file = tmp_path / "contacts.csv"
    file.write_text("id,email,Notes\nkim,kim@example.com,met at the fair\n", encoding="utf-8")
    env = cli_environment(settings, "127.0.0.1:1")

    refused = await journeys("import", "contacts", str(file), env=env)
    tried = await journeys(
        "import", "contacts", str(file), "--map", "Notes=-", "--dry-run", env=env
    )
    assert await contacts_of(engine, "kim") == {}
    skipped = await journeys("import", "contacts", str(file), "--map", "Notes=-", env=env)

    assert refused.returncode == 1
    assert refused.stderr.startswith("error: column(s) 'Notes' map to nothing")
    assert refused.stderr.count("\n") == 1
    assert tried.stdout.startswith("dry run, nothing written: 1 rows: 1 created, 0 updated")
    assert skipped.returncode == 0, skipped.stderr
    assert skipped.stdout == "1 rows: 1 created, 0 updated, 0 unchanged, 0 merged, 0 refused\n"
    assert skipped.stderr == ""  # no progress bar when stderr is not a terminal


async def test_the_api_imports_merges_by_email_and_streams_progress(
    gateway: Gateway, engine: AsyncEngine
) -> None:
    known = new_id("known")
    await gateway.http.put(
        f"/v1/contacts/{known}", json={"email": f"{known}@example.com", "first_name": "Kim"}
    )
    lead = new_id("lead")
    ndjson = "\n".join(
        json.dumps(row)
        for row in [
            {"id": lead, "email": f"{known.upper()}@EXAMPLE.COM", "first_name": "Kimberly"},
            {"id": f"{lead}-2", "email": f"{lead}-2@example.com", "tags": ["vip", "src_x"]},
            {"id": f"{lead}-3", "email": f"{lead}-3@Bücher.de"},  # an IDN domain
            {"id": f"{lead}-4", "email": f"zoë-{lead}@bücher.de"},  # not ASCII before the @
        ]
    )
    headers = {"Content-Type": "application/x-ndjson"}

    answer = await gateway.http.post("/v1/contacts:import", content=ndjson, headers=headers)

    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert (report["created"], report["merged"], report["refused"]) == (2, 1, 1)
    assert report["refusals"][0]["line"] == 4
    assert "the part before the @-sign is not ASCII" in report["refusals"][0]["reason"]
    assert report["merges"] == [{"line": 1, "contact_id": lead, "into": known, "into_line": None}]
    kim = (await gateway.http.get(f"/v1/contacts/{known}")).json()
    assert kim["first_name"] == "Kim"  # the existing contact's own value wins
    assert (await gateway.http.get(f"/v1/contacts/{lead}-2")).json()["tags"] == ["src_x", "vip"]
    idn = (await gateway.http.get(f"/v1/contacts/{lead}-3")).json()["email"]
    assert idn == f"{lead}-3@xn--bcher-kva.de"  # the domain in ASCII, as SMTP takes it

    streamed = await gateway.http.post(
        "/v1/contacts:import", params={"stream": "true"}, content=ndjson, headers=headers
    )

    lines = [json.loads(line) for line in streamed.text.splitlines()]
    assert streamed.headers["content-type"].startswith("application/x-ndjson")
    assert lines[0] == {"progress": {"done": 4, "total": 4}}
    report = lines[-1]["report"]
    counts = {k: report[k] for k in ("created", "updated", "unchanged", "merged", "refused")}
    assert counts == {"created": 0, "updated": 0, "unchanged": 3, "merged": 0, "refused": 1}


@pytest.mark.parametrize(
    ("content", "headers", "code", "says"),
    [
        ("id\n" + "x\n" * 3000, {"Content-Type": "text/csv"}, 413, "larger than 4096 bytes"),
        ('{"id": "x"}', {"Content-Type": "application/json"}, 415, "text/csv"),
        ("id,Notes\nx,y\n", {"Content-Type": "text/csv"}, 422, "'Notes' map to nothing"),
        ("email\na@example.com\n", {"Content-Type": "text/csv"}, 422, "no column maps to id"),
    ],
)
async def test_the_api_refuses_a_file_it_cannot_import(
    gateway: Gateway, content: str, headers: dict[str, str], code: int, says: str
) -> None:
    answer = await gateway.http.post("/v1/contacts:import", content=content, headers=headers)

    assert answer.status_code == code, answer.text
    assert says in answer.json()["detail"]


async def test_trigger_subscribed_starts_the_welcome_series_of_new_contacts_once(
    gateway: Gateway, dev_env: WorkflowEnvironment, engine: AsyncEngine
) -> None:
    existing = new_id("old")
    await gateway.http.put(f"/v1/contacts/{existing}", json={"email": f"{existing}@example.com"})
    new = [new_id("new") for _ in range(2)]
    csv_text = "\n".join(
        [
            "id,email,email_consent,email_consent_source,email_consent_at",
            *(f"{c},{c}@example.com,yes,form:fair,{CONSENT_AT}" for c in [existing, *new]),
        ]
    )
    post: dict[str, Any] = {"content": csv_text, "headers": {"Content-Type": "text/csv"}}

    plain = await gateway.http.post("/v1/contacts:import", **post)
    assert plain.json()["created"] == 2
    assert not await workflow_exists(dev_env.client, f"welcome-series-{new[0]}")

    newer = [new_id("newer") for _ in range(2)]
    post["content"] += "".join(f"\n{c},{c}@example.com,yes,form:fair,{CONSENT_AT}" for c in newer)
    answers = [
        await gateway.http.post("/v1/contacts:import", params={"trigger": "subscribed"}, **post)
        for _ in range(2)
    ]

    assert [(a.json()["created"], a.json()["triggered"]) for a in answers] == [(2, 2), (0, 0)]
    for contact_id in newer:
        assert enters_welcome_series(contact_id)
        state = await journey_state(
            dev_env.client, f"welcome-series-{contact_id}", lambda s: s.messages_sent == 1
        )
        assert state.messages_sent == 1
    for contact_id in [existing, *new]:  # not created by the triggering import
        assert not await workflow_exists(dev_env.client, f"welcome-series-{contact_id}")


def options_for(columns: list[str]) -> ImportOptions:
    """Import options as the CLI builds them, for a file without Temporal work to do."""
    return ImportOptions(
        mapping=ColumnMap.build(columns, {}),
        entry=EntryOptions(key=b"k" * 32, match_domain_name=False, actor="tests"),
        task_queue="unused",
        day_seconds=86_400,
        scoring_file=Path("scoring.toml"),
    )


async def test_an_unsubscribe_stored_before_the_import_suppresses_the_imported_contact(
    database: AsyncEngine,
) -> None:
    async with session_factory(database)() as session:  # as the contact workflow stored it
        session.add(
            ContactEvent(
                contact_id="early", event_id="u1", type="unsubscribed",
                occurred_at=datetime(2026, 10, 1, tzinfo=UTC), batch_key="ingest-1",
            )
        )  # fmt: skip
        await session.commit()
    text = (
        "id,email,email_consent,email_consent_source,email_consent_at\n"
        f"early,early@example.com,yes,form:fair,{CONSENT_AT}\n"
    )
    columns, rows = read_rows(text, "csv")

    report = await run_import(database, rows, options_for(columns))

    assert report.created == 1
    contact = (await contacts_of(database, "early"))["early"]
    assert contact.email_consent is False  # granted by the file, withdrawn by the opt-out
    history = [(c.granted, c.source) for c in await consent_history(database, "early")]
    assert history == [(True, "form:fair"), (False, "event")]
    async with session_factory(database)() as session:
        suppressed = await session.exec(select(Suppression.channel))
        assert sorted(suppressed.all()) == ["email"]


@pytest.mark.parametrize("file_format", ["csv", "ndjson"])
async def test_a_second_run_changes_nothing_on_either_database(
    database: AsyncEngine, file_format: str
) -> None:
    rows = [
        {"id": f"d-{n}", "email": f"d{n}@example.com", "phone": f"+1415555010{n}",
         "tags": "src_crm;vip", "attr:plan": "pro"}
        for n in range(5)
    ]  # fmt: skip
    text = (
        "id,email,phone,tags,attr:plan\n" + "\n".join(",".join(r.values()) for r in rows)
        if file_format == "csv"
        else "\n".join(json.dumps(r) for r in rows)
    )
    counts = []
    for _ in range(2):
        columns, parsed = read_rows(text, "csv" if file_format == "csv" else "ndjson")
        report = await run_import(database, parsed, options_for(columns))
        counts.append((report.created, report.updated, report.unchanged))

    assert counts == [(5, 0, 0), (0, 0, 5)]
    stored = await contacts_of(database, "d-")
    assert stored["d-3"].attributes == {"plan": "pro"}
    assert stored["d-3"].tags == ["src_crm", "vip"]
