"""lmlab.pruning, lmlab.vision and lmlab.core.cost: exact sparsity, masks equal to torch's pruning utility, channel
pruning that shrinks the model, MAC counts against the formula and torch's FLOP counter, and accuracy kept after
pruning and fine-tuning."""

from __future__ import annotations

import lmlab
import pytest
import torch
from lmlab import pruning
from lmlab.compressing.vision import VGG, VGGConfig, accuracy, load_digits, train_classifier
from lmlab.core import cost
from torch import nn
from torch.nn.utils import prune as torch_prune


@pytest.fixture(scope="module")
def digits():
    return load_digits(seed=0, size=8)


@pytest.fixture(scope="module")
def trained(digits):
    """A small VGG trained for a few seconds on the 8x8 digits (fixed seed)."""
    lmlab.seed_everything(0)
    model = VGG(VGGConfig(channels=(8, 16, "M", 16, 32, "M")))
    train_classifier(model, digits, steps=250, batch=64, lr=0.01, warmup=10, seed=0)
    return model.eval()


@pytest.mark.parametrize("n", [1, 7, 10, 45, 288, 1001])
@pytest.mark.parametrize("s", [0.0, 0.05, 0.25, 0.5, 0.7, 0.9, 0.999])
def test_magnitude_mask_reaches_exact_sparsity_and_matches_torch(n: int, s: float) -> None:
    w = torch.randn(n, generator=lmlab.generator(n))
    mask = pruning.magnitude_mask(w, s)
    k = round(s * n)
    assert int((~mask).sum()) == k  # exactly k weights pruned ...
    if 0 < k < n:  # ... and they are the smallest in magnitude
        assert w[~mask].abs().max() <= w[mask].abs().min()
    lin = nn.Linear(n, 1, bias=False)
    with torch.no_grad():
        lin.weight.copy_(w.view(1, n))
    torch_prune.l1_unstructured(lin, "weight", amount=s)
    assert torch.equal(lin.weight_mask.bool().view(n), mask)


def test_round_half_to_even_is_stated() -> None:
    assert pruning.n_pruned(10, 0.25) == 2  # 2.5 -> 2
    assert pruning.n_pruned(10, 0.35) == 4  # 3.5 -> 4
    assert pruning.n_pruned(8, 0.3) == 2  # 2.4 -> 2


def test_fine_grained_prune_on_a_network_matches_torch_layer_by_layer() -> None:
    lmlab.seed_everything(1)
    model = VGG(VGGConfig(channels=(8, "M", 16)))
    ref = VGG(VGGConfig(channels=(8, "M", 16)))
    ref.load_state_dict(model.state_dict())
    plan = {"backbone.conv0": 0.3, "backbone.conv1": 0.8, "classifier": 0.55}
    masks = pruning.fine_grained_prune(model, plan)
    for name, s in plan.items():
        layer = dict(model.named_modules())[name]
        assert pruning.sparsity(layer.weight) == pytest.approx(round(s * layer.weight.numel()) / layer.weight.numel())
        torch_prune.l1_unstructured(dict(ref.named_modules())[name], "weight", amount=s)
        assert torch.equal(dict(ref.named_modules())[name].weight_mask.bool(), masks[name])
        assert torch.equal(dict(ref.named_modules())[name].weight, layer.weight)


