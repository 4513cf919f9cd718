"""Soft prompts for a frozen :class:`~lmlab.model.TinyTransformer`: the prompt, its loss mask, its training.

A soft prompt is ``P`` free vectors ``(P, d_model)`` put in front of the input embeddings X^0 of a sequence; the
model's own layers (embedding, blocks, unembedding) stay frozen (Lester et al. 2021). The tokens of the text get
the positions ``P, P + 1, ...`` that they would have after a ``P``-token hard prompt, so a soft prompt initialised
with :meth:`SoftPrompt.from_tokens` computes exactly what that hard prompt computes.

Positions follow the homework: the sequence is numbered 1..n, output position ``i`` predicts input token ``i + 1``.

:func:`complete` (greedy decoding up to the first newline) and :func:`accuracy` (exact answers) are the one
completion and scoring routine for the character-level arithmetic models, with or without a prompt. The BOS
convention: a question is encoded as ``tokenizer.encode(question, bos=bos)`` and put after the prompt, so the
sequence is ``[prompt][BOS][question]`` with ``bos=True`` and ``[prompt][question]`` with ``bos=False`` (the
default). Pass the convention the model was trained with: ``"arithmetic-cot"``
(:class:`~lmlab.arithmetic.ArithmeticTask` puts BOS in front of every document) needs ``bos=True``;
``"arithmetic-styles"`` and the soft prompts trained here (:func:`encode_problems`, no BOS: the prompt takes the
start) use ``bos=False``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from lmlab.adapting.arithmetic import CharTokenizer, Problem, parse_answer
from lmlab.core.checks import check_float, check_int, check_tensor
from lmlab.core.model import KVCache, TinyTransformer
from lmlab.core.train import masked_cross_entropy, train

__all__ = [
    "Layout",
    "SoftPrompt",
    "accuracy",
    "complete",
    "encode_problems",
    "freeze",
    "loss_mask",
    "loss_positions",
    "prefix_cache",
    "prompted_logits",
    "prompted_loss",
    "state_digest",
    "train_prompt",
]


# ------------------------------------------------------------------------------------------------------------
# the loss mask
# ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """Lengths (in tokens) of the parts of one training sequence, in order.

    Attributes:
        prompt: soft-prompt vectors P >= 0. question: >= 1. reasoning: chain of thought, >= 0.
        answer: >= 1. newline: 0 or 1. padding: >= 0.
    """

    prompt: int
    question: int
    reasoning: int
    answer: int
    newline: int
    padding: int

    def __post_init__(self) -> None:
        check_int("prompt", self.prompt, 0)
        check_int("question", self.question, 1)
        check_int("reasoning", self.reasoning, 0)
        check_int("answer", self.answer, 1)
        check_int("newline", self.newline, 0, 1)
        check_int("padding", self.padding, 0)

    @property
    def n(self) -> int:
        """Length of the whole input sequence."""
        return self.prompt + self.question + self.reasoning + self.answer + self.newline + self.padding

    def spans(self) -> dict[str, range]:
        """The input positions (1-based, inclusive ranges as ``range``) of every part."""
        out, start = {}, 1
        for name in ("prompt", "question", "reasoning", "answer", "newline", "padding"):
            length = getattr(self, name)
            out[name] = range(start, start + length)
            start += length
        return out


def loss_mask(layout: Layout, n_ctx: int | None = None) -> Tensor:
    """Which OUTPUT positions enter the loss: BoolTensor ``(n,)``, entry ``i - 1`` for output position ``i``.

    Output position ``i`` predicts input token ``i + 1`` (targets are the inputs shifted by one), so it counts
    exactly when token ``i + 1`` is reasoning, answer or newline: the positions
    ``P + Q, ..., P + Q + R + A + N - 1`` (the homework's layout gives 50..71). The last output has no target.

    Raises:
        TypeError: ``layout`` is not a :class:`Layout`.
        ValueError: the sequence is longer than ``n_ctx`` (when given).
    """
    if not isinstance(layout, Layout):
        raise TypeError(f"layout must be a Layout, got {type(layout).__name__}")
    if n_ctx is not None and layout.n > check_int("n_ctx", n_ctx, 1):
        raise ValueError(f"the sequence has {layout.n} positions, more than the context n_ctx = {n_ctx}")
    spans = layout.spans()
    scored = set(spans["reasoning"]) | set(spans["answer"]) | set(spans["newline"])
    return torch.tensor([i + 1 in scored for i in range(1, layout.n + 1)], dtype=torch.bool)


def loss_positions(layout: Layout, n_ctx: int | None = None) -> list[int]:
    """The output positions (1-based) that enter the loss: ``[i for i where loss_mask(layout)[i - 1]]``."""
    return [i + 1 for i, m in enumerate(loss_mask(layout, n_ctx).tolist()) if m]


# ------------------------------------------------------------------------------------------------------------
# the soft prompt
# ------------------------------------------------------------------------------------------------------------


class SoftPrompt(nn.Module):
    """``n_tokens`` trainable vectors of width ``d_embed`` prepended to the input embeddings of a frozen model.

    ``prompt(x0)`` maps input embeddings ``(batch, n, d_embed)`` to ``(batch, n_tokens + n, d_embed)``. The one
    parameter is ``weight`` ``(n_tokens, d_embed)``: ``n_tokens * d_embed`` numbers (5E in the homework).

    Args:
        n_tokens: number of prompt vectors P >= 1.
        d_embed: their width, the model's d_model.
        init: initial vectors ``(n_tokens, d_embed)``; default Gaussian with standard deviation ``std``.
        std: scale of the default initialisation, > 0.
        generator: random generator of the default initialisation (CPU).
    """

    def __init__(
        self,
        n_tokens: int,
        d_embed: int,
        init: Tensor | None = None,
        *,
        std: float = 0.02,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.n_tokens = check_int("n_tokens", n_tokens, 1)
        self.d_embed = check_int("d_embed", d_embed, 1)
        if init is None:
            check_float("std", std, 0.0, strict=True)
            init = torch.randn(n_tokens, d_embed, generator=generator) * std
        init = check_tensor("init", init, 2, floating=True)
        if tuple(init.shape) != (n_tokens, d_embed):
            shape = (n_tokens, d_embed)
            raise ValueError(f"init must have shape (n_tokens, d_embed) = {shape}, got {tuple(init.shape)}")
        self.weight = nn.Parameter(init.detach().clone().float())

    @classmethod
    def from_tokens(cls, model: TinyTransformer, tokens: Sequence[int]) -> SoftPrompt:
        """A soft prompt equal to a hard prompt: the rows of ``model.embed(tokens)`` (token plus position)."""
        ids = torch.as_tensor(list(tokens), dtype=torch.long)[None]
        with torch.no_grad():
            x0 = model.embed(ids)[0].cpu()
        return cls(x0.shape[0], x0.shape[1], x0).to(model.device)

    @classmethod
    def from_vocab(cls, model: TinyTransformer, n_tokens: int, generator: torch.Generator) -> SoftPrompt:
        """A hard prompt of ``n_tokens`` tokens drawn uniformly from the vocabulary, as a soft prompt."""
        check_int("n_tokens", n_tokens, 1)
        ids = torch.randint(0, model.cfg.n_vocab, (n_tokens,), generator=generator)
        return cls.from_tokens(model, ids.tolist())

    def forward(self, x0: Tensor) -> Tensor:
        """``(batch, n, d_embed) -> (batch, n_tokens + n, d_embed)``: the prompt in front of every sequence."""
        x0 = check_tensor("x0", x0, 3, floating=True)
        if x0.shape[-1] != self.d_embed:
            raise ValueError(f"x0 must have width d_embed = {self.d_embed}, got {x0.shape[-1]}")
        return torch.cat([self.weight.to(x0.dtype).expand(x0.shape[0], -1, -1), x0], dim=1)


def _n_prompt(prompt: SoftPrompt | Tensor | None) -> int:
    if prompt is None:
        return 0
    return prompt.n_tokens if isinstance(prompt, SoftPrompt) else int(prompt.shape[0])


def _as_weight(prompt: SoftPrompt | Tensor) -> Tensor:
    return prompt.weight if isinstance(prompt, SoftPrompt) else prompt


def prompted_logits(model: TinyTransformer, prompt: SoftPrompt | Tensor | None, tokens: Tensor) -> Tensor:
    """Logits ``(batch, P + n, n_vocab)`` of ``[prompt][tokens]``; the tokens take positions ``P .. P + n - 1``.

    ``prompt`` is a :class:`SoftPrompt`, a tensor ``(P, d_model)`` (for functional meta-learning) or None.
    """
    P = _n_prompt(prompt)
    x0 = model.embed(tokens, start=P)
    if prompt is not None:
        w = _as_weight(prompt)
        if w.dim() != 2 or w.shape[1] != model.cfg.d_model:
            raise ValueError(f"prompt must be (P, d_model={model.cfg.d_model}), got {tuple(w.shape)}")
        x0 = torch.cat([w.to(x0.dtype).expand(x0.shape[0], -1, -1), x0], dim=1)
    return model.forward_embeds(x0)  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------------------------
# batches of word problems and the loss
# ------------------------------------------------------------------------------------------------------------


def encode_problems(
    tokenizer: CharTokenizer,
    problems: Sequence[Problem],
    n_prompt: int,
    *,
    solution: Callable[[Problem], str] | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """A training batch for a prompt of ``n_prompt`` vectors: ``(tokens, targets, mask)``.

    ``tokens`` ``(batch, T)``: question + solution, right-padded with ``PAD`` (the prompt is not a token).
    ``targets`` and ``mask`` ``(batch, n_prompt + T)`` index the OUTPUT positions of the whole sequence: output
    ``j`` (0-based) predicts token ``j + 1`` of ``[prompt][tokens]``; the mask is :func:`loss_mask` of each
    problem's :class:`Layout` (the chain of thought, the answer and the newline). The answer is the text of
    ``problem.answer`` at the end of the solution, before the newline.

    Args:
        solution: the solution text of a problem (default ``problem.solution``, the chain of thought).
    """
    check_int("n_prompt", n_prompt, 0)
    if len(problems) == 0:
        raise ValueError("problems must hold at least one Problem")
    sol = solution if solution is not None else (lambda p: p.solution)
    seqs, layouts = [], []
    for p in problems:
        q, s = tokenizer.encode(p.question), tokenizer.encode(sol(p))
        answer = len(str(p.answer))
        seqs.append(q + s)
        layouts.append((len(q), len(s) - answer - 1, answer))
    tokens, _ = tokenizer.pad_batch(seqs)
    T = tokens.shape[1]
    n = n_prompt + T
    mask = torch.stack(
        [loss_mask(Layout(n_prompt, q, r, a, 1, T - q - r - a - 1)) for q, r, a in layouts]
    )  # (batch, n)
    targets = torch.zeros(len(problems), n, dtype=torch.long)
    # output j predicts sequence token j + 1, i.e. text token j + 1 - n_prompt
    lo = max(n_prompt - 1, 0)
    targets[:, lo : n - 1] = tokens[:, lo + 1 - n_prompt :]
    return tokens, targets, mask


def prompted_loss(
    model: TinyTransformer, prompt: SoftPrompt | Tensor | None, batch: tuple[Tensor, Tensor, Tensor]
) -> Tensor:
    """Masked cross-entropy (nats per scored token) of a batch from :func:`encode_problems` under ``prompt``."""
    tokens, targets, mask = (t.to(model.device) for t in batch)
    P = _n_prompt(prompt)
    if targets.shape[1] != P + tokens.shape[1]:
        raise ValueError(f"the batch was encoded for {targets.shape[1] - tokens.shape[1]} prompt vectors, not {P}")
    return masked_cross_entropy(prompted_logits(model, prompt, tokens), targets, mask)


# ------------------------------------------------------------------------------------------------------------
# freezing and training
# ------------------------------------------------------------------------------------------------------------


def freeze(model: nn.Module) -> nn.Module:
    """Set ``requires_grad = False`` on every parameter of ``model`` (in place) and return it in eval mode."""
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


def state_digest(model: nn.Module) -> str:
    """SHA-256 of every tensor of ``model.state_dict()`` (names, dtypes, shapes, bytes): equal digests mean
    bit-identical weights."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def train_prompt(
    model: TinyTransformer,
    prompt: SoftPrompt,
    batches: Callable[[int], tuple[Tensor, Tensor, Tensor]],
    *,
    steps: int,
    lr: float = 0.03,
    loss_fn: Callable[[TinyTransformer, SoftPrompt, tuple[Tensor, ...]], Tensor] = prompted_loss,
) -> list[float]:
    """Train ``prompt`` only (Adam, constant ``lr``) against the frozen ``model``; return the loss per step.

    A thin caller of :func:`lmlab.train.train`: ``params`` is the prompt's weight, ``optimizer="adam"``
    (PyTorch's defaults), no gradient clipping, the model left in its (eval) mode, no progress bar.

    Args:
        batches: ``step -> batch``; the batch is what ``loss_fn`` takes (default: :func:`encode_problems`'s).
        loss_fn: ``loss_fn(model, prompt, batch) -> scalar``.

    Raises:
        TypeError: ``prompt`` is not a :class:`SoftPrompt` (an ``nn.Module``).
        ValueError: ``model`` has a parameter with ``requires_grad`` (call :func:`freeze` first), or the weights
            changed during training (they never should: only the prompt is given to the optimizer).
    """
    check_int("steps", steps, 1)
    check_float("lr", lr, 0.0, strict=True)
    if not isinstance(prompt, nn.Module):
        raise TypeError(f"prompt must be a SoftPrompt (an nn.Module), got {type(prompt).__name__}")
    if any(p.requires_grad for p in model.parameters()):
        raise ValueError("the model must be frozen (lmlab.prompting.freeze(model)) before training a prompt")
    before = state_digest(model)
    losses = train(
        model,
        batches,
        steps=steps,
        lr=lr,
        optimizer="adam",
        grad_clip=None,
        loss_fn=lambda m, batch: loss_fn(m, prompt, batch),
        params=list(prompt.parameters()),
        mode="keep",
        progress=False,
    )
    if state_digest(model) != before:
        raise ValueError("the frozen model's weights changed while training the prompt")
    return losses


