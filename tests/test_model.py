"""Tests of lmlab.model: the tiny transformer against torch reference implementations and the book's identities."""

from __future__ import annotations

import dataclasses

import lmlab
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from lmlab.core.layers import MLP, Attention, Block, Head, causal_mask, check_head_shapes, default_scale
from lmlab.core.model import Cache, KVCache, ModelConfig, TinyTransformer, sinusoidal_positions

ATOL = 1e-5


def make(seed: int = 0, **kw) -> TinyTransformer:
    lmlab.seed_everything(seed)
    base = dict(n_vocab=13, n_ctx=12, d_model=16, n_layers=2, n_heads=2, init_std=0.3)
    base.update(kw)
    return TinyTransformer(ModelConfig(**base)).double()


def tokens(model: TinyTransformer, batch: int = 3, n: int | None = None, seed: int = 1) -> torch.Tensor:
    g = lmlab.generator(seed)
    n = model.cfg.n_ctx if n is None else n
    return torch.randint(0, model.cfg.n_vocab, (batch, n), generator=g)


CONFIGS = {
    "attn-only": dict(),
    "mlp-relu": dict(d_mlp=24, act="relu"),
    "mlp-gelu-ln-sin": dict(d_mlp=24, layer_norm=True, pos_emb="sinusoidal"),
    "wide-heads": dict(n_heads=3, d_head=7, pos_emb="none", attn_scale=0.5),
}


# ---------------------------------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("name", CONFIGS)
def test_shapes(name: str) -> None:
    model = make(**CONFIGS[name])
    cfg = model.cfg
    T = tokens(model, batch=2, n=7)
    logits, cache = model.run_with_cache(T)
    assert logits.shape == (2, 7, cfg.n_vocab)
    assert isinstance(cache, Cache)
    assert len(cache.resid) == cfg.n_layers + 1
    assert all(r.shape == (2, 7, cfg.d_model) for r in cache.resid)
    assert all(a.shape == (2, cfg.n_heads, 7, 7) for a in cache.attn)
    assert all(h.shape == (2, cfg.n_heads, 7, cfg.d_model) for h in cache.head_out)
    assert len(cache.mlp_out) == cfg.n_layers
    for m in cache.mlp_out:
        assert (m is None) == (cfg.d_mlp is None)
        if m is not None:
            assert m.shape == (2, 7, cfg.d_model)
    assert model.embed(T).shape == (2, 7, cfg.d_model)
    assert model.W_E().shape == (cfg.d_model, cfg.n_vocab)
    assert model.W_U().shape == (cfg.n_vocab, cfg.d_model)
    assert model.W_pos().shape == (cfg.d_model, cfg.n_ctx)
    for acc in (model.W_Q, model.W_K, model.W_V):
        assert acc(1, 0).shape == (cfg.d_head, cfg.d_model)
    assert model.W_O(1, 0).shape == (cfg.d_model, cfg.d_head)
    assert model.W_QK(0, 1).shape == model.W_OV(0, 1).shape == (cfg.d_model, cfg.d_model)
    # forward and run_with_cache agree, and attention rows are causal distributions
    torch.testing.assert_close(model(T), logits)
    for A in cache.attn:
        torch.testing.assert_close(A.sum(-1), torch.ones_like(A.sum(-1)))
        assert torch.all(A.triu(diagonal=1) == 0)


def test_default_d_head_is_resolved() -> None:
    cfg = ModelConfig(n_vocab=5, n_ctx=4, d_model=12, n_heads=3)
    assert cfg.d_head == 4
    assert cfg.scale == pytest.approx(0.5)
    assert ModelConfig(n_vocab=5, n_ctx=4, d_model=12, attn_scale=2.0).scale == 2.0


# ---------------------------------------------------------------------------------------------------- attention


