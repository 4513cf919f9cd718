"""The k-means half of the homework's quantization lab (MIT 6.S965 Fall 2022, lab 2), with the lab's conventions.

:func:`k_means_quantize` clusters a tensor into ``2**bitwidth`` centroids (:func:`lmlab.quantization.kmeans_1d`,
k-means++ seeding; the lab uses ``fast_pytorch_kmeans`` with random seeding, so its centroids can differ: k-means
has many right answers) and writes ``centroids[labels]`` into the tensor in place. :mod:`lmlab.lab_quantization`
(the linear half) re-exports it, so the lab's functions are all ``lab_quantization.<name>``; it is the reference of
:func:`lmlab.check.k_means_quantize`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from lmlab.compressing.quantization import check_bits, kmeans_1d
from lmlab.core.checks import check_tensor

__all__ = ["Codebook", "k_means_quantize"]


class Codebook(NamedTuple):
    """A k-means codebook: ``centroids`` ``(2**bitwidth,)`` float and ``labels`` ``(numel,)`` int64 (flat, as the
    lab's ``fit_predict(fp32_tensor.view(-1, 1))`` returns them); the tensor is ``centroids[labels]``."""

    centroids: Tensor
    labels: Tensor


@torch.no_grad()
def k_means_quantize(fp32_tensor: Tensor, bitwidth: int = 4, codebook: Codebook | None = None) -> Codebook:
    """k-means quantization of one tensor, in place: cluster its values into ``2**bitwidth`` centroids (unless a
    ``codebook`` is given) and overwrite every entry with its centroid, ``centroids[labels]``.

    The clustering is :func:`lmlab.quantization.kmeans_1d` (Lloyd's algorithm from k-means++ seeds, seed 0 of the
    draw); the lab calls ``fast_pytorch_kmeans`` (random seeds), so other codebooks are right too. Either way each
    used centroid is the mean of its entries and every entry sits at its nearest centroid.

    Args:
        fp32_tensor: the tensor to quantize (any shape, floating point); overwritten in place.
        bitwidth: bits per label, in [1, 16]: ``2**bitwidth`` centroids.
        codebook: an existing codebook to decode instead of clustering (the lab's ``update``/``apply`` path).

    Returns:
        The :class:`Codebook` ``(centroids (2**bitwidth,), labels (numel,) int64)``.

    Raises:
        TypeError: ``fp32_tensor`` is not a floating-point tensor.
        ValueError: an empty ``fp32_tensor``, a bad ``bitwidth``, or a codebook whose labels do not match the tensor.
    """
    check_tensor("fp32_tensor", fp32_tensor, floating=True)
    if fp32_tensor.numel() == 0:
        raise ValueError("fp32_tensor is empty: there is nothing to quantize")
    if codebook is None:
        centroids, labels = kmeans_1d(fp32_tensor.detach(), 2 ** check_bits(bitwidth, "bitwidth"), seed=0)
        codebook = Codebook(centroids.to(fp32_tensor.dtype), labels.reshape(-1))
    elif codebook.labels.numel() != fp32_tensor.numel():
        raise ValueError(f"codebook has {codebook.labels.numel()} labels, fp32_tensor {fp32_tensor.numel()} entries")
    fp32_tensor.copy_(codebook.centroids[codebook.labels].view_as(fp32_tensor))
    return codebook
