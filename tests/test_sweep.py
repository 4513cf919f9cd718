"""lmlab.sweep, lmlab.scaling.laws, lmlab.regression: the batched grid equals the plain runs, the optimum the theory."""

from __future__ import annotations

import math

import lmlab
import lmlab.scaling.laws as laws
import numpy as np
import pytest
import torch
from lmlab import sweep as sw
from lmlab.scaling.regression import LinearModel, MLPModel, RegressionTask

CPU = torch.device("cpu")


@pytest.mark.parametrize(
    ("teacher", "optimizer"),
    [("linear", "sgd"), ("mlp", "sgd"), ("mlp", "adam"), ("linear", "adam")],
)
def test_batched_sweep_equals_individual_runs(teacher: str, optimizer: str) -> None:
    """Every run of the batched grid follows the plain nn.Module + torch.optim run with the same seed, step by step."""
    task = RegressionTask(dim=5, noise_std=0.3, teacher=teacher, teacher_width=7, seed=2)
    model = LinearModel(5) if teacher == "linear" else MLPModel(5, 6)
    lrs = [0.01, 0.07] if optimizer == "sgd" else [0.003, 0.02]
    kw = dict(steps=12, optimizer=optimizer, eval_every=4, n_test=64, device=CPU, dtype=torch.float64)
    res = sw.sweep(task, model, lrs=lrs, batch_sizes=[1, 6], seeds=[0, 5], **kw)
    assert len(res.records) == 2 * 2 * 2
    for r in res.records:
        ref = sw.train_one(task, model, lr=r["lr"], batch_size=r["batch_size"], seed=r["seed"], **kw)
        steps, curve = res.curve(r["lr"], r["batch_size"], r["seed"])
        np.testing.assert_array_equal(steps, ref["eval_steps"])
        np.testing.assert_allclose(curve, ref["curve"], rtol=1e-10)
        assert not r["diverged"] and not ref["diverged"]
        assert r["loss"] == pytest.approx(ref["loss"], rel=1e-10)
        assert r["avg_loss"] == pytest.approx(ref["curve"][1:].mean(), rel=1e-10)
        assert abs(r["loss"] - r["initial_loss"]) > 1e-3 * r["initial_loss"]  # every run moved: not a vacuous match
    # and the runs learned, on average (a single run of 12 steps at batch size 1 may end above its start)
    assert np.mean([r["loss"] / r["initial_loss"] for r in res.records]) < 0.95


def test_learning_rates_share_the_data_and_seeds_differ() -> None:
    """Common random numbers: a tiny learning rate changes the loss smoothly; another seed draws other data."""
    task = RegressionTask(dim=4, noise_std=0.0)
    res = sw.sweep(
        task, LinearModel(4), lrs=[0.1, 0.1001], batch_sizes=[2], seeds=[0, 1], steps=5, device=CPU, dtype=torch.float64
    )
    loss = {(r["lr"], r["seed"]): r["loss"] for r in res.records}
    assert loss[(0.1, 0)] == pytest.approx(loss[(0.1001, 0)], rel=1e-2)
    assert loss[(0.1, 0)] != loss[(0.1, 1)]


# Tolerance of the measured optimum against the closed form B / (2 (B + d + 1)): 10 % in the learning rate.
OPTIMUM_RTOL = 0.10


