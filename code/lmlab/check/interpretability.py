"""Checks for the interpretability lab (homework Problem 3): one attention head, then an induction copy head.

``check.<name>(your_function)`` runs your function and the book's (:mod:`lmlab.lab_induction`) on the same fixed
and random cases; the setting (shapes, the two-hot embedding, the two heads, what the copying head reads) is
described in that module's docstring. One check per function the lab asks for:

- :func:`attention_head`: ``attention_head(X, W_QK, W_OV) -> (out, A)``; the output and the pattern are compared.
- :func:`embed`: ``embed(tokens) -> X`` (``9 x n``); compared entry by entry.
- :func:`previous_token_head` and :func:`copying_head`: ``f(strength) -> (W_QK, W_OV)``. Many matrices are right:
  entries that only ever meet a masked key, or that add the same amount to every score of a query, change
  nothing. So these checks compare what the weights *do*: the attention pattern and the output that one head
  (the book's, with your two matrices) gives on the case's sequences, up to every sequence of the lab (1 to 5
  tokens for the previous-token head; 2 to 5 for the copying head, which reads the book's
  ``induction_input`` of each sequence). The shapes must be the book's.
- :func:`induction_logits`: ``induction_logits(tokens, strength) -> (4,)``; compared entry by entry.

Random cases are drawn with :func:`lmlab.generator`, so they are the same on every run of a given draw.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from lmlab import lab_induction as lab
from lmlab.check._core import Case, describe, difference, run_check
from lmlab.core.runtime import generator
from lmlab.inside.circuits import circuit_attention

__all__ = ["attention_head", "copying_head", "embed", "induction_logits", "previous_token_head"]

RTOL, ATOL = 1e-4, 1e-5  # float32 arithmetic in a different order stays far inside; every mistake is far outside
HOMEWORK = ("a", "b", "c", "d", "a")  # the homework's example; at strength 10 it predicts b
N_RANDOM = 6  # random cases of the tensor-valued checks
N_RANDOM_STRENGTHS = 3  # random strengths of the weight checks (each on every sequence)


# ---------------------------------------------------------------------------------------------- helpers
def _letters(seq: Sequence[int]) -> str:
    return "[" + ", ".join(lab.VOCAB[t] for t in seq) + "]"


def _uniform(g: torch.Generator, low: float, high: float) -> float:
    return round(low + (high - low) * float(torch.rand((), generator=g, dtype=torch.float64)), 3)


def _random_tokens(g: torch.Generator, low: int) -> list[Any]:
    """A random sequence of ``low`` to 5 tokens, as letters or as ids (a coin decides)."""
    n = int(torch.randint(low, lab.N_CTX + 1, (), generator=g))
    ids = torch.randint(0, lab.N_VOCAB, (n,), generator=g).tolist()
    as_letters = bool(torch.randint(0, 2, (), generator=g))
    return [lab.VOCAB[t] for t in ids] if as_letters else ids


def _every_sequence(low: int) -> tuple[tuple[int, ...], ...]:
    return tuple(seq for n in range(low, lab.N_CTX + 1) for seq in itertools.product(range(lab.N_VOCAB), repeat=n))


def _ids(letters: str) -> tuple[int, ...]:
    return tuple(lab.VOCAB.index(t) for t in letters)


# ---------------------------------------------------------------------------------------------- attention_head
def attention_head(student_fn: Callable[..., Any]) -> None:
    """Check ``attention_head(X, W_QK, W_OV) -> (out, A)`` against the book's.

    Cases (11): the previous-token head and the copying head on the homework's example ``[a, b, c, d, a]`` at
    strength 10; a small ``2 x 3`` input with an asymmetric ``W_QK`` and a ``3 x 2`` ``W_OV``; one token; a repeated
    token at strength 1; then 6 random float64 inputs (``d`` from 2 to 6, ``n`` from 2 to 5, ``d_out != d``).
    Both ``out`` (``d_out x n``) and ``A`` (``n x n``, rows = queries) must agree to ``rtol=1e-4, atol=1e-5``.

    Raises:
        CheckFailed: your function disagrees on a case, raises, or is not written yet.
    """
    X = lab.embed(HOMEWORK)
    prev = lab.previous_token_head(10.0)
    prev_out, _ = lab.attention_head(X, *prev)
    cases = [
        Case("the homework's example [a, b, c, d, a] with the previous-token head at strength 10", (X, *prev)),
        Case(
            "the copying head at strength 10 on what it reads for [a, b, c, d, a]",
            (lab.induction_input(X, prev_out), *lab.copying_head(10.0)),
        ),
        Case(
            "a 2 x 3 input with an asymmetric W_QK and a 3 x 2 W_OV",
            (
                torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]),
                torch.tensor([[0.0, 2.0], [-1.0, 0.0]]),
                torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]),
            ),
        ),
        Case("one token [c] with the previous-token head", (lab.embed(["c"]), *prev)),
        Case(
            "a repeated token [a, b, a, b, a] with the previous-token head at strength 1",
            (lab.embed(["a", "b", "a", "b", "a"]), *lab.previous_token_head(1.0)),
        ),
    ]
    g = generator(3_000)
    for k in range(N_RANDOM):
        d = int(torch.randint(2, 7, (), generator=g))
        n = int(torch.randint(2, lab.N_CTX + 1, (), generator=g))
        d_out = d + int(torch.randint(1, 4, (), generator=g))
        Xr = torch.randn(d, n, generator=g, dtype=torch.float64)
        W_QK = torch.randn(d, d, generator=g, dtype=torch.float64)
        W_OV = torch.randn(d_out, d, generator=g, dtype=torch.float64)
        cases.append(Case(f"random {k + 1}: d = {d}, n = {n}, d_out = {d_out}", (Xr, W_QK, W_OV)))
    run_check("attention_head", student_fn, lab.attention_head, cases, compare=_out_and_pattern)


def _out_and_pattern(expected: Any, got: Any, case: Case) -> str | None:
    """``(out, A)``: the pattern first (a wrong pattern makes a wrong output), each under its own name."""
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        return f"your function should return the pair (out, A), got {describe(got)}"
    e_out, e_A = expected
    g_out, g_A = got
    return difference(e_A, g_A, rtol=RTOL, atol=ATOL, where="the pattern A") or difference(
        e_out, g_out, rtol=RTOL, atol=ATOL, where="the output out"
    )


# ---------------------------------------------------------------------------------------------- embed
def embed(student_fn: Callable[..., Any]) -> None:
    """Check ``embed(tokens) -> X`` (``9 x n``, a floating-point tensor) against the book's, entry by entry.

    Cases (10): the homework's example as letters and as ids, one token, five equal tokens, then 6 random
    sequences of 1 to 5 tokens (letters or ids).

    Raises:
        CheckFailed: your function disagrees on a case, raises, or is not written yet.
    """
    cases = [
        Case("the homework's example ['a', 'b', 'c', 'd', 'a']", (list(HOMEWORK),)),
        Case("the homework's example as ids [0, 1, 2, 3, 0]", ([0, 1, 2, 3, 0],)),
        Case("one token ['c']", (["c"],)),
        Case("a repeated token ['b', 'b', 'b', 'b', 'b']", (["b"] * lab.N_CTX,)),
    ]
    g = generator(3_001)
    for k in range(N_RANDOM):
        tokens = _random_tokens(g, 1)
        cases.append(Case(f"random {k + 1}: {len(tokens)} tokens", (tokens,)))
    run_check("embed", student_fn, lab.embed, cases, rtol=RTOL, atol=ATOL)


# ---------------------------------------------------------------------------------------------- the two heads
@dataclass
class _Behaviour(Case):
    """A case of a weight-building function: ``f(strength)``; the weights are compared on ``sequences``."""

    sequences: tuple[tuple[int, ...], ...] = ()


def _run_heads(X: Tensor, W_QK: Tensor, W_OV: Tensor) -> tuple[Tensor, Tensor]:
    """The lab's head on a batch ``X`` (``batch x d x n``): the book's :func:`~lmlab.circuits.circuit_attention`.

    Scores ``x_i^T W_QK x_j`` (scale 1, the lab's convention), causal mask, output ``W_OV X A^T``. Returns
    ``(out, A)``: ``(batch, d_out, n)`` and ``(batch, n, n)``.
    """
    return circuit_attention(X, W_QK, W_OV, scale=1.0, causal=True)


def _embeddings(sequences: Sequence[tuple[int, ...]]) -> Tensor:
    """``lab.embed`` of sequences of one length, stacked (``batch x 9 x n``, float64), in one step."""
    ids = torch.tensor(sequences, dtype=torch.long).reshape(len(sequences), -1)
    tok = torch.nn.functional.one_hot(ids, lab.N_VOCAB).double()  # (batch, n, 4)
    pos = torch.eye(lab.N_CTX, dtype=torch.float64)[: ids.shape[1]].expand(len(sequences), -1, -1)
    return torch.cat([tok, pos], dim=2).transpose(1, 2)


def _previous_inputs(sequences: Sequence[tuple[int, ...]], strength: float) -> Tensor:
    return _embeddings(sequences)


def _copying_inputs(sequences: Sequence[tuple[int, ...]], strength: float) -> Tensor:
    """The book's ``induction_input`` of each sequence (``batch x 8 x (n-1)``): tokens on previous tokens."""
    X = _embeddings(sequences)
    prev_out, _ = _run_heads(X, *(W.double() for W in lab.previous_token_head(strength)))
    return torch.cat([X[:, lab.TOK, 1:], prev_out[:, :, 1:]], dim=1)


def _weights_compare(
    inputs: Callable[[Sequence[tuple[int, ...]], float], Tensor], what: str
) -> Callable[[Any, Any, Case], str | None]:
    """``compare`` for ``run_check``: the pair's shapes, then the pattern and output on each of the case's sequences."""

    def compare(expected: Any, got: Any, case: Case) -> str | None:
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            return f"your function should return the pair (W_QK, W_OV), got {describe(got)}"
        for name, e, w in zip(("W_QK", "W_OV"), expected, got):
            if not isinstance(w, Tensor):
                return f"{name} should be a tensor of shape {tuple(e.shape)}, got {describe(w)}"
            if tuple(w.shape) != tuple(e.shape):
                return f"{name} should have shape {tuple(e.shape)}, got {tuple(w.shape)}"
            if not w.is_floating_point():
                return f"{name} should be a floating-point tensor, got {w.dtype}"
        assert isinstance(case, _Behaviour)
        strength = float(case.args[0])
        ref = [W.detach().cpu().double() for W in expected]
        yours = [W.detach().cpu().double() for W in got]
        by_length: dict[int, list[tuple[int, ...]]] = {}
        for seq in case.sequences:
            by_length.setdefault(len(seq), []).append(seq)
        for seqs in by_length.values():
            X = inputs(seqs, strength)
            e_out, e_A = _run_heads(X, *ref)
            g_out, g_A = _run_heads(X, *yours)
            for label, e, g in (("the attention pattern A", e_A, g_A), ("the head's output W_OV X A^T", e_out, g_out)):
                close = (g - e).abs() <= ATOL + RTOL * e.abs()
                bad = ~close.flatten(1).all(1)
                if bad.any():
                    k = int(torch.nonzero(bad)[0])
                    where = f"with your weights, on {what} {_letters(seqs[k])}, {label}"
                    return difference(e[k], g[k], rtol=RTOL, atol=ATOL, where=where)
        return None

    return compare


def _weight_cases(low: int, seed: int, fixed: Sequence[tuple[str, float, Sequence[str]]]) -> list[Case]:
    every = _every_sequence(low)
    n_every = len(every)
    cases: list[Case] = [_Behaviour(name, (s,), sequences=tuple(_ids(t) for t in seqs)) for name, s, seqs in fixed]
    cases.append(_Behaviour(f"all {n_every} sequences of {low} to 5 tokens at strength 10", (10.0,), sequences=every))
    cases.append(_Behaviour(f"all {n_every} sequences at strength 1 (a weak head)", (1.0,), sequences=every))
    g = generator(seed)
    for k in range(N_RANDOM_STRENGTHS):
        s = _uniform(g, 0.5, 20.0)
        cases.append(_Behaviour(f"random {k + 1}: all {n_every} sequences at strength {s}", (s,), sequences=every))
    return cases


def previous_token_head(student_fn: Callable[..., Any]) -> None:
    """Check ``previous_token_head(strength) -> (W_QK, W_OV)`` (``9 x 9`` and ``4 x 9``) by what the weights do.

    The book's head (scores ``x_i^T W_QK x_j``, causal mask, softmax, ``W_OV X A^T``) runs with your matrices and
    with the book's on embedded sequences; the patterns and outputs must agree to ``rtol=1e-4, atol=1e-5``.
    Cases (8): the homework's example at strength 10; five equal tokens at strength 2 (only positions tell
    them apart); one token; every sequence of 1 to 5 tokens at strengths 10 and 1; and at 3 random strengths
    in ``[0.5, 20]``.

    Raises:
        CheckFailed: your function disagrees on a case, raises, or is not written yet.
    """
    fixed = [
        ("the homework's example [a, b, c, d, a] at strength 10", 10.0, [HOMEWORK]),
        ("a repeated token [c, c, c, c, c] at strength 2", 2.0, ["ccccc"]),
        ("one token [b] at strength 10", 10.0, ["b"]),
    ]
    cases = _weight_cases(1, 3_002, fixed)
    compare = _weights_compare(_previous_inputs, "the sequence")
    run_check("previous_token_head", student_fn, lab.previous_token_head, cases, compare=compare)


def copying_head(student_fn: Callable[..., Any]) -> None:
    """Check ``copying_head(strength) -> (W_QK, W_OV)`` (``8 x 8`` and ``4 x 8``) by what the weights do.

    The copying head reads the book's ``induction_input`` of each sequence (rows 0-3 the current token, rows 4-7
    the previous token, position 0 dropped); the book's head runs with your matrices and with the book's, and the
    patterns and outputs must agree to ``rtol=1e-4, atol=1e-5``. Cases (9): the homework's example at strength 10;
    a repeated token ``[a, b, a, b, a]``; the shortest input ``[c, c]``; a last token seen for the first time
    ``[a, b, c, d]``; every sequence of 2 to 5 tokens at strengths 10 and 1; and at 3 random strengths.

    Raises:
        CheckFailed: your function disagrees on a case, raises, or is not written yet.
    """
    fixed = [
        ("the homework's example [a, b, c, d, a] at strength 10", 10.0, [HOMEWORK]),
        ("a repeated token [a, b, a, b, a] at strength 10", 10.0, ["ababa"]),
        ("two tokens [c, c] at strength 10", 10.0, ["cc"]),
        ("a new last token [a, b, c, d] at strength 10", 10.0, ["abcd"]),
    ]
    cases = _weight_cases(2, 3_003, fixed)
    compare = _weights_compare(_copying_inputs, "the copying head's input for")
    run_check("copying_head", student_fn, lab.copying_head, cases, compare=compare)


# ---------------------------------------------------------------------------------------------- the circuit
def induction_logits(student_fn: Callable[..., Any]) -> None:
    """Check ``induction_logits(tokens, strength) -> (4,)``, the logits at the last position, against the book's.

    Cases (12): the homework's example at strength 10 (it predicts b); a repeated token ``[a, b, a, b, a]``; two
    different successors ``[a, b, a, c, a]`` (half b, half c); a new last token ``[a, b, c, d]``; the shortest
    sequence ``[c, c]``; ids at strength 1 ``[3, 1, 3, 0, 3]``; then 6 random sequences of 2 to 5 tokens at
    random strengths in ``[0.5, 20]``. Compared entry by entry to ``rtol=1e-4, atol=1e-5``.

    Raises:
        CheckFailed: your function disagrees on a case, raises, or is not written yet.
    """
    cases = [
        Case("the homework's example ['a', 'b', 'c', 'd', 'a'] at strength 10", (list(HOMEWORK), 10.0)),
        Case("a repeated token ['a', 'b', 'a', 'b', 'a'] at strength 10", (list("ababa"), 10.0)),
        Case("two successors ['a', 'b', 'a', 'c', 'a'] at strength 10", (list("abaca"), 10.0)),
        Case("a new last token ['a', 'b', 'c', 'd'] at strength 10", (list("abcd"), 10.0)),
        Case("two tokens ['c', 'c'] at strength 10", (["c", "c"], 10.0)),
        Case("ids [3, 1, 3, 0, 3] at strength 1", ([3, 1, 3, 0, 3], 1.0)),
    ]
    g = generator(3_004)
    for k in range(N_RANDOM):
        tokens = _random_tokens(g, 2)
        s = _uniform(g, 0.5, 20.0)
        cases.append(Case(f"random {k + 1}: {len(tokens)} tokens at strength {s}", (tokens, s)))
    run_check("induction_logits", student_fn, lab.induction_logits, cases, rtol=RTOL, atol=ATOL)
