"""One small training loop for every model in the book, and the masked next-token loss.

:func:`train` takes a model, a source of batches and a handful of settings, and returns the loss history. It runs
on the device the model's parameters live on (put the model on :func:`lmlab.device` first), shows a progress bar in
an interactive notebook and stays quiet under pytest, in scripts and when ``LMLAB_QUIET`` is set.

:func:`masked_cross_entropy` is the loss with a label mask: positions whose mask is False do not count, as in
soft prompting, where only the chain of thought and the answer are scored.

:func:`train` is the book's one optimisation loop: pretraining a recipe (:mod:`lmlab.pretrained`), fine-tuning LoRA
factors on parameter groups (:func:`lmlab.lora.finetune`), tuning a soft prompt
(:func:`lmlab.prompting.train_prompt`) and the prompt tuners of :mod:`lmlab.meta_prompt` all call it, choosing
``params`` (the tensors or parameter groups to train), ``optimizer`` (``"adamw"``, ``"adam"``, ``"sgd"``),
``loss_fn(model, batch)``, ``grad_clip`` and ``mode`` as they need.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from lmlab.core.checks import check_float, check_int

__all__ = ["OPTIMIZERS", "History", "masked_cross_entropy", "next_token_loss", "train"]

OPTIMIZERS = ("adamw", "adam", "sgd")
"""The optimizers :func:`train` knows."""


def masked_cross_entropy(logits: Tensor, targets: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean cross-entropy (nats per token) over the positions where ``mask`` is True.

    Args:
        logits: ``(batch, n, n_vocab)``, row-per-token (PyTorch convention): ``logits[b, i]`` predicts
            ``targets[b, i]``.
        targets: LongTensor ``(batch, n)`` with ids in ``[0, n_vocab)`` (any value where ``mask`` is False).
        mask: BoolTensor ``(batch, n)`` or ``None`` (every position counts).

    Returns:
        A scalar tensor: ``sum_{mask} -log softmax(logits)[target] / (number of True entries)``. Equal to
        ``F.cross_entropy(logits.transpose(1, 2), targets.masked_fill(~mask, -100), ignore_index=-100)``.

    Raises:
        ValueError: shapes disagree, or the mask selects no position.
        TypeError: ``mask`` is not boolean, or ``targets`` not integer.
    """
    if logits.dim() != 3:
        raise ValueError(f"logits must be (batch, n, n_vocab), got shape {tuple(logits.shape)}")
    if targets.shape != logits.shape[:2]:
        raise ValueError(f"targets must have shape (batch, n) = {tuple(logits.shape[:2])}, got {tuple(targets.shape)}")
    if targets.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8, torch.int8):
        raise TypeError(f"targets must be an integer tensor, got {targets.dtype}")
    flat_logits = logits.reshape(-1, logits.shape[-1])
    flat_targets = targets.reshape(-1).long()
    if mask is None:
        return nn.functional.cross_entropy(flat_logits, flat_targets)
    if mask.shape != targets.shape:
        raise ValueError(f"mask must have shape (batch, n) = {tuple(targets.shape)}, got {tuple(mask.shape)}")
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must be a bool tensor, got {mask.dtype}")
    flat_mask = mask.reshape(-1)
    count = int(flat_mask.sum())
    if count == 0:
        raise ValueError("mask selects no position: the mean loss over zero positions is undefined")
    safe_targets = flat_targets.masked_fill(~flat_mask, 0)
    losses = nn.functional.cross_entropy(flat_logits, safe_targets, reduction="none")
    return (losses * flat_mask).sum() / count


