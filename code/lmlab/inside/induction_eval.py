"""How well a model does induction: losses on the two copies of ``BOS + r + r``, and the experiments built on them.

One home for the induction loss: :func:`repeat_metrics` splits a batch's next-token losses by copy, and
:func:`evaluate_induction` (fresh data), :func:`induction_probe` (a fixed batch during training) and
:func:`broken_variants` / :func:`scale_sweep` (the hand-built model's design choices) all call it.

Positions: with a prefix of ``p`` tokens (1 with BOS), copy one fills ``[p, p + T)`` and copy two ``[p + T, p + 2T)``.
*First copy* = the targets ``[1, p + T)``, which nothing in the context predicts. *Second copy* = the ``T - 1``
targets ``[p + T + 1, p + 2T)``, each of which followed the same token in copy one (the first token of copy two,
the *boundary*, is not predictable and is left out of both).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from lmlab.core.checks import check_float, check_int, check_ints, check_module, check_tensor
from lmlab.core.tasks import repeated_sequences
from lmlab.inside.heads import induction_score, previous_token_score
from lmlab.inside.induction import build_induction_model

__all__ = [
    "InductionEval",
    "broken_variants",
    "evaluate_induction",
    "induction_probe",
    "per_position_loss",
    "qk_gradient_norms",
    "repeat_metrics",
    "scale_sweep",
]


def per_position_loss(logits: Tensor, tokens: Tensor) -> Tensor:
    """Next-token cross-entropy at every position: ``loss[b, i] = -log p(tokens[b, i+1] | tokens[b, :i+1])``.

    Args:
        logits: ``(batch, n, n_vocab)``; tokens: ``(batch, n)``.

    Returns:
        ``(batch, n - 1)``; column ``i`` is the loss of the prediction made *at* position ``i``.
    """
    check_tensor("logits", logits, 3)
    check_tensor("tokens", tokens, 2)
    if logits.shape[:2] != tokens.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and tokens {tuple(tokens.shape)} disagree on (batch, n)")
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    return -logp.gather(-1, tokens[:, 1:, None]).squeeze(-1)


def repeat_metrics(logits: Tensor, tokens: Tensor, seq_len: int, prefix: int = 1) -> dict[str, float]:
    """Losses and accuracies of one batch of ``prefix + r + r`` (``len(r) = seq_len``), split by copy.

    Returns:
        ``loss_first``, ``loss_second``, ``loss_boundary`` (nats/token), ``accuracy_second`` (argmax hits on the
        second copy), ``first_position_accuracy`` (the first predictable target of copy two alone) and
        ``ambiguous_fraction`` (second-copy targets whose current token occurs more than once in copy one, where no
        algorithm that only reads the context can be sure; 0 for distinct tokens).
    """
    check_tensor("logits", logits, 3)
    check_tensor("tokens", tokens, 2)
    T, p = check_int("seq_len", seq_len, 2), check_int("prefix", prefix, 0)
    if tokens.shape[1] != p + 2 * T:
        raise ValueError(f"tokens must have prefix + 2 seq_len = {p + 2 * T} columns, got {tuple(tokens.shape)}")
    loss = per_position_loss(logits, tokens)  # column i predicts target i + 1
    correct = (logits[:, :-1].argmax(-1) == tokens[:, 1:]).float()
    second = slice(p + T, p + 2 * T - 1)  # predictions at [p+T, p+2T-1) -> targets [p+T+1, p+2T)
    copy1 = tokens[:, p : p + T]
    counts = (copy1[:, :, None] == copy1[:, None, :]).sum(-1)  # how often each copy-one token occurs
    return {
        "loss_first": float(loss[:, : p + T - 1].mean()),
        "loss_second": float(loss[:, second].mean()),
        "loss_boundary": float(loss[:, p + T - 1].mean()),
        "accuracy_second": float(correct[:, second].mean()),
        "first_position_accuracy": float(correct[:, p + T].mean()),
        "ambiguous_fraction": float((counts[:, : T - 1] > 1).float().mean()),
    }


@dataclass
class InductionEval:
    """Scores of a model on fresh ``[BOS] + r + r`` sequences (the fields of :func:`repeat_metrics`, averaged).

    Attributes:
        accuracy_second, loss_second, loss_first, loss_boundary, first_position_accuracy, ambiguous_fraction: as
            in :func:`repeat_metrics`.
        n_sequences, n_vocab, seq_len: what was evaluated.
    """

    accuracy_second: float
    loss_second: float
    loss_first: float
    loss_boundary: float
    first_position_accuracy: float
    ambiguous_fraction: float
    n_sequences: int
    n_vocab: int
    seq_len: int

    def as_dict(self) -> dict[str, float | int]:
        """The fields as a plain dict (for tables)."""
        return asdict(self)


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
        seeds: one batch of :func:`lmlab.tasks.repeated_sequences` per seed (fresh seeds = unseen data).
        batch: sequences per seed; bos, distinct: as in :func:`lmlab.tasks.repeated_sequences`.

    Raises:
        ValueError: no seeds, or sequences (``2 T + 1`` tokens) longer than the model's context.
    """
    check_module("model", model)
    check_int("n_vocab", n_vocab, 2)
    check_int("seq_len", seq_len, 2)
    check_int("batch", batch, 1)
    seeds = check_ints("seeds", seeds, 0)
    if bos is not None:
        check_int("bos", bos, 0, n_vocab - 1)
    prefix = 0 if bos is None else 1
    n_ctx = getattr(getattr(model, "cfg", None), "n_ctx", None)
    if n_ctx is not None and prefix + 2 * seq_len > n_ctx:
        raise ValueError(
            f"seq_len={seq_len} gives sequences of {prefix + 2 * seq_len} tokens, longer than the context n_ctx={n_ctx}"
        )
    dev = next(model.parameters()).device
    per_seed = []
    for seed in seeds:
        tokens = repeated_sequences(batch, seq_len, n_vocab, seed, bos=bos, distinct=distinct, device=dev)
        per_seed.append(repeat_metrics(model(tokens), tokens, seq_len, prefix))
    mean = {k: sum(m[k] for m in per_seed) / len(per_seed) for k in per_seed[0]}
    return InductionEval(**mean, n_sequences=batch * len(seeds), n_vocab=n_vocab, seq_len=seq_len)


