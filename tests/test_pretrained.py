"""lmlab.pretrained: recipes, the on-disk cache (hits, rejection of damaged or foreign files) and quality helpers.

Full recipes take tens of seconds; these tests shrink the training steps of a recipe with monkeypatch, which
also changes its cache key. Full-size quality is measured by benchmarks/pretrain.py.
"""

from __future__ import annotations

import dataclasses
import math
import pickle
from pathlib import Path

import lmlab
import pytest
import torch
from lmlab import pretrained
from lmlab.adapting.arithmetic import ArithmeticTask
from lmlab.compressing.vision import VGGConfig
from lmlab.core import recipes
from lmlab.core.model import ModelConfig, TinyTransformer
from lmlab.core.tasks import BigramLanguage, RepeatedSequences


@pytest.fixture(scope="module")
def quick():
    """A cheap version of the bigram recipe (30 steps) in place of the real one for this module's tests."""
    r = pretrained.RECIPES["bigram-zero"]
    small = dataclasses.replace(r, train={**r.train, "steps": 30, "batch": 8, "warmup": 5})
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(pretrained.RECIPES, "bigram-zero", small)
        yield "bigram-zero"


@pytest.fixture(scope="module")
def good(quick: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, dict[str, torch.Tensor]]:
    """The bytes of a valid cache file of the quick recipe, and its weights (trained once per module)."""
    d = tmp_path_factory.mktemp("good")
    model = pretrained.load(quick, cache_dir=d, device="cpu")
    return pretrained.cache_path(quick, d).read_bytes(), weights(model)


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_recipes_and_unknown_names() -> None:
    names = pretrained.recipes()
    assert names == sorted(names)
    assert {"bigram-zero", "induction-2l", "arithmetic-cot"} <= set(names)
    for bad in ["gpt2", "", None, 3]:
        with pytest.raises(ValueError) as err:
            pretrained.load(bad)  # type: ignore[arg-type]
        assert all(n in str(err.value) for n in names)
    with pytest.raises(ValueError, match="induction-2l"):
        pretrained.info("induction")


def test_info_describes_each_recipe_and_key_tracks_config(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in pretrained.recipes():
        i = pretrained.info(name)
        assert i["name"] == name and i["description"] and i["target"]
        assert i["key"].startswith(name + "-") and i["key"].endswith("v" + lmlab.__version__)
        config = VGGConfig if name == "digits-vgg" else ModelConfig  # the one recipe that is not a transformer
        config(**{k: v for k, v in i["model"].items()})  # the stored config rebuilds
    zero = pretrained.info("bigram-zero")
    assert zero["model"]["n_layers"] == 0 and zero["model"]["pos_emb"] == "none"
    assert zero["model"]["d_model"] >= zero["model"]["n_vocab"]
    ind = pretrained.info("induction-2l")["model"]
    assert ind["n_layers"] == 2 and ind["d_mlp"] is None
    assert pretrained.info("arithmetic-cot")["model"]["d_mlp"] is not None
    key = pretrained.info("bigram-zero")["key"]
    r = pretrained.RECIPES["bigram-zero"]
    monkeypatch.setitem(pretrained.RECIPES, "bigram-zero", dataclasses.replace(r, seed=1))
    assert pretrained.info("bigram-zero")["key"] != key
    monkeypatch.setattr(lmlab, "__version__", "9.9.9")
    assert pretrained.info("bigram-zero")["key"].endswith("v9.9.9")


def test_tasks_match_the_recipes() -> None:
    assert isinstance(pretrained.task("bigram-zero"), BigramLanguage)
    arith = pretrained.task("arithmetic-cot")
    assert isinstance(arith, ArithmeticTask)
    cfg = pretrained.info("arithmetic-cot")["model"]
    assert cfg["n_vocab"] == arith.tokenizer.n_vocab and cfg["n_ctx"] >= arith.max_len
    ind = pretrained.task("induction-2l")
    assert isinstance(ind, RepeatedSequences)
    assert pretrained.info("induction-2l")["model"]["n_ctx"] >= 1 + 2 * ind.max_len
    # every task is a training source of the same kind: step -> (inputs, targets[, ...]), one row per example;
    # a language task's targets are its inputs shifted (same shape), the digits' are one label per image
    for name in pretrained.recipes():
        r = pretrained.RECIPES[name]
        batch = pretrained.task(name).batches(batch=2, seed=0, **r.data)(0)
        assert batch[0].shape[0] == batch[1].shape[0] == 2
        if isinstance(r.model, ModelConfig):
            assert batch[0].shape == batch[1].shape
        else:
            assert batch[1].shape == (2,)


def test_register_adds_a_recipe_and_refuses_a_duplicate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recipes, "RECIPES", dict(recipes.RECIPES))  # the registry lives in lmlab.core.recipes
    r = recipes.RECIPES["bigram-zero"]
    pretrained.register(dataclasses.replace(r, name="bigram-zero-small", model=dataclasses.replace(r.model, d_model=8)))
    assert "bigram-zero-small" in pretrained.recipes()
    assert pretrained.info("bigram-zero-small")["key"] != pretrained.info("bigram-zero")["key"]
    with pytest.raises(ValueError, match="exists already"):
        pretrained.register(r)


