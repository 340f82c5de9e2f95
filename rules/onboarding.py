"""Onboarding: the key features a new customer should adopt, and which one to teach next.

The configuration lives in a TOML file operators edit (`onboarding.toml` at
the repository root is the default): the key features in the order they are
taught (each with its title and education email) and the day a customer who
adopted none is flagged to the account team. Everything else here is pure,
so the onboarding journey can call it in workflow code with the configuration
an activity loaded.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from models.onboarding import (
    ADOPTED_TAG_PREFIX,
    FeatureUsedProperties,
    KeyFeature,
    OnboardingStart,
)
from models.toml_files import load_toml

FEATURE_USED = "feature_used"
"""The event type that reports a feature used (property `feature`)."""


class OnboardingConfig(BaseModel):
    """The onboarding configuration (`onboarding.toml`).

    Attributes:
        stalled_day: Journey day (1–29) on which a customer who adopted no key
            feature yet gets a task and a notification for the account team,
            and an SMS nudge.
        features: The key features, in the order the education emails teach them.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    stalled_day: int = Field(default=10, ge=1, le=29)
    features: list[KeyFeature] = Field(min_length=1, max_length=10)

    @model_validator(mode="after")
    def _unique_features(self) -> Self:
        ids = [feature.id for feature in self.features]
        if len(set(ids)) != len(ids):
            raise ValueError("features: ids must be unique")
        return self

    @classmethod
    def load(cls, path: str | Path) -> OnboardingConfig:
        """Read the configuration from a TOML file.

        Raises:
            OSError: The file cannot be read.
            ValueError: Not valid TOML or not a valid configuration; the
                message names the file and each problem.
        """
        return load_toml(cls, path, "onboarding configuration")

    def education_templates(self) -> list[tuple[str, str]]:
        """Every (template, channel) of the education emails, for the worker's check."""
        return [(feature.education_template, "email") for feature in self.features]

    def start(self, adopted: Iterable[str]) -> OnboardingStart:
        """What a journey starts with, for a contact who adopted `adopted` (key features only)."""
        keys = {feature.id for feature in self.features}
        return OnboardingStart(
            features=list(self.features),
            stalled_day=self.stalled_day,
            adopted=sorted(keys.intersection(adopted)),
        )


def used_feature(event_type: str, properties: Mapping[str, Any]) -> str | None:
    """The feature a `feature_used` event names, or None (another type, or no valid `feature`)."""
    if event_type != FEATURE_USED:
        return None
    try:
        return FeatureUsedProperties.model_validate(properties).feature
    except ValidationError:
        return None


def adopted_in_tags(tags: Iterable[str]) -> set[str]:
    """The features a contact's `act_adopted_<feature>` tags record."""
    return {
        tag.removeprefix(ADOPTED_TAG_PREFIX) for tag in tags if tag.startswith(ADOPTED_TAG_PREFIX)
    }


def next_to_teach(
    features: Iterable[KeyFeature], *, adopted: Collection[str], taught: Collection[str]
) -> KeyFeature | None:
    """The first key feature the contact neither uses nor was taught, in configured order."""
    return next(
        (feature for feature in features if feature.id not in adopted and feature.id not in taught),
        None,
    )
