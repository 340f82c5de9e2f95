"""The journey catalog: found by file, imported one at a time, triggers and options declared on
the journey.

A journey written by a test lives in a temporary folder added to the journeys
package's `__path__` (in this process with `monkeypatch`, in a CLI process by
the same line before `main()`): the catalog reads the package's path, so the
journey is found exactly as a file in `workflows/journeys/` is, and nothing in
`starter/` or `workflows/` is edited for it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

import workflows.journeys
from models.settings import PROJECT_ROOT, Settings
from starter.api.schemas import EnrolmentIn
from starter.cli.journey_table import journey_row, journey_table, readme_journey_table
from starter.client import AsyncJourneysClient
from starter.services.operations import InvalidRequest, journey_input_for
from tests.cli import cli_environment, run
from tests.factories import add_contact
from tests.gateway import FULL_KEY, Gateway, gateway_settings, serving_gateway
from tests.test_api import new_id, put_contact
from workflows import catalog
from workflows.triggers import Trigger, TriggerClash, trigger_table

SHIPPED = [
    "abandoned-cart",
    "churn-prevention",
    "first-purchase",
    "lead-sla",
    "nurture",
    "onboarding",
    "pricing-abandon",
    "re-engagement",
    "recycling",
    "renewal-countdown",
    "welcome-series",
    "win-back",
]

TRIAL_NUDGE = '''
"""A journey written by a test: its own input model, its own option."""

from __future__ import annotations

from pydantic import Field
from temporalio import workflow

from workflows.toolkit import Journey
from workflows.triggers import Trigger

with workflow.unsafe.imports_passed_through():
    from models.journeys import JourneyInput, JourneyState
    from models.messages import MessageCategory


class TrialInput(JourneyInput):
    """What a trial nudge is started with.

    Attributes:
        trial_days: Length of the trial.
        plan_name: The plan on trial.
    """

    trial_days: int = Field(ge=1, le=90)
    plan_name: str = "starter"


@workflow.defn(name="trial-nudge")
class TrialNudge(Journey):
    """Nothing to send: the test looks at how it is enrolled."""

    name = "trial-nudge"
    title = "Trial nudge"
    category = MessageCategory.MARKETING
    trigger = Trigger(TRIGGER)
    input_model = TrialInput
    plan = ()

    @workflow.run
    async def run(self, journey_input: TrialInput) -> JourneyState:
        return await self.run_journey(journey_input)

    async def steps(self) -> None:
        return None
'''


def write_journey(folder: Path, file: str, source: str) -> Path:
    """A journey file in `folder` (made if need be)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / file).write_text(textwrap.dedent(source))
    return folder


