"""Pruning a convolutional network: fine-grained magnitude pruning and channel pruning.

* Fine-grained (unstructured) pruning: :func:`magnitude_mask` zeroes the ``k = round(s n)`` weights of smallest
  magnitude of a tensor of ``n`` weights (Python's ``round``: halves go to the even integer, as in
  ``torch.nn.utils.prune``), so the sparsity reached is exactly ``k / n``. :func:`fine_grained_prune` applies a
  per-layer plan and returns the masks; :func:`keep_masked` keeps pruned weights at zero while fine-tuning;
  :func:`sensitivity_scan` prunes one layer at a time and measures the damage.
* Channel (structured) pruning: :func:`channel_prune` removes output channels of every conv layer of a
  :class:`~lmlab.vision.VGG`, the first ones (``"first"``) or the least important ones (``"l2"``: smallest L2 norm
  of the next layer's weights that read the channel), and returns a new, genuinely smaller model.
* :func:`semi_structured_mask`: N:M sparsity (2:4 by default), the pattern sparse tensor cores accelerate.

The layers pruned are :func:`lmlab.compressing.vision.weight_layers` (every conv and linear layer). What a pruned
network costs is counted by :mod:`lmlab.core.cost` (:func:`count_macs`, :func:`count_outputs`) and timed by
:mod:`lmlab.core.timing` (:func:`latency`, :func:`layer_times`); this module re-exports those four for the chapter.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from lmlab.compressing.vision import weight_layers
from lmlab.core.checks import check_callable, check_instance, check_int, check_module, check_tensor
from lmlab.core.cost import count_macs, count_outputs
from lmlab.core.timing import latency, layer_times

__all__ = [
    "apply_masks",
    "channel_importance",
    "channel_prune",
    "count_macs",
    "count_outputs",
    "fine_grained_prune",
    "keep_masked",
    "kept_channels",
    "latency",
    "layer_times",
    "magnitude_mask",
    "n_pruned",
    "semi_structured_mask",
    "sensitivity_scan",
    "sparsity",
    "weight_layers",
]


def _check_sparsity(s: object, name: str = "sparsity") -> float:
    if isinstance(s, bool) or not isinstance(s, (int, float)) or not 0 <= s < 1:
        raise ValueError(f"{name} must be a number in [0, 1), got {s!r}")
    return float(s)


def n_pruned(numel: int, sparsity: float) -> int:
    """How many of ``numel`` weights a target ``sparsity`` in [0, 1) removes: ``round(sparsity * numel)``, with
    Python's round-half-to-even (``torch.nn.utils.prune`` rounds the same way)."""
    numel = check_int("numel", numel, 0)
    return round(_check_sparsity(sparsity) * numel)


def magnitude_mask(weight: Tensor, sparsity: float) -> Tensor:
    """The fine-grained magnitude-pruning mask of ``weight`` (any shape): True where a weight is kept.

    Exactly ``k = n_pruned(weight.numel(), sparsity)`` entries are False: those of smallest ``|w|``. Among equal
    magnitudes the lower flat index is pruned first (a stable sort), so the mask is deterministic.

    Raises:
        ValueError: ``sparsity`` is outside [0, 1) or ``weight`` is empty.
    """
    if check_tensor("weight", weight).numel() == 0:
        raise ValueError("weight must hold at least one element")
    k = n_pruned(weight.numel(), sparsity)
    mask = torch.ones(weight.numel(), dtype=torch.bool, device=weight.device)
    if k:
        order = torch.argsort(weight.detach().abs().flatten(), stable=True)
        mask[order[:k]] = False
    return mask.view_as(weight)


def sparsity(t: Tensor) -> float:
    """Fraction of the entries of ``t`` that are exactly zero."""
    if check_tensor("t", t).numel() == 0:
        raise ValueError("t must hold at least one element")
    return float((t == 0).sum()) / t.numel()


def _layer(model: nn.Module, name: str) -> nn.Module:
    layers = weight_layers(model)
    if name not in layers:
        raise ValueError(f"{name!r} is not a conv or linear layer of the model; prunable layers: {', '.join(layers)}")
    return layers[name]


