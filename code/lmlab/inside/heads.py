"""Which heads do what: attention-pattern detectors and composition scores (Elhage et al., 2021; Olsson et al., 2022).

Patterns are PyTorch-style ``(..., n, n)`` with ``A[..., i, j]`` the weight of query (destination) ``i`` on key
(source) ``j``. Weights are in the book's shapes: ``W_QK = W_Q^T W_K`` and ``W_OV = W_O W_V`` (``d_model x d_model``),
as :class:`lmlab.layers.Head` defines them.

The two detectors share one convention for the boundary: the previous-token score averages ``A[i, i - 1]`` over
every query that has a previous token (``i = 1 .. n - 1``, so position 1 attending to BOS counts), and the induction
score averages the induction stripe over every query of the second copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from lmlab.core.checks import check_float, check_int, check_module, check_tensor
from lmlab.core.runtime import generator as _generator
from lmlab.core.tasks import repeated_sequences

__all__ = [
    "INDUCTION_THRESHOLD",
    "CompositionBaseline",
    "HeadDetection",
    "composition_score",
    "composition_scores",
    "detect_heads",
    "induction_score",
    "k_composition",
    "previous_token_score",
    "q_composition",
    "random_composition_baseline",
    "v_composition",
]

#: A head whose mean attention on the relevant diagonal exceeds this is called a previous-token / induction head.
INDUCTION_THRESHOLD: float = 0.4


def previous_token_score(attn: Tensor, offset: int = 1) -> Tensor:
    """Mean attention on the diagonal ``j = i - offset``: how much each destination looks ``offset`` tokens back.

    Args:
        attn: attention patterns ``(..., n, n)`` (rows = destinations), e.g. ``(batch, H, n, n)``.
        offset: how far back, in [1, n - 1].

    Returns:
        ``attn.shape[:-2]``: the mean of ``attn[..., i, i - offset]`` over ``i = offset, ..., n - 1``; average
        over the batch dimension yourself. 1 for a perfect previous-token head, about ``1 / (i + 1)`` for uniform
        causal attention.
    """
    attn = check_tensor("attn", attn, (2, 3, 4, 5))
    n = attn.shape[-1]
    if attn.shape[-2] != n:
        raise ValueError(f"attn must be square in its last two dimensions, got {tuple(attn.shape)}")
    check_int("offset", offset, 1, n - 1)
    return attn.diagonal(offset=-offset, dim1=-2, dim2=-1).mean(-1)


def induction_score(attn: Tensor, period: int, prefix: int = 1) -> Tensor:
    """Mean attention on the induction stripe of a sequence repeated with period ``period``.

    In ``prefix`` tokens + ``r`` + ``r`` with ``len(r) = period``, destination ``i`` in the second copy
    (``i >= prefix + period``) holds the token seen at ``i - period``; an induction head attends to the token
    *after* that one, ``j = i - period + 1``: the diagonal at offset ``-(period - 1)``.

    Args:
        attn: ``(..., n, n)`` patterns (rows = destinations).
        period: the length of one copy, >= 2; prefix: tokens before copy one (1 for BOS, 0 without).

    Returns:
        ``attn.shape[:-2]``: the mean of ``attn[..., i, i - period + 1]`` over ``i = prefix + period, ..., n - 1``.
    """
    attn = check_tensor("attn", attn, (2, 3, 4, 5))
    n = attn.shape[-1]
    if attn.shape[-2] != n:
        raise ValueError(f"attn must be square in its last two dimensions, got {tuple(attn.shape)}")
    check_int("prefix", prefix, 0)
    check_int("period", period, 2, n - prefix - 1)
    diag = attn.diagonal(offset=-(period - 1), dim1=-2, dim2=-1)  # element k is attn[k + period - 1, k]
    start = prefix + period - (period - 1)  # destination i = prefix + period  ->  k = prefix + 1
    return diag[..., start:].mean(-1)


@dataclass
class HeadDetection:
    """Per-head scores of a model on repeated random tokens.

    Attributes:
        previous_token: ``(n_layers, n_heads)`` mean attention on the ``j = i - 1`` diagonal.
        induction: ``(n_layers, n_heads)`` mean attention on the induction stripe.
        threshold: the cut-off for calling a head of either type.
    """

    previous_token: Tensor
    induction: Tensor
    threshold: float

    @property
    def previous_token_heads(self) -> list[tuple[int, int]]:
        """(layer, head) pairs with a previous-token score above the threshold."""
        return [tuple(x) for x in (self.previous_token > self.threshold).nonzero().tolist()]

    @property
    def induction_heads(self) -> list[tuple[int, int]]:
        """(layer, head) pairs with an induction score above the threshold."""
        return [tuple(x) for x in (self.induction > self.threshold).nonzero().tolist()]

    def rows(self) -> list[dict[str, Any]]:
        """One dict per head: layer, head, both scores and the verdict (for a table)."""
        out = []
        n_layers, n_heads = self.previous_token.shape
        for layer in range(n_layers):
            for h in range(n_heads):
                p, i = float(self.previous_token[layer, h]), float(self.induction[layer, h])
                kind = "induction" if i > self.threshold else "previous-token" if p > self.threshold else "-"
                out.append({"layer": layer, "head": h, "previous_token": p, "induction": i, "type": kind})
        return out


@torch.no_grad()
def detect_heads(
    model: nn.Module,
    n_vocab: int | None = None,
    seq_len: int | None = None,
    *,
    batch: int = 32,
    seed: int = 12345,
    bos: int | None = 0,
    threshold: float = INDUCTION_THRESHOLD,
) -> HeadDetection:
    """Find previous-token and induction heads from attention patterns on ``[BOS] + r + r`` sequences.

    Args:
        model: has ``cfg.n_vocab``, ``cfg.n_ctx`` and ``run_with_cache(tokens) -> (logits, cache)`` with
            ``cache.attn[l]`` of shape ``(batch, H, n, n)`` (a ``TinyTransformer``).
        n_vocab: vocabulary to draw from (default ``model.cfg.n_vocab``).
        seq_len: copy length ``T`` (default: the largest with ``2 T + 1 <= n_ctx`` and ``T <= n_vocab - 1``).
        batch, seed: how many sequences, from which seed; bos: as in :func:`lmlab.tasks.repeated_sequences`.
        threshold: a score above it names the head; 0.4 by default (:data:`INDUCTION_THRESHOLD`).

    Returns:
        A :class:`HeadDetection` with the scores averaged over the batch.
    """
    check_module("model", model, attrs=("cfg", "run_with_cache"))
    cfg = model.cfg
    check_int("batch", batch, 1)
    check_int("seed", seed, 0)
    if bos is not None:
        check_int("bos", bos, 0, cfg.n_vocab - 1)
    n_vocab = cfg.n_vocab if n_vocab is None else check_int("n_vocab", n_vocab, 2, cfg.n_vocab)
    prefix = 0 if bos is None else 1
    if seq_len is None:
        seq_len = min((cfg.n_ctx - prefix) // 2, n_vocab - prefix)
    check_int("seq_len", seq_len, 2, (cfg.n_ctx - prefix) // 2)
    threshold = check_float("threshold", threshold, 0.0, high=1.0)
    dev = next(model.parameters()).device
    tokens = repeated_sequences(batch, seq_len, n_vocab, seed, bos=bos, device=dev)
    _, cache = model.run_with_cache(tokens)
    prev = torch.stack([previous_token_score(a).mean(0) for a in cache.attn]).cpu()
    ind = torch.stack([induction_score(a, seq_len, prefix).mean(0) for a in cache.attn]).cpu()
    return HeadDetection(previous_token=prev, induction=ind, threshold=threshold)


# ----------------------------------------------------------------------------------------------------------------
# composition scores
# ----------------------------------------------------------------------------------------------------------------


def composition_score(W_A: Tensor, W_B: Tensor) -> float:
    """``||W_A W_B||_F / (||W_A||_F ||W_B||_F)``, in [0, 1]: how much ``W_A`` reads what ``W_B`` writes."""
    return _composition("W_A", W_A, "W_B", W_B)


def _composition(name_a: str, W_A: Tensor, name_b: str, W_B: Tensor, *, transpose_a: bool = False) -> float:
    """:func:`composition_score` of ``W_A`` (transposed if asked) and ``W_B``, errors naming the caller's names."""
    check_tensor(name_a, W_A, 2)
    check_tensor(name_b, W_B, 2)
    if transpose_a:
        W_A = W_A.T
    if W_A.shape[1] != W_B.shape[0]:
        raise ValueError(f"{name_a} {tuple(W_A.shape)} and {name_b} {tuple(W_B.shape)} cannot be multiplied")
    A, B = W_A.double(), W_B.double()
    den = torch.linalg.matrix_norm(A) * torch.linalg.matrix_norm(B)
    if float(den) == 0.0:
        raise ValueError(f"{name_a} and {name_b} must both be nonzero")
    return float(torch.linalg.matrix_norm(A @ B) / den)


