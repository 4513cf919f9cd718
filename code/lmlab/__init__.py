"""lmlab: the small, executable companion package of the book.

Everything a chapter needs that is longer than a few lines lives here: a tiny transformer written in the
book's notation, deterministic synthetic tasks, a training loop, and the analysis tools of each chapter.
Nothing is downloaded: data is generated, and "pretrained" models are trained by the package in seconds.

``lmlab.device()`` picks the device; ``lmlab.seed_everything(s)`` and ``lmlab.generator(s)`` seed the draw, which
the environment variable ``LMLAB_SEED_OFFSET`` shifts (``lmlab.draw_seed``; see ``lmlab.core.runtime``).

The package mirrors the book's parts; each module is imported on first use, so ``import lmlab`` stays cheap, and is
re-exported under its short name, so a chapter writes ``import lmlab`` and ``lmlab.circuits.qk_circuit(...)``::

    lmlab/
      core/          what every chapter stands on
        runtime        device(), seeds and draws (LMLAB_SEED_OFFSET)
        checks         the argument checks every module shares (TypeError/ValueError naming the argument)
        model          TinyTransformer and ModelConfig, weights in the homework's shapes; model.head(l, h)
        layers         its layers, the causal mask, one attention head as an object (Head, with W_QK, W_OV)
        tasks          seeded synthetic data and the batch sources (the BatchSource protocol)
        train          the one training loop and the masked cross-entropy
        timing         the one timer (best-of-n, blocked autorange, CPU time) and layer times
        cost           MAC and output counts of a network on an input
        optim          the one batched Adam/AdamW step (runs stacked) and the warm-up + cosine schedule
        recipes        the recipes of the small "pretrained" models (Recipe, register)
        pretrained     load(name): trains a named recipe once and caches it
      inside/        inside the transformer (transformer circuits; induction heads)
        circuits       QK/OV circuits in the book's notation, factored SVD, read and write subspaces
        induction      one attention head from its equations; the hand-built induction circuit
        heads          previous-token and induction detectors, composition scores
        induction_eval losses on repeated sequences and the experiments built on them
        attribution    direct logit attribution and path patching on the tiny transformer
        lab_induction  the homework's own induction lab (two-hot embeddings, previous-token and copying heads)
      adapting/      adapting a frozen model (LoRA; soft prompting)
        lora, lora_init  LoRA adapters, merging, byte counts, LoRA+ groups; their initialisations and scales
        lowrank        the planted low-rank problem, the Eckart-Young floor, a batched adapter trainer
        prompting      soft prompts, the loss mask, prompt training, the cached prefix; the one complete()
        meta_prompt    meta-learning a soft prompt's start (MAML first/second order, Reptile)
        prompt_data, arithmetic, modular  the tasks a prompt selects
      scaling/       scaling (batch size and learning rate; Fermi estimation)
        sweep, sweepplot  learning-rate x batch-size x seed sweeps as one batched computation; their figures
        laws           reading a sweep: optima over seeds, the laws of the optimum and their fits
        regression     seeded regression teachers and models stacked over runs
        minibatch_sgd  the homework's own batch-size setting
        chinchilla, fermi, uncertainty  the Chinchilla law; estimates with units; ranges in log space
      compressing/   compressing (pruning; quantization)
        vision         scikit-learn's digits and a small VGG-style CNN, with its training loop
        pruning        fine-grained and channel pruning, sensitivity scans, MAC counts
        quantization   k-means and linear quantization, fake quantization, quantization-aware training
        integer_inference  integer-only inference of the VGG
        lab_pruning, lab_quantization, lab_kmeans  the MIT 6.S965 labs' functions, with the labs' conventions
      presentation/  how results reach the page: report (glue, numbers, spreads, verdicts), tables, plotting
                     (style, ticks), units (pint)
      check/         instant feedback for the homework's labs: lmlab.check.<function>(your_function)

CONTRIBUTING.md says which part a new module belongs to.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Collection
from types import ModuleType


def _lazy_modules(package: str, names: Collection[str]) -> Callable[[str], ModuleType]:
    """The ``__getattr__`` of ``package`` that imports its modules ``names`` on first use."""

    def __getattr__(name: str) -> ModuleType:
        if name in names:
            return importlib.import_module(f"{package}.{name}")
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__


# The parts' __init__ use _lazy_modules, so it is defined before the first import of a part.
from lmlab.core.runtime import device, draw_seed, generator, seed_everything, seed_offset  # noqa: E402

__version__ = "0.1.0"  # the one version source: pyproject.toml reads it

_PARTS = ("adapting", "compressing", "core", "inside", "presentation", "scaling")

# Each module's short name -> the part it lives in (lmlab.<name> is lmlab.<part>.<name>).
_WHERE = {
    "arithmetic": "adapting",
    "attribution": "inside",
    "checks": "core",
    "chinchilla": "scaling",
    "circuits": "inside",
    "cost": "core",
    "fermi": "scaling",
    "heads": "inside",
    "induction": "inside",
    "induction_eval": "inside",
    "integer_inference": "compressing",
    "lab_induction": "inside",
    "lab_kmeans": "compressing",
    "lab_pruning": "compressing",
    "lab_quantization": "compressing",
    "laws": "scaling",
    "layers": "core",
    "lora": "adapting",
    "lora_init": "adapting",
    "lowrank": "adapting",
    "meta_prompt": "adapting",
    "minibatch_sgd": "scaling",
    "model": "core",
    "modular": "adapting",
    "optim": "core",
    "plotting": "presentation",
    "pretrained": "core",
    "prompt_data": "adapting",
    "prompting": "adapting",
    "pruning": "compressing",
    "quantization": "compressing",
    "recipes": "core",
    "regression": "scaling",
    "report": "presentation",
    "runtime": "core",
    "sweep": "scaling",
    "sweepplot": "scaling",
    "tables": "presentation",
    "tasks": "core",
    "timing": "core",
    "train": "core",
    "uncertainty": "scaling",
    "units": "presentation",
    "vision": "compressing",
}

_SUBMODULES = (*_PARTS, "check", *_WHERE)

__all__ = ["__version__", "device", "draw_seed", "generator", "seed_everything", "seed_offset", *_SUBMODULES]


def __getattr__(name: str) -> ModuleType:
    if name in _WHERE:
        return importlib.import_module(f"lmlab.{_WHERE[name]}.{name}")
    if name in _SUBMODULES:
        return importlib.import_module(f"lmlab.{name}")
    raise AttributeError(f"module 'lmlab' has no attribute {name!r}")