@torch.no_grad()
def fine_grained_prune(model: nn.Module, plan: Mapping[str, float]) -> dict[str, Tensor]:
    """Prune ``model`` in place by weight magnitude, layer by layer: ``plan`` maps a layer name (see
    :func:`weight_layers`) to its target sparsity in [0, 1). Returns the masks (True = kept) by layer name.

    Raises:
        ValueError: a name is not a conv or linear layer of ``model``, or a sparsity is outside [0, 1).
    """
    check_module("model", model)
    check_instance("plan", plan, Mapping)
    masks = {}
    for name, s in plan.items():
        _check_sparsity(s, f"plan[{name!r}]")
        layer = _layer(model, name)
        masks[name] = magnitude_mask(layer.weight, s)
        layer.weight.mul_(masks[name])
    return masks


@torch.no_grad()
def apply_masks(model: nn.Module, masks: Mapping[str, Tensor]) -> None:
    """Zero the pruned weights again: ``weight *= mask`` for every layer in ``masks``.

    Raises:
        TypeError: a mask is not a bool tensor (True = kept), named by its key ``masks[name]``.
        ValueError: a key is not a conv or linear layer of ``model``, or a mask's shape differs from the weight's.
    """
    check_module("model", model)
    check_instance("masks", masks, Mapping)
    for name, mask in masks.items():
        layer = _layer(model, name)
        check_tensor(f"masks[{name!r}]", mask)
        if mask.dtype != torch.bool:
            raise TypeError(f"masks[{name!r}] must be a bool tensor (True = kept), got dtype {mask.dtype}")
        if mask.shape != layer.weight.shape:
            raise ValueError(f"masks[{name!r}] has shape {tuple(mask.shape)}, weight {tuple(layer.weight.shape)}")
        layer.weight.mul_(mask.to(layer.weight.device))


@contextmanager
def keep_masked(model: nn.Module, masks: Mapping[str, Tensor]) -> Iterator[None]:
    """Inside the ``with`` block, the gradient of every masked weight is multiplied by its mask, so training leaves
    pruned weights at exactly zero. This holds for optimizers whose step is zero for a weight whose gradient has
    always been zero and whose weight decay scales the weight (AdamW, SGD): use a fresh optimizer. The masks are
    applied on entry and again on exit."""
    apply_masks(model, masks)
    handles = []
    for name, mask in masks.items():
        w = _layer(model, name).weight
        m = mask.to(w.device, w.dtype)
        handles.append(w.register_hook(lambda g, m=m: g * m))
    try:
        yield
    finally:
        for h in handles:
            h.remove()
        apply_masks(model, masks)


@torch.no_grad()
def sensitivity_scan(
    model: nn.Module,
    evaluate: Callable[[nn.Module], float],
    sparsities: Sequence[float],
    layers: Sequence[str] | None = None,
) -> dict[str, list[float]]:
    """Prune one layer at a time to each sparsity, measure ``evaluate(model)``, restore the layer.

    Args:
        model: the trained model (left unchanged on return).
        evaluate: ``model -> score``, e.g. validation accuracy.
        sparsities: the sparsities to try, each in [0, 1).
        layers: layer names (default: every conv and linear layer).

    Returns:
        ``{layer name: [score at each sparsity]}``.
    """
    check_module("model", model)
    check_callable("evaluate", evaluate)
    for s in check_instance("sparsities", sparsities, Sequence):
        _check_sparsity(s, "each of sparsities")
    names = list(weight_layers(model)) if layers is None else list(check_instance("layers", layers, Sequence))
    out: dict[str, list[float]] = {}
    for name in names:
        w = _layer(model, name).weight
        out[name] = _scan_weight(w, lambda t, s: t.mul_(magnitude_mask(t, s)), lambda: evaluate(model), sparsities)
    return out


