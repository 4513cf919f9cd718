"""The machinery behind every ``lmlab.check.<function>``: run a student's function and the book's reference on
the same cases and say, in plain words, where they first disagree.

A check never shows the reference's code: a verdict names the case, what went in (shapes and a short preview),
what was expected and what came back, and the first entry that differs. Passing prints one line; failing raises
:class:`CheckFailed` (an ``AssertionError``), so a notebook cell stops with the message and the kernel lives on.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["Case", "CheckFailed", "describe", "difference", "run_check"]

PREVIEW = 6  # entries of a tensor a verdict shows


class CheckFailed(AssertionError):
    """A student's function disagrees with the reference (or raised, or is not written yet)."""


@dataclass
class Case:
    """One call of the function under test: ``f(*args, **kwargs)``.

    ``name`` says what the case probes ("ties at the threshold", "random 4-bit"); ``mutated`` names the positions
    of ``args`` that the function is asked to change in place (their values afterwards are compared too).
    """

    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    mutated: tuple[int, ...] = ()


def describe(x: Any) -> str:
    """A short, one-line picture of a value: a tensor's shape, dtype and first entries; a module's class."""
    if isinstance(x, Tensor):
        flat = x.detach().flatten()[:PREVIEW].tolist()
        more = ", ..." if x.numel() > PREVIEW else ""
        items = ", ".join(_number(v) for v in flat)
        return f"tensor of shape {tuple(x.shape)}, {str(x.dtype).removeprefix('torch.')}: [{items}{more}]"
    if isinstance(x, nn.Module):
        return f"{type(x).__name__} module"
    if isinstance(x, (tuple, list)):
        inner = ", ".join(describe(v) for v in x[:3])
        return f"{type(x).__name__} of {len(x)}: ({inner}{', ...' if len(x) > 3 else ''})"
    if isinstance(x, float):
        return _number(x)
    if callable(x):
        return f"function {getattr(x, '__name__', type(x).__name__)}"
    return repr(x)


def _number(v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, float):
        return repr(v)
    return f"{v:.6g}"


def difference(expected: Any, got: Any, *, rtol: float, atol: float, where: str = "the result") -> str | None:
    """Where ``got`` first differs from ``expected``, in words; ``None`` when they agree.

    Tensors must agree in shape, in kind of dtype (bool, integer or floating point) and in every entry to
    ``|got - expected| <= atol + rtol |expected|`` (exactly, for bool and integer tensors); tuples and lists
    entry by entry; numbers to the same tolerance; anything else by ``==``.
    """
    if isinstance(expected, Tensor):
        if not isinstance(got, Tensor):
            return f"{where} should be a tensor ({describe(expected)}), got {type(got).__name__}: {describe(got)}"
        if tuple(got.shape) != tuple(expected.shape):
            return f"{where} should have shape {tuple(expected.shape)}, got {tuple(got.shape)}"
        kind_e, kind_g = _kind(expected), _kind(got)
        if kind_e != kind_g:
            return f"{where} should be a {kind_e} tensor ({expected.dtype}), got {got.dtype}"
        e, g = expected.detach().cpu(), got.detach().cpu()
        if kind_e == "floating-point":
            e, g = e.double(), g.double()
            bad = ~((g - e).abs() <= atol + rtol * e.abs()) | (torch.isnan(g) & ~torch.isnan(e))
        else:
            bad = g != e
        if not bad.any():
            return None
        index = tuple(int(i) for i in torch.nonzero(bad)[0])
        n_bad = int(bad.sum())
        at = f"[{', '.join(map(str, index))}]" if index else ""
        return (
            f"{where}{at} should be {_number(e[index].item())}, got {_number(g[index].item())} "
            f"({n_bad} of {e.numel()} entries differ)"
        )
    if isinstance(expected, (tuple, list)):
        if not isinstance(got, (tuple, list)) or len(got) != len(expected):
            n = len(got) if isinstance(got, (tuple, list)) else None
            return f"{where} should be a {type(expected).__name__} of {len(expected)} values, got {describe(got)}" + (
                f" ({n} values)" if n is not None else ""
            )
        for i, (e_i, g_i) in enumerate(zip(expected, got, strict=True)):
            found = difference(e_i, g_i, rtol=rtol, atol=atol, where=f"{where}[{i}]")
            if found:
                return found
        return None
    if isinstance(expected, (int, float)) and not isinstance(expected, bool):
        if isinstance(got, Tensor) and got.numel() == 1:
            got = got.item()
        if isinstance(got, bool) or not isinstance(got, (int, float)):
            return f"{where} should be the number {_number(expected)}, got {describe(got)}"
        if isinstance(expected, int) and isinstance(got, float) and not got.is_integer():
            return f"{where} should be the integer {expected}, got {_number(got)}"
        if not math.isclose(got, expected, rel_tol=rtol, abs_tol=atol):
            return f"{where} should be {_number(expected)}, got {_number(got)}"
        return None
    if got != expected:
        return f"{where} should be {describe(expected)}, got {describe(got)}"
    return None


