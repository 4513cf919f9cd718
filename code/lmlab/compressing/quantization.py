"""Weight quantization by hand: k-means (a codebook per layer) and linear (affine) quantization, with
quantization-aware training for both.

* k-means quantization (Deep Compression, Han et al. 2016): :func:`kmeans_1d` clusters a tensor's values into
  ``2**bits`` centroids with Lloyd's algorithm (k-means++ seeding from a seeded generator, empty clusters refilled
  with the worst-fitted value, as in scikit-learn); a tensor is stored as ``bits``-bit labels plus a float
  codebook. :class:`KMeansWeight` makes a layer's weight ``centroids[labels]`` with the centroids as the
  trainable parameter, so autograd gives each centroid the *sum* of its members' gradients: k-means
  quantization-aware training.
* Linear quantization ``r = S (q - Z)``: :func:`qrange`, :func:`linear_qparams` (``S = (r_max - r_min) /
  (q_max - q_min)``, ``Z = round(q_min - r_min / S)``), :func:`minmax_qparams` (per tensor or per output channel,
  affine or symmetric), :func:`quantize`, :func:`dequantize`.
* :func:`fake_quantize` rounds in the forward pass and lets the gradient through unchanged inside the
  representable range (a straight-through estimator written as a ``torch.autograd.Function``, not
  ``torch.ao.quantization``); :class:`LinearWeight` applies it to a layer's weight for quantization-aware training.
* :func:`quantize_weights` puts either quantizer on every conv and linear layer of a model (a ``torch.nn.utils.
  parametrize`` parametrization, removable with :func:`bake`); :func:`storage_bits` counts what storing it costs.
  The layers quantized are :func:`lmlab.compressing.vision.weight_layers` (re-exported here).

A tensor of real values is ``r``; its integer codes are ``q``. Bit widths are ints in [1, 16].
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from lmlab.compressing.vision import weight_layers
from lmlab.core.checks import check_float, check_instance, check_int, check_tensor
from lmlab.core.runtime import generator as _generator

__all__ = [
    "KMeansWeight",
    "LinearWeight",
    "bake",
    "check_bits",
    "dequantize",
    "fake_quantize",
    "kmeans_1d",
    "linear_qparams",
    "minmax_qparams",
    "qrange",
    "quantize",
    "quantize_weights",
    "storage_bits",
    "weight_layers",
]


def check_bits(bits: object, name: str = "bits") -> int:
    """``bits`` as an int, or a ``ValueError`` naming ``name`` if it is not an int in [1, 16]."""
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 16:
        raise ValueError(f"{name} must be an int in [1, 16], got {bits!r}")
    return bits


def _check_tensor(x: object, name: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.numel() == 0:
        raise ValueError(f"{name} is empty: there is nothing to quantize")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
    return x


def _check_no_nan(r: Tensor, name: str) -> None:
    if torch.isnan(r).any():
        raise ValueError(f"{name} holds NaN: NaN has no integer code (codes must lie in [q_min, q_max])")


def _check_scale(scale: object, device: torch.device) -> Tensor:
    """``scale`` as a float64 tensor, or an error unless every entry is finite and > 0."""
    if isinstance(scale, bool) or not isinstance(scale, (Tensor, int, float)):
        raise TypeError(f"scale must be a positive float or a tensor of them, got {type(scale).__name__}")
    s = torch.as_tensor(scale, dtype=torch.float64, device=device)
    if s.numel() == 0 or not (torch.isfinite(s).all() and (s > 0).all()):
        raise ValueError(f"scale must be finite and > 0 everywhere, got {scale!r}")
    return s


def _check_zero(zero: object, q_min: int, q_max: int, device: torch.device) -> Tensor:
    """``zero`` as a tensor, or an error unless every entry is an integer in ``[q_min, q_max]``."""
    if isinstance(zero, bool) or not isinstance(zero, (Tensor, int, float)):
        raise TypeError(f"zero must be an int or a tensor of ints, got {type(zero).__name__}")
    z = torch.as_tensor(zero, device=device)
    if z.dtype == torch.bool or z.is_complex():
        raise TypeError(f"zero must be an int or a tensor of ints, got dtype {z.dtype}")
    if z.numel() == 0:
        raise ValueError("zero must not be empty")
    if z.is_floating_point() and not (torch.isfinite(z).all() and torch.equal(z, torch.round(z))):
        raise ValueError(f"zero must hold integers in [{q_min}, {q_max}], got {zero!r}")
    if (z < q_min).any() or (z > q_max).any():
        raise ValueError(f"zero must hold integers in [{q_min}, {q_max}] (the code range), got {zero!r}")
    return z


# ---------------------------------------------------------------------------------------------- k-means


def _kmeans_pp(flat: Tensor, k: int, seed: int) -> Tensor:
    """Greedy k-means++ starting centroids (Arthur and Vassilvitskii 2007, as scikit-learn seeds ``KMeans``): the
    first is a random value; each next one is the best, by the resulting squared error, of ``2 + ln k`` values drawn
    with probability proportional to their squared distance to the nearest centroid chosen so far."""
    g = _generator(seed)
    n_trials = 2 + int(math.log(k))
    first = int(torch.randint(len(flat), (1,), generator=g))
    c = torch.empty(k, dtype=torch.float64)
    c[0] = flat[first].cpu()
    d2 = (flat - flat[first]).square()
    for j in range(1, k):
        total = float(d2.sum())
        if total <= 0:  # fewer distinct values than centroids: the rest repeat one (their clusters stay empty)
            c[j:] = c[0]
            break
        cand = torch.multinomial((d2 / total).cpu(), n_trials, replacement=True, generator=g).to(flat.device)
        nd = torch.minimum(d2[None], (flat[None] - flat[cand][:, None]).square())
        best = int(nd.sum(dim=1).argmin())
        c[j] = flat[cand[best]].cpu()
        d2 = nd[best]
    return c.to(flat.device)


@torch.no_grad()
def kmeans_1d(
    x: Tensor, k: int, *, init: str = "k-means++", seed: int = 0, max_iter: int = 300
) -> tuple[Tensor, Tensor]:
    """Lloyd's k-means on the values of ``x`` (any shape), in one dimension.

    Each iteration assigns every value to its nearest centroid (ties to the lower one) and moves each centroid to
    the mean of its members. A centroid left with no members is moved onto the value with the largest error (one
    value per empty cluster, as scikit-learn's ``KMeans`` relocates them), so all ``k`` centroids are used whenever
    ``x`` has at least ``k`` distinct values. Stops when no assignment changes and no cluster is empty, or after
    ``max_iter`` iterations.

    Args:
        x: the values to cluster (floating point, not empty).
        k: the number of centroids, >= 1.
        init: ``"k-means++"`` (default): greedy k-means++ seeding from ``lmlab.generator(seed)``, as scikit-learn
            does; ``"linear"``: evenly spaced from ``x.min()`` to ``x.max()`` (Deep Compression's linear
            initialisation; deterministic, but at many centroids it leaves clusters in the sparse tails and ends in
            a worse local minimum).
        seed: the seed of the k-means++ draws (shifted by the draw's ``LMLAB_SEED_OFFSET`` like every lmlab seed).
        max_iter: at most this many Lloyd iterations.

    Returns:
        ``(centroids, labels)``: centroids ``(k,)`` in increasing order, same dtype as ``x``; labels int64 of
        ``x``'s shape, ``x ≈ centroids[labels]``.

    Raises:
        ValueError: ``x`` is empty or holds NaN, ``k`` is not an int >= 1, ``max_iter`` < 1, ``seed`` < 0, or an
            unknown ``init``.
        TypeError: ``max_iter`` or ``seed`` is not an int.
    """
    _check_tensor(x, "x")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an int >= 1, got {k!r}")
    if init not in ("k-means++", "linear"):
        raise ValueError(f"init must be 'k-means++' or 'linear', got {init!r}")
    max_iter = check_int("max_iter", max_iter, 1)
    seed = check_int("seed", seed, 0)
    if torch.isnan(x).any():
        raise ValueError("x holds NaN: NaN cannot be clustered")
    flat = x.detach().reshape(-1).double()
    if init == "linear":
        c = torch.linspace(float(flat.min()), float(flat.max()), k, dtype=torch.float64, device=flat.device)
    else:
        c = torch.sort(_kmeans_pp(flat, k, seed)).values
    labels = torch.zeros_like(flat, dtype=torch.int64)
    for it in range(max_iter):
        # in one dimension the nearest centroid is found by bucketing against the midpoints
        new = torch.bucketize(flat, (c[1:] + c[:-1]) / 2)
        counts = torch.bincount(new, minlength=k)
        empty = (counts == 0).nonzero().flatten()
        if it > 0 and len(empty) == 0 and torch.equal(new, labels):
            break
        labels = new
        sums = torch.zeros(k, dtype=torch.float64, device=flat.device).scatter_add_(0, labels, flat)
        c = torch.where(counts > 0, sums / counts.clamp(min=1), c)
        if len(empty):
            err = (flat - c[labels]).abs()
            far = torch.argsort(err, descending=True, stable=True)[: len(empty)]
            far = far[err[far] > 0]  # a value already on its centroid cannot start a new cluster
            if len(far):
                c[empty[: len(far)]] = flat[far]
                c = torch.sort(c).values
    labels = torch.bucketize(flat, (c[1:] + c[:-1]) / 2)
    return c.to(x.dtype), labels.reshape(x.shape)


class KMeansWeight(nn.Module):
    """A parametrization ``weight = centroids[labels]``: the stored parameter is the codebook ``(2**bits,)``.

    ``right_inverse(w)`` (called once by ``parametrize.register_parametrization``) clusters ``w`` with
    :func:`kmeans_1d` and keeps the labels as a buffer; ``forward(centroids)`` looks the weight up. The gather's
    backward pass adds up the gradients of all weights that share a centroid: that sum is the centroid's gradient.
    """

    def __init__(self, bits: int, *, seed: int = 0) -> None:
        super().__init__()
        self.bits, self.seed = check_bits(bits), check_int("seed", seed, 0)
        self.register_buffer("labels", torch.zeros(0, dtype=torch.int64))

    def forward(self, centroids: Tensor) -> Tensor:
        return centroids[self.labels]

    def right_inverse(self, w: Tensor) -> Tensor:
        centroids, labels = kmeans_1d(w, 2**self.bits, seed=self.seed)
        self.labels = labels
        return centroids


# ---------------------------------------------------------------------------------------------- linear


def qrange(bits: int, signed: bool = True) -> tuple[int, int]:
    """``(q_min, q_max)`` of ``bits``-bit integers: ``(-2**(bits-1), 2**(bits-1) - 1)`` signed, ``(0, 2**bits
    - 1)`` unsigned."""
    check_bits(bits)
    return (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)


def linear_qparams(
    r_min: Tensor | float, r_max: Tensor | float, bits: int, *, signed: bool = True
) -> tuple[Tensor, Tensor]:
    """Scale and zero point that map ``[r_min, r_max]`` onto ``[q_min, q_max]`` (elementwise for tensors).

    The range is first widened to contain 0, so that real 0 is exactly the integer ``Z`` (zero padding and ReLU
    need it). Then ``S = (r_max - r_min) / (q_max - q_min)`` and ``Z = round(q_min - r_min / S)``, clamped to
    ``[q_min, q_max]``. An empty range (``r_min == r_max``, i.e. both 0 after widening) gets ``S = 1`` instead of
    a division by zero: every value then quantizes exactly to ``Z``.

    Returns:
        ``(S, Z)``: float64 and int64 tensors of the broadcast shape of ``r_min`` and ``r_max``.

    Raises:
        ValueError: ``bits`` out of [1, 16], ``r_min > r_max`` anywhere, or a non-finite bound.
    """
    q_min, q_max = qrange(bits, signed)
    for name, bound in (("r_min", r_min), ("r_max", r_max)):
        if not isinstance(bound, Tensor):
            check_float(name, bound, -math.inf)
    lo = torch.as_tensor(r_min, dtype=torch.float64)
    hi = torch.as_tensor(r_max, dtype=torch.float64, device=lo.device)
    if not (torch.isfinite(lo).all() and torch.isfinite(hi).all()):
        raise ValueError("r_min and r_max must be finite")
    if (lo > hi).any():
        raise ValueError("r_min must be <= r_max")
    lo, hi = lo.clamp(max=0.0), hi.clamp(min=0.0)
    scale = (hi - lo) / (q_max - q_min)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    zero = torch.round(q_min - lo / scale).clamp(q_min, q_max).to(torch.int64)
    return scale, zero


def minmax_qparams(
    x: Tensor, bits: int, *, signed: bool = True, symmetric: bool = False, per_channel: bool = False
) -> tuple[Tensor, Tensor]:
    """``(S, Z)`` from the range of ``x``: per tensor (scalars), or per channel along dim 0 (shape ``(C, 1, ...)``,
    broadcastable against ``x``).

    Affine (default): :func:`linear_qparams` of ``min`` and ``max``. Symmetric: ``Z = 0`` and ``S = max|x| /
    (2**(bits-1) - 1)``, so the codes are ``-q_max .. q_max`` (signed only, ``bits >= 2``; ``S = 1`` for an
    all-zero tensor).

    Raises:
        ValueError: bad ``bits``, an empty ``x``, or symmetric with ``bits < 2`` or ``signed=False``.
    """
    _check_tensor(x, "x")
    check_bits(bits)
    r = x.detach().double()
    if per_channel:
        r = r.reshape(r.shape[0], -1)
        lo, hi = r.min(dim=1).values, r.max(dim=1).values
        shape = (x.shape[0],) + (1,) * (x.dim() - 1)
    else:
        lo, hi, shape = r.min(), r.max(), ()
    if symmetric:
        if bits < 2 or not signed:
            raise ValueError(f"symmetric quantization needs signed codes and bits >= 2, got bits={bits}")
        scale = torch.maximum(lo.abs(), hi.abs()) / (2 ** (bits - 1) - 1)
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        return scale.reshape(shape), torch.zeros(shape, dtype=torch.int64, device=x.device)
    scale, zero = linear_qparams(lo, hi, bits, signed=signed)
    return scale.reshape(shape), zero.reshape(shape)


def quantize(r: Tensor, scale: Tensor | float, zero: Tensor | int, bits: int, *, signed: bool = True) -> Tensor:
    """Integer codes ``q = clamp(round(r / S) + Z, q_min, q_max)`` (int64; ``round`` is half to even). Values
    outside the representable range ``[S (q_min - Z), S (q_max - Z)]`` are clamped to its ends.

    Raises:
        TypeError: ``r`` is not a floating-point tensor, or ``scale``/``zero`` of the wrong type.
        ValueError: ``r`` is empty or holds NaN, a ``scale`` entry not finite and > 0, a ``zero`` entry that is not
            an integer in ``[q_min, q_max]``, or bad ``bits``.
    """
    _check_tensor(r, "r")
    q_min, q_max = qrange(bits, signed)
    s = _check_scale(scale, r.device)
    z = _check_zero(zero, q_min, q_max, r.device)
    _check_no_nan(r, "r")
    return (torch.round(r.double() / s) + z).clamp(q_min, q_max).to(torch.int64)


def dequantize(q: Tensor, scale: Tensor | float, zero: Tensor | int) -> Tensor:
    """Real values ``r = S (q - Z)`` (float64) of integer codes ``q``.

    Raises:
        TypeError: ``q`` is not an integer tensor, or ``scale``/``zero`` of the wrong type.
        ValueError: a ``scale`` entry not finite and > 0.
    """
    check_tensor("q", q)
    if q.is_floating_point() or q.is_complex() or q.dtype == torch.bool:
        raise TypeError(f"q must be an integer tensor of codes, got dtype {q.dtype}")
    s = _check_scale(scale, q.device)
    if isinstance(zero, bool) or not isinstance(zero, (Tensor, int)):
        raise TypeError(f"zero must be an int or a tensor of ints, got {type(zero).__name__}")
    z = torch.as_tensor(zero, device=q.device)
    return s * (q - z).double()


class _FakeQuant(torch.autograd.Function):
    """Forward: quantize then dequantize. Backward: the straight-through estimator, the gradient passed unchanged
    where ``r`` lies inside the representable range and zero where the forward pass clamped it."""

    @staticmethod
    def forward(ctx: Any, r: Tensor, scale: Tensor, zero: Tensor, bits: int, signed: bool) -> Tensor:
        q_min, q_max = qrange(bits, signed)
        s = scale.double()
        codes = torch.round(r.double() / s) + zero
        ctx.save_for_backward((codes >= q_min) & (codes <= q_max))
        return (s * (codes.clamp(q_min, q_max) - zero)).to(r.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        (inside,) = ctx.saved_tensors
        return grad * inside, None, None, None, None


def fake_quantize(r: Tensor, scale: Tensor | float, zero: Tensor | int, bits: int, *, signed: bool = True) -> Tensor:
    """``dequantize(quantize(r))`` in ``r``'s dtype, differentiable with a straight-through estimator: the
    gradient is the identity inside the representable range and zero outside (where the codes were clamped).

    Raises:
        The errors of :func:`quantize` (same arguments, same checks).
    """
    _check_tensor(r, "r")
    q_min, q_max = qrange(bits, signed)
    s = _check_scale(scale, r.device)
    z = _check_zero(zero, q_min, q_max, r.device).to(torch.float64)
    _check_no_nan(r, "r")
    return _FakeQuant.apply(r, s, z, bits, signed)


class LinearWeight(nn.Module):
    """A parametrization ``weight = fake_quantize(w)`` with per-output-channel affine ``(S, Z)`` taken from the
    current ``w`` in every forward pass (the range is not differentiated). Training the model then trains the
    float weights ``w`` through the straight-through estimator: linear quantization-aware training."""

    def __init__(self, bits: int, *, per_channel: bool = True) -> None:
        super().__init__()
        self.bits, self.per_channel = check_bits(bits), per_channel

    def forward(self, w: Tensor) -> Tensor:
        scale, zero = minmax_qparams(w, self.bits, per_channel=self.per_channel)
        return fake_quantize(w, scale, zero, self.bits)


# ---------------------------------------------------------------------------------------------- models


def quantize_weights(model: nn.Module, method: str, bits: int, *, per_channel: bool = True, seed: int = 0) -> nn.Module:
    """Quantize the weight of every conv and linear layer of ``model`` in place, as a parametrization, and return
    the model. ``method`` is ``"kmeans"`` (:class:`KMeansWeight`, one codebook per layer) or ``"linear"``
    (:class:`LinearWeight`; ``per_channel`` chooses per-channel or per-tensor ranges). ``seed`` seeds k-means++
    (every layer the same seed). Training the returned model
    is quantization-aware training; :func:`bake` turns it back into a plain model with the quantized weights.

    Raises:
        ValueError: unknown ``method``, bad ``bits``, or a layer that is already parametrized.
    """
    check_bits(bits)
    if method not in ("kmeans", "linear"):
        raise ValueError(f"method must be 'kmeans' or 'linear', got {method!r}")
    for name, layer in weight_layers(model).items():
        if parametrize.is_parametrized(layer, "weight"):
            raise ValueError(f"layer {name!r} is already quantized; bake() it first")
        p = KMeansWeight(bits, seed=seed) if method == "kmeans" else LinearWeight(bits, per_channel=per_channel)
        parametrize.register_parametrization(layer, "weight", p)
    return model


def bake(model: nn.Module) -> nn.Module:
    """Remove the quantizers of :func:`quantize_weights`, leaving each layer's (quantized) weight as a plain
    parameter. Returns the model."""
    for layer in weight_layers(model).values():
        if parametrize.is_parametrized(layer, "weight"):
            parametrize.remove_parametrizations(layer, "weight", leave_parametrized=True)
    return model


def storage_bits(shapes: Iterable[tuple[int, ...]], method: str, bits: int, *, float_bits: int = 32) -> int:
    """Bits needed to store weights of the given shapes (one per layer).

    ``"float"``: ``float_bits`` per weight. ``"kmeans"``: ``bits`` per weight plus a codebook of ``2**bits``
    floats per layer. ``"linear"``: ``bits`` per weight plus, per output channel (dim 0), one float scale and one
    ``bits``-bit zero point.

    Raises:
        ValueError: ``bits`` out of [1, 16], ``float_bits`` out of [1, 64], or an unknown ``method``.
        TypeError: ``float_bits`` is not an int.
    """
    check_instance("shapes", shapes, Iterable)
    check_bits(bits)
    float_bits = check_int("float_bits", float_bits, 1, 64)
    if method not in ("float", "kmeans", "linear"):
        raise ValueError(f"method must be 'float', 'kmeans' or 'linear', got {method!r}")
    total = 0
    for shape in shapes:
        n = int(torch.Size(shape).numel())
        if method == "float":
            total += float_bits * n
        elif method == "kmeans":
            total += bits * n + float_bits * 2**bits
        else:
            total += bits * n + (float_bits + bits) * shape[0]
    return total
