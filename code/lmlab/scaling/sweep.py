"""Learning-rate x batch-size x seed sweeps, trained as batched computations.

:func:`sweep` trains every run of a grid at once. The parameters of the ``L x S`` runs (learning rates x seeds)
that share a batch size are stacked along leading axes ``(L, S, ...)``; one batched forward pass, one backward
pass written by hand (``loss_grad_grid`` of the models in :mod:`lmlab.regression`: the runs do not interact, so
each run receives its own gradient, and the ``L`` runs of a seed share one matrix product with their batch) and one
vectorised in-place update (SGD, or :func:`lmlab.core.optim.adam_step`) advance all of them by a step. The data of
many steps is drawn at once. The Python loop runs over steps and over the ``K`` batch sizes (whose tensors differ
in shape), never over the ``L x S x K`` runs. :func:`train_one` is the plain reference: one run, an ``nn.Module``
and ``torch.optim``, fed the very same data; the tests check that both agree.

Runs that diverge (a non-finite loss, or a loss above ``diverge_factor`` times the initial one) are marked: their
records carry ``diverged=True`` and ``loss=nan``, their curves turn ``nan`` from then on, and :func:`summarize`
averages only the runs that did not diverge, counting the others. The check runs once, after the last step, on
every loss each run met; until then a diverged run keeps computing in its own columns, which no other run reads.

Three criteria can be read from every run: the final loss, the (first) steps to reach a target loss, and the loss
*averaged over the run* (``avg_loss``, the area under the loss curve divided by the number of steps). The last
rewards a fast descent like steps-to-target, but counts every step: a run that touches the target and climbs back
gets no credit for the touch, and a run that never reaches the target still has a finite value.

Results are tidy: a list of records, one dict per run (see :class:`SweepResult`). Reading them (averages over seeds,
the optimal learning rate of each batch size, the laws fitted to it) is :mod:`lmlab.scaling.laws`, whose names
this module also offers (``lmlab.sweep.optima_over_seeds`` is ``lmlab.scaling.laws.optima_over_seeds``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lmlab.core.checks import check_float, check_int
from lmlab.core.optim import adam_settings, adam_state, adam_step
from lmlab.core.runtime import device as default_device
from lmlab.core.runtime import generator as _seeded_generator
from lmlab.scaling.laws import (
    LawFit,
    Optima,
    fit_laws,
    optima_over_seeds,
    optimal_lrs,
    sgd_linear_contraction,
    sgd_linear_optimal_lr,
    steps_to_target,
    summarize,
)
from lmlab.scaling.regression import LinearModel, MLPModel, RegressionTask, derive_seed

__all__ = [
    "SweepResult",
    "sweep",
    "train_one",
    # from lmlab.scaling.laws
    "steps_to_target",
    "summarize",
    "optimal_lrs",
    "Optima",
    "optima_over_seeds",
    "LawFit",
    "fit_laws",
    "sgd_linear_contraction",
    "sgd_linear_optimal_lr",
]

Model = LinearModel | MLPModel


# ---------------------------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------------------------


def _positive_floats(name: str, values: Sequence[float]) -> list[float]:
    vals = list(values)
    if not vals:
        raise ValueError(f"{name} must not be empty: the grid needs at least one value")
    for v in vals:
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise TypeError(f"{name} must hold numbers, got {v!r}")
        if not math.isfinite(v) or v <= 0:
            raise ValueError(f"{name} must be finite and > 0, got {v!r}")
    if len(set(vals)) != len(vals):
        raise ValueError(f"{name} must not repeat values, got {vals}")
    return [float(v) for v in vals]


def _ints(name: str, values: Sequence[int], low: int) -> list[int]:
    vals = list(values)
    if not vals:
        raise ValueError(f"{name} must not be empty: the grid needs at least one value")
    for v in vals:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name} must hold ints, got {v!r}")
        if v < low:
            raise ValueError(f"{name} must be >= {low}, got {v!r}")
    if len(set(vals)) != len(vals):
        raise ValueError(f"{name} must not repeat values, got {vals}")
    return [int(v) for v in vals]


def _diverge_factor(value: Any) -> float:
    """A float > 1; ``inf`` is allowed (only non-finite losses then mark a run diverged)."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) and value == math.inf:
        return math.inf
    return check_float("diverge_factor", value, 1.0, strict=True)


