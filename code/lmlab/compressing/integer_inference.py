"""Integer-only inference (Jacob et al. 2018) for the book's VGG (:class:`lmlab.vision.VGG`).

Every batch norm is folded into the convolution before it (:func:`fold_bn`). Weights become ``bits``-bit integers
with a symmetric scale per output channel (``Z_w = 0``); activations become ``bits``-bit integers with an affine
``(S, Z)`` per tensor, calibrated on sample images. A layer then computes, with integers only::

    acc   = sum (q_w) (q_x - Z_x) + q_b          (int32; q_b = round(b / (S_x S_w)), scale S_x S_w, zero point 0)
    q_y   = clamp(Z_y + rescale(acc), q_min, q_max),   rescale(acc) = round(acc * M),  M = S_x S_w / S_y

where ``M`` is applied as a fixed-point number ``M0 * 2**-n`` (:func:`fixed_point_multiplier`, :func:`rescale`).
There is no ReLU: a ReLU's output has ``r_min = 0``, so ``Z_y = q_min`` and the clamp at ``q_min`` *is* the ReLU.
Max pooling works on the codes directly (the map from codes to reals is increasing); the global average pool
keeps the exact integer sum and folds ``1 / (H W)`` into the classifier's scale.

Convolutions of integer tensors run as float64 convolutions of integer values, which is exact (every product and
partial sum is an integer far below ``2**53``) and works on any device; everything else is int64 arithmetic.
:meth:`IntegerVGG.forward` runs the integer path; :meth:`IntegerVGG.simulate` runs the same quantized network in
float64 arithmetic (fake quantization) as a reference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lmlab.compressing.quantization import check_bits, linear_qparams, minmax_qparams, qrange, quantize
from lmlab.core.checks import check_float, check_module, check_tensor

__all__ = ["IntegerVGG", "fixed_point_multiplier", "fold_bn", "rescale"]


def fixed_point_multiplier(m: Tensor | float) -> tuple[Tensor, Tensor]:
    """Write a positive real multiplier as ``M = (m0 / 2**31) * 2**-n`` with ``m0 / 2**31`` in ``[0.5, 1)``.

    Returns ``(m0, n)`` as int64 tensors of ``m``'s shape: ``m0`` is the int32 mantissa in ``[2**30, 2**31)``,
    ``n`` the shift. The representation error is at most ``2**-32`` of ``m0 / 2**31``, so below ``2**-31`` of
    ``M`` relative.

    Raises:
        TypeError: ``m`` is neither a number nor a tensor.
        ValueError: a multiplier ``m`` that is not finite and > 0.
    """
    if not isinstance(m, Tensor):
        check_float("m", m, 0.0, strict=True)
    mt = torch.as_tensor(m, dtype=torch.float64)
    if not (torch.isfinite(mt).all() and (mt > 0).all()):
        raise ValueError("the multiplier m must be finite and > 0")
    mant, exp = torch.frexp(mt)  # mt = mant * 2**exp, mant in [0.5, 1)
    m0 = torch.round(mant * 2**31).to(torch.int64)
    carry = m0 == 2**31  # mant rounded up to 1: use 0.5 and one more power of two
    m0 = torch.where(carry, torch.full_like(m0, 2**30), m0)
    n = -(exp.to(torch.int64) + carry.to(torch.int64))
    return m0, n


def rescale(acc: Tensor, m0: Tensor, n: Tensor) -> Tensor:
    """``round(acc * m0 / 2**(31 + n))`` in int64 arithmetic (ties rounded up), i.e. ``round(acc * M)``.

    ``acc`` is an integer tensor (int32 range); ``m0`` and ``n`` from :func:`fixed_point_multiplier`, broadcastable
    against it, with ``31 + n`` in [1, 62].

    Raises:
        TypeError: ``acc``, ``m0`` or ``n`` is not an integer tensor.
        ValueError: ``m0`` negative, ``31 + n`` outside [1, 62], or ``acc`` so large that ``acc * m0`` would
            overflow int64 (``max|acc| * max(m0) + 2**(30 + n)`` must stay below ``2**63``).
    """
    for name, t in (("acc", acc), ("m0", m0), ("n", n)):
        check_tensor(name, t)
        if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
            raise TypeError(f"{name} must be an integer tensor, got {t.dtype}")
    shift = 31 + n.to(acc.device)
    if (shift < 1).any() or (shift > 62).any():
        raise ValueError("31 + n must lie in [1, 62]: the multiplier is out of range")
    m0 = m0.to(acc.device)
    if m0.numel() and int(m0.min()) < 0:
        raise ValueError(f"m0 must be >= 0 (from fixed_point_multiplier), got min {int(m0.min())}")
    if acc.numel() and m0.numel():
        a = max(abs(int(acc.max())), abs(int(acc.min())))
        worst = a * int(m0.max()) + 2 ** (int(shift.max()) - 1)
        if worst >= 2**63:
            raise ValueError(
                f"acc too large: max |acc| = {a} times max m0 = {int(m0.max())} overflows int64; "
                f"|acc| must be <= {(2**63 - 1 - 2 ** (int(shift.max()) - 1)) // max(int(m0.max()), 1)}"
            )
    half = torch.bitwise_left_shift(torch.ones_like(shift), shift - 1)
    return torch.bitwise_right_shift(acc.to(torch.int64) * m0 + half, shift)


@torch.no_grad()
def fold_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[Tensor, Tensor]:
    """Weight and bias of the convolution that equals ``bn(conv(x))`` in eval mode:
    ``W' = W g``, ``b' = beta + (b - mu) g`` with ``g = gamma / sqrt(var + eps)`` per output channel.

    Raises:
        TypeError: ``conv`` is not an ``nn.Conv2d`` or ``bn`` not an ``nn.BatchNorm2d``.
        ValueError: ``bn`` has no affine parameters or running statistics, or its channel count differs from
            ``conv.out_channels``.
    """
    if not isinstance(conv, nn.Conv2d):
        raise TypeError(f"conv must be an nn.Conv2d, got {type(conv).__name__}")
    if not isinstance(bn, nn.BatchNorm2d):
        raise TypeError(f"bn must be an nn.BatchNorm2d, got {type(bn).__name__}")
    if bn.num_features != conv.out_channels:
        raise ValueError(
            f"bn has {bn.num_features} channels but conv has {conv.out_channels} output channels: they must match"
        )
    if bn.weight is None or bn.bias is None or bn.running_var is None or bn.running_mean is None:
        raise ValueError("bn must have affine parameters and running statistics (affine=True, track_running_stats)")
    g = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    b = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    return conv.weight * g.reshape(-1, 1, 1, 1), bn.bias + (b - bn.running_mean) * g


class IntegerVGG:
    """A :class:`lmlab.vision.VGG` turned into integers: folded, quantized and calibrated.

    Args:
        model: a trained VGG (read in eval mode, not modified).
        calib: images ``(N, C, H, W)`` on which the activation ranges are measured.
        bits: bit width of weights and activations, in [2, 16] (activations signed, weights symmetric).

    Attributes:
        layers: per conv/linear layer, a dict with ``q_w`` (int64 codes), ``s_w`` (per output channel), ``q_b``
            (int64 bias, scale ``S_x S_w``), ``s_x, z_x`` (input), ``s_y, z_y`` (output), ``m0, n`` (rescale).
        s_in, z_in: the input images' quantization parameters.
    """

    def __init__(self, model: nn.Module, calib: Tensor, *, bits: int = 8) -> None:
        if not hasattr(check_module("model", model), "backbone") or not hasattr(model, "classifier"):
            raise TypeError(
                f"model must be a VGG-style network with .backbone and .classifier, got {type(model).__name__}"
            )
        check_tensor("calib", calib, 4)
        check_bits(bits)
        if bits < 2:
            raise ValueError(f"bits must be >= 2 (symmetric weights), got {bits}")
        self.bits = bits
        self.q_min, self.q_max = qrange(bits)
        dev = next(model.parameters()).device
        steps: list[tuple[str, nn.Module]] = list(model.backbone.named_children())
        self.ops: list[tuple[str, object]] = []
        for name, mod in steps:
            if isinstance(mod, nn.Conv2d):
                self.ops.append(("conv", [mod, None]))
            elif isinstance(mod, nn.BatchNorm2d):
                self.ops[-1][1][1] = mod
            elif isinstance(mod, nn.MaxPool2d):
                self.ops.append(("pool", mod.kernel_size))
            elif not isinstance(mod, nn.ReLU):
                raise ValueError(f"IntegerVGG cannot handle layer {name!r} of type {type(mod).__name__}")
        # float folded weights, then the float forward pass on the calibration images to measure ranges
        folded = []
        for kind, arg in self.ops:
            if kind == "conv":
                w, b = fold_bn(arg[0], arg[1])
                folded.append((w.double(), b.double(), arg[0].padding))
        w_fc, b_fc = model.classifier.weight.detach().double(), model.classifier.bias.detach().double()
        x = calib.to(dev).double()
        self.s_in, self.z_in = linear_qparams(float(x.min()), float(x.max()), bits)
        s_x, z_x = self.s_in, self.z_in
        self.layers: list[dict[str, Tensor]] = []
        i = 0
        for kind, arg in self.ops:
            if kind == "pool":
                x = F.max_pool2d(x, arg)
                continue
            w, b, pad = folded[i]
            i += 1
            x = F.relu(F.conv2d(x, w, b, padding=pad))
            self.layers.append(self._layer(w, b, s_x, z_x, x, per_pixel=1))
            s_x, z_x = self.layers[-1]["s_y"], self.layers[-1]["z_y"]
        hw = x.shape[2] * x.shape[3]
        logits = x.mean(dim=(2, 3)) @ w_fc.T + b_fc
        self.layers.append(self._layer(w_fc, b_fc, s_x / hw, torch.zeros_like(z_x), logits, per_pixel=hw))

    def _layer(self, w: Tensor, b: Tensor, s_x: Tensor, z_x: Tensor, y: Tensor, per_pixel: int) -> dict[str, Tensor]:
        s_w, _ = minmax_qparams(w, self.bits, symmetric=True, per_channel=True)
        q_w = quantize(w, s_w, 0, self.bits)
        s_w = s_w.reshape(-1)
        s_acc = s_x * s_w  # the accumulator's scale, per output channel
        q_b = torch.round(b / s_acc).to(torch.int64)
        s_y, z_y = linear_qparams(float(y.min()), float(y.max()), self.bits)
        m0, n = fixed_point_multiplier(s_acc / s_y)
        d = w.device
        return {
            "q_w": q_w,
            "s_w": s_w,
            "q_b": q_b,
            "s_x": s_x.to(d),
            "z_x": z_x.to(d),
            "s_y": s_y.to(d),
            "z_y": z_y.to(d),
            "m0": m0.to(d),
            "n": n.to(d),
            "m": (s_acc / s_y).to(d),
        }

    @staticmethod
    def _shape(t: Tensor, conv: bool) -> Tensor:
        return t.reshape(1, -1, 1, 1) if conv else t.reshape(1, -1)

    def quantize_input(self, x: Tensor) -> Tensor:
        """Codes of float images ``x`` ``(N, C, H, W)``: int64, in ``[q_min, q_max]``."""
        return quantize(x, self.s_in, self.z_in, self.bits)

    @torch.no_grad()
    def forward(self, q: Tensor, *, trace: list[Tensor] | None = None) -> Tensor:
        """Integer-only forward pass: input codes ``(N, C, H, W)`` (from :meth:`quantize_input`) to logit codes
        ``(N, n_classes)`` (int64). ``trace``, if given, receives every layer's output codes.

        Raises:
            TypeError: ``q`` is not an integer tensor (a bool one is not).
            ValueError: ``q`` is not 4-dimensional or holds a code outside ``[q_min, q_max]``.
        """
        return self._run(q, integer=True, trace=trace)

    @torch.no_grad()
    def simulate(self, q: Tensor, *, trace: list[Tensor] | None = None) -> Tensor:
        """The same network in float64 arithmetic on dequantized values (fake quantization): each layer's output
        is ``clamp(round(y / S_y) + Z_y)`` of the real ``y = conv(S_x (q_x - Z_x), S_w q_w) + S_x S_w q_b``."""
        return self._run(q, integer=False, trace=trace)

    def logits(self, q_out: Tensor) -> Tensor:
        """Real logits ``S_y (q - Z_y)`` of the output codes (float64)."""
        last = self.layers[-1]
        return last["s_y"] * (q_out - last["z_y"]).double()

    def _run(self, q: Tensor, *, integer: bool, trace: list[Tensor] | None) -> Tensor:
        check_tensor("q", q, 4)
        if q.is_floating_point() or q.is_complex() or q.dtype == torch.bool:
            raise TypeError(f"q must be an integer tensor of codes (call quantize_input(x) first), got {q.dtype}")
        if q.numel() and (int(q.min()) < self.q_min or int(q.max()) > self.q_max):
            raise ValueError(
                f"q must hold codes in [{self.q_min}, {self.q_max}] (the {self.bits}-bit input range), "
                f"got values in [{int(q.min())}, {int(q.max())}]"
            )
        q = q.to(self.layers[0]["q_w"].device)
        i = 0
        for kind, arg in self.ops:
            if kind == "pool":
                q = F.max_pool2d(q.double(), arg).to(torch.int64)  # max commutes with the increasing map q -> r
                continue
            q = self._apply(self.layers[i], q, integer, conv=True, padding=arg[0].padding)
            i += 1
            if trace is not None:
                trace.append(q)
        # global average pool: keep the exact integer sum; its scale S / (H W) was folded into the classifier
        z = self.layers[i - 1]["z_y"]
        q = (q - z).sum(dim=(2, 3))
        q = self._apply(self.layers[i], q, integer, conv=False)
        if trace is not None:
            trace.append(q)
        return q

    def _apply(self, p: dict[str, Tensor], q: Tensor, integer: bool, conv: bool, padding: object = 0) -> Tensor:
        xc = (q - p["z_x"]).double()  # q_x - Z_x: real 0 is integer 0 here, so zero padding stays exact
        if integer:
            acc = F.conv2d(xc, p["q_w"].double(), padding=padding) if conv else xc @ p["q_w"].double().T
            acc = acc.round().to(torch.int64) + self._shape(p["q_b"], conv)
            sh = (1, -1, 1, 1) if conv else (1, -1)
            y = p["z_y"] + rescale(acc, p["m0"].reshape(sh), p["n"].reshape(sh))
        else:
            s_w = self._shape(p["s_w"], conv)
            w = p["q_w"].double() * (p["s_w"].reshape(-1, *([1] * (p["q_w"].dim() - 1))))
            x = p["s_x"] * xc
            y_real = (F.conv2d(x, w, padding=padding) if conv else x @ w.T) + self._shape(p["q_b"], conv) * (
                p["s_x"] * s_w
            )
            y = torch.round(y_real / p["s_y"]) + p["z_y"]
        return y.clamp(self.q_min, self.q_max).to(torch.int64)

    def predict(self, x: Tensor) -> Tensor:
        """Class predictions ``(N,)`` for float images, by the integer path."""
        return self.forward(self.quantize_input(x)).argmax(dim=1)

    def weight_bits(self) -> int:
        """Bits to store the integer model: codes, int32 biases, one float32 scale per output channel."""
        return sum(p["q_w"].numel() * self.bits + 32 * p["q_b"].numel() * 2 for p in self.layers)
