"""The pretraining corpora of the soft-prompting chapter: data whose behaviour a prompt has to select.

* :class:`StyledArithmetic`: the word problems of :mod:`lmlab.arithmetic` written in two styles, a worked solution
  (chain of thought ending ``"Final answer: N\\n"``) or a terse answer (``" N\\n"``). Most worked solutions are
  introduced by the five characters :data:`HINT` in front of the question, some terse ones by :data:`QUICK`;
  nothing else says which style comes. A model pretrained on it answers tersely unless a prompt asks for the
  worked style, so the homework's ``"Final answer:"`` parser fails without a prompt and works with a good one.
* :class:`ModularTagged`: the family ``x -> (x + k) mod p`` of :class:`~lmlab.modular.ModularAddition` with the
  task named by a tag token, ``[tag_k][x] -> y``; a soft prompt in the tag's place must name the task.

All have ``batches(batch, seed)`` (a ``step -> (inputs, targets, mask)`` source for :func:`lmlab.train.train`), so
:mod:`lmlab.pretrained` turns them into recipes.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from lmlab.adapting.arithmetic import ArithmeticTask, Problem
from lmlab.adapting.modular import ModularAddition
from lmlab.core.checks import check_float, check_instance, check_int
from lmlab.core.runtime import draw_seed as _draw_seed
from lmlab.core.runtime import generator as _generator
from lmlab.core.tasks import seeded_batches

__all__ = ["HINT", "QUICK", "ModularTagged", "StyledArithmetic", "terse_solution"]

HINT = "Show "
"""Five characters that introduce most worked solutions in :class:`StyledArithmetic` ("show your work")."""
QUICK = "Quick"
"""Five characters that introduce some terse answers in :class:`StyledArithmetic`."""


def terse_solution(problem: Problem) -> str:
    """The terse style of a problem's solution: ``" {answer}\\n"`` (no chain of thought, no "Final answer:")."""
    check_instance("problem", problem, Problem)
    return f" {problem.answer}\n"


class StyledArithmetic:
    """Arithmetic word problems in a worked or a terse style; a hint in front of the question marks worked ones.

    A training document is drawn as follows: with probability ``p_worked`` the worked style
    ``question + solution`` (the chain of thought of :class:`~lmlab.arithmetic.ArithmeticTask`), preceded by
    :data:`HINT` with probability ``p_hint``; otherwise the terse style ``question + " N\\n"``, preceded by
    :data:`QUICK` with probability ``p_quick``. Both prefixes have five characters, so the question's position
    does not tell the style, only the prefix's characters do. No ``BOS`` token:
    a document starts with its first character. The loss counts the answer part only (after ``" Answer:"``).

    Args:
        seed: seed of the train/held-out split (the split of ``ArithmeticTask(seed)``).
        p_worked: probability of the worked style, in (0, 1).
        p_hint: probability that a worked document carries :data:`HINT`, in [0, 1].
        p_quick: probability that a terse document carries :data:`QUICK`, in [0, 1].
        n_train, n_heldout: passed to :class:`~lmlab.arithmetic.ArithmeticTask`.
    """

    def __init__(
        self,
        seed: int = 0,
        *,
        p_worked: float = 0.5,
        p_hint: float = 0.75,
        p_quick: float = 0.25,
        n_train: int = 20000,
        n_heldout: int = 500,
    ) -> None:
        self.p_worked = check_float("p_worked", p_worked, 0.0, strict=True, high=1.0)
        if self.p_worked >= 1.0:
            raise ValueError(f"p_worked must be in (0, 1), got {p_worked}")
        self.p_hint = check_float("p_hint", p_hint, 0.0, high=1.0)
        self.p_quick = check_float("p_quick", p_quick, 0.0, high=1.0)
        self.arith = ArithmeticTask(seed, n_train=n_train, n_heldout=n_heldout)
        self.tokenizer = self.arith.tokenizer
        self.train, self.heldout = self.arith.train, self.arith.heldout

    @property
    def max_len(self) -> int:
        """Length in tokens of the longest document (hint + question + worked solution)."""
        return len(HINT) + max(len(p.text) for p in self.train + self.heldout)

    def document(self, problem: Problem, worked: bool, prefix: bool) -> tuple[str, int]:
        """The text of one document (with its style's prefix when ``prefix``) and the index of its first scored
        character (just after ``" Answer:"``)."""
        head = ((HINT if worked else QUICK) if prefix else "") + problem.question
        return head + (problem.solution if worked else terse_solution(problem)), len(head)

    def encode(self, docs: Sequence[tuple[str, int]], length: int) -> tuple[Tensor, Tensor, Tensor]:
        """``(inputs, targets, mask)``, each ``(batch, length)``: documents right-padded with ``PAD`` to
        ``length + 1`` tokens, targets shifted by one, mask True where the target lies in the answer part."""
        ids = [self.tokenizer.encode(text) for text, _ in docs]
        tokens, real = self.tokenizer.pad_batch(ids, length + 1)
        starts = torch.tensor([s for _, s in docs])
        pos = torch.arange(length)
        mask = (pos[None, :] + 1 >= starts[:, None]) & real[:, 1:]
        return tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous(), mask

    def batches(self, batch: int, seed: int = 0) -> Callable[[int], tuple[Tensor, Tensor, Tensor]]:
        """A ``step -> (inputs, targets, mask)`` source of ``batch`` training documents, padded to ``max_len - 1``."""
        check_int("batch", batch, 1)

        def draw(s: int) -> tuple[Tensor, Tensor, Tensor]:
            rng = random.Random(_draw_seed(s))
            docs = []
            for _ in range(batch):
                p = self.train[rng.randrange(len(self.train))]
                worked = rng.random() < self.p_worked
                docs.append(self.document(p, worked, rng.random() < (self.p_hint if worked else self.p_quick)))
            return self.encode(docs, self.max_len - 1)

        return seeded_batches(draw, seed)


class ModularTagged:
    """The family ``x -> (x + k) mod p`` with the task named by a tag token: sequences ``[tag_k][x] -> y``.

    Tokens ``0 .. p-1`` are residues, ``p + k`` is the tag of task ``k``. A model pretrained on every task learns
    what each tag means; a soft prompt of one vector in the tag's place must then say the task by itself. The
    tags stand for what a large model learns from its corpus about each task of a family. The split of
    :class:`~lmlab.modular.ModularAddition` into training and held-out tasks is for meta-learning the prompt.

    Args:
        p: the modulus. n_heldout, seed: the task split of :class:`~lmlab.modular.ModularAddition`.
    """

    def __init__(self, p: int = 17, n_heldout: int = 4, seed: int = 0) -> None:
        self.family = ModularAddition(p, n_heldout, seed)
        self.p = self.family.p

    @property
    def n_vocab(self) -> int:
        """``2 p``: the residues and one tag per task."""
        return 2 * self.p

    def batches(self, batch: int, seed: int = 0) -> Callable[[int], tuple[Tensor, Tensor, Tensor]]:
        """A ``step -> (inputs, targets, mask)`` source: inputs ``[tag_k, x]``, targets ``[x, y]``, mask on ``y``."""
        check_int("batch", batch, 1)

        def draw(s: int) -> tuple[Tensor, Tensor, Tensor]:
            g = _generator(s)
            ks = torch.randint(0, self.p, (batch,), generator=g)
            x, y = self.family.sample(ks, batch, 1, g)
            inputs = torch.cat([ks[:, None] + self.p, x], 1)
            targets = torch.cat([x, y], 1)
            mask = torch.tensor([[False, True]]).expand(batch, 2).contiguous()
            return inputs, targets, mask

        return seeded_batches(draw, seed)
