"""The core every chapter stands on: the tiny transformer and its layers, the seeded tasks, the training loop, the
runtime (device, seeds, draws), the argument checks, the timer and the registry of "pretrained" models.

Modules: ``checks``, ``layers``, ``model``, ``pretrained``, ``runtime``, ``tasks``, ``timing``, ``train``. Each is
imported on first use (``lmlab.core.checks``), and the top-level package re-exports each under its short name
(``lmlab.checks``).
"""

from __future__ import annotations

import importlib
from types import ModuleType

_MODULES = ("checks", "layers", "model", "pretrained", "runtime", "tasks", "timing", "train")

__all__ = list(_MODULES)


def __getattr__(name: str) -> ModuleType:
    if name in _MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
