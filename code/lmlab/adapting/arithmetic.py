"""Arithmetic word problems with a chain of thought, in the homework's format, and their character tokenizer.

``Question: Sam has 3 pens and gets 4 more. How many now? Answer: 3 + 4 = 7. Final answer: 7\n``

* :class:`CharTokenizer`: characters to ids, with ``PAD``, ``BOS`` and ``EOS``.
* :class:`Problem`, :func:`make_problem`, :class:`ArithmeticTask`: seeded training and held-out questions (question
  texts held out; the same arithmetic facts may appear in both), encoded as ``(batch, n)`` LongTensors.
* :func:`parse_answer`: the number after ``"Final answer: "``, or ``None``.

Used by the ``arithmetic-cot`` recipe of :mod:`lmlab.pretrained` and by the soft-prompting chapter.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from lmlab.core.checks import check_int
from lmlab.core.runtime import draw_seed as _draw_seed
from lmlab.core.tasks import seeded_batches

__all__ = [
    "ArithmeticTask",
    "CharTokenizer",
    "FINAL",
    "NAMES",
    "OBJECTS",
    "OPS",
    "Problem",
    "TEMPLATES",
    "arithmetic_tokenizer",
    "make_problem",
    "parse_answer",
]


# --------------------------------------------------------------------------------------------------------------
# character tokenizer
# --------------------------------------------------------------------------------------------------------------


class CharTokenizer:
    """A character-level tokenizer with three special tokens.

    Ids: ``PAD = 0``, ``BOS = 1``, ``EOS = 2``, then one id per character of ``alphabet`` in order.

    Args:
        alphabet: the characters, each once (a string, or any sequence of one-character strings).

    Raises:
        ValueError: a character repeats, or an entry is not a single character.
    """

    PAD = 0
    BOS = 1
    EOS = 2
    N_SPECIAL = 3

    def __init__(self, alphabet: str | Sequence[str]) -> None:
        if not isinstance(alphabet, (str, Sequence)):
            raise TypeError(f"alphabet must be a str or a sequence of characters, got {type(alphabet).__name__}")
        chars = list(alphabet)
        for c in chars:
            if not isinstance(c, str) or len(c) != 1:
                raise ValueError(f"alphabet entries must be single characters, got {c!r}")
        if len(set(chars)) != len(chars):
            dup = sorted({c for c in chars if chars.count(c) > 1})
            raise ValueError(f"alphabet characters must be unique, repeated: {dup!r}")
        self.alphabet = "".join(chars)
        self._to_id = {c: i + self.N_SPECIAL for i, c in enumerate(chars)}

    @property
    def n_vocab(self) -> int:
        """Number of ids: 3 special tokens plus the alphabet."""
        return self.N_SPECIAL + len(self.alphabet)

    def encode(self, text: str, *, bos: bool = False, eos: bool = False) -> list[int]:
        """Text to ids (one per character), optionally with ``BOS`` in front and ``EOS`` at the end.

        Raises:
            ValueError: ``text`` has a character outside the alphabet (named in the message).
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        try:
            ids = [self._to_id[c] for c in text]
        except KeyError as e:
            raise ValueError(f"text has a character outside the alphabet: {e.args[0]!r}") from None
        return ([self.BOS] if bos else []) + ids + ([self.EOS] if eos else [])

    def decode(self, ids: Sequence[int] | Tensor, *, skip_special: bool = True) -> str:
        """Ids to text. Special tokens are dropped (``skip_special=True``) or written ``<pad>``, ``<bos>``, ``<eos>``.

        Raises:
            ValueError: an id is outside ``[0, n_vocab)``.
        """
        if isinstance(ids, Tensor):
            ids = ids.tolist()
        names = {self.PAD: "<pad>", self.BOS: "<bos>", self.EOS: "<eos>"}
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < self.n_vocab:
                raise ValueError(f"ids must be in [0, {self.n_vocab}), got {i}")
            if i < self.N_SPECIAL:
                if not skip_special:
                    out.append(names[i])
            else:
                out.append(self.alphabet[i - self.N_SPECIAL])
        return "".join(out)

    def pad_batch(self, seqs: Sequence[Sequence[int]], length: int | None = None) -> tuple[Tensor, Tensor]:
        """Right-pad id sequences with ``PAD`` into one batch.

        Args:
            seqs: lists of ids (at least one).
            length: the padded length (default: the longest sequence); must be >= every sequence's length.

        Returns:
            ``tokens``: LongTensor ``(batch, length)``; ``mask``: BoolTensor ``(batch, length)``, True on real ids.
        """
        if len(seqs) == 0:
            raise ValueError("seqs must hold at least one sequence")
        longest = max(len(s) for s in seqs)
        if length is None:
            length = longest
        check_int("length", length, longest)
        tokens = torch.full((len(seqs), length), self.PAD, dtype=torch.long)
        mask = torch.zeros((len(seqs), length), dtype=torch.bool)
        for i, s in enumerate(seqs):
            tokens[i, : len(s)] = torch.as_tensor(list(s), dtype=torch.long)
            mask[i, : len(s)] = True
        return tokens, mask


