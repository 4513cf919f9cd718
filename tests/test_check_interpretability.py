"""The interpretability lab (homework Problem 3): lmlab.lab_induction and its checks, lmlab.check.interpretability.

Each check passes the book's function and an independent one written here (rows as tokens inside, transposed
back), and stops plausible mistakes at a named case. The lab's functions are tested against PyTorch's attention,
lmlab.induction.single_head, and the induction property on every sequence of the lab.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import lmlab
import pytest
import torch
import torch.nn.functional as F
from lmlab import lab_induction as lab
from lmlab.check import CheckFailed
from lmlab.check import interpretability as check
from lmlab.inside.circuits import circuit_attention
from lmlab.inside.induction import single_head

EVERY = [seq for n in range(1, lab.N_CTX + 1) for seq in itertools.product(range(lab.N_VOCAB), repeat=n)]


# ------------------------------------------------------------------------------------- independent implementations
def rows_attention_head(
    X: torch.Tensor,
    W_QK: torch.Tensor,
    W_OV: torch.Tensor,
    *,
    transpose_qk: bool = False,
    root_d: bool = False,
    mask: str = "causal",
    softmax_dim: int = 1,
    transpose_mix: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows are tokens inside: ``x`` is ``(n, d)``. The keyword arguments switch on one mistake each."""
    x = X.T
    W = W_QK.T if transpose_qk else W_QK
    S = (x @ W) @ x.T  # S[i, j] = x_i^T W_QK x_j
    if root_d:
        S = S / math.sqrt(x.shape[1])
    n = x.shape[0]
    if mask != "none":
        future = torch.ones(n, n, dtype=torch.bool).triu(0 if mask == "strict" else 1)
        S = S.masked_fill(future, float("-inf"))
    A = torch.softmax(S, dim=softmax_dim)
    v = x @ W_OV.T  # (n, d_out)
    out = (A.T @ v) if transpose_mix else (A @ v)
    return out.T, A


def rows_embed(tokens: list, *, swap: bool = False, transpose: bool = False, dtype: torch.dtype = torch.float32):
    ids = [lab.VOCAB.index(t) if isinstance(t, str) else t for t in tokens]
    n = len(ids)
    E = torch.zeros(n, 9, dtype=dtype)
    for t, v in enumerate(ids):
        E[t, (5 if swap else 0) + v] = 1
        E[t, (0 if swap else 4) + t] = 1
    return E if transpose else E.T


def rows_previous_token_head(strength: float, *, key: int = -1, ov: str = "copy", root_d: bool = False):
    """``key``: which position query ``i`` looks at, relative to ``i`` (-1 right; 0 itself; +1 the next)."""
    s = strength / 3.0 if root_d else strength
    W_QK = torch.zeros(9, 9)
    for i in range(5):
        j = i + key
        if 0 <= j < 5:
            W_QK[4 + i, 4 + j] = s
    W_QK[4, 3] = 123.0  # query position 0 meets only key 0, whose token part is unrelated: changes nothing
    W_QK[5, 8] = -7.0  # a masked key (position 4 for query 1): changes nothing
    if ov == "residual":
        W_OV = torch.zeros(9, 9)
        W_OV[:4, :4] = torch.eye(4)
        return W_QK, W_OV
    W_OV = torch.zeros(4, 9)
    if ov == "copy":
        W_OV[:, :4] = torch.eye(4)
    elif ov == "strength":
        W_OV[:, :4] = strength * torch.eye(4)
    elif ov == "positions":
        W_OV[:, 4:8] = torch.eye(4)
    return W_QK, W_OV


def rows_copying_head(strength: float, *, qk: str = "right", ov: str = "current"):
    W_QK = torch.zeros(8, 8)
    for v in range(4):
        if qk == "right":
            W_QK[v, 4 + v] = strength
        elif qk == "transposed":
            W_QK[4 + v, v] = strength
        elif qk == "same token":
            W_QK[v, v] = strength
    if qk == "right":
        W_QK[2, 4:8] += 5.0  # the same shift to every score of a query holding c: softmax ignores it
    d_out = 8 if ov == "residual" else 4
    W_OV = torch.zeros(d_out, 8)
    for v in range(4):
        W_OV[v, (4 if ov == "previous" else 0) + v] = strength if ov == "strength" else 1.0
    return W_QK, W_OV


