"""Images and a small convolutional network, shared by the pruning and quantization chapters.

* :func:`load_digits` returns scikit-learn's 1797 handwritten digits (8x8 grey images, shipped inside the package:
  nothing is downloaded), scaled to [0, 1], standardised, optionally upsampled, split into seeded train, validation
  and test sets.
* :class:`VGG` is a VGG-style network in the layout of the homework's lab: blocks of 3x3 convolution, batch norm and
  ReLU, max pooling between stages, a global average pool and one linear classifier. Its layers are named
  ``backbone.conv0``, ``backbone.bn0``, ``backbone.relu0``, ... so a layer can be addressed as in the lab.
* :func:`train_classifier` trains it with :func:`lmlab.train.train` (cross-entropy on seeded minibatches);
  :func:`accuracy` measures it.
* :func:`weight_layers` lists the conv and linear layers of a model: the layers pruning prunes and quantization
  quantizes. :func:`digits_vgg` is both chapters' starting point: the trained ``"digits-vgg"`` network and its
  digits, on a device.

Images are PyTorch's ``(batch, channels, height, width)`` tensors; labels are ``(batch,)`` integer tensors.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lmlab.core.checks import check_callable, check_choice, check_instance, check_int, check_module, check_tensor
from lmlab.core.runtime import generator as _generator
from lmlab.core.train import History, train

__all__ = [
    "Digits",
    "DigitsVGG",
    "VGG",
    "VGGConfig",
    "accuracy",
    "classification_loss",
    "digits_vgg",
    "load_digits",
    "train_classifier",
    "weight_layers",
]


@dataclass(frozen=True)
class Digits:
    """A seeded split of the digits. Images are ``(N, 1, size, size)`` float32, standardised with the training
    set's mean and standard deviation; labels are ``(N,)`` int64 in ``0..9``.

    Attributes:
        x_train, y_train, x_val, y_val, x_test, y_test: the three splits (on the CPU).
        size: the side of an image in pixels (8 = the original resolution).
        mean, std: the training set's pixel statistics used to standardise every split.
    """

    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor
    x_test: Tensor
    y_test: Tensor
    size: int
    mean: float
    std: float

    def split(self, name: str) -> tuple[Tensor, Tensor]:
        """``(images, labels)`` of ``"train"``, ``"val"`` or ``"test"``."""
        if name not in ("train", "val", "test"):
            raise ValueError(f"name must be 'train', 'val' or 'test', got {name!r}")
        return getattr(self, f"x_{name}"), getattr(self, f"y_{name}")

    def batches(self, batch: int, *, seed: int = 0) -> Any:
        """A seeded sampler ``step -> (images, labels)`` of ``batch`` training examples drawn with replacement,
        for :func:`lmlab.train.train`. The same ``(seed, step)`` always gives the same batch."""
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ValueError(f"batch must be an int >= 1, got {batch!r}")
        n = len(self.y_train)

        def make(step: int) -> tuple[Tensor, Tensor]:
            g = _generator(seed * 1_000_003 + step)
            idx = torch.randint(n, (batch,), generator=g)
            return self.x_train[idx], self.y_train[idx]

        return make


def load_digits(*, seed: int = 0, size: int = 8, val_fraction: float = 0.2, test_fraction: float = 0.2) -> Digits:
    """scikit-learn's 8x8 digits, standardised and split with a seeded permutation.

    Args:
        seed: the seed of the permutation that assigns images to splits.
        size: side of the returned images: 8 (original) or a multiple of 8, upsampled bilinearly.
        val_fraction, test_fraction: shares of the 1797 images in the validation and test splits (each in
            (0, 0.5), rounded down to whole images); the rest is the training set.

    Raises:
        ValueError: ``size`` is not a positive multiple of 8, or a fraction is out of range.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 8 or size % 8:
        raise ValueError(f"size must be a positive multiple of 8 (8 = the original resolution), got {size!r}")
    for name, f in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not isinstance(f, (int, float)) or not 0 < f < 0.5:
            raise ValueError(f"{name} must be in (0, 0.5), got {f!r}")
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0  # pixel values are 0..16
    y = torch.tensor(bunch.target, dtype=torch.int64)
    if size != 8:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    n = len(y)
    perm = torch.randperm(n, generator=_generator(seed))
    n_val, n_test = int(val_fraction * n), int(test_fraction * n)
    i_test, i_val, i_train = perm[:n_test], perm[n_test : n_test + n_val], perm[n_test + n_val :]
    mean, std = float(x[i_train].mean()), float(x[i_train].std())

    def norm(t: Tensor) -> Tensor:
        return ((t - mean) / std).contiguous()

    return Digits(
        x_train=norm(x[i_train]),
        y_train=y[i_train],
        x_val=norm(x[i_val]),
        y_val=y[i_val],
        x_test=norm(x[i_test]),
        y_test=y[i_test],
        size=size,
        mean=mean,
        std=std,
    )


