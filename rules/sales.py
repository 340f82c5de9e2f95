"""Sales hand-off (seed 002): who gets a lead (reps, territories, round robin) and the SLAs.

The configuration lives in a TOML file operators edit (`sales.toml` at the
repository root is the default): the reps and their managers, territory rules
(a contact attribute → a group of reps), the round-robin pool for everyone
else, the customer-success queue (account alerts about customers without an
owner), and the SLAs (first touch within 10 minutes, qualification within 48
hours, a reminder at half of each).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from models.handoff import SlaPolicy
from models.ids import PersonId
from models.toml_files import load_toml


class SalesPerson(BaseModel):
    """Someone on the sales team who receives notifications.

    Attributes:
        id: Stable id, stored as the contact's owner.
        name: Display name.
        mention: How a chat notification addresses them, e.g. `<@U024BE7LH>`
            (Slack); the name is used when absent.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: PersonId
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    mention: Annotated[str, StringConstraints(max_length=100)] | None = None

    @property
    def addressed(self) -> str:
        """The mention if there is one, else the name."""
        return self.mention or self.name


class Rep(SalesPerson):
    """A sales rep (SDR) who owns leads.

    Attributes:
        manager: Id of the manager SLA breaches escalate to.
    """

    manager: PersonId


class Territory(BaseModel):
    """Leads whose contact attribute `field` equals `equals` go to `reps` (in turn).

    Attributes:
        field: Contact attribute, e.g. `region` or `industry`.
        equals: Value it must have, e.g. `EMEA` (exact match).
        reps: Ids of the reps covering the territory.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    field: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    equals: str
    reps: list[PersonId] = Field(min_length=1)


class SalesConfig(BaseModel):
    """The whole sales hand-off configuration.

    Attributes:
        sla: The SLAs.
        reps: Every rep.
        managers: Every manager (escalations go to a rep's manager).
        territories: Checked in order; the first that matches the contact
            picks the reps who may own it.
        round_robin: Reps who share the leads no territory matches (default:
            every rep).
        customer_success: The customer-success queue: account alerts about a
            customer without an owner go there (a stalled onboarding).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    sla: SlaPolicy = Field(default_factory=SlaPolicy)
    reps: list[Rep] = Field(min_length=1)
    managers: list[SalesPerson] = Field(min_length=1)
    territories: list[Territory] = Field(default_factory=list)
    round_robin: list[PersonId] = Field(default_factory=list)
    customer_success: SalesPerson = SalesPerson(id="cs-queue", name="Customer success")

    @model_validator(mode="after")
    def _references_exist(self) -> Self:
        people = [person.id for person in (*self.reps, *self.managers, self.customer_success)]
        if len(set(people)) != len(people):
            raise ValueError("reps, managers and customer_success: ids must be unique")
        reps = {rep.id for rep in self.reps}
        managers = {manager.id for manager in self.managers}
        for rep in self.reps:
            if rep.manager not in managers:
                raise ValueError(f"reps: {rep.id!r} has manager {rep.manager!r}, not a manager")
        for territory in self.territories:
            unknown = sorted(set(territory.reps) - reps)
            if unknown:
                raise ValueError(
                    f"territories: {territory.field}={territory.equals!r} names unknown reps "
                    f"{unknown}"
                )
        unknown = sorted(set(self.round_robin) - reps)
        if unknown:
            raise ValueError(f"round_robin: unknown reps {unknown}")
        return self

    @classmethod
    def load(cls, path: str | Path) -> SalesConfig:
        """Read the configuration from a TOML file.

        Raises:
            OSError: The file cannot be read.
            ValueError: Not valid TOML or not a valid configuration; the
                message names the file and each problem.
        """
        return load_toml(cls, path, "sales configuration")

    def rep(self, rep_id: str) -> Rep | None:
        """The rep with this id, if configured."""
        return next((rep for rep in self.reps if rep.id == rep_id), None)

    def manager_of(self, rep: Rep) -> SalesPerson:
        """The rep's manager (validated to exist)."""
        return next(manager for manager in self.managers if manager.id == rep.manager)

    def candidates(self, attributes: Mapping[str, str]) -> list[Rep]:
        """Reps who may own a contact with these attributes, in configured order.

        The first territory whose field matches decides; otherwise the
        round-robin pool (every rep when the pool is not configured).
        """
        for territory in self.territories:
            if attributes.get(territory.field) == territory.equals:
                return [rep for rep_id in territory.reps if (rep := self.rep(rep_id))]
        pool = self.round_robin or [rep.id for rep in self.reps]
        return [rep for rep_id in pool if (rep := self.rep(rep_id))]
