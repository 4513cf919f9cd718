"""Figures of a learning-rate sweep: loss against learning rate per batch size, and the laws of the optimum.

Both functions draw on axes the caller made (``plt.subplots``), in the book's style (:func:`lmlab.plotting.use`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib as mpl
import matplotlib.pyplot as plt
import matplotlib.ticker as mticker
import numpy as np

from lmlab.scaling.laws import LawFit

__all__ = ["batch_colors", "plot_lr_curves", "plot_laws"]

LAW_STYLE = {
    "linear": dict(color="tab:red", ls="--", label=r"linear $cB$"),
    "sqrt": dict(color="tab:green", ls="-.", label=r"square root $c\sqrt{B}$"),
    "saturating": dict(color="tab:blue", ls="-", label=r"$\epsilon_{\max}/(1+B_{\mathrm{noise}}/B)$"),
    "power": dict(color="tab:purple", ls=":", label=r"power $cB^{\alpha}$"),
}


def _log_ticks(axis: Any) -> None:
    """Labels at 1, 2 and 5 times the powers of ten, none on minor ticks: readable whatever the axis spans."""
    axis.set_major_locator(mticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(mticker.LogFormatterSciNotation(labelOnlyBase=False))
    axis.set_minor_formatter(mticker.NullFormatter())


def _decade_ticks(axis: Any) -> None:
    """Labels at the powers of ten only (for axes that span several decades)."""
    axis.set_major_locator(mticker.LogLocator(base=10))
    axis.set_minor_formatter(mticker.NullFormatter())


def batch_colors(batch_sizes: Sequence[int]) -> dict[int, Any]:
    """One colour per batch size, ordered along the ``viridis`` map (small batches dark)."""
    cmap = mpl.colormaps["viridis"]
    n = max(len(batch_sizes) - 1, 1)
    return {B: cmap(0.92 * i / n) for i, B in enumerate(sorted(batch_sizes))}


def plot_lr_curves(
    ax: plt.Axes,
    rows: Sequence[dict[str, Any]],
    optima: Sequence[dict[str, Any]] | None = None,
    *,
    ylabel: str = "loss",
    title: str = "",
    colorbar: bool = True,
) -> None:
    """The seed-averaged value (``summarize`` rows) against the learning rate, one curve per batch size, with the
    band between the smallest and largest seed; learning rates where a seed diverged are left out. ``optima``
    (from ``optimal_lrs``) are marked with dots. A colour bar labels the batch sizes."""
    sizes = sorted({r["batch_size"] for r in rows})
    colors = batch_colors(sizes)
    for B in sizes:
        rs = sorted((r for r in rows if r["batch_size"] == B and r["n_diverged"] == 0), key=lambda r: r["lr"])
        rs = [r for r in rs if np.isfinite(r["mean"])]
        if not rs:
            continue
        lr = np.array([r["lr"] for r in rs])
        ax.plot(lr, [r["mean"] for r in rs], color=colors[B], lw=1.4)
        ax.fill_between(lr, [r["lo"] for r in rs], [r["hi"] for r in rs], color=colors[B], alpha=0.2, lw=0)
    for o in optima or []:
        if np.isfinite(o["lr"]):
            ax.plot(o["lr_grid"], o["best"], "o", color=colors[o["batch_size"]], ms=4, mec="black", mew=0.5)
    ax.set_xscale("log")
    ax.set_yscale("log")
    _decade_ticks(ax.xaxis)
    lo, hi = ax.get_ylim()
    (_decade_ticks if hi / lo > 30 else _log_ticks)(ax.yaxis)
    ax.set_xlabel(r"learning rate $\eta$")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if colorbar:
        norm = mpl.colors.Normalize(vmin=0, vmax=len(sizes) - 1)
        sm = mpl.cm.ScalarMappable(norm=norm, cmap=mpl.colors.ListedColormap([colors[B] for B in sizes]))
        cb = ax.figure.colorbar(sm, ax=ax, pad=0.02, fraction=0.05)
        idx = range(0, len(sizes), max(1, len(sizes) // 6))
        cb.set_ticks(list(idx))
        cb.set_ticklabels([str(sizes[i]) for i in idx])
        cb.set_label("batch size $B$")


def plot_laws(
    ax: plt.Axes,
    ax_res: plt.Axes | None,
    batch_sizes: Sequence[float],
    lrs: Sequence[float],
    fits: dict[str, LawFit],
    *,
    laws: Sequence[str] = ("linear", "sqrt", "saturating"),
    theory: Any = None,
    label: str = "measured optimum",
    lo: Sequence[float] | None = None,
    hi: Sequence[float] | None = None,
) -> None:
    """Measured optima against batch size on log-log axes with the fitted ``laws`` (and an optional exact
    ``theory(B)`` curve); on ``ax_res`` the residuals ``log10(measured / law)`` of each law. ``lo`` and ``hi``
    (both or neither: the range of the optimum over groups of seeds, :class:`lmlab.scaling.laws.Optima`) draw an
    error bar through each measured optimum."""
    if (lo is None) != (hi is None):
        raise ValueError("give both lo and hi (the range of each optimum), or neither")
    B = np.asarray(batch_sizes, dtype=float)
    grid = np.geomspace(B.min(), B.max(), 200)
    if theory is not None:
        ax.plot(grid, theory(grid), color="black", lw=2.5, alpha=0.35, label="theory (noiseless)")
    for name in laws:
        ax.plot(grid, fits[name](grid), lw=1.3, **LAW_STYLE[name])
    y = np.asarray(lrs, dtype=float)
    if lo is not None and hi is not None:
        below = np.clip(y - np.asarray(lo, dtype=float), 0, None)
        above = np.clip(np.asarray(hi, dtype=float) - y, 0, None)
        ax.errorbar(B, y, yerr=[below, above], fmt="ko", ms=4, capsize=2, lw=1, label=label)
    else:
        ax.plot(B, y, "ko", ms=4, label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    y_lo, y_hi = ax.get_ylim()
    (_decade_ticks if y_hi / y_lo > 30 else _log_ticks)(ax.yaxis)
    ax.set_ylabel(r"optimal $\eta$")
    ax.legend(fontsize=9)
    if ax_res is None:
        ax.set_xlabel("batch size $B$")
        return
    for name in laws:
        style = LAW_STYLE[name]
        ax_res.plot(B, fits[name].residuals, marker="o", ms=3, color=style["color"], ls=style["ls"], lw=1)
    ax_res.axhline(0, color="black", lw=0.8)
    ax_res.set_xscale("log", base=2)
    ax_res.set_xlabel("batch size $B$")
    ax_res.set_ylabel("residual\n(decades)")