def test_bad_sparsity_and_layers_raise() -> None:
    model = VGG(VGGConfig(channels=(4, 8)))
    for bad in [-0.1, 1.0, 1.5, True, "0.5", float("nan")]:
        with pytest.raises(ValueError, match="sparsity"):
            pruning.magnitude_mask(torch.randn(5), bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="sparsity"):
            pruning.channel_prune(model, bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="prunable layers"):
        pruning.fine_grained_prune(model, {"backbone.bn0": 0.5})
    with pytest.raises(ValueError, match="method"):
        pruning.channel_prune(model, 0.5, method="random")
    with pytest.raises(ValueError, match="one per conv"):
        pruning.channel_prune(model, [0.5, 0.5, 0.5])
    odd = VGG(VGGConfig(channels=(4, 8)))
    odd.backbone.add_module("drop", nn.Dropout())
    with pytest.raises(ValueError, match="Dropout"):
        pruning.channel_prune(odd, 0.3)
    with pytest.raises(ValueError, match="VGG-style"):
        pruning.channel_prune(nn.Sequential(nn.Conv2d(1, 4, 3)), 0.3)
    grouped = VGG(VGGConfig(channels=(4, 8)))
    grouped.backbone.conv1 = nn.Conv2d(4, 8, 3, padding=1, groups=2, bias=False)
    with pytest.raises(ValueError, match="grouped"):
        pruning.channel_prune(grouped, 0.3)


def test_keep_masked_training_keeps_exact_sparsity(digits) -> None:
    lmlab.seed_everything(0)
    model = VGG(VGGConfig(channels=(8, "M", 16)))
    masks = pruning.fine_grained_prune(model, {n: 0.6 for n in pruning.weight_layers(model)})
    with pruning.keep_masked(model, masks):
        train_classifier(model, digits, steps=15, batch=32, lr=0.01, weight_decay=0.01)
    for name, layer in pruning.weight_layers(model).items():
        assert bool((layer.weight[~masks[name]] == 0).all())
        assert pruning.sparsity(layer.weight) == pytest.approx(float((~masks[name]).float().mean()))


def test_sensitivity_scan_restores_the_model_and_hurts_monotonically_at_the_ends(trained, digits) -> None:
    before = {k: v.clone() for k, v in trained.state_dict().items()}
    scan = pruning.sensitivity_scan(
        trained, lambda m: accuracy(m, digits.x_val, digits.y_val), [0.0, 0.5, 0.95], ["backbone.conv1", "classifier"]
    )
    assert all(torch.equal(before[k], v) for k, v in trained.state_dict().items())
    base = accuracy(trained, digits.x_val, digits.y_val)
    for scores in scan.values():
        assert scores[0] == base
        assert scores[2] < scores[0]  # pruning 95% of a layer costs accuracy


def test_channel_prune_shapes_and_mac_ratio() -> None:
    lmlab.seed_everything(0)
    model = VGG(VGGConfig(channels=(16, 32, "M", 32, 64, "M"))).eval()
    x = torch.randn(1, 1, 16, 16)
    for method in ("first", "l2"):
        small = pruning.channel_prune(model, 0.3, method=method)
        widths = [round(0.7 * c) for c in (16, 32, 32, 64)]  # 11, 22, 22, 45
        assert [m.out_channels for _, m in small.convs()] == widths
        assert [m.in_channels for _, m in small.convs()] == [1, *widths[:-1]]
        assert small.classifier.in_features == widths[-1]
        assert small.backbone.bn2.running_mean.shape == (widths[2],)
        assert small.cfg.channels == (11, 22, "M", 22, 45, "M")
        assert small(x).shape == (1, 10)
        rebuilt = VGG(small.cfg)  # the updated config describes the pruned model
        rebuilt.load_state_dict(small.state_dict())
        # MACs: the formula c_o h_o w_o c_i k_h k_w, layer by layer, and the counter agree exactly
        macs, macs_small = cost.count_macs(model, x), cost.count_macs(small, x)
        hw = [256, 256, 64, 64]
        c_in = [1, *widths[:-1]]
        for i, (name, _) in enumerate(small.convs()):
            assert macs_small[name] == widths[i] * hw[i] * c_in[i] * 9
        ratio = sum(macs_small[n] for n, _ in small.convs()) / sum(macs[n] for n, _ in model.convs())
        inner = macs_small["backbone.conv2"] / macs["backbone.conv2"]
        assert inner == pytest.approx(22 * 22 / (32 * 32))  # a conv whose input and output both shrink: ~0.7^2
        assert 0.45 < ratio < 0.55
    assert cost.count_macs(model, x)["classifier"] == 64 * 10