# --------------------------------------------------------------------------------------------------------------
# arithmetic word problems with a chain of thought
# --------------------------------------------------------------------------------------------------------------

# Names have three letters and objects four, so that within one template the numbers sit at fixed offsets: this
# keeps the copying part of the task easy enough for a model trained in seconds on a CPU.
NAMES: tuple[str, ...] = ("Sam", "Ann", "Max", "Eve", "Tom", "Liz", "Ben", "Kim")
OBJECTS: tuple[str, ...] = ("pens", "eggs", "cups", "hats", "toys", "keys")
OPS: tuple[str, ...] = ("add", "sub", "mul", "div")

# Question templates end with " Answer:"; the solution (the chain of thought) starts with a space and ends
# with "Final answer: {c}\n", the homework's format.
TEMPLATES: dict[str, tuple[str, str]] = {
    "add": (
        "Question: {name} has {a} {obj} and gets {b} more. How many now? Answer:",
        " {a} + {b} = {c}. Final answer: {c}\n",
    ),
    "sub": (
        "Question: {name} has {a} {obj} and gives {b} away. How many left? Answer:",
        " {a} - {b} = {c}. Final answer: {c}\n",
    ),
    "mul": (
        "Question: {name} has {a} bags of {b} {obj}. How many {obj}? Answer:",
        " {a} * {b} = {c}. Final answer: {c}\n",
    ),
    "div": (
        "Question: {name} and {f} friends share {a} {obj}. How many each? Answer:",
        " {f} + 1 = {b} people. {a} / {b} = {c}. Final answer: {c}\n",
    ),
}

FINAL = "Final answer: "


@dataclass(frozen=True)
class Problem:
    """One word problem: the numbers and the text.

    ``question`` ends with ``" Answer:"`` (what the model is prompted with); ``solution`` is the chain of thought
    that follows, ending ``"Final answer: {answer}\\n"``; ``text = question + solution``.
    For ``op="div"`` the question names ``b - 1`` friends, and the chain of thought first counts ``b`` people.
    """

    op: str
    a: int
    b: int
    answer: int
    name: str
    obj: str
    question: str = field(repr=False)
    solution: str = field(repr=False)

    @property
    def text(self) -> str:
        """The whole training text, question and solution."""
        return self.question + self.solution