def test_first_load_trains_and_caches_then_hits(
    quick: str, good: tuple[bytes, dict[str, torch.Tensor]], tmp_path: Path
) -> None:
    rng = torch.get_rng_state()
    m1 = pretrained.load(quick, cache_dir=tmp_path, device="cpu")
    assert torch.equal(torch.get_rng_state(), rng)  # the caller's random stream is left alone
    assert same(weights(m1), good[1])  # training from the fixed seed repeats exactly
    assert m1.pretrained_info["meta"]["source"] == "trained"
    path = pretrained.cache_path(quick, tmp_path)
    assert path.exists() and path.parent == tmp_path
    left = [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")]
    assert left == [path.name]  # no temporary files left behind
    m2 = pretrained.load(quick, cache_dir=tmp_path, device="cpu")
    assert m2.pretrained_info["meta"]["source"] == "cache"
    assert same(weights(m1), weights(m2))
    # the training history travels with the cached weights
    losses = m1.pretrained_info["meta"]["losses"]
    assert len(losses) == pretrained.RECIPES[quick].train["steps"] and all(math.isfinite(x) for x in losses)
    assert m2.pretrained_info["meta"]["losses"] == losses
    assert losses[-1] < losses[0]
    assert not m2.training
    # retraining from the fixed seed reproduces the same weights
    m3 = pretrained.load(quick, cache_dir=tmp_path, device="cpu", retrain=True)
    assert m3.pretrained_info["meta"]["source"] == "trained"
    assert same(weights(m1), weights(m3))


def test_cache_dir_from_environment(
    quick: str, good: tuple[bytes, dict[str, torch.Tensor]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LMLAB_CACHE", str(tmp_path / "envcache"))
    assert pretrained.default_cache_dir() == tmp_path / "envcache"
    (tmp_path / "envcache").mkdir()
    pretrained.cache_path(quick).write_bytes(good[0])
    assert pretrained.load(quick, device="cpu").pretrained_info["meta"]["source"] == "cache"
    assert pretrained.cache_path(quick).exists()
    assert pretrained.cache_path(quick).parent == tmp_path / "envcache"


def _corrupt_truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _corrupt_garbage(path: Path) -> None:
    path.write_bytes(b"\x00not a torch file\xff" * 100)


def _corrupt_tensor(path: Path) -> None:
    payload = torch.load(path, weights_only=True)
    k = sorted(payload["state"])[0]
    payload["state"][k] = payload["state"][k] + 1.0  # edited weights, stale checksum
    torch.save(payload, path)


def _corrupt_foreign_key(path: Path) -> None:
    payload = torch.load(path, weights_only=True)
    payload["key"] = "induction-2l-0000000000000000-v" + lmlab.__version__
    torch.save(payload, path)


def _corrupt_wrong_format(path: Path) -> None:
    torch.save({"state": {"x": torch.zeros(2)}}, path)


class _Evil:
    def __reduce__(self):  # noqa: ANN204 - a pickle that would run code if unpickled without weights_only
        return (print, ("this must never run",))


def _corrupt_code_pickle(path: Path) -> None:
    with path.open("wb") as f:
        pickle.dump({"format": pretrained.FORMAT, "evil": _Evil()}, f, protocol=2)


@pytest.mark.parametrize(
    "corrupt",
    [
        _corrupt_truncate,
        _corrupt_garbage,
        _corrupt_tensor,
        _corrupt_foreign_key,
        _corrupt_wrong_format,
        _corrupt_code_pickle,
    ],
)
def test_damaged_or_foreign_cache_file_is_rejected_and_retrained(
    quick: str,
    good: tuple[bytes, dict[str, torch.Tensor]],
    tmp_path: Path,
    corrupt,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = pretrained.cache_path(quick, tmp_path)
    path.write_bytes(good[0])
    assert pretrained.load(quick, cache_dir=tmp_path, device="cpu").pretrained_info["meta"]["source"] == "cache"
    corrupt(path)
    with pytest.warns(RuntimeWarning, match="retrained"):
        model = pretrained.load(quick, cache_dir=tmp_path, device="cpu")
    assert "this must never run" not in capsys.readouterr().out
    assert model.pretrained_info["meta"]["source"] == "trained"
    assert same(weights(model), good[1])
    # the file was rewritten and is trusted again
    again = pretrained.load(quick, cache_dir=tmp_path, device="cpu")
    assert again.pretrained_info["meta"]["source"] == "cache"


def test_two_loaders_train_a_recipe_once(quick: str, tmp_path: Path) -> None:
    """Two threads asking for the same untrained recipe: one trains it, the other waits and reads the cache."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        models = list(pool.map(lambda _: pretrained.load(quick, cache_dir=tmp_path, device="cpu"), range(2)))
    sources = sorted(m.pretrained_info["meta"]["source"] for m in models)
    assert sources == ["cache", "trained"]
    assert same(weights(models[0]), weights(models[1]))


def test_seed_offset_is_another_draw_with_its_own_cache_key(
    quick: str, good: tuple[bytes, dict[str, torch.Tensor]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LMLAB_SEED_OFFSET trains another model (other initial weights and data) under another key."""
    key0 = pretrained.info(quick)["key"]  # `good` was trained on this draw's offset
    monkeypatch.setenv("LMLAB_SEED_OFFSET", str(lmlab.seed_offset() + 1))
    assert pretrained.info(quick)["key"] != key0
    assert pretrained.info(quick)["seed_offset"] == lmlab.seed_offset()
    other = pretrained.load(quick, cache_dir=tmp_path, device="cpu")
    assert not same(weights(other), good[1])


def test_unwritable_cache_warns_but_returns_a_model(quick: str, tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.warns(RuntimeWarning, match="could not write"):
        model = pretrained.load(quick, cache_dir=blocker, device="cpu")
    assert isinstance(model, TinyTransformer)


def test_a_cache_folder_that_cannot_be_entered_warns_and_trains(
    quick: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PermissionError while looking for the cache file (a folder without x permission; simulated, since the
    tests may run as root) is a warning and a retrain, not an error out of load()."""
    real = Path.exists

    def exists(self: Path) -> bool:
        if self.suffix == ".pt":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "exists", exists)
    with pytest.warns(RuntimeWarning, match="cannot look into the cache folder"):
        model = pretrained.load(quick, cache_dir=tmp_path, device="cpu")
    assert model.pretrained_info["meta"]["source"] == "trained"


def test_temporary_files_of_killed_writers_are_cleaned(quick: str, tmp_path: Path) -> None:
    import os
    import time

    path = pretrained.cache_path(quick, tmp_path)
    old, fresh = tmp_path / f".{path.name}.dead.tmp", tmp_path / f".{path.name}.live.tmp"
    for f in (old, fresh):
        f.write_bytes(b"partial")
    past = time.time() - pretrained.STALE_TEMP_S - 60
    os.utime(old, (past, past))
    pretrained.load(quick, cache_dir=tmp_path, device="cpu")
    assert not old.exists()  # left by a writer killed long ago
    assert fresh.exists()  # may belong to a writer still at work (without a lock)
    assert path.exists()


# ---------------------------------------------------------------------------------------------- quality helpers


def test_bigram_agreement_is_perfect_for_the_exact_solution() -> None:
    lang = BigramLanguage(6, seed=2)
    model = TinyTransformer(ModelConfig(n_vocab=6, n_ctx=4, d_model=6, n_layers=0, pos_emb="none"))
    shift = torch.arange(6, dtype=torch.float64)  # per-column constants do not matter
    model.set_embeddings(W_E=torch.eye(6), W_U=(lang.log_probs().T + shift).float())
    q = pretrained.bigram_agreement(model, lang)
    assert q["corr"] == pytest.approx(1.0, abs=1e-6)
    assert q["kl"] == pytest.approx(0.0, abs=1e-6)
    assert q["max_abs_err"] < 1e-5
    model.set_embeddings(W_U=torch.zeros(6, 6))  # uniform predictions: excess loss = ln 6 - H
    q = pretrained.bigram_agreement(model, lang)
    assert q["kl"] == pytest.approx(math.log(6) - lang.entropy(), abs=1e-6)
