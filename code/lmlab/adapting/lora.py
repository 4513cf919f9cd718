"""Low-rank adaptation (LoRA): a frozen weight W_0 plus a trained low-rank update s A B.

In the homework's notation a weight W (m x l, the layer computes W x) becomes W_0 + s A B with A (m x k) next to
the output, B (k x l) next to the input, W_0 frozen and only A, B trained (Hu et al. 2021 call them B and A: the
names swap, see :mod:`lmlab.lora_init`, which also holds the initialisations). Two ways to attach an adapter:

- :class:`LoRALinear` wraps an ``nn.Linear`` (weight (out, in) = (m, l), PyTorch's row convention ``x @ W.T``) and
  computes ``base(x) + s (x @ B.T) @ A.T`` without ever forming the m x l product.
- :func:`add_lora` attaches adapters to named weights of any model: ``nn.Linear`` submodules are wrapped, and raw
  parameters (such as ``TinyTransformer``'s ``W_Q`` (H, d_head, d_model) or ``W_in`` (d_mlp, d_model)) get a
  ``torch.nn.utils.parametrize`` parametrisation W_0 + s A B. A per-head weight is adapted as one matrix: W_Q, W_K,
  W_V as the heads stacked into rows (H d_head x d_model), W_O as the heads side by side (d_model x H d_head),
  which is how a ``q_proj`` or ``o_proj`` of a large model looks.

Also here: merge / unmerge, parameter and byte counts, LoRA+ parameter groups (a larger learning rate for A, the
output-side factor; Hayou et al. 2024) and :func:`finetune`, which trains them with :func:`lmlab.train.train`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from lmlab.adapting.lora_init import INITS, check_rank, init_factors
from lmlab.core.checks import check_float, check_int
from lmlab.core.train import next_token_loss, train

__all__ = [
    "INITS",
    "LoRAFactors",
    "LoRALinear",
    "add_lora",
    "adapters",
    "finetune",
    "lora_bytes",
    "lora_param_groups",
    "lora_parameters",
    "merge_lora",
    "weight_gradients",
]


class LoRAFactors(nn.Module):
    """The trained part of an adapter: A (m, k), B (k, l) and the scale s; :meth:`delta` is s A B (m, l)."""

    def __init__(self, A: Tensor, B: Tensor, scale: float) -> None:
        super().__init__()
        self.A = nn.Parameter(A.detach().clone())
        self.B = nn.Parameter(B.detach().clone())
        self.scale = float(scale)

    @property
    def rank(self) -> int:
        """k, the inner dimension."""
        return self.A.shape[1]

    def delta(self) -> Tensor:
        """s A B, the update in the homework's (m, l) orientation."""
        return self.scale * (self.A @ self.B)

    def extra_repr(self) -> str:
        return f"m={self.A.shape[0]}, l={self.B.shape[1]}, rank={self.rank}, scale={self.scale:g}"


def _check_init(init: object) -> str:
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; known inits: {', '.join(INITS)}")
    return str(init)


