"""Scaling (chapters: batch size and learning rate, Fermi estimation): batched learning-rate x batch-size sweeps, the
regression teachers they train, the homework's finite-data SGD, the Chinchilla law, Fermi estimates with units and
their uncertainty.

Modules: ``chinchilla``, ``fermi``, ``minibatch_sgd``, ``regression``, ``sweep``, ``sweepplot``, ``uncertainty``.
Each is imported on first use (``lmlab.scaling.chinchilla``), and the top-level package re-exports each under its
short name (``lmlab.chinchilla``).
"""

from lmlab import _lazy_modules

_MODULES = ("chinchilla", "fermi", "laws", "minibatch_sgd", "regression", "sweep", "sweepplot", "uncertainty")

__all__ = list(_MODULES)
__getattr__ = _lazy_modules(__name__, _MODULES)
