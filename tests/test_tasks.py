"""lmlab.tasks: the synthetic data is what it claims to be, and repeats exactly from a seed."""

from __future__ import annotations

import math

import lmlab
import numpy as np
import pytest
import torch
from lmlab import arithmetic, tasks
from lmlab.adapting.arithmetic import ArithmeticTask, CharTokenizer, make_problem, parse_answer
from lmlab.adapting.modular import ModularAddition
from lmlab.core.tasks import BigramLanguage, repeated_sequences
from scipy import stats


def gen(seed: int = 0) -> torch.Generator:
    return lmlab.generator(seed)


# ---------------------------------------------------------------------------------------------- bigram language


def test_bigram_rows_are_distributions_and_stationary_is_fixed_point() -> None:
    lang = BigramLanguage(16, seed=3)
    P = lang.P
    assert P.shape == (16, 16)
    assert torch.allclose(P.sum(1), torch.ones(16, dtype=P.dtype), atol=1e-12)
    assert bool((P >= lang.smoothing / 16 - 1e-15).all())
    pi = lang.stationary()
    assert torch.allclose(pi @ P, pi, atol=1e-10)
    assert math.isclose(float(pi.sum()), 1.0, abs_tol=1e-12)
    # the entropy is the pi-weighted row entropy, and below the uniform entropy (rows are peaked)
    ref = sum(float(pi[a]) * stats.entropy(P[a].numpy()) for a in range(16))
    assert math.isclose(lang.entropy(), ref, rel_tol=1e-9)
    assert lang.entropy() < math.log(16) - 0.5
    assert torch.allclose(lang.log_probs().exp(), P)


def test_bigram_empirical_transitions_match_P() -> None:
    lang = BigramLanguage(12, seed=1)
    toks = lang.sample(400, 250, gen(7))
    assert toks.dtype == torch.long and toks.shape == (400, 250)
    assert int(toks.min()) >= 0 and int(toks.max()) < 12
    prev, nxt = toks[:, :-1].reshape(-1), toks[:, 1:].reshape(-1)
    counts = torch.zeros(12, 12, dtype=torch.float64)
    counts.index_put_((prev, nxt), torch.ones_like(prev, dtype=torch.float64), accumulate=True)
    # Pearson chi-square test per row: counts[a] ~ Multinomial(n_a, P[a]); a true sampler fails a row with
    # probability 1e-6, so a failure here is a real bug, not bad luck.
    for a in range(12):
        n_a = counts[a].sum()
        expected = n_a * lang.P[a]
        assert float(expected.min()) > 5  # the chi-square approximation is valid
        chi2 = float(((counts[a] - expected) ** 2 / expected).sum())
        assert stats.chi2.sf(chi2, df=11) > 1e-6, (a, chi2)
    # the first tokens follow the stationary distribution
    first = torch.bincount(toks[:, 0], minlength=12).double()
    exp_first = 400 * lang.stationary()
    assert float(((first - exp_first).abs() / exp_first.sqrt().clamp_min(1)).max()) < 5


def test_bigram_is_deterministic_and_seeded() -> None:
    a, b, c = BigramLanguage(10, seed=5), BigramLanguage(10, seed=5), BigramLanguage(10, seed=6)
    assert torch.equal(a.P, b.P) and not torch.equal(a.P, c.P)
    assert torch.equal(a.sample(4, 30, gen(1)), b.sample(4, 30, gen(1)))
    assert not torch.equal(a.sample(4, 30, gen(1)), a.sample(4, 30, gen(2)))
    make = a.batches(8, 16, seed=2)
    x, y = make(3)
    assert x.shape == y.shape == (8, 16)
    assert torch.equal(x[:, 1:], y[:, :-1])
    assert torch.equal(make(3)[0], x)


def test_bigram_bad_arguments() -> None:
    with pytest.raises(ValueError, match="n_vocab"):
        BigramLanguage(1)
    with pytest.raises(ValueError, match="concentration"):
        BigramLanguage(4, concentration=0)
    with pytest.raises(ValueError, match="smoothing"):
        BigramLanguage(4, smoothing=1.0)
    with pytest.raises(TypeError, match="generator"):
        BigramLanguage(4).sample(2, 3, None)  # type: ignore[arg-type]


def test_bigram_excess_loss_is_zero_only_for_the_truth() -> None:
    lang = BigramLanguage(6, seed=2)
    truth = lang.log_probs().T  # column a: log P[a, :]
    assert abs(lang.excess_loss(truth + torch.arange(6.0, dtype=truth.dtype))) < 1e-12  # constants per column
    uniform = torch.zeros(6, 6, dtype=truth.dtype)
    assert lang.excess_loss(uniform) == pytest.approx(math.log(6) - lang.entropy())
    assert lang.excess_loss(lang.log_probs()) > 0.01  # the transpose is a different model


