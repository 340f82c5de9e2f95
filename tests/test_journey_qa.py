"""Journey QA end to end: `journeys preview`, `journeys simulate`, `journeys test-send`, the kit.

The commands run as the real CLI (a subprocess); the simulations of the other
journeys run through the test kit on the session's time-skipping server, with
the same `run_simulation` the command uses.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.messaging import MessagingActivities
from models.db import session_factory
from models.messages import DeliveryStatus, SendRequest
from models.settings import PROJECT_ROOT, Settings
from models.tables import MessageLog
from rules.suppressions import suppress_address
from rules.templates import TemplateCatalog
from starter.qa.contacts import ContactFileError, contact_from_file
from starter.qa.simulate import ScheduledEvent, parse_event
from tests.cli import Completed, cli_environment, journeys
from tests.fake_postmark import PostmarkApi
from tests.kit import (
    JourneyKit,
    Simulation,
    add_contact,
    assert_sent,
    at,
    read_outbox,
    running_kit,
    sample_contact,
    sent_days,
    sent_local_days,
)
from tests.test_providers_smtp import RecordingHandler, parse, smtp_server
from workflows.catalog import journey_names

NO_TEMPORAL = "127.0.0.1:1"
"""preview and test-send need no Temporal server; simulate starts its own."""
SHIPPED_QUIET_HOURS = {"quiet_hours_start": time(21), "quiet_hours_end": time(8)}


def cli_env(settings: Settings, **extra: str) -> dict[str, str]:
    return {**cli_environment(settings, NO_TEMPORAL), **extra}


async def qa(settings: Settings, *args: str, **extra: str) -> Completed:
    return await journeys(*args, env=cli_env(settings, **extra))


async def all_messages(engine: AsyncEngine) -> list[MessageLog]:
    async with session_factory(engine)() as session:
        return list((await session.exec(select(MessageLog))).all())


# --- preview ---------------------------------------------------------------------------


@pytest.mark.parametrize("journey", journey_names())
async def test_every_shipped_journey_passes_its_preview_checks(
    journey: str, settings: Settings, tmp_path: Path
) -> None:
    done = await qa(settings, "preview", journey, "--out", str(tmp_path), "--json")

    assert done.returncode == 0, done.stderr
    results = done.json()
    for result in results:
        assert result["ok"], result["problems"]
        assert result["links"] or result["channel"] == "sms"
        assert all(link["utm"] for link in result["links"])
        assert all(Path(path).is_file() for path in result["files"])
        if result["channel"] == "email":
            assert result["subject"] and result["preview"] and result["postal_address"]
    # The sample and the empty sample, for every message the journey sends (each arm's).
    assert {r["contact"] for r in results} <= {"sample", "sample-empty"}
    assert len(results) == 2 * len({(r["step"], r["template"]) for r in results})


async def test_preview_renders_each_arm_of_an_experiment_message(
    settings: Settings, tmp_path: Path
) -> None:
    done = await qa(settings, "preview", "welcome-series", "--step", "day0", "--out", str(tmp_path))

    assert done.returncode == 0, done.stderr
    [control, variant] = done.stdout.split("welcome-series/day0@b [email] for sample: ok")
    assert "Your Email Marketing Playbook is ready!" in control
    assert "Ada, here's your 3-step plan for Email Marketing Playbook" in variant
    assert {path.name for path in (tmp_path / "sample").iterdir()} == {
        "day0.txt",
        "day0.html",
        "day0@b.txt",
        "day0@b.html",
    }


async def test_preview_summary_names_links_footer_and_the_fallbacks_of_the_empty_sample(
    settings: Settings, tmp_path: Path
) -> None:
    done = await qa(settings, "preview", "renewal-countdown", "--step", "reminder-90d")

    assert done.returncode == 0, done.stderr
    assert "renewal-countdown/reminder-90d [email] for sample: ok" in done.stdout
    assert "utm_campaign=renewal-countdown&utm_content=reminder-90d (UTM yes)" in done.stdout
    # A service message: no unsubscribe link needed, the postal address is there.
    assert "unsubscribe:    n/a   postal address: yes" in done.stdout
    [full, empty] = done.stdout.split("for sample-empty")
    assert "fallbacks:      none" in full
    assert "fallbacks:      first_name, company" in empty


async def test_preview_for_a_contact_in_the_database(
    settings: Settings, engine: AsyncEngine, tmp_path: Path
) -> None:
    await add_contact(engine, "kim", first_name="Kim")

    done = await qa(
        settings, "preview", "nurture", "--contact", "kim", "--out", str(tmp_path), "--json"
    )

    assert done.returncode == 0, done.stderr
    by_step = {r["step"]: r for r in done.json()}
    assert {r["contact"] for r in by_step.values()} == {"kim"}
    assert by_step["week1"]["fallbacks"] == []
    assert by_step["week3"]["fallbacks"] == ["company"]  # Kim has no company on file
    assert "Hey Kim," in (tmp_path / "kim" / "week1.txt").read_text()


def broken_templates(tmp_path: Path, name: str, pattern: str, replacement: str) -> Path:
    """A copy of `templates/` with `pattern` (a regular expression) replaced in `<name>.toml`."""
    folder = tmp_path / "templates"
    shutil.copytree(PROJECT_ROOT / "templates", folder)
    path = folder / f"{name}.toml"
    path.write_text(re.sub(pattern, replacement, path.read_text(), count=1, flags=re.MULTILINE))
    return folder


@pytest.mark.parametrize(
    ("name", "pattern", "replacement", "reason"),
    [
        # No fallback for a contact field: the catalogue refuses the file, the step is named.
        ("welcome-series/day1", r"\{\{ first_name[^}]*\}\}", "{{ first_name }}", "day1.toml"),
        # An empty subject renders, and fails the check.
        ("welcome-series/day4", r"^subject = .*$", 'subject = ""', "empty subject"),
    ],
)
async def test_a_broken_template_fails_the_preview_naming_the_step(
    settings: Settings, tmp_path: Path, name: str, pattern: str, replacement: str, reason: str
) -> None:
    folder = broken_templates(tmp_path, name, pattern, replacement)

    done = await qa(
        settings, "preview", "welcome-series", "--out", str(tmp_path), TEMPLATES_DIR=str(folder)
    )

    assert done.returncode == 1
    first = next(line for line in done.stderr.splitlines() if line.startswith("error: "))
    assert first.startswith(f"error: {name} ") or first.startswith(
        f"error: preview failed: {name} "
    )
    assert reason in done.stderr
    assert "Traceback" not in done.stderr


async def test_the_unbroken_copy_passes(settings: Settings, tmp_path: Path) -> None:
    """The copy itself is sound: only the edit above breaks the preview."""
    folder = broken_templates(tmp_path, "welcome-series/day4", "^$", "")

    done = await qa(
        settings, "preview", "welcome-series", "--out", str(tmp_path), TEMPLATES_DIR=str(folder)
    )

    assert done.returncode == 0, done.stderr


# --- simulate ----------------------------------------------------------------------------


async def test_simulate_welcome_series_five_emails_on_days_0_1_2_4_7_then_nurture(
    settings: Settings,
) -> None:
    done = await qa(settings, "simulate", "welcome-series", "--json")

    assert done.returncode == 0, done.stderr
    timeline = done.json()
    sent = [(e["step"], e["day"]) for e in timeline["entries"] if e["kind"] == "sent"]
    assert sent == [
        ("day0", "Day 0 + 00:00"),
        ("day1", "Day 1 + 00:00"),
        ("day2", "Day 2 + 00:00"),
        ("day4", "Day 4 + 00:00"),
        ("day7", "Day 7 + 00:00"),
    ]
    # The sample lives in Los Angeles and starts at 10:00 local.
    assert all(e["local"].endswith(("10:00 PST", "10:00 PDT")) for e in timeline["entries"])
    # Its arm in the Day-0 subject test: enrolled directly, it was never drawn for the
    # journey's holdout, so it gets control and does not count in the experiment.
    [split] = [e for e in timeline["entries"] if e["kind"] == "split"]
    assert split["detail"] == "welcome-subject: arm a"
    assert split["reason"] == "entered without the holdout draw: control, not counted"
    assert [e["detail"] for e in timeline["entries"] if e["kind"] == "started"] == [
        "nurture-sample"
    ]
    assert timeline["status"] == "completed"


async def test_simulate_pricing_abandon_checkout_after_10_minutes_exits_before_the_email(
    settings: Settings,
) -> None:
    done = await qa(settings, "simulate", "pricing-abandon", "--event", "10m:checkout_started")

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "Day 0 + 00:10" in lines[1] and "event      checkout_started" in lines[1]
    assert "exited     enrolled (converted)" in lines[2]
    assert lines[-1] == "pricing-abandon exited: converted"
    assert "sent" not in done.stdout


async def test_simulate_refuses_a_malformed_event(settings: Settings) -> None:
    done = await qa(settings, "simulate", "pricing-abandon", "--event", "10x:checkout_started")

    assert done.returncode == 1
    assert "offset '10x': expected e.g. 2d, 3d12h, 30m or 90s" in done.stderr


async def test_kit_pricing_abandon_late_visit_waits_out_quiet_hours(
    time_skipping_env: WorkflowEnvironment, settings: Settings, engine: AsyncEngine
) -> None:
    shipped = settings.model_copy(update=SHIPPED_QUIET_HOURS)
    async with running_kit(time_skipping_env, shipped, engine) as kit:
        timeline = await kit.simulate(
            Simulation("pricing-abandon", contact=sample_contact(), start=time(20, 45))
        )

    [email_deferred, sms_deferred] = timeline.of_kind("deferred")
    assert (email_deferred.step, email_deferred.reason) == ("email", "quiet hours")
    assert email_deferred.local.endswith("21:15 PST") or email_deferred.local.endswith("21:15 PDT")
    assert email_deferred.until is not None and " 08:00 " in email_deferred.until
    assert sms_deferred.step == "day2-sms"
    assert [(e.step, e.local[11:16]) for e in timeline.of_kind("sent")] == [
        ("email", "08:00"),
        ("day2-sms", "08:00"),
    ]
    assert timeline.status == "completed"
    assert_sent(timeline, ["email", "day2-sms"])


async def test_kit_welcome_series_purchase_on_day_3_exits_before_day_4(
    journey_kit: JourneyKit,
) -> None:
    contact = sample_contact()
    timeline = await journey_kit.simulate(
        Simulation("welcome-series", contact=contact, events=[at("3d", "purchased")])
    )

    assert sent_days(timeline) == [("day0", 0), ("day1", 1), ("day2", 2)]
    assert (timeline.status, timeline.exit_reason) == ("exited", "purchased")
    # (the purchase starts onboarding, whose emails go to its own folder)
    assert_sent(journey_kit.outbox / f"welcome-series-{contact.id}", ["day0", "day1", "day2"])


async def test_kit_nurture_four_weekly_emails(journey_kit: JourneyKit) -> None:
    contact = sample_contact()
    timeline = await journey_kit.simulate(Simulation("nurture", contact=contact))

    # A Cold contact without interests: the general track's three emails, then the roundup,
    # on the enrolment's weekday (at the slot's local hour, whatever the enrolment's).
    assert sent_local_days(timeline, contact.timezone or "UTC") == [
        ("general.sender-checklist", 7),
        ("general.customer-story", 14),
        ("general.pre-send-checklist", 21),
        ("roundup", 28),
    ]
    assert timeline.status == "completed"


async def test_kit_renewal_countdown_reminders_tasks_and_churn_risk(
    journey_kit: JourneyKit,
) -> None:
    now = await journey_kit.env.get_current_time()
    renewal = (now + timedelta(days=100)).replace(hour=0, minute=0, second=0, microsecond=0)
    timeline = await journey_kit.simulate(
        Simulation(
            "renewal-countdown",
            contact=sample_contact(),
            options={"subscription_id": "sub-1", "renewal_date": renewal.isoformat()},
            start=None,
        )
    )

    days_before = [
        (e.step, round((renewal - e.at) / timedelta(days=1))) for e in timeline.of_kind("sent")
    ]
    assert days_before == [
        ("reminder-90d", 90),
        ("reminder-60d", 60),
        ("reminder-30d", 30),
        ("reminder-7d", 7),
        ("reminder-1d", 1),
    ]
    assert [e.detail for e in timeline.of_kind("action")] == [
        "create_crm_task",
        "create_crm_task",
        "create_crm_task",
        "mark_churn_risk",
    ]
    assert (timeline.status, timeline.exit_reason) == ("exited", "churn-risk")


async def test_kit_lead_sla_first_touch_met_qualification_breached_then_sql_and_a_demo(
    journey_kit: JourneyKit,
) -> None:
    timeline = await journey_kit.simulate(
        Simulation(
            "lead-sla",
            contact=sample_contact(),
            options={"band": {"band": "MQL", "score": 30}},
            events=[
                at("3m", "rep_contacted"),  # before the 5-minute reminder
                at("3d", "lead_qualified"),  # after the qualification breach
                at("3d1h", "meeting_held", kind="demo"),  # meets the SQL follow-up
            ],
        )
    )

    assert [(e.kind, e.detail, e.day) for e in timeline.entries] == [
        ("action", "hand_off_lead", "Day 0 + 00:00"),
        ("event", "rep_contacted", "Day 0 + 00:03"),
        ("action", "remind_sla", "Day 1 + 00:00"),
        ("action", "warn_sla", "Day 1 + 22:00"),
        ("action", "escalate_sla_breach", "Day 2 + 00:00"),
        ("event", "lead_qualified", "Day 3 + 00:00"),
        ("event", "meeting_held", "Day 3 + 01:00"),
        ("completed", "", "Day 3 + 01:00"),
    ]


# --- test-send ---------------------------------------------------------------------------


async def test_test_send_through_the_outbox_is_marked_and_kept_out_of_log_and_report(
    settings: Settings, engine: AsyncEngine
) -> None:
    done = await qa(settings, "test-send", "welcome-series/day0", "--to", "me@example.com")

    assert done.returncode == 0, done.stderr
    [(key, message)] = read_outbox(settings.outbox_dir).items()
    assert key.startswith("test-send/welcome-series/day0/")
    assert message["To"] == "me@example.com"
    assert message["Subject"].startswith("[TEST] Your Email Marketing Playbook")
    assert message["X-Journeys-Test"] == "1"
    assert "/u/" in message["List-Unsubscribe"]
    assert await all_messages(engine) == []
    report = await qa(settings, "report", "--json")
    assert report.json()["journeys"] == []


async def test_test_sends_do_not_count_against_the_frequency_cap(
    settings: Settings, engine: AsyncEngine
) -> None:
    await add_contact(engine, "kim", email="kim@example.com", first_name="Kim")
    for _ in range(3):  # more than the daily cap of 2
        done = await qa(
            settings,
            "test-send",
            "welcome-series/day1",
            "--to",
            "kim@example.com",
            "--contact",
            "kim",
        )
        assert done.returncode == 0, done.stderr
    messaging = MessagingActivities.from_settings(
        settings, engine, templates=TemplateCatalog(settings.templates_dir)
    )
    env = ActivityEnvironment()
    now = datetime.now(UTC)
    env.info = dataclasses.replace(env.info, current_attempt_scheduled_time=now, scheduled_time=now)

    result = await env.run(
        messaging.send_message,
        SendRequest(
            idempotency_key="welcome-series-kim/day1",
            contact_id="kim",
            journey="welcome-series",
            step="day1",
            template="welcome-series/day1",
        ),
    )

    assert result.status == DeliveryStatus.SENT


async def test_test_send_through_smtp_on_loopback(settings: Settings) -> None:
    handler = RecordingHandler()
    with smtp_server(handler) as port:
        done = await qa(
            settings,
            "test-send",
            "pricing-abandon/email",
            "--to",
            "me@example.com",
            EMAIL_PROVIDER="smtp",
            SMTP_HOST="127.0.0.1",
            SMTP_PORT=str(port),
        )

    assert done.returncode == 0, done.stderr
    assert "through smtp" in done.stdout
    [envelope] = handler.envelopes
    assert envelope.rcpt_tos == ["me@example.com"]
    message = parse(envelope)
    assert message["Subject"] == "[TEST] Quick question about Northwind Campaigns"
    assert message["X-Journeys-Test"] == "1"


async def test_test_send_through_postmark(settings: Settings) -> None:
    with PostmarkApi() as api:
        done = await qa(
            settings,
            "test-send",
            "welcome-series/day0",
            "--to",
            "me@example.com",
            **api.worker_environment(),
        )

    assert done.returncode == 0, done.stderr
    assert "through postmark" in done.stdout
    [body] = api.received
    assert body["To"] == "me@example.com"
    assert body["Subject"].startswith("[TEST] ")
    headers = {header["Name"]: header["Value"] for header in body["Headers"]}
    assert headers["X-Journeys-Test"] == "1"
    assert headers["Message-ID"].startswith("<")
    assert api.deliveries[0].message_id in done.stdout


async def test_test_send_is_refused_for_a_suppressed_address(
    settings: Settings, engine: AsyncEngine
) -> None:
    async with session_factory(engine)() as session:
        await suppress_address(
            session,
            "email",
            "gone@example.com",
            key=settings.suppression_key(),
            reason="unsubscribed",
            contact_id=None,
            at=datetime.now(UTC),
        )
        await session.commit()

    done = await qa(settings, "test-send", "welcome-series/day0", "--to", "Gone@example.com")

    assert done.returncode == 1
    assert "the --to address is suppressed for email (unsubscribed)" in done.stderr
    assert "gone@example.com" not in done.stderr.lower()
    assert read_outbox(settings.outbox_dir) == {}


# --- the simulation's inputs ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "duration"),
    [
        ("30m", timedelta(minutes=30)),
        ("2d", timedelta(days=2)),
        ("3d12h", timedelta(days=3, hours=12)),
        ("1h30m15s", timedelta(hours=1, minutes=30, seconds=15)),
    ],
)
def test_event_offsets_are_journey_time_from_enrolment(text: str, duration: timedelta) -> None:
    assert parse_event(f"{text}:purchased") == ScheduledEvent(offset=duration, type="purchased")


def test_a_contact_file_in_toml_with_consent_as_true(tmp_path: Path) -> None:
    path = tmp_path / "kim.toml"
    path.write_text(
        'id = "kim"\nemail = "kim@example.com"\nfirst_name = "Kim"\n'
        'timezone = "Europe/Paris"\nemail_consent = true\n'
    )

    profile = contact_from_file(path)

    assert (profile.id, profile.first_name, profile.timezone) == ("kim", "Kim", "Europe/Paris")
    assert profile.email_consent is not None and profile.email_consent.granted


def test_an_invalid_contact_file_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "kim.json"
    path.write_text('{"email": "kim@example.com", "timezone": "Mars/Olympus"}')

    with pytest.raises(ContactFileError, match=r"kim.json: timezone: "):
        contact_from_file(path)
