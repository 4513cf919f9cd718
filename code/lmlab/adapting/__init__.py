"""Adapting a frozen model (chapters: LoRA, soft prompting): LoRA adapters and their initialisations, the planted low-
rank problem, soft prompts and their meta-learned starts, and the tasks a prompt selects (arithmetic word problems,
modular addition).

Modules: ``arithmetic``, ``lora``, ``lora_init``, ``lowrank``, ``meta_prompt``, ``modular``, ``prompt_data``,
``prompting``. Each is imported on first use (``lmlab.adapting.arithmetic``), and the top-level package re-exports
each under its short name (``lmlab.arithmetic``).
"""

from __future__ import annotations

import importlib
from types import ModuleType

_MODULES = ("arithmetic", "lora", "lora_init", "lowrank", "meta_prompt", "modular", "prompt_data", "prompting")

__all__ = list(_MODULES)


def __getattr__(name: str) -> ModuleType:
    if name in _MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
