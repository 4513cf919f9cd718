"""Checks for the quantization lab (homework problem 7b, MIT 6.S965 lab 2): ``check.<function>(your_function)``.

Each check runs your function and the book's (:mod:`lmlab.lab_quantization`, the lab's conventions) on the same
fixed cases, then on random ones, and prints one line when all agree; otherwise it raises
:class:`~lmlab.check.CheckFailed` naming the first case that differs. Integer codes must match exactly, except
that a value within rounding error of a half (``x.5``) may land on either neighbour (float32 and float64
arithmetic may round it differently); codes must have the lab's dtype (int8 codes, int32 biases).

- :func:`get_quantized_range` ``(bitwidth) -> (q_min, q_max)``: 1, 2, 4, 8, 32 bits and others.
- :func:`linear_quantize` ``(fp_tensor, bitwidth, scale, zero_point, dtype=torch.int8)``: the lab's own test,
  values outside the range, a negative zero point, a per-channel scale, 32-bit codes in int32.
- :func:`get_quantization_scale_and_zero_point` ``(fp_tensor, bitwidth) -> (scale, zero_point)``: the lab's
  range, a zero point that must be rounded, positive-only and negative-only tensors (the zero point at the clamp).
- :func:`linear_quantize_feature` ``(fp_tensor, bitwidth) -> (q, scale, zero_point)``: the lab's input, a ReLU
  output, 8 bits.
- :func:`get_quantization_scale_for_weight` ``(weight, bitwidth) -> scale``: the largest magnitude negative, an
  all-zero weight (the lab's floor of 5e-7), 2 to 8 bits.
- :func:`linear_quantize_weight_per_channel` ``(tensor, bitwidth) -> (q, scale (C, 1, ...), 0)``: channels of
  very different ranges, a zero channel, conv and linear weights.
- :func:`linear_quantize_bias_per_output_channel` ``(bias, weight_scale, input_scale) -> (q, bias_scale, 0)``:
  the lab's own test, a conv's ``(C, 1, 1, 1)`` weight scale.
- :func:`shift_quantized_linear_bias` / :func:`shift_quantized_conv2d_bias` ``(q_bias, q_weight,
  input_zero_point)``: the lab's own test, zero point 0, large codes with ``Z = -128`` (int8 overflow).
- :func:`quantized_linear` ``(input, weight, bias, feature_bitwidth, weight_bitwidth, input_zero_point,
  output_zero_point, input_scale, weight_scale, output_scale)``: the lab's own test, 8 bits with zero points,
  no bias, outputs beyond the range.
- :func:`quantized_conv2d` ``(..., stride, padding, dilation, groups)``: 1x1, padding with a nonzero input zero
  point, stride 2 without bias, groups and dilation.
- :func:`fuse_conv_bn` ``(conv, bn) -> conv``: a nonzero running mean, a large ``eps``, stride and padding.
- :func:`k_means_quantize` ``(fp32_tensor, bitwidth=4) -> (centroids, labels)``: k-means has many right answers,
  so this one checks properties: at most ``2**bitwidth`` centroids and distinct values, the tensor rewritten in
  place as ``centroids[labels]``, every entry at its nearest centroid and every used centroid the mean of its
  entries (to a tolerance), and a squared error at most a little above the book's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lmlab import lab_quantization as lab
from lmlab.check._core import Case, describe, difference, run_check
from lmlab.check._quantization_cases import (
    ATOL,
    LAB_FC_BIAS,
    LAB_FC_INPUT,
    LAB_TENSOR,
    RTOL,
    _bn,
    _codes_compare,
    _codes_difference,
    _conv,
    _lab_fc,
    _python_number,
    _randint,
    _randn,
    _tuple,
)
from lmlab.check.kmeans import k_means_quantize as k_means_quantize  # re-exported
from lmlab.core.runtime import generator

__all__ = list(lab.LAB_FUNCTIONS)  # one check per function the lab asks for


def _run(name: str, student: Callable[..., Any], cases: list[Case], **kw: Any) -> None:
    """Run the check ``name`` against the lab function of the same name in :mod:`lmlab.lab_quantization`."""
    run_check(name, student, getattr(lab, name), cases, **kw)


# ---------------------------------------------------------------------------------------------- ranges and scales


def get_quantized_range(student: Callable[[int], tuple[int, int]]) -> None:
    """Check ``get_quantized_range(bitwidth) -> (q_min, q_max)``."""
    cases = [Case(f"{b} bits", (b,)) for b in (8, 4, 2, 1, 32, 3, 5, 16)]
    _run("get_quantized_range", student, cases)


def _pre_quantize(case: Case) -> Tensor:
    r, _, s = case.args[:3]
    return r.double() / (s.double() if isinstance(s, Tensor) else s)


def linear_quantize(student: Callable[..., Tensor]) -> None:
    """Check ``linear_quantize(fp_tensor, bitwidth, scale, zero_point, dtype=torch.int8)``."""
    wide = torch.linspace(-2.0, 2.0, 12).reshape(3, 4)
    per_channel = _randn(9801, 3, 5) * torch.tensor([[0.1], [1.0], [3.0]])
    # 8-bit scales keep |r / S| <= 110: the lab casts round(r / S) to int8 before adding the zero point
    eight, rand8 = _randn(9802, 4, 6), _randn(9805, 2, 3, 4)
    cases = [
        Case("the lab's own test: 2 bits, scale 1/3, zero point -1", (LAB_TENSOR, 2, 1 / 3, -1)),
        Case("values outside the range are clamped: 4 bits, scale 0.1, zero point 2", (wide, 4, 0.1, 2)),
        Case("8 bits, zero point -20", (eight, 8, float(eight.abs().max()) / 100, -20)),
        Case(
            "a per-channel scale (3, 1), zero point 0",
            (per_channel, 8, per_channel.abs().amax(dim=1, keepdim=True) / 127, 0),
        ),
        Case("32-bit codes in int32 (a bias)", (_randn(9803, 6), 32, 1e-3, 0), {"dtype": torch.int32}),
        Case("random, 4 bits, zero point 3", (_randn(9804, 5, 5), 4, 0.2, 3)),
        Case("random, 8 bits, zero point -7", (rand8, 8, float(rand8.abs().max()) / 110, -7)),
    ]
    _run("linear_quantize", student, cases, compare=_codes_compare(_pre_quantize))


def _scale_zero_compare(expected: tuple[float, int], got: Any, case: Case) -> str | None:
    found = _tuple(got, 2, "a pair (scale, zero_point)")
    found = found or _python_number(got[0], float, "the scale") or _python_number(got[1], int, "the zero point")
    if found:
        return found
    return difference(expected[0], got[0], rtol=RTOL, atol=0, where="the scale") or difference(
        expected[1], got[1], rtol=0, atol=0, where="the zero point"
    )


def get_quantization_scale_and_zero_point(student: Callable[[Tensor, int], tuple[float, int]]) -> None:
    """Check ``get_quantization_scale_and_zero_point(fp_tensor, bitwidth) -> (scale, zero_point)``."""

    def spanning(lo: float, hi: float, seed: int, n: int = 10) -> Tensor:
        inner = lo + (hi - lo) * torch.rand(n - 2, generator=generator(seed))
        return torch.cat([torch.tensor([hi]), inner, torch.tensor([lo])])

    cases = [
        Case("the lab's range [-0.25, 0.75] at 2 bits", (LAB_TENSOR, 2)),
        Case("range [-0.9, 2] at 8 bits: the zero point -48.86 rounds to -49", (spanning(-0.9, 2.0, 9901), 8)),
        Case("positive values only, [0.5, 2]: the zero point clamps to q_min", (spanning(0.5, 2.0, 9902), 8)),
        Case("negative values only, [-3, -1]: the zero point clamps to q_max", (spanning(-3.0, -1.0, 9903), 4)),
        Case("random, 8 bits", (_randn(9904, 50, scale=2.0) + 0.3, 8)),
        Case("random, 4 bits", (_randn(9905, 3, 7), 4)),
    ]
    _run("get_quantization_scale_and_zero_point", student, cases, compare=_scale_zero_compare)


def _feature_compare(expected: tuple[Tensor, float, int], got: Any, case: Case) -> str | None:
    found = _tuple(got, 3, "a triple (quantized tensor, scale, zero_point)") or _scale_zero_compare(
        expected[1:], got[1:], case
    )
    if found:
        return found
    return _codes_difference(expected[0], got[0], case.args[0].double() / expected[1], "the codes")


def linear_quantize_feature(student: Callable[[Tensor, int], tuple[Tensor, float, int]]) -> None:
    """Check ``linear_quantize_feature(fp_tensor, bitwidth) -> (q, scale, zero_point)``."""
    relu = torch.relu(_randn(10001, 4, 6))
    relu[0, 0] = 0.0
    cases = [
        Case("the lab's test input at 2 bits", (LAB_FC_INPUT, 2)),
        Case("a ReLU output (min 0) at 4 bits", (relu, 4)),
        Case("8 bits, range [-1.002, 0.998]", (torch.linspace(-1.002, 0.998, 21), 8)),
        Case("random, 4 bits", (_randn(10002, 3, 8, scale=0.7) + 0.2, 4)),
        Case("random, 3 bits", (_randn(10003, 10), 3)),
    ]
    _run("linear_quantize_feature", student, cases, compare=_feature_compare)


def get_quantization_scale_for_weight(student: Callable[[Tensor, int], float]) -> None:
    """Check ``get_quantization_scale_for_weight(weight, bitwidth) -> scale``."""
    cases = [
        Case("a readable weight at 8 bits", (torch.tensor([[0.5, -0.25], [0.125, 0.0]]), 8)),
        Case("the largest magnitude is negative", (torch.tensor([[0.3, -1.2], [0.9, 0.1]]), 8)),
        Case("an all-zero weight: the lab's floor 5e-7", (torch.zeros(2, 3), 8)),
        Case("4 bits", (_randn(10101, 3, 4), 4)),
        Case("2 bits", (_randn(10102, 5), 2)),
        Case("random conv weight at 8 bits", (_randn(10103, 4, 2, 3, 3), 8)),
    ]
    _run("get_quantization_scale_for_weight", student, cases, atol=0)


def _scaled_codes_compare(noun: str, prefix: str) -> Callable[[Any, Any, Case], str | None]:
    """Compare a triple ``(codes, scale, zero_point)``: ``noun`` names the codes (``"tensor"``, ``"bias"``),
    ``prefix`` the parts (``""``, ``"bias "``)."""

    def compare(expected: tuple[Tensor, Tensor, int], got: Any, case: Case) -> str | None:
        found = _tuple(got, 3, f"a triple (quantized {noun}, {prefix}scale, zero_point)")
        found = found or difference(expected[1], got[1], rtol=RTOL, atol=0, where=f"the {prefix}scale")
        found = found or difference(expected[2], got[2], rtol=0, atol=0, where=f"the {prefix}zero point")
        if found:
            return found
        pre = case.args[0].double() / expected[1].double()
        return _codes_difference(expected[0], got[0], pre, f"the {prefix}codes")

    return compare


_weight_compare = _scaled_codes_compare("tensor", "")
_bias_compare = _scaled_codes_compare("bias", "bias ")


def linear_quantize_weight_per_channel(student: Callable[[Tensor, int], tuple[Tensor, Tensor, int]]) -> None:
    """Check ``linear_quantize_weight_per_channel(tensor, bitwidth) -> (q, scale, 0)``."""
    ranges = _randn(10201, 3, 2, 3, 3) * torch.tensor([0.01, 1.0, 10.0]).view(3, 1, 1, 1)
    zero_channel = _randn(10202, 3, 4)
    zero_channel[1] = 0.0
    cases = [
        Case("a readable linear weight (2, 3) at 8 bits", (torch.tensor([[0.5, -1.0, 0.25], [2.0, 1.0, -0.5]]), 8)),
        Case("channels of very different ranges, 4 bits", (ranges, 4)),
        Case("a channel of zeros", (zero_channel, 8)),
        Case("2 bits", (_randn(10203, 4, 5), 2)),
        Case("random conv weight (6, 4, 3, 3), 8 bits", (_randn(10204, 6, 4, 3, 3, scale=0.1), 8)),
    ]
    _run("linear_quantize_weight_per_channel", student, cases, compare=_weight_compare)


def linear_quantize_bias_per_output_channel(student: Callable[..., tuple[Tensor, Tensor, int]]) -> None:
    """Check ``linear_quantize_bias_per_output_channel(bias, weight_scale, input_scale) -> (q, bias_scale, 0)``."""
    fc = _lab_fc()
    _, s_w8, _ = lab.linear_quantize_weight_per_channel(_randn(10301, 5, 3, 3, 3, scale=0.2), 8)
    _, s_wr, _ = lab.linear_quantize_weight_per_channel(_randn(10302, 7, 4, scale=0.3), 8)
    cases = [
        Case("the lab's own test (2 bits)", (LAB_FC_BIAS, fc["s_w"], fc["s_x"])),
        Case("a conv's weight scale (5, 1, 1, 1)", (_randn(10303, 5, scale=0.1), s_w8, 0.02)),
        Case("random linear layer", (_randn(10304, 7, scale=0.5), s_wr, 0.013)),
    ]
    _run("linear_quantize_bias_per_output_channel", student, cases, compare=_bias_compare)


# ---------------------------------------------------------------------------------------------- integer layers


def _int32_compare(expected: Tensor, got: Any, case: Case) -> str | None:
    if isinstance(got, Tensor) and got.shape == expected.shape and got.dtype != expected.dtype:
        return f"the shifted bias should be int32, got {got.dtype}"
    return difference(expected, got, rtol=0, atol=0, where="the shifted bias")


def shift_quantized_linear_bias(student: Callable[[Tensor, Tensor, int], Tensor]) -> None:
    """Check ``shift_quantized_linear_bias(quantized_bias, quantized_weight, input_zero_point)``."""
    fc = _lab_fc()
    q_w = _randint(10401, -127, 127, 6, 16)
    cases = [
        Case("the lab's own test", (fc["q_b"], fc["q_w"], fc["z_x"])),
        Case("zero point 0 changes nothing", (_randint(10402, -50, 50, 4, dtype=torch.int32), q_w[:4], 0)),
        Case(
            "large codes and zero point -128 (int8 would overflow)",
            (_randint(10403, -1000, 1000, 6, dtype=torch.int32), q_w, -128),
        ),
        Case(
            "random, zero point 37", (_randint(10404, -99, 99, 5, dtype=torch.int32), _randint(10405, -8, 7, 5, 9), 37)
        ),
    ]
    _run("shift_quantized_linear_bias", student, cases, compare=_int32_compare)


def shift_quantized_conv2d_bias(student: Callable[[Tensor, Tensor, int], Tensor]) -> None:
    """Check ``shift_quantized_conv2d_bias(quantized_bias, quantized_weight, input_zero_point)``."""
    cases = [
        Case(
            "a readable 1x1 conv (2, 3, 1, 1), zero point 2",
            (
                torch.tensor([10, -10], dtype=torch.int32),
                torch.tensor([[1, 2, 3], [-1, 0, 4]], dtype=torch.int8).view(2, 3, 1, 1),
                2,
            ),
        ),
        Case(
            "zero point 0 changes nothing",
            (_randint(10501, -50, 50, 3, dtype=torch.int32), _randint(10502, -8, 7, 3, 2, 3, 3), 0),
        ),
        Case(
            "large codes and zero point -128 (int8 would overflow)",
            (_randint(10503, -1000, 1000, 4, dtype=torch.int32), _randint(10504, -127, 127, 4, 3, 3, 3), -128),
        ),
        Case(
            "random, 3 outputs, 5 inputs",
            (_randint(10505, -99, 99, 3, dtype=torch.int32), _randint(10506, -8, 7, 3, 5, 3, 3), -3),
        ),
    ]
    _run("shift_quantized_conv2d_bias", student, cases, compare=_int32_compare)


def _multiplier(case: Case, dims: int) -> Tensor:
    s_in, s_w, s_out = case.args[7], case.args[8], case.args[9]
    s_w = s_w.double().reshape(-1) if isinstance(s_w, Tensor) else torch.tensor([float(s_w)], dtype=torch.float64)
    return (s_in * s_w / s_out).view(1, -1, *([1] * (dims - 2)))


def _pre_linear(case: Case) -> Tensor:
    x, w, b = case.args[:3]
    acc = x.double() @ w.double().T + (0 if b is None else b.double())
    return acc * _multiplier(case, 2) + case.args[6]


def _pre_conv(case: Case) -> Tensor:
    x, w, b = case.args[:3]
    stride, padding, dilation, groups = case.args[10:14]
    acc = F.conv2d(F.pad(x.double(), padding, "constant", case.args[5]), w.double(), None, stride, 0, dilation, groups)
    if b is not None:
        acc = acc + b.double().view(1, -1, 1, 1)
    return acc * _multiplier(case, 4) + case.args[6]


def _layer_case(
    name: str,
    seed: int,
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    bits: int,
    z_in: int,
    z_out: int,
    fill: float = 0.3,
    bias: bool = True,
    conv: tuple[Any, ...] = (),
) -> Case:
    """Random codes for a quantized layer: input in the ``bits``-bit range, weights symmetric, an int32 bias, and
    an output scale that puts the outputs' spread at ``fill`` of the code range (above 1: many are clamped)."""
    q_min, q_max = lab.get_quantized_range(bits)
    x = _randint(seed, q_min, q_max, *x_shape)
    w = _randint(seed + 1, -q_max, q_max, *w_shape)
    b = _randint(seed + 2, -40 * q_max, 40 * q_max, w_shape[0], dtype=torch.int32) if bias else None
    s_w = (0.002 + 0.01 * torch.rand(w_shape[0], generator=generator(seed + 3))).view(-1, *([1] * (len(w_shape) - 1)))
    args = [x, w, b, bits, bits, z_in, z_out, 0.05, s_w, 1.0, *conv]
    spread = float((_pre_conv if conv else _pre_linear)(Case(name, tuple(args))).sub(z_out).std())
    args[9] = spread / (fill * (q_max - q_min))
    return Case(name, tuple(args))