@pytest.mark.parametrize("name", ["attn-only", "wide-heads"])
def test_each_head_matches_scaled_dot_product_attention(name: str) -> None:
    model = make(**CONFIGS[name])
    cfg = model.cfg
    T = tokens(model)
    _, cache = model.run_with_cache(T)
    for l in range(cfg.n_layers):
        x = cache.resid[l]  # no LayerNorm here, so the layer reads the residual stream directly
        for h in range(cfg.n_heads):
            WQ, WK, WV, WO = model.W_Q(l, h), model.W_K(l, h), model.W_V(l, h), model.W_O(l, h)
            z = F.scaled_dot_product_attention(x @ WQ.T, x @ WK.T, x @ WV.T, is_causal=True, scale=cfg.scale)
            torch.testing.assert_close(cache.head_out[l][:, h], z @ WO.T, atol=ATOL, rtol=0)
            out, A = model.head(l, h)(x)  # the head object runs the layer's code on its own
            torch.testing.assert_close(out, z @ WO.T, atol=ATOL, rtol=0)
            torch.testing.assert_close(A, cache.attn[l][:, h], atol=ATOL, rtol=0)


def test_head_non_causal_and_unbatched() -> None:
    g = lmlab.generator(0)
    x = torch.randn(6, 8, generator=g, dtype=torch.float64)
    W = [torch.randn(4, 8, generator=g, dtype=torch.float64) for _ in range(3)]
    WO = torch.randn(8, 4, generator=g, dtype=torch.float64)
    out, A = Head(*W, WO)(x, causal=False)
    ref = F.scaled_dot_product_attention(x @ W[0].T, x @ W[1].T, x @ W[2].T, is_causal=False)
    assert out.shape == (6, 8) and A.shape == (6, 6)
    torch.testing.assert_close(out, ref @ WO.T)
    with pytest.raises(ValueError, match="W_O must be"):
        Head(*W, WO.T)


def test_layers_check_their_arguments() -> None:
    """The layers refuse bad sizes, scales and parts with errors that name the argument; scale None is the default."""
    assert Attention(2, 8, 4, None, 0.02, 0.02).scale == default_scale(4) == 0.5
    with pytest.raises(ValueError, match="scale must be a finite number > 0"):
        Attention(2, 8, 4, 0.0, 0.02, 0.02)
    with pytest.raises(ValueError, match="n_heads"):
        Attention(0, 8, 4, 0.5, 0.02, 0.02)
    with pytest.raises(TypeError, match="init_std"):
        Attention(2, 8, 4, 0.5, None, 0.02)
    with pytest.raises(ValueError, match="act must be 'gelu' or 'relu'"):
        MLP(8, 16, "tanh", 0.02, 0.02)
    with pytest.raises(ValueError, match="d_mlp"):
        MLP(8, 0, "gelu", 0.02, 0.02)
    with pytest.raises(TypeError, match="attn must be an Attention layer"):
        Block(None, None, 8, False)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="mlp must be an MLP layer or None"):
        Block(Attention(2, 8, 4, 0.5, 0.02, 0.02), "mlp", 8, False)  # type: ignore[arg-type]


def test_head_shapes_are_checked_in_one_place() -> None:
    """check_head_shapes returns d_head and names the weight at fault; Head uses it."""
    g = lmlab.generator(1)
    W = [torch.randn(4, 8, generator=g, dtype=torch.float64) for _ in range(3)]
    WO = torch.randn(8, 4, generator=g, dtype=torch.float64)
    assert check_head_shapes(*W, WO) == 4 and check_head_shapes(*W, WO, d_model=8) == 4
    with pytest.raises(ValueError, match=r"W_Q must be \(d_head, d_model\) = \(4, 6\)"):
        check_head_shapes(*W, WO, d_model=6)
    with pytest.raises(ValueError, match=r"W_V must be \(d_head, d_model\) = \(4, 8\), got \(4, 7\)"):
        Head(W[0], W[1], W[2][:, :7], WO)
    with pytest.raises(ValueError, match=r"W_O must be \(d_model, d_head\) = \(8, 4\)"):
        check_head_shapes(*W, WO[:, :3])
    with pytest.raises(ValueError, match="W_K must have 2 dimensions"):
        Head(W[0], W[1][0], W[2], WO)
    with pytest.raises(TypeError, match="W_O must be a floating-point tensor"):
        check_head_shapes(*W, WO.long())
    with pytest.raises(TypeError, match=r"W_K \(torch.float32, cpu\) must have the dtype and device of W_Q"):
        Head(W[0], W[1].float(), W[2], WO)
    with pytest.raises(ValueError, match="scale must be a finite number > 0"):
        Head(*W, WO, scale=0.0)