def next_token_loss(model: nn.Module, batch: tuple[Tensor, ...]) -> Tensor:
    """The default ``loss_fn`` of :func:`train`: ``masked_cross_entropy(model(inputs), targets, mask)``.

    ``batch`` is ``(inputs, targets)`` or ``(inputs, targets, mask)``, each ``(batch, n)`` on the model's device.
    """
    if len(batch) not in (2, 3):
        raise ValueError(f"a batch must be (inputs, targets) or (inputs, targets, mask), got {len(batch)} items")
    inputs, targets = batch[0], batch[1]
    mask = batch[2] if len(batch) == 3 else None
    return masked_cross_entropy(model(inputs), targets, mask)


class History(list):
    """The loss history returned by :func:`train`: a ``list`` of floats (one per step) with extras.

    Attributes:
        evals: ``[(step, value), ...]``, what ``eval_fn`` returned after each ``eval_every`` steps and at the end.
        wall_s: seconds the loop took.
    """

    def __init__(self, losses: Iterable[float] = (), evals: list[tuple[int, Any]] | None = None, wall_s: float = 0.0):
        super().__init__(losses)
        self.evals: list[tuple[int, Any]] = [] if evals is None else evals
        self.wall_s = wall_s


def _show_progress(progress: bool | None) -> bool:
    """``progress=None`` shows a bar only in an interactive notebook with ipywidgets, never under pytest or when
    ``LMLAB_QUIET`` is set to a non-empty value other than ``0``."""
    if progress is not None:
        return bool(progress)
    if os.environ.get("LMLAB_QUIET", "") not in ("", "0"):
        return False
    if "PYTEST_CURRENT_TEST" in os.environ or "pytest" in sys.modules:
        return False
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001
        return False
    if shell is None or type(shell).__name__ != "ZMQInteractiveShell":
        return False
    try:
        import ipywidgets  # noqa: F401  (without it tqdm.auto falls back to text and warns)
    except ImportError:
        return False
    return True


def _to_device(batch: Any, device: torch.device, strict: bool) -> Any:
    """Move the tensors of a tuple/list batch to ``device``; anything else is refused (``strict``, the default
    loss's batches) or handed to the caller's ``loss_fn`` as it is."""
    if isinstance(batch, Tensor) or not isinstance(batch, (tuple, list)):
        if not strict:
            return batch.to(device, non_blocking=True) if isinstance(batch, Tensor) else batch
        raise TypeError(f"a batch must be a tuple (inputs, targets[, mask]) of tensors, got {type(batch).__name__}")
    return tuple(t.to(device, non_blocking=True) if isinstance(t, Tensor) else t for t in batch)


Params = Iterable[Tensor] | Iterable[dict[str, Any]]
"""What :func:`train` optimises: tensors (leaves with ``requires_grad``) or parameter groups, dicts with
``"params"`` and optionally their own peak ``"lr"`` (other keys are passed to the optimizer as they are)."""


def _param_groups(model: nn.Module, params: Params | None, lr: float) -> list[dict[str, Any]]:
    """The optimizer's groups, each with its peak learning rate in ``"lr"`` (``lr`` where a group gives none)."""
    if params is None:
        return [{"params": [p for p in model.parameters() if p.requires_grad], "lr": lr}]
    if isinstance(params, Tensor):
        raise TypeError("params must be an iterable of tensors or of parameter groups, got a single tensor")
    items = list(params)
    if items and all(isinstance(g, dict) for g in items):
        groups = []
        for i, g in enumerate(items):
            if "params" not in g:
                raise ValueError(f"params[{i}] is a parameter group without 'params'")
            ps = [g["params"]] if isinstance(g["params"], Tensor) else list(g["params"])
            group_lr = check_float(f"params[{i}]['lr']", g.get("lr", lr), 0.0, strict=True)
            groups.append({**g, "params": ps, "lr": group_lr})
        return groups
    for i, p in enumerate(items):
        if not isinstance(p, Tensor):
            raise TypeError(f"params[{i}] must be a tensor or a parameter group (dict), got {type(p).__name__}")
    return [{"params": items, "lr": lr}]


