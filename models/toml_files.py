"""Configuration files operators edit (scoring model, sales hand-off), read as TOML."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

Model = TypeVar("Model", bound=BaseModel)


def load_toml(model: type[Model], path: str | Path, what: str) -> Model:
    """Read and validate a TOML file as `model`.

    Args:
        model: The pydantic model the file holds.
        path: The file.
        what: What it is, for messages (e.g. `scoring model`).

    Raises:
        OSError: The file cannot be read.
        ValueError: Not valid TOML or not a valid `model`; the message names the
            file and each problem.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValueError(f"{path}: invalid {what}: {validation_problems(exc)}") from exc


def validation_problems(error: ValidationError) -> str:
    """Each problem of a validation error, with where: `segments.hot.event: …; …`."""
    return "; ".join(
        f"{'.'.join(str(part) for part in err['loc']) or '(top level)'}: {err['msg']}"
        for err in error.errors()
    )