def k_composition(W_QK1: Tensor, W_OV0: Tensor) -> float:
    """K-composition of a later head's QK circuit with an earlier head's OV circuit (book convention).

    With columns as tokens, ``S_ij = X_i^T W_QK X_j`` and the earlier head adds ``W_OV0 X_j`` to the *key* side,
    giving ``X_i^T W_QK1 W_OV0 X_j``. So the score is ``||W_QK1 W_OV0||_F / (||W_QK1||_F ||W_OV0||_F)``, as in
    Elhage et al. (2021). (``W_QK1^T W_OV0`` measures Q-composition in this convention; in a row-per-token library
    where ``W_QK`` is the same but ``W_OV`` is stored transposed, the K-composition product reads
    ``W_OV0^rows W_QK1^T``.)

    Args:
        W_QK1: ``(d_model, d_model)``, layer-1 ``W_Q^T W_K``; W_OV0: ``(d_model, d_model)``, layer-0 ``W_O W_V``.
    """
    return _composition("W_QK1", W_QK1, "W_OV0", W_OV0)


def q_composition(W_QK1: Tensor, W_OV0: Tensor) -> float:
    """Q-composition ``||W_QK1^T W_OV0||_F / norms``: the earlier head's output read on the query side."""
    return _composition("W_QK1", W_QK1, "W_OV0", W_OV0, transpose_a=True)


