"""Argument checks shared by every module: bad input raises a clear error naming the argument and the range.

Each check returns the value (converted where it says so), so a function can write ``n = check_int("n", n, 1)``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lmlab.core.runtime import generator as _generator

__all__ = ["check_float", "check_generator", "check_int", "check_tensor"]


def check_int(name: str, value: Any, low: int, high: int | None = None) -> int:
    """``value`` as an ``int`` in ``[low, high]`` (``high=None``: no upper bound); numpy integers are accepted.

    Raises:
        TypeError: ``value`` is not an integer (a ``bool`` is not one).
        ValueError: ``value`` is outside the range.
    """
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
