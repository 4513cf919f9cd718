"""lmlab.minibatch_sgd: the homework's finite-data SGD, its vectorised sweeps and the recursion that predicts them."""

from __future__ import annotations

import math

import lmlab
import lmlab.scaling.laws as laws
import lmlab.scaling.minibatch_sgd as ms
import numpy as np
import pytest
import torch
from lmlab.core.optim import cosine_schedule


def gd_closed_form(X: torch.Tensor, Y: torch.Tensor, W0: torch.Tensor, lr: float, steps: int) -> torch.Tensor:
    """Full-batch gradient descent on ||X W - Y||^2 / (n d) after ``steps`` steps, in closed form:
    W_T = M^T W0 + (I + M + ... + M^(T-1)) c with M = I - 2 lr X^T X / (n d), c = 2 lr X^T Y / (n d)."""
    n, d = X.shape
    M = torch.eye(d, dtype=X.dtype) - 2 * lr / (n * d) * X.T @ X
    c = 2 * lr / (n * d) * X.T @ Y
    geo = sum(torch.linalg.matrix_power(M, k) for k in range(steps))
    return torch.linalg.matrix_power(M, steps) @ W0 + geo @ c


def start(d: int, seed: int) -> torch.Tensor:
    """The start sgd_linear_regression draws first from its seed."""
    return torch.randn(d, d, generator=lmlab.generator(seed), dtype=torch.float64) / math.sqrt(d)


def test_one_training_point_is_full_batch_gradient_descent() -> None:
    """With one training point every minibatch (drawn with replacement) repeats it: SGD is gradient descent."""
    data = ms.make_dataset(1, 5, 0.7, seed=3)
    for B in (1, 8):
        W = ms.sgd_linear_regression(data.X, data.Y, B, 0.4, 30, seed=2)
        ref = gd_closed_form(data.X, data.Y, start(5, 2), 0.4, 30)
        torch.testing.assert_close(W, ref, rtol=1e-10, atol=1e-12)


def test_mean_over_minibatch_draws_is_gradient_descent() -> None:
    """E[S_t W_t] = Sigma E[W_t] (the batch is independent of the past), so the mean of SGD over the draws of
    the batches is gradient descent from the same start. The start depends on the seed, but linearly: compare the
    mean of SGD with gradient descent from the mean start."""
    data = ms.make_dataset(40, 3, 1.0, seed=0)
    seeds = range(600)
    lr, T = 0.5, 6
    Ws = torch.stack([ms.sgd_linear_regression(data.X, data.Y, 2, lr, T, s) for s in seeds])
    W0 = torch.stack([start(3, s) for s in seeds]).mean(0)
    ref = gd_closed_form(data.X, data.Y, W0, lr, T)
    spread = Ws.std(0) / math.sqrt(len(seeds))
    assert torch.all((Ws.mean(0) - ref).abs() < 5 * spread + 1e-12)


def test_minibatches_are_drawn_with_replacement() -> None:
    """Inputs e_1..e_4 and zero labels: one step's gradient is 2 diag(counts) W0 / (B d), so the counts of each
    training point in the batch can be read back. With B = n = 4 a batch without repeats has probability
    4!/4^4; with replacement most batches repeat a point."""
    d = B = 4
    X, Y = torch.eye(d, dtype=torch.float64), torch.zeros(d, d, dtype=torch.float64)
    repeats, n_seeds = 0, 400
    for s in range(n_seeds):
        W0 = start(d, s)
        W1 = ms.sgd_linear_regression(X, Y, B, 1.0, 1, seed=s)
        counts = ((W0 - W1) / W0 * B * d / 2).mean(1)
        np.testing.assert_allclose(counts, counts.round(), atol=1e-9)
        assert counts.sum().item() == pytest.approx(B)
        repeats += int(counts.round().max() > 1)
    p = 1 - math.factorial(4) / 4**4
    assert abs(repeats / n_seeds - p) < 4 * math.sqrt(p * (1 - p) / n_seeds)


