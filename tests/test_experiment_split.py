"""Deterministic arm assignment: stable, in proportion to the weights, independent."""

from __future__ import annotations

from collections import Counter

import pytest

from models.experiments import HOLDOUT
from rules.experiment_split import assign_arm, split_point
from rules.experiment_stats import sample_ratio_mismatch

CONTACTS = [f"contact-{number}" for number in range(20_000)]


def arms_of(experiment: str, weights: dict[str, int], holdout: float = 0) -> Counter[str]:
    return Counter(
        assign_arm(experiment, contact, weights, holdout_percent=holdout) for contact in CONTACTS
    )


def test_a_contact_keeps_its_arm_and_the_point_is_the_hash_of_name_and_id() -> None:
    weights = {"a": 50, "b": 50}
    first = [assign_arm("welcome-subject", contact, weights) for contact in CONTACTS[:500]]
    again = [assign_arm("welcome-subject", contact, weights) for contact in CONTACTS[:500]]
    assert first == again
    # sha256("welcome-subject/ada")[:8] as a fraction of 2**64, computed once
    assert split_point("welcome-subject", "ada") == int("98189260b96a4ddc", 16) / 2**64


@pytest.mark.parametrize(
    ("weights", "holdout"),
    [({"a": 50, "b": 50}, 0), ({"control": 1, "b": 3}, 0), ({"a": 45, "b": 45}, 10)],
)
def test_arms_come_in_proportion_to_the_weights_with_the_holdout_first(
    weights: dict[str, int], holdout: float
) -> None:
    counted = arms_of("split-test", weights, holdout)
    arms = [*weights, HOLDOUT] if holdout else [*weights]
    shares = [weight * (100 - holdout) for weight in weights.values()]
    if holdout:
        shares.append(holdout * sum(weights.values()))
    assert set(counted) == set(arms)
    # a correct split passes the sample-ratio test it will be judged by
    assert (
        sample_ratio_mismatch([counted[arm] for arm in arms], [round(s) for s in shares]).p_value
        > 0.001
    )


def test_two_experiments_split_independently() -> None:
    first = [assign_arm("one", contact, {"a": 1, "b": 1}) for contact in CONTACTS]
    second = [assign_arm("two", contact, {"a": 1, "b": 1}) for contact in CONTACTS]
    pairs = Counter(zip(first, second, strict=True))
    assert sample_ratio_mismatch([pairs[p] for p in sorted(pairs)], [1, 1, 1, 1]).p_value > 0.001


@pytest.mark.parametrize(
    ("weights", "holdout", "message"),
    [
        ({}, 0, "needs at least two arms"),
        ({"a": 0, "b": 1}, 0, "weights are positive integers"),
        ({"a": 1.5, "b": 1}, 0, "weights are positive integers"),
        ({"holdout": 1, "b": 1}, 0, "not a name for an arm"),
        ({"a": 1, "b": 1}, 100, r"not in \[0, 100\)"),
    ],
)
def test_bad_splits_are_refused_with_what_is_wrong(
    weights: dict[str, int], holdout: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        assign_arm("bad", "ada", weights, holdout_percent=holdout)
