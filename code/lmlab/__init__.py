"""lmlab: the small, executable companion package of the book.

Everything a chapter needs that is longer than a few lines lives here: a tiny transformer written in the
book's notation, deterministic synthetic tasks, a training loop, and the analysis tools of each chapter.
Nothing is downloaded: data is generated, and "pretrained" models are trained by the package in seconds.

Modules (imported on first use, so ``import lmlab`` stays cheap):

- ``lmlab.model``: ``TinyTransformer`` and ``ModelConfig``, weights in the homework's shapes.
- ``lmlab.tasks``: seeded synthetic data (bigram language, repeated sequences, arithmetic with a chain of
  thought, modular-addition task family).
- ``lmlab.train``: one small training loop and the masked cross-entropy.
- ``lmlab.pretrained``: ``load(name)`` trains a named recipe once and caches it.
- ``lmlab.circuits``: QK/OV circuits, factored SVD, read and write subspaces.
- ``lmlab.induction``: one attention head from its equations, hand-built induction heads, head detectors.
- ``lmlab.fermi``: Chinchilla calculus and Fermi estimates with units.
- ``lmlab.vision``: scikit-learn's digits (seeded splits) and a small VGG-style CNN, with its training loop.
- ``lmlab.pruning``: fine-grained and channel pruning, sensitivity scans, MAC counts, latency.
- ``lmlab.quantization``: k-means and linear (affine) quantization, fake quantization with a straight-through
  estimator, quantization-aware training.
- ``lmlab.integer_inference``: integer-only inference of the VGG (folded batch norm, int32 bias, fixed-point
  rescaling).
- ``lmlab.plotting``: the book's matplotlib style.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from lmlab._runtime import device, seed_everything

__version__ = "0.1.0"

_SUBMODULES = (
    "model",
    "tasks",
    "train",
    "pretrained",
    "circuits",
    "induction",
    "fermi",
    "plotting",
    "report",
    "units",
    "vision",
    "pruning",
    "quantization",
    "integer_inference",
)

__all__ = ["__version__", "device", "seed_everything", *_SUBMODULES]


def __getattr__(name: str) -> ModuleType:
    if name in _SUBMODULES:
        return importlib.import_module(f"lmlab.{name}")
    raise AttributeError(f"module 'lmlab' has no attribute {name!r}")