def test_linear_sweep_equals_the_plain_run_on_every_cell() -> None:
    data = ms.make_dataset(200, 4, 1.5, seed=1, n_test=300)
    lrs, seeds, Bs = [0.05, 0.6, 40.0], [0, 7], [3, 16]
    grid = ms.sweep_linear(data, Bs, lrs, seeds, steps=25)
    assert grid.mse.shape == grid.diverged.shape == (2, 3, 2) and grid.initial.shape == (2,)
    for k, B in enumerate(Bs):
        for i, lr in enumerate(lrs):
            for j, s in enumerate(seeds):
                W = ms.sgd_linear_regression(data.X, data.Y, B, lr, 25, s)
                mse = float(ms.heldout_mse(W, data.X_test, data.Y_test))
                if grid.diverged[k, i, j]:
                    assert lr == 40.0 and not (mse < 10 * grid.initial[j])
                else:
                    assert grid.mse[k, i, j] == pytest.approx(mse, rel=1e-9)
    assert grid.diverged[:, -1].all() and not grid.diverged[:, :2].any()
    recs = grid.records()
    assert len(recs) == 12 and {"optimizer", "batch_size", "lr", "seed", "loss", "diverged"} <= set(recs[0])


def test_test_mse_equals_the_direct_mean() -> None:
    data = ms.make_dataset(50, 3, 1.0, seed=4, n_test=70)
    W = torch.randn(2, 5, 3, 3, dtype=torch.float64, generator=lmlab.generator(1))
    direct = ((data.X_test @ W - data.Y_test) ** 2).mean((-2, -1))
    torch.testing.assert_close(ms.heldout_mse(W, data.X_test, data.Y_test), direct, rtol=1e-10, atol=0)


def reference_mlp(data: ms.Dataset, B: int, lr: float, seed: int, steps: int, optimizer: str, hidden: int) -> float:
    """One MLP run written with autograd and torch.optim (AdamW + LambdaLR for Adam), the sweep's draws."""
    n, d = data.X.shape
    g = lmlab.generator(seed)
    W1 = torch.randn(d, hidden, generator=g) / math.sqrt(d)
    W2 = torch.randn(hidden, d, generator=g) / math.sqrt(hidden)
    idx = torch.randint(n, (steps, B), generator=g)
    params = [p.double().requires_grad_() for p in (W1, torch.zeros(hidden), W2, torch.zeros(d))]
    if optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=lr)
        sched = None
    else:
        opt = torch.optim.AdamW(params, lr=lr, betas=(0.5, 0.5), weight_decay=0.01, eps=1e-8)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: cosine_schedule(t, steps, 3))

    def f(x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x @ params[0] + params[1]) @ params[2] + params[3]

    for t in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(f(data.X[idx[t]]), data.Y[idx[t]])
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
    with torch.no_grad():
        return float(torch.nn.functional.mse_loss(f(data.X_test), data.Y_test))


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_mlp_sweep_equals_autograd_and_torch_optim(optimizer: str) -> None:
    """Hand-written gradients, the vectorised AdamW and its schedule equal autograd + torch.optim, run by run."""
    data = ms.make_dataset(300, 3, 1.0, seed=2, n_test=200)
    lrs = [0.02, 0.1] if optimizer == "sgd" else [0.003, 0.05]
    grid = ms.sweep_mlp(
        data, [2, 9], lrs, [0, 3], steps=15, hidden=6, optimizer=optimizer, warmup=3, dtype=torch.float64
    )
    assert grid.mse.shape == (2, 2, 2) and not grid.diverged.any()
    for k, B in enumerate([2, 9]):
        for i, lr in enumerate(lrs):
            for j, s in enumerate([0, 3]):
                ref = reference_mlp(data, B, lr, s, 15, optimizer, 6)
                assert grid.mse[k, i, j] == pytest.approx(ref, rel=1e-9)
                assert abs(ref - grid.initial[j]) > 1e-3  # the run moved: not a vacuous match


def test_mlp_sweep_marks_overflowing_runs_diverged() -> None:
    data = ms.make_dataset(100, 2, 0.5, seed=0, n_test=50)
    grid = ms.sweep_mlp(data, [4], [0.01, 1e4], [0, 1], steps=30, hidden=5)
    assert not grid.diverged[0, 0].any() and grid.diverged[0, 1].all()
    assert np.isnan(grid.mse[0, 1]).all() and np.isfinite(grid.mse[0, 0]).all()


