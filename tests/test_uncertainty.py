"""lmlab.uncertainty: the log-space samplers against their closed forms, and the interval summary."""

from __future__ import annotations

import math

import numpy as np
import pytest
from lmlab import uncertainty as unc
from lmlab.presentation.units import Q_

N_SAMPLES = 200_000
QS = np.array([0.05, 0.25, 0.5, 0.75, 0.95])


def _empirical(samples: np.ndarray) -> np.ndarray:
    return np.quantile(samples, QS)


def test_log_normal_quantiles_match_the_closed_form() -> None:
    """[low, high] is the central 90 % interval and sqrt(low high) the median, to sampling error (~1 %)."""
    x = unc.log_normal(0.2, 0.5, N_SAMPLES, np.random.default_rng(0))
    expected = unc.log_normal_quantile(0.2, 0.5, QS)
    assert expected[0] == pytest.approx(0.2) and expected[-1] == pytest.approx(0.5)
    assert expected[2] == pytest.approx(math.sqrt(0.2 * 0.5))
    assert np.allclose(_empirical(x), expected, rtol=0.01)
    assert np.mean((x >= 0.2) & (x <= 0.5)) == pytest.approx(0.9, abs=0.005)


def test_log_normal_coverage_changes_the_spread_not_the_median() -> None:
    wide = unc.log_normal_quantile(1.0, 4.0, [0.5, 0.95], coverage=0.5)
    narrow = unc.log_normal_quantile(1.0, 4.0, [0.5, 0.95], coverage=0.99)
    assert wide[0] == pytest.approx(2.0) and narrow[0] == pytest.approx(2.0)
    assert wide[1] > 4.0 > narrow[1]


def test_log_uniform_quantiles_match_the_closed_form() -> None:
    x = unc.log_uniform(1.0, 3.0, N_SAMPLES, np.random.default_rng(1))
    assert x.min() >= 1.0 and x.max() <= 3.0
    expected = unc.log_uniform_quantile(1.0, 3.0, QS)
    assert expected[2] == pytest.approx(math.sqrt(3.0))
    assert np.allclose(_empirical(x), expected, rtol=0.01)


def test_product_of_log_normals_has_the_product_of_medians() -> None:
    """Multiplying inputs adds their logs: the median of a product of independent log-normals is the product of
    their medians, and its log-variance the sum of theirs."""
    rng = np.random.default_rng(2)
    a = unc.log_normal(1.0, 100.0, N_SAMPLES, rng)
    b = unc.log_normal(0.5, 2.0, N_SAMPLES, rng)
    summary = unc.interval(a * b)
    assert summary.median == pytest.approx(10.0 * 1.0, rel=0.02)
    z = 1.6448536269514722
    sigma = math.hypot(math.log(100.0) / (2 * z), math.log(4.0) / (2 * z))
    assert summary.high / summary.median == pytest.approx(math.exp(z * sigma), rel=0.02)


def test_quantities_keep_their_unit() -> None:
    x = unc.log_normal(Q_(1.5, "USD/hour"), Q_(96, "USD/day"), 1000, np.random.default_rng(3))
    assert str(x.units) == "USD / hour"
    summary = unc.interval(x)
    assert summary.median.to("USD/hour").magnitude == pytest.approx(np.median(x.magnitude))
    assert summary.contains(summary.median) and not summary.contains(Q_(1, "USD/s"))
    assert summary.spread > 1
    assert unc.percentile_of(x, summary.median) == pytest.approx(50, abs=0.2)


def test_interval_and_percentile_on_known_data() -> None:
    x = np.arange(1, 102, dtype=float)  # 1 .. 101
    s = unc.interval(x, coverage=0.9)
    assert (s.low, s.median, s.high) == pytest.approx((6.0, 51.0, 96.0))
    assert unc.percentile_of(x, 10.0) == pytest.approx(100 * 10 / 101)


def test_seeded_draws_repeat() -> None:
    a = unc.log_uniform(1.0, 2.0, 10, np.random.default_rng(7))
    b = unc.log_uniform(1.0, 2.0, 10, np.random.default_rng(7))
    assert np.array_equal(a, b)


def test_bad_arguments_raise() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="low < high"):
        unc.log_normal(2.0, 1.0, 10, rng)
    with pytest.raises(ValueError, match="low < high"):
        unc.log_uniform(0.0, 1.0, 10, rng)
    with pytest.raises(ValueError, match="coverage"):
        unc.log_normal(1.0, 2.0, 10, rng, coverage=1.0)
    with pytest.raises(TypeError, match="rng"):
        unc.log_uniform(1.0, 2.0, 10, 42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="size"):
        unc.log_uniform(1.0, 2.0, 0, rng)
    with pytest.raises(TypeError, match="both"):
        unc.log_uniform(Q_(1, "s"), 2.0, 10, rng)
    with pytest.raises(ValueError, match="q"):
        unc.log_uniform_quantile(1.0, 2.0, [0.0, 0.5])
    with pytest.raises(ValueError, match="1-D"):
        unc.interval(np.ones((3, 3)))
    with pytest.raises(TypeError, match="q"):
        unc.log_normal_quantile(1.0, 2.0, "half")
    with pytest.raises(TypeError, match="samples"):
        unc.interval("1 2 3")
    with pytest.raises(ValueError, match="value"):
        unc.percentile_of([1.0, 2.0], math.nan)
    with pytest.raises(TypeError, match="both"):
        unc.percentile_of(Q_([1.0, 2.0], "s"), 1.5)
