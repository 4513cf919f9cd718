"""Helpers and data shared by the quantization lab's checks (:mod:`lmlab.check.quantization`,
:mod:`lmlab.check.kmeans`): seeded random inputs, comparisons of integer codes, small layers filled from a seed, and
the lab's own test tensors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lmlab import lab_quantization as lab
from lmlab.check._core import Case, describe, difference
from lmlab.core.runtime import generator

RTOL, ATOL = 1e-5, 1e-6


def _randn(seed: int, *shape: int, scale: float = 1.0) -> Tensor:
    return torch.randn(*shape, generator=generator(seed)) * scale


def _randint(seed: int, low: int, high: int, *shape: int, dtype: torch.dtype = torch.int8) -> Tensor:
    return torch.randint(low, high + 1, shape, generator=generator(seed)).to(dtype)


def _near_half(pre: Tensor) -> Tensor:
    """Where a real value is within rounding error (float32 or float64) of a half-integer."""
    return (pre - pre.floor() - 0.5).abs() <= 1e-4 + 1e-6 * pre.abs()


def _codes_difference(expected: Tensor, got: Any, pre: Tensor, where: str) -> str | None:
    """Integer codes: the exact dtype, then every entry, except a neighbour where ``pre`` (the real value before
    rounding) lies at a half."""
    if isinstance(got, Tensor) and tuple(got.shape) == tuple(expected.shape):
        if got.dtype != expected.dtype:
            return f"{where} should be {str(expected.dtype).removeprefix('torch.')} codes, got {got.dtype}"
        gap = (got.detach().cpu().long() - expected.long()).abs()
        pre = pre.detach().cpu().double().expand(expected.shape)
        got = torch.where((gap == 1) & _near_half(pre), expected, got.detach().cpu())
    return difference(expected, got, rtol=0, atol=0, where=where)


def _python_number(got: Any, kind: type, what: str) -> str | None:
    if isinstance(got, bool) or not isinstance(got, kind):
        hint = "float(...)" if kind is float else "int(...)"
        return f"{what} should be a Python {kind.__name__} (the lab asserts it; use {hint}), got {describe(got)}"
    return None


def _tuple(got: Any, n: int, what: str) -> str | None:
    if not isinstance(got, (tuple, list)) or len(got) != n:
        return f"the result should be {what}, got {describe(got)}"
    return None


@torch.no_grad()
def _filled(module: nn.Module, seed: int) -> nn.Module:
    """``module`` with every floating-point tensor drawn from ``generator(seed)`` (variances positive)."""
    g = generator(seed)
    for name, t in module.state_dict().items():
        if not t.is_floating_point():
            continue
        if name.endswith("running_var") or (isinstance(module, nn.BatchNorm2d) and name == "weight"):
            t.copy_(0.5 + torch.rand(t.shape, generator=g))
        else:
            t.copy_(0.5 * torch.randn(t.shape, generator=g))
    return module


def _conv(seed: int, c_in: int, c_out: int, k: int, **kw: Any) -> nn.Conv2d:
    with torch.random.fork_rng(devices=[]):  # leave the notebook's global random state as it was
        conv = nn.Conv2d(c_in, c_out, k, bias=False, **kw)
    return _filled(conv, seed)


def _bn(seed: int, c: int, eps: float = 1e-5) -> nn.BatchNorm2d:
    return _filled(nn.BatchNorm2d(c, eps=eps).eval(), seed)


# the lab's own test data (test_linear_quantize, test_quantized_fc)
LAB_TENSOR = torch.tensor(
    [
        [0.0523, 0.6364, -0.0968, -0.0020, 0.1940],
        [0.7500, 0.5507, 0.6188, -0.1734, 0.4677],
        [-0.0669, 0.3836, 0.4297, 0.6267, -0.0695],
        [0.1536, -0.0038, 0.6075, 0.6817, 0.0601],
        [0.6446, -0.2500, 0.5376, -0.2226, 0.2333],
    ]
)
LAB_FC_INPUT = torch.tensor(
    [
        [0.6118, 0.7288, 0.8511, 0.2849, 0.8427, 0.7435, 0.4014, 0.2794],
        [0.3676, 0.2426, 0.1612, 0.7684, 0.6038, 0.0400, 0.2240, 0.4237],
        [0.6565, 0.6878, 0.4670, 0.3470, 0.2281, 0.8074, 0.0178, 0.3999],
        [0.1863, 0.3567, 0.6104, 0.0497, 0.0577, 0.2990, 0.6687, 0.8626],
    ]
)
LAB_FC_WEIGHT = torch.tensor(
    [
        [1.2626e-01, -1.4752e-01, 8.1910e-02, 2.4982e-01, -1.0495e-01, -1.9227e-01, -1.8550e-01, -1.5700e-01],
        [2.7624e-01, -4.3835e-01, 5.1010e-02, -1.2020e-01, -2.0344e-01, 1.0202e-01, -2.0799e-01, 2.4112e-01],
        [-3.8216e-01, -2.8047e-01, 8.5238e-02, -4.2504e-01, -2.0952e-01, 3.2018e-01, -3.3619e-01, 2.0219e-01],
        [8.9233e-02, -1.0124e-01, 1.1467e-01, 2.0091e-01, 1.1438e-01, -4.2427e-01, 1.0178e-01, -3.0941e-04],
        [-1.8837e-02, -2.1256e-01, -4.5285e-01, 2.0949e-01, -3.8684e-01, -1.7100e-01, -4.5331e-01, -2.0433e-01],
        [-2.0038e-01, -5.3757e-02, 1.8997e-01, -3.6866e-01, 5.5484e-02, 1.5643e-01, -2.3538e-01, 2.1103e-01],
        [-2.6875e-01, 2.4984e-01, -2.3514e-01, 2.5527e-01, 2.0322e-01, 3.7675e-01, 6.1563e-02, 1.7201e-01],
        [3.3541e-01, -3.3555e-01, -4.3349e-01, 4.3043e-01, -2.0498e-01, -1.8366e-01, -9.1553e-02, -4.1168e-01],
    ]
)
LAB_FC_BIAS = torch.tensor([0.1954, -0.2756, 0.3113, 0.1149, 0.4274, 0.2429, -0.1721, -0.2502])


def _lab_fc(bits: int = 2) -> dict[str, Any]:
    """The quantized layer of the lab's ``test_quantized_fc``, built with the book's functions."""
    q_w, s_w, _ = lab.linear_quantize_weight_per_channel(LAB_FC_WEIGHT, bits)
    q_x, s_x, z_x = lab.linear_quantize_feature(LAB_FC_INPUT, bits)
    q_b, _, _ = lab.linear_quantize_bias_per_output_channel(LAB_FC_BIAS, s_w, s_x)
    _, s_y, z_y = lab.linear_quantize_feature(F.linear(LAB_FC_INPUT, LAB_FC_WEIGHT, LAB_FC_BIAS), bits)
    return {"q_w": q_w, "s_w": s_w, "q_x": q_x, "s_x": s_x, "z_x": z_x, "q_b": q_b, "s_y": s_y, "z_y": z_y}


def _codes_compare(pre: Callable[[Case], Tensor]) -> Callable[[Any, Any, Case], str | None]:
    def compare(expected: Tensor, got: Any, case: Case) -> str | None:
        return _codes_difference(expected, got, pre(case), "the codes")

    return compare