def test_causal_mask_convention() -> None:
    """True = may attend; with a key/value cache the queries are the last n_q positions."""
    assert torch.equal(causal_mask(3), torch.tensor([[1, 0, 0], [1, 1, 0], [1, 1, 1]], dtype=torch.bool))
    assert torch.equal(causal_mask(2, 4), causal_mask(4)[2:])
    x = torch.randn(1, 5, 4, dtype=torch.float64)
    mha_mask = ~causal_mask(5)  # nn.MultiheadAttention's convention: True = forbidden
    ref = F.scaled_dot_product_attention(x, x, x, attn_mask=~mha_mask)
    torch.testing.assert_close(ref, F.scaled_dot_product_attention(x, x, x, is_causal=True))


def test_head_circuits_predict_scores_and_writes() -> None:
    """W_QK gives the pre-softmax scores and W_OV the write per attended key, as the model computes them."""
    model = make(n_layers=1, n_heads=2, attn_scale=0.7)
    _, cache = model.run_with_cache(tokens(model, batch=2))
    x = cache.resid[0]
    for h in range(2):
        head = model.head(0, h)
        A = cache.attn[0][:, h]
        scores = 0.7 * x @ head.W_QK @ x.transpose(1, 2)  # (batch, i, j): x_i^T W_QK x_j
        log_ratio = (A.log() - A[:, :, :1].log()).tril()  # softmax: log A_ij - log A_i0 = S_ij - S_i0
        torch.testing.assert_close(log_ratio, (scores - scores[:, :, :1]).tril(), atol=1e-8, rtol=0)
        torch.testing.assert_close(cache.head_out[0][:, h], A @ x @ head.W_OV.T, atol=1e-10, rtol=0)


def test_concatenated_heads_equal_sum_of_heads() -> None:
    """Homework part (b): W_O^H [r^1; ...; r^H] with W_O^H = [W_O^1 ... W_O^H] equals sum_h W_O^h r^h."""
    model = make(n_heads=4, d_model=16)
    cfg = model.cfg
    T = tokens(model)
    _, cache = model.run_with_cache(T)
    x = cache.resid[0]
    r = []
    for h in range(cfg.n_heads):
        z = F.scaled_dot_product_attention(
            x @ model.W_Q(0, h).T, x @ model.W_K(0, h).T, x @ model.W_V(0, h).T, is_causal=True, scale=cfg.scale
        )
        r.append(z)  # (batch, n, d_head), the book's r^h transposed
    R = torch.cat(r, dim=-1)  # (batch, n, H d_head)
    W_O_big = torch.cat([model.W_O(0, h) for h in range(cfg.n_heads)], dim=1)  # (d_model, H d_head)
    concat_view = R @ W_O_big.T
    torch.testing.assert_close(concat_view, cache.head_out[0].sum(1), atol=ATOL, rtol=0)
    torch.testing.assert_close(concat_view, cache.resid[1] - cache.resid[0], atol=ATOL, rtol=0)


# ---------------------------------------------------------------------------------------------------- residual stream


@pytest.mark.parametrize("name", CONFIGS)
def test_residual_stream_is_a_sum_of_writes(name: str) -> None:
    model = make(**CONFIGS[name])
    T = tokens(model)
    logits, cache = model.run_with_cache(T)
    total = cache.resid[0].clone()
    for l in range(model.cfg.n_layers):
        step = cache.head_out[l].sum(1) + (cache.mlp_out[l] if cache.mlp_out[l] is not None else 0)
        torch.testing.assert_close(cache.resid[l + 1], cache.resid[l] + step, atol=ATOL, rtol=0)
        total = total + step
    torch.testing.assert_close(cache.resid[-1], total, atol=ATOL, rtol=0)
    if not model.cfg.layer_norm:
        torch.testing.assert_close(logits, cache.resid[-1] @ model.W_U().T, atol=ATOL, rtol=0)
    assert cache.residual_sum_error() < 1e-12


