"""Compressing (chapters: pruning, quantization): the digits data and the VGG-style network, fine-grained and channel
pruning, k-means and linear quantization, integer-only inference, and the labs' own functions.

Modules: ``integer_inference``, ``lab_pruning``, ``lab_quantization``, ``pruning``, ``quantization``, ``vision``.
Each is imported on first use (``lmlab.compressing.integer_inference``), and the top-level package re-exports each
under its short name (``lmlab.integer_inference``).
"""

from __future__ import annotations

import importlib
from types import ModuleType

_MODULES = ("integer_inference", "lab_pruning", "lab_quantization", "pruning", "quantization", "vision")

__all__ = list(_MODULES)


def __getattr__(name: str) -> ModuleType:
    if name in _MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