class LoRALinear(nn.Module):
    """An ``nn.Linear`` with a frozen weight W_0 (m, l) and a trained update s A B.

    ``forward(x)``: x (..., l) -> (..., m), equal to ``x @ (W_0 + s A B).T + bias``. The base layer's weight and
    bias are frozen (``requires_grad = False``); only ``lora.A`` and ``lora.B`` train. For ``"pissa"`` and
    ``"lora-ga"`` the base weight is replaced by the residual W_0 - s A B (see :func:`lmlab.lora_init.init_factors`).

    Args:
        base: the layer to adapt (an ``nn.Linear``; anything else raises TypeError).
        rank: k in [1, min(m, l)].
        init: one of ``INITS``.
        scale: s (use :func:`lmlab.lora_init.lora_scale` for alpha / k or alpha / sqrt(k)).
        grad: dL/dW (m, l) for ``"lora-ga"``.
        generator: CPU generator for the random inits.
    """

    def __init__(
        self,
        base: nn.Linear,
        rank: int,
        init: str = "standard",
        *,
        scale: float = 1.0,
        grad: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"LoRALinear wraps an nn.Linear, got {type(base).__name__}")
        m, l = base.weight.shape
        check_rank(rank, m, l)
        _check_init(init)
        A, B, W_frozen = init_factors(base.weight, rank, init, scale=scale, grad=grad, generator=generator)
        self._attach(base, LoRAFactors(A, B, scale), W_frozen)

    def _attach(self, base: nn.Linear, factors: LoRAFactors, W_frozen: Tensor) -> None:
        self.base = base
        with torch.no_grad():
            base.weight.copy_(W_frozen)
        for p in base.parameters():
            p.requires_grad_(False)
        self.lora = factors
        self.merged = False  # saved in state_dict (get_extra_state), so a merged layer is restored as merged

    @classmethod
    def _from_factors(cls, base: nn.Linear, factors: LoRAFactors, W_frozen: Tensor) -> LoRALinear:
        """Wrap ``base`` with factors computed beforehand (``add_lora`` computes every adapter before it changes
        anything)."""
        layer = cls.__new__(cls)
        nn.Module.__init__(layer)
        layer._attach(base, factors, W_frozen)
        return layer

    def get_extra_state(self) -> dict[str, bool]:
        """What ``state_dict`` saves beside the tensors: whether s A B is folded into the base weight."""
        return {"merged": self.merged}

    def set_extra_state(self, state: Any) -> None:
        if not isinstance(state, dict) or not isinstance(state.get("merged"), bool):
            raise ValueError(f"a LoRALinear's extra state must be {{'merged': bool}}, got {state!r}")
        self.merged = state["merged"]

    @property
    def weight(self) -> Tensor:
        """The effective weight W_0 + s A B, (m, l)."""
        return self.base.weight if self.merged else self.base.weight + self.lora.delta()

    def forward(self, x: Tensor) -> Tensor:
        out = self.base(x)
        if self.merged:
            return out
        f = self.lora
        return out + f.scale * ((x @ f.B.T) @ f.A.T)

    @torch.no_grad()
    def merge(self) -> None:
        """Fold s A B into the base weight (inference then costs one matmul); :meth:`unmerge` undoes it."""
        if not self.merged:
            self.base.weight += self.lora.delta()
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Subtract s A B from the base weight again (back to the adapter form)."""
        if self.merged:
            self.base.weight -= self.lora.delta()
            self.merged = False


def _to_matrix(W: Tensor, layout: str) -> Tensor:
    if layout == "matrix":
        return W
    if layout == "rows":  # (H, a, b) -> (H a, b)
        return W.reshape(-1, W.shape[-1])
    return W.permute(1, 0, 2).reshape(W.shape[1], -1)  # "cols": (H, a, b) -> (a, H b)


def _from_matrix(M: Tensor, layout: str, shape: torch.Size) -> Tensor:
    if layout == "matrix":
        return M
    if layout == "rows":
        return M.reshape(shape)
    H, a, b = shape
    return M.reshape(a, H, b).permute(1, 0, 2)


class _LoRAParametrization(nn.Module):
    """W (any layout) -> W + s A B put back into that layout; holds the factors as ``lora``."""

    def __init__(self, factors: LoRAFactors, layout: str, shape: torch.Size) -> None:
        super().__init__()
        self.lora = factors
        self.layout = layout
        self.shape = shape

    def forward(self, W: Tensor) -> Tensor:
        return W + _from_matrix(self.lora.delta(), self.layout, self.shape)


# The per-head stacks of lmlab.model: W_Q, W_K, W_V (H, d_head, d_model) stack heads as rows; W_O (H, d_model,
# d_head) as columns. Any other 3-D weight has no known matrix layout and is refused.
HEAD_STACKS = {"W_Q": "rows", "W_K": "rows", "W_V": "rows", "W_O": "cols"}


def _layout(name: str, p: Tensor) -> str:
    if p.dim() == 2:
        return "matrix"
    if p.dim() == 3 and name.split(".")[-1] in HEAD_STACKS:
        return HEAD_STACKS[name.split(".")[-1]]
    raise ValueError(
        f"cannot adapt {name!r} of shape {tuple(p.shape)}: only matrices and the per-head stacks "
        f"{', '.join(HEAD_STACKS)} (3-D)"
    )


def add_lora(
    model: nn.Module,
    targets: Sequence[str],
    rank: int,
    init: str = "standard",
    *,
    scale: float = 1.0,
    grads: dict[str, Tensor] | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, LoRAFactors]:
    """Freeze ``model`` and attach a rank-``rank`` adapter to every weight named by ``targets``, in place.

    Args:
        model: any module; every existing parameter is frozen.
        targets: names or name suffixes: ``"W_in"`` matches ``blocks.0.mlp.W_in`` and ``blocks.1.mlp.W_in``; a name
            may be an ``nn.Linear`` submodule (wrapped in :class:`LoRALinear`) or a 2-D/3-D parameter (parametrised).
        rank, init, scale, generator: as in :class:`LoRALinear`.
        grads: for ``"lora-ga"``, dL/dW per full parameter name, in the parameter's own shape (as
            :func:`weight_gradients` returns them).

    Returns:
        ``{full name: LoRAFactors}`` of the adapters added (also reachable with :func:`adapters`).

    The call is atomic: every target is resolved and every adapter computed before the model is changed, so a bad
    target, rank or gradient raises with the model untouched.

    Raises:
        TypeError: ``targets`` is not a name or a sequence of names; ``grads`` is not a dict.
        ValueError: ``targets`` is empty or a target matches nothing (the adaptable names are listed); a 3-D
            weight that is not a head stack of :mod:`lmlab.model`; bad rank or init; ``"lora-ga"`` without a
            gradient for a target, or one of the wrong shape.
    """
    _check_init(init)
    if isinstance(targets, str):
        targets = [targets]
    if not isinstance(targets, Sequence) or not all(isinstance(t, str) for t in targets):
        raise TypeError(f"targets must be a name or a sequence of names, got {targets!r}")
    if len(targets) == 0:
        raise ValueError("targets must name at least one weight to adapt, got an empty sequence")
    if grads is not None and not isinstance(grads, dict):
        raise TypeError(f"grads must be a dict of full parameter name -> dL/dW, got {type(grads).__name__}")
    linears = {n: mod for n, mod in model.named_modules() if isinstance(mod, nn.Linear)}
    params = {n: p for n, p in model.named_parameters() if p.dim() in (2, 3)}
    chosen: list[str] = []
    for t in targets:
        hits = [n for n in [*linears, *params] if n == t or n.endswith("." + t)]
        if not hits:
            known = ", ".join([*linears, *params])
            raise ValueError(f"target {t!r} matches no nn.Linear or weight of the model; adaptable: {known}")
        chosen += [h for h in hits if h not in chosen]
    # 1. Plan: every check and every adapter's factors, before the model is touched, so a failure on a later
    #    target leaves the model as it was.
    plan: list[tuple[str, str, LoRAFactors, Tensor]] = []
    for name in chosen:
        grad = None if grads is None else grads.get(name)
        if init == "lora-ga" and grad is None:
            raise ValueError(f"init 'lora-ga' needs grads[{name!r}] (see weight_gradients)")
        if name in linears:
            W = linears[name].weight.detach()
            layout = "linear"
        else:
            p = params[name]
            layout = _layout(name, p)
            W = _to_matrix(p.detach(), layout)
            grad = None if grad is None else _to_matrix(grad, layout)
        check_rank(rank, *W.shape)
        if grad is not None and tuple(grad.shape) != tuple(W.shape):
            raise ValueError(f"grads[{name!r}] has shape {tuple(grad.shape)}, the weight {tuple(W.shape)}")
        A, B, W_frozen = init_factors(W, rank, init, scale=scale, grad=grad, generator=generator)
        plan.append((name, layout, LoRAFactors(A, B, scale), W_frozen))
    # 2. Commit: freeze the model and attach the planned adapters.
    for p in model.parameters():
        p.requires_grad_(False)
    out: dict[str, LoRAFactors] = {}
    for name, layout, factors, W_frozen in plan:
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        if layout == "linear":
            setattr(parent, attr, LoRALinear._from_factors(linears[name], factors, W_frozen))
        else:
            p = params[name]
            with torch.no_grad():
                p.copy_(_from_matrix(W_frozen, layout, p.shape))
            parametrize.register_parametrization(parent, attr, _LoRAParametrization(factors, layout, p.shape))
        out[name] = factors
    return out


def adapters(model: nn.Module) -> dict[str, LoRAFactors]:
    """Every adapter in ``model``, by the name of the weight it adapts."""
    out: dict[str, LoRAFactors] = {}
    for name, mod in model.named_modules():
        if isinstance(mod, LoRALinear):
            out[name] = mod.lora
        elif isinstance(mod, _LoRAParametrization):  # name: <parent>.parametrizations.<attr>.0
            parent, _, rest = name.partition(".parametrizations.")
            if not rest:
                parent, rest = "", name.removeprefix("parametrizations.")
            attr = rest.split(".")[0]
            out[f"{parent}.{attr}" if parent else attr] = mod.lora
    return out


def lora_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The trainable factors of every adapter, A then B per adapter."""
    return [p for f in adapters(model).values() for p in (f.A, f.B)]


