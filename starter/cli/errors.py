"""What a failed `journeys` command prints: what went wrong, then what to do next.

An error can only come from a module the command loaded, so the error types
are looked up among the loaded modules, never imported: a read command loads
nothing it does not use, even to report a failure.
"""

from __future__ import annotations

import sys
from typing import Any


def _database_hint(error: BaseException) -> str:
    from sqlalchemy.engine import make_url

    from models.settings import get_settings

    url = make_url(get_settings().database_url).render_as_string(hide_password=True)
    reason = (str(getattr(error, "orig", None) or error).splitlines() or ["no answer"])[0]
    return (
        f"cannot open the database {url} ({reason}): start it, or set DATABASE_URL to one "
        "that runs (`make run` keeps its own in .data/journeys.db)"
    )


USAGE = 2
"""Exit code of input the command refuses (as for a usage error); 1 for everything else."""


def explain(error: BaseException) -> tuple[int, list[str]] | None:
    """The exit code and lines of an expected failure, naming what to do next; None otherwise.

    Args:
        error: What the command raised.
    """
    lines = _lines(error)
    if lines is None:
        return None
    refused = (
        _loaded("pydantic", "ValidationError"),
        _loaded("workflows.catalog", "UnknownExperiment"),
        _loaded("starter.services.experiments", "UnknownArm"),
        _loaded("starter.services.experiments", "AlreadyStopped"),
    )
    return (USAGE if isinstance(error, refused) else 1), lines


def _loaded(module: str, name: str) -> type[BaseException]:
    """An exception class of `module` if that module is loaded, else a class nothing raises.

    An error can only come from a module the command loaded, so the others
    need not be imported to recognise it.
    """
    found = getattr(sys.modules.get(module), name, None)
    return found if isinstance(found, type) else _NeverRaised


class _NeverRaised(Exception):
    """Stands for the errors of a module the command did not load."""


def _lines(error: BaseException) -> list[str] | None:
    if isinstance(error, _loaded("starter.services.operations", "UnknownContact")):
        contact_id = getattr(error, "contact_id", "ID")
        return [f"{error}; create it with `journeys contact upsert {contact_id} --email …`"]
    if isinstance(error, _loaded("starter.services.operations", "NotRunning")):
        contact_id = getattr(error, "contact_id", "ID")
        return [f"{error}; see its journeys with `journeys status {contact_id}`"]
    if isinstance(error, _loaded("starter.services.operations", "Gone")):
        return [f"{error}; an erased id cannot be used again: give the person a new id"]
    if isinstance(error, _loaded("runtime.temporal", "TemporalUnavailable")):
        return [
            f"{error}",
            "start Temporal with `make run`, or set TEMPORAL_ADDRESS (and TEMPORAL_NAMESPACE) "
            "to your cluster",
        ]
    database_errors = (
        _loaded("sqlalchemy.exc", "OperationalError"),
        _loaded("sqlalchemy.exc", "InterfaceError"),
        ConnectionError,
    )
    if isinstance(error, database_errors):
        return [_database_hint(error)]
    if isinstance(error, _loaded("pydantic", "ValidationError")):
        return [_issue(issue) for issue in getattr(error, "errors", list)()]
    expected = (
        _loaded("starter.services.operations", "OperationError"),
        _loaded("starter.dev.toolchain", "ToolchainError"),
        _loaded("starter.dev.temporal_cluster", "ClusterError"),
        _loaded("starter.dev.postgres", "PostgresError"),
        _loaded("rules.templates", "TemplateError"),
        _loaded("workflows.toolkit.plan_check", "PlanError"),
        _loaded("workflows.triggers", "TriggerClash"),
        _loaded("workflows.catalog", "UnknownExperiment"),
        _loaded("models.settings", "UnsafeSettings"),
        _loaded("runtime.temporal_settings", "TemporalSettingsError"),
    )
    if isinstance(error, expected):
        return str(error).splitlines()
    return None


def _issue(issue: Any) -> str:
    """One pydantic issue as `field: what is wrong`."""
    where = ".".join(str(part) for part in issue.get("loc", ()))
    message = str(issue.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message