def induction_probe(
    n_vocab: int, seq_len: int, *, batch: int = 64, seed: int = 4242, bos: int = 0
) -> Callable[[nn.Module], dict[str, Any]]:
    """A callable ``model -> dict`` that measures a model on one fixed batch of ``BOS + r + r`` (for ``eval_fn``).

    The dict holds the :func:`repeat_metrics` fields, ``previous_token`` and ``induction`` (lists of lists,
    ``[layer][head]``, the scores of :mod:`lmlab.heads`) and the summaries ``prev_layer0`` (best previous-token score
    among layer-0 heads) and ``induction_last`` (best induction score among the last layer's heads).
    """
    check_int("n_vocab", n_vocab, 2)
    check_int("seq_len", seq_len, 2)
    check_int("batch", batch, 1)
    check_int("seed", seed, 0)
    if bos is not None:
        check_int("bos", bos, 0, n_vocab - 1)
    tokens = repeated_sequences(batch, seq_len, n_vocab, seed, bos=bos)
    prefix = 0 if bos is None else 1

    @torch.no_grad()
    def probe(model: nn.Module) -> dict[str, Any]:
        toks = tokens.to(next(model.parameters()).device)
        logits, cache = model.run_with_cache(toks)
        prev = [previous_token_score(a).mean(0).tolist() for a in cache.attn]
        indu = [induction_score(a, seq_len, prefix).mean(0).tolist() for a in cache.attn]
        return {
            **repeat_metrics(logits, toks, seq_len, prefix),
            "previous_token": prev,
            "induction": indu,
            "prev_layer0": max(prev[0]),
            "induction_last": max(indu[-1]),
        }

    return probe