def _run_hparams(eval_every: Any, diverge_factor: Any, n_test: Any) -> tuple[int, float, int]:
    """The settings shared by :func:`sweep` and :func:`train_one`, checked (names as the caller writes them)."""
    return (
        check_int("eval_every", eval_every, 1),
        _diverge_factor(diverge_factor),
        check_int("n_test", n_test, 1),
    )


def _steps_for(batch_size: int, steps: int | None, examples: int | None) -> int:
    if (steps is None) == (examples is None):
        raise ValueError("give exactly one of steps (a fixed number of steps) or examples (a fixed number of examples)")
    if steps is not None:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be an int >= 1, got {steps!r}")
        return steps
    if isinstance(examples, bool) or not isinstance(examples, int) or examples < batch_size:
        raise ValueError(f"examples must be an int >= the largest batch size ({batch_size}), got {examples!r}")
    return examples // batch_size


# ---------------------------------------------------------------------------------------------------------------
# Data stream and loss
# ---------------------------------------------------------------------------------------------------------------


def _generator(seed: int, batch_size: int) -> torch.Generator:
    """The data stream of one (seed, batch size): shared by every learning rate (common random numbers). It draws on
    the CPU, so a run sees the same examples on every device."""
    return _seeded_generator(derive_seed(seed, 3, batch_size))


def _draw(
    task: RegressionTask, gen: torch.Generator, B: int, device: torch.device, dtype: torch.dtype
) -> tuple[Tensor, Tensor]:
    """One batch of inputs ``(B, d)`` and label noise ``(B,)`` from a stream (in this order, every step)."""
    X = torch.randn(B, task.dim, generator=gen, dtype=dtype)
    eps = torch.randn(B, generator=gen, dtype=dtype)
    return X.to(device), eps.to(device)


_CHUNK = 1 << 22  # numbers of data drawn at once (S seeds x B examples x (d + 1) x steps)


def _draw_steps(
    task: RegressionTask,
    gens: list[torch.Generator],
    B: int,
    n: int,
    teacher: list[Tensor],
    device: torch.device,
    dtype: torch.dtype,
) -> tuple[Tensor, Tensor]:
    """The next ``n`` steps of data of every seed at once: inputs ``(n, S, B, d)`` and labels ``(n, S, B)``, the
    same numbers that :func:`_draw` gives step by step (drawn on the CPU, moved once)."""
    X = torch.empty(n, len(gens), B, task.dim, dtype=dtype)
    e = torch.empty(n, len(gens), B, dtype=dtype)
    for k in range(n):
        for j, g in enumerate(gens):
            torch.randn(B, task.dim, generator=g, out=X[k, j])
            torch.randn(B, generator=g, out=e[k, j])
    X = X.to(device)
    return X, task.f_star(X, teacher) + task.noise_std * e.to(device)


def _test_loss(
    task: RegressionTask, model: Model, params: list[Tensor], teacher: list[Tensor], test: tuple[Tensor, Tensor]
) -> Tensor:
    """Population MSE ``E (f(x) - y)^2`` of every run, shape ``(*runs)``: exact for a linear model and teacher
    (``||w - w*||^2 + sigma^2``), else the held-out mean of ``(f(x) - f*(x))^2`` plus ``sigma^2``."""
    if isinstance(model, LinearModel) and task.teacher == "linear":
        return ((params[0] - teacher[0]) ** 2).sum(-1) + task.noise_std**2
    X, f = test
    if params[0].dim() > 2 and X.dim() == 2:  # a grid (L, S, ...): the held-out set is shared by every run
        pred = model.population_grid(params, X)
    else:
        pred = model.forward(params, X)
    return ((pred - f) ** 2).mean(-1) + task.noise_std**2