def test_lr_grid_is_geometric_from_the_start() -> None:
    g = ms.lr_grid(1e-3, 1.0)
    assert g[0] == 1e-3 and np.allclose(g[1:] / g[:-1], 1.25) and g[-1] <= 1.0 < g[-1] * 1.25
    assert len(ms.lr_grid(1.0, 1.0)) == 1


def test_recursion_reduces_to_the_chapter_contraction_and_predicts_the_runs() -> None:
    """Without noise and with one step the recursion is the contraction rho(lr / d) of lmlab.sweep; isotropic
    eigenvalues change nothing; and it predicts the mean test MSE of many runs."""
    d, B = 6, 5
    lrs = np.array([0.1, 1.0, 3.0])
    one = ms.linear_recursion(lrs, B, 1, d, 0.0)
    np.testing.assert_allclose(one, laws.sgd_linear_contraction(lrs / d, B, d) * (d + 1), rtol=1e-12)
    np.testing.assert_allclose(
        ms.linear_recursion(lrs, B, 40, d, 2.0, 500), ms.linear_recursion(lrs, B, 40, d, 2.0, 500, np.ones(d))
    )
    assert np.isinf(ms.linear_recursion(np.array([1e3]), B, 5, d, 1.0))[0]
    data = ms.make_dataset(4000, d, 2.0, seed=5, n_test=100_000)
    lam = np.linalg.eigvalsh((data.X.T @ data.X / 4000).numpy())
    lrs = np.array([0.1, 0.5, 1.5])
    grid = ms.sweep_linear(data, [B], list(lrs), list(range(200)), steps=40)
    W_hat = torch.linalg.lstsq(data.X, data.Y).solution
    pred = ms.linear_recursion(lrs, B, 40, d, 2.0, 4000, lam, a0=d + float((W_hat**2).sum()))
    np.testing.assert_allclose(grid.mse[0].mean(1), pred, rtol=0.03)


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: ms.make_dataset(0, 3, 1.0, 0), ValueError, "n must"),
        (lambda: ms.make_dataset(5, 3, -1.0, 0), ValueError, "sigma"),
        (lambda: ms.make_dataset(5, 3.0, 1.0, 0), TypeError, "d must"),
        (lambda: ms.lr_grid(1.0, 0.5), ValueError, "stop"),
        (lambda: ms.lr_grid(1e-3, 1.0, 1.0), ValueError, "factor"),
        (lambda: ms.sgd_linear_regression(np.ones((3, 2)), torch.ones(3, 2), 1, 0.1, 1, 0), TypeError, "X must"),
        (lambda: ms.sgd_linear_regression(torch.ones(3, 2), torch.ones(3, 3), 1, 0.1, 1, 0), ValueError, "X and Y"),
        (lambda: ms.sgd_linear_regression(torch.ones(3, 2), torch.ones(3, 2), 0, 0.1, 1, 0), ValueError, "batch_size"),
        (lambda: ms.sgd_linear_regression(torch.ones(3, 2), torch.ones(3, 2), 1, -0.1, 1, 0), ValueError, "lr"),
        (lambda: ms.sgd_linear_regression(torch.ones(3, 2), torch.ones(3, 2), 1, 0.1, 1, -1), ValueError, "seed"),
        (lambda: ms.sweep_linear(ms.make_dataset(9, 2, 1.0, 0), [2, 2], [0.1], [0]), ValueError, "batch_sizes"),
        (lambda: ms.sweep_linear(ms.make_dataset(9, 2, 1.0, 0), [2], [], [0]), ValueError, "lrs"),
        (lambda: ms.sweep_mlp(ms.make_dataset(9, 2, 1.0, 0), [2], [0.1], [0], optimizer="sgdm"), ValueError, "optim"),
        (lambda: ms.sweep_mlp(ms.make_dataset(9, 2, 1.0, 0), [2], [0.1], [0], hidden=0), ValueError, "hidden"),
        (lambda: ms.linear_recursion(np.array([0.1]), 2, 5, 3, 1.0, eigenvalues=[1.0]), ValueError, "eigenvalues"),
        (lambda: ms.linear_recursion(np.array([-0.1]), 2, 5, 3, 1.0), ValueError, "lrs"),
    ],
)
def test_bad_input_raises_a_clear_error(call, exc: type[Exception], match: str) -> None:  # noqa: ANN001
    with pytest.raises(exc, match=match):
        call()