def lora_bytes(model: nn.Module) -> dict[str, int]:
    """Counted from the tensors: ``{"params", "bytes", "frozen_params", "frozen_bytes"}`` of adapters vs the rest.

    For one m x l weight in float32, ``bytes`` = 4 k (m + l)."""
    ids = {id(p) for p in lora_parameters(model)}
    n = b = fn = fb = 0
    for p in model.parameters():
        size = p.numel() * p.element_size()
        if id(p) in ids:
            n, b = n + p.numel(), b + size
        else:
            fn, fb = fn + p.numel(), fb + size
    return {"params": n, "bytes": b, "frozen_params": fn, "frozen_bytes": fb}


def lora_param_groups(model: nn.Module, lr: float, ratio: float = 1.0) -> list[dict[str, Any]]:
    """Optimizer groups for LoRA+: A (output side) at ``ratio * lr``, B (input side) at ``lr``.

    Hayou et al. (2024) suggest a ratio around 16 (their B is the homework's A). ``ratio=1`` is plain LoRA."""
    if not (isinstance(ratio, (int, float)) and ratio > 0):
        raise ValueError(f"ratio must be a number > 0, got {ratio!r}")
    fs = adapters(model).values()
    if not fs:
        raise ValueError("the model has no LoRA adapters: call add_lora first")
    return [
        {"params": [f.A for f in fs], "lr": lr * ratio, "base_lr": lr * ratio},
        {"params": [f.B for f in fs], "lr": lr, "base_lr": lr},
    ]