def rows_induction_logits(tokens: list, strength: float, *, mistake: str = "none") -> torch.Tensor:
    """Rows inside, with PyTorch's scaled_dot_product_attention; ``mistake`` switches on one error."""
    ids = torch.tensor([lab.VOCAB.index(t) if isinstance(t, str) else t for t in tokens])
    n = len(ids)
    tok = F.one_hot(ids, 4).float()  # (n, 4)
    x = torch.cat([tok, torch.eye(5)[:n]], dim=1)  # (n, 9)
    scale = 1 / math.sqrt(9) if mistake == "root d" else 1.0
    W1 = torch.zeros(9, 9)
    W1[torch.arange(5, 9), torch.arange(4, 8)] = strength
    causal = mistake != "no mask"  # (at the last position only the previous-token head feels the mask)
    prev = F.scaled_dot_product_attention(x @ W1, x, tok, is_causal=causal, scale=scale)  # (n, 4)
    y = torch.cat([tok, prev], dim=1)  # (n, 8)
    if mistake != "keep position 0":
        y = y[1:]
    W2 = torch.zeros(8, 8)
    W2[torch.arange(4), torch.arange(4, 8)] = strength
    if mistake == "summed":  # "plus" read as an entrywise sum: the 4 rows hold the current and previous token
        y4 = (tok + prev)[1:]
        out = F.scaled_dot_product_attention(y4 @ (strength * torch.eye(4)), y4, y4, is_causal=True, scale=scale)
        return out[-1]
    out = F.scaled_dot_product_attention(y @ W2, y, y[:, :4], is_causal=causal, scale=scale)
    if mistake == "first position":
        return out[0]
    if mistake == "residual":
        return out[-1] + y[-1, :4]
    return out[-1]


# ------------------------------------------------------------------------------------------------- the checks
CHECKS: dict[str, tuple[Callable[[Callable], None], Callable, Callable]] = {
    "attention_head": (check.attention_head, lab.attention_head, rows_attention_head),
    "embed": (check.embed, lab.embed, rows_embed),
    "previous_token_head": (check.previous_token_head, lab.previous_token_head, rows_previous_token_head),
    "copying_head": (check.copying_head, lab.copying_head, rows_copying_head),
    "induction_logits": (check.induction_logits, lab.induction_logits, rows_induction_logits),
}


