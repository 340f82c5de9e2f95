"""Experiments over HTTP: `GET /v1/experiments[/{name}]` (what `journeys experiments`
prints) and `POST /v1/experiments/{name}/stop` (see `starter/services/experiments.py`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Query, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

from models.experiments import Experiment
from models.settings import ApiKey
from starter.api.dependencies import ServicesDep, require
from starter.services import experiments, operations
from starter.services.experiments import Decision, ExperimentReport, ExperimentSummary

router = APIRouter(prefix="/v1/experiments", tags=["experiments"])

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No journey declares an experiment of that name."}
}


class StopIn(BaseModel):
    """How to stop an experiment.

    Attributes:
        winner: The arm every new entrant gets from now on; null: control.
        note: Why, for the audit.
    """

    model_config = ConfigDict(extra="forbid")

    winner: str | None = Field(default=None, max_length=32, examples=["b"])
    note: str | None = Field(default=None, max_length=500)


class StopView(Decision):
    """The experiment stopped: its audit row.

    Attributes:
        experiment: The experiment's name.
    """

    experiment: str


@router.get(
    "", response_model=list[ExperimentSummary], summary="List the experiments and their verdicts"
)
async def list_experiments(
    held: ServicesDep,
    _key: Annotated[ApiKey, Depends(require("reports:read"))],
) -> list[ExperimentSummary]:
    """Every experiment the journeys declare: its journey, whether it runs or was stopped
    (by whom, when, with which winner), its exposures, the best arm's difference to control
    and the verdict. Needs `reports:read`."""
    return await experiments.experiments_overview(held.engine, now=datetime.now(UTC))


@router.get(
    "/{name}",
    response_model=ExperimentReport,
    summary="An experiment's results per arm",
    responses={
        200: {"content": {"text/html": {}}, "description": "The report."},
        **_NOT_FOUND,
    },
)
async def get_experiment(
    name: str,
    held: ServicesDep,
    _key: Annotated[ApiKey, Depends(require("reports:read"))],
    baseline: Annotated[
        float | None,
        Query(
            gt=0,
            lt=1,
            description="Control's expected conversion rate for the minimum sample "
            "(default: the declaration's).",
        ),
    ] = None,
    mde: Annotated[
        float | None,
        Query(
            gt=0,
            lt=1,
            description="The smallest absolute difference of rates worth detecting, e.g. "
            "0.03 (default: the declaration's).",
        ),
    ] = None,
    output_format: Annotated[
        Literal["json", "html"], Query(alias="format", description="`html`: a standalone page.")
    ] = "json",
) -> ExperimentReport | HTMLResponse:
    """Per arm (declared arms in order, control first, then the holdout): exposed, sent,
    opened, clicked, converted, the conversion rate with its 95% Wilson interval (contacts
    whose conversion window has closed; those still inside it are `pending`), the
    difference to control with Newcombe's interval and the two-proportion p-value; the
    incremental effect against the holdout, the sample-ratio check, the minimum sample and
    the verdict (a winner only when the split is sound, every arm has its minimum sample
    and an arm beats control significantly). Needs `reports:read`; 404 for an unknown
    experiment; 422 for a `baseline` / `mde` that give no minimum sample."""
    try:
        report = await experiments.experiment_report(
            held.engine,
            _declared(name),
            now=datetime.now(UTC),
            baseline_rate=baseline,
            minimum_detectable_effect=mde,
        )
    except operations.InvalidRequest as error:  # baseline + effect not below 1
        blamed = "mde" if mde is not None else "baseline"
        raise RequestValidationError(
            [{"loc": ("query", blamed), "msg": str(error), "type": "value_error"}]
        ) from None
    if output_format == "html":
        return HTMLResponse(experiments.render_html([report]))
    return report


@router.post(
    "/{name}/stop",
    response_model=StopView,
    summary="Stop an experiment, with or without a winner",
    responses={
        **_NOT_FOUND,
        409: {"description": "The experiment was already stopped (by whom, when)."},
        422: {"description": "The winner is not one of the experiment's arms."},
    },
)
async def stop_experiment(
    name: str,
    held: ServicesDep,
    key: Annotated[ApiKey, Depends(require("journeys:write"))],
    stop: Annotated[StopIn | None, Body()] = None,
) -> StopView:
    """Stop the experiment: from now on every new entrant gets `winner` (null: control) and
    is not counted in the experiment; contacts already exposed keep their arm. Recorded
    with the API key's name (`api:<name>`) and the time; an experiment stops once (409
    after that). Needs `journeys:write`; 404 for an unknown experiment, 422 for a winner
    that is not a declared arm (the holdout is not an arm). No body: stop without a
    winner."""
    _declared(name)
    stop = stop or StopIn()
    decision = await experiments.stop_experiment(
        held.engine,
        name,
        winner=stop.winner,
        decided_by=f"api:{key.name}",
        note=stop.note,
        now=datetime.now(UTC),
    )
    return StopView(experiment=name, **decision.model_dump())


def _declared(name: str) -> Experiment:
    """The experiment called `name`; 404 naming the declared ones if there is none."""
    from workflows import catalog

    try:
        return catalog.experiment(name)
    except catalog.UnknownExperiment as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from None
