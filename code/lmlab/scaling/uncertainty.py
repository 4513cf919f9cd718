"""Propagating ranges instead of points: Monte Carlo in log space, for Fermi estimates.

A Fermi estimate multiplies factors, so its uncertainty is best described on a log scale: each input gets a
range ``[low, high]`` instead of a point, the inputs are sampled, the product is computed sample by sample, and
the answer is summarised by its median and a central interval (:func:`interval`).

Two samplers, both of which take plain floats or :mod:`lmlab.units` quantities (the samples keep the unit of
``low``):

* :func:`log_normal`: ``log x`` normal, with ``[low, high]`` as its central ``coverage`` interval (default 90 %),
  so the median is ``sqrt(low * high)``. For inputs whose range is a judgement ("probably between 0.2 and 0.5").
* :func:`log_uniform`: ``log x`` uniform on ``[log low, log high]``: every factor of the range equally likely and
  nothing outside it. For inputs with hard bounds.

The closed forms of their quantiles (:func:`log_normal_quantile`, :func:`log_uniform_quantile`) are what the
tests compare the samplers against. Always pass a seeded :class:`numpy.random.Generator`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

__all__ = [
    "Interval",
    "log_normal",
    "log_uniform",
    "log_normal_quantile",
    "log_uniform_quantile",
    "interval",
    "percentile_of",
]


def _is_quantity(x: Any) -> bool:
    return hasattr(x, "magnitude") and hasattr(x, "units") and hasattr(x, "to")


def _bounds(low: Any, high: Any) -> tuple[float, float, Any]:
    """Magnitudes of ``low`` and ``high`` (``high`` converted to ``low``'s unit) and that unit (or None)."""
    if _is_quantity(low) != _is_quantity(high):
        raise TypeError("low and high must both be quantities or both be plain numbers")
    unit = None
    if _is_quantity(low):
        unit = low.units
        lo, hi = float(low.magnitude), float(high.to(unit).magnitude)
    else:
        for name, v in (("low", low), ("high", high)):
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
                raise TypeError(f"{name} must be a number or a quantity, got {type(v).__name__}")
        lo, hi = float(low), float(high)
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo < hi):
        raise ValueError(f"need 0 < low < high (finite), got low={low}, high={high}")
    return lo, hi, unit


def _coverage(coverage: float) -> float:
    if isinstance(coverage, bool) or not isinstance(coverage, (int, float)) or not 0 < coverage < 1:
        raise ValueError(f"coverage must be a float in (0, 1), got {coverage!r}")
    return float(coverage)


def _reals(name: str, values: Any) -> np.ndarray:
    """``values`` (a number, sequence or array of numbers) as a float array, else a TypeError naming it."""
    if isinstance(values, (str, bytes)) or values is None:
        raise TypeError(f"{name} must be a number or an array of numbers, got {type(values).__name__}")
    try:
        return np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number or an array of numbers, got {type(values).__name__}") from None


def _check_q(q: Any) -> np.ndarray:
    arr = _reals("q", q)
    if not np.all((arr > 0) & (arr < 1)):
        raise ValueError(f"q must lie in (0, 1), got {q!r}")
    return arr


def _wrap(values: np.ndarray, unit: Any) -> Any:
    if unit is None:
        return values
    from lmlab.presentation.units import Q_

    return Q_(values, unit)


def _check_rng_size(rng: Any, size: Any) -> None:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be an int >= 1, got {size!r}")


def log_normal_quantile(low: Any, high: Any, q: Any, coverage: float = 0.9) -> Any:
    """The ``q``-quantile of the log-normal whose central ``coverage`` interval is ``[low, high]``.

    ``exp(mu + z_q sigma)`` with ``mu = (log low + log high) / 2`` and ``sigma = (log high - log low) / (2 z)``,
    ``z`` the standard normal's ``(1 + coverage) / 2`` quantile.
    """
    lo, hi, unit = _bounds(low, high)
    c = _coverage(coverage)
    qs = _check_q(q)
    z = NormalDist().inv_cdf((1 + c) / 2)
    mu, sigma = (math.log(lo) + math.log(hi)) / 2, (math.log(hi) - math.log(lo)) / (2 * z)
    zq = np.vectorize(NormalDist().inv_cdf)(qs)
    return _wrap(np.exp(mu + zq * sigma), unit)


