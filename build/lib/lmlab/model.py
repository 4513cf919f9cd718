"""A tiny decoder-only transformer written in the book's notation.

The book writes one token per *column*: the residual stream is X^l with shape (d_model, n_context), the one-hot
tokens are T with shape (n_vocab, n_context), and a head reads with W_Q^h, W_K^h, W_V^h of shape
(d_head, d_model) and writes with W_O^h of shape (d_model, d_head). PyTorch puts one token per *row*: every
tensor that flows through :class:`TinyTransformer` is row-per-token, (batch, n, d_model). The two conventions are
transposes of each other, so in code a head computes

    Q = X W_Q^T,  K = X W_K^T,  V = X W_V^T            (batch, n, d_head)   [book: Q = W_Q X, ...]
    A = softmax(attn_scale * Q K^T + causal mask)       (batch, n, n)        [book: A_ij, query i, key j]
    z = A V                                             (batch, n, d_head)
    write = z W_O^T                                     (batch, n, d_model)  [book: W_O^h r^h]

and an attention layer adds the writes of its heads into the residual stream. The weights are *stored* in the
book's shapes (W_Q as (H, d_head, d_model), W_O as (H, d_model, d_head), W_E as (d_model, n_vocab), W_U as
(n_vocab, d_model), W_pos as (d_model, n_ctx)), so the accessors of :class:`TinyTransformer` return exactly the
matrices of the homework, and ``set_head`` / ``set_embeddings`` take them in the same shapes.

There are no biases anywhere. Attention is causal. LayerNorm is optional (off by default: the homework's circuit
analysis assumes none).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "POS_EMB_KINDS",
    "ACTIVATIONS",
    "ModelConfig",
    "Cache",
    "KVCache",
    "TinyTransformer",
    "attention_head",
    "sinusoidal_positions",
]

POS_EMB_KINDS = ("learned", "sinusoidal", "none")
ACTIVATIONS = ("gelu", "relu")


# ----------------------------------------------------------------------------------------------------------------
# configuration


def _check_int(name: str, value: Any, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value}")


@dataclass(frozen=True)
class ModelConfig:
    """The shape of a :class:`TinyTransformer`.

    Attributes:
        n_vocab: vocabulary size (rows of W_U, columns of W_E). Positive.
        n_ctx: context length, i.e. the number of columns of the positional table W_pos and the longest sequence
            the model accepts. Positive.
        d_model: width of the residual stream. Positive.
        n_layers: number of blocks L >= 0. ``0`` is the zero-layer model, logits L = W_U W_E T (plus the
            positional part W_U W_pos unless ``pos_emb="none"``; the homework's zero-layer model has none).
        n_heads: heads per attention layer H. Positive.
        d_head: width of one head. ``None`` means d_model // n_heads, and then d_model must be divisible by
            n_heads. After construction ``cfg.d_head`` always holds the resolved int.
        d_mlp: hidden width of the MLP of each block; ``None`` gives attention-only blocks.
        layer_norm: pre-LayerNorm (weight only, no bias) before each attention layer and MLP, and a final
            LayerNorm before the unembedding. Off by default.
        pos_emb: ``"learned"`` (a trained table W_pos), ``"sinusoidal"`` (the fixed table of Vaswani et al.),
            or ``"none"``.
        attn_scale: the factor in front of the scores, S = attn_scale * Q^T K in the book's notation.
            ``None`` means 1 / sqrt(d_head). Positive.
        act: MLP nonlinearity, ``"gelu"`` or ``"relu"`` (extra, used only when d_mlp is set).
        init_std: standard deviation of the Gaussian initialisation (extra; nanoGPT's 0.02 by default). The
            output matrices W_O and W_out get init_std / sqrt(2 n_layers), as in GPT-2.

    Raises:
        TypeError: a size is not an int, or a flag has the wrong type.
        ValueError: a size is out of range, d_model is not divisible by n_heads while d_head is None, pos_emb
            or act is not an allowed value, or attn_scale / init_std is not positive.

    Note: because d_head is resolved in place, ``dataclasses.replace(cfg, n_heads=...)`` keeps the old d_head;
    pass ``d_head=None`` explicitly to have it recomputed.
    """

    n_vocab: int
    n_ctx: int
    d_model: int
    n_layers: int = 2
    n_heads: int = 1
    d_head: int | None = None
    d_mlp: int | None = None
    layer_norm: bool = False
    pos_emb: str = "learned"
    attn_scale: float | None = None
    act: str = "gelu"
    init_std: float = 0.02

    def __post_init__(self) -> None:
        _check_int("n_vocab", self.n_vocab, minimum=1)
        _check_int("n_ctx", self.n_ctx, minimum=1)
        _check_int("d_model", self.d_model, minimum=1)
        _check_int("n_layers", self.n_layers, minimum=0)
        _check_int("n_heads", self.n_heads, minimum=1)
        if self.d_head is None:
            if self.d_model % self.n_heads != 0:
                raise ValueError(
                    f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads}) when d_head is None; "
                    "pass d_head explicitly otherwise"
                )
            object.__setattr__(self, "d_head", self.d_model // self.n_heads)
        else:
            _check_int("d_head", self.d_head, minimum=1)
        if self.d_mlp is not None:
            _check_int("d_mlp", self.d_mlp, minimum=1)
        if not isinstance(self.layer_norm, bool):
            raise TypeError(f"layer_norm must be a bool, got {type(self.layer_norm).__name__}")
        if self.pos_emb not in POS_EMB_KINDS:
            raise ValueError(f"pos_emb must be one of {POS_EMB_KINDS}, got {self.pos_emb!r}")
        if self.act not in ACTIVATIONS:
            raise ValueError(f"act must be one of {ACTIVATIONS}, got {self.act!r}")
        for name in ("attn_scale", "init_std"):
            value = getattr(self, name)
            if value is None and name == "attn_scale":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{name} must be a float, got {type(value).__name__}")
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive finite number, got {value}")

    @property
    def scale(self) -> float:
        """The score factor actually used: attn_scale, or 1 / sqrt(d_head) when attn_scale is None."""
        assert self.d_head is not None
        return float(self.attn_scale) if self.attn_scale is not None else 1.0 / math.sqrt(self.d_head)


# ----------------------------------------------------------------------------------------------------------------
# caches


@dataclass
class Cache:
    """Activations recorded by :meth:`TinyTransformer.run_with_cache`; everything is row-per-token.

    Attributes:
        resid: [X^0, X^1, ..., X^L], each (batch, n, d_model) (the book's X^l transposed); resid[-1] = X^final.
        attn: per layer (batch, H, n, n); ``attn[l][b, h, i, j]`` = A^h_ij, the weight query i puts on key j.
        head_out: per layer (batch, H, n, d_model): head h's write into the stream (the book's (W_O^h r^h)^T).
        mlp_out: per layer (batch, n, d_model), or None for attention-only blocks.

    The identity resid[l+1] = resid[l] + head_out[l].sum(1) + (mlp_out[l] or 0) holds to float rounding.
    """

    resid: list[Tensor] = field(default_factory=list)
    attn: list[Tensor] = field(default_factory=list)
    head_out: list[Tensor] = field(default_factory=list)
    mlp_out: list[Tensor | None] = field(default_factory=list)

    def __len__(self) -> int:
        """Number of layers recorded."""
        return len(self.attn)


@dataclass
class KVCache:
    """Keys and values of the tokens seen so far, for :meth:`TinyTransformer.forward_kv`.

    Attributes:
        keys: per layer (batch, H, n_past, d_head), row-per-token (the book's K^T for each head).
        values: per layer (batch, H, n_past, d_head).
        length: n_past, the number of tokens already processed; new tokens get positions length, length+1, ...
    """

    keys: list[Tensor] = field(default_factory=list)
    values: list[Tensor] = field(default_factory=list)
    length: int = 0

    def __len__(self) -> int:
        """n_past, the number of tokens already processed."""
        return self.length


# ----------------------------------------------------------------------------------------------------------------
# plain functions


def _as_tensor(name: str, value: Any) -> Tensor:
    if isinstance(value, Tensor):
        return value
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    raise TypeError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(value).__name__}")


def _causal_mask(n_q: int, n_k: int, device: torch.device) -> Tensor:
    """Boolean (n_q, n_k) mask, True where query i (absolute position n_k - n_q + i) may see key j."""
    offset = n_k - n_q
    i = torch.arange(n_q, device=device)[:, None]
    j = torch.arange(n_k, device=device)[None, :]
    return j <= i + offset


def attention_head(
    x: Tensor,
    W_Q: Tensor,
    W_K: Tensor,
    W_V: Tensor,
    W_O: Tensor,
    *,
    scale: float | None = None,
    causal: bool = True,
) -> tuple[Tensor, Tensor]:
    """One attention head, with weights in the book's shapes and activations row-per-token.

    Args:
        x: the residual stream, row-per-token, (batch, n, d_model) or (n, d_model) (the book's X^T).
        W_Q, W_K, W_V: (d_head, d_model), as in the book.
        W_O: (d_model, d_head), as in the book.
        scale: score factor; None means 1 / sqrt(d_head).
        causal: mask keys after the query (key j > query i) when True.

    Returns:
        ``(out, A)``: out is the head's write, (batch, n, d_model) (the book's (W_O A-weighted V)^T), and A is the
        attention pattern (batch, n, n) with A[b, i, j] the weight query i puts on key j; rows sum to 1. Without
        a batch dimension in x, both come back without one.

    Raises:
        TypeError: an argument is not a tensor.
        ValueError: shapes do not fit together.
    """
    for name, t in (("x", x), ("W_Q", W_Q), ("W_K", W_K), ("W_V", W_V), ("W_O", W_O)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    unbatched = x.dim() == 2
    if unbatched:
        x = x.unsqueeze(0)
    if x.dim() != 3:
        raise ValueError(f"x must have shape (batch, n, d_model) or (n, d_model), got {tuple(x.shape)}")
    d_model = x.shape[-1]
    if W_Q.dim() != 2 or W_Q.shape[1] != d_model:
        raise ValueError(f"W_Q must have shape (d_head, d_model={d_model}), got {tuple(W_Q.shape)}")
    d_head = W_Q.shape[0]
    for name, t in (("W_K", W_K), ("W_V", W_V)):
        if tuple(t.shape) != (d_head, d_model):
            raise ValueError(f"{name} must have shape (d_head={d_head}, d_model={d_model}), got {tuple(t.shape)}")
    if tuple(W_O.shape) != (d_model, d_head):
        raise ValueError(f"W_O must have shape (d_model={d_model}, d_head={d_head}), got {tuple(W_O.shape)}")
    if scale is None:
        scale = 1.0 / math.sqrt(d_head)
    q = x @ W_Q.T
    k = x @ W_K.T
    v = x @ W_V.T
    scores = scale * (q @ k.transpose(-1, -2))
    if causal:
        n = x.shape[1]
        scores = scores.masked_fill(~_causal_mask(n, n, x.device), float("-inf"))
    A = scores.softmax(dim=-1)
    out = (A @ v) @ W_O.T
    if unbatched:
        return out[0], A[0]
    return out, A


def sinusoidal_positions(d_model: int, n_ctx: int) -> Tensor:
    """The fixed sinusoidal table of Vaswani et al. (2017) in the book's shape (d_model, n_ctx).

    Column t holds position t: entry (2i, t) = sin(t / 10000^(2i/d_model)), entry (2i+1, t) = cos(same angle).
    """
    _check_int("d_model", d_model, minimum=1)
    _check_int("n_ctx", n_ctx, minimum=1)
    pos = torch.arange(n_ctx, dtype=torch.float64)[None, :]
    i = torch.arange(0, d_model, 2, dtype=torch.float64)[:, None]
    angle = pos / (10000.0 ** (i / d_model))
    table = torch.zeros(d_model, n_ctx, dtype=torch.float64)
    table[0::2] = torch.sin(angle)
    table[1::2] = torch.cos(angle[: d_model // 2])
    return table.float()


# ----------------------------------------------------------------------------------------------------------------
# modules


class Attention(nn.Module):
    """A multi-head causal attention layer storing per-head weights in the book's shapes.

    Parameters: W_Q, W_K, W_V of shape (H, d_head, d_model) and W_O of shape (H, d_model, d_head); no biases.
    The layer's output is the sum over heads of each head's write.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        H, e, d = cfg.n_heads, cfg.d_head, cfg.d_model
        assert e is not None
        self.scale = cfg.scale
        std_out = cfg.init_std / math.sqrt(2 * max(cfg.n_layers, 1))
        self.W_Q = nn.Parameter(torch.randn(H, e, d) * cfg.init_std)
        self.W_K = nn.Parameter(torch.randn(H, e, d) * cfg.init_std)
        self.W_V = nn.Parameter(torch.randn(H, e, d) * cfg.init_std)
        self.W_O = nn.Parameter(torch.randn(H, d, e) * std_out)

    def qkv(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Queries, keys, values of every head: x (batch, n, d_model) -> three (batch, H, n, d_head)."""
        q = torch.einsum("bnd,hed->bhne", x, self.W_Q)
        k = torch.einsum("bnd,hed->bhne", x, self.W_K)
        v = torch.einsum("bnd,hed->bhne", x, self.W_V)
        return q, k, v

    def pattern(self, q: Tensor, k: Tensor) -> Tensor:
        """Causal attention pattern (batch, H, n_q, n_k) from q (batch, H, n_q, e) and k (batch, H, n_k, e).

        When n_k > n_q the queries are taken to be the last n_q positions (key/value caching).
        """
        scores = self.scale * (q @ k.transpose(-1, -2))
        mask = _causal_mask(q.shape[-2], k.shape[-2], q.device)
        return scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)

    def forward(
        self, x: Tensor, *, return_parts: bool = False, past: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, Tensor | None, Tensor | None, tuple[Tensor, Tensor]]:
        """Run the layer on x (batch, n, d_model).

        Returns ``(out, A, head_out, (k, v))``: out (batch, n, d_model) is the layer's write; A (batch, H, n, n_k)
        and head_out (batch, H, n, d_model) are returned only when return_parts (else None); k, v
        (batch, H, n_k, d_head) include the past keys/values when ``past`` is given.
        """
        q, k, v = self.qkv(x)
        if past is not None:
            k = torch.cat([past[0], k], dim=-2)
            v = torch.cat([past[1], v], dim=-2)
        A = self.pattern(q, k)
        z = A @ v  # (b, H, n, e)
        if return_parts:
            head_out = torch.einsum("bhne,hde->bhnd", z, self.W_O)
            return head_out.sum(1), A, head_out, (k, v)
        out = torch.einsum("bhne,hde->bnd", z, self.W_O)
        return out, None, None, (k, v)


class MLP(nn.Module):
    """A two-layer MLP without biases: write = act(x W_in^T) W_out^T.

    Parameters in the book's (column) shapes: W_in (d_mlp, d_model), W_out (d_model, d_mlp).
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        assert cfg.d_mlp is not None
        std_out = cfg.init_std / math.sqrt(2 * max(cfg.n_layers, 1))
        self.W_in = nn.Parameter(torch.randn(cfg.d_mlp, cfg.d_model) * cfg.init_std)
        self.W_out = nn.Parameter(torch.randn(cfg.d_model, cfg.d_mlp) * std_out)
        self.act = F.gelu if cfg.act == "gelu" else F.relu

    def forward(self, x: Tensor) -> Tensor:
        """x (batch, n, d_model) -> the MLP's write (batch, n, d_model)."""
        return self.act(x @ self.W_in.T) @ self.W_out.T


class Block(nn.Module):
    """One transformer block: X <- X + Attn(LN(X)); then, if d_mlp is set, X <- X + MLP(LN(X))."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.ln1: nn.Module = nn.LayerNorm(cfg.d_model, bias=False) if cfg.layer_norm else nn.Identity()
        self.attn = Attention(cfg)
        self.mlp: MLP | None = None
        self.ln2: nn.Module | None = None
        if cfg.d_mlp is not None:
            self.ln2 = nn.LayerNorm(cfg.d_model, bias=False) if cfg.layer_norm else nn.Identity()
            self.mlp = MLP(cfg)

    def forward(
        self, x: Tensor, *, return_parts: bool = False, past: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor | None, tuple[Tensor, Tensor]]:
        """x (batch, n, d_model) -> ``(x_next, A, head_out, mlp_out, (k, v))`` (see :meth:`Attention.forward`)."""
        attn_out, A, head_out, kv = self.attn(self.ln1(x), return_parts=return_parts, past=past)
        x = x + attn_out
        mlp_out = None
        if self.mlp is not None:
            assert self.ln2 is not None
            mlp_out = self.mlp(self.ln2(x))
            x = x + mlp_out
        return x, A, head_out, mlp_out, kv


class Embed(nn.Module):
    """Token embedding with the weight stored in the book's shape W_E (d_model, n_vocab)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.W_E = nn.Parameter(torch.randn(cfg.d_model, cfg.n_vocab) * cfg.init_std)

    def forward(self, tokens: Tensor) -> Tensor:
        """tokens (batch, n) -> (batch, n, d_model), row t = column tokens[t] of W_E (the book's W_E T)."""
        return F.embedding(tokens, self.W_E.T)


class Unembed(nn.Module):
    """Unembedding with the weight stored in the book's shape W_U (n_vocab, d_model)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.W_U = nn.Parameter(torch.randn(cfg.n_vocab, cfg.d_model) * cfg.init_std)

    def forward(self, x: Tensor) -> Tensor:
        """x (batch, n, d_model) -> logits (batch, n, n_vocab) (the book's L = W_U X, transposed)."""
        return x @ self.W_U.T


class TinyTransformer(nn.Module):
    """A small decoder-only transformer whose weights are the matrices of the book.

    Every tensor argument and result is row-per-token: tokens (batch, n), activations (batch, n, d_model),
    logits (batch, n, n_vocab). The accessors (``W_E()``, ``W_Q(l, h)``, ...) return detached copies in the
    book's column shapes, and ``set_head`` / ``set_embeddings`` take the same shapes.

    Submodules: ``embed_tokens`` (parameter W_E), ``pos`` (parameter W_pos when learned, a buffer when
    sinusoidal, absent when "none"), ``blocks`` (each with ``attn`` and optionally ``mlp``), ``ln_final``
    (identity without layer_norm), ``unembed`` (parameter W_U).

    Example::

        cfg = ModelConfig(n_vocab=10, n_ctx=16, d_model=32, n_layers=2, n_heads=2)
        model = TinyTransformer(cfg).to(lmlab.device())
        logits, cache = model.run_with_cache(tokens)      # tokens: (batch, n) integer tensor
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        if not isinstance(cfg, ModelConfig):
            raise TypeError(f"cfg must be a ModelConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        self.embed_tokens = Embed(cfg)
        self.W_pos_param: nn.Parameter | None = None
        if cfg.pos_emb == "learned":
            self.W_pos_param = nn.Parameter(torch.randn(cfg.d_model, cfg.n_ctx) * cfg.init_std)
        elif cfg.pos_emb == "sinusoidal":
            self.register_buffer("W_pos_buffer", sinusoidal_positions(cfg.d_model, cfg.n_ctx))
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layers)])
        self.ln_final: nn.Module = nn.LayerNorm(cfg.d_model, bias=False) if cfg.layer_norm else nn.Identity()
        self.unembed = Unembed(cfg)

    # ---------------------------------------------------------------------------------------------- helpers
    @property
    def device(self) -> torch.device:
        """The device the parameters live on."""
        return self.unembed.W_U.device

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the parameters."""
        return self.unembed.W_U.dtype

    def _pos_table(self) -> Tensor | None:
        """The positional table (d_model, n_ctx), attached to the graph, or None for pos_emb="none"."""
        if self.cfg.pos_emb == "learned":
            return self.W_pos_param
        if self.cfg.pos_emb == "sinusoidal":
            return self.W_pos_buffer  # type: ignore[return-value]
        return None

    def _check_tokens(self, tokens: Any, *, start: int = 0) -> Tensor:
        if isinstance(tokens, np.ndarray):
            tokens = torch.from_numpy(tokens)
        if not isinstance(tokens, Tensor):
            raise TypeError(f"tokens must be a torch.Tensor of integer ids, got {type(tokens).__name__}")
        if tokens.is_floating_point() or tokens.is_complex() or tokens.dtype == torch.bool:
            raise TypeError(f"tokens must hold integer ids, got dtype {tokens.dtype}")
        if tokens.dim() != 2:
            raise ValueError(f"tokens must have shape (batch, n), got {tuple(tokens.shape)}")
        n = tokens.shape[1]
        if n < 1:
            raise ValueError("tokens must hold at least one position (n >= 1)")
        if start + n > self.cfg.n_ctx:
            what = f"sequence length {n}" if start == 0 else f"sequence length {start} (cached) + {n} (new)"
            raise ValueError(f"{what} exceeds the context length n_ctx = {self.cfg.n_ctx}")
        if tokens.numel() > 0:
            lo, hi = int(tokens.min()), int(tokens.max())
            if lo < 0 or hi >= self.cfg.n_vocab:
                raise ValueError(
                    f"token ids must lie in [0, n_vocab) = [0, {self.cfg.n_vocab}), got range [{lo}, {hi}]"
                )
        return tokens.to(device=self.device, dtype=torch.long)

    def _check_layer_head(self, l: int, h: int | None = None) -> None:
        if isinstance(l, bool) or not isinstance(l, (int, np.integer)):
            raise TypeError(f"l must be an int, got {type(l).__name__}")
        if not 0 <= l < self.cfg.n_layers:
            allowed = f"[0, {self.cfg.n_layers})" if self.cfg.n_layers else "none (the model has 0 layers)"
            raise ValueError(f"layer l must be in {allowed}, got {l}")
        if h is not None:
            if isinstance(h, bool) or not isinstance(h, (int, np.integer)):
                raise TypeError(f"h must be an int, got {type(h).__name__}")
            if not 0 <= h < self.cfg.n_heads:
                raise ValueError(f"head h must be in [0, {self.cfg.n_heads}), got {h}")

    # ---------------------------------------------------------------------------------------------- forward
    def embed(self, tokens: Tensor, *, start: int = 0) -> Tensor:
        """X^0 = token embedding + positional embedding, row-per-token (the book's W_E T + W_pos, transposed).

        Args:
            tokens: integer ids, (batch, n), each in [0, n_vocab).
            start: position of the first token (extra; used by key/value caching). start + n <= n_ctx.

        Returns:
            (batch, n, d_model).

        Raises:
            TypeError: tokens is not an integer tensor.
            ValueError: wrong shape, ids out of range, or start + n > n_ctx.
        """
        tokens = self._check_tokens(tokens, start=start)
        x = self.embed_tokens(tokens)
        table = self._pos_table()
        if table is not None:
            x = x + table[:, start : start + tokens.shape[1]].T
        return x

    def _check_embeds(self, x0: Any) -> Tensor:
        if not isinstance(x0, Tensor):
            raise TypeError(f"x0 must be a torch.Tensor, got {type(x0).__name__}")
        if x0.dim() != 3 or x0.shape[-1] != self.cfg.d_model:
            raise ValueError(f"x0 must have shape (batch, n, d_model={self.cfg.d_model}), got {tuple(x0.shape)}")
        n = x0.shape[1]
        if n < 1:
            raise ValueError("x0 must hold at least one position (n >= 1)")
        if n > self.cfg.n_ctx:
            raise ValueError(f"sequence length {n} exceeds the context length n_ctx = {self.cfg.n_ctx}")
        return x0

    def _run(self, x: Tensor, cache: Cache | None) -> Tensor:
        if cache is not None:
            cache.resid.append(x)
        for block in self.blocks:
            x, A, head_out, mlp_out, _ = block(x, return_parts=cache is not None)
            if cache is not None:
                assert A is not None and head_out is not None
                cache.resid.append(x)
                cache.attn.append(A)
                cache.head_out.append(head_out)
                cache.mlp_out.append(mlp_out)
        return self.unembed(self.ln_final(x))

    def forward_embeds(self, x0: Tensor, return_cache: bool = False) -> Tensor | tuple[Tensor, Cache]:
        """Run the blocks and the unembedding from given input embeddings X^0.

        forward_embeds does NOT add positional embeddings (``embed`` does): x0 is used as X^0 as it is. A soft
        prompt is prepended with ``model.forward_embeds(torch.cat([P, model.embed(tokens)], 1))`` (positions
        then count from the start of the real tokens; add rows of W_pos yourself if you want otherwise).

        Args:
            x0: row-per-token input embeddings, (batch, n, d_model), n <= n_ctx.
            return_cache: also return a :class:`Cache`.

        Returns:
            logits (batch, n, n_vocab), or ``(logits, cache)``.

        Raises:
            TypeError / ValueError: x0 is not a tensor of the right shape, or n > n_ctx.
        """
        x0 = self._check_embeds(x0)
        cache = Cache() if return_cache else None
        logits = self._run(x0, cache)
        if cache is not None:
            return logits, cache
        return logits

    def forward(self, tokens: Tensor) -> Tensor:
        """Logits for every position: tokens (batch, n) -> (batch, n, n_vocab) (the book's L transposed).

        ``logits[b, t]`` scores the token that follows position t. Raises ValueError if n > n_ctx or an id is
        outside [0, n_vocab).
        """
        return self._run(self.embed(tokens), None)

    def run_with_cache(self, tokens: Tensor) -> tuple[Tensor, Cache]:
        """Logits (batch, n, n_vocab) and a :class:`Cache` of every residual stream, pattern and write.

        The cache satisfies resid[l+1] = resid[l] + head_out[l].sum(1) + (mlp_out[l] or 0).
        """
        out = self.forward_embeds(self.embed(tokens), return_cache=True)
        assert isinstance(out, tuple)
        return out

    def forward_kv(self, tokens: Tensor, past: KVCache | None = None) -> tuple[Tensor, KVCache]:
        """Key/value-cached forward pass, for generation one token (or chunk) at a time.

        Args:
            tokens: the new tokens, (batch, n_new); they take positions len(past), ..., len(past) + n_new - 1.
            past: the :class:`KVCache` returned by the previous call, or None to start afresh.

        Returns:
            ``(logits, past)``: logits (batch, n_new, n_vocab) for the new positions only, equal (to float
            rounding) to the matching rows of ``forward`` on the whole sequence; past now covers every token.

        Raises:
            ValueError: len(past) + n_new > n_ctx, bad ids, or a batch size different from the cached one.
        """
        if past is not None and not isinstance(past, KVCache):
            raise TypeError(f"past must be a KVCache or None, got {type(past).__name__}")
        start = past.length if past is not None else 0
        x = self.embed(tokens, start=start)
        if past is not None and past.keys and past.keys[0].shape[0] != x.shape[0]:
            raise ValueError(f"tokens has batch size {x.shape[0]} but past was built with {past.keys[0].shape[0]}")
        new = KVCache(length=start + x.shape[1])
        for l, block in enumerate(self.blocks):
            layer_past = (past.keys[l], past.values[l]) if past is not None and past.length > 0 else None
            x, _, _, _, (k, v) = block(x, past=layer_past)
            new.keys.append(k)
            new.values.append(v)
        return self.unembed(self.ln_final(x)), new

    @torch.no_grad()
    def generate(
        self,
        tokens: Tensor,
        max_new_tokens: int,
        *,
        temperature: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Extend each sequence by max_new_tokens tokens (extra), using key/value caching.

        Args:
            tokens: prompt, (batch, n) integer ids.
            max_new_tokens: how many tokens to append; n + max_new_tokens <= n_ctx.
            temperature: 0 for greedy decoding (argmax), else sample from softmax(logits / temperature).
            generator: optional torch.Generator (on the model's device) for sampling.

        Returns:
            (batch, n + max_new_tokens): the prompt followed by the generated ids.
        """
        _check_int("max_new_tokens", max_new_tokens, minimum=0)
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or temperature < 0:
            raise ValueError(f"temperature must be a float >= 0, got {temperature!r}")
        tokens = self._check_tokens(tokens)
        if tokens.shape[1] + max_new_tokens > self.cfg.n_ctx:
            raise ValueError(
                f"prompt length {tokens.shape[1]} + max_new_tokens {max_new_tokens} exceeds n_ctx = {self.cfg.n_ctx}"
            )
        out = tokens
        if max_new_tokens == 0:
            return out
        logits, past = self.forward_kv(tokens)
        for step in range(max_new_tokens):
            last = logits[:, -1]
            if temperature == 0:
                nxt = last.argmax(-1, keepdim=True)
            else:
                probs = (last / temperature).softmax(-1)
                nxt = torch.multinomial(probs, 1, generator=generator)
            out = torch.cat([out, nxt], dim=1)
            if step + 1 < max_new_tokens:
                logits, past = self.forward_kv(nxt, past)
        return out

    # ---------------------------------------------------------------------------------------------- accessors
    def W_E(self) -> Tensor:
        """Token embedding W_E, (d_model, n_vocab) (detached copy): column v embeds token v."""
        return self.embed_tokens.W_E.detach().clone()

    def W_U(self) -> Tensor:
        """Unembedding W_U, (n_vocab, d_model) (detached copy)."""
        return self.unembed.W_U.detach().clone()

    def W_pos(self) -> Tensor:
        """Positional table W_pos, (d_model, n_ctx) (detached copy): column t is added at position t.

        For pos_emb="none" this is the zero matrix (nothing is added).
        """
        table = self._pos_table()
        if table is None:
            return torch.zeros(self.cfg.d_model, self.cfg.n_ctx, device=self.device, dtype=self.dtype)
        return table.detach().clone()

    def W_Q(self, l: int, h: int) -> Tensor:
        """Query matrix W_Q^h of layer l, (d_head, d_model) (detached copy)."""
        self._check_layer_head(l, h)
        return self.blocks[l].attn.W_Q[h].detach().clone()

    def W_K(self, l: int, h: int) -> Tensor:
        """Key matrix W_K^h of layer l, (d_head, d_model) (detached copy)."""
        self._check_layer_head(l, h)
        return self.blocks[l].attn.W_K[h].detach().clone()

    def W_V(self, l: int, h: int) -> Tensor:
        """Value matrix W_V^h of layer l, (d_head, d_model) (detached copy)."""
        self._check_layer_head(l, h)
        return self.blocks[l].attn.W_V[h].detach().clone()

    def W_O(self, l: int, h: int) -> Tensor:
        """Output matrix W_O^h of layer l, (d_model, d_head) (detached copy)."""
        self._check_layer_head(l, h)
        return self.blocks[l].attn.W_O[h].detach().clone()

    def W_QK(self, l: int, h: int) -> Tensor:
        """W_QK^h = W_Q^hT W_K^h of layer l, (d_model, d_model): score(i, j) = attn_scale * x_i^T W_QK x_j."""
        return self.W_Q(l, h).T @ self.W_K(l, h)

    def W_OV(self, l: int, h: int) -> Tensor:
        """W_OV^h = W_O^h W_V^h of layer l, (d_model, d_model): the head writes W_OV x_j for attended key j.

        (Row-per-token libraries such as TransformerLens form W_V W_O, the transpose of this.)
        """
        return self.W_O(l, h) @ self.W_V(l, h)

    def W_in(self, l: int) -> Tensor:
        """MLP input matrix of layer l, (d_mlp, d_model) (extra; ValueError for attention-only models)."""
        self._check_layer_head(l)
        mlp = self.blocks[l].mlp
        if mlp is None:
            raise ValueError("the model is attention-only (cfg.d_mlp is None): it has no W_in")
        return mlp.W_in.detach().clone()

    def W_out(self, l: int) -> Tensor:
        """MLP output matrix of layer l, (d_model, d_mlp) (extra; ValueError for attention-only models)."""
        self._check_layer_head(l)
        mlp = self.blocks[l].mlp
        if mlp is None:
            raise ValueError("the model is attention-only (cfg.d_mlp is None): it has no W_out")
        return mlp.W_out.detach().clone()

    # ---------------------------------------------------------------------------------------------- setters
    @staticmethod
    @torch.no_grad()
    def _copy_into(name: str, target: Tensor, value: Any, shape_text: str) -> None:
        value = _as_tensor(name, value)
        if tuple(value.shape) != tuple(target.shape):
            raise ValueError(f"{name} must have shape {shape_text} = {tuple(target.shape)}, got {tuple(value.shape)}")
        target.copy_(value.to(device=target.device, dtype=target.dtype))

    def set_head(
        self,
        l: int,
        h: int,
        *,
        W_Q: Tensor | np.ndarray | None = None,
        W_K: Tensor | np.ndarray | None = None,
        W_V: Tensor | np.ndarray | None = None,
        W_O: Tensor | np.ndarray | None = None,
    ) -> None:
        """Overwrite the weights of head h in layer l (those given; the rest stay).

        Args:
            l, h: layer in [0, n_layers) and head in [0, n_heads).
            W_Q, W_K, W_V: (d_head, d_model) each, book shapes; tensors or numpy arrays.
            W_O: (d_model, d_head).

        Raises:
            TypeError: a weight is neither a tensor nor a numpy array.
            ValueError: bad l or h, or a weight of the wrong shape (the message names it and the shape).
        """
        self._check_layer_head(l, h)
        attn = self.blocks[l].attn
        qkv_shape = "(d_head, d_model)"
        for name, value, param, text in (
            ("W_Q", W_Q, attn.W_Q, qkv_shape),
            ("W_K", W_K, attn.W_K, qkv_shape),
            ("W_V", W_V, attn.W_V, qkv_shape),
            ("W_O", W_O, attn.W_O, "(d_model, d_head)"),
        ):
            if value is not None:
                self._copy_into(name, param.data[h], value, text)

    def set_embeddings(
        self,
        *,
        W_E: Tensor | np.ndarray | None = None,
        W_U: Tensor | np.ndarray | None = None,
        W_pos: Tensor | np.ndarray | None = None,
    ) -> None:
        """Overwrite the embedding (d_model, n_vocab), unembedding (n_vocab, d_model) and/or positional table
        (d_model, n_ctx), in the book's shapes.

        Raises:
            TypeError: a weight is neither a tensor nor a numpy array.
            ValueError: a weight of the wrong shape, or W_pos for a model whose pos_emb is not "learned".
        """
        if W_E is not None:
            self._copy_into("W_E", self.embed_tokens.W_E.data, W_E, "(d_model, n_vocab)")
        if W_U is not None:
            self._copy_into("W_U", self.unembed.W_U.data, W_U, "(n_vocab, d_model)")
        if W_pos is not None:
            if self.W_pos_param is None:
                raise ValueError(f"W_pos can only be set when pos_emb='learned' (this model has {self.cfg.pos_emb!r})")
            self._copy_into("W_pos", self.W_pos_param.data, W_pos, "(d_model, n_ctx)")

    def set_mlp(
        self, l: int, *, W_in: Tensor | np.ndarray | None = None, W_out: Tensor | np.ndarray | None = None
    ) -> None:
        """Overwrite the MLP weights of layer l (extra): W_in (d_mlp, d_model), W_out (d_model, d_mlp)."""
        self._check_layer_head(l)
        mlp = self.blocks[l].mlp
        if mlp is None:
            raise ValueError("the model is attention-only (cfg.d_mlp is None): it has no MLP to set")
        if W_in is not None:
            self._copy_into("W_in", mlp.W_in.data, W_in, "(d_mlp, d_model)")
        if W_out is not None:
            self._copy_into("W_out", mlp.W_out.data, W_out, "(d_model, d_mlp)")

    def n_params(self) -> int:
        """Number of trainable parameters (extra)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
