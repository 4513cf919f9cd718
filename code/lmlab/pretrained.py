"""Small "pretrained" models, trained by lmlab itself from a fixed seed and cached on disk.

Nothing is downloaded. ``load(name)`` trains the named recipe the first time (seconds on a CPU), saves the weights
in a cache directory, and loads them on later calls::

    from lmlab import pretrained
    model = pretrained.load("induction-2l")      # a TinyTransformer on lmlab.device(), in eval mode
    pretrained.recipes()                          # ['arithmetic-cot', 'bigram-zero', 'digits-vgg', 'induction-2l']
    pretrained.info("induction-2l")               # what it is, how it was trained, what it should achieve

The cache directory is ``cache_dir``, else the environment variable ``LMLAB_CACHE``, else ``~/.cache/lmlab``. A file
is named by a key made of the recipe name, a hash of the recipe's full configuration and ``lmlab.__version__``, so
changing a recipe or upgrading lmlab trains afresh. A file that cannot be read, that carries another key, or whose
tensors do not match their recorded SHA-256 is reported with a warning and retrained: it is never trusted. Files
are written to a temporary name and renamed, so parallel processes never read a half-written file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

import lmlab
from lmlab._runtime import device as _default_device
from lmlab.model import ModelConfig, TinyTransformer
from lmlab.tasks import (
    _TEMPLATES,
    NAMES,
    OBJECTS,
    ArithmeticTask,
    BigramLanguage,
    Problem,
    parse_answer,
    repeated_sequences,
)
from lmlab.train import train
from lmlab.vision import VGG, VGGConfig, load_digits, train_classifier

__all__ = [
    "FORMAT",
    "Recipe",
    "bigram_agreement",
    "cache_path",
    "complete",
    "default_cache_dir",
    "evaluate_arithmetic",
    "head_scores",
    "induction_losses",
    "info",
    "load",
    "recipes",
    "task",
]

FORMAT = "lmlab-pretrained/1"


@dataclass(frozen=True)
class Recipe:
    """How one pretrained model is made.

    Attributes:
        name: the recipe's name, the argument of :func:`load`.
        description: one paragraph for :func:`info`.
        model: the architecture: a ``ModelConfig`` (a TinyTransformer), or the config dataclass of a model made by
            the factory registered for the recipe's builder in ``_FACTORIES`` (e.g. a ``VGGConfig``).
        task: the data's parameters (passed to the task's constructor / sampler).
        train: the settings passed to :func:`lmlab.train.train` plus ``batch`` (sequences per step).
        seed: the seed of the initial weights and of the data stream.
        target: the quality the recipe is built to reach (measured by ``benchmarks/pretrain.py``).
    """

    name: str
    description: str
    model: Any
    task: dict[str, Any]
    train: dict[str, Any]
    seed: int
    target: str
    builder: str = field(default="", repr=False)


def _arith_fingerprint() -> str:
    """A hash of the arithmetic templates, names and objects: editing them changes the cache key."""
    blob = json.dumps({"templates": _TEMPLATES, "names": NAMES, "objects": OBJECTS}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _make_recipes() -> dict[str, Recipe]:
    arith_kw = {"seed": 0, "n_train": 20000, "n_heldout": 500, "max_operand": 6, "max_factor": 5}
    arith = ArithmeticTask(**arith_kw)
    return {
        "bigram-zero": Recipe(
            name="bigram-zero",
            description=(
                "The zero-layer model of the homework: logits L = W_U W_E T, no attention, no MLP, no positional "
                "embedding, trained on lmlab.tasks.BigramLanguage(n_vocab=24, seed=0). Column a of W_U W_E "
                "approximates log P[a, :] up to a constant."
            ),
            model=ModelConfig(n_vocab=24, n_ctx=64, d_model=32, n_layers=0, pos_emb="none"),
            task={"n_vocab": 24, "seed": 0, "concentration": 0.2, "smoothing": 0.05, "n": 64},
            train={"steps": 800, "batch": 64, "lr": 0.05, "optimizer": "adamw", "schedule": "cosine", "warmup": 20},
            seed=0,
            target="correlation >= 0.99 between W_U W_E and log P^T after removing per-column constants",
            builder="bigram",
        ),
        "induction-2l": Recipe(
            name="induction-2l",
            description=(
                "A 2-layer attention-only transformer (2 heads per layer, learned positions, no LayerNorm) trained on "
                "BOS + r + r with r a run of distinct random tokens (lmlab.tasks.repeated_sequences, BOS = 0). The "
                "length of r varies from batch to batch, so the second copy can only be predicted by looking back "
                "at the first (an induction circuit), not by a fixed positional offset."
            ),
            model=ModelConfig(n_vocab=64, n_ctx=49, d_model=32, n_layers=2, n_heads=2, pos_emb="learned"),
            task={"n_vocab": 64, "bos": 0, "min_len": 8, "max_len": 24, "eval_len": 20},
            train={"steps": 1500, "batch": 32, "lr": 0.03, "optimizer": "adamw", "schedule": "cosine", "warmup": 30},
            seed=0,
            target=(
                "second-copy loss < 0.1 nats/token, first copy near ln(n_vocab) = 4.16; a previous-token head in "
                "layer 0 and induction heads in layer 1 (head_scores)"
            ),
            builder="induction",
        ),
        "arithmetic-cot": Recipe(
            name="arithmetic-cot",
            description=(
                "A 2-layer transformer with MLPs and LayerNorm, character-level, trained on "
                "lmlab.tasks.ArithmeticTask(seed=0) word problems (add, subtract, multiply, divide) whose answers "
                "follow a short chain of thought and end 'Final answer: N\\n'. The loss counts only the solution "
                "(chain of thought, answer, newline), as in the homework's soft-prompting question."
            ),
            model=ModelConfig(
                n_vocab=arith.tokenizer.n_vocab,
                n_ctx=arith.max_len,
                d_model=64,
                n_layers=2,
                n_heads=4,
                d_mlp=256,
                layer_norm=True,
            ),
            task={**arith_kw, "fingerprint": _arith_fingerprint()},
            train={
                "steps": 500,
                "batch": 16,
                "lr": 0.01,
                "optimizer": "adamw",
                "schedule": "cosine",
                "warmup": 30,
                "weight_decay": 0.01,
            },
            seed=0,
            target=">= 98% exact answers on the 500 held-out questions (greedy decoding, parse_answer)",
            builder="arithmetic",
        ),
        "digits-vgg": Recipe(
            name="digits-vgg",
            description=(
                "A small VGG-style CNN (lmlab.vision.VGG: conv-BN-ReLU blocks of 32, 32 | max pool | 64, 64 "
                "channels | max pool, global average pool, linear classifier) trained on scikit-learn's 8x8 digits "
                "(lmlab.vision.load_digits(seed=0), a seeded 60/20/20 train/validation/test split)."
            ),
            model=VGGConfig(channels=(32, 32, "M", 64, 64, "M")),
            task={"seed": 0, "size": 8},
            train={"steps": 300, "batch": 64, "lr": 0.003, "schedule": "cosine", "warmup": 20},
            seed=0,
            target=">= 98% accuracy on the 359 held-out test digits (lmlab.vision.accuracy)",
            builder="digits",
        ),
    }


RECIPES: dict[str, Recipe] = _make_recipes()


def recipes() -> list[str]:
    """The names :func:`load` accepts, sorted."""
    return sorted(RECIPES)


def _recipe(name: object) -> Recipe:
    if not isinstance(name, str) or name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; known recipes: {', '.join(recipes())}")
    return RECIPES[name]


def _config_dict(r: Recipe) -> dict[str, Any]:
    return {
        "name": r.name,
        "model": dataclasses.asdict(r.model),
        "task": r.task,
        "train": r.train,
        "seed": r.seed,
        "builder": r.builder,
    }


def _key(r: Recipe) -> str:
    blob = json.dumps(_config_dict(r), sort_keys=True, default=str)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:16]
    return f"{r.name}-{digest}-v{lmlab.__version__}"


def info(name: str) -> dict[str, Any]:
    """What recipe ``name`` is: ``description``, ``model`` (the ModelConfig as a dict), ``task``, ``train``,
    ``seed``, ``target`` and the cache ``key``. Raises ValueError for an unknown name (listing the known ones)."""
    r = _recipe(name)
    out = _config_dict(r)
    out.pop("builder")
    out.update(description=r.description, target=r.target, key=_key(r))
    return out


def task(name: str) -> Any:
    """The data a recipe was trained on: a :class:`~lmlab.tasks.BigramLanguage` for ``"bigram-zero"``, an
    :class:`~lmlab.tasks.ArithmeticTask` (with its tokenizer and held-out questions) for ``"arithmetic-cot"``, and
    the keyword arguments of :func:`~lmlab.tasks.repeated_sequences` (``n_vocab``, ``bos``) plus the lengths for
    ``"induction-2l"``, the :class:`~lmlab.vision.Digits` split for ``"digits-vgg"``."""
    r = _recipe(name)
    if r.builder == "bigram":
        t = r.task
        return BigramLanguage(t["n_vocab"], t["seed"], concentration=t["concentration"], smoothing=t["smoothing"])
    if r.builder == "arithmetic":
        t = {k: v for k, v in r.task.items() if k != "fingerprint"}
        return ArithmeticTask(**t)
    if r.builder == "digits":
        return load_digits(**r.task)
    return dict(r.task)


def default_cache_dir() -> Path:
    """``$LMLAB_CACHE`` if set, else ``~/.cache/lmlab``."""
    env = os.environ.get("LMLAB_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "lmlab"


def cache_path(name: str, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The file where recipe ``name`` is cached: ``<cache_dir>/<key>.pt``."""
    r = _recipe(name)
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return root / f"{_key(r)}.pt"


