"""Benchmark: the batched learning-rate x batch-size x seed sweep against a plain loop over the same runs.

For each of the chapter's three sweeps (``book/batch_size.md``: linear regression with SGD, an MLP with SGD, the MLP
with Adam; the same grids of learning rates, batch sizes and seeds, the same steps, population loss measured every
step) it times

* batched -- ``lmlab.sweep.sweep``: the L x S runs of each batch size advance together, one batched step (the
  median time of three sweeps);
* loop    -- ``lmlab.sweep.train_one`` once per run: an ``nn.Module``, ``torch.optim``, the same data and steps,

and prints the speed-up loop / batched (target: >= 30x on the CPU). Times are CPU seconds of this process
(``time.process_time``; with one thread they equal wall seconds on an idle machine, and other jobs on a shared
machine do not distort them); on a GPU they are wall seconds.

It also checks that both give the same runs, and fails (exit status 1) if they do not. The check runs in float64:
in float32 the MLP's runs are chaotic (a rounding difference of one ulp grows to a different final loss), so a
float32 comparison could only be loose. For a sample of runs of each setting (diverged ones included) the float64
batched sweep and the float64 loop must agree on divergence and on the final loss to a relative 1e-8.

Where the batched time goes: a profile of one batched sweep splits it into the held-out evaluation (the population
loss of every run at every step, on ``n_test`` points), the gradients, and drawing the data. The loop's time per run
is mostly fixed Python and ``torch.optim`` overhead per step, so the speed-up is bounded by the batched arithmetic
per run, which batching cannot remove. For the MLP with SGD (19x on one 2-core CPU thread, measured) about half of
the batched time is the gradients and a third the held-out evaluation (``n_test`` = 256 points per run per step,
more than the batch for most batch sizes), which the chapter needs at every step (the loss averaged over the run);
the benchmark prints the split and, below 30x, says what dominates.

The loop over all 20 496 runs takes long, so by default it times every ``--loop-every``-th run of each batch size
(a systematic sample across learning rates and seeds, diverged ones included) and scales the mean time per run of
each batch size to all its runs; ``--loop-every 1`` times every run.

    .venv/bin/python benchmarks/sweep.py [--quick] [--device cpu|cuda] [--threads N] [--loop-every K] [--per-batch]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time

import lmlab
import numpy as np
import torch
from lmlab import sweep as sw
from lmlab.scaling.regression import LinearModel, MLPModel, RegressionTask

SIGMA = 0.1
LIN_TASK = RegressionTask(dim=16, noise_std=SIGMA, teacher="linear", seed=0)
MLP_TASK = RegressionTask(dim=8, noise_std=SIGMA, teacher="mlp", teacher_width=16, seed=0)
LIN = dict(batch_sizes=[2**k for k in range(11)], seeds=list(range(48)), steps=80, target=SIGMA**2 + 0.2)
MLP = dict(batch_sizes=[4**k for k in range(6)], seeds=list(range(32)), steps=100, n_test=256, target=0.25)
SETTINGS = {
    # name: (task, model, optimizer, learning rates, the rest of the grid) -- the chapter's three sweeps
    "linear+SGD": (LIN_TASK, LinearModel(16), "sgd", np.geomspace(4e-3, 1.0, 25), LIN),
    "MLP+SGD": (MLP_TASK, MLPModel(8, 16), "sgd", np.geomspace(1e-2, 0.9, 18), MLP),
    "MLP+Adam": (MLP_TASK, MLPModel(8, 16), "adam", np.geomspace(3e-3, 0.5, 20), MLP),
}


def clock(dev: torch.device) -> float:
    if dev.type == "cuda":
        torch.cuda.synchronize()
        return time.perf_counter()
    return time.process_time()


def profile_split(name: str, dev: torch.device, kw: dict, grid: dict, lrs: list[float]) -> dict[str, float]:
    """Fractions of one batched sweep's time in the held-out evaluation, the gradients and the data draw."""
    task, model = SETTINGS[name][:2]
    prof = cProfile.Profile()
    prof.enable()
    sw.sweep(task, model, lrs=lrs, batch_sizes=grid["batch_sizes"], seeds=grid["seeds"], **kw)
    prof.disable()
    stats = pstats.Stats(prof).stats  # (file, line, function) -> (calls, ..., tottime, cumtime, callers)
    total = max(v[3] for v in stats.values())
    parts = {"test loss": "_test_loss", "gradients": "loss_grad_grid", "data": "_draw_steps"}
    return {k: sum(v[3] for f, v in stats.items() if f[2] == fn) / total for k, fn in parts.items()}


