"""Where code runs and how it is made repeatable: the device and the seeds."""

from __future__ import annotations

import os
import random
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where it is used, so `import lmlab` stays cheap for torch-free chapters
    import torch


def device(prefer: str | None = None) -> torch.device:
    """The device every chapter computes on: CUDA when present, else the CPU.

    Args:
        prefer: ``None`` (automatic), ``"cpu"`` or ``"cuda"``. The environment variable ``LMLAB_DEVICE``
            overrides the automatic choice, so a GPU machine can still run a chapter on its CPU.

    Raises:
        ValueError: ``prefer`` is not one of the allowed values, or ``"cuda"`` is asked for without a GPU.
    """
    import torch

    choice = prefer if prefer is not None else os.environ.get("LMLAB_DEVICE") or None
    if choice is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice not in ("cpu", "cuda"):
        raise ValueError(f"prefer (or LMLAB_DEVICE) must be None, 'cpu' or 'cuda', got {choice!r}")
    if choice == "cuda" and not torch.cuda.is_available():
        raise ValueError("prefer='cuda' was asked for, but torch.cuda.is_available() is False")
    return torch.device(choice)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python's, NumPy's and PyTorch's generators (CPU and CUDA) so a run repeats exactly.

    Args:
        seed: a non-negative integer below 2**32.

    Returns:
        A fresh ``torch.Generator`` on the CPU seeded with ``seed``, for code that prefers an explicit generator.

    Raises:
        TypeError: ``seed`` is not an int.
        ValueError: ``seed`` is outside [0, 2**32).
    """
    import numpy as np
    import torch

    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    return torch.Generator().manual_seed(seed)
