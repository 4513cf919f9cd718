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

What each recipe is (its model, task, training settings, seed and target) lives in :mod:`lmlab.recipes`;
``Recipe``, ``register``, ``RECIPES`` and ``bigram_agreement`` are re-exported here for the callers of
``pretrained``. Completing and scoring the arithmetic models is :func:`lmlab.prompting.complete` and
:func:`lmlab.prompting.accuracy` (``bos=True`` for ``"arithmetic-cot"``).
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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

import lmlab
import lmlab.core.recipes as _recipes
from lmlab.core.checks import check_int
from lmlab.core.model import TinyTransformer
from lmlab.core.recipes import RECIPES, Recipe, bigram_agreement, register
from lmlab.core.runtime import device as _default_device
from lmlab.core.runtime import draw_seed, seed_offset
from lmlab.core.train import train

__all__ = [
    "FORMAT",
    "RECIPES",
    "Recipe",
    "bigram_agreement",
    "cache_path",
    "default_cache_dir",
    "info",
    "load",
    "recipes",
    "register",
    "task",
]

FORMAT = "lmlab-pretrained/1"


def recipes() -> list[str]:
    """The names :func:`load` accepts, sorted."""
    return sorted(_recipes.RECIPES)


def _recipe(name: object) -> Recipe:
    if not isinstance(name, str) or name not in _recipes.RECIPES:
        raise ValueError(f"unknown recipe {name!r}; known recipes: {', '.join(recipes())}")
    return _recipes.RECIPES[name]


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