def test_linear_regression_optimum_matches_the_closed_form() -> None:
    """Noiseless linear regression: the learning rate minimising the mean loss after a fixed number of steps (whose
    expectation is rho(lr)^T ||w*||^2 exactly) is B / (2 (B + d + 1)), measured at B = 2 and 32.

    The loss after T steps is a product of T random factors, heavy-tailed for large T, and the minimum of rho is
    flat: few steps and many seeds keep the measured optimum within 5 % over the seed offsets 0-11 (measured)."""
    d = 8
    task = RegressionTask(dim=d, noise_std=0.0, seed=1)
    lrs = list(np.geomspace(0.02, 0.9, 28))
    res = sw.sweep(
        task, LinearModel(d), lrs=lrs, batch_sizes=[2, 32], seeds=range(256), steps=4, device=CPU, dtype=torch.float64
    )
    best = {o["batch_size"]: o for o in laws.optimal_lrs(laws.summarize(res.records, "loss"))}
    for B in (2, 32):
        assert best[B]["bracketed"]
        theory = laws.sgd_linear_optimal_lr(B, d)
        assert best[B]["lr"] == pytest.approx(theory, rel=OPTIMUM_RTOL), (B, best[B]["lr"], theory)


def test_contraction_formula_matches_monte_carlo() -> None:
    """E ||w' - w*||^2 / ||w - w*||^2 after one noiseless SGD step equals sgd_linear_contraction."""
    g = lmlab.generator(0)
    d, B, lr, n = 6, 3, 0.2, 200_000
    e = torch.randn(d, dtype=torch.float64, generator=g)
    X = torch.randn(n, B, d, dtype=torch.float64, generator=g)
    grad = 2 * torch.einsum("nbd,nb->nd", X, X @ e) / B  # gradient of the batch MSE at w - w* = e
    ratio = float(((e - lr * grad) ** 2).sum(-1).mean() / (e**2).sum())
    assert ratio == pytest.approx(laws.sgd_linear_contraction(lr, B, d), rel=0.01)


def test_diverging_learning_rates_are_marked_and_left_out() -> None:
    """Above the stability limit B / (B + d + 1) runs blow up: marked diverged, nan loss, not averaged."""
    d, B = 4, 4
    limit = 2 * laws.sgd_linear_optimal_lr(B, d)
    task = RegressionTask(dim=d, noise_std=0.1)
    res = sw.sweep(
        task, LinearModel(d), lrs=[0.5 * limit, 3 * limit], batch_sizes=[B], seeds=[0, 1, 2], steps=200, device=CPU
    )
    for r in res.records:
        if r["lr"] > limit:
            assert r["diverged"] and math.isnan(r["loss"]) and r["diverged_at"] is not None
            assert 0 < r["diverged_at"] < 200
        else:
            assert not r["diverged"] and r["loss"] < r["initial_loss"]
    rows = {row["lr"]: row for row in laws.summarize(res.records)}
    bad, good = rows[3 * limit], rows[0.5 * limit]
    assert bad["n_diverged"] == 3 and bad["n"] == 0 and math.isnan(bad["mean"])
    assert good["n_diverged"] == 0 and good["n"] == 3 and math.isfinite(good["mean"])
    # the diverged learning rate never wins
    (opt,) = laws.optimal_lrs(list(rows.values()))
    assert opt["lr_grid"] == 0.5 * limit and not opt["bracketed"]
    # curves stop (nan) after divergence
    steps, curve = res.curve(3 * limit, B, 0)
    assert np.isnan(curve[-1]) and np.isfinite(curve[0])


def test_avg_loss_is_the_mean_of_the_measured_losses_and_follows_records_at() -> None:
    """avg_loss averages the population loss over the measured steps after step 0; records_at(step) recomputes it
    over the steps up to ``step``; a diverged run has none."""
    task = RegressionTask(dim=4, noise_std=0.1)
    res = sw.sweep(
        task, LinearModel(4), lrs=[0.05, 5.0], batch_sizes=[2], seeds=[0], steps=12, eval_every=3, device=CPU
    )
    ok, bad = sorted(res.records, key=lambda r: r["lr"])
    steps, curve = res.curve(0.05, 2, 0)
    np.testing.assert_array_equal(steps, [0, 3, 6, 9, 12])
    assert ok["avg_loss"] == pytest.approx(curve[1:].mean(), rel=1e-12)
    assert curve[-1] < ok["avg_loss"] < curve[0]  # a descending curve: between its end and its start
    early = {r["lr"]: r for r in res.records_at(6)}
    assert early[0.05]["avg_loss"] == pytest.approx(curve[1:3].mean(), rel=1e-12)
    assert bad["diverged"] and math.isnan(bad["avg_loss"])


