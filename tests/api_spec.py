"""What every public function of lmlab accepts, and the bad values it must refuse with a clear error.

A *spec* gives one valid call (tiny arguments, fast) of a public function or class; the bad values per argument
are derived from the valid value's kind (a tensor gets a string, ``None``, a list and the wrong number of
dimensions; an int a string, a float and a negative number; a list an int and a string among its elements; ...)
and drawn with Hypothesis. A bad call is

* ``clear``: a ``TypeError``/``ValueError`` raised by lmlab's own code (the innermost frame is a ``raise`` in
  lmlab, not a torch/numpy/pint internal) whose message names the argument;
* ``unclear``: another exception, one raised deep in a library, or a message that does not name the argument;
* ``silent``: no error at all;
* ``hang``: still running after :data:`TIME_LIMIT_S`.

``tests/test_bad_input.py`` asserts that every bad call is clear, except the (function, argument) pairs listed in
:data:`KNOWN_UNCLEAR`; ``benchmarks/bad_input_share.py`` prints the shares. Both import this module, which imports
whichever ``lmlab`` is on the path.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import linecache
import math
import os
import re
import signal
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import lmlab
import numpy as np
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

TIME_LIMIT_S = 5.0  # a bad call still running after this is a hang
EXAMPLES_PER_KIND = 2  # Hypothesis examples drawn per (argument, kind of bad value)
LMLAB_DIR = os.path.dirname(os.path.abspath(lmlab.__file__))

# --------------------------------------------------------------------------------------------------------------
# discovery
# --------------------------------------------------------------------------------------------------------------


def public_api(extra: dict[str, str] | None = None) -> dict[str, Callable[..., Any]]:
    """``"module.name" -> object`` for every public function and class defined in a module of ``lmlab._WHERE``
    (and of ``extra``, ``{short name: part}``, for modules not yet listed there)."""
    out: dict[str, Callable[..., Any]] = {}
    for short, part in sorted({**lmlab._WHERE, **(extra or {})}.items()):
        module = importlib.import_module(f"lmlab.{part}.{short}")
        for name, obj in sorted(vars(module).items()):
            if name.startswith("_") or not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            if getattr(obj, "__module__", None) == module.__name__:
                out[f"{short}.{name}"] = obj
    return out


# --------------------------------------------------------------------------------------------------------------
# the spec
# --------------------------------------------------------------------------------------------------------------


@dataclass
class Spec:
    """One valid call of a public function and the arguments to spoil.

    Attributes:
        valid: builds the valid keyword arguments afresh (models are mutated by some calls).
        args: positional arguments for a ``*args`` function (built by ``valid`` when it returns ``(args, kwargs)``).
        positive: int/float arguments that must be > 0 (zero is also bad for them).
        prob: float arguments that must lie in ``[0, 1]`` (2.0 is also bad).
        any_sign: int/float arguments where a negative value is valid (only their type is spoiled).
        choice: str arguments with a fixed set of values (an unknown string is bad).
        inf_ok: float arguments where an infinite value is valid (only NaN is spoiled).
        same_shape: tensor arguments whose number of dimensions is free (only their type is spoiled).
        extra: more bad values for one argument, ``{argument: {kind: [values]}}``.
        skip: arguments not spoiled (booleans and ``device`` always are), with the reason in a comment.
        record: the reason a class is a plain record of results, built by lmlab (not checked).
        run_valid: False where the valid call is too slow for the suite (it trains a model); bad calls still run.
    """

    valid: Callable[[], Any] | None = None
    positive: tuple[str, ...] = ()
    prob: tuple[str, ...] = ()
    any_sign: tuple[str, ...] = ()
    choice: tuple[str, ...] = ()
    same_shape: tuple[str, ...] = ()
    skip: tuple[str, ...] = ()
    inf_ok: tuple[str, ...] = ()
    record: str = ""
    run_valid: bool = True
    extra: dict[str, dict[str, list[Any]]] = field(default_factory=dict)


def S(valid: Callable[[], Any], **kw: Any) -> Spec:  # noqa: N802 (short, the table below has hundreds)
    return Spec(valid=valid, **kw)


def R(why: str = "a record of results that lmlab builds") -> Spec:  # noqa: N802
    return Spec(record=why)


# --------------------------------------------------------------------------------------------------------------
# bad values by kind
# --------------------------------------------------------------------------------------------------------------

_TEXT = st.text(alphabet="abcxyz", min_size=1, max_size=4)
_NAN_INF = st.sampled_from([math.nan, math.inf, -math.inf])


def _takes_none(param: inspect.Parameter | None) -> bool:
    if param is None:
        return False
    ann = param.annotation if isinstance(param.annotation, str) else repr(param.annotation)
    return param.default is None or "None" in ann or "Any" in ann or "object" in ann


def _takes_any(param: inspect.Parameter | None) -> bool:
    ann = "" if param is None else str(param.annotation)
    return "Any" in ann or ann == "object"


def bad_kinds(name: str, value: Any, param: inspect.Parameter | None, spec: Spec) -> dict[str, st.SearchStrategy]:
    """The kinds of bad value for one argument whose valid value is ``value``: kind -> strategy."""
    if name in spec.skip or name == "device" or isinstance(value, bool):
        return {}
    kinds: dict[str, st.SearchStrategy] = {}
    if not _takes_none(param) and value is not None:
        kinds["None"] = st.none()
    if isinstance(value, (int, np.integer)):
        kinds["str"] = _TEXT
        kinds["float"] = st.floats(0.25, 0.75)
        if name not in spec.any_sign:
            kinds["negative"] = st.integers(-1000, -1)
            if name in spec.positive:
                kinds["zero"] = st.just(0)
    elif isinstance(value, (float, np.floating)):
        kinds["str"] = _TEXT
        kinds["nan/inf"] = st.just(math.nan) if name in spec.inf_ok else _NAN_INF
        if name not in spec.any_sign and (name in spec.positive or name in spec.prob):
            kinds["negative"] = st.floats(-1e3, -1e-3)
            if name in spec.positive:
                kinds["zero"] = st.just(0.0)
        if name in spec.prob:
            kinds["above 1"] = st.floats(1.5, 100.0)
    elif isinstance(value, str):
        kinds["int"] = st.integers(1, 9)
        if name in spec.choice:
            kinds["unknown"] = st.sampled_from(["nonsense", "xyz", ""])
    elif isinstance(value, (torch.Tensor, np.ndarray)):
        kinds["str"] = _TEXT
        if not _takes_any(param):  # an array-like argument takes a list
            kinds["list"] = st.just(np.asarray(value).tolist())
        if name not in spec.same_shape and value.ndim >= 1:
            kinds["extra dim"] = st.just(value[None])
            kinds["missing dim"] = st.just(value[0])
    elif isinstance(value, torch.nn.Module):
        kinds["str"] = _TEXT
        kinds["int"] = st.integers(1, 9)
    elif isinstance(value, torch.Generator):
        kinds["str"] = _TEXT
    elif _is_quantity(value):
        kinds["str"] = _TEXT
        kinds["wrong unit"] = st.just(_wrong_unit(value))
        if name not in spec.any_sign:
            kinds["negative"] = st.just(-abs(value) if value.magnitude != 0 else -1 * value.units)
    elif isinstance(value, (list, tuple, dict)):
        kinds["int"] = st.integers(1, 9)
        if type(value) in (list, tuple) and value and not isinstance(value[0], str):
            kinds["bad element"] = st.just(type(value)(["a", *value[1:]]))  # a string among numbers or tensors
    elif callable(value):
        kinds["int"] = st.integers(1, 9)
    else:  # a task, config, dataclass, tokenizer, ...
        kinds["str"] = _TEXT
        kinds["int"] = st.integers(1, 9)
    for kind, values in spec.extra.get(name, {}).items():
        kinds[kind] = st.sampled_from(values)
    return kinds


def _is_quantity(value: Any) -> bool:
    return type(value).__name__ == "Quantity" and hasattr(value, "units")


def _wrong_unit(value: Any) -> Any:
    u = lmlab.units.ureg
    return 3 * (u.meter if not value.is_compatible_with(u.meter) else u.second)


# --------------------------------------------------------------------------------------------------------------
# running and classifying a call
# --------------------------------------------------------------------------------------------------------------


class _Hang(BaseException):
    """Raised by the alarm in a call that runs past TIME_LIMIT_S (a BaseException: lmlab must not catch it)."""


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    def _raise(signum: int, frame: Any) -> None:
        raise _Hang()

    old = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def split_call(spec: Spec) -> tuple[list[Any], dict[str, Any]]:
    made = spec.valid()
    if isinstance(made, tuple):
        return list(made[0]), dict(made[1])
    return [], dict(made)


def invoke(fn: Callable[..., Any], args: list[Any], kwargs: dict[str, Any]) -> Any:
    """Call ``fn`` and run what it returns that is lazy (a context manager is entered, a generator drained)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = fn(*args, **kwargs)
        if isinstance(out, contextlib.AbstractContextManager) and hasattr(out, "gen"):
            with out:
                pass
        elif inspect.isgenerator(out):
            for _ in out:
                pass
    return out


def _innermost_is_lmlab_raise(exc: BaseException) -> bool:
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    filename = os.path.abspath(tb.tb_frame.f_code.co_filename)
    if not filename.startswith(LMLAB_DIR + os.sep):
        return False
    line = linecache.getline(filename, tb.tb_lineno).strip()
    return line.startswith("raise ")


def names_argument(message: str, name: str) -> bool:
    return re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", message) is not None


@dataclass
class Outcome:
    function: str
    argument: str
    kind: str
    value: str
    verdict: str  # clear / unclear / silent / hang
    detail: str


def classify(fn: Callable[..., Any], args: list[Any], kwargs: dict[str, Any], name: str) -> tuple[str, str]:
    """Run one bad call and say how it failed: (verdict, detail)."""
    try:
        with _time_limit(TIME_LIMIT_S):
            invoke(fn, args, kwargs)
    except _Hang:
        return "hang", f"still running after {TIME_LIMIT_S:g} s"
    except Exception as exc:  # noqa: BLE001 - the point is to see which
        detail = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:160]
        if not isinstance(exc, (TypeError, ValueError)):
            return "unclear", detail
        if not _innermost_is_lmlab_raise(exc):
            return "unclear", "raised deep in a library: " + detail
        if not names_argument(str(exc), name):
            return "unclear", "does not name it: " + detail
        return "clear", detail
    return "silent", "no error"


def _short(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor{tuple(value.shape)}"
    if isinstance(value, np.ndarray):
        return f"array{value.shape}"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def bad_plan(key: str, fn: Callable[..., Any], spec: Spec) -> list[tuple[str, str, st.SearchStrategy]]:
    """Every (argument, kind, strategy) to try for one function."""
    args, kwargs = split_call(spec)
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}
    plan = []
    for name, value in kwargs.items():
        for kind, strategy in bad_kinds(name, value, params.get(name), spec).items():
            plan.append((name, kind, strategy))
    return plan


def explore(key: str, fn: Callable[..., Any], spec: Spec, examples: int = EXAMPLES_PER_KIND) -> list[Outcome]:
    """Every bad call of one function, drawn by Hypothesis (derandomized: the same draw on every run)."""
    outcomes: list[Outcome] = []
    for name, kind, strategy in bad_plan(key, fn, spec):
        run = _runner(key, fn, spec, name, kind, strategy, examples, outcomes)
        run()
    return outcomes


