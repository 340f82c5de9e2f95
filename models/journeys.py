"""Journey inputs, operator requests and the state a journey reports."""

from __future__ import annotations

import inspect
import re
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from models.events import BehaviorEvent
from models.ids import ContactId
from models.messages import SendResult
from models.policy import SECONDS_PER_DAY


class JourneyCarryOver(BaseModel):
    """A journey's progress, handed to the next run when it continues as new.

    Attributes:
        enrolled_at: Day 0 of the journey.
        clock_origin: Day 0 shifted by the time spent paused.
        paused_at: When the current pause began, if paused.
        results: Outcome of every step sent so far.
        actions: Steps done with `Journey.run_once` (CRM updates…), and when.
        recent_event_ids: Event ids already processed (duplicates are dropped).
        events: Recent events, for `wait_for`.
        waits: Deadlines of the relative waits begun so far (journey time since
            Day 0), by wait key (`Journey.wait`), so the next run resumes them.
        arms: The contact's arm per experiment (`Journey.split`), kept for the journey.
    """

    model_config = ConfigDict(frozen=True)

    enrolled_at: datetime
    clock_origin: datetime
    paused_at: datetime | None = None
    results: dict[str, SendResult] = Field(default_factory=dict)
    actions: dict[str, datetime] = Field(default_factory=dict)
    recent_event_ids: list[str] = Field(default_factory=list)
    events: list[BehaviorEvent] = Field(default_factory=list)
    waits: dict[str, timedelta] = Field(default_factory=dict)
    arms: dict[str, str] = Field(default_factory=dict)


class JourneyInput(BaseModel):
    """What a journey workflow is started with.

    Attributes:
        contact_id: The enrolled contact.
        day_seconds: Length of one journey "day" in seconds. 86,400 in
            production; a small value (e.g. 15) gives an accelerated clock for
            demos and staging. It is part of the workflow input, so it is
            recorded in history and replays deterministically.
        history_limit: Continue as new once the history has this many events
            (or earlier, when the server suggests it).
        reentry_days: Overrides the journey's re-entry window (journeys a
            contact may run again, e.g. pricing-abandon's 30 days).
        arms: The contact's arm in experiments with a journey-level holdout, drawn when
            the journey was about to start (`start_journey`): the journey takes them
            instead of asking again.
        carry: Progress from the previous run; set by the toolkit only.
    """

    model_config = ConfigDict(frozen=True)

    contact_id: ContactId
    day_seconds: int = Field(default=SECONDS_PER_DAY, ge=1, le=SECONDS_PER_DAY)
    history_limit: int = Field(default=10_000, ge=20)
    reentry_days: float | None = Field(default=None, gt=0)
    arms: dict[str, str] = Field(default_factory=dict)
    carry: JourneyCarryOver | None = None


NOT_OPTIONS = frozenset({"contact_id", "carry", "arms"})
"""Input fields that are not enrolment options: the contact is the enrolment's own, the
carry-over and the arms drawn at entry the toolkit's (an operator cannot pick an arm)."""
KEPT_BY_THE_JOURNEY: dict[str, Any] = {"readOnly": True}
"""`json_schema_extra` of an input field the journey itself keeps up to date (not an
enrolment option): `Field(default=…, json_schema_extra=KEPT_BY_THE_JOURNEY)`."""


class JourneyOption(BaseModel):
    """One enrolment option of a journey: a field of its input model.

    Attributes:
        name: The field, e.g. `renewal_date` (`--option renewal_date=…`, a JSON body key).
        type: Its JSON-schema type, e.g. `string (date-time)` or `integer | null`.
        required: Whether an enrolment must give it.
        default: Its value when not given (absent when required).
        description: What it is, from the model's field description or docstring.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    type: str
    required: bool
    default: JsonValue = None
    description: str | None = None


class PlannedStep(BaseModel):
    """One step of a journey's plan, as the catalog lists it.

    Attributes:
        id: Step id, e.g. `day4`.
        label: `Day 4 → Email 4: Common mistake to avoid`.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    label: str


class JourneyExit(BaseModel):
    r"""One way a journey ends early, as the catalog lists it.

    Attributes:
        reason: The exit reason its runs record, e.g. `converted` or `unsubscribed`.
        when: When, for people, e.g. `a \`purchased\` event`.
        event: The event type that ends it, for an exit event (the reason is its type).
    """

    model_config = ConfigDict(frozen=True)

    reason: str
    when: str
    event: str | None = None