@pytest.mark.parametrize("name", list(CHECKS))
def test_the_reference_and_an_independent_implementation_pass(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    run, reference, independent = CHECKS[name]
    run(reference)
    run(independent)
    out = capsys.readouterr().out
    assert out.count(f"✓ {name}: all") == 2


@pytest.mark.parametrize("name", list(CHECKS))
def test_a_stub_is_not_written_yet(name: str) -> None:
    def stub(*args: object) -> None:
        raise NotImplementedError

    with pytest.raises(CheckFailed, match=f"{name} is not written yet"):
        CHECKS[name][0](stub)


def _partial(f: Callable, **kw: object) -> Callable:
    return lambda *args: f(*args, **kw)


MISTAKES = [
    # (check, mistake, the student's function, the case that stops it, a phrase of the verdict)
    ("attention_head", "x_j^T W_QK x_i", _partial(rows_attention_head, transpose_qk=True), 1, "pattern A"),
    ("attention_head", "1/sqrt(d) scaling", _partial(rows_attention_head, root_d=True), 1, "pattern A"),
    ("attention_head", "no causal mask", _partial(rows_attention_head, mask="none"), 1, "pattern A"),
    ("attention_head", "a token cannot see itself", _partial(rows_attention_head, mask="strict"), 1, "pattern A"),
    ("attention_head", "softmax over queries", _partial(rows_attention_head, softmax_dim=0), 1, "pattern A"),
    ("attention_head", "W_OV X A, not A^T", _partial(rows_attention_head, transpose_mix=True), 1, "output out"),
    ("embed", "position and token parts swapped", _partial(rows_embed, swap=True), 1, "result"),
    ("embed", "rows are tokens (n, 9)", _partial(rows_embed, transpose=True), 1, "shape"),
    ("embed", "an integer tensor", _partial(rows_embed, dtype=torch.long), 1, "floating-point"),
    ("previous_token_head", "attends to itself", _partial(rows_previous_token_head, key=0), 1, "pattern A"),
    ("previous_token_head", "attends to i + 1", _partial(rows_previous_token_head, key=1), 1, "pattern A"),
    ("previous_token_head", "1/sqrt(d) in W_QK", _partial(rows_previous_token_head, root_d=True), 1, "pattern A"),
    ("previous_token_head", "OV times strength", _partial(rows_previous_token_head, ov="strength"), 1, "output"),
    ("previous_token_head", "OV reads positions", _partial(rows_previous_token_head, ov="positions"), 1, "output"),
    ("previous_token_head", "OV into the residual", _partial(rows_previous_token_head, ov="residual"), 1, "shape"),
    ("copying_head", "W_QK transposed", _partial(rows_copying_head, qk="transposed"), 1, "pattern A"),
    ("copying_head", "matches the same token", _partial(rows_copying_head, qk="same token"), 1, "pattern A"),
    ("copying_head", "OV copies the previous token", _partial(rows_copying_head, ov="previous"), 1, "output"),
    ("copying_head", "OV times strength", _partial(rows_copying_head, ov="strength"), 1, "output"),
    ("copying_head", "output added to the residual", _partial(rows_copying_head, ov="residual"), 1, "shape"),
    ("induction_logits", "position 0 kept", _partial(rows_induction_logits, mistake="keep position 0"), 1, "result"),
    ("induction_logits", "parts summed, not stacked", _partial(rows_induction_logits, mistake="summed"), 1, "result"),
    ("induction_logits", "1/sqrt(d) scaling", _partial(rows_induction_logits, mistake="root d"), 1, "result"),
    ("induction_logits", "no causal mask", _partial(rows_induction_logits, mistake="no mask"), 3, "result"),
    (
        "induction_logits",
        "logits at position 0",
        _partial(rows_induction_logits, mistake="first position"),
        1,
        "result",
    ),
    ("induction_logits", "added to the residual", _partial(rows_induction_logits, mistake="residual"), 1, "result"),
]


@pytest.mark.parametrize(("name", "mistake", "student", "case", "phrase"), MISTAKES, ids=[m[1] for m in MISTAKES])
def test_a_plausible_mistake_is_stopped_at_a_named_case(
    name: str, mistake: str, student: Callable, case: int, phrase: str
) -> None:
    with pytest.raises(CheckFailed) as e:
        CHECKS[name][0](student)
    text = str(e.value)
    print(text)
    assert text.startswith(f"{name}, case {case} of ")
    assert any(p in text for p in phrase.split("|")), text
    assert "The call was made with" in text


# ------------------------------------------------------------------------------------------------- the lab itself
def test_attention_head_agrees_with_single_head_and_sdpa() -> None:
    g = lmlab.generator(0)
    for d, n, d_out in [(3, 1, 3), (5, 4, 5), (6, 5, 2)]:
        X = torch.randn(d, n, generator=g, dtype=torch.float64)
        W_QK = torch.randn(d, d, generator=g, dtype=torch.float64)
        W_OV = torch.randn(d_out, d, generator=g, dtype=torch.float64)
        out, A = lab.attention_head(X, W_QK, W_OV)
        assert out.shape == (d_out, n) and A.shape == (n, n)
        torch.testing.assert_close(A.sum(1), torch.ones(n, dtype=torch.float64))
        assert not A.triu(1).any()
        x = X.T
        sdpa = F.scaled_dot_product_attention(x @ W_QK, x, x @ W_OV.T, is_causal=True, scale=1.0)
        torch.testing.assert_close(out, sdpa.T)
        S = (x @ W_QK @ x.T).masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
        torch.testing.assert_close(A, torch.softmax(S, dim=-1))
        # the lab's head IS the package's one attention, with the lab's scale 1: bit for bit
        out_c, A_c = circuit_attention(X, W_QK, W_OV, scale=1.0)
        assert torch.equal(out, out_c) and torch.equal(A, A_c)
        if d_out == d:  # single_head: scores (W_Q x_i)^T (W_K x_j) with W_Q = W_QK^T, W_K = I; W_O W_V = W_OV
            eye = torch.eye(d, dtype=torch.float64)
            ref, A_ref = single_head(X, W_QK.T, eye, W_OV, eye, scale=1.0, return_pattern=True)
            torch.testing.assert_close(out, ref)
            torch.testing.assert_close(A, A_ref)


def test_embed_is_two_hot_and_accepts_letters_ids_strings_and_tensors() -> None:
    X = lab.embed(["a", "b", "c", "d", "a"])
    assert X.shape == (9, 5) and X.dtype == torch.float32
    assert torch.equal(X.sum(0), torch.full((5,), 2.0))
    assert torch.equal(X[4:], torch.eye(5))
    assert torch.equal(X[:4, 4], torch.tensor([1.0, 0, 0, 0]))
    for same in ([0, 1, 2, 3, 0], "abcda", torch.tensor([0, 1, 2, 3, 0]), ("a", 1, "c", 3, 0)):
        assert torch.equal(lab.embed(same), X)


@pytest.mark.parametrize(
    ("call", "error", "phrase"),
    [
        (lambda: lab.embed(["a", "e"]), ValueError, r"tokens\[1\] = 'e' is not in the vocabulary"),
        (lambda: lab.embed([0, 4]), ValueError, r"tokens\[1\] = 4 is not a token id"),
        (lambda: lab.embed([]), ValueError, "tokens must hold 1 to 5 tokens"),
        (lambda: lab.embed("abcdab"), ValueError, "tokens must hold 1 to 5 tokens, got 6"),
        (lambda: lab.embed([0.0]), TypeError, r"tokens\[0\] must be a letter"),
        (lambda: lab.embed([True]), TypeError, r"tokens\[0\] must be a letter"),
        (lambda: lab.embed(3), TypeError, "tokens must be a list"),
        (lambda: lab.embed(torch.tensor([0.0, 1.0])), TypeError, "1-D with integer ids"),
        (lambda: lab.previous_token_head(0.0), ValueError, "strength must be a finite number > 0"),
        (lambda: lab.copying_head(-1), ValueError, "strength must be a finite number > 0"),
        (lambda: lab.copying_head(float("inf")), ValueError, "strength"),
        (lambda: lab.induction_logits("abc", "10"), TypeError, "strength must be a float"),
        (lambda: lab.induction_logits("a", 10.0), ValueError, "at least 2 tokens"),
        (lambda: lab.attention_head(torch.zeros(3, 2), torch.zeros(2, 2), torch.zeros(3, 3)), ValueError, "W_QK"),
        (lambda: lab.attention_head(torch.zeros(3, 2), torch.zeros(3, 3), torch.zeros(3, 2)), ValueError, "W_OV"),
        (lambda: lab.attention_head(torch.zeros(3, 0), torch.zeros(3, 3), torch.zeros(3, 3)), ValueError, "column"),
        (lambda: lab.attention_head(torch.zeros(3), torch.zeros(3, 3), torch.zeros(3, 3)), ValueError, "X must have"),
        (
            lambda: lab.attention_head(torch.zeros(3, 2, dtype=torch.long), torch.zeros(3, 3), torch.zeros(3, 3)),
            TypeError,
            "X must be a floating-point",
        ),
        (
            lambda: lab.attention_head(torch.zeros(3, 2), torch.zeros(3, 3, dtype=torch.float64), torch.zeros(3, 3)),
            TypeError,
            "W_QK",
        ),
        (lambda: lab.induction_input(torch.zeros(9, 1), torch.zeros(4, 1)), ValueError, "n >= 2"),
        (lambda: lab.induction_input(torch.zeros(9, 3), torch.zeros(4, 2)), ValueError, "prev_out must be"),
    ],
)
def test_bad_arguments_are_named(call: Callable, error: type, phrase: str) -> None:
    with pytest.raises(error, match=phrase):
        call()


def test_the_homework_example_predicts_b() -> None:
    logits = lab.induction_logits(["a", "b", "c", "d", "a"], 10.0)
    assert logits.shape == (4,)
    assert lab.predict(["a", "b", "c", "d", "a"], 10.0) == "b"
    assert logits[1] > 0.999 and logits.sum().item() == pytest.approx(1.0, abs=1e-6)


def test_the_heads_do_what_they_say() -> None:
    X = lab.embed("abcda")
    prev_out, A = lab.attention_head(X, *lab.previous_token_head(10.0))
    assert torch.equal(A.argmax(1), torch.tensor([0, 0, 1, 2, 3]))
    assert torch.equal(prev_out[:, 1:].argmax(0), torch.tensor([0, 1, 2, 3]))  # a, b, c, d: the previous tokens
    Y = lab.induction_input(X, prev_out)
    assert Y.shape == (8, 4)
    assert torch.equal(Y[:4], X[:4, 1:])
    out, B = lab.attention_head(Y, *lab.copying_head(10.0))
    assert int(B[-1].argmax()) == 0  # the last a (column 3) attends to position 1 (column 0), whose previous is a
    assert out.shape == (4, 4)


def test_the_checks_batched_inputs_are_the_labs() -> None:
    from lmlab.check.interpretability import _copying_inputs, _embeddings, _run_heads

    seqs = [seq for seq in EVERY if len(seq) == 4][:50]
    Xb = _embeddings(seqs)
    Yb = _copying_inputs(seqs, 3.0)
    W = [w.double() for w in lab.copying_head(3.0)]
    out_b, A_b = _run_heads(Yb, *W)
    for k, seq in enumerate(seqs):
        X = lab.embed(list(seq)).double()
        torch.testing.assert_close(Xb[k], X)
        prev_out, _ = lab.attention_head(X, *(w.double() for w in lab.previous_token_head(3.0)))
        Y = lab.induction_input(X, prev_out)
        torch.testing.assert_close(Yb[k], Y)
        out, A = lab.attention_head(Y, *W)
        torch.testing.assert_close(out_b[k], out)
        torch.testing.assert_close(A_b[k], A)


def _successor_share(seq: tuple[int, ...]) -> torch.Tensor | None:
    """The limit of the logits: the share of each token among the successors of the last token's earlier uses."""
    last = seq[-1]
    succ = [seq[j + 1] for j in range(len(seq) - 1) if seq[j] == last]
    if not succ:
        return None
    return torch.bincount(torch.tensor(succ), minlength=4).float() / len(succ)


def test_the_circuit_copies_the_successor_on_every_sequence_and_sharpens_with_strength() -> None:
    n_checked = 0
    for seq in EVERY:
        if len(seq) < 2:
            continue
        share = _successor_share(seq)
        # a new last token: the limit is the uniform average of the tokens at positions 1 .. n-1
        limit = share if share is not None else torch.bincount(torch.tensor(seq[1:]), minlength=4) / (len(seq) - 1)
        logits = {s: lab.induction_logits(list(seq), s) for s in (5.0, 10.0, 30.0)}
        errors = [float((v - limit).abs().max()) for v in logits.values()]
        # non-increasing up to float32 rounding (one ulp near 1), and gone at strength 30
        assert errors[0] + 1e-6 >= errors[1] and errors[1] + 1e-6 >= errors[2] and errors[2] < 1e-5, (seq, errors)
        if share is not None and share.max() == 1:  # every earlier use of the last token had one successor
            assert int(logits[10.0].argmax()) == int(share.argmax()), seq
            n_checked += 1
    assert n_checked > 500
