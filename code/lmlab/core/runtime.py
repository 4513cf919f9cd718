"""Where code runs and how it is made repeatable: the device, the seeds and the draw.

A *draw* is one realisation of everything random in the book: the seeds, and the arithmetic of the machine
(training is bit-reproducible only within one CPU kernel family, ``ATEN_CPU_CAPABILITY``, and one thread count).
The environment variable ``LMLAB_SEED_OFFSET`` picks the seed part of the draw: every seed that lmlab turns into a
random generator (and every seed a chapter passes to :func:`seed_everything` or :func:`generator`) goes through
:func:`draw_seed`, which is the identity for offset 0 (the default) and a hash of (seed, offset) otherwise. So::

    LMLAB_SEED_OFFSET=1 ATEN_CPU_CAPABILITY=default OMP_NUM_THREADS=1 jupyter lab

reruns any chapter on another draw; its asserted conclusions must not change.
"""

from __future__ import annotations

import hashlib
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


SEED_OFFSET_ENV = "LMLAB_SEED_OFFSET"
MAX_SEED_OFFSET = 2**16


def seed_offset() -> int:
    """The draw's seed offset: the environment variable ``LMLAB_SEED_OFFSET`` (default 0).

    Raises:
        ValueError: the variable is set to something other than an integer in [0, 65536).
    """
    raw = os.environ.get(SEED_OFFSET_ENV, "").strip()
    if not raw:
        return 0
    try:
        offset = int(raw)
    except ValueError:
        raise ValueError(f"{SEED_OFFSET_ENV} must be an integer in [0, {MAX_SEED_OFFSET}), got {raw!r}") from None
    if not 0 <= offset < MAX_SEED_OFFSET:
        raise ValueError(f"{SEED_OFFSET_ENV} must be an integer in [0, {MAX_SEED_OFFSET}), got {offset}")
    return offset


def _check_seed(seed: object, name: str = "seed") -> int:
    import numpy as np

    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"{name} must be >= 0, got {seed}")
    return int(seed)


def draw_seed(seed: int) -> int:
    """The seed actually used for ``seed`` on this draw.

    With ``LMLAB_SEED_OFFSET`` unset or 0 this is ``seed`` itself. Otherwise it is a hash of ``(seed, offset)``
    in [0, 2**32): distinct seeds stay distinct (up to hash collisions), and the streams of nearby seeds do not
    slide into each other as they would with ``seed + offset`` (lmlab derives batch seeds as ``seed * C + step``).

    Raises:
        TypeError: ``seed`` is not an int.
        ValueError: ``seed`` is negative.
    """
    seed = _check_seed(seed)
    offset = seed_offset()
    if offset == 0:
        return seed
    digest = hashlib.blake2b(f"lmlab:{seed}:{offset}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "little")


def generator(seed: int, device: torch.device | str | None = None) -> torch.Generator:
    """A ``torch.Generator`` seeded with :func:`draw_seed` of ``seed`` (on the CPU unless ``device`` is given).

    Use it instead of ``torch.Generator().manual_seed(seed)`` so that ``LMLAB_SEED_OFFSET`` reaches the draw.

    Raises:
        TypeError: ``seed`` is not an int.
        ValueError: ``seed`` is negative.
    """
    import torch

    g = torch.Generator() if device is None else torch.Generator(device=device)
    return g.manual_seed(draw_seed(seed))


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python's, NumPy's and PyTorch's generators (CPU and CUDA) with :func:`draw_seed` of ``seed``.

    Args:
        seed: a non-negative integer below 2**32.

    Returns:
        A fresh ``torch.Generator`` on the CPU, ``generator(seed)``, for code that prefers an explicit generator.

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
    s = draw_seed(seed)
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)  # also seeds every CUDA device
    return generator(seed)
