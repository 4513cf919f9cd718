"""The verdict machinery of lmlab.check: what a student sees when a function is right, wrong, or not written."""

from __future__ import annotations

import pytest
import torch
from lmlab.check import Case, CheckFailed, difference, run_check


def reference(x: torch.Tensor, k: int) -> torch.Tensor:
    return x * k


CASES = [Case("small", (torch.tensor([1.0, 2.0, 3.0]), 2)), Case("negative", (torch.tensor([-1.0, 0.5]), 3))]


def test_a_right_function_passes_and_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    run_check("scale", lambda x, k: k * x, reference, CASES)
    assert "✓ scale: all 2 cases pass" in capsys.readouterr().out


def test_a_stub_is_reported_as_not_written() -> None:
    def stub(x: torch.Tensor, k: int) -> torch.Tensor:
        raise NotImplementedError

    with pytest.raises(CheckFailed, match="scale is not written yet"):
        run_check("scale", stub, reference, CASES)


def test_a_wrong_value_names_the_case_and_the_first_differing_entry() -> None:
    with pytest.raises(CheckFailed) as e:
        run_check("scale", lambda x, k: x * k + (x < 0), reference, CASES)
    text = str(e.value)
    assert "case 2 of 2 (negative)" in text
    assert "the result[0] should be -3, got -2" in text
    assert "1 of 2 entries differ" in text
    assert "argument 1: tensor of shape (2,)" in text


def test_shape_dtype_and_type_mistakes_are_named() -> None:
    e = torch.zeros(2, 3)
    assert "shape (2, 3), got (3, 2)" in difference(e, torch.zeros(3, 2), rtol=0, atol=0)
    assert "integer tensor" in difference(torch.zeros(2, dtype=torch.int64), torch.zeros(2), rtol=0, atol=0)
    assert "should be a tensor" in difference(e, [0.0] * 6, rtol=0, atol=0)
    assert "tuple of 2 values" in difference((1, 2), (1,), rtol=0, atol=0)
    assert difference((1, 2.0), (1, 2.0 + 1e-9), rtol=1e-6, atol=0) is None
    assert "should be the integer 3, got 3.5" in difference(3, 3.5, rtol=0, atol=1)
    assert "NaN" not in (difference(torch.ones(1), torch.ones(1), rtol=0, atol=0) or "")
    assert difference(torch.ones(1), torch.tensor([float("nan")]), rtol=0, atol=0) is not None


def test_an_error_in_the_student_code_becomes_a_verdict_with_its_cause() -> None:
    with pytest.raises(CheckFailed, match="raised ZeroDivisionError") as e:
        run_check("scale", lambda x, k: 1 / 0, reference, CASES)
    assert isinstance(e.value.__cause__, ZeroDivisionError)


def test_in_place_changes_are_compared_and_inputs_are_not_shared() -> None:
    def ref_inplace(x: torch.Tensor) -> None:
        x.mul_(2)

    case = [Case("in place", (torch.tensor([1.0, 2.0]),), mutated=(0,))]
    run_check("double", lambda x: x.mul_(2).sum() and None, ref_inplace, case)
    with pytest.raises(CheckFailed, match="argument 1 after the call"):
        run_check("double", lambda x: None, ref_inplace, case)
    assert torch.equal(case[0].args[0], torch.tensor([1.0, 2.0]))  # the case itself is untouched


def test_a_non_function_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="takes your function scale itself"):
        run_check("scale", 3, reference, CASES)