def _runner(
    key: str,
    fn: Callable[..., Any],
    spec: Spec,
    name: str,
    kind: str,
    strategy: st.SearchStrategy,
    examples: int,
    outcomes: list[Outcome],
) -> Callable[[], None]:
    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=(Phase.explicit, Phase.generate),
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def run(bad: Any) -> None:
        args, kwargs = split_call(spec)
        kwargs[name] = bad
        verdict, detail = classify(fn, args, kwargs, name)
        outcomes.append(Outcome(key, name, kind, _short(bad), verdict, detail))

    return run


def resolve(api: dict[str, Callable[..., Any]]) -> tuple[dict[str, Spec], list[str]]:
    """Each spec matched to the public function it describes: ``(api key -> spec, spec keys with no function)``.

    A spec's key is ``"module.name"``; a function that moved to another module keeps its spec when its name is
    unique among the public functions (so that moving code between modules does not lose its checks).
    """
    by_name: dict[str, list[str]] = {}
    for key in api:
        by_name.setdefault(key.split(".", 1)[1], []).append(key)
    matched: dict[str, Spec] = {}
    stale: list[str] = []
    for key, spec in SPECS.items():
        if key in api:
            matched[key] = spec
            continue
        candidates = [k for k in by_name.get(key.split(".", 1)[1], []) if k not in SPECS]
        if len(candidates) == 1:
            matched[candidates[0]] = spec
        else:
            stale.append(key)
    return matched, stale


def known_unclear(key: str, api: dict[str, Callable[..., Any]]) -> set[str]:
    """The arguments of function ``key`` listed in :data:`KNOWN_UNCLEAR` (under its key, or under another module's
    name for a function that moved)."""
    name = key.split(".", 1)[1]
    return {arg for (fn, arg) in KNOWN_UNCLEAR if fn == key or (fn not in api and fn.split(".", 1)[1] == name)}


def module_of(key: str) -> str:
    return key.split(".")[0]


# --------------------------------------------------------------------------------------------------------------
# tiny valid arguments, built afresh for every call
# --------------------------------------------------------------------------------------------------------------


def _g(seed: int = 0) -> torch.Generator:
    return lmlab.generator(seed)


def _randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=_g(seed))


def _cfg(**kw: Any) -> Any:
    args = dict(n_vocab=8, n_ctx=8, d_model=8, n_layers=2, n_heads=2, d_mlp=16)
    args.update(kw)
    return lmlab.model.ModelConfig(**args)


def _tm(**kw: Any) -> Any:
    lmlab.seed_everything(0)
    return lmlab.model.TinyTransformer(_cfg(**kw))


def _tokens(batch: int = 2, n: int = 6, n_vocab: int = 8) -> torch.Tensor:
    return torch.randint(0, n_vocab, (batch, n), generator=_g(1))


def _tagged_model() -> Any:
    return _tm(n_vocab=10, n_ctx=4, n_layers=1)  # ModularTagged(p=5): 2p tokens


def _vgg(n_classes: int = 3) -> Any:
    lmlab.seed_everything(0)
    return lmlab.vision.VGG(lmlab.vision.VGGConfig(channels=(4, "M", 4), in_channels=1, n_classes=n_classes))


def _layers(m: torch.nn.Module) -> dict[str, torch.nn.Module]:
    return {n: x for n, x in m.named_modules() if isinstance(x, (torch.nn.Conv2d, torch.nn.Linear))}


def _images(batch: int = 2) -> torch.Tensor:
    return _randn(batch, 1, 8, 8)


_DIGITS: list[Any] = []


def _digits() -> Any:
    if not _DIGITS:
        _DIGITS.append(lmlab.vision.load_digits())
    return _DIGITS[0]


def _mlp() -> torch.nn.Module:
    lmlab.seed_everything(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3))


def _conv_bn() -> tuple[torch.nn.Conv2d, torch.nn.BatchNorm2d]:
    lmlab.seed_everything(0)
    return torch.nn.Conv2d(1, 2, 3, padding=1, bias=False), torch.nn.BatchNorm2d(2).eval()


def _accel() -> Any:
    u = lmlab.units.ureg
    return lmlab.fermi.Accelerator(
        name="toy",
        peak=1e15 * u.FLOP / u.s,
        bandwidth=3e12 * u.byte / u.s,
        memory=80e9 * u.byte,
        power=700 * u.W,
        price=30000 * u.USD,
        rental=2 * u.USD / u.hour,
    )


def _problems() -> list[Any]:
    return [lmlab.arithmetic.make_problem("add", 2, 3), lmlab.arithmetic.make_problem("mul", 2, 2)]


def _tok() -> Any:
    return lmlab.arithmetic.arithmetic_tokenizer()


def _arith_model() -> Any:
    return _tm(n_vocab=_tok().n_vocab, n_ctx=128, n_layers=1)


def _encoded(n_prompt: int) -> tuple[torch.Tensor, ...]:
    return lmlab.prompting.encode_problems(_tok(), _problems(), n_prompt)


def _log_ax() -> Any:
    ax = _fig_ax()[1]
    ax.set_yscale("log")
    ax.set_ylim(1, 100)
    return ax


def _svd() -> Any:
    return lmlab.circuits.full_svd(_randn(4, 4))


def _head() -> Any:
    return lmlab.layers.Head(_randn(2, 4), _randn(2, 4, seed=1), _randn(2, 4, seed=2), _randn(4, 2, seed=3))


def _layout(**kw: Any) -> Any:
    args = dict(prompt=1, question=2, reasoning=0, answer=1, newline=1, padding=0)
    args.update(kw)
    return lmlab.prompting.Layout(**args)


def _induction_layout() -> Any:
    return lmlab.induction.residual_layout(4, 6)


def _regression_task() -> Any:
    return lmlab.regression.RegressionTask(dim=2)


def _support() -> tuple[torch.Tensor, torch.Tensor]:
    return lmlab.meta_prompt.sample_pairs(1, 5, 3, _g())


def _start() -> torch.Tensor:
    return _randn(1, 8) * 0.1


def _record_rows() -> list[dict[str, Any]]:
    return [
        {
            "optimizer": "sgd",
            "diverged": False,
            "batch_size": b,
            "lr": lr,
            "seed": s,
            "loss": 1.0 / (1 + lr * b) + 0.01 * s,
            "avg_loss": 1.0 + lr,
        }
        for b in (1, 2)
        for lr in (0.1, 0.2, 0.4)
        for s in (0, 1)
    ]


def _fig_ax() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    plt.close(fig)
    return fig, ax


def _lora_model() -> torch.nn.Module:
    m = _mlp()
    lmlab.lora.add_lora(m, ["0"], 2)
    return m


def _sgd_data() -> Any:
    return lmlab.minibatch_sgd.make_dataset(8, 2, 0.1, 0, n_test=8)


def _t(*shape: int, seed: int = 0) -> Callable[[], torch.Tensor]:
    return lambda: _randn(*shape, seed=seed)


# --------------------------------------------------------------------------------------------------------------
# the specs: "module.name" -> one valid call
# --------------------------------------------------------------------------------------------------------------