# ------------------------------------------------------------------------------------------------------------
# the prompt's keys and values, computed once; generation
# ------------------------------------------------------------------------------------------------------------


@torch.no_grad()
def prefix_cache(model: TinyTransformer, prompt: SoftPrompt | Tensor, batch: int) -> KVCache:
    """The keys and values of the prompt positions, computed once and shared by ``batch`` sequences.

    Causal attention means the prompt's positions never see the text after them, so their keys and values are
    the same for every sequence: run the prompt alone (batch 1) and expand. ``model.forward_kv(tokens, past)``
    then continues at position P exactly as a full forward pass would.
    """
    check_int("batch", batch, 1)
    x = _as_weight(prompt).to(model.device, model.dtype)[None]
    cache = KVCache(length=x.shape[1])
    for block in model.blocks:
        x, (k, v) = block(x)
        cache.keys.append(k.expand(batch, -1, -1, -1))
        cache.values.append(v.expand(batch, -1, -1, -1))
    return cache


@torch.no_grad()
def complete(
    model: TinyTransformer,
    prompt: SoftPrompt | Tensor | None,
    questions: Sequence[str],
    tokenizer: CharTokenizer,
    *,
    max_new_tokens: int = 64,
    bos: bool = False,
) -> list[str]:
    """Greedy completions of ``questions`` behind ``prompt``, up to and including the first newline.

    Each sequence is ``[prompt][BOS][question]`` with ``bos=True``, ``[prompt][question]`` with ``bos=False`` (the
    module's BOS convention: use the one the model was trained with). The prompt's keys and values come from
    :func:`prefix_cache` (computed once per group of equal-length questions); the rest is decoded one token at a time
    with ``model.forward_kv``, equal to ``model.generate`` without a prompt.

    Args:
        prompt: a :class:`SoftPrompt`, a tensor ``(P, d_model)`` or ``None`` (no prompt).
        questions: a list of strings; a single string raises ``TypeError`` (wrap it in a list).
        tokenizer: the model's :class:`~lmlab.arithmetic.CharTokenizer`.
        max_new_tokens: at most this many tokens per completion (also capped by the context length).
        bos: put ``BOS`` in front of each question.

    Returns:
        The generated text after each question, up to and including the first ``"\\n"`` (if one was produced).

    Raises:
        TypeError: ``questions`` is not a list of strings; ``bos`` is not a bool.
        ValueError: ``max_new_tokens < 1``; a question that fills the context.
    """
    if isinstance(questions, (str, bytes)) or not hasattr(questions, "__iter__"):
        got = (
            "a single string (wrap one question in a list)" if isinstance(questions, str) else type(questions).__name__
        )
        raise TypeError(f"questions must be a list of strings, got {got}")
    questions = list(questions)
    for i, q in enumerate(questions):
        if not isinstance(q, str):
            raise TypeError(f"questions[{i}] must be a str, got {type(q).__name__}")
    check_int("max_new_tokens", max_new_tokens, 1)
    if not isinstance(bos, bool):
        raise TypeError(f"bos must be a bool, got {type(bos).__name__}")
    P = _n_prompt(prompt)
    groups: dict[int, list[int]] = {}
    encoded = [tokenizer.encode(q, bos=bos) for q in questions]
    for i, ids in enumerate(encoded):
        if P + len(ids) >= model.cfg.n_ctx:
            raise ValueError(f"question {i}: {P} prompt + {len(ids)} tokens fill the context n_ctx={model.cfg.n_ctx}")
        groups.setdefault(len(ids), []).append(i)
    out = [""] * len(questions)
    newline = tokenizer.encode("\n")[0]
    for n, idx in groups.items():
        x = torch.tensor([encoded[i] for i in idx], dtype=torch.long, device=model.device)
        past = prefix_cache(model, prompt, len(idx)) if prompt is not None else None
        new = min(max_new_tokens, model.cfg.n_ctx - P - n)
        gen = []
        done = torch.zeros(len(idx), dtype=torch.bool, device=model.device)
        for _ in range(new):
            logits, past = model.forward_kv(x, past)
            x = logits[:, -1].argmax(-1, keepdim=True)
            gen.append(x)
            done |= x[:, 0] == newline
            if bool(done.all()):
                break
        ids = torch.cat(gen, 1).cpu()
        for row, i in zip(ids, idx):
            text = tokenizer.decode(row)
            cut = text.find("\n")
            out[i] = text if cut < 0 else text[: cut + 1]
    return out


def accuracy(
    model: TinyTransformer,
    prompt: SoftPrompt | Tensor | None,
    problems: Sequence[Problem],
    tokenizer: CharTokenizer,
    *,
    prefix: str = "",
    bos: bool = False,
) -> float:
    """Exact-answer accuracy: the fraction of ``problems`` whose greedy completion (:func:`complete`) behind
    ``prompt`` (and the text ``prefix``, a hard prompt, in front of each question; after BOS with ``bos=True``)
    parses with the ``"Final answer:"`` parser (:func:`~lmlab.arithmetic.parse_answer`) to the right answer. A
    completion that does not parse counts as wrong. ``accuracy(model, None, task.heldout, task.tokenizer,
    bos=True)`` scores the ``"arithmetic-cot"`` model."""
    if len(problems) == 0:
        raise ValueError("problems must hold at least one Problem")
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a str, got {type(prefix).__name__}")
    longest = max(len(p.solution) for p in problems) + 4
    questions = [prefix + p.question for p in problems]
    texts = complete(model, prompt, questions, tokenizer, max_new_tokens=longest, bos=bos)
    return sum(parse_answer(t) == p.answer for t, p in zip(texts, problems)) / len(problems)
