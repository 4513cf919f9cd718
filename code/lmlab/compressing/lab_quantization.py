"""The functions of the homework's quantization lab (MIT 6.S965 Fall 2022, lab 2), with the lab's own conventions.

These are the book's reference for the lab's "homework's own setting" and for :mod:`lmlab.check.quantization`.
They keep the lab's names and signatures; where the lab's convention differs from the chapter's
:mod:`lmlab.quantization` and :mod:`lmlab.integer_inference`, the docstring says so. In short:

* Linear quantization is ``r = S (q - Z)``, ``q = clamp(round(r / S) + Z, q_min, q_max)`` with signed
  ``bitwidth``-bit codes (:func:`get_quantized_range`) stored as ``torch.int8`` (``torch.int32`` for biases).
  Rounding is half to even (``torch.round``), as in the lab.
* :func:`get_quantization_scale_and_zero_point` maps ``[min, max]`` of the tensor onto ``[q_min, q_max]``
  *without* first widening the range to contain 0: a tensor of positive values gets ``Z`` clamped to ``q_min``
  (and its small values clamped). :func:`lmlab.quantization.linear_qparams` widens the range to contain 0, so
  real 0 is always a code; the two agree when ``min <= 0 <= max``.
* Weights are symmetric per output channel, ``S = max(max|w|, 5e-7) / q_max``, ``Z = 0`` (the lab's floor of
  ``5e-7``; :func:`lmlab.quantization.minmax_qparams` uses ``S = 1`` for an all-zero channel instead). Biases are
  int32 with ``S_bias = S_weight S_input`` and ``Z_bias = 0``.
* :func:`quantized_linear` and :func:`quantized_conv2d` take the bias already shifted by the input zero point
  (:func:`shift_quantized_linear_bias`, :func:`shift_quantized_conv2d_bias`) and apply ``M = S_in S_w / S_out`` as
  a floating-point multiply (the lab's float32; here float64), where :mod:`lmlab.integer_inference` uses a
  fixed-point multiplier. The convolution pads its input with the input zero point (real 0).
* :func:`fuse_conv_bn` folds a batch norm into the conv before it (:func:`lmlab.integer_inference.fold_bn`).
* The lab's k-means half, :func:`k_means_quantize` and its :class:`Codebook`, lives in :mod:`lmlab.lab_kmeans`
  and is re-exported here.

One deliberate departure: the lab's ``linear_quantize`` converts ``round(r / S)`` to ``dtype`` *before* adding
``Z``. When ``round(r / S)`` leaves the dtype's range (a ReLU output with ``Z = -128`` reaches 255) that conversion
is undefined; on x86 it wraps around, which still lands on the right code when ``round(r / S) + Z`` lies in range,
but gives a wrong code where the value should have been clamped. These functions add ``Z`` first and then clamp
(the formula the lab states), so they agree with the lab's code wherever its intermediate fits ``dtype``.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lmlab.compressing.integer_inference import fold_bn
from lmlab.compressing.lab_kmeans import Codebook
from lmlab.compressing.lab_kmeans import k_means_quantize as k_means_quantize  # re-exported
from lmlab.core.checks import check_int, check_tensor

LAB_FUNCTIONS = (
    "fuse_conv_bn",
    "get_quantization_scale_and_zero_point",
    "get_quantization_scale_for_weight",
    "get_quantized_range",
    "k_means_quantize",
    "linear_quantize",
    "linear_quantize_bias_per_output_channel",
    "linear_quantize_feature",
    "linear_quantize_weight_per_channel",
    "quantized_conv2d",
    "quantized_linear",
    "shift_quantized_conv2d_bias",
    "shift_quantized_linear_bias",
)
"""The functions the lab asks for, by name: each has a check of the same name in :mod:`lmlab.check.quantization`."""

__all__ = ["Codebook", "WEIGHT_FLOOR", *LAB_FUNCTIONS]

WEIGHT_FLOOR = 5e-7
"""The lab's smallest ``max|w|`` for a weight scale (so an all-zero channel gets a tiny, nonzero scale)."""


# ---------------------------------------------------------------------------------------------- argument checks


def _bits(bitwidth: object, name: str = "bitwidth", high: int = 32) -> int:
    if isinstance(bitwidth, bool) or not isinstance(bitwidth, int) or not 1 <= bitwidth <= high:
        raise ValueError(f"{name} must be an int in [1, {high}], got {bitwidth!r}")
    return bitwidth


