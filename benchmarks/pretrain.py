"""Benchmark: train every lmlab.pretrained recipe from scratch and measure time and quality against its target.

For each recipe, trains into a fresh temporary cache (lmlab.pretrained.load(..., cache_dir=tmp)), then prints

* bigram-zero    -- correlation of W_U W_E with log P^T after removing per-column constants (target >= 0.99),
                    the excess loss KL(P || model) in nats/token, and the largest centred logit error;
* induction-2l   -- mean loss on the second copy of BOS + r + r after its first token (target < 0.1 nats/token)
                    and on the first copy (target: near ln n_vocab);
* arithmetic-cot -- exact-answer accuracy on the 500 held-out questions by greedy decoding and parse_answer
                    (target >= 98%), and on 500 training questions;
* digits-vgg     -- accuracy on the held-out test digits (target >= 98%);

with the wall time of training (target <= 60 s on a 2-core CPU). A second load from the cache is timed too and
checked to give identical weights. Times measured on a shared machine are pessimistic.

    .venv/bin/python benchmarks/pretrain.py [--threads 2] [--device cpu|cuda] [--recipes NAME ...]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time

import lmlab
import torch
from lmlab import heads, pretrained, prompting
from lmlab.inside.induction_eval import evaluate_induction


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where to train (default cpu)")
    ap.add_argument("--recipes", nargs="*", default=pretrained.recipes(), help="default: all")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dev = lmlab.device(args.device)
    print(f"lmlab {lmlab.__version__}, torch {torch.__version__}, device {dev}, threads {torch.get_num_threads()}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.recipes:
            t0 = time.perf_counter()
            model = pretrained.load(name, cache_dir=tmp, device=dev)
            train_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            again = pretrained.load(name, cache_dir=tmp, device=dev)
            load_s = time.perf_counter() - t0
            same = all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
            t0 = time.perf_counter()
            if name == "bigram-zero":
                q = pretrained.bigram_agreement(model, pretrained.task(name))
                quality = (
                    f"corr(W_U W_E, log P^T) = {q['corr']:.4f} (target >= 0.99); excess loss KL = {q['kl']:.4f} "
                    f"nats (entropy {q['entropy']:.3f}); max centred error {q['max_abs_err']:.2f} nats"
                )
                ok = q["corr"] >= 0.99
            elif name == "induction-2l":
                T = pretrained.task(name).eval_len
                q = evaluate_induction(model, model.cfg.n_vocab, T, seeds=[12345], batch=256)
                hs = heads.detect_heads(model, seq_len=T, batch=64)
                fmt = lambda m: "[" + "; ".join(", ".join(f"{v:.2f}" for v in row) for row in m.tolist()) + "]"  # noqa: E731
                quality = (
                    f"second copy {q.loss_second:.4f} nats/token (target < 0.1); first copy {q.loss_first:.3f} "
                    f"(ln n_vocab = {math.log(model.cfg.n_vocab):.3f}); boundary token {q.loss_boundary:.2f}\n"
                    f"  previous-token scores per layer [heads]: {fmt(hs.previous_token)}; "
                    f"induction scores: {fmt(hs.induction)}"
                )
                ok = q.loss_second < 0.1 and abs(q.loss_first - math.log(model.cfg.n_vocab)) < 0.25
            elif name == "digits-vgg":
                from lmlab.compressing.vision import accuracy

                digits = pretrained.task(name)
                acc = accuracy(model, digits.x_test, digits.y_test)
                quality = f"test accuracy {acc:.1%} of {len(digits.y_test)} digits (target >= 98%)"
                ok = acc >= 0.98
            else:
                arith = pretrained.task(name)
                acc = prompting.accuracy(model, None, arith.heldout, arith.tokenizer, bos=True)
                acc_train = prompting.accuracy(model, None, arith.train[:500], arith.tokenizer, bos=True)
                quality = (
                    f"held-out exact answers {acc:.1%} of {len(arith.heldout)} (target >= 98%); "
                    f"training questions {acc_train:.1%}"
                )
                ok = acc >= 0.98
            eval_s = time.perf_counter() - t0
            status = "OK" if ok and train_s <= 60 else ("quality OK, slow" if ok else "BELOW TARGET")
            rows.append((name, train_s, load_s, same, eval_s, quality, status))
            print(
                f"\n{name}: trained in {train_s:.1f} s (target <= 60 s), reloaded from cache in {load_s:.2f} s "
                f"(identical weights: {same}), quality measured in {eval_s:.1f} s\n  {quality}\n  -> {status}",
                flush=True,
            )
    print("\nsummary:")
    for name, train_s, _, _, _, _, status in rows:
        print(f"  {name:16s} {train_s:6.1f} s  {status}")


if __name__ == "__main__":
    main()