def finetune(
    model: nn.Module,
    batches: Callable[[int], tuple[Tensor, ...]],
    *,
    steps: int,
    groups: Iterable[dict[str, Any]] | None = None,
    lr: float = 1e-3,
    loss_fn: Callable[[nn.Module, tuple[Tensor, ...]], Tensor] = next_token_loss,
) -> list[float]:
    """Adam on parameter groups (e.g. :func:`lora_param_groups`) for ``steps`` steps; returns the losses.

    A thin caller of :func:`lmlab.train.train` with ``optimizer="adam"`` (PyTorch's defaults), a constant rate, no
    gradient clipping, the model's mode left as it is and no progress bar. Each group keeps its own ``"lr"`` (a
    group without one gets ``lr``); with ``groups=None`` every trainable parameter gets ``lr``. Batches come from
    ``batches(step)`` and are moved to the model's device.

    Raises:
        TypeError: ``groups`` is not an iterable of dicts; ``steps`` is not an int.
        ValueError: ``steps < 1``, ``lr <= 0``, a group without ``"params"``, or nothing to train.
    """
    check_int("steps", steps, 1)
    check_float("lr", lr, 0.0, strict=True)
    if groups is not None:
        if isinstance(groups, (dict, Tensor)) or not isinstance(groups, Iterable):
            raise TypeError(f"groups must be an iterable of parameter groups (dicts), got {type(groups).__name__}")
        groups = list(groups)
        for i, g in enumerate(groups):
            if not isinstance(g, dict):
                raise TypeError(f"groups[{i}] must be a dict with 'params', got {type(g).__name__}")
            if "params" not in g:
                raise ValueError(f"groups[{i}] has no 'params'")
    return train(
        model,
        batches,
        steps=steps,
        lr=lr,
        optimizer="adam",
        grad_clip=None,
        loss_fn=loss_fn,
        params=groups,
        mode="keep",
        progress=False,
    )


def weight_gradients(
    model: nn.Module, names: Sequence[str], batch: tuple[Tensor, ...], loss_fn: Callable = next_token_loss
) -> dict[str, Tensor]:
    """dL/dW for the named weights (full names or suffixes, as in :func:`add_lora`) on one batch: LoRA-GA's input.

    Runs before the adapters are added; the model's ``requires_grad`` flags are restored afterwards."""
    named = dict(model.named_parameters())
    chosen = [n for n in named if any(n == t or n.endswith("." + t) for t in names)]
    mods = {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    chosen += [n + ".weight" for n in mods if any(n == t or n.endswith("." + t) for t in names)]
    if not chosen:
        raise ValueError(f"no weight of the model matches {list(names)}")
    flags = {n: p.requires_grad for n, p in named.items()}
    for n, p in named.items():
        p.requires_grad_(n in chosen)
        p.grad = None
    device = next(model.parameters()).device
    loss = loss_fn(model, tuple(t.to(device) for t in batch))
    loss.backward()
    out = {
        n.removesuffix(".weight") if n.removesuffix(".weight") in mods else n: named[n].grad.detach().clone()
        for n in chosen
    }
    for n, p in named.items():
        p.grad = None
        p.requires_grad_(flags[n])
    return out


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every adapter into its weight, in place, and remove the adapters: a plain model, same outputs."""
    for name, mod in list(model.named_modules()):
        if isinstance(mod, LoRALinear):
            mod.merge()
            parent_name, _, attr = name.rpartition(".")
            setattr(model.get_submodule(parent_name), attr, mod.base)
    for mod in list(model.modules()):
        if parametrize.is_parametrized(mod):
            for attr in list(mod.parametrizations.keys()):
                parametrize.remove_parametrizations(mod, attr, leave_parametrized=True)
    return model