# ---------------------------------------------------------------------------------------------------------------
# The batched sweep
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class SweepResult:
    """What :func:`sweep` returns.

    Attributes:
        records: one dict per run with keys ``optimizer, lr, batch_size, seed, steps, examples, loss`` (the final
            population loss, ``nan`` if diverged), ``diverged`` (bool), ``diverged_at`` (the step, or ``None``),
            ``steps_to_target`` (fractional steps to reach ``target``; ``inf`` if never, ``nan`` if diverged or no
            target was given), ``avg_loss`` (the population loss averaged over the measured steps after step 0,
            ``nan`` if diverged), ``initial_loss``.
        eval_steps: batch size -> the steps at which the population loss was measured (``(n_eval,)``).
        curves: batch size -> population losses ``(n_eval, L, S)`` (``nan`` after a run diverged).
        lrs, seeds: the grid's axes (the order of ``curves``' last two axes).
        wall_s: seconds the sweep took.
    """

    records: list[dict[str, Any]]
    eval_steps: dict[int, np.ndarray]
    curves: dict[int, np.ndarray]
    lrs: list[float]
    seeds: list[int]
    wall_s: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    def curve(self, lr: float, batch_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """``(steps, losses)`` of one run."""
        i, j = self.lrs.index(lr), self.seeds.index(seed)
        return self.eval_steps[batch_size], self.curves[batch_size][:, i, j]

    def records_at(self, step: int) -> list[dict[str, Any]]:
        """The records as if every run had stopped after ``step`` steps (a measured step of every batch size):
        ``loss`` is the population loss then, ``diverged`` whether the run had diverged by then."""
        out = []
        for r in self.records:
            B = r["batch_size"]
            where = np.flatnonzero(self.eval_steps[B] == step)
            if where.size == 0:
                raise ValueError(f"step {step} was not measured for batch size {B} (eval_every, steps)")
            curve = self.curves[B][: where[0] + 1, self.lrs.index(r["lr"]), self.seeds.index(r["seed"])]
            loss = float(curve[-1])
            diverged = r["diverged"] and r["diverged_at"] <= step
            out.append(
                {
                    **r,
                    "steps": step,
                    "examples": step * B,
                    "loss": math.nan if diverged else loss,
                    "avg_loss": math.nan if diverged else _run_average(curve),
                    "diverged": diverged,
                    "diverged_at": r["diverged_at"] if diverged else None,
                }
            )
        return out


def sweep(
    task: RegressionTask,
    model: Model,
    *,
    lrs: Sequence[float],
    batch_sizes: Sequence[int],
    seeds: Sequence[int],
    steps: int | None = None,
    examples: int | None = None,
    optimizer: str = "sgd",
    eval_every: int = 1,
    target: float | None = None,
    n_test: int = 1024,
    diverge_factor: float = 1e3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> SweepResult:
    """Train every run of the grid ``lrs x batch_sizes x seeds`` on ``task`` and measure its population loss.

    Each run starts from the initialisation drawn from its seed and reads the data stream of its (seed, batch
    size): runs that differ only in the learning rate see the same examples. The loss is the mean squared error.

    Args:
        task, model: the data and the model (``model.dim`` must equal ``task.dim``).
        lrs: learning rates (> 0, no repeats); batch_sizes: ints >= 1; seeds: ints >= 0.
        steps: train every run for this many steps; or
        examples: train every run on this many examples (``examples // batch_size`` steps).
        optimizer: ``"sgd"`` (plain, no momentum) or ``"adam"`` (PyTorch's Adam with ``betas``, ``eps``).
        eval_every: measure the population loss every this many steps (and at step 0 and at the end).
        target: a population loss; records then carry the (fractional) steps needed to reach it.
        n_test: held-out points for the population loss (unused for a linear model on a linear teacher: exact).
        diverge_factor: a run whose training or population loss exceeds this factor times its initial population
            loss, or is not finite, is marked diverged; its later losses are dropped.
        device: default :func:`lmlab.device`. dtype: the runs' float type.

    Raises:
        ValueError: an empty grid, a learning rate or batch size that is not positive, repeated values, both or
            neither of ``steps`` and ``examples``, an unknown optimizer, mismatched dimensions, ``eval_every`` or
            ``n_test`` < 1, ``diverge_factor <= 1``, ``betas`` outside [0, 1), ``eps <= 0``, ``target <= 0``.
        TypeError: a setting of the wrong type (e.g. ``betas`` not a pair, ``eval_every`` not an int).
    """
    import time

    start = time.perf_counter()
    lr_list = _positive_floats("lrs", lrs)
    bs_list = _ints("batch_sizes", batch_sizes, 1)
    seed_list = _ints("seeds", seeds, 0)
    n_steps = {B: _steps_for(B, steps, examples) for B in bs_list}
    if optimizer not in ("sgd", "adam"):
        raise ValueError(f"optimizer must be 'sgd' or 'adam', got {optimizer!r}")
    eval_every, diverge_factor, n_test = _run_hparams(eval_every, diverge_factor, n_test)
    betas, eps, _ = adam_settings(betas, eps)
    if target is not None:
        target = check_float("target", target, 0.0, strict=True)
    if model.dim != task.dim:
        raise ValueError(f"model.dim ({model.dim}) must equal task.dim ({task.dim})")
    dev = torch.device(device) if device is not None else default_device()

    teacher = task.teacher_params(dev, dtype)
    test = task.test_set(n_test, dev, dtype)
    L, S = len(lr_list), len(seed_list)
    inits = [model.init(_seeded_generator(derive_seed(s, 0))) for s in seed_list]
    records: list[dict[str, Any]] = []
    eval_steps: dict[int, np.ndarray] = {}
    curves: dict[int, np.ndarray] = {}
    for B in bs_list:
        T = n_steps[B]
        lr = torch.tensor(lr_list, device=dev, dtype=dtype).reshape(L, 1)
        # every parameter of the L x S runs of this batch size: (L, S, *shape)
        params = [
            torch.stack([init[k] for init in inits]).to(dev, dtype).expand(L, S, *inits[0][k].shape).clone()
            for k in range(len(inits[0]))
        ]
        state = adam_state(params) if optimizer == "adam" else []
        gens = [_generator(s, B) for s in seed_list]
        loss0 = _test_loss(task, model, params, teacher, test)
        # every loss a run meets, in order: (training loss of step t, population loss after step t), t = 1..T; a run
        # diverges at its first loss that is not finite or exceeds the limit. Checked once, after the last step:
        # a diverged run keeps computing (on its own columns only: nothing mixes runs) and its numbers are dropped.
        checks = torch.zeros(2 * T, L, S, device=dev, dtype=dtype)
        stamps, losses = [0], [loss0]
        chunk = max(1, _CHUNK // (S * B * (task.dim + 1)))  # steps whose data is drawn in one go
        with torch.no_grad():
            for t in range(1, T + 1):
                if (t - 1) % chunk == 0:
                    Xs, ys = _draw_steps(task, gens, B, min(chunk, T - t + 1), teacher, dev, dtype)
                X, y = Xs[(t - 1) % chunk], ys[(t - 1) % chunk]  # (S, B, d) and (S, B), shared by the L lrs
                checks[2 * t - 2], grads = model.loss_grad_grid(params, X, y)  # (L, S) and one gradient per param
                _update(params, grads, state, lr, t, optimizer, betas, eps)
                if t % eval_every == 0 or t == T:
                    checks[2 * t - 1] = pop = _test_loss(task, model, params, teacher, test)
                    stamps.append(t)
                    losses.append(pop)
        bad = ~torch.isfinite(checks) | (checks > diverge_factor * loss0)
        first = torch.where(bad.any(0), bad.int().argmax(0), 2 * T)  # (L, S): index of the first bad loss
        diverged_at = torch.where(first < 2 * T, (first + 1) // 2, -1)  # loss 2t - 2 -> step t - 1, 2t - 1 -> t
        stamp_idx = 2 * torch.tensor(stamps, device=dev) - 1  # where the population loss at each stamp sits
        losses = torch.where(stamp_idx.reshape(-1, 1, 1) < first, torch.stack(losses), float("nan"))
        curve = losses.double().cpu().numpy()  # (n_eval, L, S)
        steps_arr = np.array(stamps)
        eval_steps[B], curves[B] = steps_arr, curve
        div_at = diverged_at.cpu().numpy()
        for i, lr_i in enumerate(lr_list):
            for j, s in enumerate(seed_list):
                diverged = bool(div_at[i, j] >= 0)
                reached = steps_to_target(steps_arr, curve[:, i, j], target) if target is not None else math.nan
                records.append(
                    {
                        "optimizer": optimizer,
                        "lr": lr_i,
                        "batch_size": B,
                        "seed": s,
                        "steps": T,
                        "examples": T * B,
                        "loss": math.nan if diverged else float(curve[-1, i, j]),
                        "diverged": diverged,
                        "diverged_at": int(div_at[i, j]) if diverged else None,
                        "steps_to_target": math.nan if diverged else reached,
                        "avg_loss": math.nan if diverged else _run_average(curve[:, i, j]),
                        "initial_loss": float(curve[0, i, j]),
                    }
                )
    meta = {"task": task, "model": type(model).__name__, "target": target, "device": str(dev)}
    return SweepResult(records, eval_steps, curves, lr_list, seed_list, time.perf_counter() - start, meta)


def _run_average(curve: np.ndarray) -> float:
    """The loss averaged over a run: the mean of the losses measured after step 0 (``curve[1:]``); a run of zero
    steps (only the start measured) gives its initial loss."""
    return float(np.mean(curve[1:])) if len(curve) > 1 else float(curve[0])


def _update(
    params: list[Tensor],
    grads: list[Tensor],
    state: list[tuple[Tensor, Tensor]],
    lr: Tensor,
    t: int,
    optimizer: str,
    betas: tuple[float, float],
    eps: float,
) -> None:
    """One SGD or Adam step of every run, in place; ``lr`` has shape ``(L, 1)`` and broadcasts over seeds. Adam is
    :func:`lmlab.core.optim.adam_step` (``torch.optim.Adam`` operation by operation: the runs agree with it to
    rounding)."""
    if optimizer == "adam":
        adam_step(params, grads, state, lr, t, betas=betas, eps=eps)
        return
    for p, g in zip(params, grads):
        p.sub_(lr.reshape(*lr.shape, *([1] * (p.dim() - lr.dim()))) * g)


# ---------------------------------------------------------------------------------------------------------------
# The plain reference: one run, nn.Module + torch.optim
# ---------------------------------------------------------------------------------------------------------------


def train_one(
    task: RegressionTask,
    model: Model,
    *,
    lr: float,
    batch_size: int,
    seed: int,
    steps: int,
    optimizer: str = "sgd",
    eval_every: int = 1,
    n_test: int = 1024,
    diverge_factor: float = 1e3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> dict[str, Any]:
    """One run of the grid the plain way (an ``nn.Module``, ``torch.optim.SGD``/``Adam``, a loop over steps),
    reading the same initialisation and data stream as :func:`sweep`. The reference for tests and benchmarks.

    Returns:
        ``{"loss", "diverged", "diverged_at", "eval_steps", "curve"}`` with the meanings of :func:`sweep`.
    """
    _positive_floats("lr", [lr])
    (B,) = _ints("batch_size", [batch_size], 1)
    _ints("seed", [seed], 0)
    T = _steps_for(B, steps, None)
    if optimizer not in ("sgd", "adam"):
        raise ValueError(f"optimizer must be 'sgd' or 'adam', got {optimizer!r}")
    eval_every, diverge_factor, n_test = _run_hparams(eval_every, diverge_factor, n_test)
    betas, eps, _ = adam_settings(betas, eps)
    dev = torch.device(device) if device is not None else default_device()
    teacher = task.teacher_params(dev, dtype)
    test = task.test_set(n_test, dev, dtype)
    init = [p.to(dev, dtype) for p in model.init(_seeded_generator(derive_seed(seed, 0)))]
    net = model.module(init)
    opt: torch.optim.Optimizer = (
        torch.optim.SGD(net.parameters(), lr=lr)
        if optimizer == "sgd"
        else torch.optim.Adam(net.parameters(), lr=lr, betas=betas, eps=eps)
    )
    gen = _generator(seed, B)

    def population() -> float:
        with torch.no_grad():
            if isinstance(model, LinearModel) and task.teacher == "linear":
                return float(((net.weight[0] - teacher[0]) ** 2).sum()) + task.noise_std**2
            X, f = test
            return float(((net(X).squeeze(-1) - f) ** 2).mean()) + task.noise_std**2

    loss0 = population()
    limit = diverge_factor * loss0
    stamps, curve, diverged_at = [0], [loss0], None
    for t in range(1, T + 1):
        X, e = _draw(task, gen, B, dev, dtype)
        y = task.f_star(X, teacher) + task.noise_std * e
        loss = ((net(X).squeeze(-1) - y) ** 2).mean()
        if not math.isfinite(loss.item()) or loss.item() > limit:
            diverged_at = t - 1
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
        if t % eval_every == 0 or t == T:
            pop = population()
            if not math.isfinite(pop) or pop > limit:
                diverged_at = t
                break
            stamps.append(t)
            curve.append(pop)
    return {
        "loss": math.nan if diverged_at is not None else curve[-1],
        "diverged": diverged_at is not None,
        "diverged_at": diverged_at,
        "eval_steps": np.array(stamps),
        "curve": np.array(curve),
    }
