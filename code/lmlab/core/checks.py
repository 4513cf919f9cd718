"""Argument checks shared by every module: bad input raises a clear error naming the argument and the range.

Each check returns the value (converted where it says so), so a function can write ``n = check_int("n", n, 1)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lmlab.core.runtime import generator as _generator

__all__ = [
    "check_callable",
    "check_choice",
    "check_float",
    "check_generator",
    "check_instance",
    "check_int",
    "check_ints",
    "check_module",
    "check_str",
    "check_tensor",
]


def _check_name(name: Any) -> None:
    """The checks' own first argument: the argument's name as the caller wrote it."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be the checked argument's name (a non-empty str), got {name!r}")


def _check_bound(what: str, bound: Any, kind: type | tuple[type, ...], *, optional: bool = True) -> None:
    if bound is None and not optional:
        raise TypeError(f"{what} must be a number, got None")
    if bound is not None and (isinstance(bound, bool) or not isinstance(bound, kind)):
        raise TypeError(f"{what} must be a number, got {type(bound).__name__}")
    if isinstance(bound, float) and math.isnan(bound):
        raise ValueError(f"{what} must not be NaN")


def check_int(name: str, value: Any, low: int, high: int | None = None) -> int:
    """``value`` as an ``int`` in ``[low, high]`` (``high=None``: no upper bound); numpy integers are accepted.

    Raises:
        TypeError: ``value`` is not an integer (a ``bool`` is not one).
        ValueError: ``value`` is outside the range.
    """
    _check_name(name)
    _check_bound("low", low, (int, np.integer), optional=False)
    _check_bound("high", high, (int, np.integer))
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < low or (high is not None and value > high):
        allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be an int {allowed}, got {value}")
    return int(value)


def check_float(name: str, value: Any, low: float, *, strict: bool = False, high: float | None = None) -> float:
    """``value`` as a finite ``float`` with ``value >= low`` (``> low`` when ``strict``) and ``<= high`` if given.

    Raises:
        TypeError: ``value`` is not a real number.
        ValueError: ``value`` is not finite or is outside the range.
    """
    _check_name(name)
    _check_bound("low", low, (int, float, np.integer, np.floating), optional=False)
    _check_bound("high", high, (int, float, np.integer, np.floating))
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a float, got {type(value).__name__}")
    v = float(value)
    too_low = v <= low if strict else v < low
    if not math.isfinite(v) or too_low or (high is not None and v > high):
        rng = f"{'>' if strict else '>='} {low}" + (f" and <= {high}" if high is not None else "")
        raise ValueError(f"{name} must be a finite number {rng}, got {value}")
    return v


def check_tensor(
    name: str, value: Any, ndim: int | tuple[int, ...] | None = None, *, floating: bool = False, numpy: bool = False
) -> Tensor:
    """``value`` as a ``torch.Tensor`` with ``ndim`` dimensions (one of them, for a tuple).

    Args:
        floating: require a floating-point (or complex) dtype.
        numpy: also accept a ``numpy.ndarray`` (converted with ``torch.from_numpy``).

    Raises:
        TypeError: not a tensor (or array, with ``numpy``), or not floating-point when required.
        ValueError: the wrong number of dimensions.
    """
    _check_name(name)
    if ndim is not None:
        dims_ok = isinstance(ndim, (int, tuple)) and all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0
            for d in (ndim if isinstance(ndim, tuple) else (ndim,))
        )
        if not dims_ok:
            raise TypeError(f"ndim must be an int >= 0 or a tuple of them, got {ndim!r}")
    if numpy and isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if not isinstance(value, Tensor):
        kinds = "a torch.Tensor or numpy.ndarray" if numpy else "a torch.Tensor"
        raise TypeError(f"{name} must be {kinds}, got {type(value).__name__}")
    if floating and not (value.is_floating_point() or value.is_complex()):
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
    if ndim is not None:
        dims = (ndim,) if isinstance(ndim, int) else ndim
        if value.ndim not in dims:
            want = " or ".join(map(str, dims))
            raise ValueError(f"{name} must have {want} dimensions, got shape {tuple(value.shape)}")
    return value


