"""Benchmark: multi-head output as one concatenated product vs a sum over heads.

For each size, times three ways to compute the same (d_model x n_context) output of an attention layer
(lmlab.timing.time_concat_vs_sum):

* concat  -- Vaswani et al.: one product W_O^H R^H with W_O^H = [W_O^1 ... W_O^H];
* loop    -- the circuits view: H products W_O^h r^h added one at a time;
* batched -- the circuits view in one batched kernel: bmm over heads, then a sum.

Prints the best time of each and the ratios loop/concat and batched/concat, on the CPU and, when present,
on the GPU (lmlab.device()).

    .venv/bin/python benchmarks/concat_vs_sum.py [--quick] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse

import lmlab
import torch
from lmlab import timing

SIZES = [  # (d_model, n_heads, n_context)
    (128, 4, 128),
    (256, 8, 256),
    (512, 8, 512),
    (768, 12, 1024),
    (1024, 16, 1024),
    (2048, 32, 2048),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="only the first three sizes")
    ap.add_argument("--device", choices=["cpu", "cuda"], default=None, help="default: CPU, plus CUDA if present")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (default: PyTorch's choice)")
    args = ap.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    devices = [lmlab.device(args.device)] if args.device else [torch.device("cpu")]
    if args.device is None and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    sizes = SIZES[:3] if args.quick else SIZES
    print(f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}")
    print(
        f"{'device':>6} {'d_model':>7} {'H':>3} {'n':>5} {'concat ms':>10} {'loop ms':>9} {'batched ms':>10} "
        f"{'loop/concat':>11} {'batched/concat':>14}"
    )
    for dev in devices:
        for d_model, H, n in sizes:
            t = timing.time_concat_vs_sum(d_model, H, n, device=dev, repeats=args.repeats)
            assert t["max_abs_diff"] < 1e-2 * d_model**0.5, t
            print(
                f"{dev.type:>6} {d_model:>7} {H:>3} {n:>5} {t['concat'] * 1e3:>10.3f} {t['loop'] * 1e3:>9.3f} "
                f"{t['batched'] * 1e3:>10.3f} {t['loop'] / t['concat']:>11.2f} {t['batched'] / t['concat']:>14.2f}"
            )


if __name__ == "__main__":
    main()