def test_ranked_channel_pruning_keeps_the_most_important_channels() -> None:
    lmlab.seed_everything(0)
    model = VGG(VGGConfig(channels=(6, 8))).eval()
    with torch.no_grad():
        model.backbone.conv1.weight[:, [1, 4]] *= 100  # make input channels 1 and 4 of conv1 dominant
    small = pruning.channel_prune(model, [0.5, 0.0], method="l2")
    kept = torch.topk(pruning.channel_importance(model.backbone.conv1), 3).indices.sort().values
    assert {1, 4} <= set(kept.tolist())
    assert torch.equal(small.backbone.conv0.weight, model.backbone.conv0.weight[kept])
    assert torch.equal(small.backbone.conv1.weight, model.backbone.conv1.weight[:, kept])


def test_count_macs_agrees_with_torch_flop_counter() -> None:
    from torch.utils.flop_counter import FlopCounterMode

    model = VGG(VGGConfig(channels=(8, "M", 12, 16, "M"))).eval()
    x = torch.randn(3, 1, 16, 16)
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model(x)
    counted = fc.get_flop_counts()["Global"]
    conv = sum(v for k, v in counted.items() if "convolution" in str(k))
    mm = sum(v for k, v in counted.items() if "mm" in str(k))
    macs = cost.count_macs(model, x)
    assert conv == 2 * sum(v for k, v in macs.items() if "conv" in k)
    assert mm == 2 * macs["classifier"]


def test_weight_layers_is_shared_and_checks_its_argument() -> None:
    from lmlab import quantization
    from lmlab.compressing import vision

    assert pruning.weight_layers is quantization.weight_layers is vision.weight_layers
    model = VGG(VGGConfig(channels=(4, "M", 8)))
    assert list(vision.weight_layers(model)) == ["backbone.conv0", "backbone.conv1", "classifier"]
    with pytest.raises(TypeError, match="model must be a Module"):
        vision.weight_layers(lambda t: t)  # type: ignore[arg-type]
    for fn in (cost.count_macs, cost.count_outputs):
        with pytest.raises(TypeError, match="x must be a torch.Tensor"):
            fn(model, [1.0])  # type: ignore[arg-type]


def test_count_outputs_counts_every_leaf() -> None:
    model = VGG(VGGConfig(channels=(4, "M", 8)))
    counts = cost.count_outputs(model, torch.randn(3, 1, 8, 8))
    assert counts["backbone.conv0"] == counts["backbone.relu0"] == 3 * 4 * 8 * 8
    assert counts["backbone.pool0"] == 3 * 4 * 4 * 4 and counts["backbone.bn1"] == 3 * 8 * 4 * 4
    assert counts["classifier"] == 3 * 10
    small = pruning.channel_prune(model, 0.5)
    assert cost.count_outputs(small, torch.randn(3, 1, 8, 8))["backbone.bn1"] == 3 * 4 * 4 * 4


def test_semi_structured_mask_is_two_of_four() -> None:
    w = torch.randn(8, 16, generator=lmlab.generator(0))
    mask = pruning.semi_structured_mask(w)
    groups, wg = mask.reshape(-1, 4), w.abs().reshape(-1, 4)
    assert bool((groups.sum(1) == 2).all())
    assert bool((wg[groups].reshape(-1, 2).min(1).values >= wg[~groups].reshape(-1, 2).max(1).values).all())
    with pytest.raises(ValueError, match="multiple"):
        pruning.semi_structured_mask(torch.randn(4, 9))


