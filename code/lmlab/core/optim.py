"""The one batched Adam(W) step and the one cosine learning-rate schedule.

Several chapters train many independent runs side by side: every parameter of the runs is one tensor of shape
``(*R, *shape)`` whose leading axes ``R`` index the runs (``(L, S)`` learning rates x seeds in :mod:`lmlab.sweep`
and :mod:`lmlab.minibatch_sgd`, ``(C,)`` adapters in :mod:`lmlab.lowrank`), and each run has its own learning rate.
:func:`adam_step` advances all of them by one step of Adam (``torch.optim.Adam``) or, with ``weight_decay > 0``,
AdamW (``torch.optim.AdamW``, decoupled weight decay), written operation by operation as PyTorch's single-tensor
implementation, so that run ``r`` equals ``torch.optim`` run alone with the learning rate ``lr[r]`` to rounding.
The runs do not interact: every operation is elementwise.

:func:`cosine_schedule` is the learning-rate factor of a step: an optional linear warm-up, then a cosine decay to 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from lmlab.core.checks import check_float, check_int, check_tensor

__all__ = ["adam_settings", "adam_state", "adam_step", "cosine_schedule"]


def adam_settings(betas: Any, eps: Any, weight_decay: Any = 0.0) -> tuple[tuple[float, float], float, float]:
    """``betas`` as two floats in ``[0, 1)``, ``eps`` as a float ``> 0`` and ``weight_decay`` as a float ``>= 0``
    (the ranges ``torch.optim.Adam``/``AdamW`` accept), checked before any work.

    Raises:
        TypeError: ``betas`` is not a pair, or a setting is not a number.
        ValueError: a setting outside its range (the message names it: ``betas[0]``, ``betas[1]``, ``eps``,
            ``weight_decay``).
    """
    if isinstance(betas, (str, bytes)) or not isinstance(betas, Sequence) or len(betas) != 2:
        raise TypeError(f"betas must be a pair of floats (beta1, beta2) in [0, 1), got {betas!r}")
    pair = (check_float("betas[0]", betas[0], 0.0), check_float("betas[1]", betas[1], 0.0))
    for i, b in enumerate(pair):
        if not b < 1:
            raise ValueError(f"betas[{i}] must be a float in [0, 1), got {betas[i]!r}")
    return pair, check_float("eps", eps, 0.0, strict=True), check_float("weight_decay", weight_decay, 0.0)


def _params(name: str, values: Any) -> list[Tensor]:
    if isinstance(values, Tensor) or not isinstance(values, Sequence) or not values:
        raise TypeError(f"{name} must be a non-empty list of tensors, got {type(values).__name__}")
    return [check_tensor(f"{name}[{i}]", v, floating=True) for i, v in enumerate(values)]


def adam_state(params: Sequence[Tensor]) -> list[tuple[Tensor, Tensor]]:
    """Adam's state of ``params`` at the start: one pair ``(m, v)`` of zeros per parameter, each of its shape
    ``(*R, *shape)`` (the running means of the gradient and of its square)."""
    return [(torch.zeros_like(p), torch.zeros_like(p)) for p in _params("params", params)]


def _expand(lr: Tensor, p: Tensor) -> Tensor:
    """``lr`` ``(*R)`` (or a prefix of broadcastable axes) reshaped to broadcast against ``p`` ``(*R, *shape)``."""
    return lr.reshape(*lr.shape, *([1] * (p.dim() - lr.dim())))


def adam_step(
    params: Sequence[Tensor],
    grads: Sequence[Tensor],
    state: Sequence[tuple[Tensor, Tensor]],
    lr: float | Tensor,
    t: int,
    *,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
) -> None:
    """One Adam (or AdamW) step of every run, in place on ``params`` and ``state``.

    Args:
        params: the parameters, each ``(*R, *shape_k)``: leading run axes ``R``, then the parameter's own shape.
        grads: each run's gradient of each parameter, the shapes of ``params``.
        state: :func:`adam_state` of ``params`` (updated in place).
        lr: the learning rate of this step (a schedule's factor already applied): a float shared by every run, or a
            tensor over the run axes, ``(*R)`` or any shape that broadcasts against them (``(L, 1)``: one rate per
            learning rate, shared by the seeds). Its values are not inspected (that would wait for a GPU each step).
        t: the step's number, counted from 1 (Adam's bias corrections ``1 - beta^t``).
        betas, eps: Adam's settings (``betas`` in ``[0, 1)``, ``eps > 0``).
        weight_decay: ``> 0`` gives AdamW: ``p <- p (1 - lr weight_decay)`` before the Adam update.

    Raises:
        TypeError: ``params``, ``grads`` or ``state`` not lists of tensors, ``lr`` neither a float nor a
            floating-point tensor, ``t`` not an int.
        ValueError: mismatched lengths or shapes, ``lr`` that does not broadcast against the run axes, ``t < 1``,
            a setting outside its range (see :func:`adam_settings`).
    """
    params, grads = _params("params", params), _params("grads", grads)
    if isinstance(state, Tensor) or not isinstance(state, Sequence):
        raise TypeError(f"state must be the list of (m, v) pairs of adam_state(params), got {type(state).__name__}")
    if not len(params) == len(grads) == len(state):
        raise ValueError(
            f"params, grads and state must have one entry per parameter, got lengths "
            f"{len(params)}, {len(grads)} and {len(state)}"
        )
    for i, (p, g, s) in enumerate(zip(params, grads, state)):
        if g.shape != p.shape:
            raise ValueError(f"grads[{i}] must have the shape of params[{i}] {tuple(p.shape)}, got {tuple(g.shape)}")
        if not (isinstance(s, tuple) and len(s) == 2 and all(isinstance(x, Tensor) and x.shape == p.shape for x in s)):
            raise ValueError(f"state[{i}] must be a pair (m, v) of tensors of shape {tuple(p.shape)}")
    t = check_int("t", t, 1)
    (b1, b2), eps, weight_decay = adam_settings(betas, eps, weight_decay)
    if isinstance(lr, Tensor):
        check_tensor("lr", lr, floating=True)
        for p in params:
            head = p.shape[: lr.dim()]
            if lr.dim() > p.dim() or any(a not in (1, b) for a, b in zip(lr.shape, head)):
                raise ValueError(
                    f"lr must broadcast against the run axes of every parameter, got shape "
                    f"{tuple(lr.shape)} for a parameter of shape {tuple(p.shape)}"
                )
    else:
        lr = check_float("lr", lr, 0.0)
    # torch.optim.Adam's single-tensor step, operation by operation (so each run agrees with it to rounding)
    step = lr / (1 - b1**t)
    bias2 = math.sqrt(1 - b2**t)
    for p, g, (m, v) in zip(params, grads, state):
        if weight_decay:
            p.mul_(1 - (_expand(lr, p) if isinstance(lr, Tensor) else lr) * weight_decay)
        m.lerp_(g, 1 - b1)
        v.mul_(b2).addcmul_(g, g, value=1 - b2)
        denom = (v.sqrt() / bias2).add_(eps)
        p.sub_((_expand(step, p) if isinstance(step, Tensor) else step) * m / denom)


def cosine_schedule(step: int, steps: int, warmup: int = 0) -> float:
    """The learning-rate factor of ``step`` (counted from 0) of ``steps``: ``(step + 1) / warmup`` during the
    ``warmup`` first steps, then ``(1 + cos(pi (step - warmup) / (steps - warmup))) / 2``, from 1 down to 0 at
    ``step = steps`` (``warmup = 0``: a plain cosine decay).

    Raises:
        TypeError: an argument that is not an int.
        ValueError: ``steps < 1``, ``warmup`` outside ``[0, steps]``, ``step`` outside ``[0, steps]``.
    """
    steps = check_int("steps", steps, 1)
    warmup = check_int("warmup", warmup, 0, steps)
    step = check_int("step", step, 0, steps)
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(steps - warmup, 1)))
