"""The share of bad-input calls that raise a clear error, overall and per module (issue 21).

Runs the generation of ``tests/test_bad_input.py`` (the specs in ``tests/api_spec.py``) on whichever ``lmlab`` is
imported, and prints how every bad call ended: ``clear`` (lmlab's own TypeError/ValueError naming the argument),
``unclear`` (another error, one from deep in a library, or one that does not name the argument), ``silent`` (no
error), ``hang`` (past the time limit). Measure another copy of the package with ``PYTHONPATH=<copy>/code``::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bad_input_share.py [--details] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import lmlab  # noqa: E402
import torch  # noqa: E402
from api_spec import KNOWN_UNCLEAR, explore, module_of, public_api, resolve  # noqa: E402

VERDICTS = ("clear", "unclear", "silent", "hang")


def _row(name: str, counts: Counter) -> str:
    total = sum(counts.values())
    shares = "  ".join(f"{v} {100 * counts[v] / total:5.1f}%" for v in VERDICTS) if total else ""
    return f"{name:<20} {total:6d}  {shares}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--details", action="store_true", help="list every call that is not a clear error")
    ap.add_argument("--json", help="write every outcome to this file")
    ap.add_argument("--known", action="store_true", help="print the KNOWN_UNCLEAR table of this lmlab")
    ap.add_argument("--extra", help="modules not yet in lmlab._WHERE, as part.name,part.name")
    ap.add_argument("--only", help="comma-separated modules to measure (e.g. tasks,heads); default all")
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"lmlab: {lmlab.__file__}")
    extra = dict(reversed(m.split(".")) for m in args.extra.split(",")) if args.extra else None
    api = public_api(extra)
    specs, stale = resolve(api)
    start = time.perf_counter()
    outcomes, failed_valid = [], []
    skipped = stale
    for key in sorted(specs):
        spec = specs[key]
        if spec.record or (args.only and module_of(key) not in args.only.split(",")):
            continue
        try:
            outcomes.extend(explore(key, api[key], spec))
        except Exception as exc:  # noqa: BLE001 - the spec's valid call does not fit this version
            failed_valid.append(f"{key}: {type(exc).__name__}: {exc}")
    per_module: dict[str, Counter] = defaultdict(Counter)
    overall: Counter = Counter()
    for o in outcomes:
        per_module[module_of(o.function)][o.verdict] += 1
        overall[o.verdict] += 1
    print(
        f"{len(outcomes)} bad calls of {len({o.function for o in outcomes})} functions "
        f"in {time.perf_counter() - start:.0f} s"
    )
    print(f"{'module':<20} {'calls':>6}")
    for name in sorted(per_module):
        print(_row(name, per_module[name]))
    print(_row("ALL", overall))
    unspecced = sorted(set(api) - set(specs))
    if unspecced:
        print(f"public functions without a spec (not measured): {len(unspecced)}: {', '.join(unspecced)}")
    if skipped:
        print(f"specs of functions absent from this lmlab: {len(skipped)}: {', '.join(skipped)}")
    for line in failed_valid:
        print("could not build the valid call:", line)
    if args.details:
        for o in outcomes:
            if o.verdict != "clear":
                print(f"{o.function}({o.argument}={o.value}) [{o.kind}]: {o.verdict}: {o.detail}")
    if args.known:  # the KNOWN_UNCLEAR table for tests/api_spec.py: the first unclear call per (function, argument)
        first: dict[tuple[str, str], str] = {}
        for o in outcomes:
            if o.verdict != "clear":
                first.setdefault((o.function, o.argument), f"{o.verdict}: {o.value} ({o.kind}): {o.detail}")
        print("KNOWN_UNCLEAR = {")
        for (fn, arg), what in sorted(first.items()):
            head = f"    ({fn!r}, {arg!r}): "
            print(f"{head}{what[: 116 - len(head)]!r},")
        print("}")
        print(f"# {len(first)} pairs; previously listed: {len(KNOWN_UNCLEAR)}")
    if args.json:
        Path(args.json).write_text(json.dumps([o.__dict__ for o in outcomes], indent=1))


if __name__ == "__main__":
    main()
