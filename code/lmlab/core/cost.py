"""What a forward pass computes and writes, counted rather than timed: the deterministic side of a network's cost.

* :func:`count_macs`: the multiply-accumulates (MACs) of every conv and linear layer.
* :func:`count_outputs`: the values every leaf module writes (the memory traffic of elementwise layers).

Both run one forward pass with hooks; their times are measured by :mod:`lmlab.core.timing`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from lmlab.core.checks import check_module, check_tensor

__all__ = ["count_macs", "count_outputs"]


def _check(model: object, x: object) -> None:
    check_module("model", model)
    check_tensor("x", x)


def _forward(model: Callable[[Tensor], Any], x: Tensor) -> Any:
    """``model(x)`` once without gradients (also :mod:`lmlab.core.timing`'s warm-up pass); an error the model
    raises for an input it cannot take (a wrong shape, dtype or device) becomes a ``ValueError`` naming ``x``."""
    try:
        with torch.no_grad():
            return model(x)
    except (RuntimeError, ValueError, IndexError, TypeError) as e:
        raise ValueError(f"x of shape {tuple(x.shape)} ({x.dtype}, {x.device}) does not fit the model: {e}") from e


@torch.no_grad()
def count_macs(model: nn.Module, x: Tensor) -> dict[str, int]:
    """Multiply-accumulates of every conv and linear layer for the input ``x`` (counted by forward hooks).

    A conv layer with output ``(B, c_o, h_o, w_o)`` does ``B c_o h_o w_o (c_i / groups) k_h k_w`` MACs; a linear
    layer with output ``(..., out)`` does ``(...) out in`` MACs. Other layers (batch norm, ReLU, pooling) are not
    counted. Pass a batch of one image for the MACs per image.

    Returns:
        ``{layer name: MACs}`` in the order the layers ran.

    Raises:
        TypeError: ``model`` is not an ``nn.Module`` or ``x`` not a tensor.
        ValueError: ``x`` does not fit the model.
    """
    _check(model, x)
    macs: dict[str, int] = {}

    def hook(name: str) -> Callable[[nn.Module, tuple[Tensor, ...], Tensor], None]:
        def f(mod: nn.Module, _inp: tuple[Tensor, ...], out: Tensor) -> None:
            if isinstance(mod, nn.Conv2d):
                kh, kw = mod.kernel_size
                n = out.numel() * (mod.in_channels // mod.groups) * kh * kw
            else:
                n = out.numel() * mod.in_features
            macs[name] = macs.get(name, 0) + int(n)

        return f

    handles = [
        mod.register_forward_hook(hook(name))
        for name, mod in model.named_modules()
        if isinstance(mod, (nn.Conv2d, nn.Linear))
    ]
    _run_once(model, x, handles)
    return macs


@torch.no_grad()
def count_outputs(model: nn.Module, x: Tensor) -> dict[str, int]:
    """Number of values every leaf module writes for the input ``x`` (counted by forward hooks): the activations an
    elementwise layer (batch norm, ReLU, pooling) reads and writes, a deterministic measure of its memory traffic.

    Returns:
        ``{leaf module name: output elements}`` in the order the modules ran.

    Raises:
        TypeError: ``model`` is not an ``nn.Module`` or ``x`` not a tensor.
        ValueError: ``x`` does not fit the model.
    """
    _check(model, x)
    counts: dict[str, int] = {}
    handles = []
    for name, mod in model.named_modules():
        if name and not any(True for _ in mod.children()):

            def f(_m: nn.Module, _i: object, out: Tensor, name: str = name) -> None:
                counts[name] = counts.get(name, 0) + int(out.numel())

            handles.append(mod.register_forward_hook(f))
    _run_once(model, x, handles)
    return counts


def _run_once(model: nn.Module, x: Tensor, handles: list[torch.utils.hooks.RemovableHandle]) -> None:
    """One forward pass of ``x`` in eval mode with the given hooks, which are removed afterwards."""
    was = model.training
    model.eval()
    try:
        _forward(model, x)
    finally:
        for h in handles:
            h.remove()
        model.train(was)
