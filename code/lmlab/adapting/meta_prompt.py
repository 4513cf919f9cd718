"""Meta-learning the starting point of a soft prompt: MAML (first and second order) and Reptile.

The setting is part (d) of the homework's soft-prompting problem: a frozen model pretrained on a family of tasks
(here :class:`~lmlab.prompt_data.ModularTagged`, ``x -> (x + k) mod p``, the task named only by the prompt), one
soft prompt per task, and a shared start ``phi`` ``(P, d_model)`` from which a few gradient steps on a few
examples should reach a good prompt for a task never seen in meta-training.

A task's data are single pairs: the model reads ``[prompt][x]`` and must answer ``y = (x + k) mod p`` at the last
position. The inner loop is plain gradient descent on the prompt (step ``alpha``) over a support set; MAML moves
``phi`` along the gradient of the query loss after adaptation (Finn et al. 2017), first-order MAML drops the second
derivatives, Reptile moves ``phi`` towards the adapted prompt (Nichol et al. 2018). Two cheap variants of the
homework's list: :func:`adapt_toward` adapts with a penalty ``lam * ||w - anchor||^2`` that keeps the prompt near a
hard prompt (``lam`` chosen on training tasks with :func:`choose_lambda`), and :func:`library_start` picks, from a
library of starts, the one with the lowest support loss.

The tuners with Adam (:func:`tune_prompt`, :func:`tune_prompts`, :func:`finetune`) are thin callers of
:func:`lmlab.train.train`. :func:`adapt` keeps its own loop: it is the functional inner loop of MAML (with
``create_graph`` the adapted prompt stays differentiable in the start, which no optimizer's in-place step allows),
and the MAML and Reptile outer updates are not loss minimisations that ``train`` could run (first-order MAML uses
the query gradient at the adapted prompt; Reptile moves towards the adapted prompts).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from lmlab.adapting.prompting import prompted_logits
from lmlab.core.checks import check_float, check_generator, check_int, check_tensor
from lmlab.core.model import TinyTransformer
from lmlab.core.runtime import generator as _generator
from lmlab.core.train import train

__all__ = [
    # pairs of a task and the prompt's loss and accuracy on them
    "hard_prompt", "pair_accuracy", "pair_loss", "pairs_accuracy", "sample_pairs", "tag_mean", "token_search",
    "unseen",
    # adapting a start to a task; learning the start
    "adapt", "adapt_toward", "choose_lambda", "library_start", "maml", "reptile", "support_losses",
    # tuning with Adam (lmlab.train.train) and measuring adaptation
    "adaptation_curve", "finetune", "mean_adaptation_curve", "tune_prompt", "tune_prompts",
]  # fmt: skip


def pair_loss(model: TinyTransformer, prompt: Tensor, x: Tensor, y: Tensor) -> Tensor:
    """Mean cross-entropy of the answer ``y`` ``(batch,)`` read at the last position of ``[prompt][x]``."""
    logits = prompted_logits(model, prompt, x.to(model.device)[:, None])[:, -1]
    return F.cross_entropy(logits, y.to(model.device))


@torch.no_grad()
def pair_accuracy(model: TinyTransformer, prompt: Tensor, k: int, p: int) -> float:
    """Fraction of the ``p`` inputs ``x = 0 .. p-1`` whose greedy answer behind ``prompt`` is ``(x + k) mod p``."""
    x = torch.arange(p)
    return pairs_accuracy(model, prompt, x, (x + k) % p)


@torch.no_grad()
def pairs_accuracy(model: TinyTransformer, prompt: Tensor, x: Tensor, y: Tensor) -> float:
    """Fraction of the pairs ``(x, y)`` (``(batch,)`` each) whose greedy answer behind ``prompt`` is ``y``."""
    pred = prompted_logits(model, prompt, x.to(model.device)[:, None])[:, -1].argmax(-1)
    return float((pred == y.to(model.device)).float().mean())


def _check_tasks(tasks: Sequence[int], p: int) -> list[int]:
    """``p`` an int >= 2 and ``tasks`` a non-empty sequence of ints >= 0 (names as the caller writes them)."""
    check_int("p", p, 2)
    return _ints("tasks", tasks, "task (a shift k)")


def _ints(name: str, values: object, what: str) -> list[int]:
    """``values`` as a non-empty list of ints >= 0 (tasks, seeds)."""
    vals = _as_list(name, values)
    if not vals:
        raise ValueError(f"{name} must hold at least one {what}")
    return [check_int(name, v, 0) for v in vals]


def _as_list(name: str, values: object) -> list:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"{name} must be a sequence, got {type(values).__name__}")
    return list(values)  # type: ignore[call-overload]


def _check_support(n_support: int, p: int, name: str = "n_support") -> int:
    """The size of a support set: distinct inputs, so an int in [1, p]."""
    return check_int(name, n_support, 1, p)


def sample_pairs(k: int, p: int, n: int, generator: torch.Generator, *, replace: bool = False) -> tuple[Tensor, Tensor]:
    """``n`` examples ``(x, (x + k) mod p)`` of task ``k`` (CPU tensors ``(n,)``).

    The inputs ``x`` are ``n`` distinct residues drawn uniformly (without replacement, so ``n`` examples are ``n``
    different inputs; ``n <= p``), or ``n`` independent uniform residues with ``replace=True``.

    Raises:
        TypeError: ``k``, ``p`` or ``n`` is not an int.
        ValueError: ``k < 0``, ``p < 2``, ``n < 1``, or ``n > p`` without replacement.
    """
    check_int("k", k, 0)
    check_int("n", n, 1)
    check_int("p", p, 2)
    if replace:
        x = torch.randint(0, p, (n,), generator=generator)
    else:
        if n > p:
            raise ValueError(f"n must be <= p = {p} to sample without replacement, got {n}")
        x = torch.randperm(p, generator=generator)[:n]
    return x, (x + k) % p


def unseen(x: Tensor, p: int) -> Tensor:
    """The residues ``0 .. p-1`` not among the inputs ``x``: LongTensor ``(p - #distinct(x),)``, sorted (CPU)."""
    seen = set(x.tolist())
    return torch.tensor([i for i in range(p) if i not in seen], dtype=torch.long)


def tag_mean(model: TinyTransformer, tags: Sequence[int]) -> Tensor:
    """The mean of the one-token hard prompts ``[t]`` for ``t`` in ``tags`` (each embedded at position 0):
    a ``(1, d_model)`` start that lies among the tags (a mix of hard prompts), not at the origin."""
    if len(tags) == 0:
        raise ValueError("tags must hold at least one token")
    return torch.stack([hard_prompt(model, [int(t)]) for t in tags]).mean(0)


@torch.no_grad()
def token_search(
    model: TinyTransformer, support: tuple[Tensor, Tensor], candidates: Sequence[int] | None = None
) -> tuple[int, Tensor]:
    """The best one-token hard prompt for the pairs ``support``: the token of ``candidates`` (default: the whole
    vocabulary) whose prompt has the lowest support loss. Returns ``(token, its prompt (1, d_model))``."""
    cands = list(range(model.cfg.n_vocab)) if candidates is None else [int(t) for t in candidates]
    if len(cands) == 0:
        raise ValueError("candidates must hold at least one token")
    x, y = support
    losses = [float(pair_loss(model, hard_prompt(model, [t]), x, y)) for t in cands]
    best = cands[min(range(len(cands)), key=losses.__getitem__)]
    return best, hard_prompt(model, [best])


def hard_prompt(model: TinyTransformer, tokens: Sequence[int]) -> Tensor:
    """The input embeddings (token plus position) of a hard prompt, ``(len(tokens), d_model)``, detached."""
    ids = torch.as_tensor(list(tokens), dtype=torch.long, device=model.device)[None]
    with torch.no_grad():
        return model.embed(ids)[0].clone()


def adapt(
    model: TinyTransformer,
    start: Tensor,
    support: tuple[Tensor, Tensor],
    *,
    steps: int,
    lr: float,
    create_graph: bool = False,
) -> Tensor:
    """``steps`` of gradient descent ``w <- w - lr * grad`` on the support loss, from ``start``; returns ``w``.

    With ``create_graph`` the result stays a differentiable function of ``start`` (second-order MAML); otherwise
    each step is taken on a detached copy and the result has no history.
    """
    check_int("steps", steps, 0)
    check_float("lr", lr, 0.0, strict=True)
    x, y = support
    w = start if create_graph else start.detach().clone().requires_grad_(True)
    for _ in range(steps):
        loss = pair_loss(model, w, x, y)
        (g,) = torch.autograd.grad(loss, w, create_graph=create_graph)
        w = w - lr * g
        if not create_graph:
            w = w.detach().requires_grad_(True)
    return w


def adapt_toward(
    model: TinyTransformer,
    start: Tensor,
    support: tuple[Tensor, Tensor],
    anchor: Tensor,
    *,
    lam: float,
    steps: int,
    lr: float,
) -> Tensor:
    """``steps`` of proximal gradient descent on ``L_support(w) + lam * ||w - anchor||^2`` from ``start``.

    Each step is a gradient step on the support loss, ``v = w - lr * grad L(w)``, followed by the exact minimiser of
    ``lam * ||w - anchor||^2 + ||w - v||^2 / (2 lr)``, ``w = (v + 2 lr lam anchor) / (1 + 2 lr lam)``: stable for
    every ``lam >= 0``. ``lam = 0`` is :func:`adapt` exactly; as ``lam`` grows, ``w`` stays at ``anchor``.
    ``start`` and ``anchor`` are ``(P, d_model)``; returns the adapted prompt (detached).

    Raises:
        ValueError: ``lam < 0``, ``steps < 0``, ``lr <= 0``, or ``anchor`` of another shape than ``start``.
    """
    lam = check_float("lam", lam, 0.0)
    check_int("steps", steps, 0)
    check_float("lr", lr, 0.0, strict=True)
    if tuple(anchor.shape) != tuple(start.shape):
        raise ValueError(f"anchor must have the shape of start {tuple(start.shape)}, got {tuple(anchor.shape)}")
    a = anchor.detach().to(start.device)
    shrink = 2.0 * lr * lam
    w = start.detach().clone()
    for _ in range(steps):
        v = adapt(model, w, support, steps=1, lr=lr).detach()
        w = v if lam == 0.0 else (v + shrink * a) / (1.0 + shrink)
    return w


@torch.no_grad()
def support_losses(model: TinyTransformer, library: Tensor, support: tuple[Tensor, Tensor]) -> Tensor:
    """The support loss :func:`pair_loss` of each start of ``library`` ``(K, P, d_model)``: a tensor ``(K,)``."""
    if library.dim() != 3 or library.shape[0] < 1:
        raise ValueError(f"library must be (K, P, d_model) with K >= 1, got shape {tuple(library.shape)}")
    x, y = support
    return torch.stack([pair_loss(model, w, x, y).detach().cpu() for w in library])


def library_start(model: TinyTransformer, library: Tensor, support: tuple[Tensor, Tensor]) -> tuple[int, Tensor]:
    """A library of ``K`` starts ``(K, P, d_model)``: the index of the one with the lowest support loss, and that
    start ``(P, d_model)`` (the first on a tie). Adapting from it is the homework's "small library of starts"."""
    losses = support_losses(model, library, support)
    i = int(torch.argmin(losses))
    return i, library[i].detach().clone()


def maml(
    model: TinyTransformer,
    start: Tensor,
    tasks: Sequence[int],
    p: int,
    *,
    meta_steps: int,
    inner_steps: int = 3,
    inner_lr: float = 1.0,
    outer_lr: float = 0.05,
    tasks_per_step: int = 4,
    n_support: int = 4,
    n_query: int = 16,
    first_order: bool = True,
    seed: int = 0,
) -> tuple[Tensor, list[float]]:
    """Learn a prompt start with MAML: ``phi <- phi - outer_lr * mean_tasks grad_phi L_query(adapt(phi))``.

    Each meta-step draws ``tasks_per_step`` tasks from ``tasks`` and, for each, a support set (``n_support``
    pairs, used by :func:`adapt`) and a query set (``n_query`` pairs). ``first_order`` uses the query gradient at
    the adapted prompt as the gradient at ``phi`` (the Jacobian of the adaptation taken as the identity);
    otherwise the gradient flows through the inner steps. The outer update is Adam.

    Returns:
        ``(phi, query_losses)``: the learned start (detached) and the mean query loss after adaptation per step.
    """
    check_int("meta_steps", meta_steps, 1)
    check_int("tasks_per_step", tasks_per_step, 1)
    check_int("inner_steps", inner_steps, 0)
    check_float("inner_lr", inner_lr, 0.0, strict=True)
    check_float("outer_lr", outer_lr, 0.0, strict=True)
    tasks = _check_tasks(tasks, p)
    _check_support(n_support, p)
    _check_support(n_query, p, "n_query")
    check_int("seed", seed, 0)
    g = _generator(seed)
    phi = start.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([phi], lr=outer_lr)
    history = []
    for _ in range(meta_steps):
        opt.zero_grad(set_to_none=True)
        total = 0.0
        for i in torch.randint(0, len(tasks), (tasks_per_step,), generator=g).tolist():
            k = tasks[i]
            support = sample_pairs(k, p, n_support, g)
            x, y = sample_pairs(k, p, n_query, g)
            if first_order:
                w = adapt(model, phi, support, steps=inner_steps, lr=inner_lr)
                loss = pair_loss(model, w, x, y)
                (grad,) = torch.autograd.grad(loss, w)
                phi.grad = grad / tasks_per_step if phi.grad is None else phi.grad + grad / tasks_per_step
            else:
                w = adapt(model, phi, support, steps=inner_steps, lr=inner_lr, create_graph=True)
                loss = pair_loss(model, w, x, y)
                (loss / tasks_per_step).backward()
            total += float(loss.detach())
        opt.step()
        history.append(total / tasks_per_step)
    return phi.detach(), history


def reptile(
    model: TinyTransformer,
    start: Tensor,
    tasks: Sequence[int],
    p: int,
    *,
    meta_steps: int,
    inner_steps: int = 3,
    inner_lr: float = 1.0,
    epsilon: float = 0.5,
    tasks_per_step: int = 4,
    n_support: int = 4,
    seed: int = 0,
) -> Tensor:
    """Learn a prompt start with Reptile: ``phi <- phi + epsilon * mean_tasks (adapt(phi) - phi)``.

    Each meta-step adapts with ``inner_steps`` plain gradient steps (``inner_lr``) on ``n_support`` pairs of each
    of ``tasks_per_step`` tasks and moves ``phi`` a fraction ``epsilon`` (in (0, 1]) of the way to their mean."""
    check_int("meta_steps", meta_steps, 1)
    check_float("epsilon", epsilon, 0.0, strict=True, high=1.0)
    check_int("tasks_per_step", tasks_per_step, 1)
    check_int("inner_steps", inner_steps, 0)
    check_float("inner_lr", inner_lr, 0.0, strict=True)
    tasks = _check_tasks(tasks, p)
    _check_support(n_support, p)
    check_int("seed", seed, 0)
    g = _generator(seed)
    phi = start.detach().clone()
    for _ in range(meta_steps):
        delta = torch.zeros_like(phi)
        for i in torch.randint(0, len(tasks), (tasks_per_step,), generator=g).tolist():
            support = sample_pairs(tasks[i], p, n_support, g)
            delta += adapt(model, phi, support, steps=inner_steps, lr=inner_lr).detach() - phi
        phi = phi + epsilon * delta / tasks_per_step
    return phi


def tune_prompts(
    model: TinyTransformer,
    start: Tensor,
    tasks: Sequence[int],
    p: int,
    *,
    steps: int = 100,
    lr: float = 0.05,
) -> Tensor:
    """One prompt per task, tuned with Adam from ``start`` on all ``p`` pairs of the task (plenty of data):
    ``(len(tasks), P, d_model)``. Each is :func:`tune_prompt` on the support ``(x, (x + k) mod p)``, ``x = 0..p-1``."""
    tasks = _check_tasks(tasks, p)
    x = torch.arange(p)
    return torch.stack([tune_prompt(model, start, (x, (x + k) % p), steps=steps, lr=lr) for k in tasks])


Start = Tensor | Callable[[tuple[Tensor, Tensor]], Tensor]
"""A prompt ``(P, d_model)``, or a rule that makes one from the support pairs (a token search, a library pick)."""


def _resolve(start: Start, support: tuple[Tensor, Tensor]) -> Tensor:
    return start(support) if callable(start) else start


def adaptation_curve(
    model: TinyTransformer,
    start: Start,
    k: int,
    p: int,
    *,
    steps: int,
    lr: float = 1.0,
    n_support: int = 4,
    generator: torch.Generator,
    anchor: Start | None = None,
    lam: float = 0.0,
) -> list[float]:
    """Accuracy on task ``k`` after 0, 1, ..., ``steps`` gradient steps from ``start`` on ``n_support`` distinct
    examples (:func:`sample_pairs`), measured on the ``p - n_support`` inputs NOT among them: ``steps + 1``
    numbers.

    ``start`` (and ``anchor``) may be a prompt or a function of the support pairs. With ``lam > 0`` each step is
    :func:`adapt_toward` ``anchor`` (``anchor`` defaults to the start itself); ``lam = 0`` is plain :func:`adapt`.
    """
    lam = check_float("lam", lam, 0.0)
    check_int("k", k, 0)
    check_int("p", p, 2)
    check_int("steps", steps, 0)
    check_float("lr", lr, 0.0, strict=True)
    _check_support(n_support, p)
    generator = check_generator(generator)
    support = sample_pairs(k, p, n_support, generator)
    rest = unseen(support[0], p)
    target = (rest + k) % p
    w = _resolve(start, support).detach().clone()
    a = w if anchor is None else _resolve(anchor, support)
    curve = [pairs_accuracy(model, w, rest, target)]
    for _ in range(steps):
        if lam > 0:
            w = adapt_toward(model, w, support, a, lam=lam, steps=1, lr=lr)
        else:
            w = adapt(model, w, support, steps=1, lr=lr)
        curve.append(pairs_accuracy(model, w.detach(), rest, target))
    return curve


def _tune(
    model: TinyTransformer, start: Tensor, support: tuple[Tensor, Tensor], steps: int, lr: float, weights: tuple = ()
) -> Tensor:
    """A prompt tuned from ``start`` (with the model's ``weights``, if any) by Adam for ``steps`` steps on the pair
    loss of ``support``: :func:`lmlab.train.train` with a constant rate, no clipping, the model's mode kept."""
    w = check_tensor("start", start, 2, floating=True).detach().clone().requires_grad_(True)
    loss_fn = lambda m, batch: pair_loss(m, w, *batch)  # noqa: E731
    opts = {"optimizer": "adam", "grad_clip": None, "mode": "keep", "progress": False}
    train(model, lambda step: support, steps=steps, lr=lr, loss_fn=loss_fn, params=[*weights, w], **opts)
    return w.detach()


def tune_prompt(
    model: TinyTransformer, start: Tensor, support: tuple[Tensor, Tensor], *, steps: int = 150, lr: float = 0.05
) -> Tensor:
    """A prompt ``(P, d_model)`` tuned with Adam from ``start`` on the pairs ``support``; the model is untouched.
    (``steps`` >= 1 and ``lr`` > 0 are checked by :func:`lmlab.train.train` before any work.)"""
    return _tune(model, start, support, steps, lr)


def finetune(
    model: TinyTransformer,
    start: Tensor,
    support: tuple[Tensor, Tensor],
    *,
    steps: int = 150,
    lr: float = 0.01,
) -> tuple[TinyTransformer, Tensor]:
    """Full fine-tuning: a copy of ``model`` with every weight trained (Adam), together with a prompt from
    ``start``, on the pairs ``support``. Returns ``(tuned copy, tuned prompt)``; ``model`` itself is untouched."""
    check_int("steps", steps, 1)
    check_float("lr", lr, 0.0, strict=True)
    tuned = copy.deepcopy(model)
    for q in tuned.parameters():
        q.requires_grad_(True)
    w = _tune(tuned, start, support, steps, lr, tuple(tuned.parameters()))
    for q in tuned.parameters():
        q.requires_grad_(False)
    return tuned.eval(), w


def mean_adaptation_curve(
    model: TinyTransformer,
    start: Start,
    tasks: Sequence[int],
    p: int,
    *,
    seeds: Sequence[int],
    steps: int,
    lr: float = 1.0,
    n_support: int = 4,
    anchor: Start | None = None,
    lam: float = 0.0,
) -> Tensor:
    """:func:`adaptation_curve` (accuracy on unseen inputs) averaged over ``tasks`` and ``seeds`` (each seed draws
    new support sets): a tensor ``(steps + 1,)``. The first :func:`adaptation_curve` checks the other arguments."""
    tasks = _check_tasks(tasks, p)
    seeds = _ints("seeds", seeds, "seed")
    check_int("steps", steps, 0)
    total = torch.zeros(steps + 1)
    for s in seeds:
        g = _generator(int(s))
        for k in tasks:
            curve = adaptation_curve(
                model, start, k, p, steps=steps, lr=lr, n_support=n_support, generator=g, anchor=anchor, lam=lam
            )
            total += torch.tensor(curve)
    return total / (len(tasks) * len(seeds))


def choose_lambda(
    model: TinyTransformer,
    start: Start,
    tasks: Sequence[int],
    p: int,
    *,
    lams: Sequence[float],
    seeds: Sequence[int],
    steps: int,
    lr: float = 1.0,
    n_support: int = 4,
    anchor: Start | None = None,
) -> tuple[float, dict[float, float]]:
    """Tune the penalty of :func:`adapt_toward` on the (training) ``tasks``: the ``lam`` of the grid ``lams`` whose
    mean accuracy on unseen inputs after ``steps`` steps (:func:`mean_adaptation_curve`) is highest (the first of
    the grid on a tie). Returns ``(best lam, {lam: accuracy})``. The other arguments are checked, before any work,
    by :func:`mean_adaptation_curve`."""
    grid = [check_float("lams", lam, 0.0) for lam in _as_list("lams", lams)]
    if not grid:
        raise ValueError("lams must hold at least one value")
    scores: dict[float, float] = {}
    for lam in grid:
        c = mean_adaptation_curve(
            model, start, tasks, p, seeds=seeds, steps=steps, lr=lr, n_support=n_support, anchor=anchor, lam=lam
        )
        scores[lam] = float(c[-1])
    best = max(scores, key=lambda v: (scores[v], -list(scores).index(v)))
    return best, scores