def _kind(t: Tensor) -> str:
    if t.dtype == torch.bool:
        return "bool"
    return "floating-point" if t.is_floating_point() else "integer"


def _clone(value: Any) -> Any:
    """A deep copy, so neither function sees what the other did to its inputs."""
    return copy.deepcopy(value)


def run_check(
    name: str,
    student: Any,
    reference: Callable[..., Any],
    cases: Sequence[Case],
    *,
    rtol: float = 1e-5,
    atol: float = 1e-6,
    compare: Callable[[Any, Any, Case], str | None] | None = None,
) -> None:
    """Call ``student`` and ``reference`` on copies of each case's arguments and compare the results.

    Args:
        name: the function's name as the lab writes it (``fine_grained_prune``); verdicts use it.
        student: the student's function.
        reference: the book's function, with the same signature.
        cases: what to call them with; fixed cases first (they explain a failure best), then random ones.
        rtol, atol: the tolerance for floating-point results.
        compare: ``compare(expected, got, case)`` instead of :func:`difference` (for results that are right in
            more than one way, such as k-means codebooks); returns the disagreement in words or ``None``.

    Prints ``✓ name: all N cases pass`` (one short line) when every case agrees with the reference.

    Raises:
        TypeError: ``student`` is not callable.
        CheckFailed: the function is not written yet (raises ``NotImplementedError``), raises anything else,
            or disagrees with the reference on a case.
    """
    if not callable(student):
        raise TypeError(f"check.{name} takes your function {name} itself, got {type(student).__name__}")
    for n, case in enumerate(cases, 1):
        ref_args, ref_kwargs = _clone(case.args), _clone(case.kwargs)
        expected = reference(*ref_args, **ref_kwargs)
        args, kwargs = _clone(case.args), _clone(case.kwargs)
        header = f"{name}, case {n} of {len(cases)} ({case.name})"
        try:
            got = student(*args, **kwargs)
        except NotImplementedError:
            raise CheckFailed(
                f"{name} is not written yet: replace `raise NotImplementedError` with your code, then run this "
                "cell again."
            ) from None
        except Exception as e:  # noqa: BLE001 - any error of the student's code becomes a verdict
            raise CheckFailed(f"{header}: your function raised {type(e).__name__}: {e}\n{_inputs(case)}") from e
        found = compare(expected, got, case) if compare else difference(expected, got, rtol=rtol, atol=atol)
        if found is None:
            for i in case.mutated:
                found = difference(
                    ref_args[i], args[i], rtol=rtol, atol=atol, where=f"argument {i + 1} after the call (in place)"
                )
                if found:
                    break
        if found:
            raise CheckFailed(f"{header}: {found}\n{_inputs(case)}")
    print(f"✓ {name}: all {len(cases)} cases pass")


def _inputs(case: Case) -> str:
    lines = [f"  argument {i + 1}: {describe(a)}" for i, a in enumerate(case.args)]
    lines += [f"  {k}={describe(v)}" for k, v in case.kwargs.items()]
    return "The call was made with\n" + "\n".join(lines)
