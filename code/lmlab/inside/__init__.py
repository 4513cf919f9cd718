"""Inside the transformer (chapters: transformer circuits, induction heads): QK and OV circuits and their SVDs, one
attention head from its equations, the hand-built induction circuit, head detectors, attribution, and the homework's
induction lab.

Modules: ``attribution``, ``circuits``, ``heads``, ``induction``, ``induction_eval``, ``lab_induction``. Each is
imported on first use (``lmlab.inside.attribution``), and the top-level package re-exports each under its short name
(``lmlab.attribution``).
"""

from __future__ import annotations

import importlib
from types import ModuleType

_MODULES = ("attribution", "circuits", "heads", "induction", "induction_eval", "lab_induction")

__all__ = list(_MODULES)


def __getattr__(name: str) -> ModuleType:
    if name in _MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
