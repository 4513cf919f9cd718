"""Tests of lmlab.induction, lmlab.heads and lmlab.induction_eval: one head against PyTorch's attention and the
model's own, the hand-built induction model, the detectors and the induction losses."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import lmlab
import pytest
import torch
import torch.nn.functional as F
from lmlab import heads
from lmlab import induction as ind
from lmlab import induction_eval as ev
from lmlab.core.layers import Head, causal_mask, default_scale
from lmlab.core.model import ModelConfig, TinyTransformer
from lmlab.core.tasks import periodic_batches, periodic_sequences, repeated_sequences
from lmlab.inside.circuits import circuit_attention
from lmlab.presentation.report import markdown_table

CPU = torch.device("cpu")


def _random_head(d_model: int, d_head: int, seed: int, dtype: torch.dtype = torch.float64):
    g = lmlab.generator(seed)
    W_Q, W_K, W_V = (torch.randn(d_head, d_model, generator=g, dtype=dtype) for _ in range(3))
    W_O = torch.randn(d_model, d_head, generator=g, dtype=dtype)
    return W_Q, W_K, W_V, W_O


# ---------------------------------------------------------------------------------------------- one head


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("scale", [None, 0.3])
def test_single_head_equals_sdpa(causal: bool, scale: float | None) -> None:
    d_model, d_head, n, batch = 12, 5, 9, 3
    W_Q, W_K, W_V, W_O = _random_head(d_model, d_head, 0)
    X = torch.randn(batch, d_model, n, generator=lmlab.generator(1), dtype=torch.float64)
    out, A = ind.single_head(X, W_Q, W_K, W_V, W_O, scale=scale, causal=causal, return_pattern=True)
    assert out.shape == X.shape and A.shape == (batch, n, n)
    x = X.transpose(1, 2)  # row-per-token
    q, k, v = x @ W_Q.T, x @ W_K.T, x @ W_V.T
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale) @ W_O.T
    torch.testing.assert_close(out.transpose(1, 2), ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(A.sum(-1), torch.ones(batch, n, dtype=torch.float64))
    if causal:
        assert float(A.triu(1).abs().max()) == 0.0


@pytest.mark.parametrize("d_head", [4, 10])
def test_single_head_equals_multihead_attention(d_head: int) -> None:
    d_model, n = 10, 7
    W_Q, W_K, W_V, W_O = _random_head(d_model, d_head, 2, dtype=torch.float32)
    X = torch.randn(d_model, n, generator=lmlab.generator(3))
    out, A = ind.single_head(X, W_Q, W_K, W_V, W_O, return_pattern=True)
    mha = ind.as_multihead_attention(W_Q, W_K, W_V, W_O)
    assert mha.num_heads == 1 and mha.in_proj_bias is None and mha.out_proj.bias is None
    x = X.T[None]
    with torch.no_grad():
        ref, ref_A = mha(x, x, x, attn_mask=~causal_mask(n), need_weights=True)
    torch.testing.assert_close(out.T, ref[0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(A, ref_A[0], rtol=1e-4, atol=1e-6)


def test_single_head_equals_the_models_head() -> None:
    """The teaching version computes what a TinyTransformer layer computes with the same weights."""
    W_Q, W_K, W_V, W_O = _random_head(8, 3, 4)
    X = torch.randn(2, 8, 6, generator=lmlab.generator(5), dtype=torch.float64)
    out, A = ind.single_head(X, W_Q, W_K, W_V, W_O, return_pattern=True)
    model = TinyTransformer(ModelConfig(n_vocab=4, n_ctx=6, d_model=8, n_layers=1, n_heads=2, d_head=3)).double()
    model.set_head(0, 1, W_Q=W_Q, W_K=W_K, W_V=W_V, W_O=W_O)
    _, cache = model.forward_embeds(X.transpose(1, 2), return_cache=True)
    torch.testing.assert_close(out.transpose(1, 2), cache.head_out[0][:, 1], rtol=0, atol=1e-12)
    torch.testing.assert_close(A, cache.attn[0][:, 1], rtol=0, atol=1e-12)


def test_single_head_equals_layers_head_and_the_models_head_on_random_weights() -> None:
    """One attention: single_head (book layout, through W_QK and W_OV) = layers.Head (row-per-token, the model's
    code) = the model's cached head output, on random float64 weights, with the default and an explicit scale."""
    for seed, (d_model, d_head, n, scale) in enumerate([(8, 3, 6, None), (12, 5, 9, 0.3), (6, 6, 1, None)]):
        W_Q, W_K, W_V, W_O = _random_head(d_model, d_head, 10 + seed)
        X = torch.randn(3, d_model, n, generator=lmlab.generator(20 + seed), dtype=torch.float64)
        out, A = ind.single_head(X, W_Q, W_K, W_V, W_O, scale=scale, return_pattern=True)
        head = Head(W_Q, W_K, W_V, W_O, scale=scale)
        out_head, A_head = head(X.transpose(1, 2))
        torch.testing.assert_close(out.transpose(1, 2), out_head, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(A, A_head, rtol=1e-12, atol=1e-12)
        # it IS the circuits' attention: scores from W_QK, output through W_OV, exactly
        out_c, A_c = circuit_attention(X, head.W_QK, head.W_OV, scale=head.score_scale)
        assert torch.equal(out, out_c) and torch.equal(A, A_c)
        # unbatched X gives the same columns
        torch.testing.assert_close(ind.single_head(X[1], W_Q, W_K, W_V, W_O, scale=scale), out[1], rtol=0, atol=1e-14)
        cfg = ModelConfig(n_vocab=4, n_ctx=n, d_model=d_model, n_layers=1, n_heads=2, d_head=d_head, attn_scale=scale)
        model = TinyTransformer(cfg).double()
        model.set_head(0, 0, W_Q=W_Q, W_K=W_K, W_V=W_V, W_O=W_O)
        _, cache = model.forward_embeds(X.transpose(1, 2), return_cache=True)
        torch.testing.assert_close(out.transpose(1, 2), cache.head_out[0][:, 0], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(A, cache.attn[0][:, 0], rtol=1e-12, atol=1e-12)


def test_one_default_scale_everywhere() -> None:
    """1/sqrt(d_head) is written once (layers.default_scale); Head, ModelConfig, single_head and
    as_multihead_attention all use it, and a scale must be > 0 wherever one is given."""
    d_model, d_head, n = 10, 4, 6
    W = _random_head(d_model, d_head, 30)
    X = torch.randn(d_model, n, generator=lmlab.generator(31), dtype=torch.float64)
    s = default_scale(d_head)
    assert s == 1 / math.sqrt(d_head) == 0.5
    assert Head(*W).score_scale == s
    assert ModelConfig(n_vocab=4, n_ctx=n, d_model=d_model, n_heads=2, d_head=d_head).scale == s
    assert TinyTransformer(ModelConfig(n_vocab=4, n_ctx=n, d_model=d_model, d_head=d_head)).head(0, 0).score_scale == s
    assert torch.equal(ind.single_head(X, *W), ind.single_head(X, *W, scale=s))
    x = X.T[None]
    with torch.no_grad():
        ref = ind.as_multihead_attention(*W, scale=s)(x, x, x, attn_mask=~causal_mask(n))[0]
        assert torch.equal(ind.as_multihead_attention(*W)(x, x, x, attn_mask=~causal_mask(n))[0], ref)
    assert default_scale(d_head, 0.3) == 0.3 and Head(*W, scale=0.3).score_scale == 0.3
    for bad in (0.0, -1.0, float("inf")):
        with pytest.raises(ValueError, match="scale must be a finite number > 0"):
            ind.single_head(X, *W, scale=bad)
        with pytest.raises(ValueError, match="scale must be a finite number > 0"):
            Head(*W, scale=bad)
        with pytest.raises(ValueError, match="scale must be a finite number > 0"):
            ind.as_multihead_attention(*W, scale=bad)
    with pytest.raises(ValueError, match="d_head"):
        default_scale(0)


def test_the_default_scale_is_written_once_in_the_package() -> None:
    """No other module computes 1/sqrt(d_head) (or d_head ** -0.5) itself: only layers.default_scale does."""
    root = Path(lmlab.__file__).parent
    hits = []
    for path in sorted(root.rglob("*.py")):
        source = path.read_text()
        for node in ast.walk(ast.parse(source)):
            is_sqrt = isinstance(node, ast.Call) and ast.unparse(node.func).split(".")[-1] in ("sqrt", "rsqrt")
            is_pow = isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow)
            if (is_sqrt or is_pow) and "d_head" in ast.get_source_segment(source, node):
                hits.append(f"{path.relative_to(root)}:{node.lineno}")
    assert len(hits) == 1 and hits[0].startswith("core/layers.py:"), hits


def test_single_head_bad_shapes() -> None:
    W_Q, W_K, W_V, W_O = _random_head(8, 3, 4)
    with pytest.raises(ValueError, match="W_O"):
        ind.single_head(torch.randn(8, 5, dtype=torch.float64), W_Q, W_K, W_V, W_O.T)
    with pytest.raises(ValueError, match="W_K"):
        ind.single_head(torch.randn(8, 5, dtype=torch.float64), W_Q, W_K[:, :4], W_V, W_O)
    with pytest.raises(ValueError, match="d_head"):
        ind.as_multihead_attention(*_random_head(3, 5, 0))
    X = torch.randn(8, 5, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"W_Q must be \(d_head, d_model\) = \(3, 9\)"):  # X's d_model wins
        ind.single_head(torch.randn(9, 5, dtype=torch.float64), W_Q, W_K, W_V, W_O)
    with pytest.raises(TypeError, match="W_V .* must have the dtype and device of W_Q"):
        ind.single_head(X, W_Q, W_K, W_V.float(), W_O)
    with pytest.raises(TypeError, match="X must be a floating-point tensor"):
        ind.single_head(X.long(), W_Q, W_K, W_V, W_O)


# ---------------------------------------------------------------------------------------------- hand-built model


@pytest.fixture(scope="module")
def built() -> TinyTransformer:
    return ind.build_induction_model(16, 25, device=CPU)


def test_model_equals_equations(built: TinyTransformer) -> None:
    """The TinyTransformer with the planted weights computes exactly what two calls of single_head compute."""
    w = ind.induction_weights(16, 25, device=CPU)
    tokens = repeated_sequences(8, 12, 16, 7)
    logits, patterns = ind.run_weights(w, tokens)
    ref, cache = built.run_with_cache(tokens)
    torch.testing.assert_close(logits, ref, rtol=1e-5, atol=1e-4)
    for A, A_ref in zip(patterns, cache.attn):
        torch.testing.assert_close(A, A_ref[:, 0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("n_vocab", "seq_len"), [(16, 12), (16, 3), (40, 30)])
def test_hand_built_perfect_on_unseen_seeds(n_vocab: int, seq_len: int) -> None:
    model = ind.build_induction_model(n_vocab, 2 * seq_len + 1, device=CPU)
    res = ev.evaluate_induction(model, n_vocab, seq_len, seeds=range(9000, 9004), batch=32)
    assert res.accuracy_second == 1.0
    assert res.first_position_accuracy == 1.0
    assert res.loss_second < 1e-3
    # nothing in copy one can be inferred: the model stays uniform over the vocabulary
    assert abs(res.loss_first - math.log(n_vocab)) < 0.01


def test_shorter_sequences_and_other_bos(built: TinyTransformer) -> None:
    res = ev.evaluate_induction(built, 16, 5, seeds=[11, 12], batch=16)
    assert res.accuracy_second == 1.0
    model = ind.build_induction_model(12, 17, bos=5, device=CPU)
    res = ev.evaluate_induction(model, 12, 8, seeds=[3], batch=32, bos=5)
    assert res.accuracy_second == 1.0


def test_broken_variants_break() -> None:
    """No BOS token gives a tie at the first position of copy two; no sink raises the copy-one loss."""
    no_sink = ind.build_induction_model(16, 21, sink=0.0, device=CPU)
    res = ev.evaluate_induction(no_sink, 16, 10, seeds=[1, 2], batch=32)
    assert res.accuracy_second == 1.0 and res.loss_first > math.log(16) + 0.5
    built = ind.build_induction_model(16, 21, device=CPU)
    res = ev.evaluate_induction(built, 16, 10, seeds=[1, 2], batch=32, bos=None)
    assert res.first_position_accuracy < 0.75 and res.accuracy_second < 1.0
    small = ind.build_induction_model(16, 21, scale=1.0, device=CPU)
    assert ev.evaluate_induction(small, 16, 10, seeds=[1], batch=32).accuracy_second < 0.5


def test_detectors_find_planted_heads(built: TinyTransformer) -> None:
    det = heads.detect_heads(built, seq_len=12)
    assert det.previous_token_heads == [(0, 0)]
    assert det.induction_heads == [(1, 0)]
    assert float(det.previous_token[0, 0]) > 0.99 and float(det.induction[1, 0]) > 0.99


def test_detector_scores_on_known_patterns() -> None:
    n, period = 9, 4
    shift = torch.zeros(n, n)
    shift[0, 0] = 1.0
    shift[torch.arange(1, n), torch.arange(n - 1)] = 1.0
    assert float(heads.previous_token_score(shift)) == 1.0
    uniform = torch.tril(torch.ones(n, n))
    uniform = uniform / uniform.sum(-1, keepdim=True)
    expected = sum(1 / (i + 1) for i in range(1, n)) / (n - 1)
    assert math.isclose(float(heads.previous_token_score(uniform)), expected, rel_tol=1e-6)
    stripe = torch.zeros(n, n)
    for i in range(n):
        j = i - period + 1 if i >= 1 + period else 0
        stripe[i, j] = 1.0
    assert float(heads.induction_score(stripe, period)) == 1.0
    assert float(heads.induction_score(shift, period)) == 0.0
    # the boundary: the previous-token score counts position 1 attending to BOS, the induction score counts every
    # query of the second copy; moving the stripe by one key drops it to zero
    assert float(heads.previous_token_score(shift[:2, :2])) == 1.0
    assert float(heads.induction_score(stripe.roll(1, dims=1), period)) == 0.0


def test_composition_scores(built: TinyTransformer) -> None:
    qk1, ov0 = built.head(1, 0).W_QK, built.head(0, 0).W_OV
    k = heads.k_composition(qk1, ov0)
    base = heads.random_composition_baseline(built.cfg.d_model, built.cfg.d_head, n_samples=20)
    assert k > base.mean + 10 * base.std
    # the layer-0 head writes only into the previous-token block, which layer 1 reads only on the key side
    assert heads.q_composition(qk1, ov0) == 0.0
    # the score is invariant to a rotation of the residual stream
    R, _ = torch.linalg.qr(torch.randn(qk1.shape[0], qk1.shape[0], generator=lmlab.generator(0)))
    assert math.isclose(heads.k_composition(R @ qk1 @ R.T, R @ ov0 @ R.T), k, rel_tol=1e-4)
    # composition_score equals the formula
    A, B = torch.randn(5, 4), torch.randn(4, 6)
    ref = float(torch.linalg.norm(A @ B) / (torch.linalg.norm(A) * torch.linalg.norm(B)))
    assert math.isclose(heads.composition_score(A, B), ref, rel_tol=1e-5)


# ---------------------------------------------------------------------------------------------- errors


def test_sequence_longer_than_positional_table(built: TinyTransformer) -> None:
    with pytest.raises(ValueError, match="n_ctx"):
        ev.evaluate_induction(built, 16, 13)  # 2 * 13 + 1 = 27 > 25
    with pytest.raises(ValueError, match="n_ctx"):
        built(repeated_sequences(2, 13, 16, 0))
    w = ind.induction_weights(16, 25, device=CPU)
    with pytest.raises(ValueError, match="n_ctx"):
        ind.run_weights(w, repeated_sequences(2, 13, 16, 0))


def test_vocabulary_too_large_for_subspaces() -> None:
    with pytest.raises(ValueError, match="n_vocab=30 is too large for d_model=100"):
        ind.build_induction_model(30, 21, d_model=100, device=CPU)
    with pytest.raises(ValueError, match="d_model"):
        ind.residual_layout(10, 10, d_model=39)
    assert ind.residual_layout(10, 10, d_model=40).out == slice(30, 40)


def test_argument_checks() -> None:
    with pytest.raises(ValueError, match="sink"):
        ind.build_induction_model(8, 9, sink=1.0, device=CPU)
    with pytest.raises(ValueError, match="scale"):
        ind.build_induction_model(8, 9, scale=0.0, device=CPU)
    with pytest.raises(ValueError, match="seq_len"):
        repeated_sequences(2, 8, 8, 0)  # only 7 non-BOS tokens to draw from without replacement
    with pytest.raises(TypeError, match="n_vocab"):
        ind.residual_layout(8.0, 9)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- training data, probes


def test_periodic_tokens_are_periodic_runs_of_distinct_tokens() -> None:
    toks = periodic_sequences(64, 30, 12, 0, min_period=3, max_period=7, bos=2)
    assert toks.shape == (64, 30) and bool((toks[:, 0] == 2).all()) and bool((toks[:, 1:] != 2).all())
    for row in toks:
        body = row[1:]
        # the period is the first position where the run starts over
        T = next(t for t in range(3, 8) if bool((body[t:] == body[:-t]).all()))
        assert len(set(body[:T].tolist())) == T
    inputs, targets = periodic_batches(12, 30, batch=4, max_period=5, seed=1)(5)
    assert inputs.shape == targets.shape == (4, 30) and torch.equal(inputs[:, 1:], targets[:, :-1])


def test_probe_on_hand_built_model(built: TinyTransformer) -> None:
    out = ev.induction_probe(16, 8, batch=16)(built)
    assert out["prev_layer0"] > 0.99 and out["induction_last"] > 0.99
    assert out["loss_second"] < 1e-3 and abs(out["loss_first"] - math.log(16)) < 0.01
    # the boundary token cannot be predicted: the loss there is that of a uniform guess among unused tokens
    assert out["loss_boundary"] > 1.0


def test_one_induction_loss_everywhere(built: TinyTransformer) -> None:
    """The probe and the evaluation measure the same positions: on the same batch they agree exactly."""
    probe = ev.induction_probe(16, 8, batch=16, seed=5)(built)
    res = ev.evaluate_induction(built, 16, 8, seeds=[5], batch=16)
    for key in ("loss_first", "loss_second", "loss_boundary", "accuracy_second"):
        assert probe[key] == pytest.approx(getattr(res, key), abs=1e-12)


def test_repeat_metrics_positions() -> None:
    """A model that is right exactly on the second copy after its first token gets loss 0 there and only there."""
    T, n_vocab = 5, 12
    tokens = repeated_sequences(3, T, n_vocab, 0)
    logits = torch.zeros(3, 2 * T + 1, n_vocab)
    for i in range(T + 1, 2 * T):  # the prediction made at i is of token i + 1
        logits[torch.arange(3), i, tokens[:, i + 1]] = 100.0
    m = ev.repeat_metrics(logits, tokens, T)
    assert m["loss_second"] < 1e-6 and m["accuracy_second"] == 1.0
    assert m["loss_first"] == pytest.approx(math.log(n_vocab)) and m["loss_boundary"] == pytest.approx(math.log(12))
    with pytest.raises(ValueError, match="columns"):
        ev.repeat_metrics(logits, tokens, T + 1)


def test_markdown_table() -> None:
    md = markdown_table([{"a": 1, "b": 0.5}], {"a": "A", "b": "B"}, {"b": ".2f"})
    assert md.splitlines() == ["| A | B |", "|---|---|", "| 1 | 0.50 |"]
