"""lmlab.core.optim: the batched Adam(W) step equals torch.optim run by run; the cosine schedule; its callers."""

from __future__ import annotations

import math

import lmlab
import pytest
import torch
from lmlab import lowrank
from lmlab.adapting.lora_init import init_factors
from lmlab.core.optim import adam_settings, adam_state, adam_step, cosine_schedule

SHAPES = [(4, 3), (5,), (1, 2)]  # each parameter's own shape, after the run axes (L, S)


def _batched_vs_torch(weight_decay: float, betas: tuple[float, float], warmup: int) -> None:
    """L x S runs (per-learning-rate rates (L, 1)) under a warm-up + cosine schedule, against one torch optimizer
    per run fed the same gradients (a fixed quadratic loss, so every run's gradients depend on its own path)."""
    L, S, steps = 3, 2, 25
    g = lmlab.generator(0)
    lrs = torch.tensor([0.003, 0.03, 0.3], dtype=torch.float64)
    params = [torch.randn(L, S, *shape, generator=g, dtype=torch.float64) for shape in SHAPES]
    targets = [torch.randn(L, S, *shape, generator=g, dtype=torch.float64) for shape in SHAPES]
    runs = {(i, j): [p[i, j].clone().requires_grad_() for p in params] for i in range(L) for j in range(S)}
    cls = torch.optim.AdamW if weight_decay else torch.optim.Adam
    opts = {
        (i, j): cls(ps, lr=float(lrs[i]), betas=betas, eps=1e-8, weight_decay=weight_decay)
        for (i, j), ps in runs.items()
    }
    scheds = {
        k: torch.optim.lr_scheduler.LambdaLR(o, lambda t: cosine_schedule(t, steps, warmup)) for k, o in opts.items()
    }
    start = [p.clone() for p in params]
    state = adam_state(params)
    for t in range(steps):
        grads = [3 * (p - q) ** 3 + (p - q) for p, q in zip(params, targets)]  # gradient of a quartic bowl
        lr = lrs.reshape(L, 1) * cosine_schedule(t, steps, warmup)
        adam_step(params, grads, state, lr, t + 1, betas=betas, eps=1e-8, weight_decay=weight_decay)
        for (i, j), ps in runs.items():
            for p, q in zip(ps, targets):
                p.grad = 3 * (p.detach() - q[i, j]) ** 3 + (p.detach() - q[i, j])
            opts[(i, j)].step()
            scheds[(i, j)].step()
    for (i, j), ps in runs.items():
        for p, ref in zip(params, ps):
            torch.testing.assert_close(p[i, j], ref.detach(), rtol=1e-12, atol=1e-13)
    moved = [float((p - p0).abs().amax(tuple(range(2, p.dim())))[-1].min()) for p, p0 in zip(params, start)]
    assert min(moved) > 0.01  # the runs at the largest rate moved: not a vacuous match


@pytest.mark.parametrize("betas", [(0.9, 0.999), (0.5, 0.5)])
@pytest.mark.parametrize("warmup", [0, 5])
def test_batched_adam_equals_torch_adam_run_by_run(betas: tuple[float, float], warmup: int) -> None:
    _batched_vs_torch(0.0, betas, warmup)


@pytest.mark.parametrize("weight_decay", [0.01, 0.3])
def test_batched_adamw_equals_torch_adamw_run_by_run(weight_decay: float) -> None:
    _batched_vs_torch(weight_decay, (0.5, 0.5), 3)


def test_a_float_learning_rate_equals_a_tensor_of_it() -> None:
    g = lmlab.generator(1)
    a = [torch.randn(2, 3, 4, generator=g, dtype=torch.float64)]
    b = [a[0].clone()]
    sa, sb = adam_state(a), adam_state(b)
    for t in range(1, 6):
        grad = [torch.sin(a[0]) + t]
        adam_step(a, grad, sa, 0.05, t, weight_decay=0.1)
        adam_step(b, [torch.sin(b[0]) + t], sb, torch.full((2, 1), 0.05, dtype=torch.float64), t, weight_decay=0.1)
    torch.testing.assert_close(a[0], b[0], rtol=1e-14, atol=0)


