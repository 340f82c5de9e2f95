"""The bare baseline's input: a payload model outside the workflow's module.

Like the product's models, it is imported into the workflow passed through the
sandbox, so a workflow run does not rebuild the class.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class BareInput(BaseModel):
    """What a bare journey does.

    Attributes:
        steps: When each step runs one activity, in seconds from `origin`.
        origin: The instant the offsets count from; the workflow's start if None.
    """

    model_config = ConfigDict(frozen=True)

    steps: tuple[float, ...]
    origin: datetime | None = None
