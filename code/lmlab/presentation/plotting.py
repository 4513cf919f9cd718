"""The book's one matplotlib style and the few helpers every chapter's figures need.

Use it once at the top of a chapter::

    from lmlab import plotting
    plotting.use()

Figures are drawn at the width of the book's text column (:data:`COLUMN_WIDTH` inches, the default figure width),
so that fonts of 9-10 pt stay 9-10 pt on the page. Panels that compare values share one colour scale and one
colour bar (:func:`heatmap` with ``colorbar=False``, then :func:`shared_colorbar`); integer axes get integer ticks
(:func:`integer_ticks`); a logarithmic axis always shows at least two labelled ticks (:func:`log_ticks`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from lmlab.core.checks import check_float, check_int

COLUMN_WIDTH = 6.4
"""Width of the book's text column in inches at the style's resolution: a figure this wide is shown at 100 %."""

STYLE: dict[str, Any] = {
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "savefig.facecolor": "white",
    "savefig.transparent": False,
    "figure.dpi": 110,
    "savefig.dpi": 110,
    "figure.figsize": (COLUMN_WIDTH, 4.0),
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "legend.frameon": False,
    "image.cmap": "viridis",
}


def use() -> None:
    """Apply the book's style to every figure made afterwards (idempotent)."""
    mpl.rcParams.update(STYLE)


def _as_matrix(M: Any) -> np.ndarray:
    A = np.asarray(M.detach().cpu() if hasattr(M, "detach") else M, dtype=float)
    if A.ndim != 2:
        raise ValueError(f"M must be a 2-D matrix, got shape {A.shape}")
    return A


def symmetric_limit(*matrices: Any) -> float:
    """The largest absolute entry over ``matrices``: a colour scale ``[-v, v]`` that several panels can share."""
    if not matrices:
        raise ValueError("symmetric_limit needs at least one matrix")
    v = max(float(np.abs(_as_matrix(M)).max()) for M in matrices)
    return v or 1.0


def heatmap(
    ax: plt.Axes,
    M: Any,
    *,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    cmap: str = "viridis",
    symmetric: bool = False,
    colorbar: bool = True,
    vmin: float | None = None,
    vmax: float | None = None,
    aspect: str = "auto",
    xticklabels: Sequence[str] | None = None,
    yticklabels: Sequence[str] | None = None,
    colorbar_label: str = "",
) -> Any:
    """Draw matrix ``M`` (rows x cols; tensor or array) on ``ax``; returns the image (for :func:`shared_colorbar`).

    Row ``i`` is drawn at height ``i`` from the top, column ``j`` at ``j``; index ticks are integers.

    Args:
        symmetric: centre the colour scale on zero, ``[-max|M|, max|M|]`` (use a diverging ``cmap`` such as
            ``"RdBu_r"``: red positive, blue negative). Ignored where ``vmin``/``vmax`` are given.
        colorbar: draw a colour bar beside this panel. For panels that compare values, pass ``False`` and the same
            ``vmin``/``vmax`` to each, then call :func:`shared_colorbar` once.
        vmin, vmax: the colour scale's limits (default: the data's range, or symmetric about zero).
        aspect: ``"auto"`` fills the axes; ``"equal"`` keeps the cells square.
        xticklabels, yticklabels: one label per column / row (e.g. token names) instead of integer indices.
        colorbar_label: the colour bar's label (what the colours measure).

    Raises:
        ValueError: ``M`` is not 2-D, or a tick label list does not have one label per column / row.
    """
    A = _as_matrix(M)
    if symmetric and vmin is None and vmax is None:
        v = symmetric_limit(A)
        vmin, vmax = -v, v
    im = ax.imshow(A, cmap=cmap, aspect=aspect, interpolation="nearest", vmin=vmin, vmax=vmax)
    ax.grid(False)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    for labels, n, axis, name in (
        (xticklabels, A.shape[1], ax.xaxis, "xticklabels"),
        (yticklabels, A.shape[0], ax.yaxis, "yticklabels"),
    ):
        if labels is None:
            axis.set_major_locator(MaxNLocator(integer=True, nbins=6))
            continue
        if len(labels) != n:
            raise ValueError(
                f"{name} must have one label per {'column' if axis is ax.xaxis else 'row'} ({n}), got {len(labels)}"
            )
        axis.set_ticks(range(n), list(labels))
    if colorbar:
        cb = ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        if colorbar_label:
            cb.set_label(colorbar_label)
    return im