class JourneyDescription(BaseModel):
    """What a journey is and how to enrol into it (`GET /v1/journeys`, `journeys catalog`).

    Attributes:
        name: Journey type, e.g. `renewal-countdown`.
        title: Human name.
        summary: What it does, in one line (its class's docstring).
        category: `marketing` or `transactional`.
        trigger: The event type that starts it, if one does.
        started_by: How else it starts, or the rules of its start, for people.
        options: Its enrolment options (its input model's fields).
        plan: Its steps (empty for a plan computed from the input, e.g. a renewal date).
        exits: The ways it ends early: its exit events, then the reasons it declares.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    title: str
    summary: str = ""
    category: str
    trigger: str | None = None
    started_by: str = ""
    options: list[JourneyOption] = Field(default_factory=list)
    plan: list[PlannedStep] = Field(default_factory=list)
    exits: list[JourneyExit] = Field(default_factory=list)


def enrolment_options(model: type[JourneyInput]) -> list[JourneyOption]:
    """The enrolment options of a journey input model, from its JSON schema (required first)."""
    schema = model.model_json_schema()
    described = _attribute_docs(model)
    options = [
        JourneyOption(
            name=name,
            type=_schema_type(field),
            required=name in schema.get("required", ()),
            default=field.get("default"),
            description=field.get("description") or described.get(name),
        )
        for name, field in schema["properties"].items()
        if name not in NOT_OPTIONS and not field.get("readOnly")
    ]
    return sorted(options, key=lambda option: not option.required)


def _schema_type(field: dict[str, Any]) -> str:
    """A JSON-schema type in a few words: `integer`, `array of integer`, `string | null`."""
    if "anyOf" in field:
        return " | ".join(_schema_type(option) for option in field["anyOf"])
    if "$ref" in field:
        return str(field["$ref"]).rsplit("/", 1)[-1]
    if field.get("type") == "array":
        return f"array of {_schema_type(field.get('items', {}))}"
    kind = str(field.get("type", "any"))
    return f"{kind} ({field['format']})" if "format" in field else kind


def _attribute_docs(model: type[BaseModel]) -> dict[str, str]:
    """Field descriptions from the `Attributes:` sections of the model's (and bases') docstrings."""
    docs: dict[str, str] = {}
    for cls in reversed(model.__mro__):
        section = (inspect.getdoc(cls) or "").partition("Attributes:\n")[2]
        for match in re.finditer(r"^    (\w+): (.+(?:\n {8}.+)*)", section, re.MULTILINE):
            docs[match[1]] = " ".join(match[2].split())
    return docs


class JourneyStatus(StrEnum):
    """Lifecycle of one journey run."""

    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    EXITED = "exited"


class ExitRequest(BaseModel):
    """Operator request to end a journey now."""

    model_config = ConfigDict(frozen=True)

    reason: str = Field(default="operator", min_length=1, max_length=200)


class JourneyState(BaseModel):
    """What a journey reports through its `state` query and its result.

    Attributes:
        journey: Journey type, e.g. `welcome-series`.
        contact_id: The enrolled contact.
        step: The step it is at (last step reached).
        status: running, paused, completed or exited.
        enrolled_at: When the journey started (Day 0).
        next_wake_at: When the current wait ends, if waiting.
        next_step: What happens at `next_wake_at`.
        messages_sent: Number of messages actually delivered.
        steps_done: Steps whose send has been attempted, in order.
        actions_done: Steps done with `Journey.run_once` (CRM tasks,
            escalations…), in order.
        exit_reason: Why it exited (`unsubscribed`, `purchased`, an operator reason).
        arms: The contact's arm in each experiment of the journey split so far.
    """

    journey: str
    contact_id: str
    step: str
    status: JourneyStatus
    enrolled_at: datetime
    next_wake_at: datetime | None = None
    next_step: str | None = None
    messages_sent: int = 0
    steps_done: list[str] = Field(default_factory=list)
    actions_done: list[str] = Field(default_factory=list)
    exit_reason: str | None = None
    arms: dict[str, str] = Field(default_factory=dict)


class JourneyEntry(BaseModel):
    """A journey workflow asked about: has it ever run (is it in the run log)?

    Attributes:
        workflow_id: e.g. `welcome-series-ada`.
    """

    model_config = ConfigDict(frozen=True)

    workflow_id: str


class JourneyRunRecord(BaseModel):
    """One journey run's status for the journey-run log (written at start and at the end).

    Attributes:
        run_key: `{workflow_id}/{first run id}`: the same across continue-as-new.
        workflow_id: e.g. `welcome-series-ada`.
        journey: Journey type.
        contact_id: The contact.
        status: running, completed or exited.
        step: The step reached.
        exit_reason: Why it exited, if it did.
        messages_sent: Messages delivered so far.
        at: When (workflow time).
    """

    model_config = ConfigDict(frozen=True)

    run_key: str
    workflow_id: str
    journey: str
    contact_id: str
    status: JourneyStatus
    step: str
    exit_reason: str | None = None
    messages_sent: int = 0
    at: datetime


class ContactMemo(BaseModel):
    """A contact's non-sensitive attributes, kept in a journey's memo for the Temporal UI.

    No email address, phone number or name: the memo is visible to every operator.
    """

    model_config = ConfigDict(frozen=True)

    timezone: str
    lifecycle_stage: str | None = None
    lead_score: int = 0
    owner_id: str | None = None
    tags: list[str] = Field(default_factory=list)
    attributes: dict[str, str] = Field(default_factory=dict)
