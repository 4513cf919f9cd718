"""The homework's interpretability lab (Problem 3): one attention head, then an induction copy head built by hand.

The lab's setting, in the book's notation (columns are tokens, see ``book/notation.md``):

* **One head** with pre-multiplied circuits ``W_QK`` (``d x d``) and ``W_OV`` (``d_out x d``): scores
  ``S_ij = x_i^T W_QK x_j`` *without* a ``1/sqrt(d)`` factor, the causal mask (key ``j`` is visible to query
  ``i`` when ``j <= i``), a softmax along each row, and the output ``W_OV X A^T`` (column ``i`` is
  ``sum_j A_ij W_OV x_j``). :func:`attention_head`.
* **The embedding** of a sequence over the vocabulary ``VOCAB = (a, b, c, d)`` of at most ``N_CTX = 5`` tokens is
  two-hot: a column of ``D_EMBED = 9`` rows, the token's one-hot in rows 0-3 and the position's one-hot in rows
  4-8. :func:`embed`.
* **The previous-token head** (:func:`previous_token_head`): ``W_QK`` (``9 x 9``) gives query position ``i`` the
  score ``strength`` on key position ``i - 1``; ``W_OV`` (``4 x 9``) copies the key's token one-hot.
* **The copying head's input** (:func:`induction_input`): the token part of the embedding stacked on the first
  head's output, ``D_INDUCTION = 8`` rows (current token in rows 0-3, previous token in rows 4-7), with
  position 0 dropped.
* **The copying head** (:func:`copying_head`): ``W_QK`` (``8 x 8``) gives query ``i`` the score ``strength`` on
  every key ``j`` whose *previous* token equals ``i``'s *current* token; ``W_OV`` (``4 x 8``) copies the key's
  current token. Its output at the last position is the four logits (:func:`induction_logits`), read as they
  are, not added to any residual stream.

The homework leaves two choices open; this module takes the readings that make the circuit work:

1. "The first head's output plus the token part" is a *stack* (concatenation of rows), not an entrywise sum: both
   are 4-dimensional one-hots, and their sum would mix the current and the previous token beyond recovery.
   Stacking is the sum of the two parts written into orthogonal coordinates of an 8-dimensional stream (the
   current token first, as in the book's residual layout of :mod:`lmlab.induction`).
2. "Position 0 dropped" drops the first *column* (token position 0): the first token has no previous token, so
   under the causal mask the previous-token head can only attend to the token itself and writes that token's own
   one-hot, which would be a false match for the copying head (``[a, b, c, d, a]`` would copy ``a`` as well as
   ``b``). The copying head therefore reads ``n - 1`` columns, positions ``1 .. n-1``, and a sequence needs at
   least two tokens to have logits.

With these, the logits at the last position approach the distribution of the tokens that followed the earlier
occurrences of the last token as ``strength`` grows (one-hot when they all agree), and the uniform average of the
tokens at positions ``1 .. n-1`` when the last token is new. The example ``[a, b, c, d, a]`` at strength 10
predicts ``b``.

The head is the package's one attention in the book's notation, :func:`lmlab.circuits.circuit_attention`, with the
lab's conventions (scale 1, causal, one unbatched sequence). The lab's checks live in
:mod:`lmlab.check.interpretability`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lmlab.core.checks import check_float, check_tensor
from lmlab.inside.circuits import circuit_attention

__all__ = [
    "D_EMBED",
    "D_INDUCTION",
    "N_CTX",
    "N_VOCAB",
    "VOCAB",
    "attention_head",
    "copying_head",
    "embed",
    "induction_input",
    "induction_logits",
    "predict",
    "previous_token_head",
    "token_ids",
]

VOCAB: tuple[str, ...] = ("a", "b", "c", "d")
N_VOCAB = len(VOCAB)  # 4
N_CTX = 5  # the longest sequence
D_EMBED = N_VOCAB + N_CTX  # 9: token one-hot, then position one-hot
D_INDUCTION = 2 * N_VOCAB  # 8: current token, then previous token
TOK = slice(0, N_VOCAB)  # rows of the token one-hot in an embedding
POS = slice(N_VOCAB, D_EMBED)  # rows of the position one-hot
PREV = slice(N_VOCAB, D_INDUCTION)  # rows of the previous token in the copying head's input
DTYPE = torch.float32


# ------------------------------------------------------------------------------------------------ one head
def attention_head(X: Tensor, W_QK: Tensor, W_OV: Tensor) -> tuple[Tensor, Tensor]:
    """One causal attention head with pre-multiplied circuits, in the book's notation (scale 1).

    ``S = X^T W_QK X`` (``S_ij = x_i^T W_QK x_j``, no ``1/sqrt(d)`` scaling); keys ``j > i`` are masked;
    ``A = softmax(S)`` along each row (row ``i``: destination ``i``'s weights over sources, summing to 1);
    ``out = W_OV X A^T`` (column ``i`` is ``sum_j A_ij W_OV x_j``).

    Args:
        X: ``(d, n)``, columns are tokens, floating point, ``n >= 1``.
        W_QK: ``(d, d)``, the QK circuit (query side on the left).
        W_OV: ``(d_out, d)``, the OV circuit; ``d_out`` may differ from ``d``.

    Returns:
        ``(out, A)``: ``out`` of shape ``(d_out, n)``, ``A`` of shape ``(n, n)`` (lower triangular, rows sum to 1).

    Raises:
        TypeError: an argument is not a floating-point tensor, or their dtypes or devices differ.
        ValueError: the shapes do not fit together.
    """
    X = check_tensor("X", X, 2, floating=True)
    W_QK = check_tensor("W_QK", W_QK, 2, floating=True)
    W_OV = check_tensor("W_OV", W_OV, 2, floating=True)
    d, n = X.shape
    if n < 1:
        raise ValueError(f"X must have at least one column (token), got shape {tuple(X.shape)}")
    if tuple(W_QK.shape) != (d, d):
        raise ValueError(f"W_QK must be (d, d) = ({d}, {d}) for X of shape {tuple(X.shape)}, got {tuple(W_QK.shape)}")
    if W_OV.shape[1] != d:
        raise ValueError(
            f"W_OV must be (d_out, d) with d = {d} for X of shape {tuple(X.shape)}, got {tuple(W_OV.shape)}"
        )
    for name, W in (("W_QK", W_QK), ("W_OV", W_OV)):
        if W.dtype != X.dtype or W.device != X.device:
            raise TypeError(
                f"{name} ({W.dtype}, {W.device}) must have the dtype and device of X ({X.dtype}, {X.device})"
            )
    return circuit_attention(X, W_QK, W_OV, scale=1.0, causal=True)  # the lab's convention: no 1/sqrt(d)


# ------------------------------------------------------------------------------------------------ the embedding
def token_ids(tokens: Any) -> list[int]:
    """The ids (``a`` = 0, ..., ``d`` = 3) of a sequence of letters of ``VOCAB`` or of ints in ``[0, 4)``.

    ``tokens`` may be a list or tuple (letters and ints may mix), a string such as ``"abcda"``, or a 1-D integer
    tensor or array.

    Raises:
        TypeError: ``tokens`` is not a sequence, or an element is neither a letter nor an int.
        ValueError: an unknown letter or an id outside ``[0, 4)``; an empty sequence or one longer than ``N_CTX``.
    """
    if isinstance(tokens, (Tensor, np.ndarray)):
        if tokens.ndim != 1 or not _is_integer_array(tokens):
            raise TypeError(
                f"tokens as a tensor must be 1-D with integer ids, got {tokens.dtype} {tuple(tokens.shape)}"
            )
        tokens = [int(t) for t in tokens.tolist()]
    if not isinstance(tokens, (Sequence, str)) or isinstance(tokens, bytes):
        raise TypeError(f"tokens must be a list of letters of {VOCAB} or of ints in [0, {N_VOCAB}), got {tokens!r}")
    if not 1 <= len(tokens) <= N_CTX:
        raise ValueError(f"tokens must hold 1 to {N_CTX} tokens, got {len(tokens)}: {list(tokens)!r}")
    ids = []
    for k, t in enumerate(tokens):
        if isinstance(t, str):
            if t not in VOCAB:
                raise ValueError(f"tokens[{k}] = {t!r} is not in the vocabulary {VOCAB}")
            ids.append(VOCAB.index(t))
        elif isinstance(t, (int, np.integer)) and not isinstance(t, bool):
            if not 0 <= t < N_VOCAB:
                raise ValueError(f"tokens[{k}] = {t} is not a token id in [0, {N_VOCAB})")
            ids.append(int(t))
        else:
            raise TypeError(f"tokens[{k}] must be a letter of {VOCAB} or an int in [0, {N_VOCAB}), got {t!r}")
    return ids


def _is_integer_array(x: Tensor | np.ndarray) -> bool:
    if isinstance(x, Tensor):
        return not (x.is_floating_point() or x.is_complex() or x.dtype == torch.bool)
    return np.issubdtype(x.dtype, np.integer)


def embed(tokens: Any) -> Tensor:
    """The two-hot embedding ``X`` of a sequence: column ``t`` is ``e_token(t)`` (rows 0-3) plus ``e_pos(t)`` (4-8).

    Args:
        tokens: 1 to ``N_CTX`` = 5 tokens, letters of ``VOCAB`` (``["a", "b"]`` or ``"ab"``) or ids in ``[0, 4)``.

    Returns:
        ``(9, n)`` float32: ``X[v, t] = 1`` when token ``t`` is ``VOCAB[v]``, ``X[4 + t, t] = 1``, zeros elsewhere.

    Raises:
        TypeError / ValueError: as :func:`token_ids`.
    """
    ids = token_ids(tokens)
    n = len(ids)
    X = torch.zeros(D_EMBED, n, dtype=DTYPE)
    cols = torch.arange(n)
    X[torch.tensor(ids), cols] = 1.0
    X[POS.start + cols, cols] = 1.0
    return X


# ------------------------------------------------------------------------------------------------ the two heads
def _strength(strength: Any) -> float:
    return check_float("strength", strength, 0.0, strict=True)


def previous_token_head(strength: float) -> tuple[Tensor, Tensor]:
    """The previous-token head: each position ``i >= 1`` attends to position ``i - 1`` and copies its token.

    ``W_QK[4 + i, 4 + i - 1] = strength`` for ``i = 1 .. 4`` (query position ``i``, key position ``i - 1``), so
    ``S_ij = strength * [j = i - 1]``; ``W_OV[v, v] = 1`` for the four token rows, so the head writes the attended
    token's one-hot. Position 0 can only see itself: its output is its own token (dropped by
    :func:`induction_input`). At strength ``s`` position ``i`` gives its previous token the weight
    ``e^s / (e^s + i)``.

    Args:
        strength: the QK entries (the inverse softmax temperature), a finite number > 0.

    Returns:
        ``(W_QK, W_OV)``, float32, of shapes ``(9, 9)`` and ``(4, 9)``; every other entry is 0.

    Raises:
        TypeError / ValueError: ``strength`` is not a positive finite number.
    """
    s = _strength(strength)
    W_QK = torch.zeros(D_EMBED, D_EMBED, dtype=DTYPE)
    i = torch.arange(1, N_CTX)
    W_QK[POS.start + i, POS.start + i - 1] = s
    W_OV = torch.zeros(N_VOCAB, D_EMBED, dtype=DTYPE)
    W_OV[:, TOK] = torch.eye(N_VOCAB, dtype=DTYPE)
    return W_QK, W_OV


def copying_head(strength: float) -> tuple[Tensor, Tensor]:
    """The copying (induction) head, reading the 8-row input of :func:`induction_input`.

    ``W_QK[v, 4 + v] = strength`` (query's current token ``v``, key's previous token ``v``), so
    ``S_ij = strength * [cur_i = prev_j]``: position ``i`` looks for positions whose previous token is its own
    token (K-composition with the previous-token head). ``W_OV[v, v] = 1`` copies the attended position's
    *current* token: the token that followed the earlier occurrence.

    Args:
        strength: the QK entries, a finite number > 0.

    Returns:
        ``(W_QK, W_OV)``, float32, of shapes ``(8, 8)`` and ``(4, 8)``; every other entry is 0.

    Raises:
        TypeError / ValueError: ``strength`` is not a positive finite number.
    """
    s = _strength(strength)
    v = torch.arange(N_VOCAB)
    W_QK = torch.zeros(D_INDUCTION, D_INDUCTION, dtype=DTYPE)
    W_QK[TOK.start + v, PREV.start + v] = s
    W_OV = torch.zeros(N_VOCAB, D_INDUCTION, dtype=DTYPE)
    W_OV[v, TOK.start + v] = 1.0
    return W_QK, W_OV


# ------------------------------------------------------------------------------------------------ the circuit
def induction_input(X: Tensor, prev_out: Tensor) -> Tensor:
    """What the copying head reads: the token part of ``X`` stacked on the previous-token head's output, column 0 cut.

    ``Y = [X[0:4, 1:]; prev_out[:, 1:]]``: column ``t - 1`` of ``Y`` is position ``t``'s current token (rows 0-3)
    and its previous token (rows 4-7), for ``t = 1 .. n-1``. Position 0 is dropped because it has no previous
    token (the head's output there is the token itself). Stacking is the module's reading of "plus" (see the
    module docstring).

    Args:
        X: ``(9, n)``, the embedding (:func:`embed`), ``n >= 2``.
        prev_out: ``(4, n)``, the previous-token head's output on ``X``.

    Returns:
        ``(8, n - 1)``.

    Raises:
        TypeError: not floating-point tensors of one dtype.
        ValueError: the shapes do not fit, or ``n < 2``.
    """
    X = check_tensor("X", X, 2, floating=True)
    prev_out = check_tensor("prev_out", prev_out, 2, floating=True)
    if X.shape[0] != D_EMBED or X.shape[1] < 2:
        raise ValueError(f"X must be ({D_EMBED}, n) with n >= 2 (position 0 is dropped), got {tuple(X.shape)}")
    if tuple(prev_out.shape) != (N_VOCAB, X.shape[1]):
        raise ValueError(f"prev_out must be ({N_VOCAB}, n) = ({N_VOCAB}, {X.shape[1]}), got {tuple(prev_out.shape)}")
    if prev_out.dtype != X.dtype:
        raise TypeError(f"prev_out ({prev_out.dtype}) must have the dtype of X ({X.dtype})")
    return torch.cat([X[TOK, 1:], prev_out[:, 1:]], dim=0)


def induction_logits(tokens: Any, strength: float) -> Tensor:
    """The induction circuit's four logits at the last position: embed, previous-token head, copying head.

    ``X = embed(tokens)``; ``P = previous-token head(X)`` (``4 x n``); ``Y = induction_input(X, P)``
    (``8 x (n-1)``); the copying head's output on ``Y`` at its last column, not added to any residual stream.

    Args:
        tokens: 2 to 5 tokens (letters of ``VOCAB`` or ids); one token has no previous token to match.
        strength: the QK entries of both heads, > 0.

    Returns:
        ``(4,)`` float32, one logit per letter of ``VOCAB``; non-negative and summing to 1 (a mixture of
        one-hots).

    Raises:
        TypeError / ValueError: bad ``tokens`` (as :func:`token_ids`, or a single token) or ``strength``.
    """
    s = _strength(strength)
    X = embed(tokens)
    if X.shape[1] < 2:
        raise ValueError(f"tokens must hold at least 2 tokens (position 0 has no previous token), got {tokens!r}")
    prev_out, _ = attention_head(X, *previous_token_head(s))
    out, _ = attention_head(induction_input(X, prev_out), *copying_head(s))
    return out[:, -1]


def predict(tokens: Any, strength: float = 10.0) -> str:
    """The letter with the largest induction logit (ties: the first letter of ``VOCAB``).

    ``predict("abcda", 10.0)`` is ``"b"``. Arguments as :func:`induction_logits`.
    """
    return VOCAB[int(torch.argmax(induction_logits(tokens, strength)))]