def test_residual_sum_error_sees_a_write_that_was_not_recorded() -> None:
    """A cache that misses one head's write (e.g. a model that forgets to record it) is reported, not averaged."""
    model = make(d_mlp=8)
    _, cache = model.run_with_cache(tokens(model))
    missing = cache.head_out[1][:, 1].detach()
    cache.head_out[1] = cache.head_out[1][:, :1]
    assert cache.residual_sum_error() == pytest.approx(float(missing.abs().max()), rel=1e-6)
    _, cache = model.run_with_cache(tokens(model))
    cache.mlp_out[0] = None
    assert cache.residual_sum_error() > 1e-3


def test_zero_layer_model_is_W_U_W_E_T() -> None:
    model = make(n_layers=0, pos_emb="none")
    cfg = model.cfg
    T = tokens(model, batch=2)
    onehot = F.one_hot(T, cfg.n_vocab).to(torch.float64)  # (batch, n, n_vocab): the book's T transposed
    for b in range(2):
        book_L = model.W_U() @ model.W_E() @ onehot[b].T  # (n_vocab, n): L = W_U W_E T
        torch.testing.assert_close(model(T)[b], book_L.T, atol=ATOL, rtol=0)
    # with a learned positional table the zero-layer model adds W_U W_pos
    model = make(n_layers=0, pos_emb="learned")
    book_L = model.W_U() @ (model.W_E() @ onehot[0].T + model.W_pos()[:, : T.shape[1]])
    torch.testing.assert_close(model(T)[0], book_L.T, atol=ATOL, rtol=0)


def test_positional_embeddings() -> None:
    table = sinusoidal_positions(6, 5)
    assert table.shape == (6, 5)
    torch.testing.assert_close(table[:, 0], torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0, 1.0]))
    torch.testing.assert_close(table[0], torch.sin(torch.arange(5.0)))
    model = make(pos_emb="sinusoidal", d_model=16, n_ctx=12)
    torch.testing.assert_close(model.W_pos(), sinusoidal_positions(16, 12).double())
    T = tokens(model, n=5)
    torch.testing.assert_close(model.embed(T), F.embedding(T, model.W_E().T) + model.W_pos()[:, :5].T)
    assert torch.all(make(pos_emb="none").W_pos() == 0)


def test_forward_embeds_matches_forward_and_does_not_add_positions() -> None:
    model = make(d_mlp=8)
    T = tokens(model)
    torch.testing.assert_close(model.forward_embeds(model.embed(T)), model(T))
    logits, cache = model.forward_embeds(model.embed(T), return_cache=True)
    torch.testing.assert_close(cache.resid[0], model.embed(T))
    # raw token embeddings (no positions) give a different answer, so no position was added silently
    raw = F.embedding(T, model.W_E().T)
    assert not torch.allclose(model.forward_embeds(raw), model(T))
    # gradients flow to the input embeddings (soft prompts)
    x0 = model.embed(T).detach().requires_grad_(True)
    model.forward_embeds(x0).sum().backward()
    assert x0.grad is not None and x0.grad.abs().sum() > 0


# ---------------------------------------------------------------------------------------------------- weights