SPECS: dict[str, Spec] = {
    # ---- core.runtime
    "runtime.device": S(lambda: {"prefer": "cpu"}, choice=("prefer",)),
    "runtime.draw_seed": S(lambda: {"seed": 3}),
    "runtime.generator": S(lambda: {"seed": 3}),
    "runtime.seed_everything": S(lambda: {"seed": 3}),
    "runtime.seed_offset": S(lambda: {}),
    # ---- core.checks (name is the caller's; value is what they check)
    "checks.check_float": S(
        lambda: {"name": "lr", "value": 0.5, "low": 0.0},
        skip=("value",),  # the value checked: its errors name `name`, tested by every other spec
        any_sign=("low",),
        inf_ok=("low",),  # -inf: no lower bound
    ),
    "checks.check_generator": S(lambda: {"generator": _g()}),
    "checks.check_int": S(lambda: {"name": "n", "value": 3, "low": 1}, skip=("value",), any_sign=("low",)),
    "checks.check_tensor": S(lambda: {"name": "x", "value": _randn(2), "ndim": 1}, skip=("value",)),
    # ---- core.model, core.layers
    "model.Cache": R(),
    "model.KVCache": R("the cache a forward pass fills"),
    "model.ModelConfig": S(
        lambda: {
            "n_vocab": 8,
            "n_ctx": 8,
            "d_model": 8,
            "n_layers": 1,
            "n_heads": 2,
            "d_head": 4,
            "d_mlp": 16,
            "pos_emb": "learned",
            "attn_scale": 0.5,
            "act": "gelu",
            "init_std": 0.02,
        },
        positive=("n_vocab", "n_ctx", "d_model", "n_heads", "d_head", "d_mlp", "attn_scale", "init_std"),
        choice=("pos_emb", "act"),
    ),
    "model.TinyTransformer": S(lambda: {"cfg": _cfg()}),
    "layers.Attention": S(
        lambda: {"n_heads": 2, "d_model": 8, "d_head": 4, "scale": 0.5, "init_std": 0.02, "out_std": 0.02},
        positive=("n_heads", "d_model", "d_head", "scale"),
    ),
    "layers.Block": S(
        lambda: {
            "attn": lmlab.layers.Attention(2, 8, 4, 0.5, 0.02, 0.02),
            "mlp": lmlab.layers.MLP(8, 16, "gelu", 0.02, 0.02),
            "d_model": 8,
            "layer_norm": False,
        },
        positive=("d_model",),
    ),
    "layers.Head": S(
        lambda: {"W_Q": _randn(2, 4), "W_K": _randn(2, 4, seed=1), "W_V": _randn(2, 4, seed=2), "W_O": _randn(4, 2)}
    ),
    "layers.MLP": S(
        lambda: {"d_model": 8, "d_mlp": 16, "act": "gelu", "init_std": 0.02, "out_std": 0.02},
        positive=("d_model", "d_mlp"),
        choice=("act",),
    ),
    "layers.causal_mask": S(lambda: {"n_q": 3, "n_k": 4}, positive=("n_q", "n_k")),
    "layers.sinusoidal_positions": S(lambda: {"d_model": 4, "n_ctx": 3}, positive=("d_model", "n_ctx")),
    # ---- core.tasks
    "tasks.BigramLanguage": S(
        lambda: {"n_vocab": 4, "seed": 0, "concentration": 0.2, "smoothing": 0.05},
        positive=("n_vocab", "concentration"),
        prob=("smoothing",),
    ),
    "tasks.RepeatedSequences": S(
        lambda: {"n_vocab": 8, "bos": 0, "min_len": 2, "max_len": 4, "eval_len": 3},
        positive=("n_vocab", "min_len", "max_len", "eval_len"),
    ),
    "tasks.next_token_pairs": S(lambda: {"tokens": _tokens()}),
    "tasks.periodic_batches": S(
        lambda: {"n_vocab": 8, "n_ctx": 8, "batch": 2, "min_period": 2, "max_period": 3, "seed": 0},
        positive=("n_vocab", "n_ctx", "batch", "min_period", "max_period"),
    ),
    "tasks.periodic_sequences": S(
        lambda: {"batch": 2, "n": 6, "n_vocab": 8, "generator": _g(), "min_period": 2, "max_period": 3},
        positive=("batch", "n", "n_vocab", "min_period", "max_period"),
    ),
    "tasks.repeated_sequences": S(
        lambda: {"batch": 2, "seq_len": 3, "n_vocab": 8, "generator": _g()}, positive=("batch", "seq_len", "n_vocab")
    ),
    "tasks.seeded_batches": S(lambda: {"draw": lambda s: _tokens(), "seed": 0}),
    # ---- core.train
    "train.History": R("the training loop's record"),
    "train.masked_cross_entropy": S(
        lambda: {"logits": _randn(2, 3, 5), "targets": _tokens(2, 3, 5), "mask": torch.ones(2, 3, dtype=torch.bool)}
    ),
    "train.next_token_loss": S(lambda: {"model": _tm(), "batch": (_tokens(), _tokens())}),
    "train.train": S(
        lambda: {"model": _tm(), "batches": lambda step: (_tokens(), _tokens()), "steps": 2, "lr": 1e-3},
        positive=("steps", "lr"),
        skip=("progress",),
    ),
    # ---- core.timing
    "timing.best_time": S(lambda: {"fn": lambda: None, "repeats": 2, "number": 1}, positive=("repeats", "number")),
    "timing.time_concat_vs_sum": S(
        lambda: {"d_model": 4, "n_heads": 2, "n_context": 3, "repeats": 1, "number": 1},
        positive=("d_model", "n_heads", "n_context", "repeats", "number"),
    ),
    # ---- core.pretrained (load trains a model: specced with a name that fails fast)
    "pretrained.Recipe": R("a recipe written by lmlab's authors, checked by register()"),
    "pretrained.bigram_agreement": S(
        lambda: {"model": _tm(n_layers=0), "lang": lmlab.tasks.BigramLanguage(8)}, skip=()
    ),
    "pretrained.cache_path": S(lambda: {"name": "bigram-zero"}, choice=("name",)),
    "pretrained.default_cache_dir": S(lambda: {}),
    "pretrained.info": S(lambda: {"name": "bigram-zero"}, choice=("name",)),
    "pretrained.load": S(lambda: {"name": "bigram-zero"}, choice=("name",), skip=("cache_dir",), run_valid=False),
    "pretrained.recipes": S(lambda: {}),
    "pretrained.register": S(lambda: {"recipe": lmlab.pretrained.RECIPES["bigram-zero"]}, run_valid=False),
    "pretrained.task": S(lambda: {"name": "bigram-zero"}, choice=("name",)),
    # ---- inside.circuits
    "circuits.SVDFactors": R("the factors full_svd/factored_svd return"),
    "circuits.additive_output": S(
        lambda: {"W_Os": [_randn(4, 2), _randn(4, 2)], "rs": [_randn(2, 3), _randn(2, 3, seed=1)]}
    ),
    "circuits.attention_pattern": S(lambda: {"S": _randn(3, 3)}, same_shape=("S",)),  # takes a batch
    "circuits.attention_scores": S(
        lambda: {"W_qk": _randn(4, 4), "X": _randn(4, 3), "scale": 0.5}, positive=("scale",), same_shape=("X",)
    ),
    "circuits.attention_weighted_average": S(lambda: {"X": _randn(4, 3), "A": torch.full((3, 3), 1 / 3)}),
    "circuits.centre_columns": S(lambda: {"M": _randn(4, 3)}),
    "circuits.concat_output": S(
        lambda: {"W_Os": [_randn(4, 2), _randn(4, 2)], "rs": [_randn(2, 3), _randn(2, 3, seed=1)]}
    ),
    "circuits.energy_fraction": S(lambda: {"svd": _svd(), "basis": _randn(4, 2)}, choice=("side",)),
    "circuits.factored_svd": S(lambda: {"W_O": _randn(4, 2), "W_V": _randn(2, 4)}),
    "circuits.full_svd": S(lambda: {"M": _randn(4, 3)}),
    "circuits.head_output": S(
        lambda: {"W_O": _randn(4, 2), "W_V": _randn(2, 4), "X": _randn(4, 3), "A": torch.full((3, 3), 1 / 3)}
    ),
    "circuits.head_output_decomposition": S(lambda: {"svd": _svd(), "x": _randn(4)}),
    "circuits.ov_gain": S(lambda: {"svd": _svd(), "inputs": _randn(4, 3)}),
    "circuits.projection_fraction": S(lambda: {"vectors": _randn(4, 3), "basis": _randn(4, 2)}),
    "circuits.read_projector": S(lambda: {"svd": _svd()}),
    "circuits.split_W_O": S(lambda: {"W_O_H": _randn(4, 4), "n_heads": 2}, positive=("n_heads",)),
    "circuits.stack_W_O": S(lambda: {"W_Os": [_randn(4, 2), _randn(4, 2)]}),
    "circuits.stack_r": S(lambda: {"rs": [_randn(2, 3), _randn(2, 3, seed=1)]}),
    "circuits.subspace_projector": S(lambda: {"basis": _randn(4, 2)}),
    "circuits.to_columns": S(lambda: {"x": _randn(3, 4)}, same_shape=("x",)),  # (n, d) or (1, n, d)
    "circuits.write_projector": S(lambda: {"svd": _svd()}),
    # ---- inside.induction
    "induction.InductionWeights": R("built by induction_weights()"),
    "induction.ResidualLayout": R("built by residual_layout()"),
    "induction.as_multihead_attention": S(
        lambda: {"W_Q": _randn(2, 4), "W_K": _randn(2, 4), "W_V": _randn(2, 4), "W_O": _randn(4, 2)}
    ),
    "induction.build_induction_model": S(lambda: {"n_vocab": 4, "n_ctx": 6}, positive=("n_vocab", "n_ctx")),
    "induction.copying_head": S(lambda: {"layout": _induction_layout(), "scale": 20.0}, positive=("scale",)),
    "induction.embedding_weights": S(lambda: {"layout": _induction_layout(), "logit_scale": 15.0}),
    "induction.induction_weights": S(lambda: {"n_vocab": 4, "n_ctx": 6}, positive=("n_vocab", "n_ctx")),
    "induction.previous_token_head": S(lambda: {"layout": _induction_layout(), "offset": 1}, positive=("offset",)),
    "induction.residual_layout": S(lambda: {"n_vocab": 4, "n_ctx": 6}, positive=("n_vocab", "n_ctx")),
    "induction.run_weights": S(
        lambda: {"weights": lmlab.induction.induction_weights(4, 6), "tokens": torch.tensor([[0, 1, 2, 1]])}
    ),
    "induction.single_head": S(
        lambda: {"X": _randn(4, 3), "W_Q": _randn(2, 4), "W_K": _randn(2, 4), "W_V": _randn(2, 4), "W_O": _randn(4, 2)},
        same_shape=("X",),  # (d, n) or (batch, d, n)
    ),
    # ---- inside.heads
    "heads.CompositionBaseline": R(),
    "heads.HeadDetection": R(),
    "heads.composition_score": S(lambda: {"W_A": _randn(4, 4), "W_B": _randn(4, 4)}),
    "heads.composition_scores": S(lambda: {"model": _tm(), "layer": 1, "earlier": 0}),
    "heads.detect_heads": S(
        lambda: {"model": _tm(), "n_vocab": 8, "seq_len": 3, "batch": 2, "seed": 1, "threshold": 0.4},
        positive=("n_vocab", "seq_len", "batch"),
        prob=("threshold",),
    ),
    "heads.induction_score": S(
        lambda: {"attn": torch.full((1, 2, 7, 7), 1 / 7), "period": 3, "prefix": 1},
        positive=("period",),
        same_shape=("attn",),  # (..., n, n): any leading dimensions
    ),
    "heads.k_composition": S(lambda: {"W_QK1": _randn(4, 4), "W_OV0": _randn(4, 4)}),
    "heads.previous_token_score": S(
        lambda: {"attn": torch.full((1, 2, 5, 5), 1 / 5), "offset": 1}, positive=("offset",), same_shape=("attn",)
    ),
    "heads.q_composition": S(lambda: {"W_QK1": _randn(4, 4), "W_OV0": _randn(4, 4)}),
    "heads.random_composition_baseline": S(
        lambda: {"d_model": 4, "d_head": 2, "n_samples": 3, "seed": 0}, positive=("d_model", "d_head", "n_samples")
    ),
    "heads.v_composition": S(lambda: {"W_OV1": _randn(4, 4), "W_OV0": _randn(4, 4)}),
    # ---- inside.induction_eval
    "induction_eval.InductionEval": R(),
    "induction_eval.broken_variants": S(
        lambda: {"n_vocab": 6, "seq_len": 3, "seeds": [0], "batch": 2},
        positive=("n_vocab", "seq_len", "batch", "small_scale", "large_scale", "moderate_scale"),
    ),
    "induction_eval.evaluate_induction": S(
        lambda: {"model": _tm(), "n_vocab": 8, "seq_len": 3, "seeds": [0], "batch": 2},
        positive=("n_vocab", "seq_len", "batch"),
    ),
    "induction_eval.induction_probe": S(
        lambda: {"n_vocab": 8, "seq_len": 3, "batch": 2, "seed": 0}, positive=("n_vocab", "seq_len", "batch")
    ),
    "induction_eval.per_position_loss": S(lambda: {"logits": _randn(2, 6, 8), "tokens": _tokens()}),
    "induction_eval.qk_gradient_norms": S(lambda: {"model": _tm(), "tokens": _tokens()}),
    "induction_eval.repeat_metrics": S(
        lambda: {"logits": _randn(2, 7, 8), "tokens": _tokens(2, 7), "seq_len": 3, "prefix": 1}, positive=("seq_len",)
    ),
    "induction_eval.scale_sweep": S(
        lambda: {"scales": [1.0], "seq_lens": [3], "n_vocab": 6, "seeds": [0], "batch": 2},
        positive=("n_vocab", "batch"),
    ),
    # ---- inside.attribution
    "attribution.LogitAttribution": R(),
    "attribution.ablate_heads": S(lambda: {"model": _tm(), "heads": [(0, 1)]}),
    "attribution.check_heads": S(lambda: {"model": _tm(), "heads": [(0, 1)]}),
    "attribution.logit_attribution": S(lambda: {"model": _tm(), "tokens": _tokens(), "targets": _tokens()}),
    # ---- inside.lab_induction
    "lab_induction.attention_head": S(lambda: {"X": _randn(8, 3), "W_QK": _randn(8, 8), "W_OV": _randn(8, 8)}),
    "lab_induction.copying_head": S(lambda: {"strength": 10.0}, positive=("strength",)),
    "lab_induction.embed": S(lambda: {"tokens": "ab"}),
    "lab_induction.induction_input": S(lambda: {"X": _randn(9, 3), "prev_out": _randn(4, 3)}),
    "lab_induction.induction_logits": S(lambda: {"tokens": "abca", "strength": 10.0}, positive=("strength",)),
    "lab_induction.predict": S(lambda: {"tokens": "abca", "strength": 10.0}, positive=("strength",)),
    "lab_induction.previous_token_head": S(lambda: {"strength": 10.0}, positive=("strength",)),
    "lab_induction.token_ids": S(lambda: {"tokens": "ab"}),
}