# ---------------------------------------------------------------------------------------------- repeated sequences


def test_repeated_sequences_structure() -> None:
    seq_len, n_vocab = 10, 16
    toks = repeated_sequences(64, seq_len, n_vocab, gen(0), bos=0)
    assert toks.shape == (64, 1 + 2 * seq_len) and toks.dtype == torch.long
    assert bool((toks[:, 0] == 0).all())
    first, second = toks[:, 1 : 1 + seq_len], toks[:, 1 + seq_len :]
    assert torch.equal(first, second)
    for row in first:
        assert len(set(row.tolist())) == seq_len  # no repeats inside one copy
    assert int(first.min()) >= 1 and int(first.max()) <= n_vocab - 1  # BOS never inside r


def test_repeated_sequences_are_uniform_over_tokens() -> None:
    toks = repeated_sequences(2000, 4, 9, gen(3), bos=4)
    counts = torch.bincount(toks[:, 1:5].reshape(-1), minlength=9).double()
    assert counts[4] == 0
    others = torch.cat([counts[:4], counts[5:]]).numpy()
    assert stats.chisquare(others).pvalue > 1e-6


def test_repeated_sequences_determinism_and_errors() -> None:
    assert torch.equal(repeated_sequences(3, 5, 8, gen(1)), repeated_sequences(3, 5, 8, gen(1)))
    assert not torch.equal(repeated_sequences(3, 5, 8, gen(1)), repeated_sequences(3, 5, 8, gen(2)))
    repeated_sequences(2, 7, 8, gen(0))  # the largest allowed length
    with pytest.raises(ValueError, match="seq_len"):
        repeated_sequences(2, 8, 8, gen(0))
    with pytest.raises(ValueError, match="bos"):
        repeated_sequences(2, 3, 8, gen(0), bos=8)
    # an int seed is a fresh generator with that seed; the global generator is untouched
    state = torch.get_rng_state()
    assert torch.equal(repeated_sequences(3, 5, 8, 1), repeated_sequences(3, 5, 8, gen(1)))
    assert torch.equal(torch.get_rng_state(), state)


def test_repeated_sequences_without_bos_and_with_replacement() -> None:
    toks = repeated_sequences(500, 6, 5, gen(0), bos=None, distinct=False)
    assert toks.shape == (500, 12) and torch.equal(toks[:, :6], toks[:, 6:])
    assert set(toks.unique().tolist()) == set(range(5))  # every token can occur, none is reserved for BOS
    assert any(len(set(row[:6].tolist())) < 6 for row in toks)  # drawn with replacement: repeats inside r
    assert int(repeated_sequences(4, 5, 5, gen(0), bos=None)[:, :5].sort(1).values.eq(torch.arange(5)).all())


def test_seeded_batches_give_a_fresh_repeatable_batch_per_step() -> None:
    source = tasks.seeded_batches(lambda s: repeated_sequences(2, 3, 9, s), seed=4)
    assert torch.equal(source(7), source(7))
    assert not torch.equal(source(7), source(8))
    other = tasks.seeded_batches(lambda s: repeated_sequences(2, 3, 9, s), seed=5)
    assert not torch.equal(source(7), other(7))


def test_repeated_sequences_task_varies_the_length_per_step() -> None:
    task = tasks.RepeatedSequences(n_vocab=20, min_len=3, max_len=8, eval_len=6)
    source = task.batches(batch=4, seed=0)
    lengths = {source(step)[0].shape[1] for step in range(40)}
    assert lengths == {2 * T for T in range(3, 9)}  # inputs are BOS + r + r without the last token
    x, y = source(3)
    assert torch.equal(x[:, 1:], y[:, :-1]) and bool((x[:, 0] == 0).all())
    with pytest.raises(ValueError, match="min_len"):
        tasks.RepeatedSequences(n_vocab=20, min_len=9, max_len=8)


# ---------------------------------------------------------------------------------------------- tokenizer


