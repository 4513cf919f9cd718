"""A planted low-rank problem for LoRA, and a batched trainer that fits many adapters at once.

The problem: a frozen weight W_0 (m x l) and a target W* = W_0 + Delta whose update Delta = U diag(sigma) V^T has a
chosen ("planted") spectrum. For inputs with identity covariance (E x x^T = I) the expected squared error of a
layer W is E ||(W - W*) x||^2 = ||W - W*||_F^2, so training an adapter W_0 + s A B is low-rank approximation of
Delta, and by Eckart and Young (1936) no rank-k adapter gets below

    floor(k) = sum_{i > k} sigma_i^2.

:func:`fit_lowrank` trains C independent adapters side by side (one batched tensor, the gradients 2 s R B^T and
2 s A^T R, R = s A B - target, written by hand, and the batched Adam step of :mod:`lmlab.core.optim`), so that
sweeps over rank, learning rate, LoRA+ ratio and scale cost one run; ``tests/test_lora.py`` checks it against
``torch.optim.Adam`` on a :class:`LoRALinear`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from lmlab.adapting.lora_init import init_factors
from lmlab.core.checks import check_int, check_tensor
from lmlab.core.optim import adam_state, adam_step, cosine_schedule

__all__ = ["FitResult", "eckart_young_floor", "fit_lowrank", "planted_update", "random_orthonormal"]


def random_orthonormal(n: int, k: int, generator: torch.Generator, dtype: torch.dtype = torch.float32) -> Tensor:
    """An n x k matrix with orthonormal columns (QR of a Gaussian, signs fixed), k <= n."""
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got n={n}, k={k}")
    Q, R = torch.linalg.qr(torch.randn(n, k, generator=generator, dtype=torch.float64))
    return (Q * torch.sign(torch.diagonal(R))).to(dtype)


def planted_update(m: int, l: int, sigmas: Sequence[float] | Tensor, generator: torch.Generator) -> Tensor:
    """Delta = U diag(sigmas) V^T, (m, l) float32, with random orthonormal U (m x r), V (l x r), r = len(sigmas)."""
    s = torch.as_tensor(sigmas, dtype=torch.float64)
    if s.dim() != 1 or len(s) > min(m, l) or bool((s < 0).any()):
        raise ValueError(f"sigmas must be r <= min(m, l) = {min(m, l)} non-negative numbers, got {tuple(s.shape)}")
    U = random_orthonormal(m, len(s), generator, torch.float64)
    V = random_orthonormal(l, len(s), generator, torch.float64)
    return ((U * s) @ V.T).float()


def eckart_young_floor(sigmas: Sequence[float] | Tensor, k: int) -> float:
    """sum_{i > k} sigma_i^2 (sigmas sorted in decreasing order first): the least ||M - M_k||_F^2 at rank k.

    Args:
        sigmas: the singular values, a 1-D sequence or tensor of finite numbers >= 0 (not the matrix itself).
        k: the rank, an int >= 0.

    Raises:
        TypeError: ``k`` is not an int.
        ValueError: ``sigmas`` is not 1-D, or holds a NaN, an infinity or a negative number; ``k < 0``.
    """
    k = check_int("k", k, 0)
    s = torch.as_tensor(sigmas, dtype=torch.float64)
    if s.dim() != 1:
        raise ValueError(f"sigmas must be 1-D (the singular values, not a matrix), got shape {tuple(s.shape)}")
    if not bool(torch.isfinite(s).all()) or bool((s < 0).any()):
        raise ValueError(f"sigmas must be finite numbers >= 0 (singular values), got {s.tolist()}")
    s = torch.sort(s, descending=True).values
    return float((s[k:] ** 2).sum())


@dataclass
class FitResult:
    """What :func:`fit_lowrank` returns: ``losses`` (steps + 1, C), the loss before each step and after the last;
    the final factors ``A`` (C, m, kmax), ``B`` (C, kmax, l) (zero-padded beyond each rank); ``targets`` (C, m, l),
    what each s A B had to reach (W* minus that run's frozen weight)."""

    losses: Tensor
    A: Tensor
    B: Tensor
    targets: Tensor


def _per_run(name: str, value: float | Sequence[float], C: int) -> Tensor:
    t = torch.as_tensor(value, dtype=torch.float64).flatten()
    if len(t) == 1:
        t = t.expand(C)
    if len(t) != C or not bool(torch.isfinite(t).all()) or bool((t <= 0).any()):
        raise ValueError(f"{name} must be a positive number or {C} positive numbers, got {value!r}")
    return t


def fit_lowrank(
    delta: Tensor,
    ranks: Sequence[int],
    *,
    lr: float | Sequence[float],
    steps: int,
    ratio: float | Sequence[float] = 1.0,
    scale: float | Sequence[float] = 1.0,
    init: str = "standard",
    W0: Tensor | None = None,
    cosine: bool = True,
    generator: torch.Generator | None = None,
) -> FitResult:
    """Train C = len(ranks) adapters W_frozen + s A B towards W* = W0 + delta with Adam, all at once.

    Args:
        delta: the planted update, (m, l).
        ranks: the rank of each run.
        lr: Adam's learning rate of B, one number or one per run; A's is ``ratio * lr`` (LoRA+).
        steps: Adam steps (betas 0.9, 0.999, eps 1e-8, as ``torch.optim.Adam``).
        ratio, scale: one number or one per run.
        init: any of :data:`lmlab.lora_init.INITS`; ``"lora-ga"`` uses the gradient at the start, 2 (W0 - W*).
        W0: the frozen weight (zeros if None; it matters only to ``"pissa"``).
        cosine: decay every learning rate to 0 with a cosine over ``steps`` (else constant).
        generator: CPU generator for the random inits.

    The loss of run c is ||W_frozen + s A B - W*||_F^2, the expected squared error for white inputs.
    """
    delta = check_tensor("delta", delta, floating=True)
    if delta.dim() != 2:
        raise ValueError(f"delta must be a matrix (m, l), got shape {tuple(delta.shape)}")
    if not bool(torch.isfinite(delta).all()):
        raise ValueError("delta must hold finite numbers, got a NaN or an infinity")
    steps = check_int("steps", steps, 1)
    m, l = delta.shape
    ranks = list(ranks)
    C = len(ranks)
    if C == 0:
        raise ValueError("ranks must name at least one run")
    for k in ranks:
        check_int("ranks", k, 1, min(m, l))
    lrs, ratios, scales = _per_run("lr", lr, C), _per_run("ratio", ratio, C), _per_run("scale", scale, C)
    if W0 is not None:
        W0 = check_tensor("W0", W0, floating=True)
        if W0.shape != delta.shape:
            raise ValueError(f"W0 must have the shape of delta {tuple(delta.shape)}, got {tuple(W0.shape)}")
        if not bool(torch.isfinite(W0).all()):
            raise ValueError("W0 must hold finite numbers, got a NaN or an infinity")
    W0 = torch.zeros_like(delta) if W0 is None else W0.to(delta)
    W_star = W0 + delta
    kmax = max(ranks)
    A = delta.new_zeros(C, m, kmax)
    B = delta.new_zeros(C, kmax, l)
    T = delta.new_zeros(C, m, l)
    for c, k in enumerate(ranks):
        a, b, frozen = init_factors(W0, k, init, scale=float(scales[c]), grad=2 * (W0 - W_star), generator=generator)
        A[c, :, :k], B[c, :k] = a, b
        T[c] = W_star - frozen
    s = scales.to(delta)[:, None, None]
    lr_a, lr_b = (lrs * ratios).to(delta), lrs.to(delta)
    state_a, state_b = adam_state([A]), adam_state([B])
    losses = []
    for t in range(1, steps + 1):
        R = s * (A @ B) - T
        losses.append((R**2).sum((1, 2)))
        gA = 2 * s * (R @ B.transpose(1, 2))
        gB = 2 * s * (A.transpose(1, 2) @ R)
        decay = cosine_schedule(t - 1, steps) if cosine else 1.0
        adam_step([A], [gA], state_a, decay * lr_a, t)  # lr (C,): one rate per run
        adam_step([B], [gB], state_b, decay * lr_b, t)
    losses.append(((s * (A @ B) - T) ** 2).sum((1, 2)))
    return FitResult(torch.stack(losses), A, B, T)
