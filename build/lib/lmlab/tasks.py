"""Deterministic synthetic data for the book's small models.

Every sampler takes an explicit ``torch.Generator`` (or a ``seed``), so the same seed gives the same data on every
machine. Nothing is downloaded.

Four task families live here:

* :class:`BigramLanguage`: a Markov chain over ``n_vocab`` tokens with a known transition matrix ``P``
  (``P[a, b]`` = probability that token ``b`` follows token ``a``). The zero-layer model learns it.
* :func:`repeated_sequences`: ``BOS + r + r`` with ``r`` a random sequence of distinct tokens (induction heads).
* Arithmetic word problems with a chain of thought in the homework's format (:class:`ArithmeticTask`,
  :class:`CharTokenizer`, :func:`parse_answer`).
* :class:`ModularAddition`: the family of tasks "add ``k`` mod ``p``" with training and held-out members, for
  meta-learning and soft prompts.

Tensors follow the PyTorch convention, one row per token: a batch of token ids is ``(batch, n)``. The book's
one-hot matrix ``T`` (``n_vocab x n_context``, columns are tokens) is the transpose of one such row, one-hot encoded.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

__all__ = [
    "ArithmeticTask",
    "BigramLanguage",
    "CharTokenizer",
    "ModularAddition",
    "Problem",
    "arithmetic_tokenizer",
    "make_problem",
    "parse_answer",
    "repeated_sequences",
]


# --------------------------------------------------------------------------------------------------------------
# small argument checks
# --------------------------------------------------------------------------------------------------------------


def _check_int(name: str, value: object, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < lo or (hi is not None and value > hi):
        allowed = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"{name} must be {allowed}, got {value}")
    return value


def _check_generator(generator: torch.Generator | None) -> torch.Generator:
    if generator is None:
        raise TypeError("generator must be a torch.Generator (e.g. torch.Generator().manual_seed(0)), got None")
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    if generator.device.type != "cpu":
        raise ValueError("generator must live on the CPU (data is generated on the CPU, then moved)")
    return generator


# --------------------------------------------------------------------------------------------------------------
# bigram language
# --------------------------------------------------------------------------------------------------------------


class BigramLanguage:
    """A Markov chain over ``n_vocab`` tokens with a known transition matrix.

    ``P[a, b]`` is the probability that token ``b`` follows token ``a`` (rows sum to one). Each row is a draw from
    a symmetric Dirichlet distribution with a small ``concentration`` (so each token has a few likely successors),
    mixed with the uniform distribution by ``smoothing`` (so every transition has probability at least
    ``smoothing / n_vocab`` and its log-probability is finite and learnable)::

        P[a, :] = (1 - smoothing) * Dirichlet(concentration, ..., concentration) + smoothing / n_vocab

    Sequences start from the stationary distribution ``pi`` (``pi P = pi``), so every position is distributed alike.

    Orientation, in the book's notation: the zero-layer model computes logits ``L = W_U W_E T`` with ``T`` the
    one-hot tokens as columns (``n_vocab x n_context``). Column ``a`` of the ``n_vocab x n_vocab`` matrix
    ``W_U W_E`` holds the logits for the token after ``a``, so a trained model has
    ``(W_U W_E)[:, a] ~ log P[a, :] + c_a``: the transpose of ``log P``, up to one constant per column (softmax
    ignores constants). :meth:`log_probs` returns ``log P`` (rows = current token); compare its transpose.

    Args:
        n_vocab: number of tokens, at least 2.
        seed: seed of the transition matrix (a non-negative int).
        concentration: Dirichlet concentration, > 0; small values give peaked rows.
        smoothing: weight of the uniform mixture, in [0, 1).

    Attributes:
        P: the transition matrix, float64 tensor ``(n_vocab, n_vocab)``.
    """

    def __init__(self, n_vocab: int, seed: int = 0, *, concentration: float = 0.2, smoothing: float = 0.05) -> None:
        self.n_vocab = _check_int("n_vocab", n_vocab, 2)
        self.seed = _check_int("seed", seed, 0)
        if not (isinstance(concentration, (int, float)) and concentration > 0 and math.isfinite(concentration)):
            raise ValueError(f"concentration must be a finite number > 0, got {concentration!r}")
        if not (isinstance(smoothing, (int, float)) and 0 <= smoothing < 1):
            raise ValueError(f"smoothing must be in [0, 1), got {smoothing!r}")
        self.concentration = float(concentration)
        self.smoothing = float(smoothing)
        g = torch.Generator().manual_seed(seed)
        # Dirichlet via normalised Gamma draws; torch's _standard_gamma takes no generator, so use the
        # Marsaglia-Tsang trick on uniform/normal draws from our generator for full determinism.
        gam = _gamma(torch.full((n_vocab, n_vocab), self.concentration, dtype=torch.float64), g)
        rows = gam / gam.sum(dim=1, keepdim=True)
        self.P: Tensor = (1.0 - self.smoothing) * rows + self.smoothing / n_vocab
        self.P = self.P / self.P.sum(dim=1, keepdim=True)

    def log_probs(self) -> Tensor:
        """``log P``: float64 ``(n_vocab, n_vocab)``, row ``a`` = log-probabilities of the token after ``a``."""
        return self.P.log()

    def stationary(self) -> Tensor:
        """The stationary distribution ``pi`` (float64 ``(n_vocab,)``), the solution of ``pi P = pi``, sum 1."""
        evals, evecs = torch.linalg.eig(self.P.T)
        i = int(torch.argmin((evals - 1).abs()))
        pi = evecs[:, i].real
        pi = pi / pi.sum()
        return pi.clamp_min(0) / pi.clamp_min(0).sum()

    def entropy(self) -> float:
        """The true next-token entropy ``H = sum_a pi_a H(P[a, :])`` in nats: the lowest achievable loss."""
        row_h = -(self.P * self.P.log()).sum(dim=1)
        return float((self.stationary() * row_h).sum())

    def sample(self, batch: int, n: int, generator: torch.Generator) -> Tensor:
        """Sample ``batch`` sequences of ``n`` tokens.

        Returns:
            LongTensor ``(batch, n)`` on the CPU: the first token from ``pi``, each next one from ``P[previous]``.
        """
        _check_int("batch", batch, 1)
        _check_int("n", n, 1)
        g = _check_generator(generator)
        u = torch.rand(batch, n, generator=g, dtype=torch.float64)
        cdf = self.P.cumsum(dim=1)
        cdf[:, -1] = 1.0 + 1e-12
        out = torch.empty(batch, n, dtype=torch.long)
        pi_cdf = self.stationary().cumsum(0)
        pi_cdf[-1] = 1.0 + 1e-12
        out[:, 0] = torch.searchsorted(pi_cdf, u[:, :1].contiguous()).squeeze(1)
        for t in range(1, n):
            rows = cdf[out[:, t - 1]]
            out[:, t] = torch.searchsorted(rows, u[:, t : t + 1].contiguous()).squeeze(1)
        return out.clamp_(max=self.n_vocab - 1)

    def batches(self, batch: int, n: int, seed: int = 0) -> Callable[[int], tuple[Tensor, Tensor]]:
        """A callable ``step -> (inputs, targets)`` for :func:`lmlab.train.train`.

        Each call samples ``(batch, n + 1)`` tokens from a generator seeded with ``(seed, step)`` and returns the
        inputs ``tokens[:, :-1]`` and the next-token targets ``tokens[:, 1:]``, both ``(batch, n)``.
        """
        _check_int("batch", batch, 1)
        _check_int("n", n, 1)
        _check_int("seed", seed, 0)

        def make(step: int) -> tuple[Tensor, Tensor]:
            g = torch.Generator().manual_seed(seed * 1_000_003 + step)
            toks = self.sample(batch, n + 1, g)
            return toks[:, :-1], toks[:, 1:]

        return make


def _gamma(alpha: Tensor, g: torch.Generator) -> Tensor:
    """Gamma(alpha, 1) draws (float64, same shape as alpha) from generator ``g`` (Marsaglia and Tsang, 2000)."""
    boost = alpha < 1
    a = torch.where(boost, alpha + 1, alpha)
    d = a - 1.0 / 3.0
    c = 1.0 / torch.sqrt(9.0 * d)
    out = torch.zeros_like(alpha)
    todo = torch.ones_like(alpha, dtype=torch.bool)
    while bool(todo.any()):
        x = torch.randn(alpha.shape, generator=g, dtype=torch.float64)
        u = torch.rand(alpha.shape, generator=g, dtype=torch.float64)
        v = (1 + c * x) ** 3
        ok = (v > 0) & (torch.log(u.clamp_min(1e-300)) < 0.5 * x**2 + d - d * v + d * torch.log(v.clamp_min(1e-300)))
        take = todo & ok
        out = torch.where(take, d * v, out)
        todo = todo & ~ok
    if bool(boost.any()):
        u = torch.rand(alpha.shape, generator=g, dtype=torch.float64).clamp_min(1e-300)
        out = torch.where(boost, out * u ** (1.0 / alpha), out)
    return out.clamp_min(1e-300)


# --------------------------------------------------------------------------------------------------------------
# repeated sequences (induction heads)
# --------------------------------------------------------------------------------------------------------------


def repeated_sequences(batch: int, seq_len: int, n_vocab: int, generator: torch.Generator, bos: int = 0) -> Tensor:
    """``BOS + r + r``: a random sequence of distinct tokens, shown twice.

    ``r`` has ``seq_len`` tokens drawn without replacement from ``{0, ..., n_vocab - 1}`` minus ``bos``, so no token
    repeats inside one copy and the only way to predict the second copy is to look back at the first (induction).

    Args:
        batch: number of sequences, >= 1.
        seq_len: length of ``r``, in [1, n_vocab - 1].
        n_vocab: vocabulary size, >= 2.
        generator: a CPU ``torch.Generator``.
        bos: the beginning-of-sequence token, in [0, n_vocab - 1] (default 0).

    Returns:
        LongTensor ``(batch, 1 + 2 * seq_len)``: column 0 is ``bos``, columns ``1..seq_len`` are ``r`` and columns
        ``seq_len + 1 .. 2 seq_len`` repeat them.

    Raises:
        ValueError: ``seq_len > n_vocab - 1`` (not enough distinct tokens) or another argument out of range.
    """
    _check_int("batch", batch, 1)
    _check_int("n_vocab", n_vocab, 2)
    _check_int("bos", bos, 0, n_vocab - 1)
    _check_int("seq_len", seq_len, 1)
    if seq_len > n_vocab - 1:
        raise ValueError(
            f"seq_len must be in [1, n_vocab - 1] = [1, {n_vocab - 1}] (tokens are drawn without replacement), "
            f"got {seq_len}"
        )
    g = _check_generator(generator)
    choices = torch.tensor([t for t in range(n_vocab) if t != bos], dtype=torch.long)
    order = torch.rand(batch, n_vocab - 1, generator=g).argsort(dim=1)[:, :seq_len]
    r = choices[order]
    b = torch.full((batch, 1), bos, dtype=torch.long)
    return torch.cat([b, r, r], dim=1)


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
        _check_int("length", length, longest)
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
_TEMPLATES: dict[str, tuple[str, str]] = {
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
    if op not in _TEMPLATES:
        raise ValueError(f"op must be one of {list(OPS)}, got {op!r}")
    _check_int("a", a, 0)
    _check_int("b", b, 0)
    if op == "sub" and a < b:
        raise ValueError(f"sub needs a >= b, got a={a}, b={b}")
    if op == "div" and (b < 2 or a % b != 0):
        raise ValueError(f"div needs b >= 2 dividing a, got a={a}, b={b}")
    c = {"add": a + b, "sub": a - b, "mul": a * b, "div": a // b if b else 0}[op]
    q, s = _TEMPLATES[op]
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
    for q, s in _TEMPLATES.values():
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
        _check_int("seed", seed, 0)
        _check_int("n_train", n_train, 1)
        _check_int("n_heldout", n_heldout, 1)
        _check_int("max_operand", max_operand, 2, 99)
        _check_int("max_factor", max_factor, 2, 9)
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
        rng = random.Random(seed)
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
        _check_int("batch", batch, 1)
        _check_int("seed", seed, 0)
        n = self.max_len - 1
        by_op = [[p for p in self.train if p.op == op] for op in OPS]
        by_op = [lst for lst in by_op if lst]

        def make(step: int) -> tuple[Tensor, Tensor, Tensor]:
            rng = random.Random(seed * 1_000_003 + step)
            picks = []
            for _ in range(batch):
                lst = by_op[rng.randrange(len(by_op))]
                picks.append(lst[rng.randrange(len(lst))])
            return self.encode(picks, n)

        return make


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


# --------------------------------------------------------------------------------------------------------------
# a task family for meta-learning: add k mod p
# --------------------------------------------------------------------------------------------------------------


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
        self.p = _check_int("p", p, 3)
        _check_int("n_heldout", n_heldout, 1, p - 1)
        _check_int("seed", seed, 0)
        order = torch.randperm(p, generator=torch.Generator().manual_seed(seed)).tolist()
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
            ks = torch.full((batch,), _check_int("k", k, 0, self.p - 1), dtype=torch.long)
        if bool(((ks < 0) | (ks >= self.p)).any()):
            raise ValueError(f"k must be in [0, {self.p - 1}]")
        return ks

    def sample(self, k: int | Tensor, batch: int, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """``n`` input/target pairs per row for task ``k`` (an int, or a LongTensor ``(batch,)``, one per row).

        Returns:
            ``x``: LongTensor ``(batch, n)`` uniform residues; ``y = (x + k) mod p``, same shape.
        """
        _check_int("batch", batch, 1)
        _check_int("n", n, 1)
        g = _check_generator(generator)
        ks = self._ks(k, batch)
        x = torch.randint(0, self.p, (batch, n), generator=g)
        return x, (x + ks[:, None]) % self.p

    def sample_tasks(self, batch: int, split: str, generator: torch.Generator) -> Tensor:
        """``batch`` task ids drawn uniformly from ``split`` (``"train"`` or ``"heldout"``): LongTensor ``(batch,)``."""
        _check_int("batch", batch, 1)
        g = _check_generator(generator)
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
        _check_int("n_pairs", n_pairs, 1)
        x, y = self.sample(k, batch, n_pairs, generator)
        seq = torch.stack([x, y], dim=2).reshape(batch, 2 * n_pairs)
        inputs, targets = seq[:, :-1], seq[:, 1:]
        mask = torch.zeros_like(targets, dtype=torch.bool)
        mask[:, 0::2] = True  # target index 2i is y_i
        return inputs.contiguous(), targets.contiguous(), mask
