"""Seeded regression data and the two small models of the batch-size chapter, with parameters stacked over runs.

The data: inputs :math:`x \\sim \\mathcal N(0, I_d)`, labels :math:`y = f^*(x) + \\sigma \\varepsilon` with
:math:`\\varepsilon \\sim \\mathcal N(0, 1)`. The teacher :math:`f^*` is linear (:math:`f^*(x) = x^\\top w^*`,
:math:`\\lVert w^* \\rVert = 1`) or a small one-hidden-layer tanh network scaled to unit output variance. The
population loss of a model :math:`f` is :math:`\\mathbb E (f(x) - y)^2 = \\mathbb E (f(x) - f^*(x))^2 + \\sigma^2`;
for a linear model it is exactly :math:`\\lVert w - w^* \\rVert^2 + \\sigma^2`.

The models take parameters with any leading "run" axes, so one forward pass evaluates many runs at once:
a weight of shape ``(*runs, d, h)`` multiplies inputs of shape ``(*runs, B, d)`` (or any shape broadcasting to it)
with one batched matmul. Rows are examples (PyTorch's convention).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from lmlab.core.runtime import generator as _generator

__all__ = ["RegressionTask", "LinearModel", "MLPModel", "derive_seed"]


def derive_seed(*keys: int) -> int:
    """A 63-bit seed derived from integers (NumPy's ``SeedSequence``): independent streams for (seed, purpose)."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(2, np.uint64)[0] >> np.uint64(1))


@dataclass(frozen=True)
class RegressionTask:
    """A seeded regression problem: ``x ~ N(0, I_dim)``, ``y = f*(x) + noise_std * eps``.

    Args:
        dim: input dimension ``d`` (>= 1).
        noise_std: label noise ``sigma`` (>= 0).
        teacher: ``"linear"`` (``f*(x) = x^T w*``, ``||w*|| = 1``) or ``"mlp"`` (``f*(x) = a^T tanh(W^T x)``,
            ``W`` of shape ``(d, teacher_width)`` with entries ``N(0, 1/d)``, ``a`` scaled so ``Var f*(x) = 1``).
        teacher_width: hidden width of the ``"mlp"`` teacher.
        seed: the teacher's seed (the data stream's seeds are the runs').
    """

    dim: int = 16
    noise_std: float = 0.1
    teacher: str = "linear"
    teacher_width: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.dim, bool) or not isinstance(self.dim, int) or self.dim < 1:
            raise ValueError(f"dim must be an int >= 1, got {self.dim!r}")
        if not np.isfinite(self.noise_std) or self.noise_std < 0:
            raise ValueError(f"noise_std must be a finite float >= 0, got {self.noise_std!r}")
        if self.teacher not in ("linear", "mlp"):
            raise ValueError(f"teacher must be 'linear' or 'mlp', got {self.teacher!r}")
        if isinstance(self.teacher_width, bool) or not isinstance(self.teacher_width, int) or self.teacher_width < 1:
            raise ValueError(f"teacher_width must be an int >= 1, got {self.teacher_width!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {self.seed!r}")

    def teacher_params(self, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> list[Tensor]:
        """The teacher's parameters, drawn on the CPU in float64 (the same on every device), then moved.

        Returns:
            ``[w*]`` with ``w*`` of shape ``(d,)`` for the linear teacher; ``[W, a]`` of shapes ``(d, m)`` and
            ``(m,)`` for the MLP teacher.
        """
        return [p.to(device=device, dtype=dtype, copy=True) for p in _teacher_cpu64(self)]

    def f_star(self, X: Tensor, params: list[Tensor]) -> Tensor:
        """The noiseless label ``f*(x)`` for inputs ``X`` of shape ``(..., d)``; returns shape ``(...)``."""
        if X.shape[-1] != self.dim:
            raise ValueError(f"X must have last dimension dim = {self.dim}, got shape {tuple(X.shape)}")
        if self.teacher == "linear":
            return X @ params[0]
        return torch.tanh(X @ params[0]) @ params[1]

    def test_set(
        self, n: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
    ) -> tuple[Tensor, Tensor]:
        """``n`` held-out inputs ``(n, d)`` and their noiseless labels ``f*(x)`` ``(n,)`` (seeded by the task)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be an int >= 1, got {n!r}")
        g = _generator(derive_seed(self.seed, 2))
        X = torch.randn(n, self.dim, generator=g, dtype=torch.float64)
        y = self.f_star(X, self.teacher_params(dtype=torch.float64))
        return X.to(device=device, dtype=dtype), y.to(device=device, dtype=dtype)


@functools.lru_cache(maxsize=32)
def _teacher_cpu64(task: RegressionTask) -> tuple[Tensor, ...]:
    """The teacher of ``task`` in float64 on the CPU, drawn once per task (the MLP teacher's scale needs a probe of
    16384 inputs, too costly to repeat for every run)."""
    g = _generator(derive_seed(task.seed, 1))
    d, m = task.dim, task.teacher_width
    if task.teacher == "linear":
        w = torch.randn(d, generator=g, dtype=torch.float64)
        return (w / w.norm(),)
    W = torch.randn(d, m, generator=g, dtype=torch.float64) / d**0.5
    a = torch.randn(m, generator=g, dtype=torch.float64)
    probe = torch.randn(16384, d, generator=g, dtype=torch.float64)
    return W, a / (torch.tanh(probe @ W) @ a).std()


class LinearModel:
    """``f(x) = x^T w`` without bias, started at ``w = 0``. Parameters: ``[w]`` of shape ``(*runs, d)``."""

    def __init__(self, dim: int) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be an int >= 1, got {dim!r}")
        self.dim = dim

    def init(self, generator: torch.Generator) -> list[Tensor]:
        """Initial parameters of one run, float64 on the CPU (``generator`` is unused: the start is ``w = 0``)."""
        return [torch.zeros(self.dim, dtype=torch.float64)]

    def forward(self, params: list[Tensor], X: Tensor) -> Tensor:
        """Predictions ``(*runs, B)`` for inputs ``X`` broadcasting to ``(*runs, B, d)``."""
        return (X @ params[0].unsqueeze(-1)).squeeze(-1)

    def forward_grid(self, params: list[Tensor], X: Tensor) -> Tensor:
        """Predictions ``(L, S, B)`` of a grid: ``w`` is ``(L, S, d)``, ``X`` is ``(S, B, d)`` (one batch per seed,
        shared by the ``L`` learning rates). One batched product over seeds: ``(B, d) @ (d, L)``."""
        return torch.einsum("sbd,lsd->lsb", X, params[0])

    def loss_grad_grid(self, params: list[Tensor], X: Tensor, y: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Batch MSE ``(L, S)`` of every run of a grid and its gradient, by hand (no autograd graph).

        ``w`` is ``(L, S, d)``, ``X`` is ``(S, B, d)``, ``y`` is ``(S, B)``: the residual is ``r = X w - y`` and the
        gradient of ``mean(r^2)`` is ``(2 / B) X^T r``, one batched product over seeds for all learning rates.
        """
        r = self.forward_grid(params, X) - y  # (L, S, B)
        B = X.shape[-2]
        return r.square().mean(-1), [torch.einsum("sbd,lsb->lsd", X, r).mul_(2 / B)]

    def population_grid(self, params: list[Tensor], X: Tensor) -> Tensor:
        """Predictions ``(L, S, n)`` of every run of a grid on one shared input set ``X`` ``(n, d)``."""
        return torch.einsum("nd,lsd->lsn", X, params[0])

    def module(self, params: list[Tensor]) -> nn.Module:
        """The same model as a plain ``nn.Module`` (one run), for the reference loop."""
        m = nn.Linear(self.dim, 1, bias=False).to(device=params[0].device, dtype=params[0].dtype)
        with torch.no_grad():
            m.weight.copy_(params[0].reshape(1, -1))
        return m


_BLOCK = 1 << 18  # hidden activations computed at a time by MLPModel.loss_grad_grid (about 1 MB in float32)


class MLPModel:
    """``f(x) = w_2^T relu(W_1^T x + b_1) + b_2`` with PyTorch's ``nn.Linear`` initialisation.

    Parameters: ``[W1 (*runs, d, h), b1 (*runs, h), w2 (*runs, h), b2 (*runs)]``; every entry starts uniform in
    ``±1/sqrt(fan_in)``, as ``nn.Linear`` draws them.
    """

    def __init__(self, dim: int, width: int = 64) -> None:
        for name, v in (("dim", dim), ("width", width)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        self.dim, self.width = dim, width

    def init(self, generator: torch.Generator) -> list[Tensor]:
        """Initial parameters of one run, float64 on the CPU, drawn from ``generator``."""
        d, h = self.dim, self.width

        def u(shape: tuple[int, ...], fan_in: int) -> Tensor:
            return (torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1) / fan_in**0.5

        return [u((d, h), d), u((h,), d), u((h,), h), u((), h)]

    def forward(self, params: list[Tensor], X: Tensor) -> Tensor:
        """Predictions ``(*runs, B)`` for inputs ``X`` broadcasting to ``(*runs, B, d)``."""
        W1, b1, w2, b2 = params
        H = torch.relu(X @ W1 + b1.unsqueeze(-2))
        return (H @ w2.unsqueeze(-1)).squeeze(-1) + b2.unsqueeze(-1)

    def forward_grid(self, params: list[Tensor], X: Tensor) -> Tensor:
        """Predictions ``(L, S, B)`` of a grid: parameters ``(L, S, ...)``, ``X`` is ``(S, B, d)`` (one batch per
        seed, shared by the ``L`` learning rates). The first layer is one batched product over seeds,
        ``(B, d) @ (d, L h)``, so no copy of ``X`` per learning rate is made."""
        W1, b1, w2, b2 = params
        H = torch.relu(torch.einsum("sbd,lsdh->lsbh", X, W1) + b1.unsqueeze(-2))
        return torch.einsum("lsbh,lsh->lsb", H, w2) + b2.unsqueeze(-1)

    def loss_grad_grid(self, params: list[Tensor], X: Tensor, y: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Batch MSE ``(L, S)`` of every run of a grid and its gradients, by hand (no autograd graph).

        Parameters ``(L, S, ...)``, ``X`` is ``(S, B, d)``, ``y`` is ``(S, B)``. A column of ones appended to ``X``
        carries ``b_1`` inside the first product, so the forward pass is ``Z = [X, 1] [W_1; b_1]``,
        ``H = relu(Z)``, ``r = H w_2 + b_2 - y``; with ``g = 2 r / B`` the backward pass is ``dw_2 = H^T g``,
        ``db_2 = sum g``, ``dZ = (g w_2^T) * [Z > 0]`` and ``[dW_1; db_1] = [X, 1]^T dZ``. The hidden activations of
        all runs of a seed sit side by side, ``(S, B, L, h)``, so both large products are one ``(B, d + 1) @
        (d + 1, L h)`` product per seed. A large batch is processed in blocks of rows small enough for the CPU's
        cache (about ``2^18`` hidden activations at a time), the gradients summed over the blocks.
        """
        W1, b1, w2, b2 = params
        L, S, d, h = W1.shape
        B = X.shape[-2]
        X1 = torch.cat([X, X.new_ones(S, B, 1)], dim=-1)  # (S, B, d + 1)
        Wc = torch.cat([W1, b1.unsqueeze(-2)], dim=-2).permute(1, 2, 0, 3).reshape(S, d + 1, L * h)
        w2s = w2.transpose(0, 1).unsqueeze(1)  # (S, 1, L, h)
        b2s = b2.T.unsqueeze(1)  # (S, 1, L)
        dW, dw2 = X.new_zeros(S, d + 1, L * h), X.new_zeros(S, L, h)
        sq, db2 = X.new_zeros(S, L), X.new_zeros(S, L)
        rows = max(1, _BLOCK // (S * L * h))
        for a in range(0, B, rows):
            Xa = X1[:, a : a + rows]
            H = torch.bmm(Xa, Wc).relu_().view(S, -1, L, h)
            r = (H * w2s).sum(-1).add_(b2s).sub_(y[:, a : a + rows].unsqueeze(-1))  # (S, rows, L)
            g = r * (2 / B)
            dw2.add_((H * g.unsqueeze(-1)).sum(1))
            db2.add_(g.sum(1))
            sq.add_(r.square_().sum(1))
            dZ = torch.ops.aten.threshold_backward(g.unsqueeze(-1) * w2s, H, 0)  # (g w2^T) where Z > 0
            dW.baddbmm_(Xa.transpose(1, 2), dZ.view(S, -1, L * h))
        dW = dW.view(S, d + 1, L, h).permute(2, 0, 1, 3)
        return (sq / B).T, [dW[..., :-1, :], dW[..., -1, :], dw2.transpose(0, 1), db2.T]

    def population_grid(self, params: list[Tensor], X: Tensor) -> Tensor:
        """Predictions ``(L, S, n)`` of every run of a grid on one shared input set ``X`` ``(n, d)``: the first layer
        of all runs is a single product ``(n, d + 1) @ (d + 1, L S h)``."""
        W1, b1, w2, b2 = params
        L, S, d, h = W1.shape
        X1 = torch.cat([X, X.new_ones(X.shape[0], 1)], dim=-1)
        Wc = torch.cat([W1, b1.unsqueeze(-2)], dim=-2).permute(2, 0, 1, 3).reshape(d + 1, L * S * h)
        H = (X1 @ Wc).relu_().view(-1, L, S, h)  # (n, L, S, h)
        return (H * w2).sum(-1).add_(b2).permute(1, 2, 0)

    def module(self, params: list[Tensor]) -> nn.Module:
        """The same model as a plain ``nn.Sequential`` (one run), for the reference loop."""
        W1, b1, w2, b2 = params
        m = nn.Sequential(nn.Linear(self.dim, self.width), nn.ReLU(), nn.Linear(self.width, 1))
        m = m.to(device=W1.device, dtype=W1.dtype)
        with torch.no_grad():
            m[0].weight.copy_(W1.T)
            m[0].bias.copy_(b1)
            m[2].weight.copy_(w2.reshape(1, -1))
            m[2].bias.copy_(b2.reshape(1))
        return m
