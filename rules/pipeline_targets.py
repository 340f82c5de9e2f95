"""Seed 002's pipeline targets, in one place: what the report marks met or not met.

| figure (report key)           | target  | seed 002                              |
|-------------------------------|---------|---------------------------------------|
| `lead_to_mql`                 | 20–35%  | 线索→MQL 20%-35%                       |
| `mql_to_sql`                  | 40–60%  | MQL→SQL 40%-60%                       |
| `sql_to_opportunity`          | 40–60%  | SQL→商机 40%-60%                       |
| `median_first_touch`          | ≤ 10 min| 首响时间中位数 ≤10分钟                   |
| `median_days_to_opportunity`  | ≤ 14 days| 线索到商机周期 ≤14天                    |
| `recycled_to_mql`             | ≥ 5%    | 再激活回流至MQL比例 ≥5%                 |
| `duplicate_rate`              | ≤ 2%    | 重复率 ≤2%                             |

A range is met only inside it: a lead→MQL rate above 35% is marked not met too
(seed 002 sets a band, and a rate above it says the MQL rule lets too much
through). The SLA shares (first touch within 10 minutes, qualified within 48
hours) have no target in the seed: the report shows them without a mark.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Unit = Literal["%", "min", "days"]


@dataclass(frozen=True)
class Target:
    """A bound, a floor, or a range a figure should meet.

    Attributes:
        low: The figure must be at least this (inclusive), if set.
        high: The figure must be at most this (inclusive), if set.
        unit: The figure's unit: a percentage, minutes or days.
    """

    low: float | None = None
    high: float | None = None
    unit: Unit = "%"

    def met(self, value: float | None) -> bool | None:
        """Whether `value` meets the target; None when there is no value to judge."""
        if value is None:
            return None
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)

    def __str__(self) -> str:
        """`20–35%`, `≤ 10 min`, `≥ 5%`."""
        unit = self.unit if self.unit == "%" else f" {self.unit}"
        if self.low is not None and self.high is not None:
            return f"{self.low:g}–{self.high:g}{unit}"
        if self.high is not None:
            return f"≤ {self.high:g}{unit}"
        return f"≥ {self.low:g}{unit}"


SEED_002_TARGETS: dict[str, Target] = {
    "lead_to_mql": Target(low=20, high=35),
    "mql_to_sql": Target(low=40, high=60),
    "sql_to_opportunity": Target(low=40, high=60),
    "median_first_touch": Target(high=10, unit="min"),
    "median_days_to_opportunity": Target(high=14, unit="days"),
    "recycled_to_mql": Target(low=5),
    "duplicate_rate": Target(high=2),
}
"""The targets by the report's figure key (see the module's table)."""
