"""The experiment statistics against published reference values.

Every expected number was computed once with statsmodels 0.15.0 / scipy for the
same inputs and written here:

- `proportion_confint(count, nobs, alpha=0.05, method="wilson")`;
- `confint_proportions_2indep(c1, n1, c2, n2, method="newcomb", compare="diff")`;
- `proportions_ztest([c1, c2], [n1, n2])`;
- `scipy.stats.chisquare(observed, f_exp=expected)` and `scipy.stats.chi2.sf(x, df)`;
- `samplesize_proportions_2indep_onetail(diff, prop2, power=0.8, ratio=1,
  alpha=0.05, alternative="two-sided")`, rounded up.
"""

from __future__ import annotations

import pytest

from rules.experiment_stats import (
    chi_square_p_value,
    difference_interval,
    minimum_sample_size,
    sample_ratio_mismatch,
    two_proportion_test,
    wilson_interval,
)

CLOSE = 1e-12


@pytest.mark.parametrize(
    ("successes", "trials", "low", "high"),
    [
        (12, 100, 0.06999406437019488, 0.19812099426711421),
        (0, 50, 0.0, 0.07134759913335874),
        (50, 50, 0.9286524008666412, 1.0),
        (1, 3, 0.06149194472039626, 0.7923403991979523),
        (37, 412, 0.06585591872396812, 0.12133431247964654),
    ],
)
def test_wilson_interval_matches_statsmodels(
    successes: int, trials: int, low: float, high: float
) -> None:
    found = wilson_interval(successes, trials)
    assert found.low == pytest.approx(low, abs=CLOSE)
    assert found.high == pytest.approx(high, abs=CLOSE)


@pytest.mark.parametrize(
    ("arm", "control", "low", "high"),
    [
        ((30, 200), (20, 200), -0.015408426957863625, 0.11573256427136418),
        ((5, 40), (9, 41), -0.2579878361504404, 0.07408596635570616),
        ((120, 1000), (100, 1000), -0.007492167515211062, 0.047550667456339055),
    ],
)
def test_difference_interval_is_newcombes_as_statsmodels(
    arm: tuple[int, int], control: tuple[int, int], low: float, high: float
) -> None:
    found = difference_interval(*arm, *control)
    assert found.low == pytest.approx(low, abs=CLOSE)
    assert found.high == pytest.approx(high, abs=CLOSE)


@pytest.mark.parametrize(
    ("arm", "control", "z", "p"),
    [
        ((30, 200), (20, 200), 1.5118578920369083, 0.13057001811573637),
        ((5, 40), (9, 41), -1.1247366949656423, 0.26070062717442566),
        ((120, 1000), (100, 1000), 1.4293008498232314, 0.1529177818639462),
    ],
)
def test_two_proportion_test_matches_statsmodels(
    arm: tuple[int, int], control: tuple[int, int], z: float, p: float
) -> None:
    found = two_proportion_test(*arm, *control)
    assert found.statistic == pytest.approx(z, abs=CLOSE)
    assert found.p_value == pytest.approx(p, abs=CLOSE)


def test_no_conversions_anywhere_is_no_evidence() -> None:
    assert two_proportion_test(0, 100, 0, 100) == two_proportion_test(100, 100, 50, 50)
    assert two_proportion_test(0, 100, 0, 100).p_value == 1.0


@pytest.mark.parametrize(
    ("observed", "weights", "statistic", "p"),
    [
        ([5100, 4900], [1, 1], 4.0, 0.04550026389635857),
        ([520, 480], [50, 50], 1.6, 0.20590321073206466),
        ([480, 270, 250], [2, 1, 1], 2.4, 0.3011942119122021),
        ([130, 90, 80], [50, 25, 25], 6.0, 0.04978706836786397),
        ([262, 238, 500], [1, 1, 2], 1.152, 0.5621424451968224),
    ],
)
def test_sample_ratio_mismatch_matches_scipys_chisquare(
    observed: list[int], weights: list[int], statistic: float, p: float
) -> None:
    found = sample_ratio_mismatch(observed, weights)
    assert found.statistic == pytest.approx(statistic, abs=1e-9)
    assert found.p_value == pytest.approx(p, abs=1e-12)


@pytest.mark.parametrize(
    ("statistic", "degrees", "p"),
    [  # scipy.stats.chi2.sf: both branches of the incomplete gamma function
        (1.0, 3, 0.8012519569012009),
        (4.0, 1, 0.04550026389635857),
        (30.0, 1, 4.3204630578274955e-08),
        (2.4, 2, 0.3011942119122021),
        (7.815, 3, 0.049993902974883875),
        (0.1, 4, 0.9987908957257497),
    ],
)
def test_chi_square_p_value_matches_scipy(statistic: float, degrees: int, p: float) -> None:
    assert chi_square_p_value(statistic, degrees) == pytest.approx(p, rel=1e-9)


@pytest.mark.parametrize(
    ("baseline", "effect", "per_arm"),
    [(0.10, 0.02, 3841), (0.20, 0.05, 1094)],  # statsmodels: 3840.847…, 1093.739…
)
def test_minimum_sample_size_matches_statsmodels(
    baseline: float, effect: float, per_arm: int
) -> None:
    assert minimum_sample_size(baseline, effect) == per_arm


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: wilson_interval(5, 0), "trials > 0"),
        (lambda: wilson_interval(6, 5), "0 ≤ successes ≤ trials"),
        (lambda: wilson_interval(1, 5, confidence=1.0), "confidence"),
        (lambda: sample_ratio_mismatch([10], [1]), "two or more arms"),
        (lambda: sample_ratio_mismatch([10, 10], [1, 0]), "weights must be positive"),
        (lambda: sample_ratio_mismatch([0, 0], [1, 1]), "nobody was exposed"),
        (lambda: minimum_sample_size(0.95, 0.1), "must be in (0, 1)"),
        (lambda: minimum_sample_size(0.1, 0.02, power=1.0), "power"),
        (lambda: chi_square_p_value(3.0, 0), "degrees of freedom"),
    ],
)
def test_bad_inputs_are_refused_with_what_is_wrong(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()  # type: ignore[operator]