def test_char_tokenizer_round_trip_and_specials() -> None:
    tok = arithmetic.arithmetic_tokenizer()
    task = ArithmeticTask(0, n_train=200, n_heldout=50)
    for p in task.train[:50] + task.heldout[:20]:
        ids = tok.encode(p.text, bos=True, eos=True)
        assert ids[0] == CharTokenizer.BOS and ids[-1] == CharTokenizer.EOS
        assert len(ids) == len(p.text) + 2
        assert min(ids[1:-1]) >= CharTokenizer.N_SPECIAL
        assert tok.decode(ids) == p.text
    assert tok.decode([tok.BOS, *tok.encode("ab"), tok.PAD], skip_special=False) == "<bos>ab<pad>"
    with pytest.raises(ValueError, match="outside the alphabet"):
        tok.encode("€")
    with pytest.raises(ValueError, match="ids must be in"):
        tok.decode([tok.n_vocab])
    with pytest.raises(ValueError, match="unique"):
        CharTokenizer("abca")


def test_pad_batch() -> None:
    tok = CharTokenizer("abc")
    seqs = [tok.encode("abc"), tok.encode("a"), tok.encode("")]
    tokens, mask = tok.pad_batch(seqs)
    assert tokens.shape == mask.shape == (3, 3)
    assert mask.sum(1).tolist() == [3, 1, 0]
    assert bool((tokens[~mask] == tok.PAD).all())
    assert [tok.decode(t[m]) for t, m in zip(tokens, mask)] == ["abc", "a", ""]
    assert tok.pad_batch(seqs, length=5)[0].shape == (3, 5)
    with pytest.raises(ValueError, match="length"):
        tok.pad_batch(seqs, length=2)


# ---------------------------------------------------------------------------------------------- arithmetic


@pytest.mark.parametrize(
    ("op", "a", "b", "answer"), [("add", 7, 5, 12), ("sub", 9, 4, 5), ("mul", 3, 4, 12), ("div", 12, 4, 3)]
)
def test_problems_are_correct_and_in_homework_format(op: str, a: int, b: int, answer: int) -> None:
    p = make_problem(op, a, b)
    assert p.answer == answer
    assert p.question.startswith("Question: ") and p.question.endswith(" Answer:")
    assert p.solution.endswith(f"Final answer: {answer}\n")
    assert parse_answer(p.text) == answer
    if op == "div":  # the homework's two-step chain: count the people, then divide
        assert f"{b - 1} + 1 = {b}" in p.solution and f"{a} / {b} = {answer}" in p.solution


def test_every_generated_problem_is_arithmetically_right() -> None:
    task = ArithmeticTask(1, n_train=3000, n_heldout=300)
    fn = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b, "div": lambda a, b: a / b}
    for p in task.train + task.heldout:
        assert p.answer == fn[p.op](p.a, p.b)
        assert parse_answer(p.text) == p.answer
        assert p.answer >= 0


def test_heldout_questions_are_not_in_training_and_split_is_seeded() -> None:
    task = ArithmeticTask(0, n_train=5000, n_heldout=400)
    train_q = {p.question for p in task.train}
    assert len({p.question for p in task.heldout}) == 400
    assert not train_q & {p.question for p in task.heldout}
    assert {p.op for p in task.heldout} == {"add", "sub", "mul", "div"}
    again = ArithmeticTask(0, n_train=5000, n_heldout=400)
    assert [p.text for p in again.heldout] == [p.text for p in task.heldout]
    other = ArithmeticTask(1, n_train=5000, n_heldout=400)
    assert [p.text for p in other.heldout] != [p.text for p in task.heldout]


def test_arithmetic_batch_mask_covers_exactly_the_solution() -> None:
    task = ArithmeticTask(0, n_train=100, n_heldout=10)
    probs = task.train[:5]
    inputs, targets, mask = task.encode(probs)
    tok = task.tokenizer
    assert inputs.shape == targets.shape == mask.shape
    for i, p in enumerate(probs):
        # the masked targets spell the solution: chain of thought, answer and the final newline
        assert tok.decode(targets[i][mask[i]]) == p.solution
        # the inputs spell BOS + question + solution minus its last character
        n_real = 1 + len(p.text) - 1
        assert tok.decode(inputs[i, :n_real], skip_special=False) == "<bos>" + p.text[:-1]
    x, y, m = task.batches(8, seed=1)(0)
    assert x.shape == (8, task.max_len - 1) and m.dtype == torch.bool


@pytest.mark.parametrize(
    "text",
    [
        None,
        42,
        b"Final answer: 3\n",
        "",
        "Final answer: 3",  # no newline
        "Final answer: \n",
        "Final answer: three\n",
        "Final answer: 3.5\n",
        "Final answer: 3 4\n",
        "final answer: 3\n",  # the phrase is case-sensitive, as in the homework
        "Answer: 3\n",
        "Final answer:3\n",
        "Final answer: " + "9" * 40 + "\n",
        "\x00\udcff Final answer: \udcff\n",
    ],
)
def test_parse_answer_returns_none_on_malformed_text(text: object) -> None:
    assert parse_answer(text) is None


