"""Deterministic synthetic data for the book's small models.

Every sampler takes an explicit ``torch.Generator`` (or a ``seed``), so the same seed gives the same data on every
machine. Nothing is downloaded.

Two task families live here (the arithmetic word problems are in :mod:`lmlab.arithmetic`, the modular-addition
family for meta-learning in :mod:`lmlab.modular`):

* :class:`BigramLanguage`: a Markov chain over ``n_vocab`` tokens with a known transition matrix ``P``
  (``P[a, b]`` = probability that token ``b`` follows token ``a``). The zero-layer model learns it.
* :func:`repeated_sequences`: ``BOS + r + r`` with ``r`` a random sequence of distinct tokens (induction heads).

Tensors follow the PyTorch convention, one row per token: a batch of token ids is ``(batch, n)``. The book's
one-hot matrix ``T`` (``n_vocab x n_context``, columns are tokens) is the transpose of one such row, one-hot encoded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

import torch
from torch import Tensor

from lmlab.core.checks import check_callable, check_float, check_generator, check_int, check_tensor
from lmlab.core.runtime import generator as _generator

B = TypeVar("B")

__all__ = [
    "BatchSource",
    "BigramLanguage",
    "RepeatedSequences",
    "next_token_pairs",
    "periodic_batches",
    "periodic_sequences",
    "repeated_sequences",
    "seeded_batches",
]


@runtime_checkable
class BatchSource(Protocol):
    """The contract every task class shares: ``task.batches(batch, ..., seed)`` returns a ``step -> batch`` source.

    The source is what :func:`lmlab.train.train` draws from: ``source(step)`` is a tuple of tensors, the first
    one ``(batch, n)`` token ids (``(inputs, targets)`` or ``(inputs, targets, mask)``), and step ``t`` of seed
    ``seed`` is the same batch on every machine (:func:`seeded_batches`). The task classes of :mod:`lmlab.tasks`,
    :mod:`lmlab.arithmetic` and :mod:`lmlab.prompt_data` satisfy it (``isinstance(task, BatchSource)``); a new task
    needs only this method to train a model with the package.
    """

    def batches(self, batch: int, *args: Any, **kwargs: Any) -> Callable[[int], tuple[Tensor, ...]]:
        """A ``step -> batch`` source of ``batch`` sequences (the task's own arguments, then ``seed``)."""
        ...


def seeded_batches(draw: Callable[[int], B], seed: int) -> Callable[[int], B]:
    """A ``step -> batch`` source for :func:`lmlab.train.train`: step ``t`` returns ``draw(seed * 1_000_003 + t)``.

    Every batch comes from its own seed, so a run can be resumed or repeated from any step, on any machine, and
    two sources with different ``seed`` never share a batch in practice. ``draw`` gets that int and seeds its own
    generator with it through :func:`lmlab.generator` (or ``random.Random(lmlab.draw_seed(s))``), so the draw's
    seed offset reaches it.
    """
    check_callable("draw", draw)
    check_int("seed", seed, 0)
    return lambda step: draw(seed * 1_000_003 + step)


def next_token_pairs(tokens: Tensor) -> tuple[Tensor, Tensor]:
    """``(inputs, targets)`` = ``(tokens[:, :-1], tokens[:, 1:])``: every position predicts the next token.

    Args:
        tokens: ``(batch, n)`` token ids, ``n >= 2``.
    """
    check_tensor("tokens", tokens, 2)
    if tokens.shape[1] < 2:
        raise ValueError(f"tokens must have at least 2 columns (one input, one target), got {tuple(tokens.shape)}")
    return tokens[:, :-1], tokens[:, 1:]


# --------------------------------------------------------------------------------------------------------------
# bigram language
# --------------------------------------------------------------------------------------------------------------


class BigramLanguage:
    """A Markov chain over ``n_vocab`` tokens with a known transition matrix.

    ``P[a, b]`` is the probability that token ``b`` follows token ``a`` (rows sum to one). Each row is a draw from
    a symmetric Dirichlet distribution with a small ``concentration`` (so each token has a few likely successors),
    mixed with the uniform distribution by ``smoothing`` (so every transition has probability at least
    ``smoothing / n_vocab`` and its log-probability is finite and learnable)::

        P[a, :] = (1 - smoothing) * Dirichlet(concentration, ..., concentration) + smoothing / n_vocab

    Sequences start from the stationary distribution ``pi`` (``pi P = pi``), so every position is distributed alike.

    Orientation, in the book's notation: the zero-layer model computes logits ``L = W_U W_E T`` with ``T`` the
    one-hot tokens as columns (``n_vocab x n_context``). Column ``a`` of the ``n_vocab x n_vocab`` matrix
    ``W_U W_E`` holds the logits for the token after ``a``, so a trained model has
    ``(W_U W_E)[:, a] ~ log P[a, :] + c_a``: the transpose of ``log P``, up to one constant per column (softmax
    ignores constants). :meth:`log_probs` returns ``log P`` (rows = current token); compare its transpose.

    Args:
        n_vocab: number of tokens, at least 2.
        seed: seed of the transition matrix (a non-negative int).
        concentration: Dirichlet concentration, > 0; small values give peaked rows.
        smoothing: weight of the uniform mixture, in [0, 1).

    Attributes:
        P: the transition matrix, float64 tensor ``(n_vocab, n_vocab)``.
    """

    def __init__(self, n_vocab: int, seed: int = 0, *, concentration: float = 0.2, smoothing: float = 0.05) -> None:
        self.n_vocab = check_int("n_vocab", n_vocab, 2)
        self.seed = check_int("seed", seed, 0)
        self.concentration = check_float("concentration", concentration, 0.0, strict=True)
        self.smoothing = check_float("smoothing", smoothing, 0.0, high=1.0)
        if self.smoothing == 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {smoothing!r}")
        g = _generator(seed)
        # Dirichlet via normalised Gamma draws; torch's _standard_gamma takes no generator, so use the
        # Marsaglia-Tsang trick on uniform/normal draws from our generator for full determinism.
        gam = _gamma(torch.full((n_vocab, n_vocab), self.concentration, dtype=torch.float64), g)
        rows = gam / gam.sum(dim=1, keepdim=True)
        self.P: Tensor = (1.0 - self.smoothing) * rows + self.smoothing / n_vocab
        self.P = self.P / self.P.sum(dim=1, keepdim=True)

    def log_probs(self) -> Tensor:
        """``log P``: float64 ``(n_vocab, n_vocab)``, row ``a`` = log-probabilities of the token after ``a``."""
        return self.P.log()

    def stationary(self) -> Tensor:
        """The stationary distribution ``pi`` (float64 ``(n_vocab,)``), the solution of ``pi P = pi``, sum 1."""
        evals, evecs = torch.linalg.eig(self.P.T)
        i = int(torch.argmin((evals - 1).abs()))
        pi = evecs[:, i].real
        pi = pi / pi.sum()
        return pi.clamp_min(0) / pi.clamp_min(0).sum()

    def entropy(self) -> float:
        """The true next-token entropy ``H = sum_a pi_a H(P[a, :])`` in nats: the lowest achievable loss."""
        row_h = -(self.P * self.P.log()).sum(dim=1)
        return float((self.stationary() * row_h).sum())

    def excess_loss(self, logit_table: Tensor) -> float:
        """Expected loss above the entropy (nats/token) of a model whose logits after token ``a`` are column ``a`` of
        ``logit_table`` (``n_vocab x n_vocab``, rows = next token, as ``W_U W_E``): ``sum_a pi_a KL(P[a] || q_a)``,
        >= 0, and 0 only for the true log-probabilities up to one constant per column."""
        if tuple(logit_table.shape) != tuple(self.P.shape):
            raise ValueError(
                f"logit_table must be (n_vocab, n_vocab) = {tuple(self.P.shape)}, got {tuple(logit_table.shape)}"
            )
        logq = logit_table.T.detach().double().cpu().log_softmax(-1)  # rows: current token
        kl_rows = (self.P * (self.P.log() - logq)).sum(dim=1)
        return float((self.stationary() * kl_rows).sum())

    def sample(self, batch: int, n: int, generator: torch.Generator) -> Tensor:
        """Sample ``batch`` sequences of ``n`` tokens.

        Returns:
            LongTensor ``(batch, n)`` on the CPU: the first token from ``pi``, each next one from ``P[previous]``.
        """
        check_int("batch", batch, 1)
        check_int("n", n, 1)
        g = check_generator(generator)
        u = torch.rand(batch, n, generator=g, dtype=torch.float64)
        cdf = self.P.cumsum(dim=1)
        cdf[:, -1] = 1.0 + 1e-12
        out = torch.empty(batch, n, dtype=torch.long)
        pi_cdf = self.stationary().cumsum(0)
        pi_cdf[-1] = 1.0 + 1e-12
        out[:, 0] = torch.searchsorted(pi_cdf, u[:, :1].contiguous()).squeeze(1)
        for t in range(1, n):
            rows = cdf[out[:, t - 1]]
            out[:, t] = torch.searchsorted(rows, u[:, t : t + 1].contiguous()).squeeze(1)
        return out.clamp_(max=self.n_vocab - 1)

    def batches(self, batch: int, n: int, seed: int = 0) -> Callable[[int], tuple[Tensor, Tensor]]:
        """A callable ``step -> (inputs, targets)`` for :func:`lmlab.train.train`.

        Each call samples ``(batch, n + 1)`` tokens from a generator seeded with ``(seed, step)`` and returns the
        inputs ``tokens[:, :-1]`` and the next-token targets ``tokens[:, 1:]``, both ``(batch, n)``.
        """
        check_int("batch", batch, 1)
        check_int("n", n, 1)
        return seeded_batches(lambda s: next_token_pairs(self.sample(batch, n + 1, _generator(s))), seed)


def _gamma(alpha: Tensor, g: torch.Generator) -> Tensor:
    """Gamma(alpha, 1) draws (float64, same shape as alpha) from generator ``g`` (Marsaglia and Tsang, 2000)."""
    boost = alpha < 1
    a = torch.where(boost, alpha + 1, alpha)
    d = a - 1.0 / 3.0
    c = 1.0 / torch.sqrt(9.0 * d)
    out = torch.zeros_like(alpha)
    todo = torch.ones_like(alpha, dtype=torch.bool)
    while bool(todo.any()):
        x = torch.randn(alpha.shape, generator=g, dtype=torch.float64)
        u = torch.rand(alpha.shape, generator=g, dtype=torch.float64)
        v = (1 + c * x) ** 3
        ok = (v > 0) & (torch.log(u.clamp_min(1e-300)) < 0.5 * x**2 + d - d * v + d * torch.log(v.clamp_min(1e-300)))
        take = todo & ok
        out = torch.where(take, d * v, out)
        todo = todo & ~ok
    if bool(boost.any()):
        u = torch.rand(alpha.shape, generator=g, dtype=torch.float64).clamp_min(1e-300)
        out = torch.where(boost, out * u ** (1.0 / alpha), out)
    return out.clamp_min(1e-300)


# --------------------------------------------------------------------------------------------------------------
# repeated sequences (induction heads)
# --------------------------------------------------------------------------------------------------------------


def repeated_sequences(
    batch: int,
    seq_len: int,
    n_vocab: int,
    generator: torch.Generator | int,
    *,
    bos: int | None = 0,
    distinct: bool = True,
    device: torch.device | str | None = None,
) -> Tensor:
    """``BOS + r + r``: a random run ``r`` of ``seq_len`` tokens, shown twice.

    ``r`` is drawn uniformly from ``{0, ..., n_vocab - 1}`` minus ``bos``; with ``distinct`` (default) without
    replacement, so no token repeats inside one copy and the only way to predict the second copy is to look back
    at the first (induction).

    Args:
        batch: number of sequences, >= 1.
        seq_len: length ``T`` of ``r``, >= 1 (at most the number of non-BOS tokens when ``distinct``).
        n_vocab: vocabulary size, >= 2.
        generator: a CPU ``torch.Generator``, or an int seed for a fresh one (the global generator is untouched).
        bos: the beginning-of-sequence token in [0, n_vocab - 1], or ``None`` for sequences ``r + r``.
        distinct: draw ``r`` without replacement.
        device: where the result goes (drawn on the CPU either way, so every device sees the same tokens).

    Returns:
        LongTensor ``(batch, 1 + 2 T)``: column 0 is ``bos``, columns ``1..T`` are ``r`` and ``T+1..2T`` repeat
        them (``(batch, 2 T)`` without BOS).

    Raises:
        ValueError: ``seq_len`` larger than the number of tokens to draw from, or another argument out of range.
    """
    check_int("batch", batch, 1)
    check_int("n_vocab", n_vocab, 2)
    if bos is not None:
        check_int("bos", bos, 0, n_vocab - 1)
    choices = torch.tensor([t for t in range(n_vocab) if t != bos], dtype=torch.long)
    check_int("seq_len", seq_len, 1, len(choices) if distinct else None)
    g = check_generator(generator)
    if distinct:
        order = torch.rand(batch, len(choices), generator=g).argsort(dim=1)[:, :seq_len]
    else:
        order = torch.randint(len(choices), (batch, seq_len), generator=g)
    r = choices[order]
    parts = [r, r] if bos is None else [torch.full((batch, 1), bos, dtype=torch.long), r, r]
    return torch.cat(parts, dim=1).to(device)


def periodic_sequences(
    batch: int,
    n: int,
    n_vocab: int,
    generator: torch.Generator | int,
    *,
    min_period: int,
    max_period: int,
    bos: int = 0,
) -> Tensor:
    """``BOS`` followed by ``r r r ...`` cut to ``n`` tokens, with a fresh period ``T`` for every sequence.

    ``r`` is a run of ``T`` distinct tokens (BOS excluded), ``T`` uniform in ``[min_period, max_period]`` per
    sequence. Every token after the first period is predictable by induction, and because ``T`` varies no fixed
    positional offset can replace looking back at the content.

    Args:
        batch: number of sequences; n: sequence length (>= 2); n_vocab: vocabulary size including BOS (>= 3).
        generator: a CPU ``torch.Generator`` or an int seed.
        min_period, max_period: range of ``T``, ``2 <= min_period <= max_period <= n_vocab - 1``.
        bos: the BOS id.

    Returns:
        Token ids ``(batch, n)`` on the CPU.
    """
    check_int("n_vocab", n_vocab, 3)
    check_int("n", n, 2)
    check_int("batch", batch, 1)
    check_int("bos", bos, 0, n_vocab - 1)
    check_int("max_period", max_period, 2, n_vocab - 1)
    check_int("min_period", min_period, 2, max_period)
    g = check_generator(generator)
    T = torch.randint(min_period, max_period + 1, (batch, 1), generator=g)
    r = torch.rand(batch, n_vocab - 1, generator=g).argsort(dim=1)
    r = r + (r >= bos).long()  # skip the BOS id
    body = r.gather(1, torch.arange(n - 1)[None, :] % T)
    return torch.cat([torch.full((batch, 1), bos, dtype=torch.long), body], dim=1)


@dataclass(frozen=True)
class RepeatedSequences:
    """The induction task as a training source: ``BOS + r + r`` with the length of ``r`` varying per batch.

    Attributes:
        n_vocab: vocabulary size; bos: the BOS id.
        min_len, max_len: each training batch draws one length ``T`` uniformly from ``[min_len, max_len]``.
        eval_len: the copy length to evaluate on (``2 eval_len + 1 <= n_ctx`` of the model).
    """

    n_vocab: int
    bos: int = 0
    min_len: int = 8
    max_len: int = 24
    eval_len: int = 20

    def __post_init__(self) -> None:
        check_int("n_vocab", self.n_vocab, 2)
        check_int("bos", self.bos, 0, self.n_vocab - 1)
        check_int("max_len", self.max_len, 1, self.n_vocab - 1)
        check_int("min_len", self.min_len, 1, self.max_len)
        check_int("eval_len", self.eval_len, 1, self.n_vocab - 1)

    def batches(self, batch: int, seed: int = 0) -> Callable[[int], tuple[Tensor, Tensor]]:
        """A ``step -> (inputs, targets)`` source of :func:`repeated_sequences` with a random length per step."""
        check_int("batch", batch, 1)

        def draw(s: int) -> tuple[Tensor, Tensor]:
            g = _generator(s)
            n = int(torch.randint(self.min_len, self.max_len + 1, (1,), generator=g))
            return next_token_pairs(repeated_sequences(batch, n, self.n_vocab, g, bos=self.bos))

        return seeded_batches(draw, seed)


def periodic_batches(
    n_vocab: int, n_ctx: int, *, batch: int = 32, min_period: int = 3, max_period: int = 12, seed: int = 0, bos: int = 0
) -> Callable[[int], tuple[Tensor, Tensor]]:
    """A ``step -> (inputs, targets)`` source of :func:`periodic_sequences`, both ``(batch, n_ctx)``."""
    check_int("n_vocab", n_vocab, 3)
    check_int("n_ctx", n_ctx, 2)
    check_int("batch", batch, 1)
    check_int("bos", bos, 0, n_vocab - 1)
    check_int("max_period", max_period, 2, n_vocab - 1)
    check_int("min_period", min_period, 2, max_period)

    def draw(s: int) -> tuple[Tensor, Tensor]:
        kw = {"min_period": min_period, "max_period": max_period, "bos": bos}
        return next_token_pairs(periodic_sequences(batch, n_ctx + 1, n_vocab, s, **kw))

    return seeded_batches(draw, seed)
