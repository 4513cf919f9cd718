"""lmlab's LoRA layer against Hugging Face PEFT, the reference implementation most readers will meet.

The names differ (book/lora.md says so): PEFT's ``lora_A`` (r, l) is the homework's B, its ``lora_B`` (m, r) the
homework's A, and PEFT's ``scaling`` is ``lora_alpha / r`` (``alpha / sqrt(r)`` with ``use_rslora``), lmlab's s.
With the factors copied across, both layers compute the same function; PEFT's default and PiSSA initialisations
are lmlab's "standard" and "pissa".
"""

from __future__ import annotations

import math

import lmlab
import pytest
import torch
from lmlab import lora
from lmlab.adapting.lora_init import lora_scale
from torch import nn

peft = pytest.importorskip("peft")

M, L, RANK, ALPHA = 24, 20, 4, 8.0


def peft_layer(weight: torch.Tensor, bias: torch.Tensor, init: object, rslora: bool = False) -> nn.Module:
    """A one-layer model adapted by PEFT; returns the adapted ``LoraLayer``."""
    model = nn.Sequential(nn.Linear(L, M))
    with torch.no_grad():
        model[0].weight.copy_(weight)
        model[0].bias.copy_(bias)
    config = peft.LoraConfig(
        r=RANK, lora_alpha=ALPHA, target_modules=["0"], init_lora_weights=init, use_rslora=rslora, lora_dropout=0.0
    )
    return peft.get_peft_model(model, config).base_model.model[0]


@pytest.fixture()
def base() -> nn.Linear:
    layer = nn.Linear(L, M)
    g = lmlab.generator(0)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(M, L, generator=g))
        layer.bias.copy_(torch.randn(M, generator=g))
    return layer


@pytest.mark.parametrize("rule", ["lora", "rslora"])
def test_same_function_on_copied_factors(base: nn.Linear, rule: str) -> None:
    s = lora_scale(ALPHA, RANK, rule)
    ours = lora.LoRALinear(nn.Linear(L, M), RANK, "xavier", scale=s, generator=lmlab.generator(1))
    with torch.no_grad():
        ours.base.weight.copy_(base.weight)
        ours.base.bias.copy_(base.bias)
    theirs = peft_layer(base.weight, base.bias, init=False, rslora=rule == "rslora")
    assert theirs.scaling["default"] == pytest.approx(s)
    with torch.no_grad():  # PEFT's lora_A is the homework's B; its lora_B is the homework's A
        theirs.lora_A["default"].weight.copy_(ours.lora.B)
        theirs.lora_B["default"].weight.copy_(ours.lora.A)
    x = torch.randn(7, L, generator=lmlab.generator(2))
    torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-5)
    # and the update is not trivially zero: the factors matter
    assert (ours(x) - base(x)).abs().max() > 1e-2


def test_default_init_is_the_standard_init(base: nn.Linear) -> None:
    """PEFT zeroes lora_B (the homework's A) and draws lora_A (the homework's B) from U(-1/sqrt(l), 1/sqrt(l))."""
    theirs = peft_layer(base.weight, base.bias, init=True)
    ours = lora.LoRALinear(nn.Linear(L, M), RANK, "standard", generator=lmlab.generator(3))
    assert torch.count_nonzero(theirs.lora_B["default"].weight) == 0
    assert torch.count_nonzero(ours.lora.A) == 0
    bound = 1 / math.sqrt(L)
    for B in (theirs.lora_A["default"].weight, ours.lora.B):
        assert B.shape == (RANK, L)
        assert B.abs().max() <= bound
        assert B.abs().max() > 0.8 * bound  # spread over the whole interval, not a narrower one


def test_pissa_residual_and_factors_match(base: nn.Linear) -> None:
    s = lora_scale(ALPHA, RANK)
    theirs = peft_layer(base.weight, base.bias, init="pissa")
    ours = lora.LoRALinear(_copy(base), RANK, "pissa", scale=s)
    AB_theirs = theirs.lora_B["default"].weight @ theirs.lora_A["default"].weight
    torch.testing.assert_close(ours.lora.A @ ours.lora.B, AB_theirs, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(ours.base.weight, theirs.base_layer.weight, rtol=1e-4, atol=1e-4)
    x = torch.randn(5, L, generator=lmlab.generator(4))
    torch.testing.assert_close(ours(x), theirs(x), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(ours(x), base(x), rtol=1e-4, atol=1e-4)  # PiSSA starts at the base function


def _copy(layer: nn.Linear) -> nn.Linear:
    out = nn.Linear(L, M)
    out.load_state_dict(layer.state_dict())
    return out
