"""Train every pretrained recipe on several draws and print the figures its target is about (not a test).

A draw is a seed offset (``LMLAB_SEED_OFFSET``), a CPU kernel family (``ATEN_CPU_CAPABILITY``) and a thread count;
each draw is trained in a fresh process with an empty cache, so nothing is shared between draws::

    .venv/bin/python benchmarks/recipe_draws.py                       # offsets 0 1 2 x kernels default avx2 native
    .venv/bin/python benchmarks/recipe_draws.py --recipes arithmetic-styles --offsets 0 1 --threads 1 2

The recipes' docstrings (``lmlab.pretrained``) state the range these runs measured.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

# One draw, in a child process: train each recipe, measure what its target speaks of, print one JSON line each.
CHILD = r"""
import json, sys, time
import torch
from lmlab import heads, meta_prompt, pretrained, prompting
from lmlab.inside.induction_eval import evaluate_induction
from lmlab.adapting.prompt_data import HINT
from lmlab.compressing.vision import accuracy

def measure(name):
    model = pretrained.load(name, device="cpu")
    task = pretrained.task(name)
    if name == "bigram-zero":
        q = pretrained.bigram_agreement(model, task)
        return {"corr": q["corr"], "kl_over_entropy": q["kl"] / q["entropy"]}
    if name == "induction-2l":
        r = evaluate_induction(model, task.n_vocab, task.eval_len, seeds=range(50, 54), batch=64)
        det = heads.detect_heads(model, seq_len=task.eval_len, batch=64)
        return {"loss_second": r.loss_second, "loss_first": r.loss_first, "acc_second": r.accuracy_second,
                "prev_in_l0": any(l == 0 for l, _ in det.previous_token_heads),
                "induction_in_l1": bool(det.induction_heads) and all(l == 1 for l, _ in det.induction_heads)}
    if name == "arithmetic-cot":
        return {"acc": prompting.accuracy(model, None, task.heldout, task.tokenizer, bos=True)}
    if name == "digits-vgg":
        return {"acc": accuracy(model, task.x_test, task.y_test)}
    if name == "arithmetic-styles":
        probs = task.heldout[:200]
        return {"acc_none": prompting.accuracy(model, None, probs, task.tokenizer),
                "acc_hint": prompting.accuracy(model, None, probs, task.tokenizer, prefix=HINT)}
    if name == "modular-tagged":
        p = task.p
        acc = [meta_prompt.pair_accuracy(model, meta_prompt.hard_prompt(model, [p + k]), k, p) for k in range(p)]
        return {"acc_mean": sum(acc) / p, "acc_min": min(acc)}
    raise ValueError(name)

for name in sys.argv[1:]:
    t = time.perf_counter()
    out = measure(name)
    print(json.dumps({"recipe": name, "seconds": round(time.perf_counter() - t, 1), **out}), flush=True)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipes", nargs="*", default=None, help="default: every recipe")
    ap.add_argument("--offsets", nargs="*", type=int, default=[0, 1, 2])
    ap.add_argument("--kernels", nargs="*", default=["default", "avx2", "native"])
    ap.add_argument("--threads", nargs="*", type=int, default=[1])
    args = ap.parse_args()
    from lmlab import pretrained

    names = args.recipes or pretrained.recipes()
    for offset in args.offsets:
        for kernel in args.kernels:
            for threads in args.threads:
                env = {**os.environ, "LMLAB_SEED_OFFSET": str(offset), "OMP_NUM_THREADS": str(threads)}
                env.pop("ATEN_CPU_CAPABILITY", None)
                if kernel != "native":
                    env["ATEN_CPU_CAPABILITY"] = kernel
                with tempfile.TemporaryDirectory() as cache:
                    env["LMLAB_CACHE"] = cache
                    proc = subprocess.run(
                        [sys.executable, "-c", CHILD, *names], env=env, capture_output=True, text=True, check=False
                    )
                for line in proc.stdout.splitlines():
                    rec = json.loads(line)
                    print(json.dumps({"offset": offset, "kernel": kernel, "threads": threads, **rec}), flush=True)
                if proc.returncode:
                    print(proc.stderr[-2000:], file=sys.stderr)


if __name__ == "__main__":
    main()
