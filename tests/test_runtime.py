"""lmlab's runtime helpers: the device choice, seeding, the plotting style."""

from __future__ import annotations

import subprocess
import sys

import lmlab
import matplotlib
import pytest
import torch
from lmlab import plotting


def test_device_is_cuda_exactly_when_available(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LMLAB_DEVICE", raising=False)
    assert lmlab.device().type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_device_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LMLAB_DEVICE", "cpu")
    assert lmlab.device() == torch.device("cpu")
    monkeypatch.setenv("LMLAB_DEVICE", "tpu")
    with pytest.raises(ValueError, match="'cpu' or 'cuda'"):
        lmlab.device()
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="cuda"):
            lmlab.device("cuda")


def test_seed_everything_repeats_and_differs() -> None:
    lmlab.seed_everything(3)
    a = torch.randn(5)
    lmlab.seed_everything(3)
    b = torch.randn(5)
    lmlab.seed_everything(4)
    c = torch.randn(5)
    assert torch.equal(a, b) and not torch.equal(a, c)
    g1, g2 = lmlab.seed_everything(9), lmlab.seed_everything(9)
    assert torch.equal(torch.rand(3, generator=g1), torch.rand(3, generator=g2))


@pytest.mark.parametrize("bad, err", [(-1, ValueError), (2**32, ValueError), (1.5, TypeError), (True, TypeError)])
def test_seed_everything_rejects_bad_seeds(bad: object, err: type) -> None:
    with pytest.raises(err, match="seed"):
        lmlab.seed_everything(bad)  # type: ignore[arg-type]


def test_plotting_style_is_opaque() -> None:
    plotting.use()
    for key in ("figure.facecolor", "axes.facecolor", "savefig.facecolor"):
        assert matplotlib.colors.to_rgba(matplotlib.rcParams[key])[3] == 1.0, key
    assert matplotlib.rcParams["savefig.transparent"] is False


def test_heatmap_rejects_non_matrices() -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match="2-D"):
        plotting.heatmap(ax, torch.zeros(2, 2, 2))
    plt.close(fig)


def test_import_lmlab_does_not_import_torch() -> None:
    """Chapters that need no tensors (Fermi estimation) should not pay for importing torch."""
    code = "import sys, lmlab; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_submodules_are_reachable_from_the_package() -> None:
    assert lmlab.model.TinyTransformer is not None
    assert callable(lmlab.pretrained.load)
    with pytest.raises(AttributeError, match="no attribute"):
        lmlab.not_a_module  # noqa: B018
