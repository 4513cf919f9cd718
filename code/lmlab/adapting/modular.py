"""A task family for meta-learning and soft prompts: ``x -> (x + k) mod p``, one task per ``k``.

Only something outside the inputs (a prompt) can say which ``k`` a sequence uses, which makes the family a test
bed for learning a prompt's starting point across tasks.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lmlab.core.checks import check_generator, check_int
from lmlab.core.runtime import generator as _generator

__all__ = ["ModularAddition"]


class ModularAddition:
    """The task family ``x -> (x + k) mod p`` for ``k = 0, ..., p - 1``: one task per ``k``.

    Tokens are the residues ``0 .. p-1``. The ``k`` values are split at random (from ``seed``) into
    ``train_tasks`` and ``heldout_tasks`` (``n_heldout`` of them), for meta-learning: learn on the training tasks,
    adapt to a held-out one.

    Args:
        p: the modulus, >= 3.
        n_heldout: number of held-out tasks, in [1, p - 1].
        seed: seed of the split.
    """

    def __init__(self, p: int = 17, n_heldout: int = 4, seed: int = 0) -> None:
        self.p = check_int("p", p, 3)
        check_int("n_heldout", n_heldout, 1, p - 1)
        check_int("seed", seed, 0)
        order = torch.randperm(p, generator=_generator(seed)).tolist()
        self.heldout_tasks: list[int] = sorted(order[:n_heldout])
        self.train_tasks: list[int] = sorted(order[n_heldout:])

    @property
    def n_vocab(self) -> int:
        """Number of tokens: the ``p`` residues."""
        return self.p

    def _ks(self, k: int | Tensor, batch: int) -> Tensor:
        if isinstance(k, Tensor):
            if k.shape != (batch,):
                raise ValueError(f"k as a tensor must have shape (batch,) = ({batch},), got {tuple(k.shape)}")
            ks = k.long().cpu()
        else:
            ks = torch.full((batch,), check_int("k", k, 0, self.p - 1), dtype=torch.long)
        if bool(((ks < 0) | (ks >= self.p)).any()):
            raise ValueError(f"k must be in [0, {self.p - 1}]")
        return ks

    def sample(self, k: int | Tensor, batch: int, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """``n`` input/target pairs per row for task ``k`` (an int, or a LongTensor ``(batch,)``, one per row).

        Returns:
            ``x``: LongTensor ``(batch, n)`` uniform residues; ``y = (x + k) mod p``, same shape.
        """
        check_int("batch", batch, 1)
        check_int("n", n, 1)
        g = check_generator(generator)
        ks = self._ks(k, batch)
        x = torch.randint(0, self.p, (batch, n), generator=g)
        return x, (x + ks[:, None]) % self.p

    def sample_tasks(self, batch: int, split: str, generator: torch.Generator) -> Tensor:
        """``batch`` task ids drawn uniformly from ``split`` (``"train"`` or ``"heldout"``): LongTensor ``(batch,)``."""
        check_int("batch", batch, 1)
        g = check_generator(generator)
        if split not in ("train", "heldout"):
            raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
        pool = torch.tensor(self.train_tasks if split == "train" else self.heldout_tasks)
        return pool[torch.randint(0, len(pool), (batch,), generator=g)]

    def in_context(
        self, k: int | Tensor, batch: int, n_pairs: int, generator: torch.Generator
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Sequences ``x1 y1 x2 y2 ...`` for in-context learning of task ``k``, ready for next-token training.

        Returns:
            ``inputs`` LongTensor ``(batch, 2 n_pairs - 1)`` (the interleaved pairs without the last ``y``),
            ``targets`` the same shape (the sequence shifted left by one), and ``mask`` BoolTensor of the same shape,
            True where the target is a ``y`` (the only positions whose answer is determined).
        """
        check_int("n_pairs", n_pairs, 1)
        x, y = self.sample(k, batch, n_pairs, generator)
        seq = torch.stack([x, y], dim=2).reshape(batch, 2 * n_pairs)
        inputs, targets = seq[:, :-1], seq[:, 1:]
        mask = torch.zeros_like(targets, dtype=torch.bool)
        mask[:, 0::2] = True  # target index 2i is y_i
        return inputs.contiguous(), targets.contiguous(), mask
