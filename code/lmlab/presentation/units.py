"""The book's one unit registry (pint), with the units that Fermi estimates of large models need.

``FLOP`` (with prefixes: ``PFLOP``), ``petaFLOP_day``, ``USD``, ``token``, ``parameter`` (``param``), ``word``,
``page``, ``book``, ``essay``, ``burger`` and ``gram_CO2`` (``kg_CO2``, ``t_CO2``). Counting units are independent
dimensions, so a token count passed where a parameter count belongs raises :class:`pint.DimensionalityError`.
:func:`require` is the one check that a function argument is a quantity of this registry in the right units.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pint

__all__ = ["ureg", "Q_", "require"]


ureg = pint.UnitRegistry()
"""The registry every quantity of the book must come from."""

for _definition in (
    "FLOP = [compute]",
    "petaFLOP_day = 1e15 * FLOP / second * day = PFLOP_day",
    "USD = [currency]",
    "token = [token]",
    "parameter = [parameter] = param",
    "word = [word]",
    "page = [page]",
    "book = [book]",
    "essay = [essay]",
    "burger = [burger]",
    "gram_CO2 = [carbon] = g_CO2",
    "tonne_CO2 = 1e6 * gram_CO2 = t_CO2",
):
    _name = _definition.split("=")[0].strip()
    if _name in ureg:  # pragma: no cover - guards against a future pint defining one of these names
        raise RuntimeError(f"pint already defines {_name!r}; lmlab.units would silently redefine it")
    ureg.define(_definition)

Q_ = ureg.Quantity
"""Shorthand constructor: ``Q_(1.98, "PFLOP/s")``."""


def require(name: str, value: Any, unit: str, *, positive: bool = True) -> pint.Quantity:
    """Check that argument ``name`` is a finite quantity of :data:`ureg` with the dimensions of ``unit``.

    Args:
        name: the argument's name, used in the error message.
        value: the argument (a scalar or array quantity).
        unit: any unit of the required dimensions, e.g. ``"FLOP / s"``.
        positive: also require every magnitude to be > 0 (default).

    Returns:
        ``value`` unchanged.

    Raises:
        TypeError: ``value`` is not a pint quantity, or comes from another registry.
        pint.DimensionalityError: wrong dimensions (the message names the argument).
        ValueError: a magnitude is not finite, or not > 0 when ``positive``.
    """
    target = ureg.parse_units(unit)
    if not isinstance(value, ureg.Quantity):
        if isinstance(value, pint.Quantity):
            raise TypeError(f"{name} must be a quantity of lmlab.units.ureg, got one from another UnitRegistry")
        raise TypeError(
            f"{name} must be a pint Quantity in units of {unit} (for example Q_(1.0, {unit!r})), "
            f"got {type(value).__name__}"
        )
    if value.dimensionality != target.dimensionality:
        raise pint.DimensionalityError(
            value.units,
            target,
            value.dimensionality,
            target.dimensionality,
            extra_msg=f" (argument {name!r} must be in units of {unit})",
        )
    mag = np.asarray(value.magnitude, dtype=float)
    if not np.all(np.isfinite(mag)):
        raise ValueError(f"{name} must be finite, got {value}")
    if positive and not np.all(mag > 0):
        raise ValueError(f"{name} must be > 0, got {value}")
    return value
