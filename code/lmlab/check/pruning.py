"""Checks for the pruning lab (homework problem 7a, MIT 6.S965 lab 1): ``check.<function>(your_function)``.

Each check runs your function and the book's (:mod:`lmlab.lab_pruning`, the lab's conventions) on the same fixed
cases, then on random ones, and prints one line when all agree; otherwise it raises
:class:`~lmlab.check.CheckFailed` naming the first case that differs.

- :func:`fine_grained_prune` ``(tensor, sparsity) -> mask``: the lab's own test tensor, ties at the threshold,
  negative weights, round (not floor) for the number of zeros, sparsity 0 and 1, random conv and linear weights.
  The mask may be bool or 0/1 numbers; the tensor must be pruned in place.
- :func:`sensitivity_scan` ``(model, evaluate, sparsities) -> {parameter name: [score, ...]}``: a small VGG,
  sparsities in and out of order; the model must come back unchanged.
- :func:`get_num_channels_to_keep` ``(channels, prune_ratio) -> int``: rounding (half to even), 0 and 1.
- :func:`get_input_channel_importance` ``(weight) -> (c_in,)``: readable 1x1 kernels, negative weights, more
  outputs than inputs, a square weight, a linear weight.
- :func:`channel_prune` ``(model, prune_ratio) -> model``: odd channel counts, one ratio per layer, ratio 0; the
  given model must stay as it was.
- :func:`apply_channel_sorting` ``(model) -> model``: small VGGs of several widths; the given model must stay as
  it was.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from lmlab import lab_pruning as lab
from lmlab.check._core import Case, describe, difference, run_check
from lmlab.compressing.vision import VGG, VGGConfig
from lmlab.core.runtime import generator

__all__ = list(lab.LAB_FUNCTIONS)  # one check per function the lab asks for

RTOL, ATOL = 1e-5, 1e-6


# ---------------------------------------------------------------------------------------------- helpers


def _randn(seed: int, *shape: int, scale: float = 1.0) -> Tensor:
    return torch.randn(*shape, generator=generator(seed)) * scale


@torch.no_grad()
def _vgg(channels: tuple[int | str, ...], seed: int, in_channels: int = 1, n_classes: int = 3) -> VGG:
    """A small VGG with every parameter and batch-norm statistic drawn from ``generator(seed)`` (the global random
    state is left as it was, so a check does not change the draws of the notebook that runs it)."""
    with torch.random.fork_rng(devices=[]):
        model = VGG(VGGConfig(channels=channels, in_channels=in_channels, n_classes=n_classes))
    g = generator(seed)
    for name, t in model.state_dict().items():
        if not t.is_floating_point():
            continue
        if name.endswith("running_var") or (name.endswith("weight") and t.dim() == 1):
            t.copy_(0.5 + torch.rand(t.shape, generator=g))
        else:
            t.copy_(0.5 * torch.randn(t.shape, generator=g))
    return model.eval()


def _images(seed: int, model: nn.Module, n: int = 4, size: int = 8) -> Tensor:
    """Test images for ``model``: as many channels as its first conv reads."""
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    return torch.randn(n, first.in_channels, size, size, generator=generator(seed))


def _model_difference(expected: nn.Module, got: Any, where: str, x: Tensor | None = None) -> str | None:
    """Where two models differ: their tensors (state dicts) by name, then their outputs on ``x`` (eval mode)."""
    if not isinstance(got, nn.Module):
        return f"{where} should be a model (nn.Module), got {describe(got)}"
    e_sd, g_sd = expected.state_dict(), got.state_dict()
    missing, extra = [k for k in e_sd if k not in g_sd], [k for k in g_sd if k not in e_sd]
    if missing or extra:
        return f"{where} should hold the tensors {list(e_sd)}; missing {missing}, unexpected {extra}"
    for k, e in e_sd.items():
        found = difference(e, g_sd[k], rtol=RTOL, atol=ATOL, where=f"{where}'s {k}")
        if found:
            return found
    if x is not None:
        was = got.training
        try:
            with torch.no_grad():
                y_e, y_g = expected.eval()(x), got.eval()(x)
        except Exception as err:  # noqa: BLE001 - a broken model becomes a verdict
            return f"{where} cannot run on images {tuple(x.shape)}: {type(err).__name__}: {err}"
        finally:
            got.train(was)
        return difference(y_e, y_g, rtol=1e-4, atol=1e-5, where=f"{where}'s output on test images")
    return None


def _with_input_after(fn: Any) -> Any:
    """``fn`` wrapped to return ``(result, its first argument after the call)``; a non-function passes through so
    that ``run_check`` reports it."""
    if not callable(fn):
        return fn

    def wrapped(model: nn.Module, *args: Any) -> tuple[Any, nn.Module]:
        return fn(model, *args), model

    return wrapped


# ---------------------------------------------------------------------------------------------- fine-grained


def _mask_compare(expected: Tensor, got: Any, case: Case) -> str | None:
    if isinstance(got, Tensor) and got.dtype != torch.bool:
        if not bool(((got == 0) | (got == 1)).all()):
            return f"the mask should hold only True/False (or 1/0), got {describe(got)}"
        got = got != 0
    return difference(expected, got, rtol=0, atol=0, where="the mask")


def fine_grained_prune(student: Callable[[Tensor, float], Tensor]) -> None:
    """Check ``fine_grained_prune(tensor, sparsity) -> mask`` (prunes ``tensor`` in place)."""
    lab_tensor = torch.tensor(
        [
            [-0.46, -0.40, 0.39, 0.19, 0.37],
            [0.00, 0.40, 0.17, -0.15, 0.16],
            [-0.20, -0.23, 0.36, 0.25, 0.03],
            [0.24, 0.41, 0.07, 0.13, -0.15],
            [0.48, -0.09, -0.36, 0.12, 0.45],
        ]
    )
    ties = torch.tensor([[0.1, -0.2, 0.2], [0.3, -0.2, 0.5]])
    negative = torch.tensor([[-3.0, 1.0, -0.5, 2.0]])
    order = torch.randperm(16, generator=generator(9101)).float() + 1
    sixteen = (order * torch.tensor([1.0, -1.0]).repeat(8)).reshape(2, 2, 2, 2) / 16
    with_zero = torch.tensor([[0.0, -0.7, 0.2], [0.5, 0.0, -0.1]])
    cases = [
        Case("the lab's own test tensor, sparsity 0.75", (lab_tensor, 0.75), mutated=(0,)),
        Case("ties at the threshold: |w| = 0.2 three times, sparsity 0.5", (ties, 0.5), mutated=(0,)),
        Case("negative weights: importance is |w|", (negative, 0.5), mutated=(0,)),
        Case("16 weights at sparsity 0.6: round(9.6) = 10 zeros", (sixteen, 0.6), mutated=(0,)),
        Case("sparsity 0 keeps every weight", (with_zero, 0.0), mutated=(0,)),
        Case("sparsity 1 prunes every weight", (with_zero.clone(), 1.0), mutated=(0,)),
        Case("random conv weight (4, 3, 3, 3), sparsity 0.7", (_randn(9102, 4, 3, 3, 3), 0.7), mutated=(0,)),
        Case("random linear weight (6, 10), sparsity 0.35", (_randn(9103, 6, 10), 0.35), mutated=(0,)),
    ]
    run_check("fine_grained_prune", student, lab.fine_grained_prune, cases, compare=_mask_compare)


# ---------------------------------------------------------------------------------------------- sensitivity scan


class _Score:
    """A deterministic ``evaluate(model)``: the mean log-probability of fixed labels on fixed images (any change
    of any weight changes it)."""

    def __init__(self, seed: int, model: VGG) -> None:
        self.x = _images(seed, model, n=6)
        self.y = torch.randint(model.cfg.n_classes, (6,), generator=generator(seed + 1))
        self.__name__ = "evaluate"

    @torch.no_grad()
    def __call__(self, model: nn.Module) -> float:
        model.eval()
        logp = model(self.x).log_softmax(dim=-1)
        return float(logp[torch.arange(len(self.y)), self.y].mean())


def _scan_compare(expected: tuple[dict[str, list[float]], nn.Module], got: Any, case: Case) -> str | None:
    scores_e, model_e = expected
    scores_g, model_g = got
    if not isinstance(scores_g, dict):
        return f"the result should be a dict {{parameter name: [score per sparsity]}}, got {describe(scores_g)}"
    missing, extra = [k for k in scores_e if k not in scores_g], [k for k in scores_g if k not in scores_e]
    if missing or extra:
        return (
            f"the result should have one entry per weight with more than one dimension, {list(scores_e)}; "
            f"missing {missing}, unexpected {extra}"
        )
    for k, e in scores_e.items():
        g = scores_g[k]
        found = difference(
            e, list(g) if isinstance(g, (list, tuple)) else g, rtol=RTOL, atol=ATOL, where=f"the scores of {k!r}"
        )
        if found:
            return found
    found = _model_difference(model_e, model_g, "the model after the scan")
    return found and found + " (restore every weight after pruning it)"


def sensitivity_scan(student: Callable[..., dict[str, list[float]]]) -> None:
    """Check ``sensitivity_scan(model, evaluate, sparsities) -> {parameter name: [score per sparsity]}``."""
    small = _vgg((3, "M", 4), 9201)
    wider = _vgg((4, 5, "M", 3), 9202, in_channels=2)
    cases = [
        Case("a small VGG, sparsities 0.4, 0.6, 0.8", (small, _Score(9203, small), [0.4, 0.6, 0.8])),
        Case("sparsities out of order (0.8, 0.3, 0, 1)", (small, _Score(9204, small), [0.8, 0.3, 0.0, 1.0])),
        Case(
            "random VGG of three convs, the lab's sparsities",
            (wider, _Score(9205, wider), list(lab.DEFAULT_SPARSITIES)),
        ),
    ]
    run_check(
        "sensitivity_scan",
        _with_input_after(student),
        _with_input_after(lab.sensitivity_scan),
        cases,
        compare=_scan_compare,
    )


# ---------------------------------------------------------------------------------------------- channels


def _int_compare(expected: int, got: Any, case: Case) -> str | None:
    if isinstance(got, bool) or isinstance(got, float) or (isinstance(got, Tensor) and got.is_floating_point()):
        return f"the result should be an int (a number of channels, used to slice), got {describe(got)}"
    try:
        got = operator.index(got)
    except TypeError:
        return f"the result should be an int, got {describe(got)}"
    return difference(expected, got, rtol=0, atol=0)


def get_num_channels_to_keep(student: Callable[[int, float], int]) -> None:
    """Check ``get_num_channels_to_keep(channels, prune_ratio) -> int``."""
    g = generator(9301)
    channels = torch.randint(3, 200, (4,), generator=g).tolist()
    ratios = torch.rand(4, generator=g).tolist()
    cases = [
        Case("64 channels, ratio 0.5", (64, 0.5)),
        Case("10 channels, ratio 0.25: 7.5 rounds to 8", (10, 0.25)),
        Case("7 channels, ratio 0.3: 4.9 rounds to 5", (7, 0.3)),
        Case("5 channels, ratio 0.5: Python's round(2.5) is 2", (5, 0.5)),
        Case("3 channels, ratio 0.9: 0.3 rounds to 0", (3, 0.9)),
        Case("16 channels, ratio 0", (16, 0.0)),
        Case("16 channels, ratio 1", (16, 1.0)),
        *(Case(f"random: {c} channels, ratio {r:.3f}", (c, r)) for c, r in zip(channels, ratios)),
    ]
    run_check("get_num_channels_to_keep", student, lab.get_num_channels_to_keep, cases, compare=_int_compare)


def get_input_channel_importance(student: Callable[[Tensor], Tensor]) -> None:
    """Check ``get_input_channel_importance(weight) -> (c_in,)``."""
    readable = torch.tensor([[1.0, 2.0, 2.0], [0.0, -2.0, 1.0]]).reshape(2, 3, 1, 1)
    cases = [
        Case("a 1x1 conv weight (2, 3, 1, 1) with readable entries", (readable,)),
        Case("negative weights", (-_randn(9401, 3, 2, 2, 2).abs(),)),
        Case("more output than input channels (5, 2, 3, 3)", (_randn(9402, 5, 2, 3, 3),)),
        Case("a square weight (3, 3, 3, 3)", (_randn(9403, 3, 3, 3, 3),)),
        Case("a linear weight (4, 6)", (_randn(9404, 4, 6),)),
        Case("random conv weight (8, 5, 3, 3)", (_randn(9405, 8, 5, 3, 3),)),
    ]
    run_check("get_input_channel_importance", student, lab.get_input_channel_importance, cases)


def _model_compare(expected: tuple[nn.Module, nn.Module], got: Any, case: Case) -> str | None:
    """A returned model against the reference's (tensors, then outputs), then the given model against the
    original (it must not change)."""
    found = _model_difference(expected[0], got[0], "the returned model", _images(9601, expected[0]))
    if found:
        return found
    found = _model_difference(expected[1], got[1], "the model you were given")
    return found and found + " (work on a copy: copy.deepcopy(model))"


def channel_prune(student: Callable[..., nn.Module]) -> None:
    """Check ``channel_prune(model, prune_ratio) -> pruned copy``."""
    odd = _vgg((5, "M", 7, 3), 9501)
    cases = [
        Case("odd channel counts (5, 7, 3), ratio 0.3", (odd, 0.3)),
        Case("one ratio per layer, [0.5, 0.25]", (_vgg((6, "M", 4, 5), 9502, in_channels=2), [0.5, 0.25])),
        Case("ratio 0 changes nothing", (odd, 0.0)),
        Case("random VGG (8, 8, 6), ratio 0.5", (_vgg((8, 8, "M", 6), 9503), 0.5)),
    ]
    run_check(
        "channel_prune", _with_input_after(student), _with_input_after(lab.channel_prune), cases, compare=_model_compare
    )


def apply_channel_sorting(student: Callable[[nn.Module], nn.Module]) -> None:
    """Check ``apply_channel_sorting(model) -> sorted copy``."""
    cases = [
        Case("two convs (4, 3)", (_vgg((4, "M", 3), 9701),)),
        Case("odd widths (5, 7, 3) with two input channels", (_vgg((5, "M", 7, 3), 9702, in_channels=2),)),
        Case("random VGG (8, 8, 6, 6)", (_vgg((8, 8, "M", 6, 6), 9703),)),
    ]
    run_check(
        "apply_channel_sorting",
        _with_input_after(student),
        _with_input_after(lab.apply_channel_sorting),
        cases,
        compare=_model_compare,
    )
