"""The homework's own batch-size experiment: a finite training set, minibatches drawn with replacement.

Problem 4 of the homework trains on ``n`` fixed examples ``(x_i, y_i)``, ``x ~ N(0, I_d)`` and
``y = W*^T x + sigma * eps`` with a ``d x d`` target map ``W*`` (entries ``N(0, 1)``), from a random start, for a
fixed number of steps, and scores each run by its test MSE at the end. The loss is the mean over the batch *and* the
``d`` outputs, ``L(W) = ||X_b W - Y_b||_F^2 / (B d)`` (PyTorch's ``MSELoss``). Rows are examples here (PyTorch's
convention): ``X`` is ``(n, d)``.

* :func:`sgd_linear_regression` is one plain SGD run, the function a student writes.
* :func:`sweep_linear` and :func:`sweep_mlp` run a whole grid of learning rates x seeds for each batch size at once:
  the parameters of the ``L x S`` runs are stacked along leading axes ``(L, S, ...)``, every learning rate of a seed
  reads the same minibatches (common random numbers), and run ``(lr, seed)`` of batch size ``B`` draws exactly what
  ``sgd_linear_regression(X, Y, B, lr, steps, seed)`` draws: the start, then all indices at once.
* :func:`linear_recursion` is the expected test MSE of SGD on this problem, from the chapter's noisy recursion.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lmlab.core.checks import check_float, check_int, check_tensor
from lmlab.core.optim import adam_settings, adam_state, adam_step, cosine_schedule
from lmlab.core.runtime import generator
from lmlab.scaling.regression import derive_seed

__all__ = [
    "Dataset",
    "Grid",
    "make_dataset",
    "lr_grid",
    "sgd_draws",
    "sgd_linear_regression",
    "sgd_steps",
    "heldout_mse",
    "sweep_linear",
    "sweep_mlp",
    "linear_recursion",
]

_DATA = 0xDA7A  # the dataset's stream is derive_seed(seed, _DATA): never a run's stream generator(seed)


@dataclass(frozen=True)
class Dataset:
    """Training set ``X (n, d)``, ``Y (n, d)``; test set ``X_test (m, d)``, ``Y_test (m, d)``; target ``W_star
    (d, d)``; label noise ``sigma``."""

    X: Tensor
    Y: Tensor
    X_test: Tensor
    Y_test: Tensor
    W_star: Tensor
    sigma: float


def make_dataset(n: int, d: int, sigma: float, seed: int, *, n_test: int = 10_000) -> Dataset:
    """``n`` training and ``n_test`` test points of ``y = W*^T x + sigma eps`` (float64, on the CPU).

    Raises:
        TypeError/ValueError: ``n, d, n_test`` not ints >= 1, ``sigma`` not a number >= 0, ``seed`` not an int >= 0.
    """
    n, d, n_test = check_int("n", n, 1), check_int("d", d, 1), check_int("n_test", n_test, 1)
    sigma = check_float("sigma", sigma, 0.0)
    g = generator(derive_seed(check_int("seed", seed, 0), _DATA))
    W = torch.randn(d, d, generator=g, dtype=torch.float64)

    def draw(m: int) -> tuple[Tensor, Tensor]:
        X = torch.randn(m, d, generator=g, dtype=torch.float64)
        return X, X @ W + sigma * torch.randn(m, d, generator=g, dtype=torch.float64)

    (X, Y), (Xt, Yt) = draw(n), draw(n_test)
    return Dataset(X, Y, Xt, Yt, W, sigma)


def lr_grid(start: float, stop: float, factor: float = 1.25) -> np.ndarray:
    """The geometric grid ``start * factor**k``, ``k = 0, 1, ...``, up to ``stop`` (included): ``(L,)``."""
    start = check_float("start", start, 0.0, strict=True)
    stop = check_float("stop", stop, start)
    factor = check_float("factor", factor, 1.0, strict=True)
    k = int(math.floor(math.log(stop / start) / math.log(factor) + 1e-9))
    return start * factor ** np.arange(k + 1)


def _check_xy(X: Any, Y: Any) -> tuple[Tensor, Tensor]:
    X = check_tensor("X", X, 2, floating=True)
    Y = check_tensor("Y", Y, 2, floating=True)
    if Y.shape != X.shape:
        raise ValueError(f"X and Y must both be (n, d), got {tuple(X.shape)} and {tuple(Y.shape)}")
    return X, Y


def sgd_draws(
    n: int, d: int, batch_size: int, steps: int, seed: int, dtype: torch.dtype = torch.float64
) -> tuple[Tensor, Tensor]:
    """The random part of run ``seed``: the start ``W0`` ``(d, d)``, entries ``N(0, 1/d)`` (``dtype``), and the
    minibatches ``batches`` ``(steps, batch_size)``, row indices drawn uniformly *with replacement* from ``n``."""
    n, d = check_int("n", n, 1), check_int("d", d, 1)
    B, steps = check_int("batch_size", batch_size, 1), check_int("steps", steps, 0)
    g = generator(check_int("seed", seed, 0))
    W0 = torch.randn(d, d, generator=g, dtype=dtype) / math.sqrt(d)
    return W0, torch.randint(n, (steps, B), generator=g)


def sgd_steps(X: Tensor, Y: Tensor, W0: Tensor, batches: Tensor, lr: float) -> Tensor:
    """Plain SGD on least squares from ``W0``: at step ``t`` the minibatch is the rows ``batches[t]`` of ``X``
    and ``Y``, its loss ``||X_b W - Y_b||_F^2 / (B d)`` (the mean over examples and outputs, as ``MSELoss``), and
    ``W <- W - lr * 2 X_b^T (X_b W - Y_b) / (B d)``.

    Args:
        X, Y: the training set, ``(n, d)`` each (one example per row; the prediction is ``X W``).
        W0: the start, ``(d, d)``.
        batches: ``(steps, B)`` integer row indices in ``[0, n)``.
        lr: the step size, > 0.

    Returns:
        ``W`` ``(d, d)`` after ``steps`` steps (``W0`` itself is not changed).
    """
    X, Y = _check_xy(X, Y)
    n, d = X.shape
    W = check_tensor("W0", W0, 2, floating=True)
    if tuple(W.shape) != (d, d):
        raise ValueError(f"W0 must be (d, d) = ({d}, {d}), got {tuple(W.shape)}")
    idx = check_tensor("batches", batches, 2)
    if idx.is_floating_point() or idx.dtype == torch.bool:
        raise TypeError(f"batches must hold integer row indices, got {idx.dtype}")
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= n):
        raise ValueError(f"batches must hold row indices in [0, {n}), got {int(idx.min())}..{int(idx.max())}")
    lr = check_float("lr", lr, 0.0, strict=True)
    B = idx.shape[1]
    W = W.to(X.dtype)
    for t in range(idx.shape[0]):
        Xb, Yb = X[idx[t]], Y[idx[t]]
        W = W - lr * (2 / (B * d)) * Xb.T @ (Xb @ W - Yb)
    return W


def sgd_linear_regression(X: Tensor, Y: Tensor, batch_size: int, lr: float, steps: int, seed: int) -> Tensor:
    """One SGD run of least squares ``min_W ||X W - Y||_F^2 / (n d)``; returns the final ``W`` ``(d, d)``.

    :func:`sgd_steps` from the draws of :func:`sgd_draws`: a start with entries ``N(0, 1/d)``, and at each step
    ``batch_size`` rows drawn uniformly *with replacement*.

    Args:
        X, Y: the training set, ``(n, d)`` each. batch_size: >= 1. lr: > 0. steps: >= 0. seed: >= 0.
    """
    X, Y = _check_xy(X, Y)
    n, d = X.shape
    W0, batches = sgd_draws(n, d, batch_size, steps, seed, X.dtype)
    return sgd_steps(X, Y, W0, batches, lr)


def heldout_mse(W: Tensor, X: Tensor, Y: Tensor) -> Tensor:
    """The mean of ``(X W - Y)^2`` over examples and outputs, for ``W (..., d, d)``: shape ``(...)``."""
    X, Y = _check_xy(X, Y)
    W = check_tensor("W", W, floating=True)
    n, d = X.shape
    if W.shape[-2:] != (d, d):
        raise ValueError(f"W must be (..., {d}, {d}), got {tuple(W.shape)}")
    # sufficient statistics: mean ||W^T x - y||^2 = tr(W^T Sxx W) - 2 tr(W^T Sxy) + tr(Syy), all over n
    Sxx, Sxy, syy = X.T @ X / n, X.T @ Y / n, (Y**2).sum() / n
    quad = ((Sxx @ W) * W).sum((-2, -1)) - 2 * (Sxy * W).sum((-2, -1))
    return (quad + syy) / d


@dataclass
class Grid:
    """What a sweep returns. ``mse (K, L, S)``: final test MSE (``nan`` where the run diverged); ``diverged (K, L,
    S)``; ``initial (S,)``: the test MSE at the start; axes ``batch_sizes (K,)``, ``lrs (L,)``, ``seeds (S,)``."""

    mse: np.ndarray
    diverged: np.ndarray
    initial: np.ndarray
    batch_sizes: list[int]
    lrs: np.ndarray
    seeds: list[int]
    optimizer: str

    def records(self) -> list[dict[str, Any]]:
        """One dict per run, the format of :mod:`lmlab.sweep` (``optimizer, batch_size, lr, seed, loss,
        diverged``), for ``sweep.optima_over_seeds(records, "loss")``."""
        return [
            {
                "optimizer": self.optimizer,
                "batch_size": B,
                "lr": float(lr),
                "seed": s,
                "loss": float(self.mse[k, i, j]),
                "diverged": bool(self.diverged[k, i, j]),
            }
            for k, B in enumerate(self.batch_sizes)
            for i, lr in enumerate(self.lrs)
            for j, s in enumerate(self.seeds)
        ]


def _grid_args(batch_sizes: Sequence[int], lrs: Sequence[float], seeds: Sequence[int], steps: int) -> tuple:
    Bs = [check_int("batch_sizes", b, 1) for b in batch_sizes]
    lr = [check_float("lrs", x, 0.0, strict=True) for x in lrs]
    ss = [check_int("seeds", s, 0) for s in seeds]
    for name, v in (("batch_sizes", Bs), ("lrs", lr), ("seeds", ss)):
        if not v or len(set(v)) != len(v):
            raise ValueError(f"{name} must be non-empty without repeats, got {list(v)}")
    return Bs, np.array(lr), ss, check_int("steps", steps, 1)


def _finish(mse: Tensor, initial: Tensor, diverge_factor: float) -> tuple[np.ndarray, np.ndarray]:
    m = mse.double().cpu().numpy()
    bad = ~np.isfinite(m) | (m > diverge_factor * initial.double().cpu().numpy())
    return np.where(bad, np.nan, m), bad


def sweep_linear(
    data: Dataset,
    batch_sizes: Sequence[int],
    lrs: Sequence[float],
    seeds: Sequence[int],
    steps: int = 100,
    *,
    diverge_factor: float = 10.0,
) -> Grid:
    """:func:`sgd_linear_regression` for every ``(batch size, lr, seed)``, vectorised over ``lrs x seeds``.

    A run diverged when its final test MSE is not finite or above ``diverge_factor`` times its initial one.
    """
    Bs, lr_arr, ss, steps = _grid_args(batch_sizes, lrs, seeds, steps)
    check_float("diverge_factor", diverge_factor, 1.0)
    X, Y = _check_xy(data.X, data.Y)
    n, d = X.shape
    lr = torch.tensor(lr_arr, dtype=X.dtype)[:, None, None, None]
    mse, div = [], []
    for B in Bs:
        gens = [generator(s) for s in ss]
        W0 = torch.stack([torch.randn(d, d, generator=g, dtype=X.dtype) / math.sqrt(d) for g in gens])  # (S, d, d)
        idx = torch.stack([torch.randint(n, (steps, B), generator=g) for g in gens])  # (S, steps, B)
        W = W0.expand(len(lr_arr), -1, -1, -1).clone()  # (L, S, d, d)
        for t in range(steps):
            Xb, Yb = X[idx[:, t]], Y[idx[:, t]]  # (S, B, d): shared by every learning rate
            Sxx, Sxy = Xb.transpose(1, 2) @ Xb, Xb.transpose(1, 2) @ Yb
            W -= lr * (2 / (B * d)) * (Sxx @ W - Sxy)
        initial = heldout_mse(W0, data.X_test, data.Y_test)
        m, bad = _finish(heldout_mse(W, data.X_test, data.Y_test), initial, diverge_factor)
        mse.append(m)
        div.append(bad)
    return Grid(np.stack(mse), np.stack(div), initial.numpy(), Bs, lr_arr, ss, "sgd")


def sweep_mlp(
    data: Dataset,
    batch_sizes: Sequence[int],
    lrs: Sequence[float],
    seeds: Sequence[int],
    steps: int = 100,
    *,
    hidden: int = 64,
    optimizer: str = "sgd",
    betas: tuple[float, float] = (0.5, 0.5),
    weight_decay: float = 0.01,
    warmup: int = 10,
    eps: float = 1e-8,
    diverge_factor: float = 10.0,
    dtype: torch.dtype = torch.float32,
) -> Grid:
    """A one-hidden-layer ReLU MLP ``f(x) = relu(x W1 + b1) W2 + b2`` (``W1 (d, hidden)``, ``W2 (hidden, d)``)
    trained on ``data`` for every ``(batch size, lr, seed)``, vectorised over ``lrs x seeds``.

    Start: ``W1, W2`` entries ``N(0, 1/fan_in)``, biases 0, then the minibatch indices, from ``generator(seed)``.
    ``optimizer="sgd"``: plain SGD at a constant learning rate. ``"adam"``: AdamW (``betas``, decoupled
    ``weight_decay``; :func:`lmlab.core.optim.adam_step`), the learning rate times
    :func:`lmlab.core.optim.cosine_schedule` (``warmup`` steps up, cosine decay). Gradients are
    written by hand (each run's own: the runs do not interact). Returns a :class:`Grid` of final test MSEs.
    """
    Bs, lr_arr, ss, steps = _grid_args(batch_sizes, lrs, seeds, steps)
    if optimizer not in ("sgd", "adam"):
        raise ValueError(f"optimizer must be 'sgd' or 'adam', got {optimizer!r}")
    hidden = check_int("hidden", hidden, 1)
    warmup = check_int("warmup", warmup, 0, steps)
    betas, eps, weight_decay = adam_settings(betas, eps, weight_decay)
    X, Y = (t.to(dtype) for t in _check_xy(data.X, data.Y))
    Xt, Yt = (t.to(dtype) for t in _check_xy(data.X_test, data.Y_test))
    n, d = X.shape
    L, S = len(lr_arr), len(ss)
    lr = torch.tensor(lr_arr, dtype=dtype)
    mse, div = [], []
    for B in Bs:
        gens = [generator(s) for s in ss]
        start = [
            (
                torch.randn(d, hidden, generator=g) / math.sqrt(d),
                torch.randn(hidden, d, generator=g) / math.sqrt(hidden),
            )
            for g in gens
        ]
        idx = torch.stack([torch.randint(n, (steps, B), generator=g) for g in gens])  # (S, steps, B)
        # W1 carries the first bias as its last row, so one product gives x W1 + b1 (inputs get a column of ones)
        W1 = torch.stack([torch.cat([w, torch.zeros(1, hidden)]) for w, _ in start]).to(dtype)
        W1 = W1.expand(L, -1, -1, -1).clone()  # (L, S, d + 1, H)
        W2 = torch.stack([w for _, w in start]).to(dtype).expand(L, -1, -1, -1).clone()  # (L, S, H, d)
        c2 = torch.zeros(L, S, 1, d, dtype=dtype)
        params = [W1, W2, c2]
        state = adam_state(params)  # AdamW's running means (used by optimizer="adam" only)
        initial = _mlp_mse(params, Xt, Yt)[0]  # (S,): every learning rate starts alike
        alive = torch.arange(L)  # rows of the grid still computed: a row whose every seed overflowed is dropped
        ones = torch.ones(S, B, 1, dtype=dtype)
        for t in range(steps):
            Xb, Yb = torch.cat([X[idx[:, t]], ones], -1), Y[idx[:, t]]  # (S, B, d + 1), (S, B, d)
            Z = Xb @ W1  # (rows, S, B, H)
            A = torch.relu(Z)
            R = (2 / (B * d)) * (A @ W2 + c2 - Yb)  # dL/dprediction, (rows, S, B, d)
            if t % 10 == 9:
                keep = torch.isfinite(R).all(-1).all(-1).any(-1)  # (rows,)
                if not keep.all():
                    alive, Z, A, R = alive[keep], Z[keep], A[keep], R[keep]
                    params = [p[keep] for p in params]
                    state = [(m[keep], v[keep]) for m, v in state]
                    W1, W2, c2 = params
            dZ = torch.ops.aten.threshold_backward(R @ W2.transpose(-1, -2), Z, 0)  # relu's backward, one pass
            grads = [Xb.transpose(-1, -2) @ dZ, A.transpose(-1, -2) @ R, R.sum(2, keepdim=True)]
            rate = lr[alive].view(-1, 1, 1, 1)
            if optimizer == "sgd":
                for p, gr in zip(params, grads):
                    p -= rate * gr
                continue
            eta = rate * cosine_schedule(t, steps, warmup)  # (rows, 1, 1, 1): one rate per learning rate
            adam_step(params, grads, state, eta, t + 1, betas=betas, eps=eps, weight_decay=weight_decay)
        final = torch.full((L, S), math.inf, dtype=torch.float64)
        final[alive] = _mlp_mse(params, Xt, Yt)
        m, bad = _finish(final, initial, diverge_factor)
        mse.append(m)
        div.append(bad)
    return Grid(np.stack(mse), np.stack(div), initial.double().numpy(), Bs, lr_arr, ss, optimizer)


def _mlp_mse(params: list[Tensor], X: Tensor, Y: Tensor) -> Tensor:
    """Test MSE ``(rows, S)`` of stacked MLPs (``W1`` with its bias row, ``W2``, ``c2``) on ``X (m, d)``."""
    W1, W2, c2 = params
    total = torch.zeros(W1.shape[:2], dtype=torch.float64)
    for i in range(0, X.shape[0], 2048):
        x, y = X[i : i + 2048], Y[i : i + 2048]
        pred = torch.relu(x @ W1[..., :-1, :] + W1[..., -1:, :]) @ W2 + c2
        total += ((pred - y) ** 2).sum((-2, -1)).double()
    return total / Y.numel()


def linear_recursion(
    lrs: Any,
    batch_size: int,
    steps: int,
    d: int,
    sigma: float,
    n: int | None = None,
    eigenvalues: Any = None,
    a0: float | None = None,
) -> np.ndarray:
    """Expected final test MSE of :func:`sgd_linear_regression` from the chapter's noisy recursion: ``(L,)``.

    A step of ``lr`` on this loss is a step of ``eta = lr / d`` on each column of ``W`` for the loss
    ``(x^T w - y)^2``, so ``a = E ||W - W_hat||_F^2`` follows ``a' = rho(eta) a + 4 lr^2 s^2 / B``, ``rho(eta) =
    1 - 4 eta + 4 eta^2 (B + d + 1) / B``, from ``a_0 = d (d + 1)`` (start ``N(0, 1/d)``, target ``N(0, 1)``).
    A finite training set of ``n`` points, sampled with replacement, is a distribution of its own: the runs
    approach its least-squares solution ``W_hat``, whose residual variance is ``s^2 = sigma^2 (1 - d / n)`` and
    whose own excess test MSE is ``sigma^2 d / (n - d - 1)`` (``n=None``: an infinite set, ``s = sigma``).
    ``eigenvalues`` (``(d,)``, of the training covariance ``X^T X / n``) replace the identity's: the recursion
    then runs per eigendirection ``k`` (Gaussian fourth moments), ``p_k' = p_k (1 - 4 eta l_k + 4 eta^2 l_k^2
    (1 + 1/B)) + 4 eta^2 l_k (sum_j l_j p_j + d s^2) / B``, which is the scalar one when every ``l_k = 1``.
    ``a0`` replaces the expectation ``d (d + 1)`` by one dataset's ``d + ||W_hat||_F^2`` (the start's ``d`` plus
    the solution's norm). Returns ``a / d + sigma^2 + excess``, ``inf`` where the run would blow up.
    """
    B, steps, d = check_int("batch_size", batch_size, 1), check_int("steps", steps, 0), check_int("d", d, 1)
    sigma = check_float("sigma", sigma, 0.0)
    lr = np.asarray(lrs, dtype=float)
    if lr.ndim != 1 or np.any(~np.isfinite(lr)) or np.any(lr <= 0):
        raise ValueError("lrs must be a 1-D array of finite numbers > 0")
    lam = np.ones(d) if eigenvalues is None else np.asarray(eigenvalues, dtype=float)
    if lam.shape != (d,) or np.any(~np.isfinite(lam)) or np.any(lam <= 0):
        raise ValueError(f"eigenvalues must be {d} finite numbers > 0, got shape {lam.shape}")
    s2, excess = sigma**2, 0.0
    if n is not None:
        n = check_int("n", n, d + 2)
        s2, excess = sigma**2 * (1 - d / n), sigma**2 * d / (n - d - 1)
    eta = (lr / d)[:, None]  # (L, 1)
    start = d * (d + 1.0) if a0 is None else check_float("a0", a0, 0.0)
    p = np.full((lr.size, d), start / d)  # (L, d): E sum over the columns of the error along direction k
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(steps):
            drive = (p * lam).sum(1, keepdims=True) + d * s2
            p = p * (1 - 4 * eta * lam + 4 * eta**2 * lam**2 * (1 + 1 / B)) + 4 * eta**2 * lam * drive / B
        a = p.sum(1)
    return np.where(np.isfinite(a) & (a < 1e12), a / d + sigma**2 + excess, np.inf)
