"""Tests of lmlab.plotting: the helpers that keep figures legible at column width."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from lmlab import plotting  # noqa: E402


def _labelled_ticks(ax: plt.Axes, axis: str = "y") -> list[str]:
    ax.figure.canvas.draw()
    lo, hi = ax.get_ylim() if axis == "y" else ax.get_xlim()
    ticks = ax.yaxis.get_major_ticks() if axis == "y" else ax.xaxis.get_major_ticks()
    locs = ax.get_yticks() if axis == "y" else ax.get_xticks()
    return [t.label1.get_text() for t, v in zip(ticks, locs) if lo <= v <= hi and t.label1.get_text()]


@pytest.mark.parametrize("lo, hi", [(0.3, 0.9), (2.0, 30.0), (1e-3, 1e2), (0.011, 0.019)])
def test_log_ticks_label_at_least_two_ticks(lo: float, hi: float) -> None:
    plotting.use()
    fig, ax = plt.subplots()
    ax.plot([1, 2], [lo, hi])
    ax.set_yscale("log")
    plotting.log_ticks(ax, "y")
    labels = _labelled_ticks(ax)
    plt.close(fig)
    assert len(labels) >= 2, labels


def test_log_ticks_rejects_a_linear_axis_through_zero() -> None:
    fig, ax = plt.subplots()
    ax.plot([0, 1], [-1, 1])
    with pytest.raises(ValueError, match="logarithmic"):
        plotting.log_ticks(ax, "y")
    with pytest.raises(ValueError, match="axis"):
        plotting.log_ticks(ax, "z")
    plt.close(fig)


def test_heatmap_shares_a_scale_and_has_integer_ticks() -> None:
    plotting.use()
    a, b = torch.tensor([[1.0, -2.0], [0.5, 0.0]]), np.array([[4.0, 0.0], [0.0, -1.0]])
    v = plotting.symmetric_limit(a, b)
    assert v == 4.0
    fig, axes = plt.subplots(1, 2)
    ims = [plotting.heatmap(ax, M, vmin=-v, vmax=v, cmap="RdBu_r", colorbar=False) for ax, M in zip(axes, (a, b))]
    assert all(im.get_clim() == (-v, v) for im in ims)
    n_axes = len(fig.axes)
    plotting.shared_colorbar(fig, ims[0], axes, label="value")
    assert len(fig.axes) == n_axes + 1  # one bar for both panels
    fig.canvas.draw()
    assert all(float(t).is_integer() for t in axes[0].get_xticks())
    plt.close(fig)


def test_heatmap_symmetric_centres_on_zero_and_checks_input() -> None:
    fig, ax = plt.subplots()
    im = plotting.heatmap(ax, [[1.0, -3.0]], symmetric=True, colorbar=False)
    assert im.get_clim() == (-3.0, 3.0)
    with pytest.raises(ValueError, match="2-D"):
        plotting.heatmap(ax, [1.0, 2.0])
    with pytest.raises(ValueError, match="xticklabels"):
        plotting.heatmap(ax, [[1.0, 2.0]], xticklabels=["a"])
    plt.close(fig)


def test_integer_ticks_only_integers() -> None:
    fig, ax = plt.subplots()
    ax.plot([1, 2, 3], [0.1, 0.2, 0.3])
    plotting.integer_ticks(ax, "x")
    fig.canvas.draw()
    assert all(float(t).is_integer() for t in ax.get_xticks())
    plt.close(fig)


def test_log_ticks_given_multiples_and_prose_labels() -> None:
    plotting.use()
    fig, ax = plt.subplots()
    ax.plot([1, 2], [1e3, 1e7])
    ax.set_yscale("log")
    plotting.log_ticks(ax, "y", subs=(1, 3), sig=1)
    labels = _labelled_ticks(ax)
    assert "3\u202f000" in labels and "1×10⁶" in labels and "3×10⁶" in labels, labels
    with pytest.raises(ValueError, match=r"subs\[0\]"):
        plotting.log_ticks(ax, "y", subs=(0.5,))
    with pytest.raises(ValueError, match="sig"):
        plotting.log_ticks(ax, "y", sig=0)
    plt.close(fig)
