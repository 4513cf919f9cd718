"""lmlab.train: the masked loss equals PyTorch's reference, and the loop trains."""

from __future__ import annotations

import math

import lmlab
import pytest
import torch
import torch.nn.functional as F
from lmlab.core.model import ModelConfig, TinyTransformer
from lmlab.core.tasks import BigramLanguage
from lmlab.core.train import History, masked_cross_entropy, next_token_loss, train
from torch import nn


def test_masked_cross_entropy_matches_ignore_index() -> None:
    g = lmlab.generator(0)
    logits = torch.randn(3, 7, 11, generator=g, dtype=torch.float64)
    targets = torch.randint(0, 11, (3, 7), generator=g)
    mask = torch.rand(3, 7, generator=g) > 0.4
    ref = F.cross_entropy(logits.transpose(1, 2), targets.masked_fill(~mask, -100), ignore_index=-100)
    assert torch.allclose(masked_cross_entropy(logits, targets, mask), ref, atol=1e-12)
    # the targets at masked-out positions do not matter, even if they are not valid ids
    junk = targets.masked_fill(~mask, 10_000)
    assert torch.allclose(masked_cross_entropy(logits, junk, mask), ref, atol=1e-12)
    # no mask: the plain mean over every position
    assert torch.allclose(masked_cross_entropy(logits, targets), F.cross_entropy(logits.transpose(1, 2), targets))
    # an all-True mask equals no mask
    full = torch.ones_like(mask)
    assert torch.allclose(masked_cross_entropy(logits, targets, full), masked_cross_entropy(logits, targets))


def test_masked_cross_entropy_gradient_ignores_masked_positions() -> None:
    logits = torch.randn(2, 5, 4, requires_grad=True)
    targets = torch.randint(0, 4, (2, 5))
    mask = torch.tensor([[True, False, True, False, False], [False, False, False, True, True]])
    masked_cross_entropy(logits, targets, mask).backward()
    assert logits.grad is not None
    assert bool((logits.grad[~mask] == 0).all())
    assert bool((logits.grad[mask].abs().sum(-1) > 0).all())


def test_masked_cross_entropy_errors() -> None:
    logits, targets = torch.randn(2, 3, 4), torch.zeros(2, 3, dtype=torch.long)
    with pytest.raises(ValueError, match="no position"):
        masked_cross_entropy(logits, targets, torch.zeros(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="targets"):
        masked_cross_entropy(logits, torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="mask"):
        masked_cross_entropy(logits, targets, torch.ones(3, 2, dtype=torch.bool))
    with pytest.raises(TypeError, match="mask"):
        masked_cross_entropy(logits, targets, torch.ones(2, 3))
    with pytest.raises(ValueError, match="logits"):
        masked_cross_entropy(torch.randn(2, 3), targets)


def test_training_a_zero_layer_model_approaches_the_bigram_entropy() -> None:
    lmlab.seed_everything(0)
    lang = BigramLanguage(8, seed=0)
    model = TinyTransformer(ModelConfig(n_vocab=8, n_ctx=32, d_model=8, n_layers=0, pos_emb="none"))
    with torch.no_grad():
        before = float(next_token_loss(model, lang.batches(64, 32, seed=99)(0)))
    hist = train(model, lang.batches(64, 32), steps=150, lr=0.05, schedule="cosine", warmup=10)
    assert isinstance(hist, History) and isinstance(hist, list) and len(hist) == 150
    assert all(isinstance(v, float) and math.isfinite(v) for v in hist)
    with torch.no_grad():
        after = float(next_token_loss(model, lang.batches(256, 32, seed=99)(0)))
    assert math.isclose(before, math.log(8), abs_tol=0.05)  # near-zero weights predict uniformly
    assert after < lang.entropy() + 0.1  # the bound is the language's entropy
    assert sum(hist[-10:]) / 10 < sum(hist[:10]) / 10 - 0.3


def test_sgd_iterator_eval_hook_and_params_subset() -> None:
    lmlab.seed_everything(1)
    model = TinyTransformer(ModelConfig(n_vocab=5, n_ctx=8, d_model=4, n_layers=1, n_heads=2, d_mlp=8))
    x = torch.randint(0, 5, (16, 8), generator=lmlab.generator(0))
    batches = [(x, (x + 1) % 5)] * 12  # an iterable that runs out after 12 steps
    frozen = {k: v.clone() for k, v in model.state_dict().items()}
    calls = []

    def eval_fn(m: nn.Module) -> float:
        assert not m.training and not torch.is_grad_enabled()
        calls.append(1)
        return float(next_token_loss(m, (x, (x + 1) % 5)))

    hist = train(
        model,
        iter(batches),
        steps=50,
        lr=0.5,
        optimizer="sgd",
        params=[model.unembed.W_U],
        eval_fn=eval_fn,
        eval_every=5,
        grad_clip=None,
    )
    assert len(hist) == 12  # the iterator ran out first
    assert [s for s, _ in hist.evals] == [5, 10, 12]
    assert hist.evals[-1][1] < hist.evals[0][1]
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, frozen[k])}
    assert changed == {"unembed.W_U"}