def make_problem(op: str, a: int, b: int, name: str = "Sam", obj: str = "apples") -> Problem:
    """Build one problem. ``op``: ``"add"`` (a + b), ``"sub"`` (a - b, needs a >= b), ``"mul"`` (a * b) or
    ``"div"`` (a / b, needs b >= 2 dividing a; the question says ``b - 1`` friends share ``a`` objects).

    Raises:
        ValueError: unknown ``op``, negative numbers, ``a < b`` for ``sub``, or an inexact division.
    """
    if op not in TEMPLATES:
        raise ValueError(f"op must be one of {list(OPS)}, got {op!r}")
    check_int("a", a, 0)
    check_int("b", b, 0)
    if op == "sub" and a < b:
        raise ValueError(f"sub needs a >= b, got a={a}, b={b}")
    if op == "div" and (b < 2 or a % b != 0):
        raise ValueError(f"div needs b >= 2 dividing a, got a={a}, b={b}")
    c = {"add": a + b, "sub": a - b, "mul": a * b, "div": a // b if b else 0}[op]
    q, s = TEMPLATES[op]
    fmt = {"name": name, "obj": obj, "a": a, "b": b, "c": c, "f": b - 1}
    return Problem(op, a, b, c, name, obj, q.format(**fmt), s.format(**fmt))


def _number_pairs(op: str, max_operand: int, max_factor: int) -> list[tuple[int, int]]:
    """All (a, b) for ``op`` with the operand ranges of :class:`ArithmeticTask`."""
    m, f = max_operand, max_factor
    if op == "add":
        return [(a, b) for a in range(1, m + 1) for b in range(1, m + 1)]
    if op == "sub":
        return [(a, b) for a in range(2, m + 1) for b in range(1, a)]
    if op == "mul":
        return [(a, b) for a in range(2, f + 1) for b in range(2, f + 1)]
    return [(b * c, b) for b in range(2, f + 1) for c in range(1, f + 1)]  # div: a = b c, b people, c each


def arithmetic_tokenizer() -> CharTokenizer:
    """The character tokenizer of the arithmetic task: every character its templates, names and objects use."""
    chars: set[str] = set("0123456789")
    for q, s in TEMPLATES.values():
        chars |= set(re.sub(r"\{[a-z]+\}", "", q + s))
    for w in NAMES + OBJECTS:
        chars |= set(w)
    return CharTokenizer("".join(sorted(chars)))


class ArithmeticTask:
    """Arithmetic word problems with a chain of thought, in the homework's format, with a train/held-out split.

    Four templates (add, subtract, multiply, divide with exact results), e.g.::

        Question: Sam and 3 friends share 12 pens. How many each? Answer: 3 + 1 = 4 people. 12 / 4 = 3.
        Final answer: 3\n

    (one line in the data). The chain of thought restates the operation with the question's numbers, and for
    division first counts the people, as in the homework's example.

    Numbers (small on purpose, so that a model learns the task in seconds on a CPU): add uses operands
    1..``max_operand``; subtract ``a`` in 2..``max_operand`` minus ``b`` in 1..``a - 1``; multiply 2..``max_factor``
    times 2..``max_factor``; divide ``b * c`` objects among ``b`` in 2..``max_factor`` people, ``c`` in
    1..``max_factor`` each. With the defaults that is 87 number pairs, and 87 x 8 names x 6 objects = 4176 distinct
    questions.

    A question instance is the tuple (op, a, b, name, object). ``heldout`` holds ``n_heldout`` instances drawn at
    random (balanced over the operations), and ``train`` holds up to ``n_train`` of the other instances, so no
    held-out question text appears in training. The same numbers do appear in training with another name or
    object: held-out accuracy measures new questions, not new arithmetic facts.

    Args:
        seed: seed of the split.
        n_train: number of training problems (capped by the number of instances left).
        n_heldout: number of held-out problems (less than the number of instances).
        max_operand: largest operand of add and subtract, in [2, 99].
        max_factor: largest factor of multiply and divide, in [2, 9].
    """

    def __init__(
        self, seed: int = 0, *, n_train: int = 20000, n_heldout: int = 500, max_operand: int = 6, max_factor: int = 5
    ) -> None:
        check_int("seed", seed, 0)
        check_int("n_train", n_train, 1)
        check_int("n_heldout", n_heldout, 1)
        check_int("max_operand", max_operand, 2, 99)
        check_int("max_factor", max_factor, 2, 9)
        self.seed, self.max_operand, self.max_factor = seed, max_operand, max_factor
        self.tokenizer = arithmetic_tokenizer()
        instances = [
            (op, a, b, name, obj)
            for op in OPS
            for (a, b) in _number_pairs(op, max_operand, max_factor)
            for name in NAMES
            for obj in OBJECTS
        ]
        if n_heldout >= len(instances):
            raise ValueError(f"n_heldout must be < the number of instances ({len(instances)}), got {n_heldout}")
        rng = random.Random(_draw_seed(seed))
        # balance the operations: draw an op uniformly, then an instance of it
        by_op: dict[str, list[tuple]] = {op: [x for x in instances if x[0] == op] for op in OPS}
        for lst in by_op.values():
            rng.shuffle(lst)
        order: list[tuple] = []
        cursors = {op: 0 for op in OPS}
        while len(order) < len(instances):
            op = OPS[rng.randrange(len(OPS))]
            if cursors[op] < len(by_op[op]):
                order.append(by_op[op][cursors[op]])
                cursors[op] += 1
        self.heldout: list[Problem] = [make_problem(*x) for x in order[:n_heldout]]
        self.train: list[Problem] = [make_problem(*x) for x in order[n_heldout : n_heldout + n_train]]

    @property
    def fingerprint(self) -> str:
        """A hash of the templates, names and objects: editing them changes every cache key built on this task."""
        blob = json.dumps({"templates": TEMPLATES, "names": NAMES, "objects": OBJECTS}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @property
    def max_len(self) -> int:
        """Length in tokens of the longest problem (BOS + text) over train and held-out."""
        return 1 + max(len(p.text) for p in self.train + self.heldout)

    def encode(self, problems: Sequence[Problem], length: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """A training batch for next-token prediction with the loss on the chain of thought only.

        Each sequence is ``BOS + question + solution``, right-padded with ``PAD``.

        Returns:
            ``inputs`` LongTensor ``(batch, n)``, ``targets`` LongTensor ``(batch, n)`` (inputs shifted left by one)
            and ``mask`` BoolTensor ``(batch, n)``: True where the target is a character of the solution (the chain
            of thought, the answer and the final newline), False on the question and the padding.
        """
        tok = self.tokenizer
        seqs, starts = [], []
        for p in problems:
            q = tok.encode(p.question, bos=True)
            seqs.append(q + tok.encode(p.solution))
            starts.append(len(q))
        if length is not None:
            length = length + 1
        tokens, real = tok.pad_batch(seqs, length)
        inputs, targets = tokens[:, :-1], tokens[:, 1:]
        pos = torch.arange(targets.shape[1])
        # target j is token j + 1; solution tokens sit at index >= start
        mask = (pos[None, :] + 1 >= torch.tensor(starts)[:, None]) & real[:, 1:]
        return inputs.contiguous(), targets.contiguous(), mask

    def batches(self, batch: int, seed: int = 0) -> Callable[[int], tuple[Tensor, Tensor, Tensor]]:
        """A callable ``step -> (inputs, targets, mask)`` for :func:`lmlab.train.train`.

        Each call draws ``batch`` training problems (seeded with ``(seed, step)``): an operation uniformly, then a
        problem of that operation, so the four operations are equally frequent although addition has the most
        instances. Shapes as in :meth:`encode`, padded to :attr:`max_len` ``- 1``.
        """
        check_int("batch", batch, 1)
        n = self.max_len - 1
        by_op = [[p for p in self.train if p.op == op] for op in OPS]
        by_op = [lst for lst in by_op if lst]

        def draw(s: int) -> tuple[Tensor, Tensor, Tensor]:
            rng = random.Random(_draw_seed(s))
            picks = []
            for _ in range(batch):
                lst = by_op[rng.randrange(len(by_op))]
                picks.append(lst[rng.randrange(len(lst))])
            return self.encode(picks, n)

        return seeded_batches(draw, seed)


_FINAL_RE = re.compile(re.escape(FINAL) + r"(.*?)\n", re.DOTALL)


def parse_answer(text: object) -> int | None:
    """Read the answer between ``"Final answer: "`` and the next ``"\\n"``, as the homework's parser does.

    Returns the integer there (optionally signed, surrounding spaces allowed), or ``None`` when the text is not a
    string, the phrase or the newline is missing, or what lies between is not an integer. Never raises.
    """
    try:
        if not isinstance(text, str):
            return None
        m = _FINAL_RE.search(text)
        if m is None:
            return None
        body = m.group(1).strip()
        if not re.fullmatch(r"[+-]?\d{1,18}", body):
            return None
        return int(body)
    except Exception:  # noqa: BLE001 - the contract is "never raises"
        return None