# --------------------------------------------------------------------------------------------------------------
# builders: train a recipe from its seed
# --------------------------------------------------------------------------------------------------------------


# Models that are not a TinyTransformer: builder -> factory(recipe.model) -> nn.Module (used to train and to load).
_FACTORIES: dict[str, Callable[[Any], torch.nn.Module]] = {"digits": VGG}


def _new_model(r: Recipe) -> Any:
    """The recipe's architecture with fresh weights: ``_FACTORIES[r.builder](r.model)`` or a TinyTransformer."""
    factory = _FACTORIES.get(r.builder, TinyTransformer)
    return factory(r.model)


def _fresh_model(r: Recipe, dev: torch.device) -> Any:
    """The recipe's initial weights, drawn on the CPU from ``r.seed`` without touching the global generator."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(r.seed)
        model = _new_model(r)
    return model.to(dev)


def _train_kwargs(r: Recipe) -> dict[str, Any]:
    kw = dict(r.train)
    kw.pop("batch")
    return kw


def _build_bigram(r: Recipe, dev: torch.device) -> tuple[TinyTransformer, list[float]]:
    lang = task(r.name)
    model = _fresh_model(r, dev)
    hist = train(model, lang.batches(r.train["batch"], r.task["n"], seed=r.seed), **_train_kwargs(r))
    return model, list(hist)


def _induction_batches(r: Recipe) -> Callable[[int], tuple[Tensor, Tensor]]:
    t = r.task

    def make(step: int) -> tuple[Tensor, Tensor]:
        g = torch.Generator().manual_seed(r.seed * 1_000_003 + step)
        n = int(torch.randint(t["min_len"], t["max_len"] + 1, (1,), generator=g))
        toks = repeated_sequences(r.train["batch"], n, t["n_vocab"], g, bos=t["bos"])
        return toks[:, :-1], toks[:, 1:]

    return make


def _build_induction(r: Recipe, dev: torch.device) -> tuple[TinyTransformer, list[float]]:
    model = _fresh_model(r, dev)
    hist = train(model, _induction_batches(r), **_train_kwargs(r))
    return model, list(hist)


def _build_arithmetic(r: Recipe, dev: torch.device) -> tuple[TinyTransformer, list[float]]:
    arith = task(r.name)
    model = _fresh_model(r, dev)
    hist = train(model, arith.batches(r.train["batch"], seed=r.seed), **_train_kwargs(r))
    return model, list(hist)


def _build_digits(r: Recipe, dev: torch.device) -> tuple[VGG, list[float]]:
    model = _fresh_model(r, dev)
    hist = train_classifier(model, task(r.name), seed=r.seed, **r.train)
    return model, list(hist)


_BUILDERS: dict[str, Callable[[Recipe, torch.device], tuple[Any, list[float]]]] = {
    "bigram": _build_bigram,
    "induction": _build_induction,
    "arithmetic": _build_arithmetic,
    "digits": _build_digits,
}


# --------------------------------------------------------------------------------------------------------------
# the cache
# --------------------------------------------------------------------------------------------------------------


class _CacheError(Exception):
    pass


def _state_sha256(state: dict[str, Tensor]) -> str:
    h = hashlib.sha256()
    for k in sorted(state):
        t = state[k].detach().to("cpu").contiguous()
        h.update(k.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.view(torch.int16).numpy().tobytes())
    return h.hexdigest()


def _save(path: Path, r: Recipe, model: TinyTransformer, meta: dict[str, Any]) -> None:
    state = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
    payload = {
        "format": FORMAT,
        "key": _key(r),
        "recipe": r.name,
        "version": lmlab.__version__,
        "sha256": _state_sha256(state),
        "state": state,
        "meta": meta,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a cache file is not secret
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _read(path: Path, r: Recipe, dev: torch.device) -> tuple[TinyTransformer, dict[str, Any]]:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncated, garbage, pickles with code: all rejected
        raise _CacheError(f"cannot be read ({type(e).__name__}: {str(e)[:120]})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise _CacheError(f"is not an lmlab cache file of format {FORMAT!r}")
    if payload.get("key") != _key(r):
        raise _CacheError(f"belongs to {payload.get('key')!r}, not {_key(r)!r}")
    state = payload.get("state")
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise _CacheError("has no tensor state")
    if payload.get("sha256") != _state_sha256(state):
        raise _CacheError("has tensors that do not match their recorded SHA-256 (damaged or edited)")
    model = _new_model(r)
    expected = model.state_dict()
    if set(state) != set(expected) or any(state[k].shape != expected[k].shape for k in expected):
        raise _CacheError("has tensors whose names or shapes do not fit the recipe's model")
    if any(not bool(torch.isfinite(v).all()) for v in state.values() if v.is_floating_point()):
        raise _CacheError("has non-finite weights")
    model.load_state_dict(state)
    meta = payload.get("meta")
    return model.to(dev), dict(meta) if isinstance(meta, dict) else {}


def load(
    name: str,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    retrain: bool = False,
    device: torch.device | str | None = None,
) -> TinyTransformer:
    """A trained :class:`~lmlab.model.TinyTransformer` for recipe ``name`` (see :func:`recipes`, :func:`info`).

    The first call trains the recipe from its fixed seed on ``device`` and writes ``<cache_dir>/<key>.pt``; later
    calls read that file. A damaged or foreign file triggers a warning and a retrain.

    Args:
        name: ``"bigram-zero"``, ``"induction-2l"``, ``"arithmetic-cot"`` or ``"digits-vgg"`` (a
            :class:`~lmlab.vision.VGG`, not a TinyTransformer).
        cache_dir: where to cache (default ``$LMLAB_CACHE`` or ``~/.cache/lmlab``).
        retrain: train afresh even if a valid cache file exists (and overwrite it).
        device: where the model goes (default :func:`lmlab.device`).

    Returns:
        The model in eval mode, on ``device``. Its ``pretrained_info`` attribute holds :func:`info` plus the
        training ``meta`` (``train_s``, ``final_loss``, ``losses``: the loss at every training step, ``device``,
        and ``source``: ``"trained"`` or ``"cache"``), the same whether the model was trained now or read back.

    Raises:
        ValueError: unknown ``name`` (the message lists the known recipes).
    """
    r = _recipe(name)
    dev = torch.device(device) if device is not None else _default_device()
    path = cache_path(name, cache_dir)
    model: TinyTransformer | None = None
    meta: dict[str, Any] = {}
    if not retrain and path.exists():
        try:
            model, saved = _read(path, r, dev)
            meta = {**saved, "source": "cache"}
        except _CacheError as e:
            warnings.warn(
                f"lmlab.pretrained: cache file {path} {e}; it is ignored and {name!r} is retrained",
                RuntimeWarning,
                stacklevel=2,
            )
    if model is None:
        start = time.perf_counter()
        model, losses = _BUILDERS[r.builder](r, dev)
        meta = {
            "source": "trained",
            "train_s": time.perf_counter() - start,
            "final_loss": float(sum(losses[-20:]) / len(losses[-20:])),
            "device": str(dev),
            "losses": [float(x) for x in losses],
        }
        try:
            _save(path, r, model, {k: v for k, v in meta.items() if k != "source"})
        except OSError as e:
            warnings.warn(
                f"lmlab.pretrained: could not write the cache file {path} ({e}); the model is not cached",
                RuntimeWarning,
                stacklevel=2,
            )
    model.eval()
    model.pretrained_info = {**info(name), "meta": meta}  # type: ignore[attr-defined]
    return model


# --------------------------------------------------------------------------------------------------------------
# quality measures (used by benchmarks/pretrain.py and the chapters)
# --------------------------------------------------------------------------------------------------------------


@torch.no_grad()
def complete(
    model: TinyTransformer, prompts: Sequence[str], tokenizer: Any = None, *, max_new_tokens: int = 64
) -> list[str]:
    """Greedy completions of text prompts (character level), stopping at the first newline.

    Prompts of equal length are decoded together with key/value caching (``model.generate``).

    Args:
        model: a model trained on the tokenizer's ids.
        prompts: the texts, e.g. ``problem.question`` (ending ``" Answer:"``); ``BOS`` is put in front of each.
        tokenizer: a :class:`~lmlab.tasks.CharTokenizer` (default: the arithmetic task's).
        max_new_tokens: at most this many characters per completion (also capped by the context length).

    Returns:
        The generated text after each prompt, up to and including the first ``"\\n"`` (if one was produced).
    """
    if tokenizer is None:
        from lmlab.tasks import arithmetic_tokenizer

        tokenizer = arithmetic_tokenizer()
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be an int >= 1, got {max_new_tokens!r}")
    groups: dict[int, list[int]] = {}
    encoded = [tokenizer.encode(p, bos=True) for p in prompts]
    for i, ids in enumerate(encoded):
        if len(ids) >= model.cfg.n_ctx:
            raise ValueError(f"prompt {i} has {len(ids)} tokens with BOS; the context holds {model.cfg.n_ctx}")
        groups.setdefault(len(ids), []).append(i)
    out: list[str] = [""] * len(prompts)
    dev = model.device
    for n, idx in groups.items():
        x = torch.tensor([encoded[i] for i in idx], dtype=torch.long, device=dev)
        new = min(max_new_tokens, model.cfg.n_ctx - n)
        gen = model.generate(x, new)[:, n:].cpu()
        for row, i in zip(gen, idx):
            text = tokenizer.decode(row)
            cut = text.find("\n")
            out[i] = text if cut < 0 else text[: cut + 1]
    return out


def evaluate_arithmetic(model: TinyTransformer, questions: Sequence[Problem], tokenizer: Any = None) -> float:
    """Exact-answer accuracy: the fraction of problems whose greedy completion of ``problem.question`` parses
    (:func:`~lmlab.tasks.parse_answer`) to ``problem.answer``. A completion that does not parse counts as wrong."""
    if len(questions) == 0:
        raise ValueError("questions must hold at least one Problem")
    longest = max(len(p.solution) for p in questions) + 4
    completions = complete(model, [p.question for p in questions], tokenizer, max_new_tokens=longest)
    return sum(parse_answer(c) == p.answer for c, p in zip(completions, questions)) / len(questions)


@torch.no_grad()
def induction_losses(
    model: TinyTransformer, *, seq_len: int = 20, batch: int = 256, seed: int = 12345, bos: int = 0
) -> dict[str, float]:
    """Mean next-token loss (nats/token) on fresh ``BOS + r + r`` sequences, split by copy.

    Positions (tokens ``0..2 seq_len``, token 0 = BOS): ``"first"`` averages the predictions of tokens
    ``1..seq_len`` (the first copy; nothing to copy from, the best possible is about ln of the number of unused
    tokens); ``"second"`` averages tokens ``seq_len + 2 .. 2 seq_len`` (the second copy after its first token,
    which an induction head predicts); ``"boundary"`` is token ``seq_len + 1``, the first token of the second
    copy, which no model can know will repeat.
    """
    g = torch.Generator().manual_seed(seed)
    toks = repeated_sequences(batch, seq_len, model.cfg.n_vocab, g, bos=bos).to(model.device)
    logits = model(toks[:, :-1])
    tgt = toks[:, 1:]
    losses = torch.nn.functional.cross_entropy(logits.transpose(1, 2), tgt, reduction="none").mean(0)
    # losses[j] is the loss of predicting token j + 1
    return {
        "first": float(losses[:seq_len].mean()),
        "boundary": float(losses[seq_len]),
        "second": float(losses[seq_len + 1 :].mean()),
        "ln_n_vocab": math.log(model.cfg.n_vocab),
    }


@torch.no_grad()
def head_scores(
    model: TinyTransformer, *, seq_len: int = 20, batch: int = 64, seed: int = 12345, bos: int = 0
) -> dict[str, Tensor]:
    """Previous-token and induction scores of every head, on fresh ``BOS + r + r`` sequences (period ``T`` =
    ``seq_len``).

    With ``A^h`` the head's pattern (query ``i``, key ``j``; positions ``0..2T``, 0 = BOS):

    * ``prev_token[l, h]`` = mean of ``A_{i, i-1}`` over ``i = 2 .. 2T`` (attention to the token just before);
    * ``induction[l, h]`` = mean of ``A_{i, i-T+1}`` over the second copy ``i = T+1 .. 2T`` (attention to the
      token *after* the previous occurrence of the current token: offset ``-(T - 1)``).

    Returns:
        ``{"prev_token": (n_layers, n_heads), "induction": (n_layers, n_heads)}`` float tensors on the CPU. Scores
        above about 0.4 are commonly read as "this head does it".
    """
    g = torch.Generator().manual_seed(seed)
    T = seq_len
    toks = repeated_sequences(batch, T, model.cfg.n_vocab, g, bos=bos).to(model.device)
    _, cache = model.run_with_cache(toks)
    L, H = model.cfg.n_layers, model.cfg.n_heads
    prev, ind = torch.zeros(L, H), torch.zeros(L, H)
    i_prev = torch.arange(2, 2 * T + 1)
    i_ind = torch.arange(T + 1, 2 * T + 1)
    for layer in range(L):
        A = cache.attn[layer].float().cpu()  # (batch, H, n, n)
        prev[layer] = A[:, :, i_prev, i_prev - 1].mean(dim=(0, 2))
        ind[layer] = A[:, :, i_ind, i_ind - T + 1].mean(dim=(0, 2))
    return {"prev_token": prev, "induction": ind}


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
    target = lang.log_probs().T
    Mc = M - M.mean(dim=0, keepdim=True)
    Tc = target - target.mean(dim=0, keepdim=True)
    corr = float((Mc * Tc).sum() / (Mc.norm() * Tc.norm()))
    logq = torch.log_softmax(M, dim=0)  # column a: model's log-probabilities after a
    kl_rows = (lang.P * (lang.P.log() - logq.T)).sum(dim=1)
    return {
        "corr": corr,
        "max_abs_err": float((Mc - Tc).abs().max()),
        "kl": float((lang.stationary() * kl_rows).sum()),
        "entropy": lang.entropy(),
    }