def _float_tensor(x: object, name: str) -> Tensor:
    if check_tensor(name, x, floating=True).is_complex():
        raise TypeError(f"{name} must be a real floating-point tensor, got {x.dtype}")
    if x.numel() == 0:
        raise ValueError(f"{name} is empty: there is nothing to quantize")
    return x


def _int_tensor(x: object, name: str, dtype: torch.dtype) -> Tensor:
    if check_tensor(name, x).dtype != dtype:
        raise TypeError(f"{name} must be a {dtype} tensor, got {x.dtype}")
    return x


def _int(x: object, name: str) -> int:
    if isinstance(x, bool) or not isinstance(x, int):
        raise TypeError(f"{name} must be a Python int, got {type(x).__name__}")
    return x


def _scale(x: object, name: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not (math.isfinite(x) and x > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {x!r}")
    return float(x)


def _per_channel(x: object, name: str, channels: int) -> Tensor:
    """A per-output-channel scale (a float, or a tensor of ``channels`` entries in any shape) as float64 ``(C,)``."""
    if isinstance(x, Tensor):
        if x.numel() not in (1, channels):
            raise ValueError(f"{name} must hold 1 or {channels} values (one per output channel), got {x.numel()}")
        s = x.detach().double().reshape(-1).expand(channels)
    else:
        s = torch.full((channels,), _scale(x, name), dtype=torch.float64)
    if not (torch.isfinite(s).all() and (s > 0).all()):
        raise ValueError(f"{name} must be finite and > 0")
    return s


# ---------------------------------------------------------------------------------------------- linear quantization


def get_quantized_range(bitwidth: int) -> tuple[int, int]:
    """``(q_min, q_max) = (-2**(bitwidth-1), 2**(bitwidth-1) - 1)``: signed two's-complement codes (as
    :func:`lmlab.quantization.qrange` with ``signed=True``, which stops at 16 bits; biases use 32).

    Raises:
        ValueError: ``bitwidth`` is not an int in [1, 32].
    """
    b = _bits(bitwidth)
    return -(1 << (b - 1)), (1 << (b - 1)) - 1


def linear_quantize(
    fp_tensor: Tensor, bitwidth: int, scale: float | Tensor, zero_point: int | Tensor, dtype: torch.dtype = torch.int8
) -> Tensor:
    """``q = clamp(round(r / S) + Z, q_min, q_max)`` as ``dtype`` (round half to even, in float64).

    Args:
        fp_tensor: real values ``r``, any shape.
        bitwidth: bits of the codes, in [1, 32]; their range must fit ``dtype``.
        scale: ``S > 0``, a float or a tensor broadcastable against ``fp_tensor`` (per channel: ``(C, 1, ...)``).
        zero_point: ``Z``, an int or an integer tensor broadcastable against ``fp_tensor``.
        dtype: an integer dtype for the codes (``torch.int8``; ``torch.int32`` for biases).

    Returns:
        The codes, ``fp_tensor``'s shape, ``dtype``. (The lab adds ``Z`` after the cast to ``dtype``, which wraps
        around when ``round(r / S)`` leaves the dtype's range; see the module's docstring.)

    Raises:
        TypeError: ``fp_tensor`` is not a floating-point tensor, ``dtype`` not an integer dtype, or a
            floating-point ``zero_point``.
        ValueError: a bad ``bitwidth``, a codes range that does not fit ``dtype``, or a scale that is not > 0.
    """
    _float_tensor(fp_tensor, "fp_tensor")
    q_min, q_max = get_quantized_range(bitwidth)
    if not isinstance(dtype, torch.dtype) or dtype.is_floating_point or dtype.is_complex or dtype == torch.bool:
        raise TypeError(f"dtype must be an integer torch dtype, got {dtype!r}")
    info = torch.iinfo(dtype)
    if q_min < info.min or q_max > info.max:
        raise ValueError(f"{bitwidth}-bit codes [{q_min}, {q_max}] do not fit dtype {dtype}")
    if isinstance(scale, Tensor):
        s = scale.detach().to(fp_tensor.device, torch.float64)
        if not (torch.isfinite(s).all() and (s > 0).all()):
            raise ValueError("scale must be finite and > 0")
    else:
        s = torch.tensor(_scale(scale, "scale"), dtype=torch.float64, device=fp_tensor.device)
    if isinstance(zero_point, Tensor):
        if zero_point.is_floating_point():
            raise TypeError(f"zero_point must be an int or an integer tensor, got {zero_point.dtype}")
        z = zero_point.detach().to(fp_tensor.device, torch.float64)
    else:
        z = float(_int(zero_point, "zero_point"))
    q = torch.round(fp_tensor.detach().double() / s) + z
    return q.clamp(q_min, q_max).to(dtype)


def get_quantization_scale_and_zero_point(fp_tensor: Tensor, bitwidth: int) -> tuple[float, int]:
    """``(S, Z)`` that map ``[r_min, r_max]`` (the tensor's min and max) onto ``[q_min, q_max]``, as the lab has
    them: ``S = (r_max - r_min) / (q_max - q_min)``, ``Z = round(q_min - r_min / S)`` clamped to ``[q_min, q_max]``.

    The range is *not* widened to contain 0 (:func:`lmlab.quantization.linear_qparams` widens it): for a tensor of
    positive values ``Z`` is clamped to ``q_min``, for negative values to ``q_max``.

    Returns:
        ``(scale, zero_point)`` as a Python float and int (the lab's ``quantized_linear`` asserts these types).

    Raises:
        TypeError: ``fp_tensor`` is not a floating-point tensor.
        ValueError: a bad ``bitwidth``, or a constant tensor (``r_max == r_min``: the lab divides by zero).
    """
    _float_tensor(fp_tensor, "fp_tensor")
    q_min, q_max = get_quantized_range(bitwidth)
    r_min, r_max = float(fp_tensor.min()), float(fp_tensor.max())
    if not (math.isfinite(r_min) and math.isfinite(r_max)):
        raise ValueError("fp_tensor must be finite")
    if r_max == r_min:
        raise ValueError(f"fp_tensor is constant ({r_min}): its range is empty and the scale would be 0")
    scale = (r_max - r_min) / (q_max - q_min)
    z = q_min - r_min / scale
    zero_point = q_min if z < q_min else q_max if z > q_max else round(z)
    return scale, int(zero_point)


def linear_quantize_feature(fp_tensor: Tensor, bitwidth: int) -> tuple[Tensor, float, int]:
    """Quantize a feature map (activations) per tensor: ``(q int8, S, Z)`` with ``(S, Z)`` from
    :func:`get_quantization_scale_and_zero_point` and ``q`` from :func:`linear_quantize`.

    Raises:
        TypeError, ValueError: as :func:`get_quantization_scale_and_zero_point`.
    """
    scale, zero_point = get_quantization_scale_and_zero_point(fp_tensor, bitwidth)
    return linear_quantize(fp_tensor, bitwidth, scale, zero_point), scale, zero_point


def get_quantization_scale_for_weight(weight: Tensor, bitwidth: int) -> float:
    """Symmetric scale of a weight tensor (``Z = 0``): ``S = max(max|w|, 5e-7) / q_max``, so ``max|w|`` maps to
    ``q_max`` and the codes lie in ``[-q_max, q_max]``.

    Raises:
        TypeError: ``weight`` is not a floating-point tensor.
        ValueError: ``bitwidth`` is not an int in [2, 32] (1-bit symmetric codes have ``q_max = 0``).
    """
    _float_tensor(weight, "weight")
    if _bits(bitwidth) < 2:
        raise ValueError(f"bitwidth must be >= 2 for a symmetric weight scale (q_max = 0 at 1 bit), got {bitwidth}")
    _, q_max = get_quantized_range(bitwidth)
    return max(float(weight.detach().abs().max()), WEIGHT_FLOOR) / q_max


def linear_quantize_weight_per_channel(tensor: Tensor, bitwidth: int) -> tuple[Tensor, Tensor, int]:
    """Quantize a weight symmetrically per output channel (dim 0).

    Args:
        tensor: a conv weight ``(c_out, c_in, k_h, k_w)`` or linear weight ``(out, in)``.
        bitwidth: bits of the codes, in [2, 8].

    Returns:
        ``(q, scale, 0)``: codes int8 of ``tensor``'s shape, scale float32 ``(c_out, 1, ...)`` (one
        :func:`get_quantization_scale_for_weight` per channel, broadcastable against ``tensor``), zero point 0.

    Raises:
        TypeError: ``tensor`` is not a floating-point tensor.
        ValueError: ``tensor`` is neither a linear (2-D) nor a conv (4-D) weight, or a bad ``bitwidth``.
    """
    check_tensor("tensor", _float_tensor(tensor, "tensor"), (2, 4))
    _bits(bitwidth, high=8)
    scale = torch.tensor(
        [get_quantization_scale_for_weight(tensor[c], bitwidth) for c in range(tensor.shape[0])],
        dtype=torch.float32,
        device=tensor.device,
    ).view(-1, *([1] * (tensor.dim() - 1)))
    return linear_quantize(tensor, bitwidth, scale, 0), scale, 0


def linear_quantize_bias_per_output_channel(
    bias: Tensor, weight_scale: float | Tensor, input_scale: float
) -> tuple[Tensor, Tensor | float, int]:
    """Quantize a bias to int32 with ``S_bias = S_weight S_input`` (per output channel) and ``Z_bias = 0``, so it
    adds straight into the int32 accumulator of ``q_weight q_input``.

    Args:
        bias: ``(c_out,)``, floating point.
        weight_scale: the weight's scale, a float or a tensor of ``c_out`` entries (e.g. ``(c_out, 1, 1, 1)``).
        input_scale: the input's scale ``S_input`` (a float).

    Returns:
        ``(q_bias int32 (c_out,), bias_scale, 0)``: ``bias_scale`` is ``weight_scale.view(-1) * input_scale``
        (float32, ``(c_out,)``) for a tensor ``weight_scale``, a float for a float.

    Raises:
        TypeError: ``bias`` is not a floating-point tensor.
        ValueError: ``bias`` is not 1-D, a scale that is not > 0, or a ``weight_scale`` of the wrong size.
    """
    _float_tensor(bias, "bias")
    if bias.dim() != 1:
        raise ValueError(f"bias must be 1-D (c_out,), got shape {tuple(bias.shape)}")
    s_in = _scale(input_scale, "input_scale")
    if isinstance(weight_scale, Tensor):
        _per_channel(weight_scale, "weight_scale", bias.numel())
        if weight_scale.numel() != bias.numel():
            raise ValueError(f"weight_scale must hold {bias.numel()} values (one per output channel)")
        bias_scale: Tensor | float = weight_scale.detach().reshape(-1) * s_in
    else:
        bias_scale = _scale(weight_scale, "weight_scale") * s_in
    return linear_quantize(bias, 32, bias_scale, 0, dtype=torch.int32), bias_scale, 0


def _shift_bias(quantized_bias: Tensor, quantized_weight: Tensor, input_zero_point: int) -> Tensor:
    _int_tensor(quantized_bias, "quantized_bias", torch.int32)
    _int_tensor(quantized_weight, "quantized_weight", torch.int8)
    z = _int(input_zero_point, "input_zero_point")
    if quantized_bias.dim() != 1 or quantized_bias.numel() != quantized_weight.shape[0]:
        raise ValueError(
            f"quantized_bias must be (c_out,) = ({quantized_weight.shape[0]},), got {tuple(quantized_bias.shape)}"
        )
    row_sums = quantized_weight.to(torch.int64).reshape(quantized_weight.shape[0], -1).sum(dim=1)
    return (quantized_bias.to(torch.int64) - row_sums * z).to(torch.int32)


def shift_quantized_linear_bias(quantized_bias: Tensor, quantized_weight: Tensor, input_zero_point: int) -> Tensor:
    """Fold the input zero point into the bias of a linear layer: ``q_bias - Z_in sum_j q_w[:, j]``, since
    ``sum_j q_w[o, j] (q_x[j] - Z_in) = sum_j q_w[o, j] q_x[j] - Z_in sum_j q_w[o, j]``.

    Args:
        quantized_bias: int32 ``(out,)``.
        quantized_weight: int8 ``(out, in)``.
        input_zero_point: ``Z_in`` (a Python int).

    Returns:
        The shifted bias, int32 ``(out,)`` (sums taken in int64, so int8 products cannot overflow).

    Raises:
        TypeError: wrong dtypes or a non-int zero point.
        ValueError: a bias that does not match the weight's output channels.
    """
    if isinstance(quantized_weight, Tensor) and quantized_weight.dim() != 2:
        raise ValueError(f"quantized_weight must be (out, in), got shape {tuple(quantized_weight.shape)}")
    return _shift_bias(quantized_bias, quantized_weight, input_zero_point)


def shift_quantized_conv2d_bias(quantized_bias: Tensor, quantized_weight: Tensor, input_zero_point: int) -> Tensor:
    """The conv version of :func:`shift_quantized_linear_bias`: ``q_bias - Z_in sum_{c,i,j} q_w[:, c, i, j]``
    (a convolution of a constant input ``Z_in``; exact for the padded border too, because the input is padded
    with ``Z_in``).

    Args:
        quantized_bias: int32 ``(c_out,)``.
        quantized_weight: int8 ``(c_out, c_in, k_h, k_w)``.
        input_zero_point: ``Z_in`` (a Python int).

    Returns:
        The shifted bias, int32 ``(c_out,)``.

    Raises:
        TypeError, ValueError: as :func:`shift_quantized_linear_bias`.
    """
    if isinstance(quantized_weight, Tensor) and quantized_weight.dim() != 4:
        raise ValueError(f"quantized_weight must be (c_out, c_in, k_h, k_w), got shape {tuple(quantized_weight.shape)}")
    return _shift_bias(quantized_bias, quantized_weight, input_zero_point)


def _requantize(
    acc: Tensor, input_scale: float, weight_scale: float | Tensor, output_scale: float, zero: int, bits: int, conv: bool
) -> Tensor:
    """``clamp(round(acc S_in S_w / S_out) + Z_out)`` as int8, per output channel (dim 1 of ``acc``)."""
    s_w = _per_channel(weight_scale, "weight_scale", acc.shape[1]).to(acc.device)
    m = _scale(input_scale, "input_scale") * s_w / _scale(output_scale, "output_scale")
    m = m.view(1, -1, 1, 1) if conv else m.view(1, -1)
    q_min, q_max = get_quantized_range(bits)
    return torch.round(acc.double() * m + _int(zero, "output_zero_point")).clamp(q_min, q_max).to(torch.int8)


def _check_codes(
    input: Tensor, weight: Tensor, bias: Tensor | None, feature_bitwidth: int, weight_bitwidth: int, dims: int
) -> None:
    """Codes of the right dtypes, ``input`` and ``weight`` of ``dims`` dimensions (2: linear, 4: conv), bits."""
    check_tensor("input", _int_tensor(input, "input", torch.int8), dims)
    check_tensor("weight", _int_tensor(weight, "weight", torch.int8), dims)
    if bias is not None:
        _int_tensor(bias, "bias", torch.int32)
        if bias.dim() != 1 or bias.numel() != weight.shape[0]:
            raise ValueError(f"bias must be (c_out,) = ({weight.shape[0]},), got {tuple(bias.shape)}")
    _bits(feature_bitwidth, "feature_bitwidth", high=8)
    _bits(weight_bitwidth, "weight_bitwidth", high=8)


def quantized_linear(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    feature_bitwidth: int,
    weight_bitwidth: int,
    input_zero_point: int,
    output_zero_point: int,
    input_scale: float,
    weight_scale: float | Tensor,
    output_scale: float,
) -> Tensor:
    """A linear layer on codes: ``q_y = clamp(round((q_x q_w^T + Q_bias) S_in S_w / S_out) + Z_out)``.

    ``Q_bias`` is the bias already shifted by :func:`shift_quantized_linear_bias`, so ``input_zero_point`` is not
    used here (the lab passes it anyway). The integer product is exact (int32 accumulation in the lab; here float64
    of integers, exact below ``2**53``); the rescale is floating point.

    Args:
        input: int8 codes ``(batch, in)``.
        weight: int8 codes ``(out, in)``.
        bias: int32 shifted bias ``(out,)`` or None.
        feature_bitwidth: bits of input and output codes (the output is clamped to this range), in [1, 8].
        weight_bitwidth: bits of the weight codes, in [1, 8].
        input_zero_point, output_zero_point: Python ints.
        input_scale, output_scale: Python floats > 0.
        weight_scale: per output channel, a tensor of ``out`` entries (``(out, 1)`` from
            :func:`linear_quantize_weight_per_channel`), or a float.

    Returns:
        Output codes, int8 ``(batch, out)``.

    Raises:
        TypeError: wrong dtypes or a non-int zero point.
        ValueError: bad bit widths, scales or shapes.
    """
    _check_codes(input, weight, bias, feature_bitwidth, weight_bitwidth, dims=2)
    _int(input_zero_point, "input_zero_point")
    if input.shape[1] != weight.shape[1]:
        raise ValueError(
            f"input (batch, in) and weight (out, in) differ in 'in': {tuple(input.shape)}, {tuple(weight.shape)}"
        )
    acc = input.double() @ weight.double().T
    if bias is not None:
        acc = acc + bias.double()
    return _requantize(acc, input_scale, weight_scale, output_scale, output_zero_point, feature_bitwidth, conv=False)


def _pair(x: object, name: str) -> tuple[int, int]:
    t = (x, x) if isinstance(x, int) and not isinstance(x, bool) else tuple(x) if isinstance(x, (tuple, list)) else ()
    if len(t) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in t):
        raise ValueError(f"{name} must be an int >= 1 or a pair of them, got {x!r}")
    return t  # type: ignore[return-value]


def quantized_conv2d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    feature_bitwidth: int,
    weight_bitwidth: int,
    input_zero_point: int,
    output_zero_point: int,
    input_scale: float,
    weight_scale: float | Tensor,
    output_scale: float,
    stride: int | tuple[int, int],
    padding: tuple[int, int, int, int],
    dilation: int | tuple[int, int],
    groups: int,
) -> Tensor:
    """A 2-D convolution on codes: the input padded with ``input_zero_point`` (the code of real 0), then
    ``q_y = clamp(round((conv(q_x, q_w) + Q_bias) S_in S_w / S_out) + Z_out)``.

    Args:
        input: int8 codes ``(batch, c_in, H, W)``.
        weight: int8 codes ``(c_out, c_in / groups, k_h, k_w)``.
        bias: int32 shifted bias ``(c_out,)`` (:func:`shift_quantized_conv2d_bias`) or None.
        feature_bitwidth, weight_bitwidth: bits, in [1, 8]; the output is clamped to ``feature_bitwidth`` bits.
        input_zero_point, output_zero_point: Python ints.
        input_scale, output_scale: Python floats > 0.
        weight_scale: per output channel, a tensor of ``c_out`` entries (``(c_out, 1, 1, 1)``), or a float.
        stride, dilation, groups: as ``torch.nn.functional.conv2d``.
        padding: four ints ``(left, right, top, bottom)``, the order of ``torch.nn.functional.pad`` (the lab's).

    Returns:
        Output codes, int8 ``(batch, c_out, H_out, W_out)``.

    Raises:
        TypeError: wrong dtypes, a non-int zero point or ``groups``.
        ValueError: bad bit widths, scales, shapes, ``groups`` < 1, or a ``padding`` that is not four ints >= 0.
    """
    _check_codes(input, weight, bias, feature_bitwidth, weight_bitwidth, dims=4)
    z_in = _int(input_zero_point, "input_zero_point")
    stride, dilation, groups = _pair(stride, "stride"), _pair(dilation, "dilation"), check_int("groups", groups, 1)
    pad = tuple(padding) if isinstance(padding, (tuple, list)) else ()
    if len(pad) != 4 or not all(isinstance(p, int) and not isinstance(p, bool) and p >= 0 for p in pad):
        raise ValueError(f"padding must be four ints >= 0 (left, right, top, bottom), got {padding!r}")
    x = F.pad(input.double(), pad, "constant", float(z_in))
    acc = F.conv2d(x, weight.double(), None, stride, 0, dilation, groups)
    if bias is not None:
        acc = acc + bias.double().view(1, -1, 1, 1)
    return _requantize(acc, input_scale, weight_scale, output_scale, output_zero_point, feature_bitwidth, conv=True)


