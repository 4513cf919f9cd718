"""lmlab.check.sgd_steps, the batch-size lab's check: it passes right implementations and stops plausible mistakes."""

from __future__ import annotations

import pytest
import torch
from lmlab import check
from lmlab import minibatch_sgd as ms
from lmlab.check import CheckFailed


def per_example(X, Y, W0, batches, lr):  # noqa: ANN001, ANN201 - a student's style: one example at a time
    W = W0.clone()
    d = X.shape[1]
    for rows in batches:
        grad = torch.zeros_like(W)
        for i in rows.tolist():
            x, y = X[i : i + 1], Y[i : i + 1]
            grad += 2 * x.T @ (x @ W - y)
        W = W - lr * grad / (len(rows) * d)
    return W


def test_the_reference_and_an_independent_implementation_pass(capsys: pytest.CaptureFixture[str]) -> None:
    check.sgd_steps(ms.sgd_steps)
    check.sgd_steps(per_example)
    assert capsys.readouterr().out.count("✓ sgd_steps") == 2


def _step(grad_of):  # noqa: ANN001, ANN202 - builds a wrong implementation from a wrong gradient
    def run(X, Y, W0, batches, lr):  # noqa: ANN001, ANN202
        W = W0.clone()
        for rows in batches:
            W = W - lr * grad_of(X[rows], Y[rows], W)
        return W

    return run


def _d(X):  # noqa: ANN001, ANN202
    return X.shape[1]


MISTAKES = {
    "no factor 2": _step(lambda X, Y, W: X.T @ (X @ W - Y) / (len(X) * _d(X))),
    "mean over examples only (no 1/d)": _step(lambda X, Y, W: 2 * X.T @ (X @ W - Y) / len(X)),
    "sum over the batch (no 1/B)": _step(lambda X, Y, W: 2 * X.T @ (X @ W - Y) / _d(X)),
    "transposed convention (prediction X W^T)": _step(lambda X, Y, W: 2 * (X @ W.T - Y).T @ X / (len(X) * _d(X))),
    "gradient ascent (+ instead of -)": _step(lambda X, Y, W: -2 * X.T @ (X @ W - Y) / (len(X) * _d(X))),
}


def first_rows(X, Y, W0, batches, lr):  # noqa: ANN001, ANN201 - ignores the drawn minibatches
    W = W0.clone()
    B, d = batches.shape[1], X.shape[1]
    for _ in range(batches.shape[0]):
        Xb, Yb = X[:B], Y[:B]
        W = W - lr * 2 * Xb.T @ (Xb @ W - Yb) / (B * d)
    return W


def unique_rows(X, Y, W0, batches, lr):  # noqa: ANN001, ANN201 - drops repeated rows: sampling without replacement
    W = W0.clone()
    d = X.shape[1]
    for rows in batches:
        rows = torch.unique(rows)
        W = W - lr * 2 * X[rows].T @ (X[rows] @ W - Y[rows]) / (len(rows) * d)
    return W


def in_place(X, Y, W0, batches, lr):  # noqa: ANN001, ANN201 - changes the caller's start
    d = X.shape[1]
    for rows in batches:
        W0 -= lr * 2 * X[rows].T @ (X[rows] @ W0 - Y[rows]) / (len(rows) * d)
    return W0.clone()


@pytest.mark.parametrize(
    "mistake",
    [*MISTAKES.values(), first_rows, unique_rows, in_place],
    ids=[*MISTAKES, "first rows, not the drawn ones", "repeated rows dropped", "W0 changed in place"],
)
def test_plausible_mistakes_are_stopped(mistake) -> None:  # noqa: ANN001
    with pytest.raises(CheckFailed, match=r"sgd_steps, case \d+ of \d+"):
        check.sgd_steps(mistake)


def test_a_stub_is_not_written_yet() -> None:
    def stub(X, Y, W0, batches, lr):  # noqa: ANN001, ANN202
        raise NotImplementedError

    with pytest.raises(CheckFailed, match="not written yet"):
        check.sgd_steps(stub)


def test_sgd_linear_regression_is_sgd_steps_on_its_draws() -> None:
    data = ms.make_dataset(300, 4, 1.0, seed=3)
    W = ms.sgd_linear_regression(data.X, data.Y, 8, 0.05, 25, seed=5)
    W0, batches = ms.sgd_draws(300, 4, 8, 25, seed=5, dtype=data.X.dtype)
    torch.testing.assert_close(W, ms.sgd_steps(data.X, data.Y, W0, batches, 0.05), rtol=0, atol=0)
