"""lmlab: the small, executable companion package of the book.

Everything a chapter needs that is longer than a few lines lives here: a tiny transformer written in the
book's notation, deterministic synthetic tasks, a training loop, and the analysis tools of each chapter.
Nothing is downloaded: data is generated, and "pretrained" models are trained by the package in seconds.
"""

from __future__ import annotations

from lmlab._runtime import device, seed_everything

__version__ = "0.1.0"

__all__ = ["__version__", "device", "seed_everything"]
