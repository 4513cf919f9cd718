"""lmlab.lora, lmlab.lora_init, lmlab.lowrank: adapters start where they should, merge exactly, count right."""

from __future__ import annotations

import copy
import math

import lmlab
import pytest
import torch
from lmlab import lora, lowrank
from lmlab.adapting.lora_init import INITS, init_factors, lora_scale
from lmlab.core.model import ModelConfig, TinyTransformer
from lmlab.core.train import next_token_loss
from torch import nn

TARGETS = ["W_Q", "W_K", "W_V", "W_O", "W_in", "W_out"]


def _linear(m: int = 12, l: int = 9, seed: int = 0) -> nn.Linear:
    lmlab.seed_everything(seed)
    return nn.Linear(l, m, bias=True).double()


def _model(seed: int = 0) -> TinyTransformer:
    lmlab.seed_everything(seed)
    cfg = ModelConfig(n_vocab=11, n_ctx=8, d_model=16, n_layers=2, n_heads=2, d_mlp=24)
    return TinyTransformer(cfg).double()


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = lmlab.generator(seed)
    toks = torch.randint(0, 11, (4, 9), generator=g)
    return toks[:, :-1], toks[:, 1:]


def test_standard_init_starts_at_the_frozen_layer() -> None:
    base = _linear()
    x = torch.randn(5, 9, dtype=torch.float64)
    ref = base(x)
    layer = lora.LoRALinear(copy.deepcopy(base), 3, generator=lmlab.generator(1))
    assert torch.count_nonzero(layer.lora.A @ layer.lora.B) == 0  # A = 0 exactly, B random
    assert torch.count_nonzero(layer.lora.B) == layer.lora.B.numel()
    assert torch.equal(layer(x), ref)
    assert [n for n, p in layer.named_parameters() if p.requires_grad] == ["lora.A", "lora.B"]


@pytest.mark.parametrize("init", ["pissa", "lora-ga"])
def test_svd_inits_keep_the_output_at_step_zero(init: str) -> None:
    base = _linear()
    x = torch.randn(5, 9, dtype=torch.float64)
    grad = torch.randn(12, 9, dtype=torch.float64)
    layer = lora.LoRALinear(copy.deepcopy(base), 3, init, scale=0.5, grad=grad)
    assert torch.allclose(layer(x), base(x), atol=1e-12)
    assert torch.linalg.matrix_norm(layer.lora.delta()) > 0.1  # the adapter itself is not zero


def test_pissa_moves_the_top_singular_triplets() -> None:
    W0 = torch.randn(10, 7, dtype=torch.float64)
    A, B, W_res = init_factors(W0, 3, "pissa", scale=2.0)
    U, S, Vh = torch.linalg.svd(W0)
    assert torch.allclose(2.0 * A @ B, (U[:, :3] * S[:3]) @ Vh[:3], atol=1e-12)
    assert torch.allclose(torch.linalg.svdvals(W_res), torch.cat([S[3:], S.new_zeros(3)]), atol=1e-10)


def test_lora_ga_first_step_is_the_gradient_top_2k() -> None:
    """One SGD step on A and B moves s A B by -lr s^2 c^2 (top-2k part of G) to first order."""
    m, l, k, s = 10, 8, 2, 1.0
    G = torch.randn(m, l, dtype=torch.float64)
    A, B, _ = init_factors(torch.zeros(m, l, dtype=torch.float64), k, "lora-ga", scale=s, grad=G, gamma=16.0)
    gA, gB = s * G @ B.T, s * A.T @ G  # chain rule through W = W_0 + s A B
    first_order = s * (-gA @ B - A @ gB)
    U, S, Vh = torch.linalg.svd(G)
    c2 = math.sqrt(m) / 16.0
    top = (U[:, : 2 * k] * S[: 2 * k]) @ Vh[: 2 * k]
    assert torch.allclose(first_order, -(s**2) * c2 * top, atol=1e-10)


def test_merge_unmerge_round_trip() -> None:
    layer = lora.LoRALinear(_linear(), 4, "xavier", scale=0.3, generator=lmlab.generator(0))
    x = torch.randn(6, 9, dtype=torch.float64)
    before, W_before = layer(x), layer.base.weight.clone()
    layer.merge()
    assert torch.allclose(layer(x), before, atol=1e-12)
    assert not torch.allclose(layer.base.weight, W_before)
    layer.unmerge()
    assert torch.allclose(layer.base.weight, W_before, atol=1e-12)
    assert torch.allclose(layer(x), before, atol=1e-12)