SPECS.update(
    {
        # ---- adapting.arithmetic, modular, prompt_data
        "arithmetic.ArithmeticTask": S(
            lambda: {"seed": 0, "n_train": 20, "n_heldout": 5, "max_operand": 3, "max_factor": 2},
            positive=("n_train", "n_heldout", "max_operand", "max_factor"),
        ),
        "arithmetic.CharTokenizer": S(lambda: {"alphabet": "abc"}),
        "arithmetic.Problem": R("built by make_problem()"),
        "arithmetic.arithmetic_tokenizer": S(lambda: {}),
        "arithmetic.make_problem": S(lambda: {"op": "add", "a": 2, "b": 3}, choice=("op",)),
        "arithmetic.parse_answer": S(lambda: {"text": "#### 5"}, skip=("text",)),  # any object: None if no answer
        "modular.ModularAddition": S(lambda: {"p": 5, "n_heldout": 2, "seed": 0}, positive=("p", "n_heldout")),
        "prompt_data.ModularTagged": S(lambda: {"p": 5, "n_heldout": 2, "seed": 0}, positive=("p", "n_heldout")),
        "prompt_data.StyledArithmetic": S(
            lambda: {"seed": 0, "p_worked": 0.5, "p_hint": 0.5, "p_quick": 0.5, "n_train": 20, "n_heldout": 5},
            prob=("p_worked", "p_hint", "p_quick"),
            positive=("n_train", "n_heldout"),
        ),
        "prompt_data.terse_solution": S(lambda: {"problem": _problems()[0]}),
        # ---- adapting.lora, lora_init, lowrank
        "lora.LoRAFactors": R("the factors adapters() returns"),
        "lora.LoRALinear": S(
            lambda: {"base": torch.nn.Linear(4, 3), "rank": 2, "scale": 1.0}, positive=("rank",), choice=("init",)
        ),
        "lora.adapters": S(lambda: {"model": _lora_model()}),
        "lora.add_lora": S(
            lambda: {"model": _mlp(), "targets": ["0"], "rank": 2}, positive=("rank",), choice=("init",)
        ),
        "lora.finetune": S(
            lambda: {
                "model": _lora_model(),
                "batches": lambda s: (_randn(2, 4), _randn(2, 3)),
                "steps": 2,
                "lr": 1e-3,
                "loss_fn": lambda m, b: ((m(b[0]) - b[1]) ** 2).mean(),
            },
            positive=("steps", "lr"),
        ),
        "lora.lora_bytes": S(lambda: {"model": _lora_model()}),
        "lora.lora_param_groups": S(
            lambda: {"model": _lora_model(), "lr": 1e-3, "ratio": 4.0}, positive=("lr", "ratio")
        ),
        "lora.lora_parameters": S(lambda: {"model": _lora_model()}),
        "lora.merge_lora": S(lambda: {"model": _lora_model()}),
        "lora.weight_gradients": S(
            lambda: {
                "model": _mlp(),
                "names": ["0"],
                "batch": (_randn(2, 4), _randn(2, 3)),
                "loss_fn": lambda m, b: ((m(b[0]) - b[1]) ** 2).mean(),
            }
        ),
        "lora_init.check_rank": S(lambda: {"rank": 2, "m": 4, "l": 3}, positive=("rank", "m", "l")),
        "lora_init.init_factors": S(
            lambda: {"W0": _randn(4, 3), "rank": 2, "scale": 1.0, "gamma": 16.0, "generator": _g()},
            positive=("rank", "gamma"),
            choice=("init",),
        ),
        "lora_init.lora_scale": S(
            lambda: {"alpha": 16.0, "rank": 4, "rule": "lora"}, positive=("alpha", "rank"), choice=("rule",)
        ),
        "lowrank.FitResult": R(),
        "lowrank.eckart_young_floor": S(lambda: {"sigmas": [3.0, 2.0, 1.0], "k": 1}),
        "lowrank.fit_lowrank": S(
            lambda: {"delta": _randn(4, 3), "ranks": [1, 2], "lr": 0.01, "steps": 2, "generator": _g()},
            positive=("steps", "lr"),
            choice=("init",),
        ),
        "lowrank.planted_update": S(
            lambda: {"m": 4, "l": 3, "sigmas": [2.0, 1.0], "generator": _g()}, positive=("m", "l")
        ),
        "lowrank.random_orthonormal": S(lambda: {"n": 4, "k": 2, "generator": _g()}, positive=("n", "k")),
        # ---- adapting.prompting
        "prompting.Layout": S(
            lambda: {"prompt": 1, "question": 2, "reasoning": 0, "answer": 1, "newline": 1, "padding": 0},
            positive=("question", "answer"),
        ),
        "prompting.SoftPrompt": S(lambda: {"n_tokens": 2, "d_embed": 8, "std": 0.02}, positive=("n_tokens", "d_embed")),
        "prompting.accuracy": S(
            lambda: {"model": _arith_model(), "prompt": None, "problems": _problems()[:1], "tokenizer": _tok()}
        ),
        "prompting.complete": S(
            lambda: {
                "model": _arith_model(),
                "prompt": None,
                "questions": ["1+1="],
                "tokenizer": _tok(),
                "max_new_tokens": 2,
            },
            positive=("max_new_tokens",),
        ),
        "prompting.encode_problems": S(
            lambda: {"tokenizer": _tok(), "problems": _problems(), "n_prompt": 2}, positive=()
        ),
        "prompting.freeze": S(lambda: {"model": _mlp()}),
        "prompting.loss_mask": S(lambda: {"layout": _layout(), "n_ctx": 8}),
        "prompting.loss_positions": S(lambda: {"layout": _layout(), "n_ctx": 8}),
        "prompting.prefix_cache": S(lambda: {"model": _tm(), "prompt": _randn(2, 8), "batch": 2}, positive=("batch",)),
        "prompting.prompted_logits": S(lambda: {"model": _tm(), "prompt": _randn(2, 8), "tokens": _tokens(2, 4)}),
        "prompting.prompted_loss": S(lambda: {"model": _arith_model(), "prompt": _randn(2, 8), "batch": _encoded(2)}),
        "prompting.state_digest": S(lambda: {"model": _mlp()}),
        "prompting.train_prompt": S(
            lambda: {
                "model": lmlab.prompting.freeze(_arith_model()),
                "prompt": lmlab.prompting.SoftPrompt(2, 8),
                "batches": lambda s: _encoded(2),
                "steps": 2,
                "lr": 0.03,
            },
            positive=("steps", "lr"),
        ),
        # ---- adapting.meta_prompt (a model of ModularTagged(p=5): 10 tokens)
        "meta_prompt.adapt": S(
            lambda: {"model": _tagged_model(), "start": _start(), "support": _support(), "steps": 2, "lr": 0.5},
            positive=("lr",),
        ),
        "meta_prompt.adapt_toward": S(
            lambda: {
                "model": _tagged_model(),
                "start": _start(),
                "support": _support(),
                "anchor": _start(),
                "lam": 0.1,
                "steps": 2,
                "lr": 0.5,
            },
            positive=("lr",),
        ),
        "meta_prompt.adaptation_curve": S(
            lambda: {
                "model": _tagged_model(),
                "start": _start(),
                "k": 1,
                "p": 5,
                "steps": 2,
                "n_support": 2,
                "generator": _g(),
            },
            positive=("lr", "n_support"),
        ),
        "meta_prompt.choose_lambda": S(
            lambda: {
                "model": _tagged_model(),
                "start": _start(),
                "tasks": [1],
                "p": 5,
                "lams": [0.0, 0.1],
                "seeds": [0],
                "steps": 1,
                "n_support": 2,
            },
            positive=("lr", "n_support"),
        ),
        "meta_prompt.finetune": S(
            lambda: {"model": _tagged_model(), "start": _start(), "support": _support(), "steps": 2, "lr": 0.01},
            positive=("lr",),
        ),
        "meta_prompt.hard_prompt": S(lambda: {"model": _tagged_model(), "tokens": [6]}),
        "meta_prompt.library_start": S(
            lambda: {"model": _tagged_model(), "library": _randn(3, 1, 8), "support": _support()}
        ),
        "meta_prompt.maml": S(
            lambda: {
                "model": _tagged_model(),
                "start": _start(),
                "tasks": [1, 2],
                "p": 5,
                "meta_steps": 1,
                "inner_steps": 1,
                "tasks_per_step": 1,
                "n_support": 2,
                "n_query": 2,
            },
            positive=("inner_lr", "outer_lr", "tasks_per_step", "n_support", "n_query"),
        ),
        "meta_prompt.mean_adaptation_curve": S(
            lambda: {
                "model": _tagged_model(),
                "start": _start(),
                "tasks": [1],
                "p": 5,
                "seeds": [0],
                "steps": 1,
                "n_support": 2,
            },
            positive=("lr", "n_support"),
        ),
        "meta_prompt.pair_accuracy": S(lambda: {"model": _tagged_model(), "prompt": _start(), "k": 1, "p": 5}),
        "meta_prompt.pair_loss": S(
            lambda: {"model": _tagged_model(), "prompt": _start(), "x": torch.tensor([0, 1]), "y": torch.tensor([1, 2])}
        ),
        "meta_prompt.pairs_accuracy": S(
            lambda: {"model": _tagged_model(), "prompt": _start(), "x": torch.tensor([0, 1]), "y": torch.tensor([1, 2])}
        ),
        "meta_prompt.reptile": S(
            lambda: {
                "model": _tagged_model(),
                "start": _start(),
                "tasks": [1, 2],
                "p": 5,
                "meta_steps": 1,
                "inner_steps": 1,
                "tasks_per_step": 1,
                "n_support": 2,
            },
            positive=("inner_lr", "epsilon", "tasks_per_step", "n_support"),
        ),
        "meta_prompt.sample_pairs": S(lambda: {"k": 1, "p": 5, "n": 3, "generator": _g()}, positive=("p", "n")),
        "meta_prompt.support_losses": S(
            lambda: {"model": _tagged_model(), "library": _randn(3, 1, 8), "support": _support()}
        ),
        "meta_prompt.tag_mean": S(lambda: {"model": _tagged_model(), "tags": [6, 7]}),
        "meta_prompt.token_search": S(lambda: {"model": _tagged_model(), "support": _support(), "candidates": [5, 6]}),
        "meta_prompt.tune_prompt": S(
            lambda: {"model": _tagged_model(), "start": _start(), "support": _support(), "steps": 2, "lr": 0.05},
            positive=("lr",),
        ),
        "meta_prompt.tune_prompts": S(
            lambda: {"model": _tagged_model(), "start": _start(), "tasks": [1, 2], "p": 5, "steps": 2, "lr": 0.05},
            positive=("lr",),
        ),
        "meta_prompt.unseen": S(lambda: {"x": torch.tensor([0, 2]), "p": 5}, positive=("p",)),
    }
)


def _u() -> Any:
    return lmlab.units.ureg


def _fit() -> Any:
    return lmlab.chinchilla.ChinchillaFit(A=406.4, B=410.7, L0=1.69, alpha=0.34, beta=0.28)


