"""Tests of lmlab.core.timing: the one timer reports the fastest repetition per call on the clock it is given and
checks its options; a model's latency and per-layer times run; the concat-vs-sum experiment computes one result
three ways."""

from __future__ import annotations

import os
import time

import pytest
import torch
from lmlab import timing
from lmlab.compressing.vision import VGG, VGGConfig


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_best_time_reports_the_fastest_repetition_per_call() -> None:
    delays = iter([0.0, 0.03, 0.03, 0.01, 0.01, 0.05, 0.05])  # warm-up, then three repetitions of two calls

    def fn() -> None:
        time.sleep(next(delays))

    t = timing.best_time(fn, repeats=3, number=2, warmup=1)
    assert 0.01 <= t < 0.025  # the middle repetition, divided by its two calls


def test_best_time_cpu_clock_does_not_count_sleep() -> None:
    t_wall = timing.best_time(lambda: time.sleep(0.01), repeats=2, threads=1, clock="wall")
    t_cpu = timing.best_time(lambda: time.sleep(0.01), repeats=2, threads=1, clock="cpu")
    assert t_wall >= 0.009 and t_cpu < 0.005  # sleeping takes wall time, not CPU time


def test_best_time_with_a_time_budget_uses_blocked_autorange() -> None:
    calls = []
    t = timing.best_time(lambda: calls.append(1), min_run_time=0.02, threads=1, warmup=0)
    assert 0 < t < 1e-3 and len(calls) > 10  # many calls fit in the budget


def test_best_time_restores_threads_and_checks_arguments() -> None:
    threads = torch.get_num_threads()
    timing.best_time(lambda: None, threads=1)
    assert torch.get_num_threads() == threads
    with pytest.raises(ValueError, match="repeats must be an int in"):
        timing.best_time(lambda: None, repeats=0)
    with pytest.raises(ValueError, match="number"):
        timing.best_time(lambda: None, number=timing.MAX_REPS + 1)
    with pytest.raises(ValueError, match="either min_run_time"):
        timing.best_time(lambda: None, min_run_time=0.01, repeats=3)
    for bad in (0, (os.cpu_count() or 1) + 1):
        with pytest.raises(ValueError, match="threads"):
            timing.best_time(lambda: None, threads=bad)
    with pytest.raises(ValueError, match="clock must be"):
        timing.best_time(lambda: None, clock="gpu")
    with pytest.raises(ValueError, match="clock='cpu' needs"):
        timing.best_time(lambda: None, clock="cpu", device="cuda")
    with pytest.raises(TypeError, match="fn must be callable"):
        timing.best_time(3)  # type: ignore[arg-type]
    assert torch.get_num_threads() == threads


def test_latency_and_layer_times_run(one_thread) -> None:
    model = VGG(VGGConfig(channels=(4, "M", 8))).eval()
    x = torch.randn(2, 1, 8, 8)
    t = timing.latency(model, x, min_run_time=0.01)
    assert 0 < t < 1
    assert 0 < timing.latency(model, x, min_run_time=0.01, clock="wall") < 1
    for clock in ("cpu", "profiler"):
        times = timing.layer_times(model, x, reps=3, rounds=2, clock=clock)
        assert set(times) == {n for n, m in model.named_modules() if n and not list(m.children())} | {"(rest)"}
        assert all(v >= 0 for v in times.values()) and times["backbone.conv1"] > 0
    with pytest.raises(ValueError, match="clock"):
        timing.latency(model, x, clock="gpu")
    with pytest.raises(ValueError, match="num_threads"):
        timing.latency(model, x, clock="cpu", num_threads=2)
    with pytest.raises(ValueError, match="reps"):
        timing.layer_times(model, x, reps=0)


def test_latency_and_layer_times_reject_bad_budgets() -> None:
    model = VGG(VGGConfig(channels=(4, "M", 8))).eval()
    x = torch.randn(2, 1, 8, 8)
    for bad in (float("inf"), float("nan"), 0, -1.0, timing.MAX_RUN_TIME_S + 1):
        with pytest.raises(ValueError, match="min_run_time"):
            timing.latency(model, x, min_run_time=bad)
    with pytest.raises(TypeError, match="min_run_time"):
        timing.latency(model, x, min_run_time="1")  # type: ignore[arg-type]
    for bad in (0, -1, 10**9, (os.cpu_count() or 1) + 1):
        with pytest.raises(ValueError, match="num_threads"):
            timing.latency(model, x, num_threads=bad, clock="wall")
    with pytest.raises(TypeError, match="num_threads"):
        timing.latency(model, x, num_threads=1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        timing.latency(model, [1.0])  # type: ignore[arg-type]
    for fn in (timing.latency, timing.layer_times):
        with pytest.raises(ValueError, match=r"x of shape \(2, 8, 8\) .* does not fit the model"):
            fn(model, x[:, 0])
    for name, bad in (("reps", timing.MAX_REPS + 1), ("rounds", 0), ("rounds", timing.MAX_ROUNDS + 1)):
        with pytest.raises(ValueError, match=name):
            timing.layer_times(model, x, **{name: bad})
    with pytest.raises(TypeError, match="reps"):
        timing.layer_times(model, x, reps=2.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="model must be a Module"):
        timing.layer_times(lambda t: t, x)  # type: ignore[arg-type]


def test_pruning_reexports_the_one_timer() -> None:
    from lmlab import pruning

    assert pruning.latency is timing.latency and pruning.layer_times is timing.layer_times


def test_concat_vs_sum_computes_one_result_three_ways() -> None:
    out = timing.time_concat_vs_sum(32, 4, 16, device="cpu", repeats=1, number=1, threads=1)
    assert set(out) == {"concat", "loop", "batched", "max_abs_diff"}
    assert out["max_abs_diff"] < 1e-4
    with pytest.raises(ValueError, match="n_heads = 4 must divide d_model = 30"):
        timing.time_concat_vs_sum(30, 4, 8, device="cpu")
