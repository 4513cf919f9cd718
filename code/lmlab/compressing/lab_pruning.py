"""The functions of the homework's pruning lab (MIT 6.S965 Fall 2022, lab 1), with the lab's own conventions.

These are the book's reference for the lab's "homework's own setting" and for :mod:`lmlab.check.pruning`. They
keep the lab's names and signatures; where the lab's convention differs from the chapter's :mod:`lmlab.pruning`,
the docstring says so. In short:

* :func:`fine_grained_prune` keeps the weights with ``|w| > kthvalue(|w|, num_zeros)``, ``num_zeros = round(numel
  * sparsity)``: a *strict* threshold, so every weight whose magnitude ties with the threshold is pruned and the
  lab can prune more than ``num_zeros`` weights. :func:`lmlab.pruning.magnitude_mask` prunes exactly ``k``.
* :func:`sensitivity_scan` prunes every parameter with more than one dimension (conv and linear weights, keyed by
  the *parameter* name, ``backbone.conv0.weight``) with :func:`fine_grained_prune`;
  :func:`lmlab.pruning.sensitivity_scan` keys by module name and prunes exactly ``k``.
* :func:`get_num_channels_to_keep` is ``int(round(c (1 - r)))`` and may be 0; :func:`lmlab.pruning.kept_channels`
  keeps at least one channel.
* :func:`channel_prune` prunes every conv's output channels but the last one's (the classifier is left as it is)
  and always keeps the first channels; :func:`lmlab.pruning.channel_prune` prunes every conv, the last included.
* :func:`apply_channel_sorting` sorts the output channels of every conv but the last by the next conv's
  :func:`get_input_channel_importance`, largest first, so that :func:`channel_prune` then keeps the important ones.

Shapes: a conv weight is ``(c_out, c_in, k_h, k_w)``, a linear weight ``(out, in)`` (PyTorch's layouts). The models
are :class:`lmlab.vision.VGG` (or any model with a ``backbone`` ``nn.Sequential`` of Conv2d + BatchNorm2d, ReLU and
MaxPool2d layers and a ``classifier`` ``nn.Linear``), as in the lab.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from lmlab import pruning as _pruning
from lmlab.core.checks import check_instance, check_int, check_module, check_tensor

LAB_FUNCTIONS = (
    "apply_channel_sorting",
    "channel_prune",
    "fine_grained_prune",
    "get_input_channel_importance",
    "get_num_channels_to_keep",
    "sensitivity_scan",
)
"""The functions the lab asks for, by name: each has a check of the same name in :mod:`lmlab.check.pruning`."""

__all__ = ["DEFAULT_SPARSITIES", *LAB_FUNCTIONS]

DEFAULT_SPARSITIES: tuple[float, ...] = tuple(np.arange(0.4, 1.0, 0.1).tolist())
"""The lab's scan, ``np.arange(0.4, 1.0, 0.1)``: 0.4, 0.5, ..., 0.9 (as the floats ``arange`` makes)."""


