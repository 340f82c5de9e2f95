"""The toolkit's pure parts, each on its own: the plan, the clock, the inbox, the progress
shown in the UI, re-entry keys and the retry policies (no Temporal server needed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from models.events import MAX_EVENTS_PAYLOAD_BYTES, BehaviorEvent, json_size
from models.journeys import JourneyStatus
from models.messages import Channel, DeliveryStatus, SendResult
from workflows.toolkit.clock import JourneyClock
from workflows.toolkit.inbox import REMEMBERED_EVENT_IDS, REMEMBERED_EVENTS, Inbox
from workflows.toolkit.plan import PlanStep, find_step, journey_time
from workflows.toolkit.progress import render_details
from workflows.toolkit.reentry import key_prefix
from workflows.toolkit.retries import CRM_RETRY_POLICY, SEND_RETRY_POLICY, about_two_hours

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def event(n: int, kind: str = "page_viewed", **properties: object) -> BehaviorEvent:
    return BehaviorEvent(
        event_id=f"evt-{n}", contact_id="c1", type=kind, occurred_at=T0, properties=properties
    )


# --- plan ------------------------------------------------------------------------------


def test_durations_are_written_as_minutes_hours_and_days_of_journey_time() -> None:
    assert journey_time(DAY, minutes=30) == timedelta(minutes=30)
    assert journey_time(DAY, days=2, hours=3) == timedelta(days=2, hours=3)
    assert journey_time(timedelta(seconds=60), minutes=30) == timedelta(seconds=1.25)


def test_a_plan_step_happens_on_its_day_plus_after_scaled_by_the_journey_day() -> None:
    step = PlanStep("email", day=0, title="Email", after=timedelta(minutes=30))
    assert step.offset(DAY) == timedelta(minutes=30)
    assert step.offset(timedelta(seconds=60)) == timedelta(seconds=1.25)
    sms = PlanStep("sms", day=2, title="SMS", after=timedelta(minutes=30))
    assert sms.offset(DAY) == timedelta(days=2, minutes=30)
    assert sms.label == "Day 2 → SMS"  # the label says the day, as before


def test_a_plan_step_that_sends_names_its_template_after_the_journey_by_default() -> None:
    default = PlanStep("day1", day=1, title="Email", channel=Channel.EMAIL)
    own = PlanStep("day2-sms", day=2, title="SMS", channel=Channel.SMS, template="x/day2")
    assert default.resolved("welcome-series").template == "welcome-series/day1"
    assert own.resolved("pricing-abandon").template == "x/day2"
    assert find_step((default, own), "day2-sms") is own
    assert find_step((default, own), "day9") is None


def test_a_step_label_says_when() -> None:
    assert PlanStep("a", day=4, title="Email 4").label == "Day 4 → Email 4"
    assert PlanStep("b", day=0.0069, title="Remind", when="+10 min").label == "+10 min → Remind"


# --- clock -----------------------------------------------------------------------------


def test_the_clock_counts_from_enrolment_and_stops_while_paused() -> None:
    clock = JourneyClock()
    clock.start(T0)
    assert clock.elapsed(T0 + timedelta(hours=5)) == timedelta(hours=5)
    assert clock.pause(T0 + timedelta(hours=5))
    assert not clock.pause(T0 + timedelta(hours=6))  # already paused
    assert clock.paused
    assert clock.resume(T0 + timedelta(hours=8))
    assert not clock.resume(T0 + timedelta(hours=9))
    assert clock.elapsed(T0 + timedelta(hours=8)) == timedelta(hours=5)
    assert clock.enrolled_at == T0


def test_skipping_a_wait_moves_the_clock_forward_by_what_was_left() -> None:
    clock = JourneyClock()
    clock.start(T0)
    clock.skip_to(timedelta(days=2), T0 + timedelta(hours=1))
    assert clock.elapsed(T0 + timedelta(hours=1)) == timedelta(days=2)


def test_a_relative_wait_keeps_its_deadline_in_the_next_run() -> None:
    clock = JourneyClock()
    clock.start(T0)
    first = clock.deadline("Wait 6 hours", timedelta(hours=6), T0)
    second = clock.deadline("Wait 6 hours", timedelta(hours=6), T0 + first)  # a loop
    assert (first, second) == (timedelta(hours=6), timedelta(hours=12))

    next_run = JourneyClock()  # replays steps() three hours later
    next_run.start(T0 + timedelta(hours=3))
    next_run.restore(enrolled_at=T0, origin=T0, paused_at=None, waits=clock.waits)
    assert next_run.deadline("Wait 6 hours", timedelta(hours=6), T0 + timedelta(hours=3)) == first
    assert next_run.deadline("Wait 6 hours", timedelta(hours=6), T0 + timedelta(hours=3)) == second
    assert next_run.deadline("Other", timedelta(hours=1), T0 + timedelta(hours=3)) == timedelta(
        hours=4
    )


# --- inbox -----------------------------------------------------------------------------


def test_the_inbox_drops_duplicates_and_finds_the_first_event_of_a_type() -> None:
    inbox = Inbox()
    assert inbox.add(event(1))
    assert inbox.add(event(2, "checkout_started"))
    assert not inbox.add(event(1, "purchased"))  # same id: a duplicate
    assert inbox.received({"purchased"}) is None
    found = inbox.received({"purchased", "checkout_started"})
    assert found is not None and found.event_id == "evt-2"
    assert [e.event_id for e in inbox.events] == ["evt-1", "evt-2"]


def test_the_inbox_remembers_a_bounded_number_of_events_and_ids() -> None:
    inbox = Inbox()
    for n in range(REMEMBERED_EVENT_IDS + 1):
        inbox.add(event(n))
    assert len(inbox.events) == REMEMBERED_EVENTS
    assert len(inbox.recent_ids) == REMEMBERED_EVENT_IDS
    assert inbox.add(event(0))  # forgotten: taken again


def test_the_inbox_carries_over_the_newest_events_that_fit_in_a_payload() -> None:
    inbox = Inbox()
    big = "x" * (30 * 1024)
    for n in range(20):  # 600 KiB in all
        inbox.add(event(n, note=big))
    kept = inbox.carried(lambda: True)
    assert sum(map(json_size, kept)) <= MAX_EVENTS_PAYLOAD_BYTES
    assert kept[-1].event_id == "evt-19"
    assert len(kept) < 20
    assert len(inbox.carried(lambda: False)) == 20  # runs from before the bound

    restored = Inbox()
    restored.restore(inbox.recent_ids, kept)
    assert not restored.add(event(3))


# --- progress --------------------------------------------------------------------------

PLAN = (
    PlanStep("day0", day=0, title="Email 1", channel=Channel.EMAIL),
    PlanStep("day1", day=1, title="Email 2", channel=Channel.EMAIL),
    PlanStep("route", day=1, title="Route"),
    PlanStep("day4", day=4, title="Email 3", channel=Channel.EMAIL),
)


def test_the_details_show_what_is_done_next_and_remaining() -> None:
    details = render_details(
        title="Welcome series",
        contact_id="c1",
        status=JourneyStatus.RUNNING,
        step="route",
        exit_reason=None,
        next_step=PLAN[3],
        next_wake_at=T0 + timedelta(days=4),
        plan=PLAN,
        results={
            "day0": SendResult(status=DeliveryStatus.SENT, idempotency_key="k0"),
            "day1": SendResult(status=DeliveryStatus.SUPPRESSED, idempotency_key="k1"),
        },
        actions={"route": T0},
        arms={},
    )
    assert details.splitlines() == [
        "**Welcome series** · contact `c1` · running",
        "",
        "Next: **Day 4 → Email 3** at 2026-03-06 09:00:00 UTC",
        "",
        "- ✅ Day 0 → Email 1 (sent)",
        "- ⚠️ Day 1 → Email 2 (suppressed)",
        "- ✅ Day 1 → Route (done)",
        "- ⏳ Day 4 → Email 3 (next)",
    ]


def test_the_details_of_an_exited_journey_say_where_and_why() -> None:
    details = render_details(
        title="Welcome series",
        contact_id="c1",
        status=JourneyStatus.EXITED,
        step="day1",
        exit_reason="purchased",
        next_step=None,
        next_wake_at=None,
        plan=PLAN[:2],
        results={},
        actions={},
        arms={},
    )
    assert "Exited at step `day1`: **purchased**" in details
    assert details.endswith("- ▫️ Day 0 → Email 1\n- ▫️ Day 1 → Email 2")


def test_the_details_show_the_arm_of_an_experiment_message_and_every_arm() -> None:
    plan = (
        PlanStep("day0", day=0, title="Email 1", channel=Channel.EMAIL, experiment="subject"),
        PlanStep("day1", day=1, title="Email 2", channel=Channel.EMAIL, experiment="offer"),
    )
    details = render_details(
        title="Welcome series",
        contact_id="c1",
        status=JourneyStatus.RUNNING,
        step="day0",
        exit_reason=None,
        next_step=plan[1],
        next_wake_at=T0 + timedelta(days=1),
        plan=plan,
        results={"day0": SendResult(status=DeliveryStatus.SENT, idempotency_key="k0")},
        actions={},
        arms={"subject": "b"},
    )
    assert details.splitlines()[-4:] == [
        "- ✅ Day 0 → Email 1 · A/B `subject`: arm **b** (sent)",
        "- ⏳ Day 1 → Email 2 · A/B `offer`: not split yet (next)",
        "",
        "Experiments: `subject` arm **b**",
    ]


# --- re-entry, retries ------------------------------------------------------------------


def test_a_journey_a_contact_can_re_enter_keys_its_messages_by_enrolment() -> None:
    assert key_prefix("welcome-series-c1", reentry=False, enrolled_at=T0) == "welcome-series-c1"
    assert (
        key_prefix("pricing-abandon-c1", reentry=True, enrolled_at=T0)
        == "pricing-abandon-c1/20260302T090000Z"
    )


@pytest.mark.parametrize("policy", [SEND_RETRY_POLICY, CRM_RETRY_POLICY])
def test_sends_and_crm_updates_retry_for_about_two_hours(policy: object) -> None:
    assert policy == about_two_hours(*policy.non_retryable_error_types)  # type: ignore[attr-defined]
    assert SEND_RETRY_POLICY.maximum_attempts == 12
    assert SEND_RETRY_POLICY.maximum_interval == timedelta(minutes=10)
    assert SEND_RETRY_POLICY.non_retryable_error_types == ["ContactNotFound", "TemplateError"]
    assert CRM_RETRY_POLICY.non_retryable_error_types == ["ContactNotFound", "UnknownRep"]
