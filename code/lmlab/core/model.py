"""A tiny decoder-only transformer whose weights are the matrices of the book.

The layers, the attention head and the conventions (weights in the book's column shapes, activations
row-per-token) are in :mod:`lmlab.layers`. There are no biases anywhere, attention is causal, and LayerNorm is
optional (off by default: the homework's circuit analysis assumes none).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from lmlab.core.checks import check_float, check_int, check_tensor
from lmlab.core.layers import MLP, Attention, Block, Head, causal_mask, default_scale, sinusoidal_positions

__all__ = [
    "ACTIVATIONS",
    "POS_EMB_KINDS",
    "Cache",
    "Head",
    "KVCache",
    "ModelConfig",
    "TinyTransformer",
    "causal_mask",
    "sinusoidal_positions",
]

POS_EMB_KINDS = ("learned", "sinusoidal", "none")
ACTIVATIONS = ("gelu", "relu")


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
        check_int("n_vocab", self.n_vocab, 1)
        check_int("n_ctx", self.n_ctx, 1)
        check_int("d_model", self.d_model, 1)
        check_int("n_layers", self.n_layers, 0)
        check_int("n_heads", self.n_heads, 1)
        if self.d_head is None:
            if self.d_model % self.n_heads != 0:
                raise ValueError(
                    f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads}) when d_head is None; "
                    "pass d_head explicitly otherwise"
                )
            object.__setattr__(self, "d_head", self.d_model // self.n_heads)
        else:
            check_int("d_head", self.d_head, 1)
        if self.d_mlp is not None:
            check_int("d_mlp", self.d_mlp, 1)
        if not isinstance(self.layer_norm, bool):
            raise TypeError(f"layer_norm must be a bool, got {type(self.layer_norm).__name__}")
        if self.pos_emb not in POS_EMB_KINDS:
            raise ValueError(f"pos_emb must be one of {POS_EMB_KINDS}, got {self.pos_emb!r}")
        if self.act not in ACTIVATIONS:
            raise ValueError(f"act must be one of {ACTIVATIONS}, got {self.act!r}")
        if self.attn_scale is not None:
            check_float("attn_scale", self.attn_scale, 0.0, strict=True)
        check_float("init_std", self.init_std, 0.0, strict=True)

    @property
    def scale(self) -> float:
        """The score factor actually used: attn_scale, or 1 / sqrt(d_head) when attn_scale is None."""
        assert self.d_head is not None
        return float(self.attn_scale) if self.attn_scale is not None else default_scale(self.d_head)


@dataclass
class Cache:
    """Activations recorded by :meth:`TinyTransformer.run_with_cache`; everything is row-per-token.

    Attributes:
        resid: [X^0, X^1, ..., X^L], each (batch, n, d_model) (the book's X^l transposed); resid[-1] = X^final.
        attn: per layer (batch, H, n, n); ``attn[l][b, h, i, j]`` = A^h_ij, the weight query i puts on key j.
        head_out: per layer (batch, H, n, d_model): head h's write into the stream (the book's (W_O^h r^h)^T).
        mlp_out: per layer (batch, n, d_model), or None for attention-only blocks.
    """

    resid: list[Tensor] = field(default_factory=list)
    attn: list[Tensor] = field(default_factory=list)
    head_out: list[Tensor] = field(default_factory=list)
    mlp_out: list[Tensor | None] = field(default_factory=list)

    def __len__(self) -> int:
        """Number of layers recorded."""
        return len(self.attn)

    def residual_sum_error(self) -> float:
        """Largest |X^final - (X^0 + every head's write + every MLP's write)|: zero up to rounding, because each
        block only adds to the stream (resid[l+1] = resid[l] + head_out[l].sum(1) + mlp_out[l])."""
        total = self.resid[0]
        for head_out, mlp_out in zip(self.head_out, self.mlp_out):
            total = total + head_out.sum(1) + (0.0 if mlp_out is None else mlp_out)
        return float((self.resid[-1] - total).detach().abs().max())


@dataclass
class KVCache:
    """Keys and values of the tokens seen so far, for :meth:`TinyTransformer.forward_kv`.

    Attributes:
        keys, values: per layer (batch, H, n_past, d_head), row-per-token (the book's K^T, V^T for each head).
        length: n_past, the number of tokens already processed; new tokens get positions length, length+1, ...
    """

    keys: list[Tensor] = field(default_factory=list)
    values: list[Tensor] = field(default_factory=list)
    length: int = 0

    def __len__(self) -> int:
        """n_past, the number of tokens already processed."""
        return self.length


class TinyTransformer(nn.Module):
    """A small decoder-only transformer whose weights are the matrices of the book.

    Every tensor argument and result is row-per-token: tokens (batch, n), activations (batch, n, d_model),
    logits (batch, n, n_vocab). ``head(l, h)`` returns a head's weights as a :class:`~lmlab.layers.Head`, and the
    accessors (``W_E()``, ``W_Q(l, h)``, ...) return detached copies in the book's column shapes; ``set_head`` /
    ``set_embeddings`` take the same shapes.

    Submodules: ``embed_tokens.W_E``, ``W_pos_param`` (learned) or the buffer ``W_pos_buffer`` (sinusoidal),
    ``blocks`` (each with ``attn`` and optionally ``mlp``), ``ln_final`` (identity without layer_norm),
    ``unembed.W_U``.

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
        d, std = cfg.d_model, cfg.init_std
        out_std = std / math.sqrt(2 * max(cfg.n_layers, 1))  # GPT-2's scaled init of the output matrices
        self.embed_tokens = nn.Module()
        self.embed_tokens.W_E = nn.Parameter(torch.randn(d, cfg.n_vocab) * std)
        self.W_pos_param: nn.Parameter | None = None
        if cfg.pos_emb == "learned":
            self.W_pos_param = nn.Parameter(torch.randn(d, cfg.n_ctx) * std)
        elif cfg.pos_emb == "sinusoidal":
            self.register_buffer("W_pos_buffer", sinusoidal_positions(d, cfg.n_ctx))
        blocks = []
        for _ in range(cfg.n_layers):  # one block at a time: the order of the random draws is the seed's contract
            attn = Attention(cfg.n_heads, d, cfg.d_head, cfg.scale, std, out_std)
            mlp = MLP(d, cfg.d_mlp, cfg.act, std, out_std) if cfg.d_mlp is not None else None
            blocks.append(Block(attn, mlp, d, cfg.layer_norm))
        self.blocks = nn.ModuleList(blocks)
        self.ln_final: nn.Module = nn.LayerNorm(d, bias=False) if cfg.layer_norm else nn.Identity()
        self.unembed = nn.Module()
        self.unembed.W_U = nn.Parameter(torch.randn(cfg.n_vocab, d) * std)

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
        return {"learned": self.W_pos_param, "sinusoidal": getattr(self, "W_pos_buffer", None)}.get(self.cfg.pos_emb)

    def _check_n(self, n: int, start: int = 0) -> None:
        if n < 1:
            raise ValueError("the input must hold at least one position (n >= 1)")
        if start + n > self.cfg.n_ctx:
            what = f"sequence length {n}" if start == 0 else f"sequence length {start} (cached) + {n} (new)"
            raise ValueError(f"{what} exceeds the context length n_ctx = {self.cfg.n_ctx}")

    def _tokens(self, tokens: Any, start: int = 0) -> Tensor:
        """Checked integer ids (batch, n) as a long tensor on the model's device."""
        tokens = check_tensor("tokens", tokens, 2, numpy=True)
        if tokens.is_floating_point() or tokens.is_complex() or tokens.dtype == torch.bool:
            raise TypeError(f"tokens must hold integer ids, got dtype {tokens.dtype}")
        self._check_n(tokens.shape[1], start)
        lo, hi = int(tokens.min()), int(tokens.max())
        if lo < 0 or hi >= self.cfg.n_vocab:
            raise ValueError(f"token ids must lie in [0, n_vocab) = [0, {self.cfg.n_vocab}), got range [{lo}, {hi}]")
        return tokens.to(device=self.device, dtype=torch.long)

    def _block(self, l: int, h: int | None = None) -> Block:
        if self.cfg.n_layers == 0:
            raise ValueError(f"layer l must be in none (the model has 0 layers), got {l}")
        check_int("l", l, 0, self.cfg.n_layers - 1)
        if h is not None:
            check_int("h", h, 0, self.cfg.n_heads - 1)
        return self.blocks[l]

    # ---------------------------------------------------------------------------------------------- forward
    def embed(self, tokens: Tensor, *, start: int = 0) -> Tensor:
        """X^0 = token embedding + positional embedding, (batch, n, d_model) (the book's W_E T + W_pos, transposed).

        Args:
            tokens: integer ids (batch, n), each in [0, n_vocab); a numpy array is accepted.
            start: position of the first token (used by key/value caching); start + n <= n_ctx.

        Raises:
            TypeError: tokens is not an integer tensor. ValueError: wrong shape, ids out of range, too long.
        """
        tokens = self._tokens(tokens, start)
        x = self.embed_tokens.W_E.T[tokens]
        table = self._pos_table()
        return x if table is None else x + table[:, start : start + tokens.shape[1]].T

    def _run(self, x: Tensor, cache: Cache | None) -> Tensor:
        for block in self.blocks:
            if cache is None:
                x, _ = block(x)
                continue
            cache.resid.append(x)
            x, A, head_out, mlp_out = block.forward_parts(x)
            cache.attn.append(A)
            cache.head_out.append(head_out)
            cache.mlp_out.append(mlp_out)
        if cache is not None:
            cache.resid.append(x)
        return self.ln_final(x) @ self.unembed.W_U.T

    def forward_embeds(self, x0: Tensor, return_cache: bool = False) -> Tensor | tuple[Tensor, Cache]:
        """Run the blocks and the unembedding from given input embeddings X^0 (batch, n, d_model), n <= n_ctx.

        No positional embedding is added (``embed`` adds it): a soft prompt is prepended with
        ``model.forward_embeds(torch.cat([P, model.embed(tokens)], 1))``.

        Returns:
            logits (batch, n, n_vocab), or ``(logits, cache)`` with ``return_cache``.
        """
        x0 = check_tensor("x0", x0, 3, floating=True)
        if x0.shape[-1] != self.cfg.d_model:
            raise ValueError(f"x0 must have shape (batch, n, d_model={self.cfg.d_model}), got {tuple(x0.shape)}")
        self._check_n(x0.shape[1])
        cache = Cache() if return_cache else None
        logits = self._run(x0, cache)
        return (logits, cache) if cache is not None else logits

    def forward(self, tokens: Tensor) -> Tensor:
        """Logits (batch, n, n_vocab) for tokens (batch, n): ``logits[b, t]`` scores the token after position t."""
        return self._run(self.embed(tokens), None)

    def run_with_cache(self, tokens: Tensor) -> tuple[Tensor, Cache]:
        """Logits (batch, n, n_vocab) and a :class:`Cache` of every residual stream, pattern and write."""
        cache = Cache()
        return self._run(self.embed(tokens), cache), cache

    def forward_kv(self, tokens: Tensor, past: KVCache | None = None) -> tuple[Tensor, KVCache]:
        """Key/value-cached forward pass, for generation one token (or chunk) at a time.

        Args:
            tokens: the new tokens (batch, n_new); they take positions len(past), ..., len(past) + n_new - 1.
            past: the :class:`KVCache` returned by the previous call, or None to start afresh.

        Returns:
            ``(logits, past)``: logits (batch, n_new, n_vocab) for the new positions, equal (to rounding) to the
            matching rows of ``forward`` on the whole sequence; ``past`` now covers every token.
        """
        if past is not None and not isinstance(past, KVCache):
            raise TypeError(f"past must be a KVCache or None, got {type(past).__name__}")
        start = past.length if past is not None else 0
        x = self.embed(tokens, start=start)
        if past is not None and past.keys and past.keys[0].shape[0] != x.shape[0]:
            raise ValueError(f"tokens has batch size {x.shape[0]} but past was built with {past.keys[0].shape[0]}")
        new = KVCache(length=start + x.shape[1])
        for l, block in enumerate(self.blocks):
            x, (k, v) = block(x, (past.keys[l], past.values[l]) if past is not None and past.length else None)
            new.keys.append(k)
            new.values.append(v)
        return self.ln_final(x) @ self.unembed.W_U.T, new

    @torch.no_grad()
    def generate(
        self, tokens: Tensor, max_new_tokens: int, *, temperature: float = 0.0, generator: torch.Generator | None = None
    ) -> Tensor:
        """Extend each sequence (batch, n) by max_new_tokens tokens with key/value caching: (batch, n + new).

        ``temperature`` 0 decodes greedily (argmax), else samples softmax(logits / temperature) with ``generator``
        (on the model's device). n + max_new_tokens <= n_ctx.
        """
        check_int("max_new_tokens", max_new_tokens, 0)
        check_float("temperature", temperature, 0.0)
        out = nxt = self._tokens(tokens)
        self._check_n(out.shape[1] + max_new_tokens)
        past = None
        for _ in range(max_new_tokens):
            logits, past = self.forward_kv(nxt, past)
            last = logits[:, -1]
            if temperature == 0:
                nxt = last.argmax(-1, keepdim=True)
            else:
                nxt = torch.multinomial((last / temperature).softmax(-1), 1, generator=generator)
            out = torch.cat([out, nxt], dim=1)
        return out

    # ---------------------------------------------------------------------------------------------- weights
    def head(self, l: int, h: int) -> Head:
        """Head h of layer l as a :class:`~lmlab.layers.Head`: detached copies of W_Q, W_K, W_V (d_head, d_model)
        and W_O (d_model, d_head), the score factor, and the circuits ``W_QK`` and ``W_OV`` (d_model, d_model)."""
        return self._block(l, h).attn.head(h)

    def W_Q(self, l: int, h: int) -> Tensor:
        """Query matrix W_Q^h of layer l, (d_head, d_model) (detached copy)."""
        return self.head(l, h).W_Q

    def W_K(self, l: int, h: int) -> Tensor:
        """Key matrix W_K^h of layer l, (d_head, d_model) (detached copy)."""
        return self.head(l, h).W_K

    def W_V(self, l: int, h: int) -> Tensor:
        """Value matrix W_V^h of layer l, (d_head, d_model) (detached copy)."""
        return self.head(l, h).W_V

    def W_O(self, l: int, h: int) -> Tensor:
        """Output matrix W_O^h of layer l, (d_model, d_head) (detached copy)."""
        return self.head(l, h).W_O

    def W_QK(self, l: int, h: int) -> Tensor:
        """``self.head(l, h).W_QK`` = W_Q^T W_K, (d_model, d_model)."""
        return self.head(l, h).W_QK

    def W_OV(self, l: int, h: int) -> Tensor:
        """``self.head(l, h).W_OV`` = W_O W_V, (d_model, d_model)."""
        return self.head(l, h).W_OV

    def W_E(self) -> Tensor:
        """Token embedding W_E, (d_model, n_vocab) (detached copy): column v embeds token v."""
        return self.embed_tokens.W_E.detach().clone()

    def W_U(self) -> Tensor:
        """Unembedding W_U, (n_vocab, d_model) (detached copy)."""
        return self.unembed.W_U.detach().clone()

    def W_pos(self) -> Tensor:
        """Positional table W_pos, (d_model, n_ctx) (detached copy); the zero matrix for pos_emb="none"."""
        table = self._pos_table()
        if table is None:
            return torch.zeros(self.cfg.d_model, self.cfg.n_ctx, device=self.device, dtype=self.dtype)
        return table.detach().clone()

    def _mlp(self, l: int) -> MLP:
        mlp = self._block(l).mlp
        if mlp is None:
            raise ValueError("the model is attention-only (cfg.d_mlp is None): it has no MLP, W_in or W_out")
        return mlp

    def W_in(self, l: int) -> Tensor:
        """MLP input matrix of layer l, (d_mlp, d_model) (ValueError for attention-only models)."""
        return self._mlp(l).W_in.detach().clone()

    def W_out(self, l: int) -> Tensor:
        """MLP output matrix of layer l, (d_model, d_mlp) (ValueError for attention-only models)."""
        return self._mlp(l).W_out.detach().clone()

    @torch.no_grad()
    def _set(self, targets: dict[str, tuple[Tensor, str]], values: dict[str, Any]) -> None:
        for name, value in values.items():
            if value is None:
                continue
            target, shape_text = targets[name]
            value = check_tensor(name, value, numpy=True)
            if tuple(value.shape) != tuple(target.shape):
                raise ValueError(
                    f"{name} must have shape {shape_text} = {tuple(target.shape)}, got {tuple(value.shape)}"
                )
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
        """Overwrite the weights given for head h of layer l: W_Q, W_K, W_V (d_head, d_model), W_O (d_model, d_head).

        Raises:
            TypeError: a weight is neither a tensor nor a numpy array. ValueError: bad l or h, or a wrong shape.
        """
        a, qkv = self._block(l, h).attn, "(d_head, d_model)"
        targets = {"W_Q": (a.W_Q[h], qkv), "W_K": (a.W_K[h], qkv), "W_V": (a.W_V[h], qkv)}
        targets["W_O"] = (a.W_O[h], "(d_model, d_head)")
        self._set(targets, {"W_Q": W_Q, "W_K": W_K, "W_V": W_V, "W_O": W_O})

    def set_embeddings(
        self,
        *,
        W_E: Tensor | np.ndarray | None = None,
        W_U: Tensor | np.ndarray | None = None,
        W_pos: Tensor | np.ndarray | None = None,
    ) -> None:
        """Overwrite W_E (d_model, n_vocab), W_U (n_vocab, d_model) and/or W_pos (d_model, n_ctx).

        Raises:
            TypeError / ValueError: as :meth:`set_head`; W_pos for a model whose pos_emb is not "learned".
        """
        if W_pos is not None and self.W_pos_param is None:
            raise ValueError(f"W_pos can only be set when pos_emb='learned' (this model has {self.cfg.pos_emb!r})")
        targets = {
            "W_E": (self.embed_tokens.W_E, "(d_model, n_vocab)"),
            "W_U": (self.unembed.W_U, "(n_vocab, d_model)"),
        }
        if self.W_pos_param is not None:
            targets["W_pos"] = (self.W_pos_param, "(d_model, n_ctx)")
        self._set(targets, {"W_E": W_E, "W_U": W_U, "W_pos": W_pos})

    def set_mlp(self, l: int, *, W_in: Tensor | np.ndarray | None = None, W_out: Tensor | np.ndarray | None = None):
        """Overwrite the MLP weights of layer l: W_in (d_mlp, d_model), W_out (d_model, d_mlp)."""
        mlp = self._mlp(l)
        targets = {"W_in": (mlp.W_in, "(d_mlp, d_model)"), "W_out": (mlp.W_out, "(d_model, d_mlp)")}
        self._set(targets, {"W_in": W_in, "W_out": W_out})

    def n_params(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