def test_set_head_round_trip_and_effect() -> None:
    model = make(n_layers=1, n_heads=2, d_model=8, n_vocab=8, n_ctx=6, pos_emb="none")
    cfg = model.cfg
    g = lmlab.generator(3)
    new = {k: torch.randn(cfg.d_head, cfg.d_model, generator=g, dtype=torch.float64) for k in ("W_Q", "W_K", "W_V")}
    new["W_O"] = torch.randn(cfg.d_model, cfg.d_head, generator=g, dtype=torch.float64)
    model.set_head(0, 1, **new)
    torch.testing.assert_close(model.W_Q(0, 1), new["W_Q"])
    torch.testing.assert_close(model.W_K(0, 1), new["W_K"])
    torch.testing.assert_close(model.W_V(0, 1), new["W_V"])
    torch.testing.assert_close(model.W_O(0, 1), new["W_O"])
    # numpy arrays are accepted, and accessors return copies (editing them leaves the model alone)
    model.set_head(0, 0, W_V=np.zeros((cfg.d_head, cfg.d_model)))
    assert torch.all(model.W_V(0, 0) == 0)
    model.W_Q(0, 1).zero_()
    torch.testing.assert_close(model.W_Q(0, 1), new["W_Q"])

    # Hand-built weights with a known effect: embeddings = identity, head 0 silenced (W_O = 0), head 1 with
    # W_QK = 0 (uniform attention over the prefix) and W_OV = identity, so X^1 = X^0 + running mean of X^0.
    eye = torch.eye(cfg.d_model, dtype=torch.float64)
    model.set_embeddings(W_E=eye, W_U=eye)
    model.set_head(0, 0, W_O=torch.zeros(cfg.d_model, cfg.d_head))
    half = cfg.d_head
    WV = eye[:half]  # (d_head, d_model): keeps the first d_head coordinates
    WO = eye[:, :half]
    model.set_head(0, 1, W_Q=torch.zeros(half, cfg.d_model), W_V=WV, W_O=WO)
    T = tokens(model, batch=2, n=6)
    onehot = F.one_hot(T, cfg.n_vocab).to(torch.float64)
    prefix_mean = onehot.cumsum(1) / torch.arange(1, 7, dtype=torch.float64)[None, :, None]
    mask = torch.zeros(cfg.d_model, dtype=torch.float64)
    mask[:half] = 1
    torch.testing.assert_close(model(T), onehot + prefix_mean * mask, atol=ATOL, rtol=0)


def test_set_embeddings_round_trip() -> None:
    model = make()
    cfg = model.cfg
    W_E = torch.randn(cfg.d_model, cfg.n_vocab, dtype=torch.float64)
    W_U = torch.randn(cfg.n_vocab, cfg.d_model, dtype=torch.float64)
    W_pos = torch.randn(cfg.d_model, cfg.n_ctx, dtype=torch.float64)
    model.set_embeddings(W_E=W_E, W_U=W_U, W_pos=W_pos)
    torch.testing.assert_close(model.W_E(), W_E)
    torch.testing.assert_close(model.W_U(), W_U)
    torch.testing.assert_close(model.W_pos(), W_pos)
    with pytest.raises(ValueError, match="pos_emb='learned'"):
        make(pos_emb="sinusoidal").set_embeddings(W_pos=W_pos)


def test_seeded_construction_is_deterministic() -> None:
    a, b, c = make(seed=5), make(seed=5), make(seed=6)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


# ---------------------------------------------------------------------------------------------------- kv cache


@pytest.mark.parametrize("name", ["attn-only", "mlp-gelu-ln-sin", "wide-heads"])
def test_kv_cache_matches_full_forward(name: str) -> None:
    model = make(**CONFIGS[name])
    T = tokens(model, batch=2)
    full = model(T)
    logits, past = model.forward_kv(T[:, :3])
    pieces = [logits]
    for t in range(3, T.shape[1]):
        logits, past = model.forward_kv(T[:, t : t + 1], past)
        pieces.append(logits)
    assert isinstance(past, KVCache) and len(past) == T.shape[1]
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=ATOL, rtol=0)
    with pytest.raises(ValueError, match="n_ctx"):
        model.forward_kv(T[:, :1], past)


def test_generate_greedy_matches_argmax_of_forward() -> None:
    model = make(d_mlp=8)
    prompt = tokens(model, batch=2, n=3)
    out = model.generate(prompt, 5)
    assert out.shape == (2, 8)
    assert torch.equal(out[:, :3], prompt)
    # each generated token is the argmax of the full forward pass on everything before it
    logits = model(out[:, :-1])
    assert torch.equal(out[:, 3:], logits[:, 2:].argmax(-1))


def test_zero_layer_kv_cache() -> None:
    model = make(n_layers=0)
    T = tokens(model, batch=1, n=5)
    a, past = model.forward_kv(T[:, :2])
    b, past = model.forward_kv(T[:, 2:], past)
    torch.testing.assert_close(torch.cat([a, b], 1), model(T))


# ---------------------------------------------------------------------------------------------------- errors


