"""What a merge tells the contact workflows: the survivor absorbs, the loser ends."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from models.ids import ContactId
from models.lead_score import ScoredAction

MERGED_REASON = "merged"
"""Exit reason of the loser's journeys."""


class AbsorbRequest(BaseModel):
    """Signal `absorb` to the survivor's contact workflow: the loser's scored actions and tags.

    They count towards the survivor's score from then on; no journey is triggered.

    Attributes:
        loser: The id merged into the survivor (a second request for it changes nothing).
        actions: The scored actions of the events moved to the survivor.
        tags: The loser's tags the workflow manages (`act_…`, `src_…`, `int_…`).
    """

    model_config = ConfigDict(frozen=True)

    loser: ContactId
    actions: list[ScoredAction] = Field(default_factory=list)
    tags: list[Annotated[str, StringConstraints(max_length=100)]] = Field(
        default_factory=list, max_length=500
    )


class MergeNotice(BaseModel):
    """Signal `merged_into` to the loser's contact workflow: end its journeys and end.

    Attributes:
        survivor: The contact it was merged into.
    """

    model_config = ConfigDict(frozen=True)

    survivor: ContactId