def verify(name: str, dev: torch.device, kw: dict, grid: dict, lrs: list[float], n_check: int) -> list[str]:
    """Float64: the batched sweep and the plain loop agree on a sample of ``n_check`` runs (diverged ones
    included). Returns the mismatches (empty when all agree)."""
    task, model = SETTINGS[name][:2]
    kw64 = {**kw, "dtype": torch.float64}
    res = sw.sweep(task, model, lrs=lrs, batch_sizes=grid["batch_sizes"], seeds=grid["seeds"], **kw64)
    ref_kw = {k: v for k, v in kw64.items() if k != "target"}
    div = [r for r in res.records if r["diverged"]]
    ok = [r for r in res.records if not r["diverged"]]
    sample = ok[:: max(1, len(ok) // max(1, n_check - 2))] + div[:: max(1, len(div) // 2)][:2]
    bad = []
    for r in sample:
        ref = sw.train_one(task, model, lr=r["lr"], batch_size=r["batch_size"], seed=r["seed"], **ref_kw)
        if r["diverged"] != ref["diverged"]:
            bad.append(f"{name}: lr {r['lr']:.3g} B {r['batch_size']} seed {r['seed']}: diverged differently")
        elif not r["diverged"] and abs(r["loss"] - ref["loss"]) > 1e-8 * abs(ref["loss"]):
            bad.append(f"{name}: lr {r['lr']:.3g} B {r['batch_size']} seed {r['seed']}: {r['loss']} != {ref['loss']}")
    print(f"{'':>6} {name:>10} float64 check: {len(sample)} runs, {len(bad)} mismatches")
    return bad


def bench(
    name: str, dev: torch.device, quick: bool, loop_every: int, per_batch: bool, bad: list[str]
) -> tuple[float, float]:
    task, model, opt, lrs, grid = SETTINGS[name]
    grid = dict(grid)
    if quick:
        grid.update(batch_sizes=grid["batch_sizes"][::2], steps=grid["steps"] // 4)
    lrs = [float(x) for x in lrs]
    kw = dict(optimizer=opt, device=dev, **{k: v for k, v in grid.items() if k not in ("batch_sizes", "seeds")})
    sw.sweep(task, model, lrs=lrs[:2], batch_sizes=grid["batch_sizes"][:1], seeds=[0], **kw)  # warm-up
    times = []
    for _ in range(3):  # the median of three: a few seconds on a machine shared with other jobs
        t0 = clock(dev)
        res = sw.sweep(task, model, lrs=lrs, batch_sizes=grid["batch_sizes"], seeds=grid["seeds"], **kw)
        times.append(clock(dev) - t0)
    t_batched = float(np.median(times))
    ref_kw = {k: v for k, v in kw.items() if k != "target"}
    sw.train_one(task, model, lr=lrs[0], batch_size=1, seed=0, **{**ref_kw, "steps": 2})  # warm-up
    t_loop, worst, timed, loop_B = 0.0, 0.0, 0, {}
    for B in grid["batch_sizes"]:
        runs = [r for r in res.records if r["batch_size"] == B]
        sample = runs[(B % loop_every) :: loop_every] or runs[:1]
        t_B = 0.0
        for r in sample:
            t0 = clock(dev)
            ref = sw.train_one(task, model, lr=r["lr"], batch_size=B, seed=r["seed"], **ref_kw)
            t_B += clock(dev) - t0
            if not r["diverged"] and not ref["diverged"]:  # float32: information only (chaotic), see verify
                worst = max(worst, abs(r["loss"] - ref["loss"]) / ref["loss"])
        loop_B[B] = t_B / len(sample) * len(runs)
        t_loop += loop_B[B]
        timed += len(sample)
    print(
        f"{dev.type:>6} {name:>10} {len(res.records):>5} {timed:>5} {t_loop:>8.2f} {t_batched:>10.3f} "
        f"{t_loop / t_batched:>8.1f}x {worst:>10.1e}"
    )
    split = profile_split(name, dev, kw, grid, lrs)
    top = max(split, key=split.get)
    print(
        f"{'':>6} {name:>10} batched time: held-out evaluation {split['test loss']:.0%}, gradients "
        f"{split['gradients']:.0%}, data {split['data']:.0%}"
    )
    if t_loop / t_batched < 30:
        print(
            f"{'':>6} {name:>10} below 30x ({t_loop / t_batched:.1f}x): the batched time is mostly {top} "
            f"({split[top]:.0%}), arithmetic the loop does too; the loop's per-run overhead is what batching saves"
        )
    if per_batch:  # where the time goes: each batch size swept on its own (median of three)
        for B in grid["batch_sizes"]:
            times = []
            for _ in range(3):
                t0 = clock(dev)
                sw.sweep(task, model, lrs=lrs, batch_sizes=[B], seeds=grid["seeds"], **kw)
                times.append(clock(dev) - t0)
            t_B = float(np.median(times))
            label = f"B = {B}"
            print(f"{'':>6} {label:>10} {'':>5} {'':>5} {loop_B[B]:>8.2f} {t_B:>10.3f} {loop_B[B] / t_B:>8.1f}x")
    bad += verify(name, dev, kw, grid, lrs, n_check=12)
    return t_loop, t_batched


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="every other batch size, a quarter of the steps")
    ap.add_argument("--device", choices=["cpu", "cuda"], default=None, help="default: CPU, plus CUDA if present")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads (default 1, as the book's budgets)")
    ap.add_argument("--loop-every", type=int, default=20, help="time every K-th run of the loop (default 20; 1: all)")
    ap.add_argument("--per-batch", action="store_true", help="also time each batch size on its own")
    args = ap.parse_args()
    if args.loop_every < 1:
        ap.error("--loop-every must be >= 1")
    torch.set_num_threads(args.threads)
    devices = [lmlab.device(args.device)] if args.device else [torch.device("cpu")]
    if args.device is None and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    print(
        f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}, the chapter's grids, loop: every "
        f"{args.loop_every}th run timed and scaled to all"
    )
    head = ("device", "setting", "runs", "timed", "loop s", "batched s", "speed-up", "f32 rel diff")
    print(" ".join(f"{h:>{w}}" for h, w in zip(head, (6, 10, 5, 5, 8, 10, 9, 10))))
    bad: list[str] = []
    for dev in devices:
        total_loop = total_batched = 0.0
        for name in SETTINGS:
            t_loop, t_batched = bench(name, dev, args.quick, args.loop_every, args.per_batch, bad)
            total_loop += t_loop
            total_batched += t_batched
        print(
            f"{dev.type:>6} {'all':>10} {'':>5} {'':>5} {total_loop:>8.2f} {total_batched:>10.3f} "
            f"{total_loop / total_batched:>8.1f}x   (target >= 30x)"
        )
    if bad:
        print("MISMATCH between the batched sweep and the loop (float64):\n" + "\n".join(bad))
        sys.exit(1)
    print("float64 check passed: the batched sweep and the loop agree")


if __name__ == "__main__":
    main()