def test_parse_answer_reads_first_final_answer() -> None:
    assert parse_answer("... 12 / 4 = 3. Final answer: 3\n") == 3
    assert parse_answer("Final answer:  -7 \nFinal answer: 8\n") == -7
    assert parse_answer("junk Final answer: 12\nmore junk") == 12


def test_make_problem_errors() -> None:
    with pytest.raises(ValueError, match="op"):
        make_problem("pow", 2, 3)
    with pytest.raises(ValueError, match="a >= b"):
        make_problem("sub", 2, 3)
    with pytest.raises(ValueError, match="div"):
        make_problem("div", 7, 2)


# ---------------------------------------------------------------------------------------------- add k mod p


def test_modular_addition_family() -> None:
    fam = ModularAddition(p=13, n_heldout=3, seed=0)
    assert len(fam.heldout_tasks) == 3 and len(fam.train_tasks) == 10
    assert sorted(fam.train_tasks + fam.heldout_tasks) == list(range(13))
    x, y = fam.sample(5, 4, 20, gen(0))
    assert x.shape == y.shape == (4, 20)
    assert torch.equal(y, (x + 5) % 13)
    ks = fam.sample_tasks(6, "heldout", gen(1))
    assert set(ks.tolist()) <= set(fam.heldout_tasks)
    x, y = fam.sample(ks, 6, 7, gen(2))
    assert torch.equal(y, (x + ks[:, None]) % 13)
    inputs, targets, mask = fam.in_context(2, 3, 4, gen(3))
    assert inputs.shape == targets.shape == mask.shape == (3, 7)
    # targets at masked positions are y_i = x_i + 2, and the input right before them is x_i
    assert torch.equal(targets[mask].view(3, 4), (inputs[:, 0::2] + 2) % 13)
    assert ModularAddition(13, 3, seed=0).heldout_tasks == fam.heldout_tasks
    with pytest.raises(ValueError, match="split"):
        fam.sample_tasks(2, "test", gen(0))
    with pytest.raises(ValueError, match="k"):
        fam.sample(13, 2, 2, gen(0))


def test_bigram_sampler_is_fast_enough_for_training() -> None:
    # a sanity check of shape bookkeeping on a big request (not a timing test)
    toks = BigramLanguage(8, seed=0).sample(1, 1000, gen(0))
    assert np.unique(toks.numpy()).size == 8


@pytest.mark.parametrize(
    "make",
    [
        lambda: BigramLanguage(4),
        lambda: tasks.RepeatedSequences(8, min_len=2, max_len=3, eval_len=3),
        lambda: ArithmeticTask(0, n_train=4, n_heldout=2),
        lambda: lmlab.prompt_data.StyledArithmetic(0, n_train=4, n_heldout=2),
        lambda: lmlab.prompt_data.ModularTagged(5, 2),
    ],
    ids=["BigramLanguage", "RepeatedSequences", "ArithmeticTask", "StyledArithmetic", "ModularTagged"],
)
def test_every_task_class_is_a_batch_source(make) -> None:
    """Every task class keeps the shared contract (tasks.BatchSource): batches(batch, ..., seed) -> step -> tensors
    whose first is (batch, n) token ids, the same batch for the same step."""
    task = make()
    assert isinstance(task, tasks.BatchSource)
    extra = (5,) if isinstance(task, BigramLanguage) else ()  # the bigram task also takes the sequence length
    source = task.batches(3, *extra, seed=1)
    batch = source(0)
    assert isinstance(batch, tuple) and all(isinstance(t, torch.Tensor) for t in batch)
    assert batch[0].shape[0] == 3 and batch[0].dim() == 2
    assert all(torch.equal(a, b) for a, b in zip(batch, source(0)))


def test_task_family_without_batches_is_not_a_batch_source() -> None:
    """ModularAddition is a family of tasks sampled pair by pair (meta-learning), not a training source."""
    assert not isinstance(ModularAddition(5, 2), tasks.BatchSource)


def test_batch_source_inputs_are_checked_before_any_work() -> None:
    with pytest.raises(TypeError, match="draw"):
        tasks.seeded_batches(3, 0)
    with pytest.raises(ValueError, match="tokens"):
        tasks.next_token_pairs(torch.zeros(2, 3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="max_period"):
        tasks.periodic_batches(8, 8, max_period=20)
    with pytest.raises(TypeError, match="smoothing"):
        BigramLanguage(4, smoothing="a")
    with pytest.raises(ValueError, match="smoothing"):
        BigramLanguage(4, smoothing=1.0)
