"""Presentation: how results reach the page: glue for the prose and number formatting (report), the book's figure style
(plotting), and the one unit registry (units).

Modules: ``plotting``, ``report``, ``tables``, ``units``. Each is imported on first use
(``lmlab.presentation.plotting``), and the top-level package re-exports each under its short name
(``lmlab.plotting``).
"""

from lmlab import _lazy_modules

_MODULES = ("plotting", "report", "tables", "units")

__all__ = list(_MODULES)
__getattr__ = _lazy_modules(__name__, _MODULES)