def test_optima_over_seeds_groups_the_seeds_and_flags_the_edge() -> None:
    """The optimum of all seeds and of each disjoint seed group; bracketed is False when an optimum sits at the
    edge of the grid."""
    d = 4
    task = RegressionTask(dim=d, noise_std=0.0, seed=1)
    lrs = list(np.geomspace(0.05, 0.6, 12))
    res = sw.sweep(task, LinearModel(d), lrs=lrs, batch_sizes=[1, 8], seeds=range(8), steps=10, device=CPU)
    opt = laws.optima_over_seeds(res.records, "avg_loss", n_groups=2)
    assert opt.seed_groups == [[0, 2, 4, 6], [1, 3, 5, 7]]
    np.testing.assert_array_equal(opt.batch_sizes, [1, 8])
    assert opt.groups.shape == (2, 2) and opt.bracketed
    assert np.all(opt.lo <= opt.hi) and np.all(opt.lo > 0)
    whole = laws.optimal_lrs(laws.summarize(res.records, "avg_loss"))
    np.testing.assert_allclose(opt.lr, [o["lr"] for o in whole])
    first = laws.optimal_lrs(laws.summarize([r for r in res.records if r["seed"] % 2 == 0], "avg_loss"))
    np.testing.assert_allclose(opt.groups[0], [o["lr"] for o in first])
    # the optimum moves up with the batch size, as B / (2 (B + d + 1)) does
    assert opt.lr[1] > 1.5 * opt.lr[0]
    # a grid that stops below the optimum: not bracketed
    low = [r for r in res.records if r["lr"] < 0.1]
    assert not laws.optima_over_seeds(low, "avg_loss", n_groups=2).bracketed
    with pytest.raises(ValueError, match="n_groups"):
        laws.optima_over_seeds(res.records, "avg_loss", n_groups=9)
    with pytest.raises(ValueError, match="one optimizer"):
        laws.optima_over_seeds(res.records + [{**res.records[0], "optimizer": "adam"}], "avg_loss")


def test_summarize_never_averages_diverged_runs() -> None:
    recs = [
        {"optimizer": "sgd", "batch_size": 1, "lr": 0.1, "seed": s, "loss": v, "diverged": dv}
        for s, (v, dv) in enumerate([(1.0, False), (3.0, False), (math.nan, True)])
    ]
    (row,) = laws.summarize(recs)
    assert row["mean"] == 2.0 and row["lo"] == 1.0 and row["hi"] == 3.0
    assert row["n"] == 2 and row["n_diverged"] == 1


def test_steps_to_target_interpolates_in_log_loss() -> None:
    steps = np.array([0, 10, 20])
    curve = np.array([1.0, 0.1, 0.01])
    assert laws.steps_to_target(steps, curve, 0.1) == pytest.approx(10)
    assert laws.steps_to_target(steps, curve, 10**-1.5) == pytest.approx(15)
    assert laws.steps_to_target(steps, curve, 2.0) == 0.0
    assert laws.steps_to_target(steps, curve, 1e-3) == math.inf


