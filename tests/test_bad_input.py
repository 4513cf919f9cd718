"""Every bad input a clear error: generated bad values per argument of every public function (tests/api_spec.py).

A bad value must raise lmlab's own ``TypeError``/``ValueError`` naming the argument, before any work; a valid call
must not raise. The (function, argument) pairs that do not yet are listed in ``api_spec.KNOWN_UNCLEAR``.
"""

from __future__ import annotations

import pytest
import torch
from api_spec import KNOWN_UNCLEAR, explore, invoke, known_unclear, public_api, resolve, split_call
from api_spec import SPECS as TABLE

API = public_api()
SPECS, STALE = resolve(API)
CHECKED = sorted(k for k, s in SPECS.items() if not s.record)


def test_every_public_function_is_specified() -> None:
    """A new public function (or class) needs a spec; a spec whose function was renamed or removed must go."""
    missing = sorted(set(API) - set(SPECS))
    assert not missing, f"public functions without a spec in tests/api_spec.py (add one to SPECS): {missing}"
    assert not STALE, f"specs in tests/api_spec.py of functions that no longer exist (renamed?): {STALE}"


@pytest.mark.parametrize("key", sorted(k for k in CHECKED if SPECS[k].run_valid))
def test_valid_call_does_not_raise(key: str) -> None:
    """The spec's valid call runs: the checks refuse only bad input."""
    torch.set_num_threads(1)
    args, kwargs = split_call(SPECS[key])
    invoke(API[key], args, kwargs)


@pytest.mark.parametrize("key", CHECKED)
def test_bad_calls_are_clear_errors(key: str) -> None:
    """Every generated bad value of every argument raises lmlab's TypeError/ValueError naming the argument."""
    torch.set_num_threads(1)
    outcomes = explore(key, API[key], SPECS[key])
    known = known_unclear(key, API)
    bad = [o for o in outcomes if o.verdict != "clear" and o.argument not in known]
    assert not bad, "bad input without a clear error:\n" + "\n".join(
        f"  {o.argument}={o.value} ({o.kind}): {o.verdict}, {o.detail}" for o in bad
    )
    fixed = sorted(known - {o.argument for o in outcomes if o.verdict != "clear"})
    assert not fixed, f"now clear: remove from KNOWN_UNCLEAR in tests/api_spec.py: {[(key, a) for a in fixed]}"


def test_known_unclear_lists_specified_functions() -> None:
    """KNOWN_UNCLEAR lists (function, argument) pairs of functions that have a spec (a moved function keeps its
    entry under either module's name)."""
    names = {k.split(".", 1)[1] for k in TABLE}
    unknown = sorted(fn for (fn, _) in KNOWN_UNCLEAR if fn not in SPECS and fn.split(".", 1)[1] not in names)
    assert not unknown, f"KNOWN_UNCLEAR names functions without a spec: {unknown}"
