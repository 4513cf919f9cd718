"""The core every chapter stands on: the tiny transformer and its layers, the seeded tasks, the training loop, the
runtime (device, seeds, draws), the argument checks, the timer and the registry of "pretrained" models.

Modules: ``checks``, ``cost``, ``layers``, ``model``, ``optim``, ``pretrained``, ``recipes``, ``runtime``,
``tasks``, ``timing``, ``train``. Each is imported on first use (``lmlab.core.checks``), and the top-level package
re-exports each under its short name (``lmlab.checks``).
"""

from lmlab import _lazy_modules

_MODULES = (
    "checks",
    "cost",
    "layers",
    "model",
    "optim",
    "pretrained",
    "recipes",
    "runtime",
    "tasks",
    "timing",
    "train",
)

__all__ = list(_MODULES)
__getattr__ = _lazy_modules(__name__, _MODULES)
