"""Benchmark: the batched learning-rate x batch-size x seed sweep against a plain loop over the same runs.

For each setting (linear regression with SGD, an MLP with SGD, an MLP with Adam) it times

* batched -- ``lmlab.sweep.sweep``: the L x S runs of each batch size advance together, one batched step;
* loop    -- ``lmlab.sweep.train_one`` once per run: an ``nn.Module``, ``torch.optim``, the same data and steps,

checks that both give the same final losses, and prints the speed-up loop / batched (target: >= 30x on the CPU).
It runs on the CPU with one thread and, when present, on the GPU (``lmlab.device()``).

    .venv/bin/python benchmarks/sweep.py [--quick] [--device cpu|cuda] [--threads N]
"""

from __future__ import annotations

import argparse
import time

import lmlab
import numpy as np
import torch
from lmlab import sweep as sw
from lmlab.regression import LinearModel, MLPModel, RegressionTask

SETTINGS = {
    # name: (task, model, optimizer, learning rates)
    "linear+SGD": (RegressionTask(dim=16, noise_std=0.1), LinearModel(16), "sgd", np.geomspace(1e-3, 0.8, 12)),
    "MLP+SGD": (
        RegressionTask(dim=8, noise_std=0.1, teacher="mlp", teacher_width=16),
        MLPModel(8, 32),
        "sgd",
        np.geomspace(1e-3, 1.0, 12),
    ),
    "MLP+Adam": (
        RegressionTask(dim=8, noise_std=0.1, teacher="mlp", teacher_width=16),
        MLPModel(8, 32),
        "adam",
        np.geomspace(1e-4, 0.1, 12),
    ),
}


def bench(name: str, dev: torch.device, steps: int, batch_sizes: list[int], seeds: list[int]) -> tuple[float, float]:
    task, model, opt, lrs = SETTINGS[name]
    lrs = [float(x) for x in lrs]
    kw = dict(steps=steps, optimizer=opt, eval_every=steps, n_test=256, device=dev)
    sw.sweep(task, model, lrs=lrs[:2], batch_sizes=batch_sizes[:1], seeds=seeds[:1], **kw)  # warm-up
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    res = sw.sweep(task, model, lrs=lrs, batch_sizes=batch_sizes, seeds=seeds, **kw)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t_batched = time.perf_counter() - t0
    t0 = time.perf_counter()
    worst = 0.0
    for r in res.records:
        ref = sw.train_one(task, model, lr=r["lr"], batch_size=r["batch_size"], seed=r["seed"], **kw)
        if r["diverged"] != ref["diverged"]:
            if r["diverged_at"] is None or ref["diverged_at"] is None or abs(r["diverged_at"] - ref["diverged_at"]) > 2:
                raise AssertionError(f"{name}: run {r} diverged differently in the loop: {ref['diverged_at']}")
        elif not r["diverged"]:
            worst = max(worst, abs(r["loss"] - ref["loss"]) / ref["loss"])
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t_loop = time.perf_counter() - t0
    print(
        f"{dev.type:>6} {name:>10} {len(res.records):>5} {t_loop:>8.2f} {t_batched:>10.3f} "
        f"{t_loop / t_batched:>8.1f}x {worst:>10.1e}"
    )
    return t_loop, t_batched


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer steps and batch sizes")
    ap.add_argument("--device", choices=["cpu", "cuda"], default=None, help="default: CPU, plus CUDA if present")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads (default 1, as the book's budgets)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    devices = [lmlab.device(args.device)] if args.device else [torch.device("cpu")]
    if args.device is None and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    steps = 20 if args.quick else 50
    batch_sizes = [1, 4, 16, 64] if args.quick else [1, 4, 16, 64, 256, 1024]
    seeds = [0, 1, 2, 3]
    print(f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}, {steps} steps, B = {batch_sizes}")
    head = ("device", "setting", "runs", "loop s", "batched s", "speed-up", "max rel diff")
    print(" ".join(f"{h:>{w}}" for h, w in zip(head, (6, 10, 5, 8, 10, 9, 10))))
    for dev in devices:
        total_loop = total_batched = 0.0
        for name in SETTINGS:
            t_loop, t_batched = bench(name, dev, steps, batch_sizes, seeds)
            total_loop += t_loop
            total_batched += t_batched
        print(
            f"{dev.type:>6} {'all':>10} {'':>5} {total_loop:>8.2f} {total_batched:>10.3f} "
            f"{total_loop / total_batched:>8.1f}x   (target >= 30x)"
        )


if __name__ == "__main__":
    main()
