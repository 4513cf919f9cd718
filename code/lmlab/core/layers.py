"""The layers of :class:`lmlab.model.TinyTransformer`, and one attention head as an object.

Weights are stored in the book's shapes (one token per *column*): W_Q, W_K, W_V are (d_head, d_model), W_O is
(d_model, d_head), W_E (d_model, n_vocab), W_U (n_vocab, d_model), W_pos (d_model, n_ctx). Activations flow
row-per-token, (batch, n, d_model), PyTorch's convention and the transpose of the book's X. In code a head computes

    Q = X W_Q^T,  K = X W_K^T,  V = X W_V^T            (batch, n, d_head)   [book: Q = W_Q X, ...]
    A = softmax(scale * Q K^T, masked causally)         (batch, n, n)        [book: A_ij, query i, key j]
    write = A V W_O^T                                   (batch, n, d_model)  [book: W_O V A^T]

The causal mask has one convention in the whole package: :func:`causal_mask` is True where a query MAY attend.
A head's shapes and its score factor (default ``1 / sqrt(d_head)``) are also defined once, here:
:func:`check_head_shapes` and :func:`default_scale`, used by :class:`Head`, :class:`Attention`, the model's config,
:func:`lmlab.induction.single_head` and :func:`lmlab.induction.as_multihead_attention`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lmlab.core.checks import check_float, check_int, check_tensor

__all__ = [
    "Attention",
    "Block",
    "Head",
    "MLP",
    "causal_mask",
    "check_head_shapes",
    "default_scale",
    "sinusoidal_positions",
]


def default_scale(d_head: int, scale: float | None = None) -> float:
    """A head's score factor: ``scale`` when given, else the default ``1 / sqrt(d_head)`` of every head in lmlab.

    Scores ``S_ij = scale * Q_i^T K_j`` of ``d_head``-dimensional queries and keys with unit-variance entries have
    variance ``d_head``; the default brings it back to 1 (Vaswani et al., 2017).

    Raises:
        TypeError / ValueError: ``d_head`` is not an int >= 1, or ``scale`` is not a finite number > 0.
    """
    check_int("d_head", d_head, 1)
    return 1.0 / math.sqrt(d_head) if scale is None else check_float("scale", scale, 0.0, strict=True)


def check_head_shapes(W_Q: Tensor, W_K: Tensor, W_V: Tensor, W_O: Tensor, d_model: int | None = None) -> int:
    """Check one head's weights in the book's shapes and return ``d_head``.

    Args:
        W_Q, W_K, W_V: ``(d_head, d_model)``; W_O: ``(d_model, d_head)``; floating point, one dtype and device.
        d_model: the residual width the head must read (e.g. ``X.shape[-2]``); ``None`` takes it from ``W_Q``.

    Raises:
        TypeError: a weight is not a floating-point tensor, or the weights' dtypes or devices differ.
        ValueError: a weight is not 2-D or its shape does not fit ``W_Q``'s ``d_head`` and ``d_model``.
    """
    weights = {"W_Q": W_Q, "W_K": W_K, "W_V": W_V, "W_O": W_O}
    for name, W in weights.items():
        check_tensor(name, W, 2, floating=True)
    d_head = W_Q.shape[0]
    d_model = W_Q.shape[1] if d_model is None else check_int("d_model", d_model, 1)
    for name in ("W_Q", "W_K", "W_V"):
        shape = tuple(weights[name].shape)
        if shape != (d_head, d_model):
            raise ValueError(f"{name} must be (d_head, d_model) = ({d_head}, {d_model}), got {shape}")
    if tuple(W_O.shape) != (d_model, d_head):
        raise ValueError(f"W_O must be (d_model, d_head) = ({d_model}, {d_head}), got {tuple(W_O.shape)}")
    for name, W in weights.items():
        if W.dtype != W_Q.dtype or W.device != W_Q.device:
            have, want = f"{W.dtype}, {W.device}", f"{W_Q.dtype}, {W_Q.device}"
            raise TypeError(f"{name} ({have}) must have the dtype and device of W_Q ({want})")
    return d_head


def causal_mask(n_q: int, n_k: int | None = None, device: torch.device | str | None = None) -> Tensor:
    """Boolean ``(n_q, n_k)`` mask, True where query ``i`` may attend to key ``j``.

    The queries are the last ``n_q`` of ``n_k`` positions (``n_k = n_q`` by default; more with a key/value cache),
    so query ``i`` sits at absolute position ``n_k - n_q + i`` and may see keys ``j <= n_k - n_q + i``. For
    ``nn.MultiheadAttention``'s ``attn_mask`` (True = forbidden) pass ``~causal_mask(n)``.
    """
    n_k = n_q if n_k is None else n_k
    check_int("n_q", n_q, 1)
    check_int("n_k", n_k, n_q)
    i = torch.arange(n_q, device=device)[:, None]
    j = torch.arange(n_k, device=device)[None, :]
    return j <= i + (n_k - n_q)


def _pattern(q: Tensor, k: Tensor, scale: float, causal: bool = True) -> Tensor:
    """A = softmax(scale q k^T) over keys, (..., n_q, n_k), future keys masked when causal."""
    scores = scale * (q @ k.transpose(-1, -2))
    if causal:
        scores = scores.masked_fill(~causal_mask(q.shape[-2], k.shape[-2], q.device), float("-inf"))
    return scores.softmax(dim=-1)


@dataclass(frozen=True)
class Head:
    """One attention head: its four weights in the book's shapes and its score factor.

    ``model.head(l, h)`` returns one; the hand-built circuits of :mod:`lmlab.induction` are made of them. Calling
    a head runs exactly the computation of :class:`Attention` (the same code) on row-per-token input.

    Attributes:
        W_Q, W_K, W_V: (d_head, d_model); W_O: (d_model, d_head).
        scale: the factor in front of the scores, > 0; ``None`` means :func:`default_scale` = 1 / sqrt(d_head).
    """

    W_Q: Tensor
    W_K: Tensor
    W_V: Tensor
    W_O: Tensor
    scale: float | None = None

    def __post_init__(self) -> None:
        d_head = check_head_shapes(self.W_Q, self.W_K, self.W_V, self.W_O)
        default_scale(d_head, self.scale)  # checks scale

    @property
    def W_QK(self) -> Tensor:
        """W_QK = W_Q^T W_K, (d_model, d_model): the score of query x_i on key x_j is scale * x_i^T W_QK x_j."""
        return self.W_Q.T @ self.W_K

    @property
    def W_OV(self) -> Tensor:
        """W_OV = W_O W_V, (d_model, d_model): the head writes W_OV x_j per unit of attention on key j.

        (Row-per-token libraries such as TransformerLens form W_V W_O, the transpose of this.)
        """
        return self.W_O @ self.W_V

    @property
    def score_scale(self) -> float:
        """The factor actually used: ``scale``, or :func:`default_scale` (1 / sqrt(d_head)) when it is None."""
        return default_scale(self.W_Q.shape[0], self.scale)

    def as_dict(self) -> dict[str, Tensor]:
        """The weights as keyword arguments of ``TinyTransformer.set_head``."""
        return {"W_Q": self.W_Q, "W_K": self.W_K, "W_V": self.W_V, "W_O": self.W_O}

    def __call__(self, x: Tensor, causal: bool = True) -> tuple[Tensor, Tensor]:
        """Run the head on x (batch, n, d_model) or (n, d_model): ``(write, A)``, write shaped like x, A (.., n, n).

        The same code as a model's :class:`Attention` layer (``A[b, i, j]`` = weight of query i on key j).
        """
        x = check_tensor("x", x, (2, 3), floating=True)
        if x.shape[-1] != self.W_Q.shape[1]:
            raise ValueError(f"x must end in d_model = {self.W_Q.shape[1]}, got shape {tuple(x.shape)}")
        W = [w[None] for w in (self.W_Q, self.W_K, self.W_V, self.W_O)]
        q, k, v = _qkv(x.unsqueeze(0) if x.dim() == 2 else x, *W[:3])
        A = _pattern(q, k, self.score_scale, causal)
        out = _write_per_head(A @ v, W[3])[:, 0]
        return (out[0], A[0, 0]) if x.dim() == 2 else (out, A[:, 0])


def _qkv(x: Tensor, W_Q: Tensor, W_K: Tensor, W_V: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """x (batch, n, d_model) and stacked weights (H, d_head, d_model) -> q, k, v, each (batch, H, n, d_head)."""
    return tuple(torch.einsum("bnd,hed->bhne", x, W) for W in (W_Q, W_K, W_V))  # type: ignore[return-value]


def _write_per_head(z: Tensor, W_O: Tensor) -> Tensor:
    """z (batch, H, n, d_head) and W_O (H, d_model, d_head) -> every head's write (batch, H, n, d_model)."""
    return torch.einsum("bhne,hde->bhnd", z, W_O)