def test_fit_lowrank_with_cosine_equals_torch_adam_per_run() -> None:
    """fit_lowrank (per-run rates, LoRA+ ratios and scales, cosine decay) equals torch.optim.Adam + LambdaLR on each
    run's factors alone, from the same start."""
    g = lmlab.generator(0)
    delta = lowrank.planted_update(6, 5, [1.0, 0.5, 0.2], g).double()
    ranks, lrs, ratios, scales, steps = [1, 2, 3], [0.01, 0.03, 0.02], [1.0, 4.0, 2.0], [1.0, 2.0, 0.5], 30
    fit = lowrank.fit_lowrank(
        delta, ranks, lr=lrs, ratio=ratios, scale=scales, steps=steps, generator=lmlab.generator(3)
    )
    W0 = torch.zeros_like(delta)
    gen = lmlab.generator(3)
    for c, k in enumerate(ranks):
        a, b, frozen = init_factors(W0, k, "standard", scale=scales[c], grad=-2 * delta, generator=gen)
        A, B = a.clone().requires_grad_(), b.clone().requires_grad_()
        target = W0 + delta - frozen
        opt = torch.optim.Adam([{"params": [A], "lr": lrs[c] * ratios[c]}, {"params": [B], "lr": lrs[c]}])
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: cosine_schedule(t, steps))
        for _ in range(steps):
            loss = ((scales[c] * A @ B - target) ** 2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        torch.testing.assert_close(fit.A[c, :, :k], A.detach(), rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(fit.B[c, :k], B.detach(), rtol=1e-10, atol=1e-12)
        assert float(fit.losses[-1, c]) < 0.9 * float(fit.losses[0, c])  # the run moved


def test_cosine_schedule_warms_up_then_decays_to_zero() -> None:
    f = [cosine_schedule(t, 100, 10) for t in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0) and f[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[10:], f[11:])) and f[-1] < 1e-3
    assert cosine_schedule(55, 100, 10) == pytest.approx(0.5)
    assert cosine_schedule(100, 100) == pytest.approx(0.0, abs=1e-15) and cosine_schedule(0, 100) == 1.0
    assert cosine_schedule(7, 40) == 0.5 * (1 + math.cos(math.pi * 7 / 40))  # no warm-up: the plain cosine


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"step": -1}, ValueError, "step"),
        ({"step": 11}, ValueError, "step"),
        ({"steps": 0}, ValueError, "steps"),
        ({"warmup": 11}, ValueError, "warmup"),
        ({"warmup": -1}, ValueError, "warmup"),
        ({"step": 1.0}, TypeError, "step"),
        ({"steps": None}, TypeError, "steps"),
    ],
)
def test_cosine_schedule_checks_its_arguments(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        cosine_schedule(**{"step": 0, "steps": 10, "warmup": 2, **kwargs})


def _call(**over: object) -> None:
    p = [torch.zeros(2, 3, 4)]
    kw: dict = {"params": p, "grads": [torch.ones(2, 3, 4)], "state": adam_state(p), "lr": 0.1, "t": 1}
    kw.update(over)
    adam_step(**kw)


@pytest.mark.parametrize(
    ("over", "error", "match"),
    [
        ({"betas": (1.0, 0.9)}, ValueError, r"betas\[0\]"),
        ({"betas": (0.9, -0.1)}, ValueError, r"betas\[1\]"),
        ({"betas": 0.9}, TypeError, "betas"),
        ({"eps": 0.0}, ValueError, "eps"),
        ({"weight_decay": -0.1}, ValueError, "weight_decay"),
        ({"t": 0}, ValueError, "t must"),
        ({"t": 1.5}, TypeError, "t must"),
        ({"lr": -0.1}, ValueError, "lr"),
        ({"lr": "0.1"}, TypeError, "lr"),
        ({"lr": torch.ones(3)}, ValueError, "lr must broadcast"),
        ({"lr": torch.ones(2, 3, 4, 1, 1)}, ValueError, "lr must broadcast"),
        ({"lr": torch.ones(2, dtype=torch.int64)}, TypeError, "lr"),
        ({"grads": [torch.ones(2, 3)]}, ValueError, r"grads\[0\]"),
        ({"grads": []}, TypeError, "grads"),
        ({"params": torch.zeros(2)}, TypeError, "params"),
        ({"state": []}, ValueError, "state"),
        ({"state": [(torch.zeros(2, 3, 4),)]}, ValueError, r"state\[0\]"),
    ],
)
def test_adam_step_checks_its_arguments(over: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        _call(**over)


def test_bad_settings_leave_the_parameters_untouched() -> None:
    p = [torch.zeros(2, 3)]
    with pytest.raises(ValueError, match="eps"):
        adam_step(p, [torch.ones(2, 3)], adam_state(p), 0.1, 1, eps=-1.0)
    assert not p[0].any()
    assert adam_settings((0.0, 0.5), 1e-8) == ((0.0, 0.5), 1e-8, 0.0)
