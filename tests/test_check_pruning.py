"""The pruning lab's functions (lmlab.lab_pruning) and their checks (lmlab.check.pruning): each check passes the
book's function and the lab's own code, and rejects plausible mistakes, naming the case that exposes them."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import lmlab
import lmlab.compressing.lab_pruning as lab
import pytest
import torch
from lmlab import pruning
from lmlab.check import CheckFailed
from lmlab.check import pruning as check_pruning
from lmlab.compressing.vision import VGG
from torch import Tensor, nn


def rejects(check: Callable[[Any], None], wrong: Callable[..., Any], case: str) -> str:
    """``check(wrong)`` raises CheckFailed naming ``case``; returns the message."""
    with pytest.raises(CheckFailed) as e:
        check(wrong)
    text = str(e.value)
    assert f"({case}" in text, text
    return text


def vgg(channels: tuple[int | str, ...], seed: int, in_channels: int = 1) -> VGG:
    return check_pruning._vgg(channels, seed, in_channels=in_channels)


# ---------------------------------------------------------------------------------------------- the lab's own code


def lab_fine_grained_prune(tensor: Tensor, sparsity: float) -> Tensor:
    sparsity = min(max(0.0, sparsity), 1.0)
    if sparsity == 1.0:
        tensor.zero_()
        return torch.zeros_like(tensor)
    elif sparsity == 0.0:
        return torch.ones_like(tensor)
    num_elements = tensor.numel()
    num_zeros = round(num_elements * sparsity)
    importance = tensor.abs()
    threshold = importance.view(-1).kthvalue(num_zeros).values
    mask = torch.gt(importance, threshold)
    tensor.mul_(mask)
    return mask


@torch.no_grad()
def lab_sensitivity_scan(model: nn.Module, evaluate: Callable[[nn.Module], float], sparsities: list[float]) -> dict:
    out = {}
    for name, param in [(n, p) for (n, p) in model.named_parameters() if p.dim() > 1]:
        param_clone = param.detach().clone()
        accuracy = []
        for sparsity in sparsities:
            lab_fine_grained_prune(param.detach(), sparsity=sparsity)
            accuracy.append(evaluate(model))
            param.copy_(param_clone)
        out[name] = accuracy
    return out


def lab_get_num_channels_to_keep(channels: int, prune_ratio: float) -> int:
    return int(round(channels * (1.0 - prune_ratio)))


def lab_get_input_channel_importance(weight: Tensor) -> Tensor:
    importances = []
    for i_c in range(weight.shape[1]):
        channel_weight = weight.detach()[:, i_c]
        importances.append(torch.norm(channel_weight).view(1))
    return torch.cat(importances)


@torch.no_grad()
def lab_channel_prune(model: nn.Module, prune_ratio: float | list[float], copy_first: bool = True) -> nn.Module:
    n_conv = len([m for m in model.backbone if isinstance(m, nn.Conv2d)])
    if not isinstance(prune_ratio, list):
        prune_ratio = [prune_ratio] * (n_conv - 1)
    model = copy.deepcopy(model) if copy_first else model
    all_convs = [m for m in model.backbone if isinstance(m, nn.Conv2d)]
    all_bns = [m for m in model.backbone if isinstance(m, nn.BatchNorm2d)]
    for i_ratio, p_ratio in enumerate(prune_ratio):
        prev_conv, prev_bn, next_conv = all_convs[i_ratio], all_bns[i_ratio], all_convs[i_ratio + 1]
        n_keep = lab_get_num_channels_to_keep(prev_conv.out_channels, p_ratio)
        prev_conv.weight.set_(prev_conv.weight.detach()[:n_keep])
        prev_bn.weight.set_(prev_bn.weight.detach()[:n_keep])
        prev_bn.bias.set_(prev_bn.bias.detach()[:n_keep])
        prev_bn.running_mean.set_(prev_bn.running_mean.detach()[:n_keep])
        prev_bn.running_var.set_(prev_bn.running_var.detach()[:n_keep])
        next_conv.weight.set_(next_conv.weight.detach()[:, :n_keep])
    return model


@torch.no_grad()
def lab_apply_channel_sorting(model: nn.Module, descending: bool = True, bn: bool = True) -> nn.Module:
    model = copy.deepcopy(model)
    all_convs = [m for m in model.backbone if isinstance(m, nn.Conv2d)]
    all_bns = [m for m in model.backbone if isinstance(m, nn.BatchNorm2d)]
    for i_conv in range(len(all_convs) - 1):
        prev_conv, prev_bn, next_conv = all_convs[i_conv], all_bns[i_conv], all_convs[i_conv + 1]
        importance = lab_get_input_channel_importance(next_conv.weight)
        sort_idx = torch.argsort(importance, descending=descending)
        prev_conv.weight.copy_(torch.index_select(prev_conv.weight.detach(), 0, sort_idx))
        for tensor_name in ["weight", "bias", "running_mean", "running_var"] if bn else []:
            tensor_to_apply = getattr(prev_bn, tensor_name)
            tensor_to_apply.copy_(torch.index_select(tensor_to_apply.detach(), 0, sort_idx))
        next_conv.weight.copy_(torch.index_select(next_conv.weight.detach(), 1, sort_idx))
    return model


# ---------------------------------------------------------------------------------------------- the lab's functions


def test_fine_grained_prune_reproduces_the_labs_test_and_prunes_ties() -> None:
    t = torch.tensor(
        [
            [-0.46, -0.40, 0.39, 0.19, 0.37],
            [0.00, 0.40, 0.17, -0.15, 0.16],
            [-0.20, -0.23, 0.36, 0.25, 0.03],
            [0.24, 0.41, 0.07, 0.13, -0.15],
            [0.48, -0.09, -0.36, 0.12, 0.45],
        ]
    )
    want = torch.tensor(
        [
            [True, True, False, False, False],
            [False, True, False, False, False],
            [False, False, False, False, False],
            [False, True, False, False, False],
            [True, False, False, False, True],
        ]
    )
    w = t.clone()
    mask = lab.fine_grained_prune(w, 0.75)
    assert mask.dtype == torch.bool and torch.equal(mask, want) and torch.equal(w, t * want)
    # the strict threshold prunes all three |w| = 0.2 where magnitude_mask prunes exactly round(0.5 * 6) = 3
    ties = torch.tensor([0.1, -0.2, 0.2, 0.3, -0.2, 0.5])
    assert int((~lab.fine_grained_prune(ties.clone(), 0.5)).sum()) == 4
    assert int((~pruning.magnitude_mask(ties, 0.5)).sum()) == 3
    # without ties the two agree
    x = torch.randn(7, 9, generator=lmlab.generator(0))
    assert torch.equal(lab.fine_grained_prune(x.clone(), 0.6), pruning.magnitude_mask(x, 0.6))
    assert lab.fine_grained_prune(x.clone(), 0.0).all() and not lab.fine_grained_prune(x.clone(), 1.0).any()
    assert lab.fine_grained_prune(x.clone(), 0.001).all()  # round(0.063) = 0 zeros (the lab's kthvalue(0) fails)
    with pytest.raises(ValueError, match="sparsity"):
        lab.fine_grained_prune(x, 1.5)
    with pytest.raises(TypeError, match="tensor"):
        lab.fine_grained_prune(x.long(), 0.5)


def test_sensitivity_scan_restores_the_model_and_matches_lmlabs_scan_without_ties() -> None:
    model = vgg((3, "M", 4), 1)
    score = check_pruning._Score(2, model)
    before = copy.deepcopy(model.state_dict())
    out = lab.sensitivity_scan(model, score, [0.3, 0.7])
    assert list(out) == ["backbone.conv0.weight", "backbone.conv1.weight", "classifier.weight"]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    theirs = pruning.sensitivity_scan(model, score, [0.3, 0.7])  # keyed by module name, exact k (no ties here)
    assert [out[k + ".weight"] for k in theirs] == list(theirs.values())
    assert lab.DEFAULT_SPARSITIES[0] == pytest.approx(0.4) and len(lab.DEFAULT_SPARSITIES) == 6
    with pytest.raises(ValueError, match="sparsities"):
        lab.sensitivity_scan(model, score, [0.5, 2.0])
    with pytest.raises(TypeError, match="evaluate"):
        lab.sensitivity_scan(model, 3, [0.5])  # type: ignore[arg-type]


def test_channel_functions_agree_with_lmlab_and_keep_the_function() -> None:
    assert lab.get_num_channels_to_keep(5, 0.5) == 2 and lab.get_num_channels_to_keep(3, 0.9) == 0
    assert pruning.kept_channels(3, 0.9) == 1  # lmlab keeps at least one channel
    model = vgg((6, "M", 5, 4), 3, in_channels=2)
    conv1 = model.backbone.conv1
    assert torch.allclose(lab.get_input_channel_importance(conv1.weight), pruning.channel_importance(conv1))
    x = check_pruning._images(4, model)
    pruned = lab.channel_prune(model, 0.4)
    assert [m.weight.shape[0] for m in pruned.backbone if isinstance(m, nn.Conv2d)] == [4, 3, 4]
    assert pruned(x).shape == (4, 3) and model.backbone.conv0.weight.shape[0] == 6
    with torch.no_grad():
        model.eval()
        sorted_model = lab.apply_channel_sorting(model).eval()
        assert torch.allclose(sorted_model(x), model(x), atol=1e-5)
    imp = lab.get_input_channel_importance(sorted_model.backbone.conv1.weight)
    assert torch.equal(imp, imp.sort(descending=True).values)
    with pytest.raises(ValueError, match="prune_ratio"):
        lab.channel_prune(model, [0.5])
    with pytest.raises(ValueError, match="keep no channel"):
        lab.channel_prune(vgg((2, 3), 5), 0.9)
    with pytest.raises(ValueError, match="weight"):
        lab.get_input_channel_importance(torch.ones(3))


# ---------------------------------------------------------------------------------------------- the checks


def test_checks_pass_the_books_functions_and_the_labs_own_code(capsys: pytest.CaptureFixture[str]) -> None:
    for name in check_pruning.__all__:
        getattr(check_pruning, name)(getattr(lab, name))
    check_pruning.fine_grained_prune(lab_fine_grained_prune)
    check_pruning.sensitivity_scan(lab_sensitivity_scan)
    check_pruning.get_num_channels_to_keep(lab_get_num_channels_to_keep)
    check_pruning.get_input_channel_importance(lab_get_input_channel_importance)
    check_pruning.channel_prune(lab_channel_prune)
    check_pruning.apply_channel_sorting(lab_apply_channel_sorting)
    assert capsys.readouterr().out.count("✓") == 2 * len(check_pruning.__all__)


def test_fine_grained_prune_check_rejects_mistakes() -> None:
    def at_least(t: Tensor, s: float) -> Tensor:  # >= keeps the ties at the threshold
        k = round(t.numel() * s)
        mask = t.abs() >= t.abs().view(-1).kthvalue(k).values if 0 < k < t.numel() else torch.full_like(t, k == 0)
        t.mul_(mask)
        return mask.bool()

    def floor(t: Tensor, s: float) -> Tensor:
        k = int(t.numel() * s)
        mask = t.abs() > t.abs().view(-1).kthvalue(k).values if 0 < k < t.numel() else torch.full_like(t, k == 0)
        t.mul_(mask)
        return mask.bool()

    def signed(t: Tensor, s: float) -> Tensor:
        k = round(t.numel() * s)
        mask = t > t.view(-1).kthvalue(k).values if 0 < k < t.numel() else torch.full_like(t, k == 0)
        t.mul_(mask)
        return mask.bool()

    def not_in_place(t: Tensor, s: float) -> Tensor:
        return lab.fine_grained_prune(t.clone(), s)

    rejects(check_pruning.fine_grained_prune, at_least, "the lab's own test tensor")
    rejects(check_pruning.fine_grained_prune, floor, "the lab's own test tensor")
    rejects(check_pruning.fine_grained_prune, signed, "the lab's own test tensor")
    text = rejects(check_pruning.fine_grained_prune, not_in_place, "the lab's own test tensor")
    assert "argument 1 after the call (in place)" in text


def test_sensitivity_scan_check_rejects_mistakes() -> None:
    @torch.no_grad()
    def no_restore(model: nn.Module, evaluate: Callable, sparsities: list[float]) -> dict:
        out = {}
        for name, p in model.named_parameters():
            if p.dim() > 1:
                out[name] = [lab.fine_grained_prune(p, s) is not None and evaluate(model) for s in sparsities]
        return out

    @torch.no_grad()
    def restore_per_layer(model: nn.Module, evaluate: Callable, sparsities: list[float]) -> dict:
        out = {}
        for name, p in model.named_parameters():
            if p.dim() > 1:
                saved = p.clone()
                out[name] = [lab.fine_grained_prune(p, s) is not None and evaluate(model) for s in sparsities]
                p.copy_(saved)
        return out

    def convs_only(model: nn.Module, evaluate: Callable, sparsities: list[float]) -> dict:
        out = lab.sensitivity_scan(model, evaluate, sparsities)
        return {k: v for k, v in out.items() if not k.startswith("classifier")}

    def module_names(model: nn.Module, evaluate: Callable, sparsities: list[float]) -> dict:
        return pruning.sensitivity_scan(model, evaluate, sparsities)

    text = rejects(check_pruning.sensitivity_scan, no_restore, "a small VGG")
    assert "backbone.conv1.weight" in text
    rejects(check_pruning.sensitivity_scan, restore_per_layer, "sparsities out of order")
    rejects(check_pruning.sensitivity_scan, convs_only, "a small VGG")
    rejects(check_pruning.sensitivity_scan, module_names, "a small VGG")


def test_channel_count_and_importance_checks_reject_mistakes() -> None:
    rejects(check_pruning.get_num_channels_to_keep, lambda c, r: int(c * (1 - r)), "10 channels")
    rejects(check_pruning.get_num_channels_to_keep, lambda c, r: round(c * r), "10 channels")
    rejects(check_pruning.get_num_channels_to_keep, lambda c, r: int(c * (1 - r) + 0.5), "5 channels")
    rejects(check_pruning.get_num_channels_to_keep, lambda c, r: max(1, round(c * (1 - r))), "3 channels")
    text = rejects(check_pruning.get_num_channels_to_keep, lambda c, r: float(round(c * (1 - r))), "64 channels")
    assert "should be an int" in text

    def dims(*keep: int) -> Callable[[Tensor], Tensor]:
        return lambda w: w.pow(2).sum(dim=[d for d in range(w.dim()) if d not in keep]).sqrt()

    rejects(check_pruning.get_input_channel_importance, dims(0), "a 1x1 conv weight")  # per output channel
    rejects(check_pruning.get_input_channel_importance, lambda w: dims(1)(w) ** 2, "a 1x1 conv weight")  # no sqrt
    rejects(
        check_pruning.get_input_channel_importance,
        lambda w: w.sum(dim=[d for d in range(w.dim()) if d != 1]),
        "a 1x1 conv weight",
    )  # signed sum
    rejects(
        check_pruning.get_input_channel_importance,
        lambda w: w.abs().sum(dim=[d for d in range(w.dim()) if d != 1]),
        "a 1x1 conv weight",
    )  # L1 norm


def test_channel_prune_and_sorting_checks_reject_mistakes() -> None:
    def prune_last_too(model: nn.Module, r: float | list[float]) -> nn.Module:
        n = len([m for m in model.backbone if isinstance(m, nn.Conv2d)])
        ratios = r if isinstance(r, list) else [r] * (n - 1)
        return pruning.channel_prune(model, [*ratios, ratios[-1]], method="first")

    def largest_norm(model: nn.Module, r: float | list[float]) -> nn.Module:
        n = len([m for m in model.backbone if isinstance(m, nn.Conv2d)])
        ratios = r if isinstance(r, list) else [r] * (n - 1)
        return pruning.channel_prune(model, [*ratios, 0.0], method="l2")

    @torch.no_grad()
    def bn_stats_kept(model: nn.Module, r: float | list[float]) -> nn.Module:
        new = lab_channel_prune(model, r)
        bns = [m for m in new.backbone if isinstance(m, nn.BatchNorm2d)]
        old = [m for m in model.backbone if isinstance(m, nn.BatchNorm2d)]
        for b, o in zip(bns, old):
            b.running_var.set_(o.running_var[-b.weight.shape[0] :].clone())  # the wrong (last) channels' variance
        return new

    def in_place(model: nn.Module, r: float | list[float]) -> nn.Module:
        return lab_channel_prune(model, r, copy_first=False)

    rejects(check_pruning.channel_prune, prune_last_too, "odd channel counts")
    rejects(check_pruning.channel_prune, largest_norm, "odd channel counts")
    rejects(check_pruning.channel_prune, bn_stats_kept, "odd channel counts")
    text = rejects(check_pruning.channel_prune, in_place, "odd channel counts")
    assert "the model you were given" in text

    @torch.no_grad()
    def sort_in_place(model: nn.Module) -> nn.Module:
        new = lab_apply_channel_sorting(model)
        model.load_state_dict(new.state_dict())
        return model

    @torch.no_grad()
    def by_own_output_norm(model: nn.Module) -> nn.Module:
        model = copy.deepcopy(model)
        convs = [m for m in model.backbone if isinstance(m, nn.Conv2d)]
        bns = [m for m in model.backbone if isinstance(m, nn.BatchNorm2d)]
        for prev, bn, nxt in zip(convs[:-1], bns[:-1], convs[1:]):
            order = torch.argsort(prev.weight.flatten(1).norm(dim=1), descending=True)
            prev.weight.copy_(prev.weight[order])
            for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
                t.copy_(t[order])
            nxt.weight.copy_(nxt.weight[:, order])
        return model

    rejects(check_pruning.apply_channel_sorting, lambda m: lab_apply_channel_sorting(m, descending=False), "two convs")
    rejects(check_pruning.apply_channel_sorting, lambda m: lab_apply_channel_sorting(m, bn=False), "two convs")
    rejects(check_pruning.apply_channel_sorting, by_own_output_norm, "two convs")
    text = rejects(check_pruning.apply_channel_sorting, sort_in_place, "two convs")
    assert "the model you were given" in text


def test_a_check_leaves_the_global_random_state_alone() -> None:
    torch.manual_seed(123)
    want = torch.rand(3)
    torch.manual_seed(123)
    check_pruning.channel_prune(lab.channel_prune)
    assert torch.equal(torch.rand(3), want)
