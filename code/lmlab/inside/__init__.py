"""Inside the transformer (chapters: transformer circuits, induction heads): QK and OV circuits and their SVDs, one
attention head from its equations, the hand-built induction circuit, head detectors, attribution, and the homework's
induction lab.

Modules: ``attribution``, ``circuits``, ``heads``, ``induction``, ``induction_eval``, ``lab_induction``. Each is
imported on first use (``lmlab.inside.attribution``), and the top-level package re-exports each under its short name
(``lmlab.attribution``).
"""

from lmlab import _lazy_modules

_MODULES = ("attribution", "circuits", "heads", "induction", "induction_eval", "lab_induction")

__all__ = list(_MODULES)
__getattr__ = _lazy_modules(__name__, _MODULES)