SPECS.update(
    {
        # ---- scaling.chinchilla, fermi, uncertainty
        "chinchilla.AllocationLaw": S(
            lambda: {"k_N": 0.6, "a": 0.5, "k_D": 0.3, "b": 0.5}, positive=("k_N", "a", "k_D", "b")
        ),
        "chinchilla.ChinchillaFit": S(
            lambda: {"A": 406.4, "B": 410.7, "L0": 1.69, "alpha": 0.34, "beta": 0.28},
            positive=("A", "B", "alpha", "beta"),
        ),
        "chinchilla.ChinchillaLaw": R("built by chinchilla_law() from a checked fit"),
        "chinchilla.ChinchillaSymbolic": R("sympy expressions built by chinchilla_symbolic()"),
        "chinchilla.IsoflopMinimum": R(),
        "chinchilla.chinchilla_law": S(lambda: {"fit": _fit(), "C0": 6.0 * _u().FLOP / _u().parameter / _u().token}),
        "chinchilla.isoflop_minimum": S(lambda: {"fit": _fit(), "C": 1e21 * _u().FLOP}),
        "fermi.Accelerator": S(
            lambda: {
                "name": "toy",
                "peak": 1e15 * _u().FLOP / _u().s,
                "bandwidth": 3e12 * _u().byte / _u().s,
                "memory": 80e9 * _u().byte,
                "power": 700 * _u().W,
                "price": 30000 * _u().USD,
                "rental": 2 * _u().USD / _u().hour,
            }
        ),
        "fermi.accelerator_hours": S(
            lambda: {"flops": 1e21 * _u().FLOP, "peak": 1e15 * _u().FLOP / _u().s, "utilization": 0.5},
            prob=("utilization",),
            positive=("utilization",),
        ),
        "fermi.activation_memory_per_token": S(lambda: {"n_layers": 2, "d_model": 8}, positive=("n_layers", "d_model")),
        "fermi.decode_cost_per_token": S(
            lambda: {"N": 1e9 * _u().parameter, "batch": 8 * _u().token, "accelerator": _accel()}
        ),
        "fermi.decode_step_time": S(
            lambda: {"N": 1e9 * _u().parameter, "batch": 8 * _u().token, "accelerator": _accel()}
        ),
        "fermi.decode_throughput": S(
            lambda: {"N": 1e9 * _u().parameter, "batch": 8 * _u().token, "accelerator": _accel()}
        ),
        "fermi.devices_to_hold": S(lambda: {"memory": 100e9 * _u().byte, "device_memory": 80e9 * _u().byte}),
        "fermi.inference_flops": S(lambda: {"N": 1e9 * _u().parameter, "tokens": 1e6 * _u().token}),
        "fermi.landauer_energy": S(lambda: {"temperature": 300 * _u().kelvin}),
        "fermi.landauer_power": S(lambda: {"flop_rate": 1e15 * _u().FLOP / _u().s, "temperature": 300 * _u().kelvin}),
        "fermi.model_memory": S(lambda: {"N": 1e9 * _u().parameter}),
        "fermi.rental_cost": S(
            lambda: {"flops": 1e21 * _u().FLOP, "accelerator": _accel(), "utilization": 0.5},
            prob=("utilization",),
            positive=("utilization",),
        ),
        "fermi.roofline_batch": S(lambda: {"accelerator": _accel()}),
        "fermi.storage_cost": S(lambda: {"memory": 1e12 * _u().byte, "price": 1e-10 * _u().USD / _u().byte}),
        "fermi.token_latency": S(lambda: {"N": 1e9 * _u().parameter, "bandwidth": 3e12 * _u().byte / _u().s}),
        "fermi.training_flops": S(lambda: {"N": 1e9 * _u().parameter, "D": 2e10 * _u().token}),
        "uncertainty.Interval": R("built by interval()"),
        "uncertainty.interval": S(
            lambda: {"samples": np.arange(1.0, 11.0), "coverage": 0.9}, prob=("coverage",), positive=("coverage",)
        ),
        "uncertainty.log_normal": S(
            lambda: {"low": 1.0, "high": 10.0, "size": 4, "rng": np.random.default_rng(0), "coverage": 0.9},
            positive=("low", "high", "size", "coverage"),
            prob=("coverage",),
        ),
        "uncertainty.log_normal_quantile": S(
            lambda: {"low": 1.0, "high": 10.0, "q": 0.5, "coverage": 0.9},
            positive=("low", "high", "q", "coverage"),
            prob=("q", "coverage"),
        ),
        "uncertainty.log_uniform": S(
            lambda: {"low": 1.0, "high": 10.0, "size": 4, "rng": np.random.default_rng(0)},
            positive=("low", "high", "size"),
        ),
        "uncertainty.log_uniform_quantile": S(
            lambda: {"low": 1.0, "high": 10.0, "q": 0.5}, positive=("low", "high"), prob=("q",)
        ),
        "uncertainty.percentile_of": S(lambda: {"samples": np.arange(1.0, 11.0), "value": 3.0}, any_sign=("value",)),
        # ---- scaling.regression, sweep, sweepplot, minibatch_sgd
        "regression.LinearModel": S(lambda: {"dim": 2}, positive=("dim",)),
        "regression.MLPModel": S(lambda: {"dim": 2, "width": 4}, positive=("dim", "width")),
        "regression.RegressionTask": S(
            lambda: {"dim": 2, "noise_std": 0.1, "teacher": "linear", "teacher_width": 4, "seed": 0},
            positive=("dim", "teacher_width"),
            choice=("teacher",),
            prob=(),
        ),
        "regression.derive_seed": S(lambda: ([1, 2], {})),
        "sweep.LawFit": R("built by fit_laws()"),
        "sweep.Optima": R("built by optima_over_seeds()"),
        "sweep.SweepResult": R("built by sweep()"),
        "sweep.fit_laws": S(lambda: {"batch_sizes": [1.0, 2.0, 4.0, 8.0], "lrs": [0.1, 0.18, 0.3, 0.4]}),
        "sweep.optima_over_seeds": S(
            lambda: {"records": _record_rows(), "key": "avg_loss", "n_groups": 2}, positive=("n_groups",)
        ),
        "sweep.optimal_lrs": S(lambda: {"rows": lmlab.sweep.summarize(_record_rows())}),
        "sweep.sgd_linear_contraction": S(
            lambda: {"lr": 0.1, "batch_size": 2, "dim": 4}, positive=("lr", "batch_size", "dim")
        ),
        "sweep.sgd_linear_optimal_lr": S(lambda: {"batch_size": 2, "dim": 4}, positive=("batch_size", "dim")),
        "sweep.steps_to_target": S(
            lambda: {"steps": np.array([0, 1, 2]), "curve": np.array([1.0, 0.5, 0.2]), "target": 0.4},
            positive=("target",),
        ),
        "sweep.summarize": S(lambda: {"records": _record_rows(), "key": "loss"}),
        "sweep.sweep": S(
            lambda: {
                "task": _regression_task(),
                "model": lmlab.regression.LinearModel(2),
                "lrs": [0.1],
                "batch_sizes": [2],
                "seeds": [0],
                "steps": 2,
                "n_test": 8,
            },
            positive=("steps", "n_test", "eval_every", "diverge_factor", "eps"),
            choice=("optimizer",),
        ),
        "sweep.train_one": S(
            lambda: {
                "task": _regression_task(),
                "model": lmlab.regression.LinearModel(2),
                "lr": 0.1,
                "batch_size": 2,
                "seed": 0,
                "steps": 2,
                "n_test": 8,
            },
            positive=("lr", "batch_size", "steps", "n_test", "eval_every", "diverge_factor", "eps"),
            choice=("optimizer",),
        ),
        "sweepplot.batch_colors": S(lambda: {"batch_sizes": [1, 2, 4]}),
        "sweepplot.plot_laws": S(
            lambda: {
                "ax": _fig_ax()[1],
                "ax_res": None,
                "batch_sizes": [1.0, 2.0, 4.0, 8.0],
                "lrs": [0.1, 0.18, 0.3, 0.4],
                "fits": lmlab.sweep.fit_laws([1.0, 2.0, 4.0, 8.0], [0.1, 0.18, 0.3, 0.4]),
            }
        ),
        "sweepplot.plot_lr_curves": S(lambda: {"ax": _fig_ax()[1], "rows": lmlab.sweep.summarize(_record_rows())}),
        "minibatch_sgd.Dataset": R("built by make_dataset()"),
        "minibatch_sgd.Grid": R("built by sweep_linear()/sweep_mlp()"),
        "minibatch_sgd.heldout_mse": S(
            lambda: {"W": _randn(2, 2), "X": _randn(4, 2), "Y": _randn(4, 2)},
            same_shape=("W",),  # W (..., d, d)
        ),
        "minibatch_sgd.linear_recursion": S(
            lambda: {"lrs": np.array([0.1, 0.2]), "batch_size": 2, "steps": 3, "d": 2, "sigma": 0.1},
            positive=("batch_size", "d"),
        ),
        "minibatch_sgd.lr_grid": S(
            lambda: {"start": 0.01, "stop": 0.1, "factor": 2.0}, positive=("start", "stop", "factor")
        ),
        "minibatch_sgd.make_dataset": S(
            lambda: {"n": 8, "d": 2, "sigma": 0.1, "seed": 0, "n_test": 8}, positive=("n", "d", "n_test")
        ),
        "optim.cosine_schedule": S(lambda: {"step": 1, "steps": 4, "warmup": 1}, positive=("steps",)),
        "optim.adam_settings": S(
            lambda: {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}, positive=("eps",), prob=("weight_decay",)
        ),
        "optim.adam_state": S(lambda: {"params": [_randn(2, 3)]}),
        "optim.adam_step": S(
            lambda: {
                "params": [_randn(2, 3)],
                "grads": [_randn(2, 3, seed=1)],
                "state": [(torch.zeros(2, 3), torch.zeros(2, 3))],
                "lr": 0.1,
                "t": 1,
            },
            positive=("lr", "t"),
        ),
        "minibatch_sgd.sgd_draws": S(
            lambda: {"n": 8, "d": 2, "batch_size": 2, "steps": 3, "seed": 0}, positive=("n", "d", "batch_size")
        ),
        "minibatch_sgd.sgd_linear_regression": S(
            lambda: {"X": _randn(8, 2), "Y": _randn(8, 2), "batch_size": 2, "lr": 0.1, "steps": 3, "seed": 0},
            positive=("batch_size", "lr"),
        ),
        "minibatch_sgd.sgd_steps": S(
            lambda: {
                "X": _randn(8, 2),
                "Y": _randn(8, 2),
                "W0": _randn(2, 2),
                "batches": torch.randint(0, 8, (3, 2), generator=_g()),
                "lr": 0.1,
            },
            positive=("lr",),
        ),
        "minibatch_sgd.sweep_linear": S(
            lambda: {"data": _sgd_data(), "batch_sizes": [2], "lrs": [0.1], "seeds": [0], "steps": 3},
            positive=("steps", "diverge_factor"),
        ),
        "minibatch_sgd.sweep_mlp": S(
            lambda: {
                "data": _sgd_data(),
                "batch_sizes": [2],
                "lrs": [0.1],
                "seeds": [0],
                "steps": 3,
                "hidden": 4,
                "warmup": 1,
            },
            positive=("steps", "hidden", "diverge_factor", "eps"),
            choice=("optimizer",),
        ),
    }
)