def v_composition(W_OV1: Tensor, W_OV0: Tensor) -> float:
    """V-composition ``||W_OV1 W_OV0||_F / norms``: the later head moves what the earlier one wrote."""
    return _composition("W_OV1", W_OV1, "W_OV0", W_OV0)


def composition_scores(model: nn.Module, layer: int = 1, earlier: int = 0) -> dict[str, Tensor]:
    """Q-, K- and V-composition of every head of ``layer`` with every head of ``earlier``.

    Args:
        model: a ``TinyTransformer`` (``model.head(l, h)`` gives each head's ``W_QK`` and ``W_OV``).

    Returns:
        ``{"Q": ..., "K": ..., "V": ...}``, each ``(n_heads of layer, n_heads of earlier)``.
    """
    check_module("model", model, attrs=("cfg", "head"))
    check_int("layer", layer, 0, model.cfg.n_layers - 1)
    check_int("earlier", earlier, 0, model.cfg.n_layers - 1)
    H = model.cfg.n_heads
    out = {k: torch.zeros(H, H) for k in "QKV"}
    for h1 in range(H):
        late = model.head(layer, h1)
        qk, ov1 = late.W_QK, late.W_OV
        for h0 in range(H):
            ov0 = model.head(earlier, h0).W_OV
            out["Q"][h1, h0] = q_composition(qk, ov0)
            out["K"][h1, h0] = k_composition(qk, ov0)
            out["V"][h1, h0] = v_composition(ov1, ov0)
    return out


@dataclass
class CompositionBaseline:
    """Composition scores of random heads: ``mean`` and ``std`` over ``n_samples`` draws, and all ``samples``."""

    mean: float
    std: float
    samples: Tensor


def random_composition_baseline(
    d_model: int, d_head: int, *, n_samples: int = 200, seed: int = 0
) -> CompositionBaseline:
    """K-composition between independent random heads of the same shapes: what "no composition" looks like.

    Draws ``W_Q, W_K, W_V`` (``d_head x d_model``) and ``W_O`` (``d_model x d_head``) with i.i.d. Gaussian entries
    for two heads and scores ``k_composition(W_Q1^T W_K1, W_O0 W_V0)``. The scale of the entries cancels in the
    score, only the shapes matter.
    """
    check_int("d_model", d_model, 1)
    check_int("d_head", d_head, 1)
    check_int("n_samples", n_samples, 2)
    g = _generator(check_int("seed", seed, 0))
    vals = []
    for _ in range(n_samples):
        Wq, Wk, Wv = (torch.randn(d_head, d_model, generator=g, dtype=torch.float64) for _ in range(3))
        Wo = torch.randn(d_model, d_head, generator=g, dtype=torch.float64)
        vals.append(_composition("W_QK1", Wq.T @ Wk, "W_OV0", Wo @ Wv))
    s = torch.tensor(vals)
    return CompositionBaseline(mean=float(s.mean()), std=float(s.std()), samples=s)
