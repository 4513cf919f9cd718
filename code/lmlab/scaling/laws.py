"""Reading a sweep's runs: the optimal learning rate of each batch size, and the laws fitted to it.

:func:`steps_to_target` reads one run's criterion from its loss curve. A sweep (:func:`lmlab.sweep.sweep`,
:meth:`lmlab.minibatch_sgd.Grid.records`) gives one record per run (a dict with ``optimizer, batch_size, lr, seed,
diverged`` and the criteria, such as ``loss`` or ``avg_loss``). :func:`summarize` averages a criterion over the
seeds of each (optimizer, batch size, learning rate), leaving diverged runs out; :func:`optimal_lrs` finds the
learning rate that minimises it for each batch size; :func:`optima_over_seeds` does so from all seeds and from
disjoint groups of seeds, whose range is the spread a conclusion has to beat. :func:`fit_laws` fits the candidate
laws ``lr_opt(B)`` (linear, square root, power, saturating) and :func:`sgd_linear_contraction` /
:func:`sgd_linear_optimal_lr` give the closed form of SGD on linear regression that the measured optimum is
checked against.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lmlab.core.checks import check_float, check_int

__all__ = [
    "steps_to_target",
    "summarize",
    "optimal_lrs",
    "Optima",
    "optima_over_seeds",
    "LawFit",
    "fit_laws",
    "sgd_linear_contraction",
    "sgd_linear_optimal_lr",
]

# ---------------------------------------------------------------------------------------------------------------
# A run's steps to a target; averages over seeds, and the optimum of each batch size
# ---------------------------------------------------------------------------------------------------------------


def steps_to_target(steps: np.ndarray, curve: np.ndarray, target: float) -> float:
    """The first time ``curve`` (losses measured at ``steps``) reaches ``target``, interpolating ``log(loss)``
    linearly between measurements; ``0.0`` if it starts there, ``inf`` if it never gets there."""
    target = check_float("target", target, 0.0, strict=True)
    c = np.asarray(curve, dtype=float)
    s = np.asarray(steps, dtype=float)
    hit = np.flatnonzero(np.nan_to_num(c, nan=np.inf) <= target)
    if hit.size == 0:
        return math.inf
    k = int(hit[0])
    if k == 0:
        return 0.0
    a, b = math.log(c[k - 1]), math.log(c[k])
    frac = (a - math.log(target)) / (a - b)
    return float(s[k - 1] + frac * (s[k] - s[k - 1]))


def summarize(records: Sequence[dict[str, Any]], key: str = "loss") -> list[dict[str, Any]]:
    """Average ``key`` over seeds for each (optimizer, batch size, learning rate), diverged runs left out.

    Returns:
        One dict per cell: ``optimizer, batch_size, lr, mean, lo, hi`` (the band: smallest and largest value over
        the seeds that did not diverge), ``n`` (runs averaged), ``n_diverged``. ``mean`` is ``nan`` when every
        seed diverged; it is ``inf`` when a seed never reached the target (``key="steps_to_target"``).
    """
    if not records:
        raise ValueError("records must not be empty")
    if key not in records[0]:
        raise ValueError(f"key must be a field of the records ({sorted(records[0])}), got {key!r}")
    cells: dict[tuple[str, int, float], list[dict[str, Any]]] = {}
    for r in records:
        cells.setdefault((r["optimizer"], r["batch_size"], r["lr"]), []).append(r)
    rows = []
    for (opt, B, lr), rs in sorted(cells.items()):
        vals = np.array([r[key] for r in rs if not r["diverged"]], dtype=float)
        n_div = sum(r["diverged"] for r in rs)
        ok = vals.size > 0
        rows.append(
            {
                "optimizer": opt,
                "batch_size": B,
                "lr": lr,
                "mean": float(vals.mean()) if ok else math.nan,
                "lo": float(vals.min()) if ok else math.nan,
                "hi": float(vals.max()) if ok else math.nan,
                "n": int(vals.size),
                "n_diverged": int(n_div),
            }
        )
    return rows


def optimal_lrs(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The learning rate that minimises the seed-averaged value, for each (optimizer, batch size).

    Only learning rates at which no seed diverged and the mean is finite compete. The grid's best point is refined
    by a parabola through it and its two neighbours in ``(log lr, log mean)``, kept within the neighbours.

    Returns:
        One dict per batch size: ``optimizer, batch_size, lr`` (refined), ``lr_grid`` (the grid's best), ``best``
        (its mean), ``bracketed`` (False when the best sits at the edge of the competing learning rates).
    """
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["optimizer"], r["batch_size"]), []).append(r)
    out = []
    for (opt, B), rs in sorted(groups.items()):
        rs = sorted(rs, key=lambda r: r["lr"])
        ok = [r["n_diverged"] == 0 and math.isfinite(r["mean"]) and r["mean"] > 0 for r in rs]
        if not any(ok):
            out.append(
                {
                    "optimizer": opt,
                    "batch_size": B,
                    "lr": math.nan,
                    "lr_grid": math.nan,
                    "best": math.nan,
                    "bracketed": False,
                }
            )
            continue
        k = min((i for i in range(len(rs)) if ok[i]), key=lambda i: rs[i]["mean"])
        lr = rs[k]["lr"]
        bracketed = 0 < k < len(rs) - 1 and ok[k - 1] and ok[k + 1]
        if bracketed:
            x = np.log([rs[k - 1]["lr"], rs[k]["lr"], rs[k + 1]["lr"]])
            y = np.log([rs[k - 1]["mean"], rs[k]["mean"], rs[k + 1]["mean"]])
            a, b, _ = np.polyfit(x, y, 2)
            if a > 0:
                lr = float(np.exp(np.clip(-b / (2 * a), x[0], x[2])))
        out.append(
            {
                "optimizer": opt,
                "batch_size": B,
                "lr": lr,
                "lr_grid": rs[k]["lr"],
                "best": rs[k]["mean"],
                "bracketed": bool(bracketed),
            }
        )
    return out


