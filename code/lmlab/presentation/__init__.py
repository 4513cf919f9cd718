"""Presentation: how results reach the page: glue for the prose and number formatting (report), the book's figure style
(plotting), and the one unit registry (units).

Modules: ``plotting``, ``report``, ``units``. Each is imported on first use (``lmlab.presentation.plotting``), and
the top-level package re-exports each under its short name (``lmlab.plotting``).
"""

from __future__ import annotations

import importlib
from types import ModuleType

_MODULES = ("plotting", "report", "units")

__all__ = list(_MODULES)


def __getattr__(name: str) -> ModuleType:
    if name in _MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
