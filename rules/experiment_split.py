"""Which arm of an experiment a contact is in (issue 18): deterministic, replay-safe.

A contact's arm depends only on its id and the experiment's name: the SHA-256 of
`{experiment}/{contact_id}` picks a point in [0, 1), the holdout share comes first,
then each arm's share of the rest in its weight's proportion, arms in the order
given. The same contact gets the same arm on every replay and every re-entry, and
two experiments split independently of each other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from models.experiments import HOLDOUT, check_weights

_SCALE = 2**64


def split_point(experiment: str, contact_id: str) -> float:
    """The contact's point in [0, 1) for `experiment` (uniform across contacts)."""
    digest = hashlib.sha256(f"{experiment}/{contact_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def assign_arm(
    experiment: str,
    contact_id: str,
    weights: Mapping[str, int],
    *,
    holdout_percent: float = 0,
) -> str:
    """The contact's arm: `HOLDOUT`, or one of `weights`' names.

    Args:
        experiment: The experiment's name, e.g. `welcome-subject`.
        contact_id: The contact.
        weights: Arm name → weight (positive integers), e.g. `{"a": 50, "b": 50}`;
            the first arm is control.
        holdout_percent: The share held out, in percent of every contact (0–100).

    Raises:
        ValueError: fewer than two arms, a weight that is not a positive integer, an
            arm named `holdout` (`models.experiments.check_weights`), or a holdout share
            outside [0, 100).
    """
    check_weights(experiment, weights)
    if not 0 <= holdout_percent < 100:
        raise ValueError(
            f"experiment {experiment!r}: holdout {holdout_percent}% is not in [0, 100)"
        )
    point = split_point(experiment, contact_id)
    holdout = holdout_percent / 100
    if point < holdout:
        return HOLDOUT
    position = (point - holdout) / (1 - holdout) * sum(weights.values())
    passed = 0
    for arm, weight in weights.items():
        passed += weight
        if position < passed:
            return arm
    return list(weights)[-1]  # a point rounded up to the very top