def test_pruned_and_fine_tuned_model_keeps_accuracy(trained, digits) -> None:
    """Fixed seed: 70% fine-grained sparsity everywhere but the first conv, then fine-tuning, stays within 2 points
    of the dense model on the held-out test digits; the channel-pruned model (30% of channels) fine-tuned too."""
    dense = accuracy(trained, digits.x_test, digits.y_test)
    assert dense >= 0.95
    fine = VGG(trained.cfg)
    fine.load_state_dict(trained.state_dict())
    plan = {n: 0.7 for n in pruning.weight_layers(fine) if n != "backbone.conv0"}
    masks = pruning.fine_grained_prune(fine, plan)
    with pruning.keep_masked(fine, masks):
        train_classifier(fine, digits, steps=100, batch=64, lr=0.003, seed=1)
    assert accuracy(fine, digits.x_test, digits.y_test) >= dense - 0.02
    small = pruning.channel_prune(trained, 0.3, method="l2")
    train_classifier(small, digits, steps=100, batch=64, lr=0.003, seed=1)
    assert accuracy(small, digits.x_test, digits.y_test) >= dense - 0.02


def test_load_digits_split_is_seeded_and_disjoint() -> None:
    a, b = load_digits(seed=3), load_digits(seed=3)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert len(a.y_train) + len(a.y_val) + len(a.y_test) == 1797
    assert abs(float(a.x_train.mean())) < 1e-5 and abs(float(a.x_train.std()) - 1) < 1e-5
    up = load_digits(seed=3, size=16)
    assert up.x_train.shape[1:] == (1, 16, 16) and torch.equal(up.y_train, a.y_train)
    for bad in [0, 12, 8.0]:
        with pytest.raises(ValueError, match="size"):
            load_digits(size=bad)  # type: ignore[arg-type]


def test_apply_masks_needs_bool_masks_of_the_weight_shape() -> None:
    model = VGG(VGGConfig(channels=(4, "M", 8))).eval()
    w = model.backbone.conv0.weight
    saved = w.detach().clone()
    for bad in (torch.full(w.shape, 0.5), torch.ones(w.shape, dtype=torch.int64)):
        with pytest.raises(TypeError, match=r"masks\['backbone.conv0'\] must be a bool tensor"):
            pruning.apply_masks(model, {"backbone.conv0": bad})
        with pytest.raises(TypeError, match=r"masks\['backbone.conv0'\]"):
            with pruning.keep_masked(model, {"backbone.conv0": bad}):
                pass
    with pytest.raises(TypeError, match=r"masks\['backbone.conv0'\] must be a torch.Tensor"):
        pruning.apply_masks(model, {"backbone.conv0": [True]})
    with pytest.raises(ValueError, match=r"masks\['backbone.conv0'\] has shape"):
        pruning.apply_masks(model, {"backbone.conv0": torch.ones(3, dtype=torch.bool)})
    assert torch.equal(w, saved)  # nothing was scaled
    mask = pruning.magnitude_mask(w, 0.5)
    pruning.apply_masks(model, {"backbone.conv0": mask})
    assert torch.equal(w, saved * mask)


def test_accuracy_rejects_bad_arguments() -> None:
    model = VGG(VGGConfig(channels=(4, "M", 8))).eval()
    x, y = torch.randn(5, 1, 8, 8), torch.arange(5)
    for bad in (0, -1):
        with pytest.raises(ValueError, match="batch"):
            accuracy(model, x, y, batch=bad)
    with pytest.raises(TypeError, match="batch"):
        accuracy(model, x, y, batch=2.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="y must hold integer class labels"):
        accuracy(model, x, y.float())
    with pytest.raises(ValueError, match="y must have 1 dimensions"):
        accuracy(model, x, y[None])
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        accuracy(model, x.numpy(), y)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="model"):
        accuracy(lambda t: t, x, y)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="same non-zero number"):
        accuracy(model, x, y[:3])
    assert accuracy(model, x, y, batch=1) == accuracy(model, x, y)  # chunking does not change the answer


def test_digits_vgg_checks_its_name() -> None:
    from lmlab.compressing import vision

    with pytest.raises(TypeError, match="name must be a str"):
        vision.digits_vgg("cpu", name=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="nope"):
        vision.digits_vgg("cpu", name="nope")
