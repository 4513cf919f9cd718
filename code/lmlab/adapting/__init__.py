"""Adapting a frozen model (chapters: LoRA, soft prompting): LoRA adapters and their initialisations, the planted low-
rank problem, soft prompts and their meta-learned starts, and the tasks a prompt selects (arithmetic word problems,
modular addition).

Modules: ``arithmetic``, ``lora``, ``lora_init``, ``lowrank``, ``meta_prompt``, ``modular``, ``prompt_data``,
``prompting``. Each is imported on first use (``lmlab.adapting.arithmetic``), and the top-level package re-exports
each under its short name (``lmlab.arithmetic``).
"""

from lmlab import _lazy_modules

_MODULES = ("arithmetic", "lora", "lora_init", "lowrank", "meta_prompt", "modular", "prompt_data", "prompting")

__all__ = list(_MODULES)
__getattr__ = _lazy_modules(__name__, _MODULES)
