"""Check of the quantization lab's k-means half (homework problem 7b, MIT 6.S965 lab 2):
``check.k_means_quantize(your_function)``.

k-means has many right answers, so the check tests properties against the book's
:func:`lmlab.lab_kmeans.k_means_quantize`: at most ``2**bitwidth`` centroids and distinct values, the tensor
rewritten in place as ``centroids[labels]``, every entry at its nearest centroid and every used centroid the mean of
its entries (to a tolerance), and a squared error at most a little above the book's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from lmlab.check._core import Case, describe, difference, run_check
from lmlab.check._quantization_cases import _randn, _tuple
from lmlab.compressing import lab_kmeans as lab

__all__ = ["k_means_quantize"]

KMEANS_SSE_FACTOR = 5.0
"""A k-means answer's squared error may be at most this factor above the book's: Lloyd's algorithm from random seeds
(the lab's fast_pytorch_kmeans) stops in local minima up to about 3.6 times worse on these cases."""
KMEANS_SLACK = 0.03
"""Tolerance of the k-means properties, as a fraction of the tensor's range (a Lloyd loop stopped by a tolerance,
as ``fast_pytorch_kmeans`` stops, leaves its centroids that close to a fixed point)."""


def _with_tensor_after(fn: Any) -> Any:
    if not callable(fn):
        return fn

    def wrapped(t: Tensor, *args: Any, **kwargs: Any) -> tuple[Any, Tensor]:
        return fn(t, *args, **kwargs), t

    return wrapped


def _kmeans_compare(expected: tuple[Any, Tensor], got: Any, case: Case) -> str | None:
    x = case.args[0].detach().double().reshape(-1)
    bits = case.args[1] if len(case.args) > 1 else case.kwargs.get("bitwidth", 4)
    k = 2**bits
    book, after = got
    found = _tuple(book, 2, "a codebook (centroids, labels)")
    if found:
        return found
    centroids, labels = book
    if not isinstance(centroids, Tensor) or centroids.dim() != 1 or not 1 <= centroids.numel() <= k:
        return f"the centroids should be a 1-D tensor of at most 2**{bits} = {k} values, got {describe(centroids)}"
    if not isinstance(labels, Tensor) or labels.is_floating_point() or labels.numel() != x.numel():
        return f"the labels should be an integer tensor with one label per entry ({x.numel()}), got {describe(labels)}"
    labels = labels.detach().reshape(-1).long()
    if labels.min() < 0 or labels.max() >= centroids.numel():
        return f"the labels should lie in [0, {centroids.numel() - 1}], got {int(labels.min())}..{int(labels.max())}"
    c = centroids.detach().double()
    decoded = c[labels]
    found = difference(
        decoded,
        after.detach().double().reshape(-1),
        rtol=1e-6,
        atol=1e-7,
        where="the tensor after the call (in place) vs centroids[labels]",
    )
    if found:
        return found + " (write centroids[labels] into the tensor)"
    distinct = after.unique().numel()
    if distinct > k:
        return f"the quantized tensor should hold at most 2**{bits} = {k} distinct values, got {distinct}"
    slack = KMEANS_SLACK * float(x.max() - x.min())
    nearest = (x[:, None] - c[labels.unique()][None]).abs().min(dim=1).values
    far = (x - decoded).abs() - nearest
    if far.max() > slack:
        i = int(far.argmax())
        return (
            f"entry {i} ({x[i].item():.6g}) should sit at its nearest centroid; its centroid "
            f"{decoded[i].item():.6g} is {far[i].item():.3g} farther than the nearest"
        )
    for j in labels.unique().tolist():
        mean = x[labels == j].mean()
        if abs(float(c[j] - mean)) > slack:
            return f"centroid {j} ({c[j].item():.6g}) should be the mean of its entries ({mean.item():.6g})"
    sse = float((x - decoded).square().sum())
    ref = float((x - expected[1].detach().double().reshape(-1)).square().sum())
    if sse > KMEANS_SSE_FACTOR * ref + 1e-12 * x.numel():
        return (
            f"the squared error {sse:.6g} should be at most {KMEANS_SSE_FACTOR} x the book's {ref:.6g} "
            f"(use 2**bitwidth clusters and run k-means to convergence)"
        )
    return None


def k_means_quantize(student: Callable[..., Any]) -> None:
    """Check ``k_means_quantize(fp32_tensor, bitwidth) -> (centroids, labels)`` (the tensor rewritten in place)."""
    lab_kmeans = torch.tensor(
        [
            [-0.3747, 0.0874, 0.3200, -0.4868, 0.4404],
            [-0.0402, 0.2322, -0.2024, -0.4986, 0.1814],
            [0.3102, -0.3942, -0.2030, 0.0883, -0.4741],
            [-0.1592, -0.0777, -0.3946, -0.2128, 0.2675],
            [0.0611, -0.1933, -0.4350, 0.2928, -0.1087],
        ]
    )
    outliers = _randn(10901, 40, scale=0.1)
    outliers[:3] = torch.tensor([2.0, -1.5, 3.0])
    cases = [
        Case("the lab's own test tensor, 2 bits", (lab_kmeans, 2)),
        Case("1 bit", (_randn(10902, 6, 5), 1)),
        Case("a few outliers, 2 bits", (outliers, 2)),
        Case("a conv weight (4, 2, 3, 3), 3 bits", (_randn(10903, 4, 2, 3, 3, scale=0.2), 3)),
        Case("random, 4 bits", (_randn(10904, 16, 16), 4)),
    ]
    run_check(
        "k_means_quantize",
        _with_tensor_after(student),
        _with_tensor_after(lab.k_means_quantize),
        cases,
        compare=_kmeans_compare,
    )
