"""Checks of a journey's plan against its `steps()`, made before a worker runs it.

The plan names every step a journey takes; `steps()` sends and runs them by
id. These checks read the literal step ids of `self.send("…")` and
`self.run_once("…", …)` in the journey class's source (with `ast`): an id
that is not in the plan, or a send of a step that has no channel, is refused
with the journey and the step named. So is a literal `self.leave("…")` reason
the journey does not declare in `exit_reasons` (what the catalogue lists), and
an experiment that a plan step or a literal `self.split("…")` names but the
journey does not declare in `experiments`.
Ids built at run time (f-strings, variables) cannot be read from the source:
`Journey.send` checks those when it runs and fails the workflow
(non-retryable `PlanError`) naming the step.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass

from workflows.toolkit.journey import Journey

STEP_CALLS = frozenset({"send", "run_once"})
"""The `Journey` methods whose first argument is a plan step id."""
LEAVE = "leave"
"""The `Journey` method whose first argument is an exit reason."""
SPLIT = "split"
"""The `Journey` method whose first argument is an experiment's name."""


class PlanError(ValueError):
    """A journey's `steps()` and its plan disagree (the message names the step)."""


@dataclass(frozen=True)
class StepCall:
    """A call of `self.send("…")`, `self.run_once("…", …)`, `self.leave("…")` or
    `self.split("…")` with a literal first argument (`step`: the step id; the exit reason
    for `leave`, the experiment for `split`)."""

    method: str
    step: str
    line: int


def step_calls(source: str) -> Iterator[StepCall]:
    """The calls with a literal step id or exit reason in `source` (a class's or module's code)."""
    for node in ast.walk(ast.parse(textwrap.dedent(source))):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in STEP_CALLS | {LEAVE, SPLIT}
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "self"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            continue
        yield StepCall(method=node.func.attr, step=node.args[0].value, line=node.lineno)


def check_plan(journey: type[Journey]) -> None:
    """Refuse a journey whose code sends or runs a step its plan lacks, or leaves undeclared.

    Raises:
        PlanError: naming the journey, the step and the line (within its class)
            of a `send` or `run_once` of a step that is not declared, of a
            `send` of a step that has no channel, of a `leave` for a reason
            not in its `exit_reasons`, or of a `split` (or a plan step naming an
            experiment) for an experiment not in its `experiments`.
    """
    declared = {step.id: step for step in journey.declared_steps()}
    reasons = {reason for reason, _ in journey.exit_reasons} | journey.exit_events()
    _check_experiment_steps(journey)
    for call in _calls_of(journey):
        if call.method == SPLIT:
            if journey.declared_experiment(call.step) is None:
                raise PlanError(
                    f"journey {journey.name}: split({call.step!r}) (line {call.line} of "
                    f"{journey.__name__}) names an experiment it does not declare; add "
                    f"Experiment({call.step!r}, …) to its experiments"
                )
            continue
        if call.method == LEAVE:
            if call.step not in reasons:
                raise PlanError(
                    f"journey {journey.name}: leave({call.step!r}) (line {call.line} of "
                    f"{journey.__name__}) ends it for a reason it does not declare; add "
                    f"({call.step!r}, <when>) to its exit_reasons"
                )
            continue
        planned = declared.get(call.step)
        if planned is None:
            raise PlanError(
                f"journey {journey.name}: {call.method}({call.step!r}) (line {call.line} of "
                f"{journey.__name__}) names a step that is not in its plan; add "
                f"PlanStep({call.step!r}, …) to its plan"
            )
        if call.method == "send" and planned.channel is None:
            raise PlanError(
                f"journey {journey.name}: send({call.step!r}) (line {call.line} of "
                f"{journey.__name__}) sends a plan step without a channel; give "
                f"PlanStep({call.step!r}, …) a channel (and a template if not "
                f"{journey.name}/{call.step})"
            )


def _check_experiment_steps(journey: type[Journey]) -> None:
    """Refuse a plan step that names an undeclared experiment, or sends no message."""
    for step in journey.declared_steps():
        if step.experiment is None:
            continue
        if journey.declared_experiment(step.experiment) is None:
            raise PlanError(
                f"journey {journey.name}: plan step {step.id!r} is the message of experiment "
                f"{step.experiment!r}, which it does not declare; add "
                f"Experiment({step.experiment!r}, …) to its experiments"
            )
        if step.channel is None:
            raise PlanError(
                f"journey {journey.name}: plan step {step.id!r} names experiment "
                f"{step.experiment!r} but sends no message; give it a channel"
            )


def _calls_of(journey: type[Journey]) -> Iterator[StepCall]:
    """The step calls in the source of `journey` and its journey base classes."""
    for cls in journey.__mro__:
        if cls is Journey or not issubclass(cls, Journey):
            continue
        try:
            source = inspect.getsource(cls)
        except (OSError, TypeError):  # defined where no source is kept (e.g. a REPL)
            continue
        yield from step_calls(source)
