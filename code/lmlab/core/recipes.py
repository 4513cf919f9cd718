"""The recipes of lmlab's small "pretrained" models: what each model is and how it is trained.

A :class:`Recipe` names an architecture, a task (a data source with ``batches``), the settings of
:func:`lmlab.train.train`, a seed and the target the model is built to reach; :func:`register` adds one to
``RECIPES``. The book's recipes (``"bigram-zero"``, ``"induction-2l"``, ``"arithmetic-cot"``, ``"digits-vgg"``,
``"arithmetic-styles"``, ``"modular-tagged"``) are registered here, with the measures their targets are stated in
(:func:`bigram_agreement`; the induction recipe's acceptance test). Training, caching and loading them is
:mod:`lmlab.pretrained`'s job (``pretrained.load(name)``); this module only says what they are.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from lmlab.adapting.arithmetic import ArithmeticTask, arithmetic_tokenizer
from lmlab.adapting.prompt_data import ModularTagged, StyledArithmetic
from lmlab.compressing.vision import VGG, VGGConfig, classification_loss, load_digits
from lmlab.core.model import ModelConfig, TinyTransformer
from lmlab.core.tasks import BigramLanguage, RepeatedSequences
from lmlab.inside.circuits import centre_columns

__all__ = ["RECIPES", "Recipe", "bigram_agreement", "register"]


@dataclass(frozen=True)
class Recipe:
    """How one pretrained model is made: ``train(make_model(model), make_task(**task).batches(**data), **train)``.

    Attributes:
        name: the recipe's name, the argument of :func:`lmlab.pretrained.load`.
        description: one paragraph for :func:`lmlab.pretrained.info`.
        model: the architecture (a dataclass, e.g. :class:`~lmlab.model.ModelConfig`).
        make_task: builds the data source from ``task``: an object with ``batches(batch=..., seed=..., **data)``
            returning a ``step -> batch`` callable (every task of :mod:`lmlab.tasks` has one).
        task: keyword arguments of ``make_task``.
        train: ``batch`` (sequences per step) and the settings passed to :func:`lmlab.train.train`.
        seed: the seed of the initial weights and of the data stream.
        target: the quality the recipe is built to reach (tested in ``tests/test_pretrained.py``).
        data: extra keyword arguments of ``batches`` (e.g. the sequence length of a bigram stream).
        fingerprint: a hash of anything else the data depend on (templates, word lists); part of the cache key.
        make_model: builds the model from ``model`` (default :class:`~lmlab.model.TinyTransformer`).
        loss_fn: the training loss, ``loss_fn(model, batch)`` (default: :func:`lmlab.train.train`'s next-token loss).
        accept: ``accept(model, task) -> bool``, whether a trained model shows what the recipe is for; when it
            does not, training starts again from the next seed (``seed + 1000 k`` for attempt ``k``), up to
            ``max_attempts`` times. For behaviour that appears after a plateau of random length (an induction
            circuit), this makes the recipe hold on every draw instead of on most.
        max_attempts: at most this many trainings (>= 1).
    """

    name: str
    description: str
    model: Any
    make_task: Callable[..., Any]
    task: dict[str, Any]
    train: dict[str, Any]
    seed: int
    target: str
    data: dict[str, Any] = field(default_factory=dict)
    fingerprint: str = ""
    make_model: Callable[[Any], nn.Module] = TinyTransformer
    loss_fn: Callable[..., Tensor] | None = None
    accept: Callable[[nn.Module, Any], bool] | None = None
    max_attempts: int = 1


RECIPES: dict[str, Recipe] = {}


def register(recipe: Recipe) -> Recipe:
    """Add ``recipe`` to the recipes :func:`lmlab.pretrained.load` knows (a new recipe is one
    ``register(Recipe(...))`` call).

    Raises:
        TypeError: ``recipe`` is not a :class:`Recipe`.
        ValueError: a recipe of that name exists already.
    """
    if not isinstance(recipe, Recipe):
        raise TypeError(f"recipe must be a Recipe, got {type(recipe).__name__}")
    if recipe.name in RECIPES:
        raise ValueError(f"a recipe named {recipe.name!r} exists already")
    RECIPES[recipe.name] = recipe
    return recipe


register(
    Recipe(
        name="bigram-zero",
        description=(
            "The zero-layer model of the homework: logits L = W_U W_E T, no attention, no MLP, no positional "
            "embedding, trained on lmlab.tasks.BigramLanguage(n_vocab=24, seed=0). Column a of W_U W_E "
            "approximates log P[a, :] up to a constant."
        ),
        model=ModelConfig(n_vocab=24, n_ctx=64, d_model=32, n_layers=0, pos_emb="none"),
        make_task=BigramLanguage,
        task={"n_vocab": 24, "seed": 0, "concentration": 0.2, "smoothing": 0.05},
        data={"n": 64},
        train={"steps": 800, "batch": 64, "lr": 0.05, "optimizer": "adamw", "schedule": "cosine", "warmup": 20},
        seed=0,
        target="correlation >= 0.99 between W_U W_E and log P^T after removing per-column constants",
    )
)

register(
    Recipe(
        name="induction-2l",
        description=(
            "A 2-layer attention-only transformer (2 heads per layer, learned positions, no LayerNorm) trained on "
            "BOS + r + r with r a run of distinct random tokens (lmlab.tasks.RepeatedSequences, BOS = 0). The "
            "length of r varies from batch to batch, so the second copy can only be predicted by looking back "
            "at the first (an induction circuit), not by a fixed positional offset."
        ),
        model=ModelConfig(n_vocab=64, n_ctx=49, d_model=32, n_layers=2, n_heads=2, pos_emb="learned"),
        make_task=RepeatedSequences,
        task={"n_vocab": 64, "bos": 0, "min_len": 8, "max_len": 24, "eval_len": 20},
        train={"steps": 1500, "batch": 32, "lr": 0.03, "optimizer": "adamw", "schedule": "cosine", "warmup": 30},
        seed=0,
        target=(
            "second-copy loss < 0.1 nats/token, first copy near ln(n_vocab) = 4.16; a previous-token head in "
            "layer 0 and induction heads in layer 1 (lmlab.heads.detect_heads). The circuit forms after a plateau "
            "whose length varies from seed to seed (1,500 steps sufficed on seed offsets 0 and 1, not on 2): "
            "a training that ends without it is rerun from the next seed (accept, max_attempts)"
        ),
        accept=lambda model, task: _induction_formed(model, task),
        max_attempts=6,
    )
)


def _induction_formed(model: nn.Module, task: RepeatedSequences) -> bool:
    """The induction recipe's acceptance test: second-copy loss < 0.05 on held-out sequences, a previous-token head
    in layer 0 and induction heads in layer 1 only."""
    from lmlab.inside.heads import detect_heads
    from lmlab.inside.induction_eval import evaluate_induction

    res = evaluate_induction(model, task.n_vocab, task.eval_len, seeds=range(900, 902), batch=32)
    det = detect_heads(model, seq_len=task.eval_len, batch=64, seed=901)
    return (
        res.loss_second < 0.05
        and any(layer == 0 for layer, _ in det.previous_token_heads)
        and bool(det.induction_heads)
        and all(layer == 1 for layer, _ in det.induction_heads)
    )


_ARITH = {"seed": 0, "n_train": 20000, "n_heldout": 500, "max_operand": 6, "max_factor": 5}
_ARITH_TRAIN = {"batch": 16, "lr": 0.01, "optimizer": "adamw", "schedule": "cosine", "warmup": 30, "weight_decay": 0.01}


def _char_model(n_ctx: int) -> ModelConfig:
    """The character-level word-problem model: 2 layers, MLPs and LayerNorm, ``n_ctx`` characters of context."""
    n_vocab = arithmetic_tokenizer().n_vocab
    return ModelConfig(n_vocab=n_vocab, n_ctx=n_ctx, d_model=64, n_layers=2, n_heads=4, d_mlp=256, layer_norm=True)


register(
    Recipe(
        name="arithmetic-cot",
        description=(
            "A 2-layer transformer with MLPs and LayerNorm, character-level, trained on "
            "lmlab.arithmetic.ArithmeticTask(seed=0) word problems (add, subtract, multiply, divide) whose answers "
            "follow a short chain of thought and end 'Final answer: N\\n'. The loss counts only the solution "
            "(chain of thought, answer, newline), as in the homework's soft-prompting question."
        ),
        model=_char_model(ArithmeticTask(**_ARITH).max_len),
        make_task=ArithmeticTask,
        task=_ARITH,
        fingerprint=ArithmeticTask(**_ARITH).fingerprint,
        train={**_ARITH_TRAIN, "steps": 700},
        seed=0,
        target=(
            ">= 98% exact answers on the 500 held-out questions (greedy decoding, parse_answer); measured 100% on "
            "seed offsets 0-2 x CPU kernels default/native, one thread (500 steps sat on the edge, 98.0%)"
        ),
    )
)

register(
    Recipe(
        name="digits-vgg",
        description=(
            "A small VGG-style CNN (lmlab.vision.VGG: conv-BN-ReLU blocks of 32, 32 | max pool | 64, 64 "
            "channels | max pool, global average pool, linear classifier) trained on scikit-learn's 8x8 digits "
            "(lmlab.vision.load_digits(seed=0), a seeded 60/20/20 train/validation/test split)."
        ),
        model=VGGConfig(channels=(32, 32, "M", 64, 64, "M")),
        make_model=VGG,
        make_task=load_digits,
        task={"seed": 0, "size": 8},
        loss_fn=classification_loss,
        train={"steps": 300, "batch": 64, "lr": 0.003, "schedule": "cosine", "warmup": 20},
        seed=0,
        target=(
            ">= 98% accuracy on the 359 held-out test digits (lmlab.vision.accuracy); measured 99.4-99.7% over seed "
            "offsets 0-2 x ATEN_CPU_CAPABILITY default, avx2 and native (AVX-512), one thread"
        ),
    )
)

_STYLED = {"seed": 0, "p_worked": 0.75, "p_hint": 1.0, "p_quick": 0.25}
register(
    Recipe(
        name="arithmetic-styles",
        description=(
            "The 2-layer model of 'arithmetic-cot' (MLPs, LayerNorm, character level, no BOS) trained on "
            "lmlab.prompt_data.StyledArithmetic: the same word problems answered either with a worked chain of "
            "thought ending 'Final answer: N\\n' (3/4 of the documents, all introduced by 'Show ') or tersely "
            "' N\\n' (1/4, a quarter of them introduced by 'Quick'). Without a prompt it answers tersely; a "
            "prompt has to ask for the worked style. Used by the soft-prompting chapter."
        ),
        model=_char_model(StyledArithmetic(**_STYLED).max_len),
        make_task=StyledArithmetic,
        task=_STYLED,
        fingerprint=ArithmeticTask(**_ARITH).fingerprint,
        train={**_ARITH_TRAIN, "steps": 1000},
        seed=0,
        target=(
            "< 10% exact answers ('Final answer:' parser) on held-out questions with no prompt (it answers "
            "tersely); >= 90% behind the hint 'Show ' (measured 100-100% on 200 held-out questions over the draws "
            "offset 0 native 1 and 2 threads, offset 1 default, offset 2 avx2; no prompt 0%; the former 600 "
            "steps gave 86.5% on offset 0)"
        ),
    )
)


register(
    Recipe(
        name="modular-tagged",
        description=(
            "A 1-layer transformer with an MLP and LayerNorm trained on lmlab.prompt_data.ModularTagged: "
            "[tag_k][x] -> (x + k) mod 17 for every k, the task named by its tag token. A one-vector soft prompt "
            "in the tag's place has to name the task; the soft-prompting chapter meta-learns its start."
        ),
        model=ModelConfig(n_vocab=34, n_ctx=4, d_model=64, n_layers=1, n_heads=2, d_mlp=256, layer_norm=True),
        make_task=ModularTagged,
        task={"p": 17, "n_heldout": 4, "seed": 0},
        train={"steps": 2000, "batch": 128, "lr": 0.003, "optimizer": "adamw", "schedule": "cosine", "warmup": 20},
        seed=0,
        target=(
            ">= 85% accuracy on every task behind its own tag (measured 100-100% on every task over the draws "
            "offset 0 native, offset 1 native and default, offset 2 avx2, 1 thread; the former lr 0.01 x "
            "1500 steps gave a lowest task of 47-88%); a search over the one-token prompts scored on 8 examples "
            "of a held-out task finds its tag, and a one-vector prompt tuned on them from the mean of the "
            "training tags beats no prompt (tests/test_prompting.py)"
        ),
    )
)


# --------------------------------------------------------------------------------------------------------------
# quality measures the recipes' targets are stated in
# --------------------------------------------------------------------------------------------------------------


@torch.no_grad()
def bigram_agreement(model: TinyTransformer, lang: BigramLanguage) -> dict[str, float]:
    """How well a zero-layer model recovers a bigram language.

    ``M = W_U W_E`` (``n_vocab x n_vocab``; column ``a`` = logits after token ``a``) is compared with
    ``log P^T`` (column ``a`` = ``log P[a, :]``) after subtracting each column's mean from both.

    Returns:
        ``corr``: Pearson correlation of the centred matrices; ``max_abs_err``: their largest difference (nats);
        ``kl``: ``sum_a pi_a KL(P[a, :] || softmax(M[:, a]))``, the model's excess loss over ``entropy``;
        ``entropy``: the language's true next-token entropy.
    """
    M = (model.W_U() @ model.W_E()).double().cpu()
    if M.shape != lang.P.shape:
        raise ValueError(f"W_U W_E has shape {tuple(M.shape)} but the language has n_vocab = {lang.n_vocab}")
    Mc, Tc = centre_columns(M), centre_columns(lang.log_probs().T)
    return {
        "corr": float((Mc * Tc).sum() / (Mc.norm() * Tc.norm())),
        "max_abs_err": float((Mc - Tc).abs().max()),
        "kl": lang.excess_loss(M),
        "entropy": lang.entropy(),
    }