class Attention(nn.Module):
    """A multi-head causal attention layer storing per-head weights in the book's shapes, without biases.

    Parameters: W_Q, W_K, W_V of shape (H, d_head, d_model) and W_O of shape (H, d_model, d_head). The layer
    writes the sum of its heads' writes. ``scale`` (> 0) multiplies the scores; ``None`` means :func:`default_scale`.
    """

    def __init__(
        self, n_heads: int, d_model: int, d_head: int, scale: float | None, init_std: float, out_std: float
    ) -> None:
        super().__init__()
        H, e, d = check_int("n_heads", n_heads, 1), check_int("d_head", d_head, 1), check_int("d_model", d_model, 1)
        self.scale = default_scale(d_head, scale)
        init_std, out_std = check_float("init_std", init_std, 0.0), check_float("out_std", out_std, 0.0)
        self.W_Q = nn.Parameter(torch.randn(H, e, d) * init_std)
        self.W_K = nn.Parameter(torch.randn(H, e, d) * init_std)
        self.W_V = nn.Parameter(torch.randn(H, e, d) * init_std)
        self.W_O = nn.Parameter(torch.randn(H, d, e) * out_std)

    def head(self, h: int) -> Head:
        """Head ``h`` as a :class:`Head` (detached copies of its weights)."""
        W = [w[h].detach().clone() for w in (self.W_Q, self.W_K, self.W_V, self.W_O)]
        return Head(*W, scale=self.scale)

    def forward(self, x: Tensor, past: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """x (batch, n, d_model) -> ``(write, (k, v))``: the layer's write (batch, n, d_model), contracted over
        heads and head dimensions in one product (the concatenated view), and the keys and values
        (batch, H, n_k, d_head), which include ``past`` when given (key/value caching)."""
        q, k, v = _qkv(x, self.W_Q, self.W_K, self.W_V)
        if past is not None:
            k, v = torch.cat([past[0], k], dim=-2), torch.cat([past[1], v], dim=-2)
        z = _pattern(q, k, self.scale) @ v
        return torch.einsum("bhne,hde->bnd", z, self.W_O), (k, v)

    def parts(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x (batch, n, d_model) -> ``(head_out, A)``: every head's write (batch, H, n, d_model) and pattern
        (batch, H, n, n). The layer's write is ``head_out.sum(1)`` (the additive view)."""
        q, k, v = _qkv(x, self.W_Q, self.W_K, self.W_V)
        A = _pattern(q, k, self.scale)
        return _write_per_head(A @ v, self.W_O), A


class MLP(nn.Module):
    """A two-layer MLP without biases: write = act(x W_in^T) W_out^T; W_in (d_mlp, d_model), W_out (d_model, d_mlp)."""

    def __init__(self, d_model: int, d_mlp: int, act: str, init_std: float, out_std: float) -> None:
        super().__init__()
        check_int("d_model", d_model, 1)
        check_int("d_mlp", d_mlp, 1)
        if act not in ("gelu", "relu"):
            raise ValueError(f"act must be 'gelu' or 'relu', got {act!r}")
        init_std, out_std = check_float("init_std", init_std, 0.0), check_float("out_std", out_std, 0.0)
        self.W_in = nn.Parameter(torch.randn(d_mlp, d_model) * init_std)
        self.W_out = nn.Parameter(torch.randn(d_model, d_mlp) * out_std)
        self.act = F.gelu if act == "gelu" else F.relu

    def forward(self, x: Tensor) -> Tensor:
        """x (batch, n, d_model) -> the MLP's write (batch, n, d_model)."""
        return self.act(x @ self.W_in.T) @ self.W_out.T


class Block(nn.Module):
    """One transformer block: X <- X + Attn(LN(X)); then, if there is an MLP, X <- X + MLP(LN(X))."""

    def __init__(self, attn: Attention, mlp: MLP | None, d_model: int, layer_norm: bool) -> None:
        super().__init__()
        if not isinstance(attn, Attention):
            raise TypeError(f"attn must be an Attention layer, got {type(attn).__name__}")
        if mlp is not None and not isinstance(mlp, MLP):
            raise TypeError(f"mlp must be an MLP layer or None, got {type(mlp).__name__}")
        check_int("d_model", d_model, 1)
        if not isinstance(layer_norm, bool):
            raise TypeError(f"layer_norm must be a bool, got {type(layer_norm).__name__}")

        def norm() -> nn.Module:
            return nn.LayerNorm(d_model, bias=False) if layer_norm else nn.Identity()

        self.ln1, self.attn = norm(), attn
        self.ln2, self.mlp = (norm(), mlp) if mlp is not None else (None, None)

    def forward(self, x: Tensor, past: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """x (batch, n, d_model) -> ``(x_next, (k, v))`` (see :meth:`Attention.forward`)."""
        write, kv = self.attn(self.ln1(x), past)
        x = x + write
        if self.mlp is not None:
            x = x + self.mlp(self.ln2(x))
        return x, kv

    def forward_parts(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        """x -> ``(x_next, A, head_out, mlp_out)`` for the cache (see :meth:`Attention.parts`)."""
        head_out, A = self.attn.parts(self.ln1(x))
        x = x + head_out.sum(1)
        mlp_out = self.mlp(self.ln2(x)) if self.mlp is not None else None
        return (x if mlp_out is None else x + mlp_out), A, head_out, mlp_out


def sinusoidal_positions(d_model: int, n_ctx: int) -> Tensor:
    """The fixed sinusoidal table of Vaswani et al. (2017) in the book's shape (d_model, n_ctx).

    Column t holds position t: entry (2i, t) = sin(t / 10000^(2i/d_model)), entry (2i+1, t) = cos(same angle).
    """
    check_int("d_model", d_model, 1)
    check_int("n_ctx", n_ctx, 1)
    pos = torch.arange(n_ctx, dtype=torch.float64)[None, :]
    i = torch.arange(0, d_model, 2, dtype=torch.float64)[:, None]
    angle = pos / (10000.0 ** (i / d_model))
    table = torch.zeros(d_model, n_ctx, dtype=torch.float64)
    table[0::2] = torch.sin(angle)
    table[1::2] = torch.cos(angle[: d_model // 2])
    return table.float()