def test_fit_laws_recover_known_laws() -> None:
    B = 2.0 ** np.arange(0, 11)
    fits = laws.fit_laws(B, 0.5 / (1 + 17 / B))
    sat = fits["saturating"]
    assert sat.params["eps_max"] == pytest.approx(0.5, rel=1e-6)
    assert sat.params["B_noise"] == pytest.approx(17, rel=1e-6)
    assert sat.rms < 1e-8 < fits["linear"].rms
    fits = laws.fit_laws(B, 0.003 * B**0.5)
    assert fits["power"].params["alpha"] == pytest.approx(0.5, abs=1e-9)
    assert fits["sqrt"].rms < 1e-9 and fits["sqrt"].params["c"] == pytest.approx(0.003)
    assert fits["linear"](np.array([4.0]))[0] == pytest.approx(fits["linear"].params["c"] * 4)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(lrs=[]), "lrs must not be empty"),
        (dict(batch_sizes=[]), "batch_sizes must not be empty"),
        (dict(seeds=[]), "seeds must not be empty"),
        (dict(lrs=[0.1, 0.0]), "lrs must be finite and > 0"),
        (dict(lrs=[-0.1]), "lrs must be finite and > 0"),
        (dict(lrs=[float("nan")]), "lrs must be finite and > 0"),
        (dict(batch_sizes=[4, 0]), "batch_sizes must be >= 1"),
        (dict(batch_sizes=[-2]), "batch_sizes must be >= 1"),
        (dict(seeds=[-1]), "seeds must be >= 0"),
        (dict(optimizer="rmsprop"), "optimizer must be"),
        (dict(steps=None), "exactly one of steps"),
        (dict(examples=64), "exactly one of steps"),
        (dict(steps=0), "steps must be an int >= 1"),
    ],
)
def test_bad_grids_raise_clear_errors(kwargs: dict, match: str) -> None:
    args = dict(lrs=[0.1], batch_sizes=[2], seeds=[0], steps=3, device=CPU)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        sw.sweep(RegressionTask(dim=3), LinearModel(3), **args)