@pytest.fixture
def extra_journeys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder searched for journeys after `workflows/journeys/` (this process only)."""
    folder = tmp_path / "journeys"
    folder.mkdir()
    monkeypatch.setattr(workflows.journeys, "__path__", [*workflows.journeys.__path__, str(folder)])
    for name in ("trial_nudge", "misnamed"):
        monkeypatch.delitem(sys.modules, f"workflows.journeys.{name}", raising=False)
    return folder


@pytest.fixture
async def gateway(dev_env: WorkflowEnvironment, settings: Settings) -> AsyncIterator[Gateway]:
    """The gateway alone: enrolments start workflows that no worker here runs."""
    async with serving_gateway(dev_env.client, gateway_settings(settings), worker=False) as served:
        yield served


def trial_nudge(trigger: str = "trial_started") -> str:
    return TRIAL_NUDGE.replace("TRIGGER", repr(trigger))


@pytest.mark.parametrize("journey", SHIPPED)
def test_importing_a_journey_imports_no_other_journey(journey: str) -> None:
    module = f"workflows.journeys.{catalog.module_name(journey)}"
    code = (
        f"import sys, {module}; "
        "print(sorted(m for m in sys.modules if m.startswith('workflows.journeys.')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    )

    assert loaded.stdout.strip() == repr([module])


def test_listing_the_journeys_imports_none() -> None:
    code = (
        "import sys; from workflows import catalog; names = catalog.journey_names(); "
        "print(names, sorted(m for m in sys.modules if m.startswith('workflows.journeys.')))"
    )
    listed = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    )

    assert listed.stdout.strip() == f"{SHIPPED!r} []"


def test_each_journey_is_found_under_its_own_name() -> None:
    assert [journey.name for journey in catalog.all_journeys()] == SHIPPED
    assert catalog.journey_class("renewal-countdown").__name__ == "RenewalCountdown"


def test_an_unknown_journey_names_the_known_ones_and_where_journeys_live() -> None:
    with pytest.raises(catalog.UnknownJourney) as raised:
        catalog.journey_class("trial-nudge")

    assert str(raised.value) == (
        f"unknown journey 'trial-nudge'; known: {', '.join(SHIPPED)} (a journey is a file in "
        "workflows/journeys/, e.g. workflows/journeys/trial_nudge.py)"
    )


def test_a_journey_named_other_than_its_file_is_refused(extra_journeys: Path) -> None:
    write_journey(extra_journeys, "misnamed.py", trial_nudge())

    assert "misnamed" in catalog.journey_names()
    with pytest.raises(catalog.JourneyFileError) as raised:
        catalog.journey_class("misnamed")

    assert str(raised.value) == (
        "workflows/journeys/misnamed.py must define one journey with name = 'misnamed' "
        "(found: TrialNudge named 'trial-nudge'); rename the journey or its file so that "
        "they match"
    )


def test_the_trigger_table_comes_from_the_journeys() -> None:
    table = {event: trigger.journey for event, trigger in catalog.triggers().items()}

    assert table == {
        "cart_updated": "abandoned-cart",
        "lead_disqualified": "recycling",
        "pricing_page_viewed": "pricing-abandon",
        "purchased": "onboarding",
        "renewal_scheduled": "renewal-countdown",
        "segment_entered:signed-up-no-purchase": "first-purchase",
        "subscribed": "welcome-series",
        "usage_dropped": "churn-prevention",
    }


def test_a_new_journey_with_a_trigger_joins_the_table(extra_journeys: Path) -> None:
    write_journey(extra_journeys, "trial_nudge.py", trial_nudge())

    assert catalog.triggers()["trial_started"].journey == "trial-nudge"


def test_two_journeys_on_one_event_type_are_refused_naming_both(extra_journeys: Path) -> None:
    write_journey(extra_journeys, "trial_nudge.py", trial_nudge("subscribed"))

    with pytest.raises(TriggerClash) as raised:
        catalog.triggers()

    assert str(raised.value) == (
        "trial-nudge and welcome-series are both triggered by 'subscribed'; an event type "
        "starts one journey: change the trigger of one of them"
    )
    with pytest.raises(TriggerClash, match="a and b are both triggered by 'x'"):
        trigger_table([("a", Trigger("x")), ("b", Trigger("x"))])


def test_the_readme_journey_table_is_the_catalog() -> None:
    """The README lists every journey as its declarations say (`journeys catalog --markdown`)."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    described = [catalog.describe(name) for name in catalog.journey_names()]

    assert readme_journey_table(readme) == journey_table(described), (
        "the README's journey table is stale: paste `journeys catalog --markdown` over it"
    )


def test_the_journey_table_shows_triggers_steps_and_exits() -> None:
    row = journey_row(catalog.describe("pricing-abandon"))

    assert row.startswith("| `pricing-abandon`<br>Pricing-page abandon (marketing) | ")
    assert "`pricing_page_viewed`<br>at most once per 30 days" in row
    assert "Day 0 → Email: Quick question about [Product]" in row
    assert "on `unsubscribed`<br>`converted`: started checkout" in row
    renewal = journey_row(catalog.describe("renewal-countdown"))
    assert "Count down to a subscription's renewal" in renewal  # a plan computed from its input
    assert "on `renewed`<br>`churn-risk`:" in renewal


def test_the_catalog_describes_options_from_the_input_model() -> None:
    renewal = catalog.describe("renewal-countdown")

    assert renewal.trigger == "renewal_scheduled"
    options = {option.name: option for option in renewal.options}
    assert [name for name, option in options.items() if option.required] == [
        "subscription_id",
        "renewal_date",
    ]
    assert options["renewal_date"].type == "string (date-time)"
    assert options["day_seconds"].default == 86_400
    assert options["subscription_id"].description is not None
    assert "contact_id" not in options and "carry" not in options
    kept_by_the_journeys = {"rescheduled_on_day", "rescheduled_by_event_at", "handoff"}
    assert not kept_by_the_journeys & set(options)
    assert "handoff" not in {option.name for option in catalog.describe("lead-sla").options}
    with pytest.raises(InvalidRequest, match="does not take rescheduled_on_day"):
        journey_input_for(
            "renewal-countdown",
            "ren",
            {
                "renewal_date": "2099-03-01T00:00:00Z",
                "subscription_id": "s",
                "rescheduled_on_day": 3,
            },
            accelerated_clock_allowed=False,
        )
    nurture = catalog.describe("nurture")
    assert [step.id for step in nurture.plan] == [
        "general.sender-checklist",
        "general.customer-story",
        "general.pre-send-checklist",
        "offer",
        "roundup",
    ]
    nurture_options = {option.name: option for option in nurture.options}
    assert nurture_options["send_hour"].default == 10
    assert not {"anchor", "slot", "track", "tags_seen"} & set(nurture_options)


