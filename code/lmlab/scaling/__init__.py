"""Scaling (chapters: batch size and learning rate, Fermi estimation): batched learning-rate x batch-size sweeps, the
regression teachers they train, the homework's finite-data SGD, the Chinchilla law, Fermi estimates with units and
their uncertainty.

Modules: ``chinchilla``, ``fermi``, ``minibatch_sgd``, ``regression``, ``sweep``, ``sweepplot``, ``uncertainty``.
Each is imported on first use (``lmlab.scaling.chinchilla``), and the top-level package re-exports each under its
short name (``lmlab.chinchilla``).
"""

from __future__ import annotations

import importlib
from types import ModuleType

_MODULES = ("chinchilla", "fermi", "minibatch_sgd", "regression", "sweep", "sweepplot", "uncertainty")

__all__ = list(_MODULES)


def __getattr__(name: str) -> ModuleType:
    if name in _MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