def _vgg_masks() -> dict[str, torch.Tensor]:
    m = _vgg()
    return {n: torch.ones_like(layer.weight, dtype=torch.bool) for n, layer in _layers(m).items()}


def _first_layer(m: torch.nn.Module) -> str:
    return next(iter(_layers(m)))


def _lab_conv_args() -> dict[str, Any]:
    x = torch.randint(-128, 127, (1, 1, 4, 4), dtype=torch.int8, generator=_g())
    w = torch.randint(-127, 127, (2, 1, 3, 3), dtype=torch.int8, generator=_g())
    return {
        "input": x,
        "weight": w,
        "bias": torch.zeros(2, dtype=torch.int32),
        "feature_bitwidth": 8,
        "weight_bitwidth": 8,
        "input_zero_point": 0,
        "output_zero_point": 0,
        "input_scale": 0.1,
        "weight_scale": torch.full((2, 1, 1, 1), 0.01),
        "output_scale": 0.1,
        "stride": 1,
        "padding": (1, 1, 1, 1),
        "dilation": 1,
        "groups": 1,
    }


def _lab_linear_args() -> dict[str, Any]:
    args = _lab_conv_args()
    for k in ("stride", "padding", "dilation", "groups"):
        del args[k]
    args["input"] = torch.randint(-128, 127, (2, 4), dtype=torch.int8, generator=_g())
    args["weight"] = torch.randint(-127, 127, (3, 4), dtype=torch.int8, generator=_g())
    args["bias"] = torch.zeros(3, dtype=torch.int32)
    args["weight_scale"] = torch.full((3, 1), 0.01)
    return args


def _int8(*shape: int) -> torch.Tensor:
    return torch.randint(-127, 127, shape, dtype=torch.int8, generator=_g())


def _shared_colorbar_args() -> dict[str, Any]:
    fig, ax = _fig_ax()
    im = lmlab.plotting.heatmap(ax, _randn(2, 2).numpy(), colorbar=False)
    return {"fig": fig, "im": im, "axes": [ax]}


_SCALES = ("input_scale", "output_scale", "feature_bitwidth", "weight_bitwidth")

SPECS.update(
    {
        # ---- compressing.vision
        "vision.Digits": R("built by load_digits()"),
        "vision.VGG": S(lambda: {"cfg": lmlab.vision.VGGConfig(channels=(4, "M", 4), n_classes=3)}),
        "vision.VGGConfig": S(
            lambda: {"channels": (4, "M", 4), "in_channels": 1, "n_classes": 3}, positive=("in_channels", "n_classes")
        ),
        "vision.accuracy": S(
            lambda: {"model": _vgg(), "x": _images(), "y": torch.tensor([0, 1]), "batch": 2}, positive=("batch",)
        ),
        "vision.classification_loss": S(lambda: {"model": _vgg(), "batch": (_images(), torch.tensor([0, 1]))}),
        "vision.load_digits": S(
            lambda: {"seed": 0, "size": 8, "val_fraction": 0.2, "test_fraction": 0.2},
            positive=("size",),
            prob=("val_fraction", "test_fraction"),
        ),
        "vision.parameter_count": S(lambda: {"model": _vgg()}),
        "vision.train_classifier": S(
            lambda: {"model": _vgg(10), "data": _digits(), "steps": 2, "batch": 4, "lr": 0.003},
            positive=("steps", "batch", "lr"),
            choice=("schedule",),
            skip=("progress",),
        ),
        # ---- compressing.pruning
        "pruning.apply_masks": S(lambda: {"model": _vgg(), "masks": _vgg_masks()}),
        "pruning.channel_importance": S(lambda: {"consumer": torch.nn.Conv2d(4, 2, 3)}),
        "pruning.channel_prune": S(lambda: {"model": _vgg(), "sparsity": 0.5}, prob=("sparsity",), choice=("method",)),
        "pruning.count_macs": S(lambda: {"model": _vgg(), "x": _images(1)}),
        "pruning.count_outputs": S(lambda: {"model": _vgg(), "x": _images(1)}),
        "pruning.fine_grained_prune": S(lambda: {"model": _vgg(), "plan": {_first_layer(_vgg()): 0.5}}),
        "pruning.keep_masked": S(lambda: {"model": _vgg(), "masks": _vgg_masks()}),
        "pruning.kept_channels": S(
            lambda: {"channels": 8, "sparsity": 0.5}, positive=("channels",), prob=("sparsity",)
        ),
        "pruning.latency": S(
            lambda: {"model": _vgg(), "x": _images(1), "min_run_time": 0.01, "num_threads": 1},
            positive=("min_run_time", "num_threads"),
            choice=("clock",),
        ),
        "pruning.layer_times": S(
            lambda: {"model": _vgg(), "x": _images(1), "reps": 1, "rounds": 1},
            positive=("reps", "rounds"),
            choice=("clock",),
        ),
        "pruning.magnitude_mask": S(
            lambda: {"weight": _randn(4, 4), "sparsity": 0.5}, prob=("sparsity",), same_shape=("weight",)
        ),
        "pruning.n_pruned": S(lambda: {"numel": 8, "sparsity": 0.5}, prob=("sparsity",)),
        "pruning.semi_structured_mask": S(lambda: {"weight": _randn(4, 8), "n": 2, "m": 4}, positive=("n", "m")),
        "pruning.sensitivity_scan": S(
            lambda: {"model": _vgg(), "evaluate": lambda m: 1.0, "sparsities": [0.5], "layers": [_first_layer(_vgg())]}
        ),
        "pruning.sparsity": S(lambda: {"t": _randn(4, 4)}, same_shape=("t",)),
        # ---- compressing.quantization
        "quantization.KMeansWeight": S(lambda: {"bits": 2, "seed": 0}, positive=("bits",)),
        "quantization.LinearWeight": S(lambda: {"bits": 4}, positive=("bits",)),
        "quantization.bake": S(lambda: {"model": _vgg()}),
        "quantization.check_bits": S(lambda: {"bits": 4}, positive=("bits",)),
        "quantization.dequantize": S(
            lambda: {"q": torch.tensor([1, -2, 3]), "scale": 0.1, "zero": 0},
            positive=("scale",),
            same_shape=("q",),
            any_sign=("zero",),
        ),
        "quantization.fake_quantize": S(
            lambda: {"r": _randn(3), "scale": 0.1, "zero": 0, "bits": 4},
            positive=("scale", "bits"),
            same_shape=("r",),
            any_sign=("zero",),
        ),
        "quantization.kmeans_1d": S(
            lambda: {"x": _randn(16), "k": 2, "max_iter": 10},
            positive=("k", "max_iter"),
            choice=("init",),
            same_shape=("x",),  # any shape
        ),
        "quantization.linear_qparams": S(
            lambda: {"r_min": -1.0, "r_max": 1.0, "bits": 4}, positive=("bits",), any_sign=("r_min",)
        ),
        "quantization.minmax_qparams": S(lambda: {"x": _randn(4, 3), "bits": 4}, positive=("bits",), same_shape=("x",)),
        "quantization.qrange": S(lambda: {"bits": 4}, positive=("bits",)),
        "quantization.quantize": S(
            lambda: {"r": _randn(3), "scale": 0.1, "zero": 0, "bits": 4},
            positive=("scale", "bits"),
            same_shape=("r",),
            any_sign=("zero",),
        ),
        "quantization.quantize_weights": S(
            lambda: {"model": _vgg(), "method": "linear", "bits": 4}, positive=("bits",), choice=("method",)
        ),
        "quantization.storage_bits": S(
            lambda: {"shapes": [(4, 3)], "method": "linear", "bits": 4},
            positive=("bits", "float_bits"),
            choice=("method",),
        ),
        "quantization.weight_layers": S(lambda: {"model": _vgg()}),
        # ---- compressing.integer_inference
        "integer_inference.IntegerVGG": S(
            lambda: {"model": _vgg().eval(), "calib": _images(2), "bits": 8}, positive=("bits",)
        ),
        "integer_inference.fixed_point_multiplier": S(lambda: {"m": 0.3}, positive=("m",)),
        "integer_inference.fold_bn": S(lambda: dict(zip(("conv", "bn"), _conv_bn()))),
        "integer_inference.rescale": S(
            lambda: dict(
                zip(
                    ("acc", "m0", "n"), (torch.tensor([100, -50]), *lmlab.integer_inference.fixed_point_multiplier(0.3))
                )
            ),
            same_shape=("acc", "m0", "n"),
        ),
        # ---- compressing.lab_pruning, lab_quantization (the MIT labs' signatures)
        "lab_pruning.apply_channel_sorting": S(lambda: {"model": _vgg()}),
        "lab_pruning.channel_prune": S(lambda: {"model": _vgg(), "prune_ratio": 0.5}, prob=("prune_ratio",)),
        "lab_pruning.fine_grained_prune": S(
            lambda: {"tensor": _randn(4, 4), "sparsity": 0.5}, prob=("sparsity",), same_shape=("tensor",)
        ),
        "lab_pruning.get_input_channel_importance": S(lambda: {"weight": _randn(2, 3, 3, 3)}),
        "lab_pruning.get_num_channels_to_keep": S(
            lambda: {"channels": 8, "prune_ratio": 0.5}, positive=("channels",), prob=("prune_ratio",)
        ),
        "lab_pruning.sensitivity_scan": S(lambda: {"model": _vgg(), "evaluate": lambda m: 1.0, "sparsities": [0.5]}),
        "lab_quantization.Codebook": R("built by k_means_quantize()"),
        "lab_quantization.fuse_conv_bn": S(lambda: dict(zip(("conv", "bn"), _conv_bn()))),
        "lab_quantization.get_quantization_scale_and_zero_point": S(
            lambda: {"fp_tensor": _randn(4), "bitwidth": 8}, positive=("bitwidth",), same_shape=("fp_tensor",)
        ),
        "lab_quantization.get_quantization_scale_for_weight": S(
            lambda: {"weight": _randn(4), "bitwidth": 8}, positive=("bitwidth",), same_shape=("weight",)
        ),
        "lab_quantization.get_quantized_range": S(lambda: {"bitwidth": 8}, positive=("bitwidth",)),
        "lab_quantization.k_means_quantize": S(
            lambda: {"fp32_tensor": _randn(16), "bitwidth": 2}, positive=("bitwidth",), same_shape=("fp32_tensor",)
        ),
        "lab_quantization.linear_quantize": S(
            lambda: {"fp_tensor": _randn(4), "bitwidth": 8, "scale": 0.1, "zero_point": 0},
            positive=("bitwidth", "scale"),
            same_shape=("fp_tensor",),
            any_sign=("zero_point",),
        ),
        "lab_quantization.linear_quantize_bias_per_output_channel": S(
            lambda: {"bias": _randn(2), "weight_scale": torch.full((2, 1, 1, 1), 0.01), "input_scale": 0.1},
            positive=("input_scale",),
            same_shape=("weight_scale",),
        ),
        "lab_quantization.linear_quantize_feature": S(
            lambda: {"fp_tensor": _randn(4), "bitwidth": 8}, positive=("bitwidth",), same_shape=("fp_tensor",)
        ),
        "lab_quantization.linear_quantize_weight_per_channel": S(
            lambda: {"tensor": _randn(2, 1, 3, 3), "bitwidth": 8}, positive=("bitwidth",)
        ),
        "lab_quantization.quantized_conv2d": S(
            _lab_conv_args,
            positive=_SCALES,
            any_sign=("input_zero_point", "output_zero_point"),
            same_shape=("weight_scale",),
        ),
        "lab_quantization.quantized_linear": S(
            _lab_linear_args,
            positive=_SCALES,
            any_sign=("input_zero_point", "output_zero_point"),
            same_shape=("weight_scale",),
        ),
        "lab_quantization.shift_quantized_conv2d_bias": S(
            lambda: {
                "quantized_bias": torch.zeros(2, dtype=torch.int32),
                "quantized_weight": _int8(2, 1, 3, 3),
                "input_zero_point": 1,
            },
            any_sign=("input_zero_point",),
        ),
        "lab_quantization.shift_quantized_linear_bias": S(
            lambda: {
                "quantized_bias": torch.zeros(3, dtype=torch.int32),
                "quantized_weight": _int8(3, 4),
                "input_zero_point": 1,
            },
            any_sign=("input_zero_point",),
        ),
        # ---- presentation.report, plotting, units
        "report.Comparison": S(lambda: {"title": "t"}),
        "report.ComparisonRow": R("built by Comparison.add()"),
        "report.Table": S(lambda: {"headers": ["a", "b"], "rows": [[1, 2.5]], "sig": 3}, positive=("sig",)),
        "report.Text": S(lambda: {"text": "x"}),
        "report.fmt": S(lambda: {"value": 1234.5, "sig": 3}, positive=("sig",), any_sign=("value",)),
        "report.fmt_error": S(lambda: {"value": 1e-7, "sig": 1}, positive=("sig",)),
        "report.glue": S(lambda: {"name": "x", "value": 3}, skip=("value",)),
        "report.glue_all": S(lambda: {"prefix": "t", "values": {"a": 1.5}}, skip=()),
        "report.markdown_table": S(lambda: {"rows": [{"a": 1.0}], "columns": {"a": "A"}}),
        "report.sig_figs": S(lambda: {"number": "1.20"}),
        "plotting.heatmap": S(lambda: {"ax": _fig_ax()[1], "M": _randn(3, 3).numpy()}, choice=("aspect",)),
        "plotting.integer_ticks": S(lambda: {"ax": _fig_ax()[1], "axis": "both"}, choice=("axis",)),
        "plotting.log_ticks": S(lambda: {"ax": _log_ax(), "axis": "y"}, choice=("axis",)),
        "plotting.shared_colorbar": S(_shared_colorbar_args),
        "plotting.symmetric_limit": S(lambda: ([_randn(2, 2).numpy()], {})),
        "plotting.use": S(lambda: {}),
        "units.require": S(lambda: {"name": "x", "value": 3 * _u().meter, "unit": "m"}),
    }
)