async def started_with(client: Client, workflow_id: str) -> dict[str, object]:
    """The input a workflow was started with, decoded."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    payloads = history.events[0].workflow_execution_started_event_attributes.input.payloads
    [decoded] = await client.data_converter.decode(payloads, [dict])
    assert isinstance(decoded, dict)
    return decoded


CLI_WITH_EXTRA_JOURNEYS = (
    "import sys, workflows.journeys as journeys; "
    "journeys.__path__.append(sys.argv.pop(1)); "
    "from starter.cli.commands import main; main()"
)
"""`journeys …` with a folder of extra journeys (the first argument)."""


async def test_a_new_journey_with_a_new_option_is_enrolled_by_the_cli(
    dev_env: WorkflowEnvironment, settings: Settings, engine: AsyncEngine, tmp_path: Path
) -> None:
    folder = write_journey(tmp_path / "journeys", "trial_nudge.py", trial_nudge())
    await add_contact(engine, "trial-cli")
    env = cli_environment(settings, dev_env.client.service_client.config.target_host)

    async def journeys(*args: str) -> tuple[int, str]:
        done = await run(sys.executable, "-c", CLI_WITH_EXTRA_JOURNEYS, str(folder), *args, env=env)
        return done.returncode, done.stdout + done.stderr

    listed = await journeys("catalog", "trial-nudge", "--json")
    assert listed[0] == 0, listed[1]
    [described] = json.loads(listed[1])
    assert described["trigger"] == "trial_started"
    assert described["options"][0] == {
        "name": "trial_days",
        "type": "integer",
        "required": True,
        "default": None,
        "description": "Length of the trial.",
    }
    assert await journeys("enroll", "trial-nudge", "trial-cli", "--option", "plan=pro") == (
        1,
        "error: trial-nudge does not take --option plan; it takes --option trial_days, "
        "--day-seconds, --option history_limit, --option reentry_days, --option plan_name\n",
    )
    refused = await journeys("enroll", "trial-nudge", "trial-cli", "--option", "trial_days=ten")
    assert refused[0] == 2 and "trial_days" in refused[1], refused
    enrolled = await journeys(
        "enroll", "trial-nudge", "trial-cli", "--option", "trial_days=14",
        "--option", "plan_name=pro",
    )  # fmt: skip
    assert enrolled == (0, "enrolled: trial-nudge-trial-cli\n")

    started = await started_with(dev_env.client, "trial-nudge-trial-cli")
    assert (started["trial_days"], started["plan_name"]) == (14, "pro")


async def test_a_new_journey_with_a_new_option_is_enrolled_through_the_gateway(
    gateway: Gateway, dev_env: WorkflowEnvironment, extra_journeys: Path
) -> None:
    write_journey(extra_journeys, "trial_nudge.py", trial_nudge())
    contact_id = new_id("trial")
    await put_contact(gateway, contact_id, first_name="Tess")
    path = f"/v1/contacts/{contact_id}/journeys/trial-nudge"

    listed = await gateway.http.get("/v1/journeys")
    assert listed.status_code == 200, listed.text
    assert [journey["name"] for journey in listed.json()] == sorted([*SHIPPED, "trial-nudge"])
    missing = await gateway.http.post(path, json={"plan_name": "pro"})
    assert missing.status_code == 422
    assert missing.json()["detail"][0]["loc"] == ["body", "trial_days"]
    assert missing.json()["detail"][0]["msg"] == "trial-nudge: Field required"
    unknown = await gateway.http.post(path, json={"trial_days": 14, "plan": "pro"})
    assert unknown.status_code == 422
    assert "trial-nudge does not take plan; it takes trial_days" in unknown.json()["detail"]

    async with AsyncJourneysClient(gateway.url, FULL_KEY) as client:
        catalog_seen = await client.journey_catalog()
        enrolled = await client.enroll(
            contact_id, "trial-nudge", options={"trial_days": "14", "plan_name": "pro"}
        )
    assert "trial-nudge" in [journey.name for journey in catalog_seen]
    assert enrolled.workflow_id == f"trial-nudge-{contact_id}"
    started = await started_with(dev_env.client, enrolled.workflow_id)
    assert (started["trial_days"], started["plan_name"]) == (14, "pro")


async def test_the_renewal_enrolment_body_of_before_still_works(gateway: Gateway) -> None:
    contact_id = new_id("renew")
    await put_contact(gateway, contact_id, first_name="Ren")
    body = EnrolmentIn.model_validate(
        {"renewal_date": "2099-03-01T00:00:00Z", "subscription_id": "sub-1", "day_seconds": 60}
    )

    started = await gateway.http.post(
        f"/v1/contacts/{contact_id}/journeys/renewal-countdown",
        json=body.model_dump(mode="json", exclude_none=True),
    )

    assert started.status_code == 201, started.text
    assert started.json()["workflow_id"] == f"renewal-countdown-{contact_id}-sub-1"