def _ratio(x: object, name: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not 0 <= x <= 1:
        raise ValueError(f"{name} must be a number in [0, 1], got {x!r}")
    return float(x)


def _weight(x: object, name: str, min_dim: int = 1) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
    if x.numel() == 0:
        raise ValueError(f"{name} is empty")
    if x.dim() < min_dim:
        raise ValueError(f"{name} must have at least {min_dim} dimensions, got shape {tuple(x.shape)}")
    return x


@torch.no_grad()
def fine_grained_prune(tensor: Tensor, sparsity: float) -> Tensor:
    """Magnitude-based fine-grained pruning of one tensor, in place, as the lab does it.

    ``num_zeros = round(tensor.numel() * sparsity)`` (Python's ``round``, half to even); the threshold is the
    ``num_zeros``-th smallest ``|w|`` (``kthvalue``); a weight is kept when ``|w| > threshold`` (strictly), so every
    weight tied with the threshold is pruned too. Sparsity 0 (or a ``num_zeros`` that rounds to 0) keeps every
    weight, sparsity 1 prunes every weight. (The lab's own code returns a float mask of ones or zeros at sparsity 0
    and 1 and fails on a ``num_zeros`` of 0 at a sparsity above 0; this one always returns a bool mask.)

    Args:
        tensor: a weight of any shape (floating point); its pruned entries are set to 0 in place.
        sparsity: the target fraction of zeros, in [0, 1].

    Returns:
        The mask, a bool tensor of ``tensor``'s shape: True where the weight is kept.

    Raises:
        TypeError: ``tensor`` is not a floating-point tensor.
        ValueError: ``tensor`` is empty or ``sparsity`` is outside [0, 1].
    """
    _weight(tensor, "tensor")
    s = _ratio(sparsity, "sparsity")
    num_zeros = round(tensor.numel() * s)
    if num_zeros == 0:
        return torch.ones_like(tensor, dtype=torch.bool)
    if num_zeros >= tensor.numel():
        tensor.zero_()
        return torch.zeros_like(tensor, dtype=torch.bool)
    importance = tensor.detach().abs()
    threshold = importance.reshape(-1).kthvalue(num_zeros).values
    mask = importance > threshold
    tensor.mul_(mask)
    return mask


def _prunable(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return [(n, p) for n, p in model.named_parameters() if p.dim() > 1]


@torch.no_grad()
def sensitivity_scan(
    model: nn.Module,
    evaluate: Callable[[nn.Module], float],
    sparsities: Sequence[float] = DEFAULT_SPARSITIES,
) -> dict[str, list[float]]:
    """Prune one weight at a time to each sparsity and measure the model, as the lab's scan does.

    For every parameter with more than one dimension (``named_parameters`` order: conv and linear weights, the
    classifier included; batch-norm and bias vectors are skipped), for each sparsity in turn: prune it with
    :func:`fine_grained_prune`, record ``evaluate(model)``, restore the weight. The lab passes a dataloader and
    returns ``(sparsities, accuracies)`` lists; here ``evaluate`` is any ``model -> score`` and the scores come
    keyed by parameter name.

    Args:
        model: the trained model; left unchanged on return.
        evaluate: ``model -> score`` (the lab: accuracy in percent on the test set).
        sparsities: the sparsities to try, each in [0, 1]; default :data:`DEFAULT_SPARSITIES` (the lab's).

    Returns:
        ``{parameter name: [score at each sparsity]}``, e.g. ``{"backbone.conv0.weight": [...], ...}``.

    Raises:
        TypeError: ``evaluate`` is not callable.
        ValueError: a sparsity outside [0, 1].
    """
    check_module("model", model)
    if not callable(evaluate):
        raise TypeError(f"evaluate must be a function model -> score, got {type(evaluate).__name__}")
    levels = [_ratio(s, "each of sparsities") for s in check_instance("sparsities", sparsities, Sequence)]
    out: dict[str, list[float]] = {}
    for name, param in _prunable(model):
        out[name] = _pruning._scan_weight(param.detach(), fine_grained_prune, lambda: evaluate(model), levels)
    return out


def get_num_channels_to_keep(channels: int, prune_ratio: float) -> int:
    """Channels kept when a fraction ``prune_ratio`` of ``channels`` is removed: ``int(round(channels * (1 -
    prune_ratio)))`` (half to even; may be 0, where :func:`lmlab.pruning.kept_channels` keeps at least one).

    Raises:
        TypeError: ``channels`` is not an int.
        ValueError: ``channels`` < 1 (a layer has channels), or ``prune_ratio`` is outside [0, 1].
    """
    channels = check_int("channels", channels, 1)
    return int(round(channels * (1.0 - _ratio(prune_ratio, "prune_ratio"))))


def get_input_channel_importance(weight: Tensor) -> Tensor:
    """Importance of each input channel of a layer: the Frobenius norm of ``weight[:, i]`` (all output channels and
    kernel positions that read input channel ``i``), as in the lab.

    Args:
        weight: a conv weight ``(c_out, c_in, k_h, k_w)`` or a linear weight ``(out, in)``.

    Returns:
        ``(c_in,)``, in ``weight``'s dtype (the same numbers as :func:`lmlab.pruning.channel_importance` of the
        layer).

    Raises:
        TypeError: ``weight`` is not a floating-point tensor.
        ValueError: ``weight`` is neither a linear (2-D) nor a conv (4-D) weight, or is empty.
    """
    w = _weight(check_tensor("weight", weight, (2, 4)), "weight", min_dim=2).detach()
    dims = [d for d in range(w.dim()) if d != 1]
    return w.pow(2).sum(dim=dims).sqrt()


def _convs_and_bns(model: nn.Module) -> tuple[list[nn.Conv2d], list[nn.BatchNorm2d]]:
    """The backbone's convs and batch norms in order, checked the way :func:`lmlab.pruning.channel_prune` checks."""
    _pruning._vgg_blocks(model)  # raises a ValueError naming the layer it cannot handle
    convs = [m for m in model.backbone if isinstance(m, nn.Conv2d)]
    bns = [m for m in model.backbone if isinstance(m, nn.BatchNorm2d)]
    return convs, bns


@torch.no_grad()
def channel_prune(model: nn.Module, prune_ratio: float | Sequence[float]) -> nn.Module:
    """A pruned copy of a VGG-style ``model``, as the lab's naive channel pruning makes it.

    Ratio ``i`` applies between conv ``i`` and conv ``i + 1``: conv ``i`` keeps its *first*
    :func:`get_num_channels_to_keep` ``(c_i, r_i)`` output channels, its batch norm the same ones, conv ``i + 1``
    the same input channels. The last conv and the classifier are not pruned. ``model`` is not modified.
    (This is :func:`lmlab.pruning.channel_prune` with ``method="first"`` and ratio 0 for the last conv; the lab
    shrinks the tensors without updating ``out_channels``, this copy updates them.)

    Args:
        model: a :class:`lmlab.vision.VGG` (``backbone`` of Conv2d + BatchNorm2d blocks, ``classifier``).
        prune_ratio: one fraction in [0, 1) for every conv but the last, or one per conv but the last.

    Returns:
        The pruned model (a new module, same class, same device).

    Raises:
        ValueError: a ratio outside [0, 1), a wrong number of ratios, a layer the function cannot handle, or a
            layer that would keep no channel.
    """
    convs, _ = _convs_and_bns(model)
    n = len(convs) - 1
    if isinstance(prune_ratio, (int, float)) and not isinstance(prune_ratio, bool):
        ratios = [prune_ratio] * n
    elif isinstance(prune_ratio, Sequence) and not isinstance(prune_ratio, str):
        ratios = list(prune_ratio)
    else:
        raise ValueError(f"prune_ratio must be a number or a list of numbers, got {prune_ratio!r}")
    if len(ratios) != n:
        raise ValueError(
            f"prune_ratio must be one number or {n} numbers (one per conv but the last), got {len(ratios)}"
        )
    for i, (conv, r) in enumerate(zip(convs, ratios)):
        if _ratio(r, f"prune_ratio[{i}]") >= 1:
            raise ValueError(f"prune_ratio[{i}] must be < 1, got {r!r}")
        if get_num_channels_to_keep(conv.out_channels, r) == 0:
            raise ValueError(f"prune_ratio[{i}]={r!r} would keep no channel of the {conv.out_channels} of conv {i}")
    return _pruning.channel_prune(model, [*ratios, 0.0], method="first")


@torch.no_grad()
def apply_channel_sorting(model: nn.Module) -> nn.Module:
    """A copy of a VGG-style ``model`` whose channels are sorted by importance, largest first, as in the lab.

    For every conv but the last: the importance of its output channels is :func:`get_input_channel_importance` of
    the *next* conv's weight; the output channels of the conv, its batch norm (weight, bias, running mean and
    variance) and the input channels of the next conv are permuted by ``argsort(importance, descending=True)``.
    The copy computes the same function as ``model``; ``model`` is not modified.

    Raises:
        ValueError: a layer the function cannot handle.
    """
    _convs_and_bns(model)
    new = copy.deepcopy(model)
    convs, bns = _convs_and_bns(new)
    for prev_conv, prev_bn, next_conv in zip(convs[:-1], bns[:-1], convs[1:]):
        order = torch.argsort(get_input_channel_importance(next_conv.weight), descending=True)
        prev_conv.weight.copy_(prev_conv.weight[order])
        if prev_conv.bias is not None:
            prev_conv.bias.copy_(prev_conv.bias[order])
        for t in (prev_bn.weight, prev_bn.bias, prev_bn.running_mean, prev_bn.running_var):
            t.copy_(t[order])
        next_conv.weight.copy_(next_conv.weight[:, order])
    return new