def test_add_lora_on_a_transformer_and_merge() -> None:
    model = _model()
    tokens, _ = _batch()
    ref = model(tokens)
    fs = lora.add_lora(model, TARGETS, 2, "standard", generator=lmlab.generator(0))
    assert len(fs) == 2 * len(TARGETS)
    assert torch.allclose(model(tokens), ref, atol=1e-12)
    with torch.no_grad():  # move every adapter, then merging must keep the outputs
        for f in fs.values():
            f.A.normal_(0, 1.0)
    adapted = model(tokens)
    assert float((adapted - ref).abs().max().detach()) > 1e-4
    assert set(lora.adapters(model)) == set(fs)
    lora.merge_lora(model)
    assert torch.allclose(model(tokens), adapted, atol=1e-12)
    assert not lora.adapters(model)


def test_pissa_on_a_transformer_keeps_outputs() -> None:
    model = _model()
    tokens, _ = _batch()
    ref = model(tokens)
    lora.add_lora(model, TARGETS, 3, "pissa")
    assert torch.allclose(model(tokens), ref, atol=1e-10)


def test_lora_ga_on_a_transformer_keeps_outputs_and_aligns_with_the_gradient() -> None:
    model = _model()
    batch = _batch()
    ref = model(batch[0])
    grads = lora.weight_gradients(model, TARGETS, batch)
    assert set(grads) == {n for n, _ in model.named_parameters() if n.split(".")[-1] in TARGETS}
    assert all(p.requires_grad for p in model.parameters())  # flags restored
    fs = lora.add_lora(model, TARGETS, 2, "lora-ga", grads=grads)
    assert torch.allclose(model(batch[0]), ref, atol=1e-10)
    W_in = grads["blocks.0.mlp.W_in"]
    _, _, Vh = torch.linalg.svd(W_in)
    B = fs["blocks.0.mlp.W_in"].B  # rows span the gradient's top right singular vectors
    assert torch.allclose(B @ B.T, B @ Vh[:2].T @ Vh[:2] @ B.T, atol=1e-10)


def test_zero_zero_gradients_are_exactly_zero_and_nothing_moves() -> None:
    model = _model()
    lora.add_lora(model, TARGETS, 2, "zero")
    batch = _batch()
    loss = next_token_loss(model, batch)
    loss.backward()
    grads = [p.grad for p in lora.lora_parameters(model)]
    assert all(g is not None and torch.count_nonzero(g) == 0 for g in grads)
    before = float(next_token_loss(model, batch).detach())
    lora.finetune(model, lambda s: _batch(s), steps=5, lr=0.1)
    assert float(next_token_loss(model, batch).detach()) == before
    assert all(torch.count_nonzero(p) == 0 for p in lora.lora_parameters(model))


def test_parameter_and_byte_counts() -> None:
    m, l, k = 12, 9, 3
    layer = lora.LoRALinear(nn.Linear(l, m, bias=False), k)
    counts = lora.lora_bytes(layer)
    assert counts["params"] == m * k + k * l
    assert counts["bytes"] == 4 * k * (m + l)
    assert counts["frozen_params"] == m * l
    model = _model().float()
    lora.add_lora(model, ["W_Q", "W_O", "W_in"], 2)
    d, H, e, f = 16, 2, 8, 24
    expected = 2 * (2 * (H * e + d) + 2 * (d + H * e) + 2 * (f + d))
    assert lora.lora_bytes(model)["params"] == expected


def test_param_groups_give_a_the_larger_rate() -> None:
    model = _model()
    lora.add_lora(model, ["W_in"], 2)
    groups = lora.lora_param_groups(model, 1e-3, ratio=16)
    assert groups[0]["lr"] == pytest.approx(1.6e-2) and groups[1]["lr"] == pytest.approx(1e-3)
    assert all(p.shape[1] == 2 for p in groups[0]["params"])  # A is (m, k)


def test_rank_floor_matches_eckart_young() -> None:
    g = lmlab.generator(0)
    sig = [2.0, 1.0, 0.5, 0.25, 0.125]
    delta = lowrank.planted_update(8, 6, sig, g)
    ranks = [1, 2, 3]
    fit = lowrank.fit_lowrank(delta, ranks, lr=0.05, steps=600, generator=g)
    floors = torch.tensor([lowrank.eckart_young_floor(sig, k) for k in ranks], dtype=fit.losses.dtype)
    assert torch.all(fit.losses[-1] >= floors * (1 - 1e-4))
    assert torch.allclose(fit.losses[-1], floors, rtol=1e-3)


