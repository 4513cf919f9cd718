"""Checks for the batch-size lab (homework problem 4): ``check.<function>(your_function)``.

- :func:`sgd_steps` ``(X, Y, W0, batches, lr) -> W``: plain SGD on the least-squares loss
  ``||X_b W - Y_b||_F^2 / (B d)`` of each minibatch ``batches[t]`` (row indices, drawn with replacement), from
  ``W0``. Cases: one step on one example worked by hand; a minibatch that repeats a row (with replacement, a row
  drawn twice counts twice); the full batch (gradient descent); a rectangular-looking start; zero steps; and
  random problems of the homework's shapes (``d = 16``) at several batch sizes and rates. ``W0`` must not change.

The reference is :func:`lmlab.minibatch_sgd.sgd_steps`, the function the chapter's sweeps are checked against.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from lmlab import minibatch_sgd as ms
from lmlab.check._core import Case, run_check
from lmlab.core.runtime import generator

__all__ = ["sgd_steps"]

RTOL, ATOL = 1e-6, 1e-9


def _problem(seed: int, n: int, d: int, steps: int, batch: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    g = generator(seed)
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    W_star = torch.randn(d, d, generator=g, dtype=torch.float64)
    Y = X @ W_star + 0.5 * torch.randn(n, d, generator=g, dtype=torch.float64)
    W0, batches = ms.sgd_draws(n, d, batch, steps, seed)
    return X, Y, W0, batches


def sgd_steps(student: Callable[..., Any]) -> None:
    """Check ``sgd_steps(X, Y, W0, batches, lr) -> W`` against the book's."""
    x1 = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    y1 = torch.tensor([[3.0, -1.0]], dtype=torch.float64)
    eye = torch.eye(2, dtype=torch.float64)
    X4 = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0], [-1.0, 0.5]], dtype=torch.float64)
    Y4 = torch.tensor([[1.0, 1.0], [0.0, -2.0], [2.0, 0.0], [0.5, 0.5]], dtype=torch.float64)
    W0 = torch.tensor([[0.5, -0.25], [0.1, 0.3]], dtype=torch.float64)
    cases = [
        Case(
            "one example, one step, from the identity: W - lr 2 x^T (x W - y) / d",
            (x1, y1, eye, torch.tensor([[0]]), 0.1),
        ),
        Case("a minibatch that draws row 2 twice (with replacement)", (X4, Y4, W0, torch.tensor([[2, 2, 0]]), 0.05)),
        Case("the full batch for three steps (gradient descent)", (X4, Y4, W0, torch.arange(4).repeat(3, 1), 0.1)),
        Case("zero steps return the start", (X4, Y4, W0, torch.zeros(0, 2, dtype=torch.int64), 0.1)),
        Case(
            "a non-symmetric start, batch of one, four steps",
            (X4, Y4, W0.T.contiguous(), torch.tensor([[3], [1], [0], [3]]), 0.2),
        ),
    ]
    for k, (n, d, steps, batch, lr) in enumerate(
        [(200, 16, 20, 2, 0.01), (200, 16, 10, 64, 0.1), (50, 4, 30, 16, 0.3)]
    ):
        cases.append(
            Case(
                f"random: n = {n}, d = {d}, {steps} steps of batch {batch}, lr {lr}",
                (*_problem(8100 + k, n, d, steps, batch), lr),
                mutated=(2,),
            )
        )
    cases = [Case(c.name, c.args, mutated=(2,)) for c in cases]
    run_check("sgd_steps", student, ms.sgd_steps, cases, rtol=RTOL, atol=ATOL)