@torch.no_grad()
def _scan_weight(
    weight: Tensor, prune: Callable[[Tensor, float], object], score: Callable[[], float], sparsities: Sequence[float]
) -> list[float]:
    """``score()`` after ``prune(weight, s)`` pruned ``weight`` in place, for each ``s`` in ``sparsities``; the
    weight is restored after each (and on an error). Shared by both sensitivity scans (this module's, the lab's)."""
    saved = weight.detach().clone()
    scores = []
    try:
        for s in sparsities:
            prune(weight, s)
            scores.append(float(score()))
            weight.copy_(saved)
    finally:
        weight.copy_(saved)
    return scores


def semi_structured_mask(weight: Tensor, n: int = 2, m: int = 4) -> Tensor:
    """N:M sparsity: in every group of ``m`` consecutive weights along the reduction dimension (a row of a linear
    weight ``(out, in)``; a conv weight ``(out, in, kh, kw)`` is read as ``(out, in*kh*kw)``), keep the ``n`` of
    largest ``|w|``. Returns a bool mask of ``weight``'s shape (True = kept); sparsity is exactly ``1 - n/m``.

    Raises:
        TypeError: ``weight`` is not a tensor.
        ValueError: ``0 < n < m`` fails, ``weight`` is neither a linear (2-D) nor a conv (4-D) weight, or its row
            length is not a multiple of ``m``.
    """
    if not (isinstance(n, int) and isinstance(m, int) and 0 < n < m):
        raise ValueError(f"need integers 0 < n < m, got n={n!r}, m={m!r}")
    check_tensor("weight", weight, (2, 4))
    rows = weight.detach().reshape(weight.shape[0], -1)
    if rows.shape[1] % m:
        raise ValueError(f"the row length {rows.shape[1]} of weight {tuple(weight.shape)} is not a multiple of m={m}")
    groups = rows.abs().reshape(-1, m)
    keep = torch.zeros_like(groups, dtype=torch.bool)
    keep.scatter_(1, torch.topk(groups, n, dim=1).indices, True)
    return keep.reshape(weight.shape)


# --------------------------------------------------------------------------------------------------------------
# channel pruning
# --------------------------------------------------------------------------------------------------------------


def kept_channels(channels: int, sparsity: float) -> int:
    """Channels kept when a fraction ``sparsity`` in [0, 1) of ``channels`` is removed:
    ``max(1, round((1 - sparsity) * channels))`` (round half to even)."""
    channels = check_int("channels", channels, 1)
    return max(1, round((1 - _check_sparsity(sparsity)) * channels))


def _vgg_blocks(model: nn.Module) -> list[tuple[int, int, nn.Module]]:
    """``(conv index in backbone, bn index, consumer)`` for each conv block; consumer = next conv or classifier."""
    backbone, classifier = getattr(model, "backbone", None), getattr(model, "classifier", None)
    if not isinstance(backbone, nn.Sequential) or not isinstance(classifier, nn.Linear):
        raise ValueError("channel pruning needs a VGG-style model: a .backbone nn.Sequential, a .classifier nn.Linear")
    mods = list(backbone.children())
    convs = []
    for i, mod in enumerate(mods):
        if isinstance(mod, nn.Conv2d):
            if mod.groups != 1 or mod.dilation != (1, 1):
                raise ValueError(f"backbone[{i}] is a grouped or dilated convolution; channel pruning cannot handle it")
            if i + 1 >= len(mods) or not isinstance(mods[i + 1], nn.BatchNorm2d):
                raise ValueError(f"backbone[{i}] (a conv) must be followed by a BatchNorm2d")
            convs.append(i)
        elif not isinstance(mod, (nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d)):
            raise ValueError(
                f"backbone[{i}] is a {type(mod).__name__}; channel pruning handles Conv2d, BatchNorm2d, ReLU and "
                "MaxPool2d only"
            )
    if not convs:
        raise ValueError("the backbone has no Conv2d layer")
    blocks = []
    for j, i in enumerate(convs):
        consumer = mods[convs[j + 1]] if j + 1 < len(convs) else classifier
        blocks.append((i, i + 1, consumer))
    return blocks