@dataclass(frozen=True)
class VGGConfig:
    """The layout of a :class:`VGG`.

    Attributes:
        channels: output channels of each conv block, in order; ``"M"`` inserts a 2x2 max pool. The lab's VGG is
            ``(64, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")``.
        in_channels: channels of the input images (1 for the digits).
        n_classes: outputs of the classifier.
    """

    channels: tuple[int | str, ...] = (32, 32, "M", 64, 64, "M")
    in_channels: int = 1
    n_classes: int = 10

    def __post_init__(self) -> None:
        check_instance("channels", self.channels, (tuple, list))
        if not self.channels or not any(isinstance(c, int) for c in self.channels):
            raise ValueError(f"channels must hold at least one conv width, got {self.channels!r}")
        for c in self.channels:
            if c != "M" and (isinstance(c, bool) or not isinstance(c, int) or c < 1):
                raise ValueError(f"channels must hold ints >= 1 or 'M', got {c!r}")
        for name in ("in_channels", "n_classes"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")


class VGG(nn.Module):
    """A VGG-style classifier: ``backbone`` (conv-BN-ReLU blocks and max pools), global average pool, ``classifier``.

    ``forward(x)``: ``x`` is ``(batch, in_channels, H, W)``; returns logits ``(batch, n_classes)``. Convolutions are
    3x3 with padding 1 and no bias (the batch norm that follows has one), so only pools change ``H`` and ``W``.
    """

    def __init__(self, cfg: VGGConfig | None = None) -> None:
        super().__init__()
        self.cfg = check_instance("cfg", cfg, VGGConfig) if cfg is not None else VGGConfig()
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        c_in, i, j = self.cfg.in_channels, 0, 0
        for c in self.cfg.channels:
            if c == "M":
                layers[f"pool{j}"] = nn.MaxPool2d(2)
                j += 1
                continue
            assert isinstance(c, int)
            layers[f"conv{i}"] = nn.Conv2d(c_in, c, 3, padding=1, bias=False)
            layers[f"bn{i}"] = nn.BatchNorm2d(c)
            layers[f"relu{i}"] = nn.ReLU(inplace=True)
            c_in, i = c, i + 1
        self.backbone = nn.Sequential(layers)
        self.classifier = nn.Linear(c_in, self.cfg.n_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.backbone(x).mean(dim=(2, 3)))

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def convs(self) -> list[tuple[str, nn.Conv2d]]:
        """``(name, module)`` of every conv layer in order, names as in ``named_modules`` (``backbone.conv0``)."""
        return [(n, m) for n, m in self.named_modules() if isinstance(m, nn.Conv2d)]


def classification_loss(model: nn.Module, batch: tuple[Tensor, ...]) -> Tensor:
    """Mean cross-entropy of ``model(images)`` against ``labels``; ``batch`` is ``(images, labels)``. The
    ``loss_fn`` of :func:`lmlab.train.train` for classifiers."""
    check_callable("model", model)
    if len(check_instance("batch", batch, (tuple, list))) != 2:
        raise ValueError(f"a batch must be (images, labels), got {len(batch)} items")
    return F.cross_entropy(model(batch[0]), batch[1])


def train_classifier(
    model: nn.Module,
    data: Digits,
    *,
    steps: int,
    batch: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
    schedule: str = "cosine",
    warmup: int = 0,
    weight_decay: float = 0.0,
    progress: bool | None = None,
) -> History:
    """Train a classifier on ``data``'s training split with :func:`lmlab.train.train` (AdamW, cross-entropy).

    Minibatches come from ``data.batches(batch, seed=seed)``, so a run repeats exactly for a fixed seed on one
    device. Returns the loss history (one float per step).
    """
    check_module("model", model)
    check_instance("data", data, Digits)
    return train(
        model,
        data.batches(batch, seed=seed),
        steps=steps,
        lr=lr,
        loss_fn=classification_loss,
        schedule=schedule,
        warmup=warmup,
        weight_decay=weight_decay,
        progress=progress,
    )


@torch.no_grad()
def accuracy(model: nn.Module, x: Tensor, y: Tensor, *, batch: int = 1024) -> float:
    """Fraction of ``x`` (``(N, C, H, W)``) that ``model`` classifies as ``y`` (``(N,)``), in eval mode (the
    model's mode is restored afterwards). Inputs are moved to the model's device in chunks of ``batch``.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``, ``x`` or ``y`` not a tensor, ``y`` not integer labels, or
            ``batch`` not an int.
        ValueError: ``batch`` < 1, ``y`` not 1-dimensional, ``x`` and ``y`` of different lengths or empty, or a
            ``model`` without parameters.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    check_tensor("x", x)
    check_tensor("y", y, 1)
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise TypeError(f"y must hold integer class labels, got dtype {y.dtype}")
    batch = check_int("batch", batch, 1)
    if next(model.parameters(), None) is None:
        raise ValueError("model has no parameters: its device is unknown")
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"x and y must hold the same non-zero number of examples, got {len(x)} and {len(y)}")
    dev = next(model.parameters()).device
    was = model.training
    model.eval()
    correct = 0
    for s in range(0, len(x), batch):
        pred = model(x[s : s + batch].to(dev)).argmax(dim=1).cpu()
        correct += int((pred == y[s : s + batch].cpu()).sum())
    model.train(was)
    return correct / len(x)


def parameter_count(model: nn.Module, layers: Sequence[type[nn.Module]] = (nn.Conv2d, nn.Linear)) -> int:
    """Number of weights (``weight`` tensors only) in the modules of the given types."""
    check_module("model", model)
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, tuple(layers)))


def weight_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The conv and linear layers of ``model`` by name, in ``named_modules`` order: the layers whose weights
    :mod:`lmlab.compressing.pruning` prunes and :mod:`lmlab.compressing.quantization` quantizes.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
    """
    check_module("model", model)
    return {n: m for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}


class DigitsVGG(NamedTuple):
    """The pruning and quantization chapters' starting point (unpack it:
    ``dense, data, x_val, y_val, x_test, y_test = digits_vgg(DEVICE)``).

    Attributes:
        model: the trained ``"digits-vgg"`` :class:`VGG`, in eval mode, on the device.
        data: its :class:`Digits` split (on the CPU).
        x_val, y_val, x_test, y_test: the validation and test images ``(N, 1, size, size)`` and labels ``(N,)``,
            on the device.
    """

    model: VGG
    data: Digits
    x_val: Tensor
    y_val: Tensor
    x_test: Tensor
    y_test: Tensor


def digits_vgg(device: torch.device | str | None = None, *, name: str = "digits-vgg") -> DigitsVGG:
    """The trained network of recipe ``name`` (:func:`lmlab.pretrained.load`: trained on first use, then read
    from the cache) with the digits it was trained on (:func:`lmlab.pretrained.task`), the validation and test
    splits moved to ``device`` (default: ``lmlab.device()``).

    Raises:
        ValueError: ``name`` is not one of :func:`lmlab.pretrained.recipes`.
        TypeError: ``name`` is not a string.
        RuntimeError: ``device`` is not a device string torch knows.
    """
    from lmlab.core import pretrained  # pretrained imports this module: import it when called
    from lmlab.core.runtime import device as lmlab_device

    check_choice("name", name, pretrained.recipes())
    dev = lmlab_device() if device is None else torch.device(device)
    model = pretrained.load(name, device=dev).eval()
    data = pretrained.task(name)
    return DigitsVGG(model, data, data.x_val.to(dev), data.y_val.to(dev), data.x_test.to(dev), data.y_test.to(dev))
