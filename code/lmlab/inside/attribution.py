"""Causal checks of a circuit in a :class:`~lmlab.model.TinyTransformer`: head ablation and direct logit attribution.

Two questions about a head h of layer l, asked of a trained model:

* **What happens without it?** :func:`ablate_heads` is a context manager that *zero-ablates* heads: inside the
  ``with`` block the output matrix W_O^h of each named head is zero, so the head writes nothing into the residual
  stream and every later layer, and the unembedding, sees the stream without that write. On leaving the block
  (normally or through an exception) the weights are put back exactly. The model itself is not modified in any
  other way; only the public accessors ``W_O(l, h)`` and ``set_head`` are used.
* **How much of a logit does it write directly?** :func:`logit_attribution` splits the logit of a chosen token
  into one term per component that writes into the residual stream: the embedding X^0 (tokens plus positions),
  each head, each MLP. In the book's column notation the final residual stream is

      X^L_t = X^0_t + sum_l sum_h (W_O^{l,h} r^{l,h})_t + sum_l MLP^l_t,

  and, without LayerNorm, the logit of token c at position t is W_U[c] . X^L_t, a sum of one term per
  component. With a final LayerNorm LN(x) = gamma * (x - mean(x)) / sigma(x), the centring is linear and the scale
  sigma(X^L_t) is one number per position: freezing it at its value on the actual stream makes each term
  gamma * (component - its mean) / sigma, and the terms still add up exactly to the logit. This is the *direct*
  effect of each component; what a head does through later heads (K-composition, for example) appears only in
  the ablation.

Shapes follow the rest of the package: tokens (batch, n), logits (batch, n, n_vocab).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from lmlab.core.model import TinyTransformer

__all__ = ["check_heads", "ablate_heads", "LogitAttribution", "logit_attribution"]


def _check_model(model: object) -> TinyTransformer:
    if not isinstance(model, TinyTransformer):
        raise TypeError(f"model must be a lmlab.model.TinyTransformer, got {type(model).__name__}")
    return model


def _check_index(name: str, value: object, upper: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if not 0 <= int(value) < upper:
        allowed = f"[0, {upper})" if upper > 0 else f"none (the model has no {what})"
        raise ValueError(f"{name} must be in {allowed}, got {value}")
    return int(value)


def check_heads(model: TinyTransformer, heads: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Validate a collection of (layer, head) pairs for ``model``; return them as a sorted list without repeats.

    Raises:
        TypeError: model is not a TinyTransformer, heads is not an iterable of pairs, or an index is not an int.
        ValueError: a layer is outside [0, n_layers) or a head outside [0, n_heads).
    """
    model = _check_model(model)
    if isinstance(heads, (str, bytes)) or not isinstance(heads, Iterable):
        raise TypeError(f"heads must be an iterable of (layer, head) pairs, got {type(heads).__name__}")
    out: set[tuple[int, int]] = set()
    for pair in heads:
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise TypeError(f"each entry of heads must be a (layer, head) pair, got {pair!r}")
        l = _check_index("layer", pair[0], model.cfg.n_layers, "layers")
        h = _check_index("head", pair[1], model.cfg.n_heads, "heads")
        out.add((l, h))
    return sorted(out)


@contextmanager
def ablate_heads(model: TinyTransformer, heads: Iterable[tuple[int, int]]) -> Iterator[TinyTransformer]:
    """Zero-ablate heads for the duration of a ``with`` block.

    Inside the block, W_O^h of layer l is zero for every (l, h) in ``heads``: the head's write
    W_O^h r^h (d_model x n in the book's notation) is exactly zero, and everything downstream is recomputed
    without it. The attention pattern of the ablated head itself is unchanged (W_Q, W_K, W_V are untouched);
    only what it writes is removed. On exit, also through an exception, every W_O^h is restored bit for bit.

    Example::

        with ablate_heads(model, [(0, 1)]):
            logits = model(tokens)            # the model without head 1 of layer 0

    Args:
        model: the model to ablate in place (temporarily).
        heads: (layer, head) pairs, layer in [0, n_layers), head in [0, n_heads). Repeats are allowed; an empty
            collection ablates nothing.

    Yields:
        the model itself.

    Raises:
        TypeError / ValueError: see :func:`check_heads`. All indices are checked before any weight changes.
    """
    pairs = check_heads(model, heads)
    saved = [(l, h, model.W_O(l, h)) for l, h in pairs]
    try:
        for l, h, W_O in saved:
            model.set_head(l, h, W_O=torch.zeros_like(W_O))
        yield model
    finally:
        for l, h, W_O in saved:
            model.set_head(l, h, W_O=W_O)


