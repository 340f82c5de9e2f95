"""The journeys the project runs: one file each in `workflows/journeys/`, found by name.

Registering a journey is writing its file: a `Journey` subclass decorated
with `@workflow.defn`, alone in `workflows/journeys/<name with _>.py`, whose
`name` is the file's name with `-` for `_` (`welcome-series` lives in
`welcome_series.py`). There is no list to edit: the worker runs every file it
finds there (`all_journeys`), the CLI and the gateway enrol by these names,
and the trigger table comes from the journeys' own `trigger` (`triggers`).

Nothing here imports a journey module it was not asked for: `journey_names`
reads the folder, `journey_class` imports one file. Workflow code imports
this module under `workflow.unsafe.imports_passed_through()`, and the
journey modules it loads are passed through too, so a worker process loads
each journey once instead of the sandbox loading every journey for every run.
"""

from __future__ import annotations

import inspect
import pkgutil
import sys
from dataclasses import replace
from functools import cache
from typing import TYPE_CHECKING, cast

from temporalio import workflow

from models.events import BehaviorEvent
from models.experiments import Experiment
from models.journeys import JourneyDescription, JourneyExit, PlannedStep, enrolment_options
from workflows import journeys as journeys_package
from workflows.triggers import Trigger, trigger_key, trigger_table

if TYPE_CHECKING:
    from types import ModuleType

    from workflows.toolkit import Journey

FOLDER = "workflows/journeys"
"""Where journey files live (as messages name it)."""


class UnknownJourney(LookupError):
    """No journey of that name: the message lists the known ones and what to do next."""

    def __init__(self, name: str) -> None:
        """Name the journey asked for and the known ones."""
        self.name = name
        self.known = journey_names()
        super().__init__(
            f"unknown journey {name!r}; known: {', '.join(self.known)} "
            f"(a journey is a file in {FOLDER}/, e.g. {FOLDER}/{module_name(name)}.py)"
        )


class JourneyFileError(TypeError):
    """A journey file that does not hold the journey its name says."""


def module_name(journey: str) -> str:
    """The file (module) name of a journey: `welcome-series` → `welcome_series`."""
    return journey.replace("-", "_")


def journey_names() -> list[str]:
    """Every journey's name, sorted, from the files in `workflows/journeys/` (none imported)."""
    return list(_names(tuple(journeys_package.__path__)))


@cache
def _names(path: tuple[str, ...]) -> tuple[str, ...]:
    """Names of the modules on `path` (the folder is read once per process)."""
    return tuple(
        sorted(
            module.name.replace("_", "-")
            for module in pkgutil.iter_modules(path)
            if not module.ispkg and not module.name.startswith("_")
        )
    )


def journey_class(name: str) -> type[Journey]:
    """The journey called `name`; imports its file only.

    Raises:
        UnknownJourney: no file for it in `workflows/journeys/`.
        JourneyFileError: the file does not define a journey called `name`.
    """
    if name not in journey_names():
        raise UnknownJourney(name)
    module = _import(f"{journeys_package.__name__}.{module_name(name)}")
    declared: dict[type, str] = {
        value: getattr(value, "name", "")
        for value in vars(module).values()
        if isinstance(value, type) and value.__module__ == module.__name__
    }
    matches = [cls for cls, declared_name in declared.items() if declared_name == name]
    if len(matches) != 1:
        found = ", ".join(
            f"{cls.__name__} named {named!r}"
            for cls, named in declared.items()
            if isinstance(named, str) and named
        )
        raise JourneyFileError(
            f"{FOLDER}/{module_name(name)}.py must define one journey with name = {name!r} "
            f"(found: {found or 'no class'}); rename the journey or its file so that they match"
        )
    return cast("type[Journey]", matches[0])


def _import(module: str) -> ModuleType:
    """Import a journey module; from workflow code, outside the sandbox (passed through)."""
    with workflow.unsafe.imports_passed_through():
        __import__(module)
    return sys.modules[module]


def all_journeys() -> list[type[Journey]]:
    """Every journey (imports every journey file): what the worker runs."""
    return [journey_class(name) for name in journey_names()]


def triggers() -> dict[str, Trigger]:
    """Which event type starts which journey, from the journeys' `trigger` declarations.

    Raises:
        TriggerClash: two journeys declare the same event type.
    """
    return trigger_table(
        (journey.name, journey.trigger) for journey in all_journeys() if journey.trigger
    )


def trigger_for(event: BehaviorEvent) -> Trigger | None:
    """The trigger `event` fires, if any (`workflows/triggers.py: trigger_key`)."""
    return triggers().get(trigger_key(event))


def followed_segments() -> frozenset[str]:
    """The segments journeys follow: entering starts one (`Trigger.on_segment`), or leaving
    ends one (`segment_exit`). Their changes reach the contact workflows as events."""
    return frozenset(
        name
        for journey in all_journeys()
        for name in (journey.trigger.segment if journey.trigger else None, journey.segment_exit)
        if name
    )


class UnknownExperiment(LookupError):
    """No experiment of that name: the message lists the declared ones."""

    def __init__(self, name: str) -> None:
        """Name the experiment asked for and the declared ones."""
        self.name = name
        self.known = sorted(experiments())
        super().__init__(
            f"unknown experiment {name!r}; declared: {', '.join(self.known) or 'none'} "
            "(an experiment is declared in its journey's `experiments`)"
        )


class ExperimentClash(ValueError):
    """Two experiments declared with one name."""


def experiments() -> dict[str, Experiment]:
    """Every experiment the journeys declare, by name, each naming its journey.

    Raises:
        ExperimentClash: two declarations share a name.
    """
    found: dict[str, Experiment] = {}
    for journey in all_journeys():
        for declared in journey.experiments:
            other = found.get(declared.name)
            if other is not None:
                raise ExperimentClash(
                    f"{other.journey} and {journey.name} both declare experiment "
                    f"{declared.name!r}; experiment names are unique: rename one"
                )
            found[declared.name] = replace(declared, journey=journey.name)
    return found


def experiment(name: str) -> Experiment:
    """The experiment called `name`, naming its journey.

    Raises:
        UnknownExperiment: no journey declares it.
    """
    declared = experiments().get(name)
    if declared is None:
        raise UnknownExperiment(name)
    return declared


ANY_ACTIVITY = "any event the contact initiates (an open, a click, a visit, a purchase…)"
"""When a journey with `exit_on_activity` ends, as the catalog says it."""


def describe(name: str) -> JourneyDescription:
    """The journey's declarations for people: title, trigger, enrolment options, plan.

    Raises:
        UnknownJourney: no such journey.
    """
    journey = journey_class(name)
    return JourneyDescription(
        name=journey.name,
        title=journey.title,
        summary=(inspect.getdoc(journey) or "").split("\n", 1)[0],
        category=str(journey.category),
        trigger=journey.trigger.key if journey.trigger else None,
        started_by=journey.started_by,
        options=enrolment_options(journey.input_model),
        plan=[PlannedStep(id=step.id, label=step.label) for step in journey.plan],
        exits=[
            *(
                JourneyExit(reason=event_type, when=f"a `{event_type}` event", event=event_type)
                for event_type in sorted(journey.exit_events())
            ),
            *(JourneyExit(reason=reason, when=when) for reason, when in journey.exit_reasons),
            *(
                [JourneyExit(reason=journey.exit_on_activity, when=ANY_ACTIVITY)]
                if journey.exit_on_activity
                else []
            ),
        ],
    )
