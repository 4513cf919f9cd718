"""The quantization lab's functions (lmlab.lab_quantization) and their checks (lmlab.check.quantization): the
functions against torch and the lab's own expected values; each check passes the book's function and the lab's own
code, and rejects plausible mistakes, naming the case that exposes them."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import lmlab
import lmlab.compressing.lab_quantization as lab
import pytest
import torch
import torch.nn.functional as F
from lmlab.check import CheckFailed
from lmlab.check import _quantization_cases as cases
from lmlab.check import quantization as check_q
from lmlab.compressing.integer_inference import fold_bn
from lmlab.compressing.quantization import kmeans_1d, linear_qparams
from torch import Tensor, nn


def rejects(check: Callable[[Any], None], wrong: Callable[..., Any], case: str | tuple[str, ...]) -> str:
    """``check(wrong)`` raises CheckFailed naming ``case`` (or one of several, where the first to fail depends on
    the draw); returns the message."""
    with pytest.raises(CheckFailed) as e:
        check(wrong)
    text = str(e.value)
    assert any(f"({c}" in text for c in ((case,) if isinstance(case, str) else case)), text
    return text


# ---------------------------------------------------------------------------------------------- the lab's own code


def lab_get_quantized_range(bitwidth: int) -> tuple[int, int]:
    return -(1 << (bitwidth - 1)), (1 << (bitwidth - 1)) - 1


def lab_linear_quantize(fp_tensor: Tensor, bitwidth: int, scale: Any, zero_point: Any, dtype=torch.int8) -> Tensor:
    assert fp_tensor.dtype == torch.float
    assert isinstance(scale, float) or (scale.dtype == torch.float and scale.dim() == fp_tensor.dim())
    assert isinstance(zero_point, int) or (zero_point.dtype == dtype and zero_point.dim() == fp_tensor.dim())
    scaled_tensor = fp_tensor / scale
    rounded_tensor = torch.round(scaled_tensor)
    rounded_tensor = rounded_tensor.to(dtype)
    shifted_tensor = rounded_tensor + zero_point
    quantized_min, quantized_max = lab_get_quantized_range(bitwidth)
    return shifted_tensor.clamp_(quantized_min, quantized_max)


def lab_get_quantization_scale_and_zero_point(fp_tensor: Tensor, bitwidth: int) -> tuple[float, int]:
    quantized_min, quantized_max = lab_get_quantized_range(bitwidth)
    fp_max = fp_tensor.max().item()
    fp_min = fp_tensor.min().item()
    scale = (fp_max - fp_min) / (quantized_max - quantized_min)
    zero_point = quantized_min - fp_min / scale
    if zero_point < quantized_min:
        zero_point = quantized_min
    elif zero_point > quantized_max:
        zero_point = quantized_max
    else:
        zero_point = round(zero_point)
    return scale, int(zero_point)


def lab_linear_quantize_feature(fp_tensor: Tensor, bitwidth: int) -> tuple[Tensor, float, int]:
    scale, zero_point = lab_get_quantization_scale_and_zero_point(fp_tensor, bitwidth)
    return lab_linear_quantize(fp_tensor, bitwidth, scale, zero_point), scale, zero_point


def lab_get_quantization_scale_for_weight(weight: Tensor, bitwidth: int) -> float:
    fp_max = max(weight.abs().max().item(), 5e-7)
    _, quantized_max = lab_get_quantized_range(bitwidth)
    return fp_max / quantized_max


def lab_linear_quantize_weight_per_channel(tensor: Tensor, bitwidth: int) -> tuple[Tensor, Tensor, int]:
    num_output_channels = tensor.shape[0]
    scale = torch.zeros(num_output_channels, device=tensor.device)
    for oc in range(num_output_channels):
        scale[oc] = lab_get_quantization_scale_for_weight(tensor.select(0, oc), bitwidth)
    scale_shape = [1] * tensor.dim()
    scale_shape[0] = -1
    scale = scale.view(scale_shape)
    return lab_linear_quantize(tensor, bitwidth, scale, zero_point=0), scale, 0


def lab_linear_quantize_bias_per_output_channel(bias: Tensor, weight_scale: Any, input_scale: float) -> tuple:
    assert bias.dim() == 1 and bias.dtype == torch.float and isinstance(input_scale, float)
    if isinstance(weight_scale, torch.Tensor):
        weight_scale = weight_scale.view(-1)
    bias_scale = weight_scale * input_scale
    return lab_linear_quantize(bias, 32, bias_scale, zero_point=0, dtype=torch.int32), bias_scale, 0


def lab_shift_quantized_linear_bias(quantized_bias: Tensor, quantized_weight: Tensor, input_zero_point: int) -> Tensor:
    assert quantized_bias.dtype == torch.int32 and isinstance(input_zero_point, int)
    return quantized_bias - quantized_weight.sum(1).to(torch.int32) * input_zero_point


def lab_shift_quantized_conv2d_bias(quantized_bias: Tensor, quantized_weight: Tensor, input_zero_point: int) -> Tensor:
    assert quantized_bias.dtype == torch.int32 and isinstance(input_zero_point, int)
    return quantized_bias - quantized_weight.sum((1, 2, 3)).to(torch.int32) * input_zero_point


def lab_quantized_linear(input, weight, bias, feature_bitwidth, weight_bitwidth, input_zero_point,
                         output_zero_point, input_scale, weight_scale, output_scale):  # fmt: skip
    assert input.dtype == torch.int8 and weight.dtype == input.dtype
    assert bias is None or bias.dtype == torch.int32
    assert isinstance(input_zero_point, int) and isinstance(output_zero_point, int)
    assert isinstance(input_scale, float) and isinstance(output_scale, float)
    assert weight_scale.dtype == torch.float
    # the lab accumulates in int32 on the CPU; float64 of integers is the same, exactly
    output = F.linear(input.double(), weight.double(), None if bias is None else bias.double()).to(torch.int32)
    output = output.float() * (input_scale * weight_scale.view(1, -1) / output_scale)
    output = output + output_zero_point
    return output.round().clamp(*lab_get_quantized_range(feature_bitwidth)).to(torch.int8)


def lab_quantized_conv2d(input, weight, bias, feature_bitwidth, weight_bitwidth, input_zero_point,
                         output_zero_point, input_scale, weight_scale, output_scale, stride, padding, dilation,
                         groups, pad_value=None):  # fmt: skip
    assert len(padding) == 4
    assert input.dtype == torch.int8 and weight.dtype == input.dtype
    assert bias is None or bias.dtype == torch.int32
    assert isinstance(input_zero_point, int) and isinstance(output_zero_point, int)
    assert isinstance(input_scale, float) and isinstance(output_scale, float)
    input = F.pad(input, padding, "constant", input_zero_point if pad_value is None else pad_value)
    output = F.conv2d(input.double(), weight.double(), None, stride, 0, dilation, groups).to(torch.int32)
    if bias is not None:
        output = output + bias.view(1, -1, 1, 1)
    output = output.float() * (input_scale * weight_scale.flatten().view(1, -1, 1, 1) / output_scale)
    output = output + output_zero_point
    return output.round().clamp(*lab_get_quantized_range(feature_bitwidth)).to(torch.int8)


def lab_fuse_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    assert conv.bias is None
    factor = bn.weight.data / torch.sqrt(bn.running_var.data + bn.eps)
    conv.weight.data = conv.weight.data * factor.reshape(-1, 1, 1, 1)
    conv.bias = nn.Parameter(-bn.running_mean.data * factor + bn.bias.data)
    return conv


def fast_kmeans(x: Tensor, k: int, g: torch.Generator, max_iter: int = 100, tol: float = 1e-4) -> tuple:
    """``fast_pytorch_kmeans.KMeans(k).fit_predict`` as the lab calls it: random starting points, Lloyd steps
    until the centroids move less than ``tol`` (squared, summed), empty clusters put at 0; the labels are those of
    the last assignment, the centroids the means after it."""
    points = x.reshape(-1, 1).float()
    centroids = points[torch.randperm(len(points), generator=g)[:k]].clone()
    for _ in range(max_iter):
        closest = (points - centroids.T).abs().argmin(dim=1)
        mask = (closest[None] == torch.arange(k)[:, None]).float()
        means = mask @ points / mask.sum(-1)[:, None]
        means[means != means] = 0
        error = (means - centroids).pow(2).sum()
        centroids = means
        if error <= tol:
            break
    return centroids.view(-1), closest


def lab_k_means_quantize(seed: int) -> Callable[..., tuple]:
    g = lmlab.generator(seed)

    def k_means_quantize(fp32_tensor: Tensor, bitwidth: int = 4, codebook: Any = None) -> tuple:
        if codebook is None:
            centroids, labels = fast_kmeans(fp32_tensor, 2**bitwidth, g)
            codebook = lab.Codebook(centroids, labels)
        fp32_tensor.set_(codebook.centroids[codebook.labels].view_as(fp32_tensor))
        return codebook

    return k_means_quantize


LAB_CODE = {
    "get_quantized_range": lab_get_quantized_range,
    "linear_quantize": lab_linear_quantize,
    "get_quantization_scale_and_zero_point": lab_get_quantization_scale_and_zero_point,
    "linear_quantize_feature": lab_linear_quantize_feature,
    "get_quantization_scale_for_weight": lab_get_quantization_scale_for_weight,
    "linear_quantize_weight_per_channel": lab_linear_quantize_weight_per_channel,
    "linear_quantize_bias_per_output_channel": lab_linear_quantize_bias_per_output_channel,
    "shift_quantized_linear_bias": lab_shift_quantized_linear_bias,
    "shift_quantized_conv2d_bias": lab_shift_quantized_conv2d_bias,
    "quantized_linear": lab_quantized_linear,
    "quantized_conv2d": lab_quantized_conv2d,
    "fuse_conv_bn": lab_fuse_conv_bn,
    "k_means_quantize": lab_k_means_quantize(0),
}


# ---------------------------------------------------------------------------------------------- the lab's functions


def test_linear_quantization_reproduces_the_labs_own_tests() -> None:
    want = torch.tensor(
        [[-1, 1, -1, -1, 0], [1, 1, 1, -2, 0], [-1, 0, 0, 1, -1], [-1, -1, 1, 1, -1], [1, -2, 1, -2, 0]],
        dtype=torch.int8,
    )
    assert torch.equal(lab.linear_quantize(cases.LAB_TENSOR, 2, 1 / 3, -1), want)
    assert lab.get_quantization_scale_and_zero_point(cases.LAB_TENSOR, 2) == pytest.approx((1 / 3, -1))
    fc = cases._lab_fc()
    assert fc["q_b"].tolist() == [3, -2, 3, 1, 3, 2, -2, -2]
    shifted = lab.shift_quantized_linear_bias(fc["q_b"], fc["q_w"], fc["z_x"])
    assert shifted.tolist() == [-1, 0, -3, -1, -3, 0, 2, -4]
    out = lab.quantized_linear(
        fc["q_x"], fc["q_w"], shifted, 2, 2, fc["z_x"], fc["z_y"], fc["s_x"], fc["s_w"], fc["s_y"]
    )
    assert out.tolist() == [
        [0, -1, 0, -1, -1, 0, 1, -2],
        [0, 0, -1, 0, 0, 0, 0, -1],
        [0, 0, 0, -1, 0, 0, 0, -1],
        [0, 0, 0, 0, 0, 1, -1, -2],
    ]


@pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor")
def test_linear_quantize_agrees_with_torch_quantize_per_tensor_and_channel() -> None:
    x = torch.randn(40, 30, generator=lmlab.generator(1)) * 2
    for scale, zero in ((0.02, 0), (0.05, -20), (0.03, 17)):
        ours = lab.linear_quantize(x, 8, scale, zero)
        theirs = torch.quantize_per_tensor(x, scale, zero, torch.qint8).int_repr()
        off = ours.long() - theirs.long()
        assert bool((off.abs() <= 1).all()) and bool(cases._near_half(x.double() / scale)[off != 0].all())
        assert ours.dtype == torch.int8
    w = torch.randn(6, 4, 3, 3, generator=lmlab.generator(2)) * torch.logspace(-2, 1, 6).view(-1, 1, 1, 1)
    q, s, z = lab.linear_quantize_weight_per_channel(w, 8)
    theirs = torch.quantize_per_channel(w, s.view(-1).double(), torch.zeros(6, dtype=torch.long), 0, torch.qint8)
    assert s.shape == (6, 1, 1, 1) and z == 0 and int((q.long() - theirs.int_repr().long()).abs().max()) <= 1
    assert int(q.abs().max()) == 127 and torch.equal(
        q.abs().flatten(1).amax(dim=1), torch.full((6,), 127, dtype=torch.int8)
    )
    # a value beyond the calibrated range is clamped (the lab casts round(r / S) = 382 to int8 before adding Z,
    # which on x86 wraps around to a wrong code, -2)
    relu = torch.linspace(0, 1, 11)
    s_relu, z_relu = lab.get_quantization_scale_and_zero_point(relu, 8)
    assert z_relu == -128
    assert lab.linear_quantize(torch.tensor([0.0, 1.0, 1.5]), 8, s_relu, z_relu).tolist() == [-128, 127, 127]


def test_scale_and_zero_point_agree_with_torch_and_lmlab_when_the_range_holds_zero() -> None:
    from torch.ao.quantization.observer import MinMaxObserver

    for lo, hi in ((-0.9, 2.0), (-3.0, 0.5), (-1.0, 1.3)):
        x = torch.linspace(lo, hi, 17)
        scale, zero = lab.get_quantization_scale_and_zero_point(x, 8)
        obs = MinMaxObserver(dtype=torch.qint8, quant_min=-128, quant_max=127)
        obs(x)
        t_scale, t_zero = obs.calculate_qparams()
        assert scale == pytest.approx(float(t_scale), rel=1e-6) and zero == int(t_zero)
        l_scale, l_zero = linear_qparams(lo, hi, 8)
        assert scale == pytest.approx(float(l_scale), rel=1e-6) and zero == int(l_zero)
        assert isinstance(scale, float) and isinstance(zero, int)
    # without 0 in the range the lab clamps Z (lmlab widens the range instead)
    assert lab.get_quantization_scale_and_zero_point(torch.tensor([0.5, 2.0]), 8)[1] == -128
    assert int(linear_qparams(0.5, 2.0, 8)[1]) == -128 and float(linear_qparams(0.5, 2.0, 8)[0]) > 1.5 / 255
    assert lab.get_quantization_scale_for_weight(torch.zeros(3), 8) == pytest.approx(5e-7 / 127)
    with pytest.raises(ValueError, match="constant"):
        lab.get_quantization_scale_and_zero_point(torch.ones(4), 8)
    with pytest.raises(ValueError, match="bitwidth"):
        lab.get_quantized_range(0)
    with pytest.raises(TypeError, match="fp_tensor"):
        lab.linear_quantize(torch.ones(3, dtype=torch.int32), 8, 0.1, 0)
    with pytest.raises(ValueError, match="do not fit"):
        lab.linear_quantize(torch.ones(3), 16, 0.1, 0)


def test_quantized_layers_match_a_float_reference_within_one_code() -> None:
    g = lmlab.generator(3)
    x, w, b = (
        torch.randn(4, 2, 6, 6, generator=g),
        torch.randn(5, 2, 3, 3, generator=g) * 0.3,
        torch.randn(5, generator=g),
    )
    for conv in (True, False):
        xi = x if conv else x[:, :, :3, :3].flatten(1)
        wi = w if conv else w.flatten(1)
        y = F.relu(F.conv2d(xi, wi, b, padding=1) if conv else F.linear(xi, wi, b))
        q_x, s_x, z_x = lab.linear_quantize_feature(xi, 8)
        q_w, s_w, _ = lab.linear_quantize_weight_per_channel(wi, 8)
        q_b, _, _ = lab.linear_quantize_bias_per_output_channel(b, s_w, s_x)
        s_y, z_y = lab.get_quantization_scale_and_zero_point(y, 8)
        if conv:
            shifted = lab.shift_quantized_conv2d_bias(q_b, q_w, z_x)
            q_y = lab.quantized_conv2d(q_x, q_w, shifted, 8, 8, z_x, z_y, s_x, s_w, s_y, 1, (1, 1, 1, 1), 1, 1)
        else:
            shifted = lab.shift_quantized_linear_bias(q_b, q_w, z_x)
            q_y = lab.quantized_linear(q_x, q_w, shifted, 8, 8, z_x, z_y, s_x, s_w, s_y)
        # the float layer on the dequantized input and weight, quantized once at the end
        x_hat, w_hat = s_x * (q_x.double() - z_x), s_w.double() * q_w.double()
        b_hat = q_b.double() * (s_w.double().view(-1) * s_x)
        y_hat = F.conv2d(x_hat, w_hat, b_hat, padding=1) if conv else F.linear(x_hat, w_hat, b_hat)
        want = torch.round(y_hat / s_y + z_y).clamp(-128, 127)
        assert q_y.dtype == torch.int8 and int((q_y.double() - want).abs().max()) <= 1
        assert (q_y.double() - want).abs().mean() < 0.05
        assert int(q_y.min()) == -128  # the ReLU comes free: the clamp at q_min is real 0


def test_fuse_conv_bn_agrees_with_torch_fusion() -> None:
    conv, bn = cases._conv(4, 3, 5, 3, padding=1, stride=2), cases._bn(5, 5, eps=1e-3)
    fused = lab.fuse_conv_bn(conv, bn)
    theirs = torch.nn.utils.fusion.fuse_conv_bn_eval(copy.deepcopy(conv).eval(), copy.deepcopy(bn).eval())
    assert torch.allclose(fused.weight, theirs.weight, atol=1e-6) and torch.allclose(fused.bias, theirs.bias, atol=1e-6)
    x = torch.randn(2, 3, 7, 7, generator=lmlab.generator(6))
    with torch.no_grad():
        assert torch.allclose(fused(x), bn(conv(x)), atol=1e-5)
    assert conv.bias is None and fused.stride == (2, 2)  # conv itself is untouched
    assert torch.equal(fold_bn(conv, bn)[0], fused.weight.detach())
    with pytest.raises(ValueError, match="channels"):
        lab.fuse_conv_bn(conv, cases._bn(7, 4))


def test_k_means_quantize_is_a_lloyd_fixed_point_with_2_to_the_bits_values() -> None:
    from sklearn.cluster import KMeans

    x = torch.randn(8, 4, 3, 3, generator=lmlab.generator(7)) * 0.1
    t = x.clone()
    book = lab.k_means_quantize(t, 3)
    assert book.centroids.shape == (8,) and book.labels.shape == (x.numel(),)
    assert t.unique().numel() == 8 and torch.equal(t.reshape(-1), book.centroids[book.labels])
    for j in range(8):
        assert float(book.centroids[j]) == pytest.approx(float(x.reshape(-1)[book.labels == j].mean()), abs=1e-6)
    sk = KMeans(8, n_init=4, random_state=0).fit(x.reshape(-1, 1).numpy())
    assert float((t - x).square().sum()) <= 1.5 * float(sk.inertia_)  # a local minimum near sklearn's best
    again = x.clone()
    assert lab.k_means_quantize(again, 3, codebook=book) is book and torch.equal(again, t)  # decode only


# ---------------------------------------------------------------------------------------------- the checks


def test_checks_pass_the_books_functions_and_the_labs_own_code(capsys: pytest.CaptureFixture[str]) -> None:
    for name in check_q.__all__:
        getattr(check_q, name)(getattr(lab, name))
        getattr(check_q, name)(LAB_CODE[name])
    assert capsys.readouterr().out.count("✓") == 2 * len(check_q.__all__)


def test_k_means_check_passes_the_labs_random_seeded_kmeans_for_many_seeds() -> None:
    for seed in range(12):
        check_q.k_means_quantize(lab_k_means_quantize(seed))


def test_range_and_linear_quantize_checks_reject_mistakes() -> None:
    rejects(check_q.get_quantized_range, lambda b: (0, 2**b - 1), "8 bits")  # unsigned
    rejects(check_q.get_quantized_range, lambda b: (-(2 ** (b - 1)) + 1, 2 ** (b - 1) - 1), "8 bits")  # symmetric
    rejects(check_q.get_quantized_range, lambda b: (-(2 ** (b - 1)), 2 ** (b - 1)), "8 bits")  # off by one

    def variant(step: Callable[[Tensor], Tensor] = torch.round, sign: int = 1, clamp: bool = True) -> Callable:
        def f(r: Tensor, bits: int, s: Any, z: Any, dtype: torch.dtype = torch.int8) -> Tensor:
            q = step(r.double() / (s.double() if isinstance(s, Tensor) else s)) + sign * z
            return (q.clamp(*lab.get_quantized_range(bits)) if clamp else q).to(dtype)

        return f

    rejects(check_q.linear_quantize, variant(torch.floor), "the lab's own test")
    rejects(check_q.linear_quantize, variant(sign=-1), "the lab's own test")
    rejects(check_q.linear_quantize, variant(clamp=False), "values outside the range are clamped")
    rejects(
        check_q.linear_quantize,
        lambda r, b, s, z, dtype=torch.int8: lab_linear_quantize(r, b, s, z).to(torch.int8),
        "32-bit codes",
    )


def test_scale_and_zero_point_checks_reject_mistakes() -> None:
    def variant(clamp: bool = True, sign: int = 1, to_int: Callable = round, symmetric: bool = False) -> Callable:
        def f(x: Tensor, bits: int) -> tuple[float, int]:
            q_min, q_max = lab.get_quantized_range(bits)
            lo, hi = float(x.min()), float(x.max())
            s = max(abs(lo), abs(hi)) / q_max if symmetric else (hi - lo) / (q_max - q_min)
            z = to_int(q_min - lo / s) if sign > 0 else to_int(lo / s - q_min)
            return s, int(min(max(z, q_min), q_max) if clamp else z)

        return f

    check = check_q.get_quantization_scale_and_zero_point
    rejects(check, variant(clamp=False), "positive values only")
    rejects(check, variant(sign=-1), "the lab's range")
    rejects(check, variant(to_int=int), "range [-0.9, 2]")
    rejects(check, variant(symmetric=True), "the lab's range")
    text = rejects(check, lambda x, b: (torch.tensor(variant()(x, b)[0]), variant()(x, b)[1]), "the lab's range")
    assert "Python float" in text

    def widened(x: Tensor, bits: int) -> tuple[Tensor, float, int]:  # lmlab's range that always holds 0
        s, z = linear_qparams(float(x.min()), float(x.max()), bits)
        return lab.linear_quantize(x, bits, float(s), int(z)), float(s), int(z)

    def floored(x: Tensor, bits: int) -> tuple[Tensor, float, int]:
        s, z = lab.get_quantization_scale_and_zero_point(x, bits)
        q = (torch.floor(x / s) + z).clamp(*lab.get_quantized_range(bits)).to(torch.int8)
        return q, s, z

    def weight_scale(x: Tensor, bits: int) -> tuple[Tensor, float, int]:
        s = lab.get_quantization_scale_for_weight(x, bits)
        return lab.linear_quantize(x, bits, s, 0), s, 0

    rejects(check_q.linear_quantize_feature, widened, "the lab's test input")
    rejects(check_q.linear_quantize_feature, floored, "the lab's test input")
    rejects(check_q.linear_quantize_feature, weight_scale, "the lab's test input")


def test_weight_and_bias_checks_reject_mistakes() -> None:
    check = check_q.get_quantization_scale_for_weight
    rejects(check, lambda w, b: float(w.max()) / (2 ** (b - 1) - 1), "the largest magnitude is negative")
    rejects(check, lambda w, b: float(w.abs().max()) / 2 ** (b - 1), "a readable weight")
    rejects(check, lambda w, b: float(w.abs().max()) / (2 ** (b - 1) - 1), "an all-zero weight")

    def per_tensor(w: Tensor, b: int) -> tuple[Tensor, Tensor, int]:
        s = torch.full((w.shape[0],) + (1,) * (w.dim() - 1), lab.get_quantization_scale_for_weight(w, b))
        return lab.linear_quantize(w, b, s, 0), s, 0

    def flat_scale(w: Tensor, b: int) -> tuple[Tensor, Tensor, int]:
        q, s, z = lab.linear_quantize_weight_per_channel(w, b)
        return q, s.view(-1), z

    def per_input_channel(w: Tensor, b: int) -> tuple[Tensor, Tensor, int]:
        q, s, z = lab.linear_quantize_weight_per_channel(w.transpose(0, 1).contiguous(), b)
        return q.transpose(0, 1), s.transpose(0, 1), z

    check = check_q.linear_quantize_weight_per_channel
    rejects(check, per_tensor, "a readable linear weight")
    rejects(check, flat_scale, "a readable linear weight")
    rejects(check, per_input_channel, "a readable linear weight")

    def bias_variant(scale: Callable[[Tensor, float], Any], dtype: torch.dtype = torch.int32) -> Callable:
        def f(bias: Tensor, s_w: Tensor, s_in: float) -> tuple[Tensor, Any, int]:
            s_b = scale(s_w.view(-1), s_in)
            return lab.linear_quantize(bias, 32 if dtype == torch.int32 else 8, s_b, 0, dtype=dtype), s_b, 0

        return f

    check = check_q.linear_quantize_bias_per_output_channel
    rejects(check, bias_variant(lambda s_w, s_in: s_w), "the lab's own test")
    rejects(check, bias_variant(lambda s_w, s_in: s_w / s_in), "the lab's own test")
    rejects(check, bias_variant(lambda s_w, s_in: s_w * s_in, dtype=torch.int8), "the lab's own test")


def test_bias_shift_checks_reject_mistakes() -> None:
    lin, conv = check_q.shift_quantized_linear_bias, check_q.shift_quantized_conv2d_bias
    rejects(lin, lambda b, w, z: b + w.sum(1).to(torch.int32) * z, "the lab's own test")  # wrong sign
    rejects(lin, lambda b, w, z: (b - w.sum(0)[: len(b)] * z).to(torch.int32), "the lab's own test")  # wrong axis
    rejects(lin, lambda b, w, z: b - (w * z).sum(1).to(torch.int32), "large codes and zero point -128")  # int8 product
    rejects(conv, lambda b, w, z: b + w.sum((1, 2, 3)).to(torch.int32) * z, "a readable 1x1 conv")
    rejects(conv, lambda b, w, z: (b - w.sum((0, 2, 3))[: len(b)] * z).to(torch.int32), "a readable 1x1 conv")
    rejects(conv, lambda b, w, z: b - (w * z).sum((1, 2, 3)).to(torch.int32), "large codes and zero point -128")
    rejects(conv, lambda b, w, z: b - w.sum((1, 2, 3)) * z, "a readable 1x1 conv")  # int64, not int32


def test_quantized_layer_checks_reject_mistakes() -> None:
    def linear(
        no_output_scale: bool = False, minus_z: bool = False, shift_input: bool = False, transposed: bool = False
    ) -> Callable:
        def f(x, w, b, fb, wb, z_in, z_out, s_in, s_w, s_out):  # noqa: ANN001, ANN202
            w = w.double() if transposed else w.double().T
            acc = (x.double() - (z_in if shift_input else 0)) @ w + (0 if b is None else b.double())
            m = s_in * s_w.double().view(1, -1) / (1.0 if no_output_scale else s_out)
            y = acc * m + (-z_out if minus_z else z_out)
            return y.round().clamp(*lab.get_quantized_range(fb)).to(torch.int8)

        return f

    rejects(check_q.quantized_linear, linear(no_output_scale=True), "the lab's own test")
    rejects(check_q.quantized_linear, linear(minus_z=True), "8 bits, zero points")
    rejects(check_q.quantized_linear, linear(shift_input=True), "the lab's own test")
    rejects(check_q.quantized_linear, linear(transposed=True), "the lab's own test")  # its weight is square

    def conv_variant(**kw: Any) -> Callable:
        def f(*args: Any) -> Tensor:
            args = list(args)
            if kw.get("per_tensor"):
                args[8] = args[8].flatten()[:1].expand(args[8].shape).contiguous()
            if kw.get("no_bias"):
                args[2] = None
            return lab_quantized_conv2d(*args, pad_value=kw.get("pad_value"))

        return f

    rejects(check_q.quantized_conv2d, conv_variant(pad_value=0), "3x3, padding 1, input zero point -60")
    rejects(check_q.quantized_conv2d, conv_variant(per_tensor=True), "a 1x1 conv")
    rejects(check_q.quantized_conv2d, conv_variant(no_bias=True), "a 1x1 conv")


def test_fuse_conv_bn_check_rejects_mistakes() -> None:
    def variant(eps: bool = True, mean: bool = True, sqrt: bool = True) -> Callable:
        def f(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
            var = bn.running_var + (bn.eps if eps else 0.0)
            factor = bn.weight / (var.sqrt() if sqrt else var)
            fused = copy.deepcopy(conv)
            fused.weight = nn.Parameter((conv.weight * factor.view(-1, 1, 1, 1)).detach())
            fused.bias = nn.Parameter((bn.bias - (bn.running_mean * factor if mean else 0.0)).detach())
            return fused

        return f

    rejects(check_q.fuse_conv_bn, variant(eps=False), "a 1x1 conv")  # its running variance 0.01 makes eps count
    rejects(check_q.fuse_conv_bn, variant(mean=False), "a 1x1 conv")
    rejects(check_q.fuse_conv_bn, variant(sqrt=False), "a 1x1 conv")


def test_k_means_check_rejects_mistakes() -> None:
    def clusters(n: Callable[[int], int], in_place: bool = True) -> Callable:
        def f(t: Tensor, bitwidth: int = 4) -> tuple:
            c, labels = kmeans_1d(t, n(bitwidth))
            if in_place:
                t.copy_(c[labels])
            return lab.Codebook(c, labels.reshape(-1))

        return f

    def uniform_grid(t: Tensor, bitwidth: int = 4) -> tuple:
        c = torch.linspace(float(t.min()), float(t.max()), 2**bitwidth)
        labels = (t.reshape(-1, 1) - c).abs().argmin(dim=1)
        t.copy_(c[labels].view_as(t))
        return lab.Codebook(c, labels)

    rejects(
        check_q.k_means_quantize, clusters(lambda b: b), ("the lab's own test tensor", "a conv weight", "random")
    )  # bitwidth clusters, not 2**bitwidth
    rejects(check_q.k_means_quantize, clusters(lambda b: 2 ** (b + 1)), "the lab's own test tensor")  # too many values
    text = rejects(check_q.k_means_quantize, clusters(lambda b: 2**b, in_place=False), "the lab's own test tensor")
    assert "in place" in text
    rejects(check_q.k_means_quantize, uniform_grid, "the lab's own test tensor")


def test_the_lab_split_keeps_one_name_per_function() -> None:
    from lmlab.check import kmeans as check_kmeans
    from lmlab.compressing import lab_kmeans

    assert check_q.__all__ == list(lab.LAB_FUNCTIONS)
    assert all(callable(getattr(lab, name)) and callable(getattr(check_q, name)) for name in lab.LAB_FUNCTIONS)
    assert lab.k_means_quantize is lab_kmeans.k_means_quantize and lab.Codebook is lab_kmeans.Codebook
    assert check_q.k_means_quantize is check_kmeans.k_means_quantize
    with pytest.raises(TypeError, match="fp32_tensor must be a floating-point tensor"):
        lab.k_means_quantize(torch.arange(6), 2)
    with pytest.raises(ValueError, match="fp32_tensor is empty"):
        lab.k_means_quantize(torch.zeros(0), 2)
    with pytest.raises(ValueError, match=r"bitwidth must be an int in \[1, 16\]"):
        lab.k_means_quantize(torch.randn(6), 17)
