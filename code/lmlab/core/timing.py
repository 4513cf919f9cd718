"""Wall-clock timing that survives a shared machine: the best of several repetitions, synchronised on a GPU.

:func:`best_time` is the one timer of the book's chapters and benchmarks; :func:`time_concat_vs_sum` is the
experiment of the circuits chapter (one concatenated product against a sum over heads), which
``benchmarks/concat_vs_sum.py`` runs at larger sizes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from lmlab.core.checks import check_int
from lmlab.core.runtime import device as lmlab_device
from lmlab.core.runtime import generator as _generator

__all__ = ["best_time", "time_concat_vs_sum"]


def best_time(
    fn: Callable[[], Any],
    *,
    repeats: int = 3,
    number: int = 1,
    device: torch.device | str | None = None,
    threads: int | None = None,
    warmup: int = 1,
) -> float:
    """Seconds per call of ``fn``: the fastest of ``repeats`` repetitions of ``number`` calls each.

    The fastest repetition is the one least disturbed by other processes (as :mod:`timeit` recommends). On a CUDA
    ``device`` the GPU is synchronised before the clock starts and stops, so queued kernels are counted.

    Args:
        fn: the work to time (its result is discarded).
        repeats, number: timed repetitions and calls per repetition, >= 1.
        device: where ``fn`` computes (only a CUDA device changes anything).
        threads: CPU threads for the measurement (PyTorch's setting is restored afterwards); ``None`` keeps it.
        warmup: untimed calls first (caches, lazy initialisation), >= 0.
    """
    check_int("repeats", repeats, 1)
    check_int("number", number, 1)
    check_int("warmup", warmup, 0)
    if threads is not None:
        check_int("threads", threads, 1)
    cuda = device is not None and torch.device(device).type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(repeats):
            sync()
            t0 = time.perf_counter()
            for _ in range(number):
                fn()
            sync()
            times.append((time.perf_counter() - t0) / number)
    finally:
        torch.set_num_threads(old_threads)
    return min(times)


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