def quantized_linear(student: Callable[..., Tensor]) -> None:
    """Check ``quantized_linear(input, weight, bias, feature_bitwidth, weight_bitwidth, input_zero_point,
    output_zero_point, input_scale, weight_scale, output_scale)``."""
    fc = _lab_fc()
    lab_case = (fc["q_x"], fc["q_w"], lab.shift_quantized_linear_bias(fc["q_b"], fc["q_w"], fc["z_x"]), 2, 2)
    cases = [
        Case("the lab's own test (2 bits)", (*lab_case, fc["z_x"], fc["z_y"], fc["s_x"], fc["s_w"], fc["s_y"])),
        _layer_case("8 bits, zero points -3 (input) and 5 (output)", 10601, (3, 10), (4, 10), 8, -3, 5),
        _layer_case("no bias", 10605, (2, 6), (3, 6), 8, 0, -10, bias=False),
        _layer_case("outputs beyond the range are clamped", 10609, (4, 12), (5, 12), 4, 1, 0, fill=1.5),
        _layer_case("random, 8 bits", 10613, (5, 16), (7, 16), 8, 12, -20),
    ]
    _run("quantized_linear", student, cases, compare=_codes_compare(_pre_linear))


def quantized_conv2d(student: Callable[..., Tensor]) -> None:
    """Check ``quantized_conv2d(input, weight, bias, feature_bitwidth, weight_bitwidth, input_zero_point,
    output_zero_point, input_scale, weight_scale, output_scale, stride, padding, dilation, groups)``."""
    cases = [
        _layer_case("a 1x1 conv, zero points 0", 10701, (1, 3, 4, 4), (2, 3, 1, 1), 8, 0, 0, conv=(1, (0,) * 4, 1, 1)),
        _layer_case(
            "3x3, padding 1, input zero point -60: pad with the zero point",
            10705,
            (2, 2, 5, 5),
            (3, 2, 3, 3),
            8,
            -60,
            4,
            conv=(1, (1,) * 4, 1, 1),
        ),
        _layer_case(
            "stride 2, no bias", 10709, (1, 3, 6, 6), (4, 3, 3, 3), 8, 7, -2, bias=False, conv=(2, (1,) * 4, 1, 1)
        ),
        _layer_case(
            "groups 2, dilation 2, 4 bits", 10713, (1, 4, 7, 7), (4, 2, 3, 3), 4, -3, 2, conv=(1, (2,) * 4, 2, 2)
        ),
        _layer_case(
            "random, 8 bits, uneven padding", 10717, (2, 3, 5, 6), (5, 3, 3, 3), 8, 20, -9, conv=(1, (1, 0, 2, 1), 1, 1)
        ),
    ]
    _run("quantized_conv2d", student, cases, compare=_codes_compare(_pre_conv))