def shared_colorbar(fig: plt.Figure, im: Any, axes: Any, *, label: str = "", **kwargs: Any) -> Any:
    """One colour bar for several panels drawn on the same colour scale; returns the colour bar.

    Args:
        im: the image (or any mappable) of one of the panels; every panel must use its ``vmin``/``vmax``.
        axes: the panels the bar serves (an array or list of axes); the bar takes space from all of them.
        label: what the colours measure.
        kwargs: passed to ``fig.colorbar`` (e.g. ``shrink``, ``pad``, ``location``).
    """
    kwargs.setdefault("fraction", 0.04)
    kwargs.setdefault("pad", 0.03)
    cb = fig.colorbar(im, ax=np.atleast_1d(axes).ravel().tolist(), **kwargs)
    if label:
        cb.set_label(label)
    return cb


def integer_ticks(ax: plt.Axes, axis: str = "both") -> None:
    """Only integer ticks on an axis that counts something (``"x"``, ``"y"`` or ``"both"``)."""
    if axis not in ("x", "y", "both"):
        raise ValueError(f"axis must be 'x', 'y' or 'both', got {axis!r}")
    for name in ("x", "y") if axis == "both" else (axis,):
        getattr(ax, f"{name}axis").set_major_locator(MaxNLocator(integer=True))


def _plain(value: float, _pos: Any = None) -> str:
    """A tick label without scientific notation where it is short: 0.02, 5, 300, 10⁴ beyond."""
    if value <= 0:
        return ""
    e = math.floor(math.log10(value) + 1e-9)
    if -3 <= e <= 3:
        return f"{value:g}"
    mant = value / 10**e
    return f"$10^{{{e}}}$" if abs(mant - 1) < 1e-6 else f"${mant:g}\\times10^{{{e}}}$"


def log_ticks(ax: plt.Axes, axis: str = "y", *, subs: Sequence[float] | None = None, sig: int | None = None) -> None:
    """Label a logarithmic axis so that it always shows at least two labelled ticks.

    Over several decades the ticks are the powers of ten; over less than about two decades they are 1, 2 and 5
    times the powers of ten, so a narrow range is not left with a single labelled tick. Call it after the data are
    drawn (it reads the axis limits).

    Args:
        ax: the axes.
        axis: ``"x"`` or ``"y"``.
        subs: the multiples of each power of ten to label (e.g. ``(1, 3)``), instead of the choice above.
        sig: label each tick as prose writes it, :func:`lmlab.presentation.report.fmt` with ``sig`` significant
            digits (``3×10⁶``); by default short numbers are written plainly and large or small ones as ``10^n``.

    Raises:
        ValueError: ``axis`` is not ``"x"``/``"y"``, the axis has non-positive limits, a multiple in ``subs`` is not
            in ``[1, 10)``, or ``sig`` is not an int >= 1.
    """
    if axis not in ("x", "y"):
        raise ValueError(f"axis must be 'x' or 'y', got {axis!r}")
    if sig is not None:
        sig = check_int("sig", sig, 1)
    if subs is not None:
        subs = tuple(check_float(f"subs[{i}]", m, 1.0, high=9.999) for i, m in enumerate(subs))
        if not subs:
            raise ValueError("subs must hold at least one multiple, got none")
    a = getattr(ax, f"{axis}axis")
    lo, hi = ax.get_ylim() if axis == "y" else ax.get_xlim()
    if lo <= 0 or hi <= 0:
        raise ValueError(f"the {axis} axis is not logarithmic with positive limits ({lo}, {hi})")
    if subs is None:
        decades = math.log10(hi / lo)
        subs = (1.0,) if decades >= 2.5 else (1.0, 2.0, 5.0) if decades >= 0.7 else (1.0, 1.5, 2.0, 3.0, 5.0, 7.0)
    a.set_major_locator(LogLocator(base=10, subs=subs))
    if sig is None:
        a.set_major_formatter(FuncFormatter(_plain))
    else:
        from lmlab.presentation.report import fmt

        a.set_major_formatter(FuncFormatter(lambda v, _pos: fmt(v, sig=sig) if v > 0 else ""))
    a.set_minor_formatter(NullFormatter())