SPECS.update(
    {
        "checks.check_callable": S(lambda: {"name": "fn", "value": len}, skip=("value",)),
        "checks.check_choice": S(lambda: {"name": "mode", "value": "a", "choices": ("a", "b")}, skip=("value",)),
        "checks.check_instance": S(lambda: {"name": "x", "value": 3, "cls": int}, skip=("value",)),
        "checks.check_ints": S(lambda: {"name": "xs", "values": [1, 2], "low": 0}, skip=("values",), any_sign=("low",)),
        "checks.check_module": S(lambda: {"name": "model", "value": _mlp()}, skip=("value",)),
        "checks.check_str": S(lambda: {"name": "s", "value": "x"}, skip=("value",)),
        "tasks.BatchSource": R("a typing.Protocol: the contract of the task classes, never called"),
        "circuits.circuit_attention": S(
            lambda: {"X": _randn(4, 3), "W_QK": _randn(4, 4), "W_OV": _randn(4, 4), "scale": 0.5},
            positive=("scale",),
            same_shape=("X",),  # (d, n) or (batch, d, n)
        ),
        "layers.check_head_shapes": S(
            lambda: {"W_Q": _randn(2, 4), "W_K": _randn(2, 4), "W_V": _randn(2, 4), "W_O": _randn(4, 2), "d_model": 4},
            positive=("d_model",),
        ),
        "layers.default_scale": S(lambda: {"d_head": 4, "scale": 0.5}, positive=("d_head", "scale")),
        "report.percent": S(lambda: {"fraction": 0.25, "digits": 1}),
        "report.points": S(lambda: {"fraction": 0.25, "digits": 0}),
        "report.say": S(
            lambda: {"outcome": 1, "above": "wins", "tie": "ties", "below": "loses"}, any_sign=("outcome",)
        ),
        "report.separated": S(lambda: {"a": [1.0, 1.1], "b": [2.0, 2.1]}),
        "report.spread": S(lambda: {"values": [1.0, 2.0], "sig": 3, "scale": 1.0}, positive=("sig", "scale")),
        "report.value_range": S(lambda: {"values": [1.0, 2.0], "sig": 3, "scale": 1.0}, positive=("sig", "scale")),
        "report.verdict": S(lambda: {"a": [1.0, 1.1], "b": [2.0, 2.1], "margin": 0.0}, positive=()),
        "vision.DigitsVGG": R("built by digits_vgg()"),
        "vision.digits_vgg": S(lambda: {"name": "digits-vgg"}, choice=("name",), run_valid=False),
    }
)

