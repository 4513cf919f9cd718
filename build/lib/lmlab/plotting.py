"""The book's one matplotlib style: opaque backgrounds (figures stay readable in dark mode), clear fonts.

Use it once at the top of a chapter::

    from lmlab import plotting
    plotting.use()
"""

from __future__ import annotations

from typing import Any

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np

STYLE: dict[str, Any] = {
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "savefig.facecolor": "white",
    "savefig.transparent": False,
    "figure.dpi": 110,
    "savefig.dpi": 110,
    "figure.figsize": (6.4, 4.0),
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "font.size": 10,
    "axes.titlesize": 11,
    "legend.frameon": False,
    "image.cmap": "viridis",
}


def use() -> None:
    """Apply the book's style to every figure made afterwards (idempotent)."""
    mpl.rcParams.update(STYLE)


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
) -> Any:
    """Draw matrix ``M`` (rows x cols; tensor or array) on ``ax`` with an optional colour bar.

    Args:
        symmetric: centre the colour scale on zero (use a diverging ``cmap`` such as ``"RdBu_r"``).
    """
    A = np.asarray(M.detach().cpu() if hasattr(M, "detach") else M, dtype=float)
    if A.ndim != 2:
        raise ValueError(f"M must be a 2-D matrix, got shape {A.shape}")
    kw: dict[str, Any] = {}
    if symmetric:
        v = float(np.abs(A).max()) or 1.0
        kw = {"vmin": -v, "vmax": v}
    im = ax.imshow(A, cmap=cmap, aspect="auto", interpolation="nearest", **kw)
    ax.grid(False)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return im