def qk_gradient_norms(model: nn.Module, tokens: Tensor) -> list[float]:
    """``||d loss / d W_Q^l||_F`` for every layer ``l``: how much gradient reaches the query weights.

    The loss is the mean next-token cross-entropy over all positions of ``tokens`` (``(batch, n)``). The model's
    gradients are zeroed before and after. A saturated softmax (a very large QK scale) passes almost none.

    Args:
        model: a ``TinyTransformer`` (its layers at ``model.blocks[l].attn.W_Q``).
        tokens: ``(batch, n)`` token ids.
    """
    check_module("model", model, attrs=("blocks",))
    check_tensor("tokens", tokens, 2)
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
    moderate_scale: float = 4.0,
    device: torch.device | str | None = None,
) -> list[dict[str, Any]]:
    """Run the hand-built model with one design choice broken at a time, on fresh ``[BOS] + r + r`` data.

    Variants (each a row): the model as built (scale 20, sink 0.5, BOS, distinct tokens); no attention sink
    (``sink=0``); no BOS token at all (sequences ``r + r``); tokens repeated inside a copy (drawn with replacement);
    the QK scale too small (``small_scale``) and too large (``large_scale``); and, on repeated-token data, a
    moderate scale (``moderate_scale``) against the large one, where a hard choice among tied candidates is
    overconfident (the row is named "repeated tokens, moderate scale").

    Returns:
        One dict per variant: ``variant`` (name), ``change`` (what differs), the :class:`InductionEval` fields and
        ``grad_W_Q`` (the sum over layers of :func:`qk_gradient_norms` on one batch of the same data).
    """
    check_int("n_vocab", n_vocab, 2)
    check_int("seq_len", seq_len, 2)
    check_int("batch", batch, 1)
    seeds = check_ints("seeds", seeds, 0)
    for name, value in (("small_scale", small_scale), ("large_scale", large_scale), ("moderate_scale", moderate_scale)):
        check_float(name, value, 0.0, strict=True)
    n_ctx = 2 * seq_len + 1
    kw = {"device": device}
    specs: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
        ("as built", "scale 20, sink 0.5, BOS, distinct tokens", {}, {}),
        ("no attention sink", "sink = 0: BOS scores like any non-match", {"sink": 0.0}, {}),
        ("no BOS token", "sequences r + r, no sink token at all", {}, {"bos": None}),
        ("repeated tokens", "r drawn with replacement", {}, {"distinct": False}),
        ("scale too small", f"QK scale {small_scale:g}", {"scale": small_scale}, {}),
        ("scale too large", f"QK scale {large_scale:g}", {"scale": large_scale}, {}),
        (
            "repeated tokens, moderate scale",
            f"r with replacement, QK scale {moderate_scale:g}",
            {"scale": moderate_scale},
            {"distinct": False},
        ),
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
        dev = next(model.parameters()).device
        bos, distinct = data_kw.get("bos", 0), data_kw.get("distinct", True)
        tokens = repeated_sequences(batch, seq_len, n_vocab, seeds[0], bos=bos, distinct=distinct, device=dev)
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
    if isinstance(scales, (str, bytes)) or not isinstance(scales, Iterable):
        raise TypeError(f"scales must be a sequence of floats, got {type(scales).__name__}")
    scales = [check_float(f"scales[{i}]", s, 0.0, strict=True) for i, s in enumerate(scales)]
    if not scales:
        raise ValueError("scales must not be empty")
    seq_lens = check_ints("seq_lens", seq_lens, 2)
    check_int("n_vocab", n_vocab, 2)
    check_int("batch", batch, 1)
    seeds = check_ints("seeds", seeds, 0)
    rows = []
    for T in seq_lens:
        for s in scales:
            model = build_induction_model(n_vocab, 2 * T + 1, scale=s, device=device)
            res = evaluate_induction(model, n_vocab, T, seeds=seeds, batch=batch)
            rows.append({"scale": float(s), **res.as_dict()})
    return rows