# (function, argument) pairs whose bad values do not yet all raise a clear error (the goal: none), with the first
# such call. Regenerate with `benchmarks/bad_input_share.py --known`; tests/test_bad_input.py fails when a pair
# listed here has become clear (remove it) or when a pair not listed here is not clear (fix it).
KNOWN_UNCLEAR: dict[tuple[str, str], str] = {
    ("laws.fit_laws", "batch_sizes"): "unclear: ['a', 2.0, 4.0, 8.0] (bad element): raised deep in a library: ValueEr",
    ("laws.fit_laws", "lrs"): "unclear: ['a', 0.18, 0.3, 0.4] (bad element): raised deep in a library: ValueError: co",
    ("laws.optima_over_seeds", "records"): "unclear: 1 (int): raised deep in a library: TypeError: 'int' object is no",
    ("laws.optimal_lrs", "rows"): "unclear: 1 (int): raised deep in a library: TypeError: 'int' object is not iterabl",
    ("laws.sgd_linear_contraction", "batch_size"): "unclear: 'a' (str): raised deep in a library: TypeError: can only",
    ("laws.sgd_linear_contraction", "lr"): "unclear: 'a' (str): raised deep in a library: TypeError: unsupported oper",
    ("laws.sgd_linear_optimal_lr", "batch_size"): "unclear: 'a' (str): raised deep in a library: TypeError: can only ",
    ("laws.steps_to_target", "curve"): "silent: None (None): no error",
    ("laws.steps_to_target", "steps"): "unclear: None (None): IndexError: too many indices for array: array is 0-dime",
    ("laws.summarize", "records"): "unclear: 1 (int): raised deep in a library: TypeError: 'int' object is not subscr",
    ("lora.LoRALinear", "base"): "unclear: None (None): does not name it: TypeError: LoRALinear wraps an nn.Linear, g",
    ("lora.adapters", "model"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute 'named_modu",
    ("lora.add_lora", "model"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute 'named_modu",
    ("lora.finetune", "batches"): "unclear: None (None): raised deep in a library: TypeError: 'NoneType' object is no",
    ("lora.finetune", "model"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute 'parameters",
    ("lora.lora_bytes", "model"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute 'named_mo",
    ("lora.lora_param_groups", "lr"): "unclear: None (None): raised deep in a library: TypeError: unsupported operand",
    ("lora.lora_param_groups", "model"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute 'n",
    ("lora.lora_parameters", "model"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute 'nam",
    ("lora.merge_lora", "model"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute 'named_mo",
    ("lora.weight_gradients", "batch"): "unclear: None (None): raised deep in a library: TypeError: 'NoneType' object",
    ("lora.weight_gradients", "loss_fn"): "unclear: None (None): raised deep in a library: TypeError: 'NoneType' obje",
    ("lora.weight_gradients", "model"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute 'na",
    ("lora.weight_gradients", "names"): "unclear: None (None): raised deep in a library: TypeError: 'NoneType' object",
    ("lowrank.eckart_young_floor", "sigmas"): "unclear: None (None): raised deep in a library: TypeError: must be rea",
    ("lowrank.fit_lowrank", "lr"): "unclear: None (None): raised deep in a library: TypeError: must be real number, n",
    ("lowrank.fit_lowrank", "ranks"): "unclear: None (None): raised deep in a library: TypeError: 'NoneType' object i",
    ("lowrank.planted_update", "generator"): "silent: None (None): no error",
    ("lowrank.planted_update", "l"): "unclear: None (None): raised deep in a library: TypeError: '<' not supported be",
    ("lowrank.planted_update", "m"): "unclear: None (None): raised deep in a library: TypeError: '<' not supported be",
    ("lowrank.planted_update", "sigmas"): "unclear: None (None): raised deep in a library: TypeError: must be real nu",
    ("lowrank.random_orthonormal", "generator"): "silent: None (None): no error",
    ("lowrank.random_orthonormal", "k"): "unclear: None (None): raised deep in a library: TypeError: '<=' not support",
    ("lowrank.random_orthonormal", "n"): "unclear: None (None): raised deep in a library: TypeError: '<=' not support",
    ("meta_prompt.adapt", "model"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute 'device",
    ("meta_prompt.adapt", "start"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute 'detach",
    ("meta_prompt.adapt", "support"): "unclear: None (None): raised deep in a library: TypeError: cannot unpack non-i",
    ("meta_prompt.adapt_toward", "anchor"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute",
    ("meta_prompt.adapt_toward", "model"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute ",
    ("meta_prompt.adapt_toward", "start"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute ",
    ("meta_prompt.adapt_toward", "support"): "unclear: None (None): raised deep in a library: TypeError: cannot unpac",
    ("meta_prompt.adaptation_curve", "model"): "unclear: None (None): AttributeError: 'NoneType' object has no attrib",
    ("meta_prompt.adaptation_curve", "start"): "unclear: None (None): AttributeError: 'NoneType' object has no attrib",
    ("meta_prompt.choose_lambda", "model"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute",
    ("meta_prompt.choose_lambda", "start"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute",
    ("meta_prompt.finetune", "model"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute 'par",
    ("meta_prompt.finetune", "support"): "unclear: None (None): raised deep in a library: TypeError: Value after * mu",
    ("meta_prompt.hard_prompt", "model"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute '",
    ("meta_prompt.hard_prompt", "tokens"): "unclear: None (None): raised deep in a library: TypeError: 'NoneType' obj",
    ("meta_prompt.library_start", "library"): "unclear: None (None): AttributeError: 'NoneType' object has no attribu",
    ("meta_prompt.library_start", "model"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute",
    ("meta_prompt.library_start", "support"): "unclear: None (None): raised deep in a library: TypeError: cannot unpa",
    ("meta_prompt.maml", "model"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute 'device'",
    ("meta_prompt.maml", "start"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute 'detach'",
    ("meta_prompt.mean_adaptation_curve", "model"): "unclear: None (None): AttributeError: 'NoneType' object has no a",
    ("meta_prompt.mean_adaptation_curve", "start"): "unclear: None (None): AttributeError: 'NoneType' object has no a",
    ("meta_prompt.pair_accuracy", "k"): "unclear: None (None): raised deep in a library: TypeError: unsupported opera",
    ("meta_prompt.pair_accuracy", "model"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute",
    ("meta_prompt.pair_accuracy", "p"): "unclear: None (None): raised deep in a library: TypeError: arange(): argumen",
    ("meta_prompt.pair_accuracy", "prompt"): "silent: None (None): no error",
    ("meta_prompt.pair_loss", "model"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute 'de",
    ("meta_prompt.pair_loss", "prompt"): "silent: None (None): no error",
    ("meta_prompt.pair_loss", "x"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute 'to'",
    ("meta_prompt.pair_loss", "y"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute 'to'",
    ("meta_prompt.pairs_accuracy", "model"): "unclear: None (None): AttributeError: 'NoneType' object has no attribut",
    ("meta_prompt.pairs_accuracy", "prompt"): "silent: None (None): no error",
    ("meta_prompt.pairs_accuracy", "x"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute 't",
    ("meta_prompt.pairs_accuracy", "y"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute 't",
    ("meta_prompt.reptile", "model"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute 'devi",
    ("meta_prompt.reptile", "start"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute 'deta",
    ("meta_prompt.sample_pairs", "generator"): "silent: None (None): no error",
    ("meta_prompt.support_losses", "library"): "unclear: None (None): AttributeError: 'NoneType' object has no attrib",
    ("meta_prompt.support_losses", "model"): "unclear: None (None): AttributeError: 'NoneType' object has no attribut",
    ("meta_prompt.support_losses", "support"): "unclear: None (None): raised deep in a library: TypeError: cannot unp",
    ("meta_prompt.tag_mean", "model"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute 'dev",
    ("meta_prompt.tag_mean", "tags"): "unclear: None (None): raised deep in a library: TypeError: object of type 'Non",
    ("meta_prompt.token_search", "candidates"): "unclear: 1 (int): raised deep in a library: TypeError: 'int' object ",
    ("meta_prompt.token_search", "model"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute ",
    ("meta_prompt.token_search", "support"): "unclear: None (None): raised deep in a library: TypeError: cannot unpac",
    ("meta_prompt.tune_prompt", "model"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute '",
    ("meta_prompt.tune_prompt", "support"): "unclear: None (None): raised deep in a library: TypeError: Value after *",
    ("meta_prompt.tune_prompts", "model"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute ",
    ("meta_prompt.unseen", "p"): "unclear: None (None): raised deep in a library: TypeError: 'NoneType' object cannot",
    ("meta_prompt.unseen", "x"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute 'tolist'",
    ("minibatch_sgd.linear_recursion", "lrs"): "unclear: 'a' (str): raised deep in a library: ValueError: could not c",
    ("minibatch_sgd.sweep_linear", "batch_sizes"): "unclear: None (None): raised deep in a library: TypeError: 'NoneT",
    ("minibatch_sgd.sweep_linear", "data"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute",
    ("minibatch_sgd.sweep_linear", "lrs"): "unclear: None (None): raised deep in a library: TypeError: 'NoneType' obj",
    ("minibatch_sgd.sweep_linear", "seeds"): "unclear: None (None): raised deep in a library: TypeError: 'NoneType' o",
    ("minibatch_sgd.sweep_mlp", "batch_sizes"): "unclear: None (None): raised deep in a library: TypeError: 'NoneType",
    ("minibatch_sgd.sweep_mlp", "data"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute 'X",
    ("minibatch_sgd.sweep_mlp", "lrs"): "unclear: None (None): raised deep in a library: TypeError: 'NoneType' object",
    ("minibatch_sgd.sweep_mlp", "seeds"): "unclear: None (None): raised deep in a library: TypeError: 'NoneType' obje",
    ("optim.adam_settings", "weight_decay"): "silent: 1.5 (above 1): no error",
    ("optim.adam_step", "lr"): "silent: 0.0 (zero): no error",
    ("plotting.heatmap", "M"): "unclear: 'a' (str): raised deep in a library: ValueError: could not convert string to",
    ("plotting.heatmap", "ax"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute 'imshow'",
    ("plotting.integer_ticks", "ax"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute 'xaxi",
    ("plotting.log_ticks", "ax"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute 'yaxis'",
    ("plotting.shared_colorbar", "axes"): "unclear: 1 (int): AttributeError: 'int' object has no attribute 'get_figur",
    ("plotting.shared_colorbar", "fig"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute 'c",
    ("plotting.shared_colorbar", "im"): "unclear: 'a' (str): AttributeError: 'str' object has no attribute 'cmap'",
    ("pretrained.cache_path", "name"): "unclear: None (None): does not name it: ValueError: unknown recipe None; know",
    ("pretrained.info", "name"): "unclear: None (None): does not name it: ValueError: unknown recipe None; known reci",
    ("pretrained.load", "name"): "unclear: None (None): does not name it: ValueError: unknown recipe None; known reci",
    ("pretrained.task", "name"): "unclear: None (None): does not name it: ValueError: unknown recipe None; known reci",
    ("prompting.accuracy", "model"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute 'cfg'",
    ("prompting.accuracy", "problems"): "unclear: None (None): raised deep in a library: TypeError: object of type 'N",
    ("prompting.accuracy", "prompt"): "unclear: 'a' (str): AttributeError: 'str' object has no attribute 'shape'",
    ("prompting.accuracy", "tokenizer"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute 'e",
    ("prompting.complete", "model"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute 'cfg'",
    ("prompting.complete", "prompt"): "unclear: 'a' (str): AttributeError: 'str' object has no attribute 'shape'",
    ("prompting.complete", "tokenizer"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute 'e",
    ("prompting.encode_problems", "problems"): "unclear: None (None): raised deep in a library: TypeError: object of ",
    ("prompting.encode_problems", "tokenizer"): "unclear: None (None): AttributeError: 'NoneType' object has no attri",
    ("prompting.freeze", "model"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute 'paramet",
    ("prompting.prefix_cache", "model"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute 'd",
    ("prompting.prefix_cache", "prompt"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute '",
    ("prompting.prompted_logits", "model"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute",
    ("prompting.prompted_logits", "prompt"): "unclear: 'a' (str): AttributeError: 'str' object has no attribute 'shap",
    ("prompting.prompted_loss", "batch"): "unclear: None (None): raised deep in a library: TypeError: 'NoneType' obje",
    ("prompting.prompted_loss", "model"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute '",
    ("prompting.prompted_loss", "prompt"): "unclear: 'a' (str): AttributeError: 'str' object has no attribute 'shape'",
    ("prompting.state_digest", "model"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute 's",
    ("prompting.train_prompt", "batches"): "unclear: None (None): raised deep in a library: TypeError: 'NoneType' obj",
    ("prompting.train_prompt", "model"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute 'p",
    ("quantization.storage_bits", "shapes"): "unclear: ['a'] (bad element): raised deep in a library: TypeError: torc",
    ("recipes.bigram_agreement", "lang"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute '",
    ("recipes.bigram_agreement", "model"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute ",
    ("regression.RegressionTask", "noise_std"): "unclear: None (None): raised deep in a library: TypeError: ufunc 'is",
    ("report.Text", "text"): "silent: None (None): no error",
    ("report.fmt", "value"): "unclear: 'a' (str): raised deep in a library: ValueError: could not convert string to f",
    ("report.fmt_error", "value"): "unclear: 'a' (str): raised deep in a library: ValueError: could not convert strin",
    ("report.glue_all", "prefix"): "silent: None (None): no error",
    ("report.separated", "a"): "silent: 1 (int): no error",
    ("report.separated", "b"): "silent: 1 (int): no error",
    ("report.spread", "values"): "silent: 1 (int): no error",
    ("report.value_range", "values"): "silent: 1 (int): no error",
    ("report.verdict", "a"): "silent: 1 (int): no error",
    ("report.verdict", "b"): "silent: 1 (int): no error",
    ("sweep.sweep", "batch_sizes"): "unclear: None (None): raised deep in a library: TypeError: 'NoneType' object is ",
    ("sweep.sweep", "lrs"): "unclear: None (None): raised deep in a library: TypeError: 'NoneType' object is not iter",
    ("sweep.sweep", "model"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute 'dim'",
    ("sweep.sweep", "seeds"): "unclear: None (None): raised deep in a library: TypeError: 'NoneType' object is not it",
    ("sweep.sweep", "task"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute 'dim'",
    ("sweep.train_one", "model"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute 'init'",
    ("sweep.train_one", "task"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute 'teacher_p",
    ("sweepplot.batch_colors", "batch_sizes"): "unclear: None (None): raised deep in a library: TypeError: object of ",
    ("sweepplot.plot_laws", "ax"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute 'plot'",
    ("sweepplot.plot_laws", "ax_res"): "unclear: 'a' (str): AttributeError: 'str' object has no attribute 'plot'",
    ("sweepplot.plot_laws", "batch_sizes"): "unclear: None (None): raised deep in a library: ValueError: x and y must",
    ("sweepplot.plot_laws", "fits"): "unclear: None (None): raised deep in a library: TypeError: 'NoneType' object is",
    ("sweepplot.plot_laws", "lrs"): "unclear: None (None): raised deep in a library: ValueError: x and y must have sa",
    ("sweepplot.plot_lr_curves", "ax"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute 'pl",
    ("sweepplot.plot_lr_curves", "rows"): "unclear: 1 (int): raised deep in a library: TypeError: 'int' object is not",
    ("tables.Comparison", "title"): "silent: None (None): no error",
    ("tables.Table", "headers"): "unclear: None (None): raised deep in a library: TypeError: 'NoneType' object is not",
    ("tables.Table", "rows"): "unclear: 1 (int): raised deep in a library: TypeError: 'int' object is not iterable",
    ("tables.markdown_table", "columns"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute '",
    ("tables.markdown_table", "rows"): "unclear: 1 (int): raised deep in a library: TypeError: 'int' object is not it",
    ("tables.sig_figs", "number"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute 'replace",
    ("train.masked_cross_entropy", "logits"): "unclear: None (None): AttributeError: 'NoneType' object has no attribu",
    ("train.masked_cross_entropy", "mask"): "unclear: 'a' (str): AttributeError: 'str' object has no attribute 'shape",
    ("train.masked_cross_entropy", "targets"): "unclear: None (None): AttributeError: 'NoneType' object has no attrib",
    ("train.next_token_loss", "batch"): "unclear: None (None): raised deep in a library: TypeError: object of type 'N",
    ("train.next_token_loss", "model"): "unclear: None (None): raised deep in a library: TypeError: 'NoneType' object",
    ("train.train", "batches"): "unclear: 1 (int): raised deep in a library: TypeError: 'int' object is not iterable",
    ("train.train", "model"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute 'parameters'",
    ("units.require", "name"): "silent: None (None): no error",
    ("units.require", "unit"): "unclear: None (None): AttributeError: 'NoneType' object has no attribute 'replace'",
    ("units.require", "value"): "unclear: 'a' (str): does not name it: TypeError: x must be a pint Quantity in units ",
    ("vision.classification_loss", "batch"): "unclear: ('a', tensor([0, 1])) (bad element): raised deep in a library:",
}