def _lr_at(peak: float, step: int, steps: int, schedule: str, warmup: int) -> float:
    """The learning rate of a group whose peak is ``peak`` at ``step`` (0-based): linear warm-up over ``warmup``
    steps, then constant or a cosine decay to 0 at ``steps``."""
    if warmup and step < warmup:
        return peak * (step + 1) / warmup
    if schedule == "cosine":
        frac = (step - warmup) / max(1, steps - warmup)
        return peak * 0.5 * (1 + math.cos(math.pi * frac))
    return peak


def _optimizer(name: str, groups: list[dict[str, Any]], weight_decay: float) -> torch.optim.Optimizer:
    if name == "adamw":
        return torch.optim.AdamW(groups, betas=(0.9, 0.98), weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(groups, weight_decay=weight_decay)
    return torch.optim.SGD(groups, lr=groups[0]["lr"], weight_decay=weight_decay)


def train(
    model: nn.Module,
    batches: Callable[[int], Any] | Iterable[Any],
    *,
    steps: int,
    lr: float = 1e-3,
    optimizer: str = "adamw",
    weight_decay: float = 0.0,
    grad_clip: float | None = 1.0,
    loss_fn: Callable[[nn.Module, Any], Tensor] = next_token_loss,
    params: Params | None = None,
    schedule: str = "constant",
    warmup: int = 0,
    eval_fn: Callable[[nn.Module], Any] | None = None,
    eval_every: int = 100,
    progress: bool | None = None,
    mode: str = "train",
) -> History:
    """Train ``model`` for ``steps`` optimizer steps and return the loss after each step.

    Each step: ``batch = batches(step)`` (moved to the model's device), set every group's learning rate from the
    schedule, ``loss = loss_fn(model, batch)``, zero the gradients, ``loss.backward()``, clip, ``optimizer.step()``.
    Nothing in the loop draws a random number: a seeded ``batches`` makes a run repeat bit for bit.

    Args:
        model: any ``nn.Module``; training runs on the device of its first parameter (or of ``params``).
        batches: a callable ``step -> batch`` (called with ``step = 0, 1, ...``; seeded samplers make runs repeat)
            or an iterable of batches. With the default ``loss_fn`` a batch is ``(inputs, targets)`` or
            ``(inputs, targets, mask)`` (row-per-token tensors ``(batch, n)``); the tensors of a tuple batch are
            moved to the model's device before ``loss_fn`` sees it (a custom ``loss_fn`` may take any batch).
        steps: number of optimizer steps, >= 1 (an iterable that runs out first ends training early).
        lr: peak learning rate, > 0 (of every group that does not set its own ``"lr"``).
        optimizer: ``"adamw"`` (``torch.optim.AdamW``, betas (0.9, 0.98)), ``"adam"`` (``torch.optim.Adam``,
            PyTorch's defaults: betas (0.9, 0.999)) or ``"sgd"`` (plain SGD, no momentum).
        weight_decay: decoupled (AdamW) or L2 (Adam, SGD) weight decay, >= 0.
        grad_clip: clip the global gradient norm (over every trained tensor) to this value; ``None`` disables it.
        loss_fn: ``loss_fn(model, batch) -> scalar tensor``; the default is :func:`next_token_loss`.
        params: what to train (default: every parameter of ``model`` with ``requires_grad``): a list of tensors
            (a soft prompt, LoRA factors, a prompt outside any module) or parameter groups ``{"params": [...],
            "lr": peak}`` with their own peak rates (LoRA+, :func:`lmlab.lora.lora_param_groups`). Nothing else
            is given to the optimizer, so every other weight stays bit-identical.
        schedule: ``"constant"`` or ``"cosine"`` (decay to 0 over ``steps``), after ``warmup`` linear warm-up steps;
            applied to every group's own peak rate.
        warmup: number of warm-up steps, in [0, steps].
        eval_fn: called as ``eval_fn(model)`` under ``torch.no_grad()`` in eval mode every ``eval_every`` steps and
            after the last step; its results are stored in ``History.evals`` as ``(step, value)``.
        eval_every: steps between evaluations, >= 1.
        progress: ``True``/``False`` forces the progress bar on/off; ``None`` shows it only in an interactive
            notebook (``tqdm.auto``), not under pytest, in scripts or when ``LMLAB_QUIET`` is set.
        mode: ``"train"`` puts the model in training mode for the loop (restored afterwards); ``"keep"`` leaves
            the mode the caller set (a frozen model in eval mode behind a prompt or adapter).

    Returns:
        :class:`History`: the list of per-step losses (floats), with ``.evals`` and ``.wall_s``.

    Raises:
        TypeError: an argument has the wrong type (``steps``, ``warmup``, ``eval_every`` not ints; ``params`` not
            tensors or groups; a batch that is not a tuple for the default loss).
        ValueError: an argument is out of range, nothing is to be trained, or a loss is not finite.
    """
    check_int("steps", steps, 1)
    check_float("lr", lr, 0.0, strict=True)
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(map(repr, OPTIMIZERS))}, got {optimizer!r}")
    check_float("weight_decay", weight_decay, 0.0)
    if grad_clip is not None:
        check_float("grad_clip", grad_clip, 0.0, strict=True)
    if schedule not in ("constant", "cosine"):
        raise ValueError(f"schedule must be 'constant' or 'cosine', got {schedule!r}")
    check_int("warmup", warmup, 0, steps)
    check_int("eval_every", eval_every, 1)
    if mode not in ("train", "keep"):
        raise ValueError(f"mode must be 'train' or 'keep', got {mode!r}")
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable as loss_fn(model, batch), got {type(loss_fn).__name__}")

    groups = _param_groups(model, params, lr)
    trainable = [p for g in groups for p in g["params"]]
    if not trainable:
        raise ValueError("nothing to train: params is empty (or every parameter has requires_grad=False)")
    peaks = [g["lr"] for g in groups]
    # the model's device (a soft prompt or adapter outside the model is expected to live there too)
    device = next(iter(model.parameters()), trainable[0]).device
    opt = _optimizer(optimizer, groups, weight_decay)
    strict = loss_fn is next_token_loss

    if callable(batches):
        source: Callable[[int], Any] | None = batches
        iterator: Iterator[Any] | None = None
    else:
        source, iterator = None, iter(batches)

    history = History()
    show = _show_progress(progress)
    bar = None
    if show:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc="training", leave=False)

    def run_eval(step: int) -> None:
        if eval_fn is None:
            return
        was = model.training
        model.eval()
        with torch.no_grad():
            history.evals.append((step, eval_fn(model)))
        model.train(was)

    start = time.perf_counter()
    was_training = model.training
    if mode == "train":
        model.train()
    try:
        for step in range(steps):
            if source is not None:
                batch = source(step)
            else:
                try:
                    batch = next(iterator)  # type: ignore[arg-type]
                except StopIteration:
                    break
            batch = _to_device(batch, device, strict)
            for group, peak in zip(opt.param_groups, peaks):
                group["lr"] = _lr_at(peak, step, steps, schedule, warmup)
            loss = loss_fn(model, batch)
            if not torch.isfinite(loss):
                raise ValueError(f"the loss became {float(loss)} at step {step}: lower lr or clip gradients")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(trainable, grad_clip)
            opt.step()
            history.append(float(loss.detach()))
            if bar is not None:
                bar.update(1)
                if step % 10 == 0:
                    bar.set_postfix(loss=f"{history[-1]:.3f}")
            if eval_fn is not None and (step + 1) % eval_every == 0 and step + 1 < steps:
                run_eval(step + 1)
    finally:
        if bar is not None:
            bar.close()
    run_eval(len(history))
    model.train(was_training)
    history.wall_s = time.perf_counter() - start
    return history