def test_training_is_deterministic() -> None:
    def run() -> tuple[list[float], torch.Tensor]:
        lmlab.seed_everything(3)
        model = TinyTransformer(ModelConfig(n_vocab=6, n_ctx=16, d_model=8, n_layers=1, n_heads=2))
        hist = train(model, BigramLanguage(6, seed=1).batches(8, 16, seed=4), steps=15, lr=0.01)
        return list(hist), model.W_U()

    (h1, w1), (h2, w2) = run(), run()
    assert h1 == h2 and torch.equal(w1, w2)


def test_train_argument_checks() -> None:
    model = TinyTransformer(ModelConfig(n_vocab=4, n_ctx=4, d_model=4, n_layers=0))
    b = BigramLanguage(4).batches(2, 4)
    for kwargs, word in [
        ({"steps": 0}, "steps"),
        ({"steps": 2, "lr": -1.0}, "lr"),
        ({"steps": 2, "optimizer": "adagrad"}, "optimizer"),
        ({"steps": 2, "schedule": "linear"}, "schedule"),
        ({"steps": 2, "warmup": 3}, "warmup"),
        ({"steps": 2, "grad_clip": 0.0}, "grad_clip"),
        ({"steps": 2, "eval_every": 0}, "eval_every"),
    ]:
        with pytest.raises(ValueError, match=word):
            train(model, b, **kwargs)
    with pytest.raises(TypeError, match="batch"):
        train(model, lambda step: torch.zeros(2, 4, dtype=torch.long), steps=1)


class _Two(nn.Module):
    """Two parameters with constant gradients: loss = <a, x> + <b, x>, so dL/da = dL/db = x."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.zeros(3, dtype=torch.float64))
        self.b = nn.Parameter(torch.zeros(3, dtype=torch.float64))


def _linear_loss(m: nn.Module, batch: tuple[torch.Tensor]) -> torch.Tensor:
    (x,) = batch
    return (m.a * x).sum() + (m.b * x).sum()


def test_parameter_groups_keep_their_own_rates_under_the_schedule() -> None:
    m = _Two()
    x = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    groups = [{"params": [m.a], "lr": 0.1}, {"params": [m.b]}]  # b gets the lr argument
    hist = train(
        m, lambda s: (x,), steps=4, lr=0.01, optimizer="sgd", grad_clip=None, loss_fn=_linear_loss,
        params=groups, warmup=2, progress=False,
    )  # fmt: skip
    assert len(hist) == 4
    factor = 0.5 + 1.0 + 1.0 + 1.0  # linear warm-up over 2 steps, then constant
    assert torch.allclose(m.a.detach(), -0.1 * factor * x, atol=1e-12)
    assert torch.allclose(m.b.detach(), -0.01 * factor * x, atol=1e-12)


def test_training_a_subset_leaves_every_other_weight_bit_identical() -> None:
    lmlab.seed_everything(2)
    model = TinyTransformer(ModelConfig(n_vocab=6, n_ctx=8, d_model=8, n_layers=1, n_heads=2, d_mlp=16))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    chosen = {"blocks.0.mlp.W_in", "unembed.W_U"}
    named = dict(model.named_parameters())
    groups = [{"params": [named["blocks.0.mlp.W_in"]], "lr": 0.05}, {"params": [named["unembed.W_U"]], "lr": 0.01}]
    for params in (groups, [named[n] for n in sorted(chosen)]):
        train(model, BigramLanguage(6, seed=0).batches(4, 8, seed=1), steps=5, params=params, progress=False)
        for k, v in model.state_dict().items():
            assert torch.equal(v, before[k]) != (k in chosen), k


def test_adam_is_torch_adam_and_mode_keep_leaves_the_mode() -> None:
    def model() -> TinyTransformer:
        lmlab.seed_everything(5)
        return TinyTransformer(ModelConfig(n_vocab=6, n_ctx=8, d_model=8, n_layers=1, n_heads=2)).eval()

    source = BigramLanguage(6, seed=0).batches(4, 8, seed=2)
    ref = model()
    opt = torch.optim.Adam(ref.parameters(), lr=0.01)
    losses = []
    for step in range(6):
        loss = next_token_loss(ref, source(step))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    modes = []

    def loss_fn(m: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        modes.append(m.training)
        return next_token_loss(m, batch)

    m = model()
    hist = train(m, source, steps=6, lr=0.01, optimizer="adam", grad_clip=None, loss_fn=loss_fn, mode="keep")
    assert list(hist) == losses and not any(modes) and not m.training
    assert all(torch.equal(a, b) for a, b in zip(ref.state_dict().values(), m.state_dict().values()))
    modes.clear()
    train(model(), source, steps=2, loss_fn=loss_fn)
    assert all(modes)  # the default mode "train"


def test_a_custom_loss_takes_any_batch() -> None:
    m = _Two()
    x = torch.ones(3, dtype=torch.float64)
    hist = train(m, lambda s: {"x": x}, steps=2, loss_fn=lambda mm, b: _linear_loss(mm, (b["x"],)), progress=False)
    assert len(hist) == 2
    with pytest.raises(TypeError, match="params"):
        train(m, lambda s: (x,), steps=1, loss_fn=_linear_loss, params=[m.a, 3])
    with pytest.raises(ValueError, match="nothing to train"):
        train(m, lambda s: (x,), steps=1, loss_fn=_linear_loss, params=[])
    with pytest.raises(ValueError, match="mode"):
        train(m, lambda s: (x,), steps=1, loss_fn=_linear_loss, mode="eval")