def test_type_errors_and_mismatches() -> None:
    with pytest.raises(TypeError, match="batch_sizes must hold ints"):
        sw.sweep(RegressionTask(dim=3), LinearModel(3), lrs=[0.1], batch_sizes=[2.5], seeds=[0], steps=3)
    with pytest.raises(ValueError, match="model.dim"):
        sw.sweep(RegressionTask(dim=3), LinearModel(4), lrs=[0.1], batch_sizes=[2], seeds=[0], steps=3)
    with pytest.raises(ValueError, match="fewer|length >= 3"):
        laws.fit_laws([1, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="noise_std"):
        RegressionTask(noise_std=-1.0)
    with pytest.raises(ValueError, match="teacher"):
        RegressionTask(teacher="cubic")


def test_fixed_examples_gives_fewer_steps_to_larger_batches() -> None:
    res = sw.sweep(
        RegressionTask(dim=3), LinearModel(3), lrs=[0.1], batch_sizes=[1, 4, 16], seeds=[0], examples=64, device=CPU
    )
    assert {r["batch_size"]: r["steps"] for r in res.records} == {1: 64, 4: 16, 16: 4}
    assert all(r["examples"] == 64 for r in res.records)


def test_mlp_teacher_has_unit_variance_and_noise_is_as_stated() -> None:
    task = RegressionTask(dim=8, noise_std=0.5, teacher="mlp", teacher_width=16, seed=3)
    X, f = task.test_set(20000, dtype=torch.float64)
    assert float(f.var()) == pytest.approx(1.0, rel=0.05)
    # population loss of the zero predictor is Var f* + sigma^2 (exact formula vs held-out estimate)
    res = sw.sweep(
        task,
        MLPModel(8, 4),
        lrs=[1e-9],
        batch_sizes=[1],
        seeds=[0],
        steps=1,
        n_test=20000,
        device=CPU,
        dtype=torch.float64,
    )
    assert res.records[0]["initial_loss"] > task.noise_std**2


@pytest.mark.parametrize("block", [None, 7])
def test_hand_written_gradients_equal_autograd(block: int | None, monkeypatch: pytest.MonkeyPatch) -> None:
    """loss_grad_grid (the sweep's hand-written backward pass, processed in blocks of rows for large batches) gives
    the batch losses of forward_grid and the gradients autograd computes from them."""
    from lmlab import regression

    if block is not None:  # blocks of a single row of hidden activations: many blocks per batch
        monkeypatch.setattr(regression, "_BLOCK", block)
    g = lmlab.generator(0)
    L, S, B, d = 3, 2, 9, 4
    X = torch.randn(S, B, d, generator=g, dtype=torch.float64)
    y = torch.randn(S, B, generator=g, dtype=torch.float64)
    for model in (LinearModel(d), MLPModel(d, 5)):
        inits = [model.init(g) for _ in range(L * S)]
        params = [torch.stack([i[k] for i in inits]).reshape(L, S, *inits[0][k].shape) for k in range(len(inits[0]))]
        if isinstance(model, LinearModel):
            params = [torch.randn(L, S, d, generator=g, dtype=torch.float64)]
        loss, grads = model.loss_grad_grid(params, X, y)
        leaves = [p.clone().requires_grad_(True) for p in params]
        ref = ((model.forward_grid(leaves, X) - y) ** 2).mean(-1)
        ref_grads = torch.autograd.grad(ref.sum(), leaves)
        torch.testing.assert_close(loss, ref.detach(), rtol=1e-12, atol=1e-12)
        for a, b in zip(grads, ref_grads):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
        pop = model.population_grid(params, X[0])
        torch.testing.assert_close(pop, model.forward_grid(params, X[0].expand(S, B, d)), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(diverge_factor=1.0), ValueError, "diverge_factor"),
        (dict(diverge_factor=math.nan), ValueError, "diverge_factor"),
        (dict(diverge_factor="big"), TypeError, "diverge_factor"),
        (dict(eval_every=0), ValueError, "eval_every"),
        (dict(eval_every=1.5), TypeError, "eval_every"),
        (dict(n_test=0), ValueError, "n_test"),
        (dict(betas=(0.9, 1.0)), ValueError, r"betas\[1\]"),
        (dict(betas=(-0.1, 0.999)), ValueError, r"betas\[0\]"),
        (dict(betas=0.9), TypeError, "betas"),
        (dict(betas=(0.9, 0.99, 0.9)), TypeError, "betas"),
        (dict(eps=0.0), ValueError, "eps"),
        (dict(eps=math.inf), ValueError, "eps"),
        (dict(lr=0.0), ValueError, "lr"),
        (dict(batch_size=0), ValueError, "batch_size"),
    ],
)
def test_train_one_checks_every_numeric_argument(kwargs: dict, error: type, match: str) -> None:
    args = dict(lr=0.1, batch_size=2, seed=0, steps=3, optimizer="adam", device=CPU)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        sw.train_one(RegressionTask(dim=3), LinearModel(3), **args)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(betas=(0.9, 1.5)), ValueError, r"betas\[1\]"),
        (dict(eps=-1e-8), ValueError, "eps"),
        (dict(diverge_factor=0.5), ValueError, "diverge_factor"),
        (dict(n_test=-1), ValueError, "n_test"),
        (dict(target=math.nan), ValueError, "target"),
        (dict(eval_every=True), TypeError, "eval_every"),
    ],
)
def test_sweep_checks_adam_and_run_settings(kwargs: dict, error: type, match: str) -> None:
    args = dict(lrs=[0.1], batch_sizes=[2], seeds=[0], steps=3, optimizer="adam", device=CPU)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        sw.sweep(RegressionTask(dim=3), LinearModel(3), **args)


def test_diverge_factor_inf_still_allowed_and_theory_checks_dim() -> None:
    out = sw.train_one(
        RegressionTask(dim=3),
        LinearModel(3),
        lr=0.1,
        batch_size=2,
        seed=0,
        steps=2,
        diverge_factor=math.inf,
        device=CPU,
    )
    assert not out["diverged"]
    with pytest.raises(ValueError, match="target"):
        laws.steps_to_target(np.array([0, 1]), np.array([1.0, 0.5]), 0.0)
    with pytest.raises(TypeError, match="dim"):
        laws.sgd_linear_optimal_lr(4, 16.5)
