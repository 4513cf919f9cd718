"""Instant feedback for the homework's labs: ``lmlab.check.<function>(your_function)``.

The student editions of the lab chapters (``book/student/<chapter>.ipynb`` on Colab) leave the functions the
homework asks for as stubs; the cell after each stub calls its check. A check runs your function and the book's
own (the function the chapter uses) on the same fixed and random cases, prints one line when all agree, and
otherwise raises :class:`CheckFailed` naming the case, what went in, what was expected and what came back, and
the first entry that differs. It never shows the reference's code.

The checks, by lab:

- the interpretability lab (homework problem 3): ``attention_head``, ``embed``, ``previous_token_head``,
  ``copying_head``, ``induction_logits`` (:mod:`lmlab.check.interpretability`);
- pruning (homework problem 7, MIT 6.S965 lab 1): see :mod:`lmlab.check.pruning`;
- quantization (problem 7, lab 2): see :mod:`lmlab.check.quantization`.
"""

from __future__ import annotations

from lmlab.check._core import Case, CheckFailed, describe, difference, run_check
from lmlab.check.interpretability import attention_head, copying_head, embed, induction_logits, previous_token_head

__all__ = [
    "Case",
    "CheckFailed",
    "attention_head",
    "copying_head",
    "describe",
    "difference",
    "embed",
    "induction_logits",
    "previous_token_head",
    "run_check",
]