@dataclass
class Optima:
    """Optimal learning rates of one optimizer, from all seeds and from disjoint groups of seeds.

    Attributes:
        batch_sizes: ``(K,)`` the batch sizes, ascending.
        lr: ``(K,)`` the optimum of the mean over all seeds (:func:`optimal_lrs`).
        groups: ``(G, K)`` the optimum of the mean over each group of seeds.
        seed_groups: the ``G`` groups (lists of seeds).
        best: the :func:`optimal_lrs` dicts of the mean over all seeds.
        bracketed: whether every optimum, of all seeds and of every group, lies strictly inside the learning rates
            that compete (so none is decided by the edge of the grid).
    """

    batch_sizes: np.ndarray
    lr: np.ndarray
    groups: np.ndarray
    seed_groups: list[list[int]]
    best: list[dict[str, Any]]
    bracketed: bool

    @property
    def lo(self) -> np.ndarray:
        """``(K,)`` the smallest optimum over the groups."""
        return self.groups.min(0)

    @property
    def hi(self) -> np.ndarray:
        """``(K,)`` the largest optimum over the groups."""
        return self.groups.max(0)


def optima_over_seeds(records: Sequence[dict[str, Any]], key: str = "avg_loss", n_groups: int = 4) -> Optima:
    """The optimal learning rate of each batch size from the mean of ``key`` over all seeds, and again from each of
    ``n_groups`` disjoint groups of seeds (seeds ``g, g + n_groups, ...`` of the sorted seeds): the spread over the
    groups bounds how much the optimum moves with the draw (each group has fewer seeds than the whole, so the
    spread of the all-seed optimum is smaller).

    Raises:
        ValueError: empty records, records of more than one optimizer, or ``n_groups`` not an int in
            ``[1, number of seeds]``.
    """
    if not records:
        raise ValueError("records must not be empty")
    seeds = sorted({r["seed"] for r in records})
    if isinstance(n_groups, bool) or not isinstance(n_groups, int) or not 1 <= n_groups <= len(seeds):
        raise ValueError(f"n_groups must be an int in [1, {len(seeds)}] (the number of seeds), got {n_groups!r}")
    if len({r["optimizer"] for r in records}) != 1:
        raise ValueError("records must hold the runs of one optimizer")
    groups = [seeds[g::n_groups] for g in range(n_groups)]
    best = optimal_lrs(summarize(records, key))
    per_group = [optimal_lrs(summarize([r for r in records if r["seed"] in set(grp)], key)) for grp in groups]
    bracketed = all(o["bracketed"] for o in best) and all(o["bracketed"] for b in per_group for o in b)
    return Optima(
        batch_sizes=np.array([o["batch_size"] for o in best], dtype=float),
        lr=np.array([o["lr"] for o in best]),
        groups=np.array([[o["lr"] for o in b] for b in per_group]),
        seed_groups=groups,
        best=best,
        bracketed=bracketed,
    )


