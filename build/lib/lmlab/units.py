"""The book's one unit registry (pint), with the units that Fermi estimates of large models need.

``FLOP`` (with prefixes: ``PFLOP``), ``petaFLOP_day``, ``USD``, ``token``, ``parameter`` (``param``), ``word``,
``page``, ``book``, ``essay``, ``burger`` and ``gram_CO2`` (``kg_CO2``, ``t_CO2``). Counting units are independent
dimensions, so a token count passed where a parameter count belongs raises :class:`pint.DimensionalityError`.
"""

from __future__ import annotations

import pint

__all__ = ["ureg", "Q_"]


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
