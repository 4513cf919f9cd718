"""Induction heads: one attention head from its equations, a hand-built induction circuit, and head detectors.

Conventions. Weights are in the book's shapes (columns are tokens): ``W_Q, W_K, W_V`` are
``d_head x d_model``, ``W_O`` is ``d_model x d_head``, ``W_E`` is ``d_model x n_vocab``, ``W_pos`` is
``d_model x n_ctx`` and ``W_U`` is ``n_vocab x d_model``. :func:`single_head` takes the residual stream in the
book's layout ``X`` (``d_model x n``, optionally with a leading batch dimension). Token ids, attention patterns and
logits are PyTorch-style: ``tokens`` is ``(batch, n)``, an attention pattern is ``(..., n, n)`` with
``A[..., i, j]`` the weight of destination (query) ``i`` on source (key) ``j``, logits are ``(batch, n, n_vocab)``.

The hand-built model (:func:`build_induction_model`) uses token id ``bos`` (default 0) as a beginning-of-sequence
token that acts as an *attention sink*: both heads give it a fixed, intermediate score, so a query with nothing
better to attend to looks at it, and its value writes nothing. The residual stream is split into four blocks of
coordinates (:class:`ResidualLayout`)::

    [ token one-hot (n_vocab) | position one-hot (n_ctx) | previous token (n_vocab) | output (n_vocab) | unused ]

Layer 0 is a previous-token head: its QK circuit maps position ``p`` to ``p - offset``; its OV circuit copies the
token block of the attended position into the previous-token block. Layer 1 is the induction (copying) head: its
QK circuit compares the current token block (query side) with the previous-token block (key side), which is
K-composition with layer 0; its OV circuit copies the attended token into the output block, the only block
``W_U`` reads.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

if TYPE_CHECKING:  # pragma: no cover
    from lmlab.model import TinyTransformer

__all__ = [
    "INDUCTION_THRESHOLD",
    "CompositionBaseline",
    "HeadDetection",
    "HeadWeights",
    "InductionEval",
    "InductionWeights",
    "ResidualLayout",
    "as_multihead_attention",
    "build_induction_model",
    "causal_mask",
    "composition_score",
    "composition_scores",
    "copying_head",
    "detect_heads",
    "embedding_weights",
    "evaluate_induction",
    "induction_probe",
    "induction_score",
    "induction_weights",
    "k_composition",
    "markdown_table",
    "per_position_loss",
    "periodic_batches",
    "periodic_tokens",
    "previous_token_head",
    "previous_token_score",
    "q_composition",
    "qk_gradient_norms",
    "broken_variants",
    "scale_sweep",
    "random_composition_baseline",
    "repeated_tokens",
    "residual_layout",
    "run_weights",
    "single_head",
    "v_composition",
]

#: A head whose mean attention on the relevant diagonal exceeds this is called a previous-token / induction head.
INDUCTION_THRESHOLD: float = 0.4


# ----------------------------------------------------------------------------------------------------------------
# small validation helpers
# ----------------------------------------------------------------------------------------------------------------


def _check_int(name: str, value: Any, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < low or (high is not None and value > high):
        rng = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be {rng}, got {value}")
    return value


def _check_float(name: str, value: Any, low: float, *, strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a float, got {type(value).__name__}")
    v = float(value)
    if not math.isfinite(v) or (v <= low if strict else v < low):
        raise ValueError(f"{name} must be a finite number {'>' if strict else '>='} {low}, got {value}")
    return v


def _check_tensor(name: str, value: Any, ndim: int | tuple[int, ...]) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    dims = (ndim,) if isinstance(ndim, int) else ndim
    if value.ndim not in dims:
        raise ValueError(f"{name} must have {' or '.join(map(str, dims))} dimensions, got shape {tuple(value.shape)}")
    return value


# ----------------------------------------------------------------------------------------------------------------
# 1. one attention head, written from the equations
# ----------------------------------------------------------------------------------------------------------------


def causal_mask(n: int, device: torch.device | str | None = None) -> Tensor:
    """Boolean ``(n, n)`` mask, ``True`` where attention is forbidden: source ``j`` after destination ``i`` (j > i)."""
    _check_int("n", n, 1)
    return torch.ones(n, n, dtype=torch.bool, device=device).triu(1)


def single_head(
    X: Tensor,
    W_Q: Tensor,
    W_K: Tensor,
    W_V: Tensor,
    W_O: Tensor,
    *,
    scale: float | None = None,
    causal: bool = True,
    return_pattern: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """One attention head in the book's notation, step by step.

    With ``Q = W_Q X``, ``K = W_K X``, ``V = W_V X`` (each ``d_head x n``):

    1. scores ``S = scale * Q^T K`` (``n x n``), so ``S_ij = scale * Q_i . K_j``;
    2. causal mask: ``S_ij = -inf`` for ``j > i`` (a token cannot read the future);
    3. pattern ``A = softmax(S)`` along each row (each destination's weights over sources sum to 1);
    4. weighted values ``V A^T`` (column ``i`` is ``sum_j A_ij V_j``);
    5. output projection ``h(X) = W_O V A^T = W_OV X A^T`` (``d_model x n``).

    Args:
        X: residual stream, book layout ``(d_model, n)`` (columns are tokens), or ``(batch, d_model, n)``.
        W_Q, W_K, W_V: ``(d_head, d_model)``.
        W_O: ``(d_model, d_head)``.
        scale: multiplies the scores; ``None`` means ``1 / sqrt(d_head)``.
        causal: apply the causal mask.
        return_pattern: also return ``A``.

    Returns:
        ``h(X)`` with the shape of ``X``; with ``return_pattern`` the pair ``(h(X), A)``, ``A`` of shape
        ``(n, n)`` (or ``(batch, n, n)``), rows = destinations.

    Raises:
        TypeError / ValueError: an argument is not a tensor, or the shapes do not fit together.
    """
    X = _check_tensor("X", X, (2, 3))
    for name, W in (("W_Q", W_Q), ("W_K", W_K), ("W_V", W_V), ("W_O", W_O)):
        _check_tensor(name, W, 2)
    d_model = X.shape[-2]
    d_head = W_Q.shape[0]
    for name, W in (("W_Q", W_Q), ("W_K", W_K), ("W_V", W_V)):
        if tuple(W.shape) != (d_head, d_model):
            raise ValueError(f"{name} must be (d_head, d_model) = ({d_head}, {d_model}), got {tuple(W.shape)}")
    if tuple(W_O.shape) != (d_model, d_head):
        raise ValueError(f"W_O must be (d_model, d_head) = ({d_model}, {d_head}), got {tuple(W_O.shape)}")
    s = 1.0 / math.sqrt(d_head) if scale is None else _check_float("scale", scale, 0.0)

    Q = W_Q @ X  # (..., d_head, n)
    K = W_K @ X
    V = W_V @ X
    S = s * (Q.transpose(-1, -2) @ K)  # (..., n, n): S[i, j] = Q_i . K_j
    if causal:
        S = S.masked_fill(causal_mask(X.shape[-1], X.device), float("-inf"))
    A = torch.softmax(S, dim=-1)  # rows sum to one
    out = W_O @ (V @ A.transpose(-1, -2))  # (..., d_model, n)
    return (out, A) if return_pattern else out


def as_multihead_attention(
    W_Q: Tensor, W_K: Tensor, W_V: Tensor, W_O: Tensor, *, scale: float | None = None
) -> nn.MultiheadAttention:
    """A one-head ``torch.nn.MultiheadAttention`` (no biases, ``batch_first=True``) computing the same head.

    ``nn.MultiheadAttention`` with one head has ``head_dim = d_model`` and scales scores by ``1 / sqrt(d_model)``.
    A head with ``d_head <= d_model`` fits by padding ``W_Q, W_K, W_V`` with zero rows and ``W_O`` with zero columns
    (the extra coordinates add nothing to ``Q^T K`` or to the output) and folding ``scale * sqrt(d_model)`` into
    ``W_Q``. Then ``in_proj_weight = [W_Q; W_K; W_V]`` (stacked rows, ``3 d_model x d_model``) and
    ``out_proj.weight = W_O``.

    Args:
        W_Q, W_K, W_V: ``(d_head, d_model)``; W_O: ``(d_model, d_head)``; scale as in :func:`single_head`.

    Returns:
        The module, on the weights' device and dtype. Call it on row-per-token tensors ``x`` of shape
        ``(batch, n, d_model)`` with ``attn_mask=causal_mask(n)``.

    Raises:
        ValueError: ``d_head > d_model`` or inconsistent shapes.
    """
    for name, W in (("W_Q", W_Q), ("W_K", W_K), ("W_V", W_V), ("W_O", W_O)):
        _check_tensor(name, W, 2)
    d_head, d_model = W_Q.shape
    if tuple(W_K.shape) != (d_head, d_model) or tuple(W_V.shape) != (d_head, d_model):
        raise ValueError(f"W_K and W_V must have W_Q's shape {(d_head, d_model)}")
    if tuple(W_O.shape) != (d_model, d_head):
        raise ValueError(f"W_O must be (d_model, d_head) = ({d_model}, {d_head}), got {tuple(W_O.shape)}")
    if d_head > d_model:
        raise ValueError(f"d_head must be <= d_model for one-head nn.MultiheadAttention, got {d_head} > {d_model}")
    s = 1.0 / math.sqrt(d_head) if scale is None else _check_float("scale", scale, 0.0)
    kw = {"device": W_Q.device, "dtype": W_Q.dtype}
    pad_rows = torch.zeros(d_model - d_head, d_model, **kw)
    in_proj = torch.cat(
        [
            torch.cat([W_Q * (s * math.sqrt(d_model)), pad_rows]),
            torch.cat([W_K, pad_rows]),
            torch.cat([W_V, pad_rows]),
        ]
    )
    out_proj = torch.cat([W_O, torch.zeros(d_model, d_model - d_head, **kw)], dim=1)
    mha = nn.MultiheadAttention(d_model, num_heads=1, bias=False, batch_first=True, **kw)
    with torch.no_grad():
        mha.in_proj_weight.copy_(in_proj)
        mha.out_proj.weight.copy_(out_proj)
    return mha.eval()


# ----------------------------------------------------------------------------------------------------------------
# 2-4. the hand-built induction circuit, as plain tensors
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResidualLayout:
    """Where each kind of information lives in the hand-built model's residual stream (coordinate ranges).

    Attributes:
        n_vocab, n_ctx, d_model: sizes; ``d_model >= 3 n_vocab + n_ctx``.
        tok: the current token's one-hot (written by ``W_E``).
        pos: the position's one-hot (written by ``W_pos``).
        prev: the previous token's one-hot (written by the layer-0 head).
        out: the predicted next token (written by the layer-1 head; the only block ``W_U`` reads).
    """

    n_vocab: int
    n_ctx: int
    d_model: int
    tok: slice
    pos: slice
    prev: slice
    out: slice

    def blocks(self) -> dict[str, slice]:
        """The four blocks by name, in order."""
        return {"token": self.tok, "position": self.pos, "previous token": self.prev, "output": self.out}


def residual_layout(n_vocab: int, n_ctx: int, d_model: int | None = None) -> ResidualLayout:
    """Lay out the hand-built residual stream: token | position | previous token | output (| unused).

    Args:
        n_vocab: vocabulary size including the BOS token, >= 2.
        n_ctx: positional table size (longest sequence), >= 2.
        d_model: residual width; ``None`` uses the minimum ``3 n_vocab + n_ctx``.

    Raises:
        ValueError: ``d_model`` is too small to hold the four blocks (the vocabulary is too large for it).
    """
    _check_int("n_vocab", n_vocab, 2)
    _check_int("n_ctx", n_ctx, 2)
    need = 3 * n_vocab + n_ctx
    if d_model is None:
        d_model = need
    _check_int("d_model", d_model, 1)
    if d_model < need:
        raise ValueError(
            f"n_vocab={n_vocab} is too large for d_model={d_model}: the token, previous-token and output "
            f"subspaces plus the positional one need d_model >= 3*n_vocab + n_ctx = {need}"
        )
    t, p = n_vocab, n_ctx
    return ResidualLayout(
        n_vocab=n_vocab,
        n_ctx=n_ctx,
        d_model=d_model,
        tok=slice(0, t),
        pos=slice(t, t + p),
        prev=slice(t + p, 2 * t + p),
        out=slice(2 * t + p, 3 * t + p),
    )


@dataclass
class HeadWeights:
    """One head's weights in the book's shapes: W_Q, W_K, W_V ``(d_head, d_model)``, W_O ``(d_model, d_head)``."""

    W_Q: Tensor
    W_K: Tensor
    W_V: Tensor
    W_O: Tensor

    @property
    def W_QK(self) -> Tensor:
        """``W_Q^T W_K`` (``d_model x d_model``): ``S_ij = X_i^T W_QK X_j``."""
        return self.W_Q.T @ self.W_K

    @property
    def W_OV(self) -> Tensor:
        """``W_O W_V`` (``d_model x d_model``): what the head writes per unit of attention."""
        return self.W_O @ self.W_V

    def as_dict(self) -> dict[str, Tensor]:
        """Keyword arguments for ``TinyTransformer.set_head``."""
        return {"W_Q": self.W_Q, "W_K": self.W_K, "W_V": self.W_V, "W_O": self.W_O}


def _head_dim(layout: ResidualLayout) -> int:
    # previous-token QK needs n_ctx + 1 coordinates (positions + sink), the copy head n_vocab + 1; OV needs n_vocab.
    return max(layout.n_ctx, layout.n_vocab) + 1


def _check_layout_bos(layout: ResidualLayout, bos: int) -> None:
    if not isinstance(layout, ResidualLayout):
        raise TypeError(f"layout must be a ResidualLayout, got {type(layout).__name__}")
    _check_int("bos", bos, 0, layout.n_vocab - 1)


def _copy_matrix(rows: slice, cols: slice, n: int, skip: int, shape: tuple[int, int], **kw: Any) -> Tensor:
    """Matrix of ``shape`` with ones at (rows.start + v, cols.start + v) for v in range(n), v != skip."""
    M = torch.zeros(shape, **kw)
    v = torch.tensor([i for i in range(n) if i != skip], dtype=torch.long, device=M.device)
    M[rows.start + v, cols.start + v] = 1.0
    return M


def previous_token_head(
    layout: ResidualLayout,
    *,
    scale: float = 20.0,
    sink: float = 0.5,
    offset: int = 1,
    bos: int = 0,
    d_head: int | None = None,
    device: torch.device | str | None = None,
) -> HeadWeights:
    """Hand-set weights of a head that attends ``offset`` tokens back and writes that token into ``layout.prev``.

    QK circuit: ``W_Q`` copies the position one-hot of the query into head coordinate ``p``, ``W_K`` copies
    the key's position ``j`` into coordinate ``j + offset``, so ``S_pj = scale * [j = p - offset]``. Head
    coordinate ``d_head - 1`` is the sink: every query carries a constant 1 there (the sum of its token one-hot),
    and the BOS token's key carries ``sink``, so a position with no partner (``p < offset``) attends to BOS.
    OV circuit: ``W_V`` reads the token one-hot (every token but BOS), ``W_O`` writes it into the previous-token
    block. Hence ``W_OV = sum_{v != bos} e_prev(v) e_tok(v)^T``.

    Args:
        layout: from :func:`residual_layout`.
        scale: the QK gain (inverse softmax temperature), > 0.
        sink: BOS's score as a fraction of a match, in [0, 1).
        offset: how many tokens back to look, in [1, n_ctx - 1].
        bos: token id of the sink token.
        d_head: head width, >= max(n_ctx, n_vocab) + 1; ``None`` uses that minimum.

    Returns:
        :class:`HeadWeights` in the book's shapes.
    """
    _check_layout_bos(layout, bos)
    scale = _check_float("scale", scale, 0.0, strict=True)
    sink = _check_float("sink", sink, 0.0)
    if sink >= 1.0:
        raise ValueError(f"sink must be in [0, 1) (a fraction of a match score), got {sink}")
    _check_int("offset", offset, 1, layout.n_ctx - 1)
    need = _head_dim(layout)
    d_head = need if d_head is None else _check_int("d_head", d_head, need)
    L, kw = layout, {"device": device, "dtype": torch.float32}
    W_Q = torch.zeros(d_head, L.d_model, **kw)
    W_K = torch.zeros(d_head, L.d_model, **kw)
    p = torch.arange(L.n_ctx, device=W_Q.device)
    W_Q[p, L.pos.start + p] = scale  # query at position p -> head coordinate p
    j = torch.arange(L.n_ctx - offset, device=W_Q.device)
    W_K[j + offset, L.pos.start + j] = 1.0  # key at position j -> head coordinate j + offset
    W_Q[d_head - 1, L.tok] = scale  # constant 1 (every position holds exactly one token)
    W_K[d_head - 1, L.tok.start + bos] = sink  # ... matched only by the BOS key
    hd = slice(0, L.n_vocab)
    W_V = _copy_matrix(hd, L.tok, L.n_vocab, bos, (d_head, L.d_model), **kw)
    W_O = _copy_matrix(L.prev, hd, L.n_vocab, bos, (L.d_model, d_head), **kw)
    return HeadWeights(W_Q, W_K, W_V, W_O)


def copying_head(
    layout: ResidualLayout,
    *,
    scale: float = 20.0,
    sink: float = 0.5,
    bos: int = 0,
    d_head: int | None = None,
    device: torch.device | str | None = None,
) -> HeadWeights:
    """Hand-set weights of the induction (copying) head that reads the previous-token block (K-composition).

    QK circuit: ``W_Q`` reads the current token one-hot, ``W_K`` reads the previous-token block, so
    ``S_ij = scale * <tok_i, prev_j>``: destination ``i`` looks for sources ``j`` whose *previous* token equals
    its own token. The BOS key scores ``scale * sink`` (sink coordinate as in :func:`previous_token_head`), so a
    token seen for the first time attends to BOS. OV circuit: copy the source's token one-hot (BOS excluded)
    into the output block, which ``W_U`` reads: ``W_OV = sum_{v != bos} e_out(v) e_tok(v)^T``.

    Args: as :func:`previous_token_head` (``sink`` in [0, 1)).

    Returns:
        :class:`HeadWeights` in the book's shapes.
    """
    _check_layout_bos(layout, bos)
    scale = _check_float("scale", scale, 0.0, strict=True)
    sink = _check_float("sink", sink, 0.0)
    if sink >= 1.0:
        raise ValueError(f"sink must be in [0, 1) (a fraction of a match score), got {sink}")
    need = _head_dim(layout)
    d_head = need if d_head is None else _check_int("d_head", d_head, need)
    L, kw = layout, {"device": device, "dtype": torch.float32}
    hd = slice(0, L.n_vocab)
    W_Q = scale * _copy_matrix(hd, L.tok, L.n_vocab, bos, (d_head, L.d_model), **kw)
    W_K = _copy_matrix(hd, L.prev, L.n_vocab, bos, (d_head, L.d_model), **kw)
    W_Q[d_head - 1, L.tok] = scale
    W_K[d_head - 1, L.tok.start + bos] = sink
    W_V = _copy_matrix(hd, L.tok, L.n_vocab, bos, (d_head, L.d_model), **kw)
    W_O = _copy_matrix(L.out, hd, L.n_vocab, bos, (L.d_model, d_head), **kw)
    return HeadWeights(W_Q, W_K, W_V, W_O)


def embedding_weights(
    layout: ResidualLayout, *, logit_scale: float = 15.0, device: torch.device | str | None = None
) -> dict[str, Tensor]:
    """``W_E`` (``d_model x n_vocab``), ``W_pos`` (``d_model x n_ctx``), ``W_U`` (``n_vocab x d_model``).

    ``W_E`` and ``W_pos`` write one-hots into the token and position blocks; ``W_U`` reads only the output block,
    times ``logit_scale`` (so a fully attended copy gives its token a logit of ``logit_scale``, all others 0).
    """
    if not isinstance(layout, ResidualLayout):
        raise TypeError(f"layout must be a ResidualLayout, got {type(layout).__name__}")
    logit_scale = _check_float("logit_scale", logit_scale, 0.0, strict=True)
    L, kw = layout, {"device": device, "dtype": torch.float32}
    W_E = torch.zeros(L.d_model, L.n_vocab, **kw)
    W_E[L.tok, :] = torch.eye(L.n_vocab, **kw)
    W_pos = torch.zeros(L.d_model, L.n_ctx, **kw)
    W_pos[L.pos, :] = torch.eye(L.n_ctx, **kw)
    W_U = torch.zeros(L.n_vocab, L.d_model, **kw)
    W_U[:, L.out] = logit_scale * torch.eye(L.n_vocab, **kw)
    return {"W_E": W_E, "W_pos": W_pos, "W_U": W_U}


@dataclass
class InductionWeights:
    """All weights of the hand-built two-layer model (book shapes) plus its layout."""

    layout: ResidualLayout
    W_E: Tensor
    W_pos: Tensor
    W_U: Tensor
    heads: list[HeadWeights] = field(default_factory=list)  # heads[l] is layer l's single head


def induction_weights(
    n_vocab: int,
    n_ctx: int,
    *,
    scale: float = 20.0,
    sink: float = 0.5,
    logit_scale: float = 15.0,
    offset: int = 1,
    bos: int = 0,
    d_model: int | None = None,
    device: torch.device | str | None = None,
) -> InductionWeights:
    """Weights of the hand-built induction model as plain tensors (no model class needed).

    Args:
        n_vocab: vocabulary size including BOS, >= 2; n_ctx: positional table size, >= 2.
        scale: QK gain of both heads; sink: BOS score as a fraction of a match (0 disables the sink);
        logit_scale: ``W_U`` gain; offset: how far back the layer-0 head looks; bos: BOS token id;
        d_model: residual width (``None``: the minimum ``3 n_vocab + n_ctx``).

    Raises:
        ValueError: ``d_model`` too small for ``n_vocab`` and ``n_ctx``, or another argument out of range.
    """
    layout = residual_layout(n_vocab, n_ctx, d_model)
    emb = embedding_weights(layout, logit_scale=logit_scale, device=device)
    heads = [
        previous_token_head(layout, scale=scale, sink=sink, offset=offset, bos=bos, device=device),
        copying_head(layout, scale=scale, sink=sink, bos=bos, device=device),
    ]
    return InductionWeights(layout=layout, heads=heads, **emb)


def run_weights(weights: InductionWeights, tokens: Tensor) -> tuple[Tensor, list[Tensor]]:
    """Run the hand-built weights with :func:`single_head` only (no model class): the book's equations.

    ``X^0 = W_E T + W_pos[:, :n]``, ``X^{l+1} = X^l + h_l(X^l)``, logits ``W_U X^2``, all in the book's layout.

    Args:
        weights: from :func:`induction_weights`.
        tokens: ``(batch, n)`` token ids, ``n <= n_ctx``.

    Returns:
        ``(logits, patterns)``: logits row-per-token ``(batch, n, n_vocab)``; ``patterns[l]`` is ``(batch, n, n)``.

    Raises:
        ValueError: ``n > n_ctx`` or token ids outside ``[0, n_vocab)``.
    """
    L = weights.layout
    tokens = _check_tokens(tokens, L.n_vocab, L.n_ctx)
    n = tokens.shape[1]
    T = nn.functional.one_hot(tokens, L.n_vocab).to(weights.W_E.dtype).transpose(1, 2)  # (batch, n_vocab, n)
    X = weights.W_E @ T + weights.W_pos[:, :n]  # (batch, d_model, n)
    patterns = []
    for head in weights.heads:
        out, A = single_head(X, head.W_Q, head.W_K, head.W_V, head.W_O, scale=1.0, return_pattern=True)
        X = X + out
        patterns.append(A)
    logits = (weights.W_U @ X).transpose(1, 2)
    return logits, patterns


def build_induction_model(
    n_vocab: int,
    n_ctx: int,
    *,
    scale: float = 20.0,
    sink: float = 0.5,
    logit_scale: float = 15.0,
    offset: int = 1,
    bos: int = 0,
    d_model: int | None = None,
    device: torch.device | str | None = None,
) -> TinyTransformer:
    """A two-layer, one-head-per-layer, attention-only ``TinyTransformer`` with the hand-set induction circuit.

    The weights are those of :func:`induction_weights` (see the module docstring for the residual layout). The
    model's own score scale is set to 1 (``attn_scale=1.0``) because ``scale`` is already inside ``W_Q``.

    Args:
        n_vocab: vocabulary size including the BOS token (id ``bos``), >= 2.
        n_ctx: positional table size: the longest sequence the model accepts, >= 2.
        scale: QK gain (inverse softmax temperature) of both heads, > 0. Default 20.
        sink: BOS's score as a fraction of a perfect match, in [0, 1); 0 removes the attention sink.
        logit_scale: gain of ``W_U``, > 0.
        offset: how many tokens back the layer-0 head looks (1 = previous token).
        bos: token id of the BOS / attention-sink token.
        d_model: residual width, ``None`` for the minimum ``3 n_vocab + n_ctx``.
        device: where the model lives (default ``lmlab.device()``).

    Returns:
        The model in eval mode.

    Raises:
        ValueError: the vocabulary is too large for ``d_model`` (``d_model < 3 n_vocab + n_ctx``), or another
            argument is out of range. The model itself raises ValueError for sequences longer than ``n_ctx``.
    """
    from lmlab import device as _default_device
    from lmlab.model import ModelConfig, TinyTransformer

    dev = _default_device() if device is None else torch.device(device)
    w = induction_weights(
        n_vocab,
        n_ctx,
        scale=scale,
        sink=sink,
        logit_scale=logit_scale,
        offset=offset,
        bos=bos,
        d_model=d_model,
        device=dev,
    )
    cfg = ModelConfig(
        n_vocab=n_vocab,
        n_ctx=n_ctx,
        d_model=w.layout.d_model,
        n_layers=2,
        n_heads=1,
        d_head=w.heads[0].W_Q.shape[0],
        d_mlp=None,
        layer_norm=False,
        pos_emb="learned",
        attn_scale=1.0,
    )
    model = TinyTransformer(cfg).to(dev)
    model.set_embeddings(W_E=w.W_E, W_U=w.W_U, W_pos=w.W_pos)
    for layer, head in enumerate(w.heads):
        model.set_head(layer, 0, **head.as_dict())
    return model.eval()


# ----------------------------------------------------------------------------------------------------------------
# data and evaluation
# ----------------------------------------------------------------------------------------------------------------


def _check_tokens(tokens: Any, n_vocab: int, n_ctx: int | None = None) -> Tensor:
    tokens = _check_tensor("tokens", tokens, 2)
    if tokens.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"tokens must be an integer tensor, got {tokens.dtype}")
    if n_ctx is not None and tokens.shape[1] > n_ctx:
        raise ValueError(f"the sequence length {tokens.shape[1]} is longer than the positional table n_ctx={n_ctx}")
    if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= n_vocab):
        raise ValueError(f"token ids must be in [0, {n_vocab}), got range [{int(tokens.min())}, {int(tokens.max())}]")
    return tokens.long()


def repeated_tokens(
    n_vocab: int,
    seq_len: int,
    batch: int,
    *,
    seed: int = 0,
    bos: int | None = 0,
    distinct: bool = True,
    device: torch.device | str | None = None,
) -> Tensor:
    """Random sequences ``[BOS] + r + r``: a random run ``r`` of ``seq_len`` tokens, then the same run again.

    The tokens of ``r`` are drawn uniformly from ``{0, ..., n_vocab - 1} \\ {bos}``; with ``distinct`` (default)
    without replacement, so no token repeats inside a copy.

    Args:
        n_vocab: vocabulary size (including BOS), >= 2.
        seq_len: length ``T`` of one copy, >= 2 (<= n_vocab - 1 when ``distinct``).
        batch: number of sequences, >= 1.
        seed: seeds a private generator (the global RNG is untouched).
        bos: BOS token id, or ``None`` for no BOS (sequences ``r + r``).
        distinct: draw ``r`` without replacement.

    Returns:
        Token ids ``(batch, 2 T + 1)`` (``(batch, 2 T)`` without BOS).
    """
    _check_int("n_vocab", n_vocab, 2)
    _check_int("batch", batch, 1)
    if bos is not None:
        _check_int("bos", bos, 0, n_vocab - 1)
    n_content = n_vocab - (bos is not None)
    _check_int("seq_len", seq_len, 2, n_content if distinct else None)
    g = torch.Generator().manual_seed(_check_int("seed", seed, 0))
    if distinct and bos is not None:  # the package's task generator: BOS + r + r, distinct tokens
        from lmlab.tasks import repeated_sequences

        return repeated_sequences(batch, seq_len, n_vocab, g, bos=bos).to(device)
    if distinct:
        r = torch.rand(batch, n_content, generator=g).argsort(dim=1)[:, :seq_len]
    else:
        r = torch.randint(n_content, (batch, seq_len), generator=g)
    if bos is not None:
        r = r + (r >= bos).long()  # skip the BOS id
    parts = [r, r]
    if bos is not None:
        parts.insert(0, torch.full((batch, 1), bos, dtype=torch.long))
    return torch.cat(parts, dim=1).to(device)


def per_position_loss(logits: Tensor, tokens: Tensor) -> Tensor:
    """Next-token cross-entropy at every position: ``loss[b, i] = -log p(tokens[b, i+1] | tokens[b, :i+1])``.

    Args:
        logits: ``(batch, n, n_vocab)``; tokens: ``(batch, n)``.

    Returns:
        ``(batch, n - 1)``; column ``i`` is the loss of the prediction made *at* position ``i``.
    """
    _check_tensor("logits", logits, 3)
    _check_tensor("tokens", tokens, 2)
    if logits.shape[:2] != tokens.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and tokens {tuple(tokens.shape)} disagree on (batch, n)")
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    return -logp.gather(-1, tokens[:, 1:, None]).squeeze(-1)


@dataclass
class InductionEval:
    """Scores of a model on ``[BOS] + r + r`` sequences.

    Positions: with a prefix of ``p`` tokens (1 with BOS), copy one fills ``[p, p + T)`` and copy two
    ``[p + T, p + 2T)``. *Second copy* = the ``T - 1`` targets at ``[p + T + 1, p + 2T)``, each of which occurred
    after the same token in copy one (the first token of copy two is not predictable and is left out).
    *First copy* = the targets at ``[1, p + T)``, none of which can be inferred from the context.

    Attributes:
        accuracy_second: fraction of second-copy targets that are the argmax prediction.
        loss_second, loss_first: mean cross-entropy (nats) on those targets.
        first_position_accuracy: accuracy on the first predictable target of copy two alone.
        ambiguous_fraction: fraction of second-copy targets whose current token occurs more than once in copy one
            (0 for distinct tokens): no algorithm that only looks at the context can be sure there.
        n_sequences, n_vocab, seq_len: what was evaluated.
    """

    accuracy_second: float
    loss_second: float
    loss_first: float
    first_position_accuracy: float
    ambiguous_fraction: float
    n_sequences: int
    n_vocab: int
    seq_len: int

    def as_dict(self) -> dict[str, float | int]:
        """The fields as a plain dict (for tables)."""
        return dict(self.__dict__)


@torch.no_grad()
def evaluate_induction(
    model: nn.Module,
    n_vocab: int,
    seq_len: int,
    *,
    seeds: Iterable[int] = range(8),
    batch: int = 64,
    bos: int | None = 0,
    distinct: bool = True,
) -> InductionEval:
    """Accuracy on the second copy and loss on both copies of fresh ``[BOS] + r + r`` sequences.

    Args:
        model: maps ``(batch, n)`` token ids to ``(batch, n, n_vocab)`` logits (e.g. a ``TinyTransformer``).
        n_vocab: vocabulary size (including BOS) the sequences are drawn from.
        seq_len: ``T``, the length of one copy, >= 2.
        seeds: one batch of :func:`repeated_tokens` per seed (fresh seeds = unseen data).
        batch: sequences per seed.
        bos, distinct: as in :func:`repeated_tokens`.

    Returns:
        An :class:`InductionEval` (see there for which positions count as first / second copy).

    Raises:
        ValueError: the sequences (``2 T + 1`` tokens) are longer than the model's positional table.
    """
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds must contain at least one seed")
    n_ctx = getattr(getattr(model, "cfg", None), "n_ctx", None)
    prefix = 0 if bos is None else 1
    n = 2 * seq_len + prefix
    if n_ctx is not None and n > n_ctx:
        raise ValueError(
            f"seq_len={seq_len} gives sequences of {n} tokens, longer than the positional table n_ctx={n_ctx}"
        )
    dev = next(model.parameters()).device if any(True for _ in model.parameters()) else None
    T, p = seq_len, prefix
    sum_acc = sum_l2 = sum_l1 = sum_acc0 = sum_amb = 0.0
    n_seq = 0
    for seed in seeds:
        tokens = repeated_tokens(n_vocab, seq_len, batch, seed=seed, bos=bos, distinct=distinct, device=dev)
        logits = model(tokens)
        loss = per_position_loss(logits, tokens)  # (batch, n - 1), column i predicts target i + 1
        second = slice(p + T, p + 2 * T - 1)  # predictions made at [p+T, p+2T-1) -> targets [p+T+1, p+2T)
        first = slice(0, p + T - 1)  # targets [1, p+T)
        pred = logits[:, :-1].argmax(-1)
        correct = (pred == tokens[:, 1:]).float()
        sum_acc += float(correct[:, second].mean()) * batch
        sum_acc0 += float(correct[:, p + T].mean()) * batch
        sum_l2 += float(loss[:, second].mean()) * batch
        sum_l1 += float(loss[:, first].mean()) * batch
        copy1 = tokens[:, p : p + T]
        counts = (copy1[:, :, None] == copy1[:, None, :]).sum(-1)  # how often each copy-one token occurs
        sum_amb += float((counts[:, : T - 1] > 1).float().mean()) * batch
        n_seq += batch
    return InductionEval(
        accuracy_second=sum_acc / n_seq,
        loss_second=sum_l2 / n_seq,
        loss_first=sum_l1 / n_seq,
        first_position_accuracy=sum_acc0 / n_seq,
        ambiguous_fraction=sum_amb / n_seq,
        n_sequences=n_seq,
        n_vocab=n_vocab,
        seq_len=seq_len,
    )


# ----------------------------------------------------------------------------------------------------------------
# head detectors
# ----------------------------------------------------------------------------------------------------------------


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
    attn = _check_tensor("attn", attn, (2, 3, 4, 5))
    n = attn.shape[-1]
    if attn.shape[-2] != n:
        raise ValueError(f"attn must be square in its last two dimensions, got {tuple(attn.shape)}")
    _check_int("offset", offset, 1, n - 1)
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
    attn = _check_tensor("attn", attn, (2, 3, 4, 5))
    n = attn.shape[-1]
    if attn.shape[-2] != n:
        raise ValueError(f"attn must be square in its last two dimensions, got {tuple(attn.shape)}")
    _check_int("prefix", prefix, 0)
    _check_int("period", period, 2, n - prefix - 1)
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
        batch, seed: how many sequences, from which seed; bos: as in :func:`repeated_tokens`.
        threshold: a score above it names the head; 0.4 by default (:data:`INDUCTION_THRESHOLD`).

    Returns:
        A :class:`HeadDetection` with the scores averaged over the batch.
    """
    cfg = model.cfg
    n_vocab = cfg.n_vocab if n_vocab is None else _check_int("n_vocab", n_vocab, 2, cfg.n_vocab)
    prefix = 0 if bos is None else 1
    if seq_len is None:
        seq_len = min((cfg.n_ctx - prefix) // 2, n_vocab - prefix)
    _check_int("seq_len", seq_len, 2, (cfg.n_ctx - prefix) // 2)
    threshold = _check_float("threshold", threshold, 0.0)
    dev = next(model.parameters()).device
    tokens = repeated_tokens(n_vocab, seq_len, batch, seed=seed, bos=bos, device=dev)
    _, cache = model.run_with_cache(tokens)
    prev = torch.stack([previous_token_score(a).mean(0) for a in cache.attn]).cpu()
    ind = torch.stack([induction_score(a, seq_len, prefix).mean(0) for a in cache.attn]).cpu()
    return HeadDetection(previous_token=prev, induction=ind, threshold=threshold)


# ----------------------------------------------------------------------------------------------------------------
# composition scores
# ----------------------------------------------------------------------------------------------------------------


def composition_score(W_A: Tensor, W_B: Tensor) -> float:
    """``||W_A W_B||_F / (||W_A||_F ||W_B||_F)``, in [0, 1]: how much ``W_A`` reads what ``W_B`` writes."""
    _check_tensor("W_A", W_A, 2)
    _check_tensor("W_B", W_B, 2)
    if W_A.shape[1] != W_B.shape[0]:
        raise ValueError(f"W_A {tuple(W_A.shape)} and W_B {tuple(W_B.shape)} cannot be multiplied")
    A, B = W_A.double(), W_B.double()
    den = torch.linalg.matrix_norm(A) * torch.linalg.matrix_norm(B)
    if float(den) == 0.0:
        raise ValueError("W_A and W_B must both be nonzero")
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
    return composition_score(W_QK1, W_OV0)


def q_composition(W_QK1: Tensor, W_OV0: Tensor) -> float:
    """Q-composition ``||W_QK1^T W_OV0||_F / norms``: the earlier head's output read on the query side."""
    return composition_score(W_QK1.T, W_OV0)


def v_composition(W_OV1: Tensor, W_OV0: Tensor) -> float:
    """V-composition ``||W_OV1 W_OV0||_F / norms``: the later head moves what the earlier one wrote."""
    return composition_score(W_OV1, W_OV0)


def composition_scores(model: nn.Module, layer: int = 1, earlier: int = 0) -> dict[str, Tensor]:
    """Q-, K- and V-composition of every head of ``layer`` with every head of ``earlier``.

    Args:
        model: exposes ``W_QK(l, h)``, ``W_OV(l, h)`` (book shapes) and ``cfg.n_heads`` (a ``TinyTransformer``).

    Returns:
        ``{"Q": ..., "K": ..., "V": ...}``, each ``(n_heads of layer, n_heads of earlier)``.
    """
    H = model.cfg.n_heads
    out = {k: torch.zeros(H, H) for k in "QKV"}
    for h1 in range(H):
        qk, ov1 = model.W_QK(layer, h1), model.W_OV(layer, h1)
        for h0 in range(H):
            ov0 = model.W_OV(earlier, h0)
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
    _check_int("d_model", d_model, 1)
    _check_int("d_head", d_head, 1)
    _check_int("n_samples", n_samples, 2)
    g = torch.Generator().manual_seed(_check_int("seed", seed, 0))
    vals = []
    for _ in range(n_samples):
        Wq, Wk, Wv = (torch.randn(d_head, d_model, generator=g, dtype=torch.float64) for _ in range(3))
        Wo = torch.randn(d_model, d_head, generator=g, dtype=torch.float64)
        vals.append(k_composition(Wq.T @ Wk, Wo @ Wv))
    s = torch.tensor(vals)
    return CompositionBaseline(mean=float(s.mean()), std=float(s.std()), samples=s)


# ----------------------------------------------------------------------------------------------------------------
# 5. broken variants and the softmax temperature
# ----------------------------------------------------------------------------------------------------------------


def qk_gradient_norms(model: nn.Module, tokens: Tensor) -> list[float]:
    """``||d loss / d W_Q^l||_F`` for every layer ``l``: how much gradient reaches the query weights.

    The loss is the mean next-token cross-entropy over all positions of ``tokens`` (``(batch, n)``). The model's
    gradients are zeroed before and after. A saturated softmax (a very large QK scale) passes almost none.

    Args:
        model: a ``TinyTransformer`` (its layers at ``model.blocks[l].attn.W_Q``).
        tokens: ``(batch, n)`` token ids.
    """
    model.zero_grad(set_to_none=True)
    with torch.enable_grad():
        loss = per_position_loss(model(tokens), tokens).mean()
        loss.backward()
    out = [float(block.attn.W_Q.grad.norm()) for block in model.blocks]
    model.zero_grad(set_to_none=True)
    return out


def broken_variants(
    n_vocab: int = 20,
    seq_len: int = 10,
    *,
    seeds: Iterable[int] = range(100, 108),
    batch: int = 64,
    small_scale: float = 1.0,
    large_scale: float = 1000.0,
    device: torch.device | str | None = None,
) -> list[dict[str, Any]]:
    """Run the hand-built model with one design choice broken at a time, on fresh ``[BOS] + r + r`` data.

    Variants (each a row): the model as built (scale 20, sink 0.5, BOS, distinct tokens); no attention sink
    (``sink=0``); no BOS token at all (sequences ``r + r``); tokens repeated inside a copy (drawn with replacement);
    the QK scale too small (``small_scale``) and too large (``large_scale``); and, on repeated-token data, a
    moderate scale (4) against the large one, where a hard choice among tied candidates is overconfident.

    Returns:
        One dict per variant: ``variant`` (name), ``change`` (what differs), the :class:`InductionEval` fields and
        ``grad_W_Q`` (the sum over layers of :func:`qk_gradient_norms` on one batch of the same data).
    """
    seeds = list(seeds)
    n_ctx = 2 * seq_len + 1
    kw = {"device": device}
    specs: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
        ("as built", "scale 20, sink 0.5, BOS, distinct tokens", {}, {}),
        ("no attention sink", "sink = 0: BOS scores like any non-match", {"sink": 0.0}, {}),
        ("no BOS token", "sequences r + r, no sink token at all", {}, {"bos": None}),
        ("repeated tokens", "r drawn with replacement", {}, {"distinct": False}),
        ("scale too small", f"QK scale {small_scale:g}", {"scale": small_scale}, {}),
        ("scale too large", f"QK scale {large_scale:g}", {"scale": large_scale}, {}),
        ("repeated tokens, scale 4", "r with replacement, QK scale 4", {"scale": 4.0}, {"distinct": False}),
        (
            "repeated tokens, scale too large",
            f"r with replacement, QK scale {large_scale:g}",
            {"scale": large_scale},
            {"distinct": False},
        ),
    ]
    rows = []
    for name, change, build_kw, data_kw in specs:
        model = build_induction_model(n_vocab, n_ctx, **build_kw, **kw)
        res = evaluate_induction(model, n_vocab, seq_len, seeds=seeds, batch=batch, **data_kw)
        tokens = repeated_tokens(
            n_vocab,
            seq_len,
            batch,
            seed=seeds[0],
            device=next(model.parameters()).device,
            bos=data_kw.get("bos", 0),
            distinct=data_kw.get("distinct", True),
        )
        row: dict[str, Any] = {"variant": name, "change": change, **res.as_dict()}
        row["grad_W_Q"] = sum(qk_gradient_norms(model, tokens))
        rows.append(row)
    return rows


def scale_sweep(
    scales: Iterable[float],
    seq_lens: Iterable[int],
    *,
    n_vocab: int = 64,
    seeds: Iterable[int] = range(200, 202),
    batch: int = 32,
    device: torch.device | str | None = None,
) -> list[dict[str, Any]]:
    """Second-copy accuracy and losses of the hand-built model for every (QK scale, copy length) pair.

    Returns:
        One dict per pair: ``scale``, ``seq_len`` and the :class:`InductionEval` fields.
    """
    seeds = list(seeds)
    rows = []
    for T in seq_lens:
        for s in scales:
            model = build_induction_model(n_vocab, 2 * T + 1, scale=s, device=device)
            res = evaluate_induction(model, n_vocab, T, seeds=seeds, batch=batch)
            rows.append({"scale": float(s), **res.as_dict()})
    return rows


def markdown_table(
    rows: Sequence[dict[str, Any]], columns: dict[str, str], formats: dict[str, str] | None = None
) -> str:
    """A Markdown table of ``rows`` (dicts), one column per key of ``columns`` (key -> header).

    Args:
        rows: the records, e.g. from :func:`broken_variants`.
        columns: which keys to show, in order, with their headers.
        formats: optional format specs per key (e.g. ``{"loss_first": ".3f"}``); others use ``str``.
    """
    formats = formats or {}
    head = "| " + " | ".join(columns.values()) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    body = [
        "| " + " | ".join(format(r[k], formats[k]) if k in formats else str(r[k]) for k in columns) + " |" for r in rows
    ]
    return "\n".join([head, rule, *body])


# ----------------------------------------------------------------------------------------------------------------
# 6. learning the circuit
# ----------------------------------------------------------------------------------------------------------------


def periodic_tokens(
    n_vocab: int,
    n: int,
    batch: int,
    *,
    min_period: int,
    max_period: int,
    generator: torch.Generator,
    bos: int = 0,
) -> Tensor:
    """``BOS`` followed by ``r r r ...`` cut to ``n`` tokens, with a fresh period ``T`` for every sequence.

    ``r`` is a run of ``T`` distinct tokens (BOS excluded), ``T`` uniform in ``[min_period, max_period]`` per
    sequence. Every token after the first period is predictable by induction, and because ``T`` varies no fixed
    positional offset can replace looking back at the content.

    Args:
        n_vocab: vocabulary size including BOS; n: sequence length (>= 2); batch: number of sequences.
        min_period, max_period: range of ``T``, ``2 <= min_period <= max_period <= n_vocab - 1``.
        generator: a CPU ``torch.Generator``; bos: the BOS id.

    Returns:
        Token ids ``(batch, n)`` on the CPU.
    """
    _check_int("n_vocab", n_vocab, 3)
    _check_int("n", n, 2)
    _check_int("batch", batch, 1)
    _check_int("bos", bos, 0, n_vocab - 1)
    _check_int("max_period", max_period, 2, n_vocab - 1)
    _check_int("min_period", min_period, 2, max_period)
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    T = torch.randint(min_period, max_period + 1, (batch, 1), generator=generator)
    r = torch.rand(batch, n_vocab - 1, generator=generator).argsort(dim=1)
    r = r + (r >= bos).long()  # skip the BOS id
    idx = torch.arange(n - 1)[None, :] % T  # (batch, n - 1)
    body = r.gather(1, idx)
    return torch.cat([torch.full((batch, 1), bos, dtype=torch.long), body], dim=1)


def periodic_batches(
    n_vocab: int,
    n_ctx: int,
    *,
    batch: int = 32,
    min_period: int = 3,
    max_period: int = 12,
    seed: int = 0,
    bos: int = 0,
) -> Callable[[int], tuple[Tensor, Tensor]]:
    """A ``step -> (inputs, targets)`` source of :func:`periodic_tokens` for :func:`lmlab.train.train`.

    Each step draws ``(batch, n_ctx + 1)`` tokens from a generator seeded with ``(seed, step)`` and returns the
    inputs ``tokens[:, :-1]`` and next-token targets ``tokens[:, 1:]``, both ``(batch, n_ctx)``.
    """
    _check_int("seed", seed, 0)
    _check_int("n_ctx", n_ctx, 2)

    def make(step: int) -> tuple[Tensor, Tensor]:
        g = torch.Generator().manual_seed(seed * 1_000_003 + step)
        toks = periodic_tokens(
            n_vocab, n_ctx + 1, batch, min_period=min_period, max_period=max_period, generator=g, bos=bos
        )
        return toks[:, :-1], toks[:, 1:]

    return make


def induction_probe(
    n_vocab: int, seq_len: int, *, batch: int = 64, seed: int = 4242, bos: int = 0
) -> Callable[[nn.Module], dict[str, Any]]:
    """A callable ``model -> dict`` that measures a model on one fixed batch of ``BOS + r + r`` (for ``eval_fn``).

    The dict holds ``loss_first`` and ``loss_second`` (as in :class:`InductionEval`), ``previous_token`` and
    ``induction`` (lists of lists, ``[layer][head]``, the detector scores) and the summaries
    ``prev_layer0`` (best previous-token score among layer-0 heads) and ``induction_last`` (best induction score
    among the last layer's heads).
    """
    tokens = repeated_tokens(n_vocab, seq_len, batch, seed=seed, bos=bos)
    prefix = 0 if bos is None else 1
    T = seq_len

    @torch.no_grad()
    def probe(model: nn.Module) -> dict[str, Any]:
        dev = next(model.parameters()).device
        toks = tokens.to(dev)
        logits, cache = model.run_with_cache(toks)
        loss = per_position_loss(logits, toks)
        prev = [previous_token_score(a).mean(0).tolist() for a in cache.attn]
        indu = [induction_score(a, T, prefix).mean(0).tolist() for a in cache.attn]
        return {
            "loss_first": float(loss[:, : prefix + T - 1].mean()),
            "loss_second": float(loss[:, prefix + T : prefix + 2 * T - 1].mean()),
            "previous_token": prev,
            "induction": indu,
            "prev_layer0": max(prev[0]),
            "induction_last": max(indu[-1]),
        }

    return probe
