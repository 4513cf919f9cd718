"""Tests of lmlab.attribution: zero-ablation of heads and direct logit attribution."""

from __future__ import annotations

import lmlab
import pytest
import torch
from lmlab.core.model import ModelConfig, TinyTransformer
from lmlab.inside.attribution import LogitAttribution, ablate_heads, check_heads, logit_attribution

ATOL = 1e-9  # the models below run in float64

CONFIGS = {
    "attn-only": dict(),
    "attn-only-3-heads": dict(n_heads=3, d_head=5, pos_emb="none"),
    "mlp-ln": dict(d_mlp=24, layer_norm=True),
    "mlp-ln-sinusoidal": dict(d_mlp=24, layer_norm=True, pos_emb="sinusoidal", act="relu"),
}


def make(seed: int = 0, **kw) -> TinyTransformer:
    lmlab.seed_everything(seed)
    base = dict(n_vocab=13, n_ctx=12, d_model=16, n_layers=2, n_heads=2, init_std=0.3)
    base.update(kw)
    model = TinyTransformer(ModelConfig(**base)).double()
    if base.get("layer_norm"):
        with torch.no_grad():  # LayerNorm gains other than 1, so that gamma is really tested
            for module in model.modules():
                if isinstance(module, torch.nn.LayerNorm):
                    module.weight.uniform_(0.5, 1.5)
    return model


def tokens(model: TinyTransformer, batch: int = 3, seed: int = 1) -> torch.Tensor:
    g = lmlab.generator(seed)
    return torch.randint(0, model.cfg.n_vocab, (batch, model.cfg.n_ctx), generator=g)


def head_by_hand(x: torch.Tensor, model: TinyTransformer, l: int, h: int) -> torch.Tensor:
    """The write of head h of layer l on x (batch, n, d_model), row-per-token, from the equations (not the
    package's attention code): softmax of the masked scaled scores, times the values, times W_O."""
    q, k, v = (x @ W(l, h).T for W in (model.W_Q, model.W_K, model.W_V))  # (batch, n, d_head)
    scores = model.cfg.scale * q @ k.transpose(-1, -2)  # (batch, n, n): query i, key j
    n = x.shape[1]
    future = torch.ones(n, n, dtype=torch.bool).triu(1)
    A = scores.masked_fill(future, float("-inf")).softmax(-1)
    return A @ v @ model.W_O(l, h).T


def by_hand(model: TinyTransformer, toks: torch.Tensor, removed: set[tuple[int, int]]) -> torch.Tensor:
    """Logits of an attention-only model without LayerNorm, computed from the equations with the writes of the
    heads in `removed` left out of the residual sum."""
    n = toks.shape[1]
    x = model.W_E().T[toks] + model.W_pos()[:, :n].T  # X^0, row-per-token
    for l in range(model.cfg.n_layers):
        write = torch.zeros_like(x)
        for h in range(model.cfg.n_heads):
            if (l, h) in removed:
                continue
            write = write + head_by_hand(x, model, l, h)
        x = x + write
    return x @ model.W_U().T


# ---------------------------------------------------------------------------------------------------- ablation


@pytest.mark.parametrize("removed", [[], [(0, 0)], [(0, 1)], [(1, 0)], [(0, 1), (1, 1)], [(0, 0), (0, 1)]])
def test_ablation_equals_residual_sum_without_the_head(removed):
    model = make()
    toks = tokens(model)
    with torch.no_grad():
        assert torch.allclose(model(toks), by_hand(model, toks, set()), atol=ATOL)  # the reference is right
        with ablate_heads(model, removed):
            ablated = model(toks)
        expected = by_hand(model, toks, set(removed))
    assert torch.allclose(ablated, expected, atol=ATOL)
    if removed:
        assert (ablated - model(toks)).abs().max() > 1e-3  # and the ablation did something


@pytest.mark.parametrize(
    "kw", [dict(layer_norm=True), dict(layer_norm=True, pos_emb="sinusoidal", n_heads=3, d_head=4)]
)
def test_ablating_a_last_layer_head_subtracts_its_cached_write(kw):
    """Attention-only with LayerNorm: nothing reads a last-layer head's write but the final LayerNorm."""
    model = make(**kw)
    toks = tokens(model)
    L = model.cfg.n_layers - 1
    with torch.no_grad():
        _, cache = model.run_with_cache(toks)
        for h in range(model.cfg.n_heads):
            expected = model.ln_final(cache.resid[-1] - cache.head_out[L][:, h]) @ model.W_U().T
            with ablate_heads(model, [(L, h)]):
                assert torch.allclose(model(toks), expected, atol=ATOL)


def test_ablating_every_head_leaves_the_zero_layer_model():
    model = make()
    toks = tokens(model)
    every = [(l, h) for l in range(2) for h in range(2)]
    with torch.no_grad(), ablate_heads(model, every):
        logits = model(toks)
    direct = (model.W_E().T[toks] + model.W_pos()[:, : toks.shape[1]].T) @ model.W_U().T
    assert torch.allclose(logits, direct, atol=ATOL)