# ---------------------------------------------------------------------------------------------------------------
# Laws for the optimal learning rate, and the linear-regression theory
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class LawFit:
    """A law ``lr_opt(B)`` fitted by least squares on ``log10 lr``.

    Attributes:
        name: ``"linear"`` (``c B``), ``"sqrt"`` (``c sqrt(B)``), ``"power"`` (``c B^alpha``) or ``"saturating"``
            (``eps_max / (1 + B_noise / B)``, McCandlish et al. 2018).
        params: the fitted constants (``c``, ``alpha``, ``eps_max``, ``B_noise``).
        residuals: ``log10(measured) - log10(law)`` at each batch size.
        rms: root mean square of the residuals (decades).
    """

    name: str
    params: dict[str, float]
    residuals: np.ndarray
    rms: float
    law: Callable[[np.ndarray], np.ndarray] = field(repr=False, default=lambda B: B)

    def __call__(self, B: Any) -> np.ndarray:
        return self.law(np.asarray(B, dtype=float))


def fit_laws(batch_sizes: Sequence[float], lrs: Sequence[float]) -> dict[str, LawFit]:
    """Fit the four laws of :class:`LawFit` to optimal learning rates ``lrs`` measured at ``batch_sizes``.

    Raises:
        ValueError: fewer than three points, mismatched lengths, or values that are not positive and finite.
    """
    B = np.asarray(batch_sizes, dtype=float)
    y = np.asarray(lrs, dtype=float)
    if B.shape != y.shape or B.ndim != 1 or B.size < 3:
        raise ValueError(f"batch_sizes and lrs must be 1-D of equal length >= 3, got {B.shape} and {y.shape}")
    if not (np.all(np.isfinite(B)) and np.all(B > 0) and np.all(np.isfinite(y)) and np.all(y > 0)):
        raise ValueError("batch_sizes and lrs must be finite and > 0")
    lB, ly = np.log10(B), np.log10(y)

    def make(name: str, params: dict[str, float], law: Callable[[np.ndarray], np.ndarray]) -> LawFit:
        res = ly - np.log10(law(B))
        return LawFit(name, params, res, float(np.sqrt(np.mean(res**2))), law)

    fits = {}
    for name, alpha in (("linear", 1.0), ("sqrt", 0.5)):
        c = 10 ** float(np.mean(ly - alpha * lB))
        fits[name] = make(name, {"c": c}, lambda b, c=c, a=alpha: c * b**a)
    alpha, logc = np.polyfit(lB, ly, 1)
    fits["power"] = make("power", {"c": 10**logc, "alpha": float(alpha)}, lambda b: 10**logc * b**alpha)

    from scipy.optimize import least_squares

    def resid(theta: np.ndarray) -> np.ndarray:
        return ly - (theta[0] - np.log10(1 + 10 ** theta[1] / B))

    starts = [(ly.max(), lb) for lb in np.linspace(lB.min() - 1, lB.max() + 1, 9)]
    best = min((least_squares(resid, np.array(s)) for s in starts), key=lambda r: r.cost)
    eps_max, b_noise = 10 ** best.x[0], 10 ** best.x[1]
    fits["saturating"] = make(
        "saturating", {"eps_max": eps_max, "B_noise": b_noise}, lambda b: eps_max / (1 + b_noise / b)
    )
    return fits


def sgd_linear_contraction(lr: Any, batch_size: Any, dim: int) -> Any:
    """Expected factor by which one SGD step shrinks ``||w - w*||^2`` on noiseless linear regression with
    ``x ~ N(0, I_dim)`` and the MSE loss: ``1 - 4 lr + 4 lr^2 (B + d + 1) / B`` (works on arrays)."""
    check_int("dim", dim, 1)
    return 1 - 4 * lr + 4 * lr**2 * (batch_size + dim + 1) / batch_size


def sgd_linear_optimal_lr(batch_size: Any, dim: int) -> Any:
    """The learning rate minimising :func:`sgd_linear_contraction`: ``B / (2 (B + d + 1))``, i.e.
    ``eps_max / (1 + B_noise / B)`` with ``eps_max = 1/2`` and ``B_noise = d + 1``."""
    check_int("dim", dim, 1)
    return batch_size / (2 * (batch_size + dim + 1))
