"""The one timer of the book's chapters and benchmarks, and the per-layer times of a forward pass.

* :func:`best_time` times any call: the fastest of several repetitions (a fixed count, or as many as
  ``torch.utils.benchmark``'s ``blocked_autorange`` fits in a time budget), on the wall clock or the process's CPU
  clock, with a chosen number of CPU threads, synchronised on a GPU.
* :func:`latency` is :func:`best_time` of one forward pass ``model(x)`` in eval mode, without gradients.
* :func:`layer_times` splits a forward pass by leaf module (forward hooks on the CPU clock, or ``torch.profiler``).
* :func:`time_concat_vs_sum` is the experiment of the circuits chapter (one concatenated product against a sum over
  heads), which ``benchmarks/concat_vs_sum.py`` runs at larger sizes.

What a forward pass computes, rather than how long it takes, is counted in :mod:`lmlab.core.cost`.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from lmlab.core.checks import (
    check_callable,
    check_choice,
    check_float,
    check_instance,
    check_int,
    check_module,
    check_tensor,
)
from lmlab.core.cost import _forward
from lmlab.core.runtime import device as lmlab_device
from lmlab.core.runtime import generator as _generator

__all__ = ["MAX_REPS", "MAX_ROUNDS", "MAX_RUN_TIME_S", "best_time", "latency", "layer_times", "time_concat_vs_sum"]

MAX_RUN_TIME_S = 60.0  # the longest min_run_time the timers accept: a larger one is a mistake, not a measurement
MAX_REPS = 10_000  # the most calls per repetition (best_time's number, layer_times' reps)
MAX_ROUNDS = 1_000  # the most repetitions (best_time's repeats, layer_times' rounds)
CLOCKS = ("auto", "wall", "cpu")


def _cpu_clock(clock: str, device: torch.device | None, threads: int, needs: str = "threads=1") -> bool:
    """Whether ``clock`` (``"auto"``, ``"wall"`` or ``"cpu"``) means the process's CPU clock here; ``"cpu"`` is
    refused where it would not measure the work (on a GPU, or with several threads: ``needs`` names the setting)."""
    check_choice("clock", clock, CLOCKS)
    single_cpu = (device is None or device.type == "cpu") and threads == 1
    if clock == "cpu" and not single_cpu:
        raise ValueError(f"clock='cpu' needs a CPU tensor and {needs} (CPU time would not measure the work)")
    return clock == "cpu" or (clock == "auto" and single_cpu)


def best_time(
    fn: Callable[[], Any],
    *,
    repeats: int | None = None,
    number: int | None = None,
    min_run_time: float | None = None,
    device: torch.device | str | None = None,
    threads: int | None = None,
    warmup: int = 1,
    clock: str = "wall",
) -> float:
    """Seconds per call of ``fn``: the fastest of several repetitions of a block of calls.

    The fastest repetition is the one least disturbed by other processes (as :mod:`timeit` recommends). On a CUDA
    ``device`` the GPU is synchronised before the clock starts and stops, so queued kernels are counted.

    Args:
        fn: the work to time (its result is discarded).
        repeats, number: a fixed count: ``repeats`` repetitions (default 3, at most ``MAX_ROUNDS``) of ``number``
            calls (default 1, at most ``MAX_REPS``). Not with ``min_run_time``.
        min_run_time: a time budget instead, in (0, ``MAX_RUN_TIME_S`` = 60] seconds:
            ``torch.utils.benchmark.Timer.blocked_autorange`` chooses the block size and repeats blocks for that
            long.
        device: where ``fn`` computes (only a CUDA device changes anything).
        threads: CPU threads for the measurement, in [1, ``os.cpu_count()``] (PyTorch's setting is restored
            afterwards); ``None`` keeps PyTorch's setting.
        warmup: untimed calls first (caches, lazy initialisation, kernel choice), >= 0.
        clock: ``"wall"`` (``time.perf_counter``), ``"cpu"`` (``time.process_time``: the process's CPU time, equal
            to the wall time of single-threaded compute on an idle machine, but blind to the time other processes
            take from it on a busy one; CPU work on one thread only), or ``"auto"``: ``"cpu"`` where it applies,
            else ``"wall"``.

    Raises:
        TypeError: ``fn`` not callable, or a count, budget or thread number of the wrong type.
        ValueError: a count, budget or thread number out of range, a count together with ``min_run_time``, an
            unknown ``clock``, or ``"cpu"`` on a GPU or with several threads.
    """
    check_callable("fn", fn)
    if min_run_time is not None:
        min_run_time = check_float("min_run_time", min_run_time, 0.0, strict=True, high=MAX_RUN_TIME_S)
        if repeats is not None or number is not None:
            raise ValueError("give either min_run_time (a time budget) or repeats and number (a count), not both")
    repeats = check_int("repeats", 3 if repeats is None else repeats, 1, MAX_ROUNDS)
    number = check_int("number", 1 if number is None else number, 1, MAX_REPS)
    warmup = check_int("warmup", warmup, 0, MAX_REPS)
    if threads is not None:
        threads = check_int("threads", threads, 1, os.cpu_count() or 1)
    dev = None if device is None else torch.device(device)
    n_threads = torch.get_num_threads() if threads is None else threads
    clock_fn = time.process_time if _cpu_clock(clock, dev, n_threads) else time.perf_counter
    cuda = dev is not None and dev.type == "cuda"

    def timer() -> float:  # the clock, read once the GPU's queued kernels are done
        if cuda:
            torch.cuda.synchronize(dev)
        return clock_fn()

    old_threads = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        for _ in range(warmup):
            fn()
        if min_run_time is not None:
            from torch.utils import benchmark

            t = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=n_threads, timer=timer)
            return float(min(t.blocked_autorange(min_run_time=min_run_time).times))
        times = []
        for _ in range(repeats):
            t0 = timer()
            for _ in range(number):
                fn()
            times.append((timer() - t0) / number)
    finally:
        torch.set_num_threads(old_threads)
    return min(times)


def latency(
    model: Callable[[Tensor], Tensor],
    x: Tensor,
    *,
    min_run_time: float = 0.2,
    num_threads: int = 1,
    clock: str = "auto",
) -> float:
    """Seconds of one forward pass ``model(x)`` under ``torch.no_grad()``: :func:`best_time` with a time budget
    (``blocked_autorange``: the time per run of the fastest block of runs), after one warm-up pass.

    Args:
        model: a module or any callable of one tensor (put into eval mode while it is timed, if a module).
        x: the input, already on the model's device.
        min_run_time: seconds to keep measuring, in (0, ``MAX_RUN_TIME_S`` = 60].
        num_threads: intra-op threads for the timer (default 1, as in this book), in [1, ``os.cpu_count()``].
        clock: as :func:`best_time`; ``"auto"`` is the CPU clock for a CPU tensor with one thread, else the wall.

    Raises:
        TypeError: ``model`` not callable, ``x`` not a tensor, ``min_run_time`` not a number or ``num_threads`` not
            an int.
        ValueError: ``min_run_time`` is not finite in (0, 60], ``num_threads`` outside [1, ``os.cpu_count()``],
            an unknown ``clock``, ``"cpu"`` for a GPU tensor or with several threads (CPU time would then not
            measure the pass), or an ``x`` the model cannot take.
    """
    check_callable("model", model)
    check_tensor("x", x)
    min_run_time = check_float("min_run_time", min_run_time, 0.0, strict=True, high=MAX_RUN_TIME_S)
    num_threads = check_int("num_threads", num_threads, 1, os.cpu_count() or 1)
    _cpu_clock(clock, x.device, num_threads, "num_threads=1")  # check the clock before any work
    was = model.training if isinstance(model, nn.Module) else None
    if isinstance(model, nn.Module):
        model.eval()

    def run() -> None:
        with torch.no_grad():
            model(x)

    try:
        _forward(model, x)  # the warm-up (first calls allocate and pick kernels), and a clear error for a bad x
        return best_time(run, min_run_time=min_run_time, device=x.device, threads=num_threads, clock=clock, warmup=0)
    finally:
        if isinstance(model, nn.Module) and was is not None:
            model.train(was)


@contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2 (the profiler's C++ backend prints a line at every start and stop)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def layer_times(
    model: nn.Module, x: Tensor, *, reps: int = 10, rounds: int = 3, clock: str = "auto"
) -> dict[str, float]:
    """Seconds per forward pass spent in each leaf module of ``model`` (by name), and in ``"(rest)"``: whatever
    the forward does outside them (a functional global average pool, Python glue).

    Args:
        model: the network (timed in eval mode, under ``torch.no_grad()``).
        x: its input, on the model's device.
        reps: forward passes per round; a round's times are averages over them.
        rounds: rounds; each layer's result is its smallest round average (other processes only add time).
        clock: ``"profiler"``: ``torch.profiler`` with each leaf module's call in a ``record_function`` range; a
            range's time is the time of the GPU kernels launched inside it when ``x`` is on a GPU, else its
            wall-clock CPU time. ``"cpu"``: forward hooks read the process's CPU time (``time.process_time``)
            before and after each leaf module; for a CPU tensor and one thread only. ``"auto"``: ``"cpu"`` for a
            CPU tensor when torch uses one thread, else ``"profiler"``.

    The instrumentation adds a little time to every layer: compare layers with each other, and use
    :func:`latency` for the time of the whole pass.

    Raises:
        TypeError: ``model`` not an ``nn.Module``, ``x`` not a tensor, ``reps`` or ``rounds`` not an int.
        ValueError: ``reps`` outside [1, ``MAX_REPS`` = 10000] or ``rounds`` outside [1, ``MAX_ROUNDS`` = 1000],
            an unknown ``clock``, ``"cpu"`` where it does not apply, or an ``x`` the model cannot take.
    """
    check_module("model", model)
    check_tensor("x", x)
    reps = check_int("reps", reps, 1, MAX_REPS)
    rounds = check_int("rounds", rounds, 1, MAX_ROUNDS)
    check_choice("clock", clock, ("auto", "profiler", "cpu"))
    threads = torch.get_num_threads()
    use_cpu_clock = _cpu_clock(
        "wall" if clock == "profiler" else clock, x.device, threads, "torch.get_num_threads() == 1"
    )
    leaves = {n: m for n, m in model.named_modules() if n and not any(True for _ in m.children())}
    was = model.training
    model.eval()
    best: dict[str, float] = {}
    try:
        _forward(model, x)  # warm-up, and a clear error for a bad x
        with torch.no_grad():
            for _ in range(rounds):
                times = _times_cpu(model, x, leaves, reps) if use_cpu_clock else _times_profiler(model, x, leaves, reps)
                for k, v in times.items():
                    best[k] = min(best.get(k, float("inf")), v)
    finally:
        model.train(was)
    return best


def _times_cpu(model: nn.Module, x: Tensor, leaves: dict[str, nn.Module], reps: int) -> dict[str, float]:
    totals = dict.fromkeys(leaves, 0.0)
    start: dict[str, float] = {}
    handles = []
    for name, mod in leaves.items():

        def pre(_m: nn.Module, _i: object, name: str = name) -> None:
            start[name] = time.process_time()

        def post(_m: nn.Module, _i: object, _o: object, name: str = name) -> None:
            totals[name] += time.process_time() - start[name]

        handles += [mod.register_forward_pre_hook(pre), mod.register_forward_hook(post)]
    try:
        t0 = time.process_time()
        for _ in range(reps):
            model(x)
        whole = time.process_time() - t0
    finally:
        for h in handles:
            h.remove()
    out = {n: t / reps for n, t in totals.items()}
    out["(rest)"] = max(0.0, whole / reps - sum(out.values()))
    return out


def _times_profiler(model: nn.Module, x: Tensor, leaves: dict[str, nn.Module], reps: int) -> dict[str, float]:
    from torch.profiler import ProfilerActivity, profile, record_function

    cuda = x.is_cuda
    open_ranges: dict[str, record_function] = {}
    handles = []
    for name, mod in leaves.items():

        def pre(_m: nn.Module, _i: object, name: str = name) -> None:
            open_ranges[name] = record_function(f"layer::{name}")
            open_ranges[name].__enter__()

        def post(_m: nn.Module, _i: object, _o: object, name: str = name) -> None:
            open_ranges.pop(name).__exit__(None, None, None)

        handles += [mod.register_forward_pre_hook(pre), mod.register_forward_hook(post)]
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    try:
        if cuda:
            torch.cuda.synchronize()
        with _quiet_stderr(), profile(activities=activities) as prof:
            for _ in range(reps):
                with record_function("layer::(model)"):
                    model(x)
            if cuda:
                torch.cuda.synchronize()
    finally:
        for h in handles:
            h.remove()
    totals: dict[str, float] = {}
    for ev in prof.key_averages():
        if ev.key.startswith("layer::"):
            us = getattr(ev, "device_time_total", None) if cuda else ev.cpu_time_total
            if us is None:
                us = getattr(ev, "cuda_time_total", 0.0)
            totals[ev.key[len("layer::") :]] = float(us) * 1e-6 / reps
    out = {name: totals.get(name, 0.0) for name in leaves}
    out["(rest)"] = max(0.0, totals.get("(model)", 0.0) - sum(out.values()))
    return out


def time_concat_vs_sum(
    d_model: int,
    n_heads: int,
    n_context: int,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    repeats: int = 5,
    number: int | None = None,
    seed: int = 0,
    threads: int | None = None,
) -> dict[str, float]:
    """Time the two views of a multi-head output on random data (``d_head = d_model // n_heads``).

    Three implementations of the same ``(d_model, n_context)`` result:
    ``concat`` one product ``W_O^H R^H``; ``loop`` ``H`` products ``W_O^h r^h`` summed one by one;
    ``batched`` one batched product over heads (``(H, d_model, d_head) @ (H, d_head, n)``) then a sum over
    heads — the additive view computed with a single kernel.

    Args:
        d_model, n_heads, n_context: sizes; ``n_heads`` must divide ``d_model``.
        device: where to run (default: ``lmlab.device()``); dtype: of the random data.
        repeats: timed repetitions; the fastest is reported (the one least disturbed by other processes).
        number: calls per repetition (default: about 2e8 flops' worth, between 1 and 200 calls).
        seed: seeds the random data.
        threads: CPU threads for the measurement (restored afterwards); ``None`` keeps PyTorch's setting. One
            thread gives steadier numbers on a machine shared with other jobs.

    Returns:
        ``{"concat": s, "loop": s, "batched": s, "max_abs_diff": float}``: best seconds per call, and the
        largest difference between the three results.
    """
    for name, v in (("d_model", d_model), ("n_heads", n_heads), ("n_context", n_context)):
        check_int(name, v, 1)
    check_instance("dtype", dtype, torch.dtype)
    check_int("repeats", repeats, 1, MAX_ROUNDS)
    if number is not None:
        check_int("number", number, 1, MAX_REPS)
    if threads is not None:
        check_int("threads", threads, 1, os.cpu_count() or 1)
    check_int("seed", seed, 0)
    if d_model % n_heads:
        raise ValueError(f"n_heads = {n_heads} must divide d_model = {d_model}")
    dev = lmlab_device() if device is None else torch.device(device)
    d_head = d_model // n_heads
    g = _generator(seed)
    W_all = torch.randn(n_heads, d_model, d_head, generator=g, dtype=dtype).to(dev)
    r_all = torch.randn(n_heads, d_head, n_context, generator=g, dtype=dtype).to(dev)
    W_list = list(W_all.unbind(0))
    r_list = list(r_all.unbind(0))
    W_cat = torch.cat(W_list, dim=1).contiguous()
    R_cat = torch.cat(r_list, dim=0).contiguous()

    def concat() -> Tensor:
        return W_cat @ R_cat

    def loop() -> Tensor:
        out = W_list[0] @ r_list[0]
        for W, r in zip(W_list[1:], r_list[1:]):
            out = out + W @ r
        return out

    def batched() -> Tensor:
        return torch.bmm(W_all, r_all).sum(0)

    if number is None:
        flops = 2 * d_model * d_model * n_context
        number = max(1, min(200, int(2e8 // max(flops, 1))))
    ref = concat()
    diff = max(float((loop() - ref).abs().max()), float((batched() - ref).abs().max()))
    kw = {"repeats": repeats, "number": number, "device": dev, "threads": threads, "warmup": 2}
    out = {name: best_time(fn, **kw) for name, fn in (("concat", concat), ("loop", loop), ("batched", batched))}
    return {**out, "max_abs_diff": diff}