def _conv_compare(expected: nn.Conv2d, got: Any, case: Case) -> str | None:
    if not isinstance(got, nn.Conv2d):
        return f"the result should be an nn.Conv2d, got {describe(got)}"
    for attr in ("stride", "padding", "dilation", "groups"):
        if getattr(got, attr) != getattr(expected, attr):
            return f"the fused conv's {attr} should be {getattr(expected, attr)}, got {getattr(got, attr)}"
    if got.bias is None:
        return "the fused conv should have a bias (the batch norm's shift), got bias=None"
    return difference(expected.weight, got.weight, rtol=RTOL, atol=ATOL, where="the fused weight") or difference(
        expected.bias, got.bias, rtol=RTOL, atol=ATOL, where="the fused bias"
    )


def fuse_conv_bn(student: Callable[[nn.Conv2d, nn.BatchNorm2d], nn.Conv2d]) -> None:
    """Check ``fuse_conv_bn(conv, bn) -> conv`` (the batch norm folded into the conv)."""
    readable = (_conv(10801, 2, 3, 1), _bn(10802, 3))
    with torch.no_grad():
        readable[0].weight.copy_(torch.tensor([[1.0, -2.0], [0.5, 0.0], [-1.0, 3.0]]).view(3, 2, 1, 1))
        for name, values in (
            ("weight", [1.0, 2.0, 0.5]),
            ("bias", [0.1, 0.0, -0.2]),
            ("running_mean", [0.5, -1.0, 2.0]),
            ("running_var", [0.01, 0.04, 1.0]),
        ):
            getattr(readable[1], name).copy_(torch.tensor(values))
    cases = [
        Case("a 1x1 conv (2 -> 3) and a batch norm with a nonzero running mean", readable),
        Case("a batch norm with a large eps (0.1)", (_conv(10803, 3, 2, 3, padding=1), _bn(10804, 2, eps=0.1))),
        Case("stride 2, padding 1", (_conv(10805, 3, 4, 3, stride=2, padding=1), _bn(10806, 4))),
        Case("random 3x3 conv (4 -> 6)", (_conv(10807, 4, 6, 3, padding=1), _bn(10808, 6))),
    ]
    _run("fuse_conv_bn", student, cases, compare=_conv_compare)