def test_batched_adam_matches_torch_adam_on_lora_linear() -> None:
    """fit_lowrank's hand-written Adam equals torch.optim.Adam on a LoRALinear fed white inputs."""
    g = lmlab.generator(0)
    m, l, k, n = 6, 5, 2, 20
    delta = lowrank.planted_update(m, l, [1.0, 0.5, 0.2], g).double()
    fit = lowrank.fit_lowrank(delta, [k], lr=0.01, ratio=4.0, steps=15, cosine=False, generator=lmlab.generator(3))
    Q = lowrank.random_orthonormal(n, l, g, torch.float64) * math.sqrt(n)  # X^T X = n I
    base = nn.Linear(l, m, bias=False).double()
    with torch.no_grad():
        base.weight.zero_()
    layer = lora.LoRALinear(base, k, generator=lmlab.generator(3))
    opt = torch.optim.Adam(lora.lora_param_groups(layer, 0.01, ratio=4.0))
    Y = Q @ delta.T
    for _ in range(15):
        loss = ((layer(Q) - Y) ** 2).sum() / n
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert torch.allclose(layer.lora.A, fit.A[0], atol=1e-8)
    assert torch.allclose(layer.lora.B, fit.B[0], atol=1e-8)


def test_scales() -> None:
    assert lora_scale(8, 4) == 2.0
    assert lora_scale(8, 4, "rslora") == 4.0
    with pytest.raises(ValueError, match="known rules"):
        lora_scale(8, 4, "other")


def test_errors() -> None:
    with pytest.raises(ValueError, match=r"rank must be in \[1, min\(m, l\)\] = \[1, 9\]"):
        lora.LoRALinear(_linear(), 10)
    with pytest.raises(ValueError, match="rank must be in"):
        lora.LoRALinear(_linear(), 0)
    with pytest.raises(ValueError, match="known inits: " + ", ".join(INITS)):
        lora.LoRALinear(_linear(), 2, "kaiming")
    with pytest.raises(TypeError, match="wraps an nn.Linear, got Conv1d"):
        lora.LoRALinear(nn.Conv1d(3, 3, 1), 2)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs grad"):
        lora.LoRALinear(_linear(), 2, "lora-ga")
    with pytest.raises(ValueError, match="2 \\* rank"):
        lora.LoRALinear(_linear(), 5, "lora-ga", grad=torch.zeros(12, 9, dtype=torch.float64))
    with pytest.raises(ValueError, match="matches no nn.Linear"):
        lora.add_lora(_model(), ["W_nope"], 2)
    with pytest.raises(ValueError, match="no LoRA adapters"):
        lora.lora_param_groups(_model(), 1e-3)


