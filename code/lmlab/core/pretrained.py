"""Small "pretrained" models, trained by lmlab itself from a fixed seed and cached on disk.

Nothing is downloaded. ``load(name)`` trains the named recipe the first time (seconds on a CPU), saves the weights
in a cache directory, and loads them on later calls::

    from lmlab import pretrained
    model = pretrained.load("induction-2l")      # a TinyTransformer on lmlab.device(), in eval mode
    pretrained.recipes()                          # ['arithmetic-cot', 'bigram-zero', 'induction-2l']
    pretrained.info("induction-2l")               # what it is, how it was trained, what it should achieve

The cache directory is ``cache_dir``, else the environment variable ``LMLAB_CACHE``, else ``~/.cache/lmlab``. A file
is named by a key made of the recipe name, a hash of the recipe's full configuration (with the draw's seed offset,
``LMLAB_SEED_OFFSET``) and ``lmlab.__version__``, so changing a recipe, the draw or lmlab trains afresh. A file
that cannot be read, that carries another key, or whose tensors do not match their recorded SHA-256 is reported
with a warning and retrained: it is never trusted. Files are written to a temporary name and renamed, so parallel
processes never read a half-written file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

import lmlab
from lmlab.adapting.arithmetic import ArithmeticTask, Problem, arithmetic_tokenizer, parse_answer
from lmlab.adapting.prompt_data import ModularTagged, StyledArithmetic
from lmlab.compressing.vision import VGG, VGGConfig, classification_loss, load_digits
from lmlab.core.checks import check_int
from lmlab.core.model import ModelConfig, TinyTransformer
from lmlab.core.runtime import device as _default_device
from lmlab.core.runtime import draw_seed, seed_offset
from lmlab.core.tasks import BigramLanguage, RepeatedSequences
from lmlab.core.train import train
from lmlab.inside.circuits import centre_columns

__all__ = [
    "FORMAT",
    "Recipe",
    "bigram_agreement",
    "cache_path",
    "complete",
    "default_cache_dir",
    "evaluate_arithmetic",
    "info",
    "load",
    "recipes",
    "register",
    "task",
]

FORMAT = "lmlab-pretrained/1"


@dataclass(frozen=True)
class Recipe:
    """How one pretrained model is made: ``train(make_model(model), make_task(**task).batches(**data), **train)``.

    Attributes:
        name: the recipe's name, the argument of :func:`load`.
        description: one paragraph for :func:`info`.
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
    """Add ``recipe`` to the recipes :func:`load` knows (a new recipe is one ``register(Recipe(...))`` call).

    Raises:
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
        "data": r.data,
        "train": r.train,
        "seed": r.seed,
        "seed_offset": seed_offset(),  # the draw (LMLAB_SEED_OFFSET): another offset trains another model
        "fingerprint": r.fingerprint,
        "make_model": _qualname(r.make_model),
        "loss_fn": _qualname(r.loss_fn),
        "accept": None if r.accept is None else r.max_attempts,
    }


def _qualname(f: Any) -> str | None:
    """A stable name for a function or class in the cache key (``str(f)`` would contain its address)."""
    return None if f is None else f"{f.__module__}.{f.__qualname__}"


def _key(r: Recipe) -> str:
    blob = json.dumps(_config_dict(r), sort_keys=True, default=str)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:16]
    return f"{r.name}-{digest}-v{lmlab.__version__}"


def info(name: str) -> dict[str, Any]:
    """What recipe ``name`` is: ``description``, ``model`` (the config as a dict), ``task``, ``data``, ``train``,
    ``seed``, ``target`` and the cache ``key``. Raises ValueError for an unknown name (listing the known ones)."""
    r = _recipe(name)
    return {**_config_dict(r), "description": r.description, "target": r.target, "key": _key(r)}


def task(name: str) -> Any:
    """The task a recipe was trained on, built afresh: ``make_task(**task)``. For the book's recipes a
    :class:`~lmlab.tasks.BigramLanguage` (``"bigram-zero"``), a :class:`~lmlab.tasks.RepeatedSequences`
    (``"induction-2l"``; its ``eval_len`` is the copy length to evaluate on), an
    :class:`~lmlab.arithmetic.ArithmeticTask` with its tokenizer and held-out questions (``"arithmetic-cot"``), a
    :class:`~lmlab.prompt_data.StyledArithmetic` (``"arithmetic-styles"``) and a
    :class:`~lmlab.prompt_data.ModularTagged` (``"modular-tagged"``)."""
    r = _recipe(name)
    return r.make_task(**r.task)


def default_cache_dir() -> Path:
    """``$LMLAB_CACHE`` if set, else ``~/.cache/lmlab``."""
    env = os.environ.get("LMLAB_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "lmlab"


def cache_path(name: str, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The file where recipe ``name`` is cached: ``<cache_dir>/<key>.pt``."""
    r = _recipe(name)
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return root / f"{_key(r)}.pt"


