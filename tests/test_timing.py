"""Tests of lmlab.timing: the best-of-n timer reports the fastest repetition per call, and the concat-vs-sum
experiment computes one result three ways."""

from __future__ import annotations

import time

import pytest
import torch
from lmlab import timing


def test_best_time_reports_the_fastest_repetition_per_call() -> None:
    delays = iter([0.0, 0.03, 0.03, 0.01, 0.01, 0.05, 0.05])  # warm-up, then three repetitions of two calls

    def fn() -> None:
        time.sleep(next(delays))

    t = timing.best_time(fn, repeats=3, number=2, warmup=1)
    assert 0.01 <= t < 0.025  # the middle repetition, divided by its two calls


def test_best_time_restores_threads_and_checks_arguments() -> None:
    threads = torch.get_num_threads()
    timing.best_time(lambda: None, threads=1)
    assert torch.get_num_threads() == threads
    with pytest.raises(ValueError, match="repeats must be an int >= 1"):
        timing.best_time(lambda: None, repeats=0)


def test_concat_vs_sum_computes_one_result_three_ways() -> None:
    out = timing.time_concat_vs_sum(32, 4, 16, device="cpu", repeats=1, number=1, threads=1)
    assert set(out) == {"concat", "loop", "batched", "max_abs_diff"}
    assert out["max_abs_diff"] < 1e-4
    with pytest.raises(ValueError, match="n_heads = 4 must divide d_model = 30"):
        timing.time_concat_vs_sum(30, 4, 8, device="cpu")
