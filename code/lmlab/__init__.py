"""lmlab: the small, executable companion package of the book.

Everything a chapter needs that is longer than a few lines lives here: a tiny transformer written in the
book's notation, deterministic synthetic tasks, a training loop, and the analysis tools of each chapter.
Nothing is downloaded: data is generated, and "pretrained" models are trained by the package in seconds.

``lmlab.device()`` picks the device; ``lmlab.seed_everything(s)`` and ``lmlab.generator(s)`` seed the draw, which
the environment variable ``LMLAB_SEED_OFFSET`` shifts (``lmlab.draw_seed``; see ``lmlab._runtime``).

Modules (imported on first use, so ``import lmlab`` stays cheap):

- ``lmlab.model``: ``TinyTransformer`` and ``ModelConfig``, weights in the homework's shapes; ``model.head(l, h)``.
- ``lmlab.layers``: its layers, the causal mask and one attention head as an object (``Head``, with W_QK, W_OV).
- ``lmlab.tasks``: seeded synthetic data (bigram language, repeated sequences) and the seeded batch sources.
- ``lmlab.arithmetic``: arithmetic word problems with a chain of thought, their tokenizer and answer parser.
- ``lmlab.modular``: the modular-addition task family (``x -> x + k mod p``) for meta-learning.
- ``lmlab.train``: one small training loop and the masked cross-entropy.
- ``lmlab.prompting``: soft prompts for a frozen model, the loss mask, prompt training, the cached prefix.
- ``lmlab.meta_prompt``: meta-learning a soft prompt's start (MAML first/second order, Reptile).
- ``lmlab.prompt_data``: the pretraining corpora whose behaviour a prompt selects (styled arithmetic, modular).
- ``lmlab.pretrained``: ``load(name)`` trains a named recipe once and caches it.
- ``lmlab.circuits``: QK/OV circuits in the book's notation, factored SVD, read and write subspaces.
- ``lmlab.induction``: one attention head from its equations and the hand-built induction circuit.
- ``lmlab.lab_induction``: the homework's own induction lab (two-hot embeddings, a previous-token and a copying head).
- ``lmlab.heads``: previous-token and induction detectors, composition scores.
- ``lmlab.induction_eval``: losses on repeated sequences and the experiments built on them.
- ``lmlab.timing``: the best-of-n timer.
- ``lmlab.checks``: the argument checks every module shares.
- ``lmlab.check``: instant feedback for the homework's labs, ``lmlab.check.<function>(your_function)``.
- ``lmlab.chinchilla``: the Chinchilla scaling law, solved with sympy and checked numerically.
- ``lmlab.fermi``: back-of-the-envelope estimates with units (memory, latency, cost, energy, roofline).
- ``lmlab.uncertainty``: Monte Carlo propagation of ranges in log space.
- ``lmlab.lora``: LoRA adapters (``LoRALinear``, ``add_lora``), merging, byte counts, LoRA+ groups;
  ``lmlab.lora_init`` their initialisations (standard, zero, Xavier, PiSSA, LoRA-GA) and scales;
  ``lmlab.lowrank`` the planted low-rank problem, the Eckart-Young floor and a batched adapter trainer.
- ``lmlab.sweep``: learning-rate x batch-size x seed sweeps trained as one batched computation; laws of the optimum.
- ``lmlab.minibatch_sgd``: the homework's own batch-size setting (finite data, minibatches drawn with replacement).
- ``lmlab.regression``: seeded regression data (linear and MLP teachers) and models with parameters stacked over runs.
- ``lmlab.sweepplot``: figures of a sweep (loss against learning rate per batch size, laws of the optimum).
- ``lmlab.vision``: scikit-learn's digits (seeded splits) and a small VGG-style CNN, with its training loop.
- ``lmlab.pruning``: fine-grained and channel pruning, sensitivity scans, MAC counts, latency.
- ``lmlab.quantization``: k-means and linear (affine) quantization, fake quantization with a straight-through
  estimator, quantization-aware training.
- ``lmlab.lab_pruning``, ``lmlab.lab_quantization``: the MIT 6.S965 labs' functions, with the labs' conventions.
- ``lmlab.integer_inference``: integer-only inference of the VGG (folded batch norm, int32 bias, fixed-point
  rescaling).
- ``lmlab.plotting``: the book's matplotlib style.
- ``lmlab.report``: glue for the prose (without myst-nb), number formatting, small tables.
- ``lmlab.units``: the book's one pint unit registry.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from lmlab._runtime import device, draw_seed, generator, seed_everything, seed_offset

__version__ = "0.1.0"  # the one version source: pyproject.toml reads it

_SUBMODULES = (
    "arithmetic",
    "attribution",
    "check",
    "checks",
    "chinchilla",
    "circuits",
    "fermi",
    "heads",
    "induction",
    "induction_eval",
    "integer_inference",
    "lab_induction",
    "lab_pruning",
    "lab_quantization",
    "layers",
    "lora",
    "lora_init",
    "lowrank",
    "meta_prompt",
    "minibatch_sgd",
    "model",
    "modular",
    "plotting",
    "pretrained",
    "prompt_data",
    "prompting",
    "pruning",
    "quantization",
    "regression",
    "report",
    "sweep",
    "sweepplot",
    "tasks",
    "timing",
    "train",
    "uncertainty",
    "units",
    "vision",
)

__all__ = ["__version__", "device", "draw_seed", "generator", "seed_everything", "seed_offset", *_SUBMODULES]


def __getattr__(name: str) -> ModuleType:
    if name in _SUBMODULES:
        return importlib.import_module(f"lmlab.{name}")
    raise AttributeError(f"module 'lmlab' has no attribute {name!r}")