def _train_recipe(r: Recipe, dev: torch.device) -> tuple[nn.Module, list[float], int]:
    """Train a recipe from its seed: initial weights drawn on the CPU without touching the global generator.

    Returns the model, its per-step losses and the number of attempts (see ``Recipe.accept``)."""
    check_int("max_attempts", r.max_attempts, 1)
    settings = {k: v for k, v in r.train.items() if k != "batch"}
    if r.loss_fn is not None:
        settings["loss_fn"] = r.loss_fn
    for attempt in range(r.max_attempts):
        seed = r.seed + 1000 * attempt
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(draw_seed(seed))
            model = r.make_model(r.model)
        model = model.to(dev)
        source = task(r.name).batches(batch=r.train["batch"], seed=seed, **r.data)
        losses = list(train(model, source, **settings))
        if r.accept is None:
            break
        model.eval()
        with torch.no_grad():
            if r.accept(model, task(r.name)):
                break
        model.train()
    else:
        warnings.warn(
            f"lmlab.pretrained: {r.name!r} did not pass its acceptance test in {r.max_attempts} attempts",
            RuntimeWarning,
            stacklevel=3,
        )
    return model, losses, attempt + 1


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
    model = r.make_model(r.model)
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
        name: one of :func:`recipes` (``"bigram-zero"``, ``"induction-2l"``, ``"arithmetic-cot"``,
            ``"arithmetic-styles"``, ``"modular-tagged"``).
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
    with _training_lock(path):  # a second process asking for the same recipe waits, then reads the cache
        return _load_locked(name, r, dev, path, retrain)


@contextlib.contextmanager
def _training_lock(path: Path) -> Iterator[None]:
    """Hold ``<path>.lock`` while a recipe is read or trained, so two processes never train the same recipe twice.

    Where the lock cannot be taken (a read-only cache folder), the work goes on unlocked: at worst twice."""
    try:
        import filelock

        path.parent.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(str(path) + ".lock", timeout=1800)
        lock.acquire()
    except (ImportError, OSError):
        yield
        return
    try:
        yield
    finally:
        lock.release()


def _exists(path: Path) -> bool:
    """Whether the cache file is there; a folder that cannot be entered (``PermissionError``) counts as empty."""
    try:
        return path.exists()
    except OSError as e:
        warnings.warn(
            f"lmlab.pretrained: cannot look into the cache folder {path.parent} ({e}); the model is retrained",
            RuntimeWarning,
            stacklevel=4,
        )
        return False


STALE_TEMP_S = 3600.0  # a writer's temporary file older than this was left by a killed process


def _remove_stale_temps(path: Path) -> None:
    """Delete the temporary files of ``path`` (``.<name>.*.tmp``) that killed writers left behind."""
    try:
        for tmp in path.parent.glob(f".{path.name}.*.tmp"):
            if time.time() - tmp.stat().st_mtime > STALE_TEMP_S:
                tmp.unlink(missing_ok=True)
    except OSError:
        pass  # cleaning is a courtesy: an unreadable folder is reported where it matters


def _load_locked(name: str, r: Recipe, dev: torch.device, path: Path, retrain: bool) -> TinyTransformer:
    model: TinyTransformer | None = None
    meta: dict[str, Any] = {}
    _remove_stale_temps(path)
    if not retrain and _exists(path):
        try:
            model, saved = _read(path, r, dev)
            meta = {**saved, "source": "cache"}
        except _CacheError as e:
            warnings.warn(
                f"lmlab.pretrained: cache file {path} {e}; it is ignored and {name!r} is retrained",
                RuntimeWarning,
                stacklevel=3,
            )
    if model is None:
        start = time.perf_counter()
        model, losses, attempts = _train_recipe(r, dev)
        meta = {
            "source": "trained",
            "attempts": attempts,
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
                stacklevel=3,
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
        prompts: a list of texts, e.g. ``problem.question`` (ending ``" Answer:"``); ``BOS`` is put in front of
            each. A single string is refused (``TypeError``): wrap it in a list.
        tokenizer: a :class:`~lmlab.arithmetic.CharTokenizer` (default: the arithmetic task's).
        max_new_tokens: at most this many characters per completion (also capped by the context length).

    Returns:
        The generated text after each prompt, up to and including the first ``"\\n"`` (if one was produced).
    """
    tokenizer = arithmetic_tokenizer() if tokenizer is None else tokenizer
    check_int("max_new_tokens", max_new_tokens, 1)
    if isinstance(prompts, (str, bytes)) or not hasattr(prompts, "__iter__"):
        got = "a single string (wrap one prompt in a list)" if isinstance(prompts, str) else type(prompts).__name__
        raise TypeError(f"prompts must be a list of strings, got {got}")
    prompts = list(prompts)
    for i, q in enumerate(prompts):
        if not isinstance(q, str):
            raise TypeError(f"prompts[{i}] must be a str, got {type(q).__name__}")
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
    (:func:`~lmlab.arithmetic.parse_answer`) to ``problem.answer``. A completion that does not parse counts as wrong."""
    if len(questions) == 0:
        raise ValueError("questions must hold at least one Problem")
    longest = max(len(p.solution) for p in questions) + 4
    completions = complete(model, [p.question for p in questions], tokenizer, max_new_tokens=longest)
    return sum(parse_answer(c) == p.answer for c, p in zip(completions, questions)) / len(questions)


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