def channel_importance(consumer: nn.Module) -> Tensor:
    """Importance of each input channel of ``consumer`` (a conv or linear layer): the L2 norm of the weights that
    read it, ``||W[:, c]||`` over output channels and kernel positions. Shape ``(in_channels,)``."""
    if not isinstance(consumer, (nn.Conv2d, nn.Linear)):
        raise ValueError(f"consumer must be a Conv2d or Linear, got {type(consumer).__name__}")
    w = consumer.weight.detach()
    dims = [d for d in range(w.dim()) if d != 1]
    return w.pow(2).sum(dim=dims).sqrt()


@torch.no_grad()
def channel_prune(model: nn.Module, sparsity: float | Sequence[float], method: str = "l2") -> nn.Module:
    """A copy of a VGG-style ``model`` with output channels removed from every conv layer.

    Conv ``i`` keeps ``kept_channels(c_i, s_i)`` of its ``c_i`` output channels; its batch norm and the input
    channels of the next layer (the next conv, or the classifier after the global average pool) shrink with it.
    ``model`` is not modified. The result is a smaller model of the same class (its ``cfg`` updated when it has a
    :class:`~lmlab.vision.VGGConfig`), on the same device and in the same mode.

    Args:
        model: a :class:`~lmlab.vision.VGG` or any model with a ``backbone`` of Conv2d (groups 1) + BatchNorm2d,
            ReLU and MaxPool2d layers and a ``classifier`` nn.Linear.
        sparsity: the fraction of channels removed, in [0, 1): one number for every conv layer or one per layer.
        method: ``"first"`` keeps channels ``0..k-1`` (naive); ``"l2"`` keeps the ``k`` channels of largest
            :func:`channel_importance` (in their original order).

    Raises:
        ValueError: a sparsity outside [0, 1), a wrong number of sparsities, an unknown method, or a layer the
            function cannot handle.
    """
    if method not in ("first", "l2"):
        raise ValueError(f"method must be 'first' or 'l2', got {method!r}")
    blocks = _vgg_blocks(model)
    one = isinstance(sparsity, (int, float))
    ratios = [sparsity] * len(blocks) if one else list(check_instance("sparsity", sparsity, Sequence))
    if len(ratios) != len(blocks):
        raise ValueError(f"sparsity must be one number or {len(blocks)} numbers (one per conv), got {len(ratios)}")
    for r in ratios:
        _check_sparsity(r)
    new = copy.deepcopy(model)
    mods = list(new.backbone.children())
    new_blocks = _vgg_blocks(new)
    widths = []
    for (ci, bi, _), (_, _, consumer), r in zip(blocks, new_blocks, ratios):
        conv, bn = mods[ci], mods[bi]
        k = kept_channels(conv.out_channels, r)
        if method == "first":
            keep = torch.arange(k, device=conv.weight.device)
        else:
            keep = torch.topk(channel_importance(consumer), k).indices.sort().values
        # this conv's output channels and its batch norm
        conv.weight = nn.Parameter(conv.weight[keep].clone())
        if conv.bias is not None:
            conv.bias = nn.Parameter(conv.bias[keep].clone())
        conv.out_channels = k
        bn.weight = nn.Parameter(bn.weight[keep].clone())
        bn.bias = nn.Parameter(bn.bias[keep].clone())
        bn.running_mean = bn.running_mean[keep].clone()
        bn.running_var = bn.running_var[keep].clone()
        bn.num_features = k
        # the next layer's input channels
        consumer.weight = nn.Parameter(consumer.weight[:, keep].clone())
        if isinstance(consumer, nn.Conv2d):
            consumer.in_channels = k
        else:
            consumer.in_features = k
        widths.append(k)
    cfg = getattr(new, "cfg", None)
    if dataclasses.is_dataclass(cfg) and hasattr(cfg, "channels"):
        it = iter(widths)
        new.cfg = dataclasses.replace(cfg, channels=tuple(c if c == "M" else next(it) for c in cfg.channels))
    return new
