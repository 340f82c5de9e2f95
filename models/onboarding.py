"""Onboarding payloads: the `feature_used` event's properties, the key features, and what
the onboarding journey starts with.

A customer adopts a key feature when a `feature_used` event names it; the
adoption is recorded on the contact as the tag `act_adopted_<feature>`, and a
contact who adopted every key feature is tagged `stage_customer_active`
(seed 000's tag for an active customer).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from models.ids import ContactId

FEATURE_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,47}$"
"""A feature id: lower-case letters, digits, `_` and `-` (it becomes part of a tag)."""
FeatureId = Annotated[str, StringConstraints(pattern=FEATURE_PATTERN)]
"""The id of a product feature, as `feature_used` events name it (e.g. `contact-import`)."""

ADOPTED_TAG_PREFIX = "act_adopted_"
"""Tags of the key features a contact adopted: `act_adopted_<feature>`."""
CUSTOMER_ACTIVE_TAG = "stage_customer_active"
"""Tag of a customer who adopted every key feature (seed 000: "Stage: Active customer")."""


def adopted_tag(feature: str) -> str:
    """The tag recording that the contact adopted `feature`: `act_adopted_<feature>`."""
    return f"{ADOPTED_TAG_PREFIX}{feature}"


class FeatureUsedProperties(BaseModel):
    """The properties of a `feature_used` event (others are kept, and ignored here).

    Attributes:
        feature: The feature the contact used, e.g. `contact-import`.
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    feature: FeatureId


class KeyFeature(BaseModel):
    """A feature a new customer should adopt, in the order onboarding teaches them.

    Attributes:
        id: The feature, as `feature_used` events name it.
        title: What adopting it means, for the plan and the account team
            (e.g. `Import your contacts`).
        template: The education email teaching it (default
            `onboarding/feature-<id>`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: FeatureId
    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=80)]
    template: (
        Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]*/[a-z0-9][a-z0-9_.-]*$")]
        | None
    ) = None

    @property
    def education_template(self) -> str:
        """The template of its education email: `template`, or `onboarding/feature-<id>`."""
        return self.template or f"onboarding/feature-{self.id}"


class OnboardingStart(BaseModel):
    """What an onboarding journey starts with: the configuration and the contact's adoption.

    Attributes:
        features: The key features, in the order they are taught.
        stalled_day: Journey day on which a customer who adopted no key
            feature is flagged to the account team.
        adopted: Key features the contact already uses (tags, or
            `feature_used` events stored before the journey started).
    """

    model_config = ConfigDict(frozen=True)

    features: list[KeyFeature] = Field(min_length=1)
    stalled_day: int = Field(ge=1, le=29)
    adopted: list[FeatureId] = Field(default_factory=list)


class TagRequest(BaseModel):
    """Add tags to a contact in the CRM (tags it has are kept).

    Attributes:
        contact_id: The contact.
        tags: The tags to add, e.g. `act_adopted_contact-import`.
    """

    model_config = ConfigDict(frozen=True)

    contact_id: ContactId
    tags: list[Annotated[str, StringConstraints(pattern=r"^[a-z]+_[a-z0-9_-]{1,60}$")]] = Field(
        min_length=1
    )