def check_generator(generator: Any) -> torch.Generator:
    """A CPU ``torch.Generator`` (data is drawn on the CPU, then moved), or an int seed turned into one.

    Raises:
        TypeError: neither a generator nor an int.
        ValueError: a generator on another device, or a negative seed.
    """
    if isinstance(generator, (int, np.integer)) and not isinstance(generator, bool):
        return _generator(check_int("seed", generator, 0))
    if not isinstance(generator, torch.Generator):
        raise TypeError(
            "generator must be a torch.Generator or an int seed (e.g. lmlab.generator(0)), "
            f"got {type(generator).__name__}"
        )
    if generator.device.type != "cpu":
        raise ValueError("generator must live on the CPU (data is generated on the CPU, then moved)")
    return generator


def check_str(name: str, value: Any) -> str:
    """``value``, which must be a ``str``.

    Raises:
        TypeError: not a string.
    """
    _check_name(name)
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    return value


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    """``value``, which must be one of ``choices`` (strings).

    Raises:
        TypeError: not a string. ValueError: not one of ``choices``.
    """
    if isinstance(choices, (str, bytes)) or not isinstance(choices, Iterable):
        raise TypeError(f"choices must be a collection of strings, got {type(choices).__name__}")
    options = list(choices)
    check_str(name, value)
    if value not in options:
        raise ValueError(f"{name} must be one of {options}, got {value!r}")
    return value


def check_callable(name: str, value: Any) -> Callable[..., Any]:
    """``value``, which must be callable (a function, a model, ...).

    Raises:
        TypeError: not callable.
    """
    _check_name(name)
    if not callable(value):
        raise TypeError(f"{name} must be callable, got {type(value).__name__}")
    return value


def check_instance(name: str, value: Any, cls: type | tuple[type, ...]) -> Any:
    """``value``, which must be an instance of ``cls``.

    Raises:
        TypeError: not an instance of ``cls``.
    """
    _check_name(name)
    if not (isinstance(cls, type) or (isinstance(cls, tuple) and cls and all(isinstance(c, type) for c in cls))):
        raise TypeError(f"cls must be a class or a tuple of classes, got {cls!r}")
    if not isinstance(value, cls):
        want = " or ".join(c.__name__ for c in (cls if isinstance(cls, tuple) else (cls,)))
        raise TypeError(f"{name} must be a {want}, got {type(value).__name__}")
    return value


def check_module(name: str, value: Any, *, attrs: Sequence[str] = ()) -> torch.nn.Module:
    """``value``, which must be a ``torch.nn.Module`` with the attributes ``attrs`` (e.g. ``("cfg",)`` for a
    :class:`~lmlab.model.TinyTransformer`).

    Raises:
        TypeError: not a module, or one without ``attrs``.
    """
    check_instance(name, value, torch.nn.Module)
    missing = [a for a in attrs if not hasattr(value, a)]
    if missing:
        raise TypeError(
            f"{name} must be a model with {', '.join(missing)} (a TinyTransformer), got {type(value).__name__}"
        )
    return value


def check_ints(name: str, values: Any, low: int, high: int | None = None, *, nonempty: bool = True) -> list[int]:
    """``values`` (an iterable of ints, not a string) as a list, each in ``[low, high]``.

    Raises:
        TypeError: not an iterable of ints. ValueError: empty (when ``nonempty``), or an element out of range.
    """
    _check_name(name)
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise TypeError(f"{name} must be a sequence of ints, got {type(values).__name__}")
    out = [check_int(f"{name}[{i}]", v, low, high) for i, v in enumerate(values)]
    if nonempty and not out:
        raise ValueError(f"{name} must not be empty")
    return out