def test_weights_are_restored_exactly_also_after_an_error():
    model = make(**CONFIGS["mlp-ln"])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with ablate_heads(model, [(0, 1), (1, 0)]) as m:
        assert m is model
        assert torch.count_nonzero(model.W_O(0, 1)) == 0 and torch.count_nonzero(model.W_O(1, 0)) == 0
        assert torch.equal(model.W_O(0, 0), before["blocks.0.attn.W_O"][0])  # the other heads stay
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    with pytest.raises(RuntimeError, match="inside"), ablate_heads(model, [(1, 1)]):
        assert torch.count_nonzero(model.W_O(1, 1)) == 0
        raise RuntimeError("an error inside the block")
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_nested_and_repeated_ablations_restore_the_weights():
    model = make()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with ablate_heads(model, [(0, 0), (0, 0)]), ablate_heads(model, [(0, 0), (1, 1)]):
        assert torch.count_nonzero(model.W_O(0, 0)) == 0
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize(
    "heads, error, match",
    [
        ([(2, 0)], ValueError, r"layer must be in \[0, 2\), got 2"),
        ([(-1, 0)], ValueError, r"layer must be in \[0, 2\)"),
        ([(0, 2)], ValueError, r"head must be in \[0, 2\), got 2"),
        ([(0, 1.0)], TypeError, "head must be an int"),
        ([(True, 0)], TypeError, "layer must be an int"),
        ([(0, 0, 0)], TypeError, r"\(layer, head\) pair"),
        ([0], TypeError, r"\(layer, head\) pair"),
        ("01", TypeError, "iterable of"),
        (None, TypeError, "iterable of"),
    ],
)
def test_bad_heads_raise_clear_errors_and_change_nothing(heads, error, match):
    model = make()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(error, match=match), ablate_heads(model, [(0, 0), *heads] if isinstance(heads, list) else heads):
        pass
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_check_heads_sorts_and_deduplicates():
    model = make()
    assert check_heads(model, [(1, 0), (0, 1), (1, 0)]) == [(0, 1), (1, 0)]
    with pytest.raises(TypeError, match="TinyTransformer"):
        check_heads(torch.nn.Linear(2, 2), [(0, 0)])


# ---------------------------------------------------------------------------------------------------- attribution


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("centered", [False, True])
def test_attributions_add_up_to_the_logit(name, centered):
    model = make(**CONFIGS[name])
    toks = tokens(model)
    targets = torch.roll(toks, -1, dims=1)
    attr = logit_attribution(model, toks, targets, centered=centered)
    assert isinstance(attr, LogitAttribution)
    batch, n = toks.shape
    assert attr.heads.shape == (batch, n, model.cfg.n_layers, model.cfg.n_heads)
    assert (attr.mlp is None) == (model.cfg.d_mlp is None)
    with torch.no_grad():
        logits = model(toks)
    chosen = logits.gather(-1, targets[..., None])[..., 0]
    if centered:
        chosen = chosen - logits.mean(-1)
    assert torch.allclose(attr.logit, chosen, atol=ATOL)
    assert torch.allclose(attr.total(), attr.logit, atol=ATOL)
    # leaving the embedding and the MLPs out leaves exactly their share
    rest = attr.embed + (attr.mlp.sum(-1) if attr.mlp is not None else 0)
    assert torch.allclose(attr.heads.sum((-1, -2)), attr.logit - rest, atol=ATOL)
    assert attr.heads.abs().min() >= 0 and attr.heads.abs().max() > 1e-3  # not all zero


def test_a_last_layer_heads_attribution_is_its_ablation_effect():
    """Without LayerNorm a last-layer head acts on the logits only directly, so its attribution is exactly the
    logit lost when it is ablated; for a first-layer head the two differ (it also acts through layer 1)."""
    model = make()
    toks = tokens(model)
    targets = torch.roll(toks, -1, dims=1)
    attr = logit_attribution(model, toks, targets)
    with torch.no_grad():
        full = model(toks).gather(-1, targets[..., None])[..., 0]
        for l, h in [(1, 0), (1, 1), (0, 0)]:
            with ablate_heads(model, [(l, h)]):
                lost = full - model(toks).gather(-1, targets[..., None])[..., 0]
            if l == 1:
                assert torch.allclose(attr.heads[:, :, l, h], lost, atol=ATOL)
            else:
                assert not torch.allclose(attr.heads[:, :, l, h], lost, atol=1e-3)


def test_attribution_of_a_head_is_the_unembedded_write():
    model = make()
    toks = tokens(model)
    targets = torch.roll(toks, -1, dims=1)
    attr = logit_attribution(model, toks, targets)
    with torch.no_grad():
        _, cache = model.run_with_cache(toks)
    W_U = model.W_U()
    expected = (cache.head_out[0][:, 1] * W_U[targets]).sum(-1)
    assert torch.allclose(attr.heads[:, :, 0, 1], expected, atol=ATOL)


def test_zero_layer_model_has_only_the_embedding_term():
    model = make(n_layers=0)
    toks = tokens(model)
    attr = logit_attribution(model, toks, toks)
    assert attr.heads.shape == (*toks.shape, 0, 2)
    assert torch.allclose(attr.embed, attr.logit, atol=ATOL)


@pytest.mark.parametrize(
    "targets, error, match",
    [
        (torch.zeros(3, 11, dtype=torch.long), ValueError, "shape of tokens"),
        (torch.zeros(3, 12), TypeError, "integer"),
        (torch.full((3, 12), 13), ValueError, r"\[0, 13\)"),
        ([[0] * 12] * 3, TypeError, "integer"),
    ],
)
def test_bad_targets_raise(targets, error, match):
    model = make()
    with pytest.raises(error, match=match):
        logit_attribution(model, tokens(model), targets)


def test_attribution_rejects_a_foreign_model():
    with pytest.raises(TypeError, match="TinyTransformer"):
        logit_attribution(torch.nn.Linear(2, 2), torch.zeros(1, 2, dtype=torch.long), torch.zeros(1, 2))