@dataclass
class LogitAttribution:
    """The logit of one token per position, split into the direct contributions of the model's components.

    Attributes:
        logit: (batch, n), the model's logit of the target token at each position (centred over the vocabulary
            when the attribution was computed with ``centered=True``).
        embed: (batch, n), the contribution of X^0 (token plus positional embedding).
        heads: (batch, n, n_layers, n_heads), the contribution of each head's write.
        mlp: (batch, n, n_layers), the contribution of each MLP, or None for an attention-only model.

    ``embed + heads.sum((-1, -2)) + mlp.sum(-1)`` equals ``logit`` up to float rounding (see :meth:`total`).
    """

    logit: Tensor
    embed: Tensor
    heads: Tensor
    mlp: Tensor | None

    def total(self) -> Tensor:
        """The sum of all contributions, (batch, n); equal to :attr:`logit` up to float rounding."""
        out = self.embed + self.heads.sum((-1, -2))
        if self.mlp is not None:
            out = out + self.mlp.sum(-1)
        return out


def _final_norm(model: TinyTransformer, x: Tensor) -> tuple[Tensor | None, Tensor | None]:
    """For the final LayerNorm: (gamma (d_model,), 1 / sigma (batch, n, 1)) of the stream x; (None, None) if none."""
    ln = model.ln_final
    if isinstance(ln, nn.Identity):
        return None, None
    if not isinstance(ln, nn.LayerNorm):
        raise TypeError(f"model.ln_final must be nn.LayerNorm or nn.Identity, got {type(ln).__name__}")
    if getattr(ln, "bias", None) is not None:
        raise ValueError("logit_attribution handles a final LayerNorm without bias only (lmlab's models have none)")
    gamma = ln.weight if ln.weight is not None else torch.ones(x.shape[-1], device=x.device, dtype=x.dtype)
    inv_sigma = (x.var(-1, unbiased=False, keepdim=True) + ln.eps).rsqrt()
    return gamma, inv_sigma


@torch.no_grad()
def logit_attribution(
    model: TinyTransformer, tokens: Tensor, targets: Tensor, *, centered: bool = False
) -> LogitAttribution:
    """Direct logit attribution of the target token at every position.

    The model runs once with :meth:`TinyTransformer.run_with_cache`; each cached write (the embedding, every
    head's write ``cache.head_out[l][:, h]``, every MLP's write) is pushed through the final LayerNorm with its
    scale frozen at the value on the full stream (see the module docstring) and through the row W_U[c] of the
    target c. Without LayerNorm this is W_U[c] . component.

    Args:
        model: the model.
        tokens: (batch, n) integer ids, n <= n_ctx.
        targets: (batch, n) integer ids in [0, n_vocab): the token whose logit is attributed at each position
            (for next-token prediction, ``tokens[:, 1:]`` with the model run on ``tokens[:, :-1]``).
        centered: attribute the logit minus its mean over the vocabulary (use W_U[c] - mean_v W_U[v]); that
            difference, unlike the logit itself, does not change when every logit moves by the same amount.

    Returns:
        a :class:`LogitAttribution`.

    Raises:
        TypeError: model is not a TinyTransformer or targets is not an integer tensor.
        ValueError: targets has another shape than tokens, or an id outside [0, n_vocab).
    """
    model = _check_model(model)
    if not isinstance(targets, Tensor) or targets.is_floating_point() or targets.dtype == torch.bool:
        raise TypeError(f"targets must be an integer torch.Tensor, got {type(targets).__name__}")
    if not isinstance(tokens, Tensor):
        raise TypeError(f"tokens must be an integer torch.Tensor, got {type(tokens).__name__}")
    if tuple(targets.shape) != tuple(tokens.shape):
        raise ValueError(f"targets must have the shape of tokens {tuple(tokens.shape)}, got {tuple(targets.shape)}")
    n_vocab = model.cfg.n_vocab
    if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= n_vocab):
        raise ValueError(
            f"targets must lie in [0, n_vocab) = [0, {n_vocab}), got range [{int(targets.min())}, {int(targets.max())}]"
        )
    logits, cache = model.run_with_cache(tokens)
    targets = targets.to(device=logits.device, dtype=torch.long)
    W_U = model.W_U()  # (n_vocab, d_model)
    if centered:
        W_U = W_U - W_U.mean(0, keepdim=True)
    u = W_U[targets]  # (batch, n, d_model): the row that reads the target's logit
    gamma, inv_sigma = _final_norm(model, cache.resid[-1])

    def read(write: Tensor) -> Tensor:
        """write (batch, n, d_model) or (batch, n, k, d_model) -> its direct contribution (batch, n[, k])."""
        if gamma is not None:
            assert inv_sigma is not None
            scale = inv_sigma if write.dim() == 3 else inv_sigma[..., None]
            write = gamma * (write - write.mean(-1, keepdim=True)) * scale
        uu = u if write.dim() == 3 else u[:, :, None]
        return (write * uu).sum(-1)

    embed = read(cache.resid[0])
    if cache.head_out:
        heads = torch.stack([read(h.transpose(1, 2)) for h in cache.head_out], dim=2)  # (batch, n, L, H)
    else:
        heads = logits.new_zeros(*targets.shape, 0, model.cfg.n_heads)
    mlps = [m for m in cache.mlp_out if m is not None]
    mlp = torch.stack([read(m) for m in mlps], dim=-1) if mlps else None
    chosen = logits.gather(-1, targets[..., None])[..., 0]
    if centered:
        chosen = chosen - logits.mean(-1)
    return LogitAttribution(logit=chosen, embed=embed, heads=heads, mlp=mlp)