@torch.no_grad()
def fuse_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A new Conv2d equal to ``bn(conv(x))`` in eval mode: ``W' = W g``, ``b' = beta + (b - mu) g`` with
    ``g = gamma / sqrt(var + eps)`` per output channel (:func:`lmlab.integer_inference.fold_bn`).

    The lab asserts that ``conv`` has no bias and rewrites ``conv`` in place; this returns a copy (with the same
    stride, padding, dilation and groups) and also folds a conv bias. Neither argument is modified.

    Raises:
        TypeError: ``conv`` is not an ``nn.Conv2d`` or ``bn`` not an ``nn.BatchNorm2d``.
        ValueError: their channel counts differ, or ``bn`` has no running statistics or no affine parameters.
    """
    if not isinstance(conv, nn.Conv2d):
        raise TypeError(f"conv must be an nn.Conv2d, got {type(conv).__name__}")
    if not isinstance(bn, nn.BatchNorm2d):
        raise TypeError(f"bn must be an nn.BatchNorm2d, got {type(bn).__name__}")
    if bn.num_features != conv.out_channels:
        raise ValueError(f"bn has {bn.num_features} channels, conv {conv.out_channels} output channels")
    if bn.running_var is None or bn.running_mean is None or bn.weight is None or bn.bias is None:
        raise ValueError("bn must track running statistics and have affine parameters")
    w, b = fold_bn(conv, bn)
    fused = copy.deepcopy(conv)
    fused.weight = nn.Parameter(w.detach().clone())
    fused.bias = nn.Parameter(b.detach().clone())
    return fused