def test_add_lora_is_atomic_and_explicit() -> None:
    """A failing target leaves the model untouched; no empty target list; only known 3-D head stacks."""
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [p.requires_grad for p in model.parameters()]
    # W_Q matches and is valid; W_nope fails afterwards: nothing may have changed
    with pytest.raises(ValueError, match="matches no nn.Linear"):
        lora.add_lora(model, ["W_Q", "W_nope"], 2)
    # lora-ga without a gradient for the second target fails after the first target is planned
    grads = lora.weight_gradients(model, ["W_in"], _batch())
    with pytest.raises(ValueError, match="needs grads"):
        lora.add_lora(model, ["W_in", "W_out"], 2, "lora-ga", grads=grads)
    with pytest.raises(ValueError, match="rank must be in"):
        lora.add_lora(model, ["W_in", "W_U"], 12)  # fits W_in (24 x 16), not W_U (11 x 16)
    assert not lora.adapters(model)
    assert [p.requires_grad for p in model.parameters()] == flags
    after = model.state_dict()
    assert set(after) == set(before) and all(torch.equal(after[k], before[k]) for k in before)
    with pytest.raises(ValueError, match="at least one weight"):
        lora.add_lora(model, [], 2)

    class Stacked(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.kernel = nn.Parameter(torch.randn(2, 3, 4))

    with pytest.raises(ValueError, match="per-head stacks"):
        lora.add_lora(Stacked(), ["kernel"], 1)


def test_merged_flag_is_saved_in_the_state_dict() -> None:
    layer = lora.LoRALinear(_linear(), 3, "xavier", generator=lmlab.generator(0))
    x = torch.randn(5, 9, dtype=torch.float64)
    out = layer(x)
    layer.merge()
    restored = lora.LoRALinear(_linear(), 3, generator=lmlab.generator(1))
    restored.load_state_dict(layer.state_dict())
    assert restored.merged
    assert torch.allclose(restored(x), out, atol=1e-12)  # not s A B added twice
    restored.unmerge()
    assert not restored.merged and torch.allclose(restored(x), out, atol=1e-12)


def test_fit_lowrank_refuses_a_misshapen_W0_instead_of_broadcasting_it() -> None:
    delta = torch.randn(6, 5, generator=lmlab.generator(0))
    for W0 in (torch.zeros(1, 5), torch.zeros(6, 1), torch.zeros(5)):
        with pytest.raises(ValueError, match="W0 must have the shape of delta"):
            lowrank.fit_lowrank(delta, [2], lr=0.01, steps=2, W0=W0, generator=lmlab.generator(0))
    with pytest.raises(ValueError, match="W0 must hold finite"):
        lowrank.fit_lowrank(delta, [2], lr=0.01, steps=2, W0=torch.full((6, 5), math.nan))
    with pytest.raises(TypeError, match="W0 must be a torch.Tensor"):
        lowrank.fit_lowrank(delta, [2], lr=0.01, steps=2, W0=[[0.0] * 5] * 6)
    with pytest.raises(ValueError, match="ranks"):
        lowrank.fit_lowrank(delta, [6], lr=0.01, steps=2)
    with pytest.raises(TypeError, match="steps"):
        lowrank.fit_lowrank(delta, [2], lr=0.01, steps=2.0)


def test_eckart_young_floor_refuses_nan_and_a_matrix() -> None:
    assert lowrank.eckart_young_floor([1.0, 3.0, 2.0], 1) == pytest.approx(5.0)
    with pytest.raises(ValueError, match="sigmas must be finite"):
        lowrank.eckart_young_floor([3.0, math.nan, 1.0], 1)
    with pytest.raises(ValueError, match="sigmas must be finite"):
        lowrank.eckart_young_floor([3.0, -1.0], 1)
    with pytest.raises(ValueError, match="sigmas must be 1-D"):
        lowrank.eckart_young_floor(torch.eye(3), 1)
    with pytest.raises(TypeError, match="k must be an int"):
        lowrank.eckart_young_floor([3.0, 1.0], 1.0)
    with pytest.raises(ValueError, match="k must be an int >= 0"):
        lowrank.eckart_young_floor([3.0, 1.0], -1)


@pytest.mark.parametrize("ratio", [None, 4.0])
def test_finetune_is_train_with_adam_on_the_groups(ratio: float | None) -> None:
    """lora.finetune is a thin caller of train.train: Adam on the groups, no clipping, constant rate."""
    from lmlab.core.train import train

    def adapted() -> TinyTransformer:
        model = _model(3)
        lora.add_lora(model, ["W_in", "W_Q"], 2, "xavier", generator=lmlab.generator(1))
        return model

    a, b = adapted(), adapted()
    frozen = {k: v.clone() for k, v in a.state_dict().items() if "lora" not in k}
    ga = None if ratio is None else lora.lora_param_groups(a, 0.01, ratio)
    gb = None if ratio is None else lora.lora_param_groups(b, 0.01, ratio)
    h1 = lora.finetune(a, _batch, steps=6, groups=ga, lr=0.01)
    h2 = train(b, _batch, steps=6, lr=0.01, optimizer="adam", grad_clip=None, params=gb, mode="keep", progress=False)
    assert list(h1) == list(h2)
    for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(v, w, rtol=0, atol=1e-12), k
        if k in frozen:
            assert torch.equal(v, frozen[k]), k  # only the adapters moved


def test_finetune_refuses_bad_groups() -> None:
    model = _model()
    lora.add_lora(model, ["W_in"], 2)
    with pytest.raises(TypeError, match="groups"):
        lora.finetune(model, _batch, steps=1, groups={"params": lora.lora_parameters(model)})
    with pytest.raises(ValueError, match="groups"):
        lora.finetune(model, _batch, steps=1, groups=[{"lr": 0.1}])