def test_config_errors() -> None:
    with pytest.raises(ValueError, match=r"d_model \(10\) must be divisible by n_heads \(3\)"):
        ModelConfig(n_vocab=5, n_ctx=4, d_model=10, n_heads=3)
    ModelConfig(n_vocab=5, n_ctx=4, d_model=10, n_heads=3, d_head=4)  # fine with explicit d_head
    with pytest.raises(ValueError, match="n_vocab must be an int >= 1"):
        ModelConfig(n_vocab=0, n_ctx=4, d_model=8)
    with pytest.raises(ValueError, match="n_layers must be an int >= 0"):
        ModelConfig(n_vocab=5, n_ctx=4, d_model=8, n_layers=-1)
    with pytest.raises(TypeError, match="d_model must be an int"):
        ModelConfig(n_vocab=5, n_ctx=4, d_model=8.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pos_emb must be one of"):
        ModelConfig(n_vocab=5, n_ctx=4, d_model=8, pos_emb="rotary")
    with pytest.raises(ValueError, match="attn_scale must be a finite number > 0"):
        ModelConfig(n_vocab=5, n_ctx=4, d_model=8, attn_scale=0.0)
    with pytest.raises(TypeError, match="cfg must be a ModelConfig"):
        TinyTransformer({"n_vocab": 5})  # type: ignore[arg-type]


def test_input_errors() -> None:
    model = make()
    cfg = model.cfg
    with pytest.raises(
        ValueError, match=rf"sequence length {cfg.n_ctx + 1} exceeds the context length n_ctx = {cfg.n_ctx}"
    ):
        model(torch.zeros(1, cfg.n_ctx + 1, dtype=torch.long))
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, n_vocab\)"):
        model(torch.full((1, 3), cfg.n_vocab))
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, n_vocab\)"):
        model(torch.full((1, 3), -1))
    with pytest.raises(ValueError, match="tokens must have 2 dimensions"):
        model(torch.zeros(3, dtype=torch.long))
    with pytest.raises(TypeError, match="integer ids"):
        model(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="x0 must have shape"):
        model.forward_embeds(torch.zeros(1, 3, cfg.d_model + 1))
    with pytest.raises(ValueError, match="exceeds the context length"):
        model.forward_embeds(torch.zeros(1, cfg.n_ctx + 1, cfg.d_model))


def test_weight_errors() -> None:
    model = make()
    cfg = model.cfg
    with pytest.raises(ValueError, match=rf"W_Q must have shape \(d_head, d_model\) = \({cfg.d_head}, {cfg.d_model}\)"):
        model.set_head(0, 0, W_Q=torch.zeros(cfg.d_model, cfg.d_head + 1))
    with pytest.raises(ValueError, match=r"W_O must have shape \(d_model, d_head\)"):
        model.set_head(0, 0, W_O=torch.zeros(cfg.d_head, cfg.d_model + 1))
    with pytest.raises(TypeError, match="W_K must be a torch.Tensor or numpy.ndarray"):
        model.set_head(0, 0, W_K=[[0.0]])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"W_U must have shape \(n_vocab, d_model\)"):
        model.set_embeddings(W_U=torch.zeros(cfg.d_model, cfg.n_vocab))
    with pytest.raises(ValueError, match=r"l must be an int in \[0, 1\]"):
        model.W_Q(2, 0)
    with pytest.raises(ValueError, match=r"h must be an int in \[0, 1\]"):
        model.W_OV(0, 5)
    with pytest.raises(ValueError, match="attention-only"):
        model.W_in(0)


def test_to_device_round_trip() -> None:
    model = make().to(lmlab.device())
    T = tokens(model).to(lmlab.device())
    logits, past = model.forward_kv(T)
    assert logits.device.type == lmlab.device().type
    torch.testing.assert_close(logits, model(T))
    # tokens on the CPU are moved to the model's device
    assert model(T.cpu()).device == logits.device


def test_replace_with_d_head_none_recomputes() -> None:
    cfg = ModelConfig(n_vocab=5, n_ctx=4, d_model=12, n_heads=2)
    assert dataclasses.replace(cfg, n_heads=3, d_head=None).d_head == 4
