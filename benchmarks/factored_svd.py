"""Benchmark: the SVD of a head's OV circuit W_OV = W_O W_V, full vs factored.

The full route forms the d_model x d_model product and calls torch.linalg.svd on it (O(d_model^3)); the
factored route (lmlab.circuits.factored_svd) uses thin QR factorisations of the two factors and an
r x r SVD (O(d_model d_head^2)). Prints the time of each (the best of --repeats runs), their ratio, and a check
that they agree (singular values, and the read/write subspaces compared through their projectors).

    .venv/bin/python benchmarks/factored_svd.py [--d-model 4096] [--d-head 64] [--device cpu|cuda] [--repeats 3]
"""

from __future__ import annotations

import argparse

import lmlab
import torch
from lmlab import circuits as C
from lmlab import timing


def _timed(fn, dev: torch.device, repeats: int) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    """The best of ``repeats`` timed calls (lmlab.timing.best_time, synchronised on a GPU) and fn's result."""
    out = fn()  # the result to check (and the warm-up)
    return timing.best_time(fn, repeats=repeats, device=dev, warmup=0), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--d-model", type=int, default=4096)
    ap.add_argument("--d-head", type=int, default=64)
    ap.add_argument("--device", choices=["cpu", "cuda"], default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (default: PyTorch's choice)")
    args = ap.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    dev = lmlab.device(args.device)
    dtype = getattr(torch, args.dtype)
    g = torch.Generator().manual_seed(0)
    W_O = (torch.randn(args.d_model, args.d_head, generator=g) / args.d_head**0.5).to(dev, dtype)
    W_V = (torch.randn(args.d_head, args.d_model, generator=g) / args.d_model**0.5).to(dev, dtype)

    t_full, full = _timed(lambda: C.full_svd(W_O @ W_V), dev, args.repeats)
    t_fac, fac = _timed(lambda: C.factored_svd(W_O, W_V), dev, args.repeats)

    r = fac.rank  # type: ignore[attr-defined]
    s_err = float((full.S[:r] - fac.S).abs().max() / full.S[0])  # type: ignore[attr-defined]
    Pu_err = float((full.U[:, :r] @ full.U[:, :r].T - fac.U @ fac.U.T).abs().max())  # type: ignore[attr-defined]
    Pv_err = float((full.V[:, :r] @ full.V[:, :r].T - fac.V @ fac.V.T).abs().max())  # type: ignore[attr-defined]
    print(
        f"device={dev} dtype={args.dtype} d_model={args.d_model} d_head={args.d_head} threads={torch.get_num_threads()}"
    )
    print(f"full SVD of the {args.d_model}x{args.d_model} product: {t_full * 1e3:10.1f} ms (rank found {full.rank})")  # type: ignore[attr-defined]
    print(f"factored SVD (QR + {args.d_head}x{args.d_head} core):        {t_fac * 1e3:10.2f} ms (rank found {r})")
    print(f"ratio full / factored: {t_full / t_fac:.0f}x")
    print(f"agreement: max rel. singular-value error {s_err:.1e}, projector errors U {Pu_err:.1e}, V {Pv_err:.1e}")
    tol = 1e-3 if dtype == torch.float32 else 1e-9
    ok = s_err < tol and Pu_err < 10 * tol and Pv_err < 10 * tol and full.rank == r  # type: ignore[attr-defined]
    print("check:", "PASS" if ok else "FAIL")
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