def log_uniform_quantile(low: Any, high: Any, q: Any) -> Any:
    """The ``q``-quantile of the log-uniform distribution on ``[low, high]``: ``low * (high / low)**q``."""
    lo, hi, unit = _bounds(low, high)
    qs = _check_q(q)
    return _wrap(lo * (hi / lo) ** qs, unit)


def log_normal(low: Any, high: Any, size: int, rng: np.random.Generator, coverage: float = 0.9) -> Any:
    """``size`` samples of a log-normal whose central ``coverage`` interval is ``[low, high]`` (median
    ``sqrt(low * high)``).

    Args:
        low, high: the interval's ends, ``0 < low < high``; floats or quantities (samples take ``low``'s unit).
        size: number of samples.
        rng: a seeded generator.
        coverage: probability inside ``[low, high]`` (default 0.9: ``low`` and ``high`` are the 5th and 95th
            percentiles).
    """
    lo, hi, unit = _bounds(low, high)
    c = _coverage(coverage)
    _check_rng_size(rng, size)
    z = NormalDist().inv_cdf((1 + c) / 2)
    mu, sigma = (math.log(lo) + math.log(hi)) / 2, (math.log(hi) - math.log(lo)) / (2 * z)
    return _wrap(np.exp(rng.normal(mu, sigma, size)), unit)


def log_uniform(low: Any, high: Any, size: int, rng: np.random.Generator) -> Any:
    """``size`` samples whose logarithm is uniform on ``[log low, log high]`` (floats or quantities)."""
    lo, hi, unit = _bounds(low, high)
    _check_rng_size(rng, size)
    return _wrap(np.exp(rng.uniform(math.log(lo), math.log(hi), size)), unit)


@dataclass(frozen=True)
class Interval:
    """The median and the central ``coverage`` interval ``[low, high]`` of a set of samples."""

    median: Any
    low: Any
    high: Any
    coverage: float

    def contains(self, value: Any) -> bool:
        """``low <= value <= high`` (quantities are compared in the interval's unit)."""
        return bool(self.low <= value <= self.high)

    @property
    def spread(self) -> float:
        """``high / low``: how many-fold the interval spans (a plain float)."""
        ratio = self.high / self.low
        return float(ratio.to("").magnitude if _is_quantity(ratio) else ratio)


def interval(samples: Any, coverage: float = 0.9) -> Interval:
    """Median and central ``coverage`` interval of ``samples`` (a 1-D array or array quantity).

    The interval's ends are the ``(1 - coverage) / 2`` and ``(1 + coverage) / 2`` empirical quantiles.
    """
    c = _coverage(coverage)
    unit = samples.units if _is_quantity(samples) else None
    x = _reals("samples", samples.magnitude if unit is not None else samples)
    if x.ndim != 1 or x.size < 2:
        raise ValueError(f"samples must be a 1-D array of at least 2 values, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("samples must be finite")
    lo, med, hi = np.quantile(x, [(1 - c) / 2, 0.5, (1 + c) / 2])

    def wrap(v: float) -> Any:
        return float(v) if unit is None else _wrap(np.float64(v), unit)

    return Interval(median=wrap(med), low=wrap(lo), high=wrap(hi), coverage=c)


def percentile_of(samples: Any, value: Any) -> float:
    """The percentage of ``samples`` at or below ``value`` (where a point estimate sits in the distribution)."""
    if _is_quantity(samples) != _is_quantity(value):
        raise TypeError("samples and value must both be quantities or both be plain numbers")
    if _is_quantity(samples):
        x = _reals("samples", samples.magnitude)
        v = _reals("value", value.to(samples.units).magnitude)
    else:
        x, v = _reals("samples", samples), _reals("value", value)
    if x.ndim != 1 or x.size < 1:
        raise ValueError(f"samples must be a non-empty 1-D array, got shape {x.shape}")
    if v.ndim != 0 or not math.isfinite(float(v)):
        raise ValueError(f"value must be one finite number, got {value!r}")
    v = float(v)
    return float(100.0 * np.mean(x <= v))
