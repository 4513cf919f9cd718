"""Induction heads built by hand: one attention head from its equations, and a two-layer induction circuit.

Detectors and composition scores live in :mod:`lmlab.heads`, losses and experiments in :mod:`lmlab.induction_eval`.

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
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from lmlab.core.checks import check_float, check_int, check_tensor
from lmlab.core.layers import Head, check_head_shapes, default_scale
from lmlab.core.model import ModelConfig, TinyTransformer
from lmlab.core.runtime import device as lmlab_device
from lmlab.inside.circuits import circuit_attention

__all__ = [
    "InductionWeights",
    "ResidualLayout",
    "as_multihead_attention",
    "build_induction_model",
    "copying_head",
    "embedding_weights",
    "induction_weights",
    "previous_token_head",
    "residual_layout",
    "run_weights",
    "single_head",
]


# ----------------------------------------------------------------------------------------------------------------
# 1. one attention head, written from the equations
# ----------------------------------------------------------------------------------------------------------------


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
    """One attention head in the book's notation, step by step, run through its circuits.

    With ``Q = W_Q X``, ``K = W_K X``, ``V = W_V X`` (each ``d_head x n``):

    1. scores ``S = scale * Q^T K = scale * X^T W_QK X`` (``n x n``), with ``W_QK = W_Q^T W_K``;
    2. causal mask: ``S_ij = -inf`` for ``j > i`` (a token cannot read the future);
    3. pattern ``A = softmax(S)`` along each row (each destination's weights over sources sum to 1);
    4. weighted values ``V A^T`` (column ``i`` is ``sum_j A_ij V_j``);
    5. output projection ``h(X) = W_O V A^T = W_OV X A^T`` (``d_model x n``), with ``W_OV = W_O W_V``.

    The circuits are :class:`~lmlab.layers.Head`'s (``W_QK``, ``W_OV``, ``score_scale``) and the computation is
    :func:`lmlab.circuits.circuit_attention`: the package's one attention in the book's notation.

    Args:
        X: residual stream, book layout ``(d_model, n)`` (columns are tokens), or ``(batch, d_model, n)``.
        W_Q, W_K, W_V: ``(d_head, d_model)``.
        W_O: ``(d_model, d_head)``.
        scale: multiplies the scores, > 0; ``None`` means :func:`~lmlab.layers.default_scale`, ``1 / sqrt(d_head)``.
        causal: apply the causal mask.
        return_pattern: also return ``A``.

    Returns:
        ``h(X)`` with the shape of ``X``; with ``return_pattern`` the pair ``(h(X), A)``, ``A`` of shape
        ``(n, n)`` (or ``(batch, n, n)``), rows = destinations.

    Raises:
        TypeError / ValueError: an argument is not a tensor, or the shapes do not fit together.
    """
    X = check_tensor("X", X, (2, 3), floating=True)
    check_head_shapes(W_Q, W_K, W_V, W_O, d_model=X.shape[-2])
    head = Head(W_Q, W_K, W_V, W_O, scale=scale)
    out, A = circuit_attention(X, head.W_QK, head.W_OV, scale=head.score_scale, causal=causal)
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
        ``(batch, n, d_model)`` with ``attn_mask=~causal_mask(n)`` (True = forbidden there).

    Raises:
        ValueError: ``d_head > d_model`` or inconsistent shapes.
    """
    d_head, d_model = check_head_shapes(W_Q, W_K, W_V, W_O), W_Q.shape[1]
    if d_head > d_model:
        raise ValueError(f"d_head must be <= d_model for one-head nn.MultiheadAttention, got {d_head} > {d_model}")
    s = default_scale(d_head, scale)
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
    check_int("n_vocab", n_vocab, 2)
    check_int("n_ctx", n_ctx, 2)
    need = 3 * n_vocab + n_ctx
    if d_model is None:
        d_model = need
    check_int("d_model", d_model, 1)
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


def _head_dim(layout: ResidualLayout) -> int:
    # previous-token QK needs n_ctx + 1 coordinates (positions + sink), the copy head n_vocab + 1; OV needs n_vocab.
    return max(layout.n_ctx, layout.n_vocab) + 1


def _check_layout_bos(layout: ResidualLayout, bos: int) -> None:
    if not isinstance(layout, ResidualLayout):
        raise TypeError(f"layout must be a ResidualLayout, got {type(layout).__name__}")
    check_int("bos", bos, 0, layout.n_vocab - 1)


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
) -> Head:
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
        A :class:`~lmlab.layers.Head` in the book's shapes, ``scale=1`` (the gain is inside ``W_Q``).
    """
    _check_layout_bos(layout, bos)
    scale = check_float("scale", scale, 0.0, strict=True)
    sink = check_float("sink", sink, 0.0)
    if sink >= 1.0:
        raise ValueError(f"sink must be in [0, 1) (a fraction of a match score), got {sink}")
    check_int("offset", offset, 1, layout.n_ctx - 1)
    need = _head_dim(layout)
    d_head = need if d_head is None else check_int("d_head", d_head, need)
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
    return Head(W_Q, W_K, W_V, W_O, scale=1.0)


def copying_head(
    layout: ResidualLayout,
    *,
    scale: float = 20.0,
    sink: float = 0.5,
    bos: int = 0,
    d_head: int | None = None,
    device: torch.device | str | None = None,
) -> Head:
    """Hand-set weights of the induction (copying) head that reads the previous-token block (K-composition).

    QK circuit: ``W_Q`` reads the current token one-hot, ``W_K`` reads the previous-token block, so
    ``S_ij = scale * <tok_i, prev_j>``: destination ``i`` looks for sources ``j`` whose *previous* token equals
    its own token. The BOS key scores ``scale * sink`` (sink coordinate as in :func:`previous_token_head`), so a
    token seen for the first time attends to BOS. OV circuit: copy the source's token one-hot (BOS excluded)
    into the output block, which ``W_U`` reads: ``W_OV = sum_{v != bos} e_out(v) e_tok(v)^T``.

    Args: as :func:`previous_token_head` (``sink`` in [0, 1)).

    Returns:
        A :class:`~lmlab.layers.Head` in the book's shapes, ``scale=1`` (the gain is inside ``W_Q``).
    """
    _check_layout_bos(layout, bos)
    scale = check_float("scale", scale, 0.0, strict=True)
    sink = check_float("sink", sink, 0.0)
    if sink >= 1.0:
        raise ValueError(f"sink must be in [0, 1) (a fraction of a match score), got {sink}")
    need = _head_dim(layout)
    d_head = need if d_head is None else check_int("d_head", d_head, need)
    L, kw = layout, {"device": device, "dtype": torch.float32}
    hd = slice(0, L.n_vocab)
    W_Q = scale * _copy_matrix(hd, L.tok, L.n_vocab, bos, (d_head, L.d_model), **kw)
    W_K = _copy_matrix(hd, L.prev, L.n_vocab, bos, (d_head, L.d_model), **kw)
    W_Q[d_head - 1, L.tok] = scale
    W_K[d_head - 1, L.tok.start + bos] = sink
    W_V = _copy_matrix(hd, L.tok, L.n_vocab, bos, (d_head, L.d_model), **kw)
    W_O = _copy_matrix(L.out, hd, L.n_vocab, bos, (L.d_model, d_head), **kw)
    return Head(W_Q, W_K, W_V, W_O, scale=1.0)


def embedding_weights(
    layout: ResidualLayout, *, logit_scale: float = 15.0, device: torch.device | str | None = None
) -> dict[str, Tensor]:
    """``W_E`` (``d_model x n_vocab``), ``W_pos`` (``d_model x n_ctx``), ``W_U`` (``n_vocab x d_model``).

    ``W_E`` and ``W_pos`` write one-hots into the token and position blocks; ``W_U`` reads only the output block,
    times ``logit_scale`` (so a fully attended copy gives its token a logit of ``logit_scale``, all others 0).
    """
    if not isinstance(layout, ResidualLayout):
        raise TypeError(f"layout must be a ResidualLayout, got {type(layout).__name__}")
    logit_scale = check_float("logit_scale", logit_scale, 0.0, strict=True)
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
    heads: list[Head] = field(default_factory=list)  # heads[l] is layer l's single head


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
    if not isinstance(weights, InductionWeights):
        raise TypeError(f"weights must be InductionWeights (from induction_weights), got {type(weights).__name__}")
    L = weights.layout
    tokens = check_tensor("tokens", tokens, 2)
    n = tokens.shape[1]
    if n > L.n_ctx:
        raise ValueError(f"the sequence length {n} is longer than the positional table n_ctx={L.n_ctx}")
    if tokens.is_floating_point() or int(tokens.min()) < 0 or int(tokens.max()) >= L.n_vocab:
        raise ValueError(f"tokens must be integer ids in [0, {L.n_vocab})")
    T = nn.functional.one_hot(tokens, L.n_vocab).to(weights.W_E.dtype).transpose(1, 2)  # (batch, n_vocab, n)
    X = weights.W_E @ T + weights.W_pos[:, :n]  # (batch, d_model, n)
    patterns = []
    for head in weights.heads:
        out, A = single_head(X, *head.as_dict().values(), scale=head.score_scale, return_pattern=True)
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
    dev = lmlab_device() if device is None else torch.device(device)
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
