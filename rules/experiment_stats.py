"""The statistics an experiment report rests on (issue 18): pure functions, no I/O.

- `wilson_interval`: a conversion rate's confidence interval (Wilson score), right
  at 0% and 100% and for small samples, where the textbook ± interval is not;
- `difference_interval`: an arm's rate minus control's, with Newcombe's hybrid
  score interval (built from the two Wilson intervals);
- `two_proportion_test`: the pooled two-proportion z-test of "no difference";
- `sample_ratio_mismatch`: Pearson's chi-square test of the exposures per arm
  against the split's weights (a broken split shows as a tiny p-value);
- `minimum_sample_size`: contacts per arm to detect a minimum effect over a
  baseline rate with the given power (normal approximation, two-sided).

Each is checked against `statsmodels` / `scipy` outputs for the same inputs in
`tests/test_experiment_stats.py`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

_STANDARD_NORMAL = NormalDist()
_GAMMA_EPSILON = 1e-15
_GAMMA_MAX_ITERATIONS = 10_000


@dataclass(frozen=True)
class Interval:
    """A confidence interval.

    Attributes:
        low: Its lower bound.
        high: Its upper bound.
    """

    low: float
    high: float


@dataclass(frozen=True)
class TestResult:
    """A test statistic and its p-value.

    Attributes:
        statistic: z for the two-proportion test, chi-square for the sample ratio.
        p_value: The probability of a statistic at least this extreme under the null.
    """

    statistic: float
    p_value: float


def _z(confidence: float) -> float:
    """The two-sided standard normal quantile for `confidence` (0.95 → 1.96)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, not {confidence}")
    return _STANDARD_NORMAL.inv_cdf(1 - (1 - confidence) / 2)


def _check_counts(successes: int, trials: int) -> None:
    if trials <= 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 ≤ successes ≤ trials and trials > 0, not {successes}/{trials}")


def wilson_interval(successes: int, trials: int, *, confidence: float = 0.95) -> Interval:
    """The Wilson score interval of the rate `successes / trials`.

    Raises:
        ValueError: `trials` is not positive, or `successes` is not in `[0, trials]`.
    """
    _check_counts(successes, trials)
    z = _z(confidence)
    rate = successes / trials
    denominator = 1 + z * z / trials
    centre = (rate + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(rate * (1 - rate) / trials + z * z / (4 * trials * trials)) / denominator
    return Interval(max(0.0, centre - half), min(1.0, centre + half))


def difference_interval(
    successes: int,
    trials: int,
    control_successes: int,
    control_trials: int,
    *,
    confidence: float = 0.95,
) -> Interval:
    """Newcombe's hybrid score interval of `successes / trials − control's rate`."""
    rate, control = successes / trials, control_successes / control_trials
    arm = wilson_interval(successes, trials, confidence=confidence)
    base = wilson_interval(control_successes, control_trials, confidence=confidence)
    difference = rate - control
    return Interval(
        difference - math.hypot(rate - arm.low, base.high - control),
        difference + math.hypot(arm.high - rate, control - base.low),
    )


def two_proportion_test(
    successes: int, trials: int, control_successes: int, control_trials: int
) -> TestResult:
    """The pooled two-sided z-test that the arm's rate equals control's.

    A pooled rate of 0 or 1 (no difference can show) gives z = 0 and p = 1.
    """
    _check_counts(successes, trials)
    _check_counts(control_successes, control_trials)
    pooled = (successes + control_successes) / (trials + control_trials)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / trials + 1 / control_trials))
    if spread == 0:
        return TestResult(0.0, 1.0)
    z = (successes / trials - control_successes / control_trials) / spread
    return TestResult(z, 2 * (1 - _STANDARD_NORMAL.cdf(abs(z))))


def sample_ratio_mismatch(observed: Sequence[int], weights: Sequence[float]) -> TestResult:
    """Pearson's chi-square test of the exposures per arm against the split's weights.

    Args:
        observed: Exposures per arm.
        weights: The arms' weights or shares, in the same order (positive numbers).

    Raises:
        ValueError: fewer than two arms, lengths differ, a weight is not positive, or
            nobody was exposed.
    """
    if len(observed) != len(weights) or len(observed) < 2:
        raise ValueError("need the exposures and weights of two or more arms")
    if any(weight <= 0 for weight in weights) or any(count < 0 for count in observed):
        raise ValueError("weights must be positive and exposures not negative")
    total = sum(observed)
    if total == 0:
        raise ValueError("nobody was exposed yet")
    expected = [total * weight / sum(weights) for weight in weights]
    statistic = sum((o - e) ** 2 / e for o, e in zip(observed, expected, strict=True))
    return TestResult(statistic, chi_square_p_value(statistic, len(observed) - 1))


def minimum_sample_size(
    baseline: float,
    minimum_effect: float,
    *,
    power: float = 0.8,
    confidence: float = 0.95,
) -> int:
    """Contacts per arm to detect `baseline + minimum_effect` against `baseline`.

    The two-sided normal approximation with the null's pooled spread and the
    alternative's own (as `statsmodels`' `samplesize_proportions_2indep_onetail`),
    rounded up.

    Args:
        baseline: Control's expected rate, e.g. 0.10.
        minimum_effect: The smallest absolute difference worth finding, e.g. 0.02.
        power: The chance of finding it when it is there.
        confidence: 1 − the false-positive rate.

    Raises:
        ValueError: a rate outside (0, 1), a zero effect, or power outside (0, 1).
    """
    treated = baseline + minimum_effect
    if not (0 < baseline < 1 and 0 < treated < 1) or minimum_effect == 0:
        raise ValueError(
            f"baseline {baseline} and baseline + effect {treated} must be in (0, 1), "
            "and the effect not 0"
        )
    if not 0 < power < 1:
        raise ValueError(f"power must be between 0 and 1, not {power}")
    pooled = (baseline + treated) / 2
    null_spread = math.sqrt(2 * pooled * (1 - pooled))
    alternative_spread = math.sqrt(baseline * (1 - baseline) + treated * (1 - treated))
    needed = (
        _z(confidence) * null_spread + _STANDARD_NORMAL.inv_cdf(power) * alternative_spread
    ) / minimum_effect
    return math.ceil(needed * needed)


def chi_square_p_value(statistic: float, degrees: int) -> float:
    """P(X ≥ statistic) for a chi-square variable with `degrees` degrees of freedom."""
    if degrees < 1:
        raise ValueError(f"degrees of freedom must be at least 1, not {degrees}")
    return _upper_regularized_gamma(degrees / 2, statistic / 2)


def _upper_regularized_gamma(a: float, x: float) -> float:
    """Q(a, x) = Γ(a, x) / Γ(a): a series below a + 1, Lentz's continued fraction above."""
    if x <= 0:
        return 1.0
    log_prefix = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1:
        term = total = 1 / a
        denominator = a
        for _ in range(_GAMMA_MAX_ITERATIONS):
            denominator += 1
            term *= x / denominator
            total += term
            if abs(term) < abs(total) * _GAMMA_EPSILON:
                break
        return max(0.0, 1 - total * math.exp(log_prefix))
    tiny = 1e-300
    b = x + 1 - a
    c = 1 / tiny
    d = 1 / b
    fraction = d
    for step in range(1, _GAMMA_MAX_ITERATIONS):
        an = -step * (step - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        fraction *= delta
        if abs(delta - 1) < _GAMMA_EPSILON:
            break
    return math.exp(log_prefix) * fraction
