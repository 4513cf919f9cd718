"""Compressing (chapters: pruning, quantization): the digits data and the VGG-style network, fine-grained and channel
pruning, k-means and linear quantization, integer-only inference, and the labs' own functions.

Modules: ``integer_inference``, ``lab_pruning``, ``lab_quantization``, ``pruning``, ``quantization``, ``vision``.
Each is imported on first use (``lmlab.compressing.integer_inference``), and the top-level package re-exports each
under its short name (``lmlab.integer_inference``).
"""

from lmlab import _lazy_modules

_MODULES = ("integer_inference", "lab_kmeans", "lab_pruning", "lab_quantization", "pruning", "quantization", "vision")

__all__ = list(_MODULES)
__getattr__ = _lazy_modules(__name__, _MODULES)
