"""Pruning a convolutional network: fine-grained magnitude pruning, channel pruning, MACs and latency.

* Fine-grained (unstructured) pruning: :func:`magnitude_mask` zeroes the ``k = round(s n)`` weights of smallest
  magnitude of a tensor of ``n`` weights (Python's ``round``: halves go to the even integer, as in
  ``torch.nn.utils.prune``), so the sparsity reached is exactly ``k / n``. :func:`fine_grained_prune` applies a
  per-layer plan and returns the masks; :func:`keep_masked` keeps pruned weights at zero while fine-tuning;
  :func:`sensitivity_scan` prunes one layer at a time and measures the damage.
* Channel (structured) pruning: :func:`channel_prune` removes output channels of every conv layer of a
  :class:`~lmlab.vision.VGG`, the first ones (``"first"``) or the least important ones (``"l2"``: smallest L2 norm
  of the next layer's weights that read the channel), and returns a new, genuinely smaller model.
* Cost: :func:`count_macs` counts multiply-accumulates of conv and linear layers, :func:`count_outputs` the values
  every layer writes; :func:`latency` times a forward
  pass with ``torch.utils.benchmark``; :func:`layer_times` splits a forward pass by layer with the profiler.
* :func:`semi_structured_mask`: N:M sparsity (2:4 by default), the pattern sparse tensor cores accelerate.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from lmlab.core.checks import check_float, check_int, check_tensor

__all__ = [
    "apply_masks",
    "channel_importance",
    "channel_prune",
    "count_macs",
    "count_outputs",
    "fine_grained_prune",
    "keep_masked",
    "kept_channels",
    "latency",
    "layer_times",
    "magnitude_mask",
    "n_pruned",
    "prunable_layers",
    "semi_structured_mask",
    "sensitivity_scan",
    "sparsity",
]


MAX_RUN_TIME_S = 60.0  # the longest min_run_time latency() accepts: a larger one is a mistake, not a measurement
MAX_REPS = 10_000  # the most forward passes per round layer_times() accepts
MAX_ROUNDS = 1_000  # the most rounds layer_times() accepts


def _check_sparsity(s: object, name: str = "sparsity") -> float:
    if isinstance(s, bool) or not isinstance(s, (int, float)) or not 0 <= s < 1:
        raise ValueError(f"{name} must be a number in [0, 1), got {s!r}")
    return float(s)


def n_pruned(numel: int, sparsity: float) -> int:
    """How many of ``numel`` weights a target ``sparsity`` in [0, 1) removes: ``round(sparsity * numel)``, with
    Python's round-half-to-even (``torch.nn.utils.prune`` rounds the same way)."""
    return round(_check_sparsity(sparsity) * numel)


def magnitude_mask(weight: Tensor, sparsity: float) -> Tensor:
    """The fine-grained magnitude-pruning mask of ``weight`` (any shape): True where a weight is kept.

    Exactly ``k = n_pruned(weight.numel(), sparsity)`` entries are False: those of smallest ``|w|``. Among equal
    magnitudes the lower flat index is pruned first (a stable sort), so the mask is deterministic.

    Raises:
        ValueError: ``sparsity`` is outside [0, 1) or ``weight`` is empty.
    """
    if weight.numel() == 0:
        raise ValueError("weight must hold at least one element")
    k = n_pruned(weight.numel(), sparsity)
    mask = torch.ones(weight.numel(), dtype=torch.bool, device=weight.device)
    if k:
        order = torch.argsort(weight.detach().abs().flatten(), stable=True)
        mask[order[:k]] = False
    return mask.view_as(weight)


def sparsity(t: Tensor) -> float:
    """Fraction of the entries of ``t`` that are exactly zero."""
    if t.numel() == 0:
        raise ValueError("t must hold at least one element")
    return float((t == 0).sum()) / t.numel()


def prunable_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The conv and linear layers of ``model`` by name (``named_modules`` order): the layers this module prunes."""
    return {n: m for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}


def _layer(model: nn.Module, name: str) -> nn.Module:
    layers = prunable_layers(model)
    if name not in layers:
        raise ValueError(f"{name!r} is not a conv or linear layer of the model; prunable layers: {', '.join(layers)}")
    return layers[name]


@torch.no_grad()
def fine_grained_prune(model: nn.Module, plan: Mapping[str, float]) -> dict[str, Tensor]:
    """Prune ``model`` in place by weight magnitude, layer by layer: ``plan`` maps a layer name (see
    :func:`prunable_layers`) to its target sparsity in [0, 1). Returns the masks (True = kept) by layer name.

    Raises:
        ValueError: a name is not a conv or linear layer of ``model``, or a sparsity is outside [0, 1).
    """
    masks = {}
    for name, s in plan.items():
        _check_sparsity(s, f"plan[{name!r}]")
        layer = _layer(model, name)
        masks[name] = magnitude_mask(layer.weight, s)
        layer.weight.mul_(masks[name])
    return masks


@torch.no_grad()
def apply_masks(model: nn.Module, masks: Mapping[str, Tensor]) -> None:
    """Zero the pruned weights again: ``weight *= mask`` for every layer in ``masks``.

    Raises:
        TypeError: a mask is not a bool tensor (True = kept), named by its key ``masks[name]``.
        ValueError: a key is not a conv or linear layer of ``model``, or a mask's shape differs from the weight's.
    """
    for name, mask in masks.items():
        layer = _layer(model, name)
        check_tensor(f"masks[{name!r}]", mask)
        if mask.dtype != torch.bool:
            raise TypeError(f"masks[{name!r}] must be a bool tensor (True = kept), got dtype {mask.dtype}")
        if mask.shape != layer.weight.shape:
            raise ValueError(f"masks[{name!r}] has shape {tuple(mask.shape)}, weight {tuple(layer.weight.shape)}")
        layer.weight.mul_(mask.to(layer.weight.device))


@contextmanager
def keep_masked(model: nn.Module, masks: Mapping[str, Tensor]) -> Iterator[None]:
    """Inside the ``with`` block, the gradient of every masked weight is multiplied by its mask, so training leaves
    pruned weights at exactly zero. This holds for optimizers whose step is zero for a weight whose gradient has
    always been zero and whose weight decay scales the weight (AdamW, SGD): use a fresh optimizer. The masks are
    applied on entry and again on exit."""
    apply_masks(model, masks)
    handles = []
    for name, mask in masks.items():
        w = _layer(model, name).weight
        m = mask.to(w.device, w.dtype)
        handles.append(w.register_hook(lambda g, m=m: g * m))
    try:
        yield
    finally:
        for h in handles:
            h.remove()
        apply_masks(model, masks)


@torch.no_grad()
def sensitivity_scan(
    model: nn.Module,
    evaluate: Callable[[nn.Module], float],
    sparsities: Sequence[float],
    layers: Sequence[str] | None = None,
) -> dict[str, list[float]]:
    """Prune one layer at a time to each sparsity, measure ``evaluate(model)``, restore the layer.

    Args:
        model: the trained model (left unchanged on return).
        evaluate: ``model -> score``, e.g. validation accuracy.
        sparsities: the sparsities to try, each in [0, 1).
        layers: layer names (default: every conv and linear layer).

    Returns:
        ``{layer name: [score at each sparsity]}``.
    """
    for s in sparsities:
        _check_sparsity(s, "each of sparsities")
    names = list(prunable_layers(model)) if layers is None else list(layers)
    out: dict[str, list[float]] = {}
    for name in names:
        w = _layer(model, name).weight
        saved = w.detach().clone()
        scores = []
        try:
            for s in sparsities:
                w.mul_(magnitude_mask(saved, s))
                scores.append(float(evaluate(model)))
                w.copy_(saved)
        finally:
            w.copy_(saved)
        out[name] = scores
    return out


def semi_structured_mask(weight: Tensor, n: int = 2, m: int = 4) -> Tensor:
    """N:M sparsity: in every group of ``m`` consecutive weights along the reduction dimension (a row of a linear
    weight ``(out, in)``; a conv weight ``(out, in, kh, kw)`` is read as ``(out, in*kh*kw)``), keep the ``n`` of
    largest ``|w|``. Returns a bool mask of ``weight``'s shape (True = kept); sparsity is exactly ``1 - n/m``.

    Raises:
        ValueError: ``0 < n < m`` fails, ``weight`` has fewer than 2 dimensions, or its row length is not a
            multiple of ``m``.
    """
    if not (isinstance(n, int) and isinstance(m, int) and 0 < n < m):
        raise ValueError(f"need integers 0 < n < m, got n={n!r}, m={m!r}")
    if weight.dim() < 2:
        raise ValueError(f"weight must have >= 2 dimensions (out, in, ...), got shape {tuple(weight.shape)}")
    rows = weight.detach().reshape(weight.shape[0], -1)
    if rows.shape[1] % m:
        raise ValueError(f"the row length {rows.shape[1]} of weight {tuple(weight.shape)} is not a multiple of m={m}")
    groups = rows.abs().reshape(-1, m)
    keep = torch.zeros_like(groups, dtype=torch.bool)
    keep.scatter_(1, torch.topk(groups, n, dim=1).indices, True)
    return keep.reshape(weight.shape)


# --------------------------------------------------------------------------------------------------------------
# channel pruning
# --------------------------------------------------------------------------------------------------------------


def kept_channels(channels: int, sparsity: float) -> int:
    """Channels kept when a fraction ``sparsity`` in [0, 1) of ``channels`` is removed:
    ``max(1, round((1 - sparsity) * channels))`` (round half to even)."""
    return max(1, round((1 - _check_sparsity(sparsity)) * channels))


def _vgg_blocks(model: nn.Module) -> list[tuple[int, int, nn.Module]]:
    """``(conv index in backbone, bn index, consumer)`` for each conv block; consumer = next conv or classifier."""
    backbone, classifier = getattr(model, "backbone", None), getattr(model, "classifier", None)
    if not isinstance(backbone, nn.Sequential) or not isinstance(classifier, nn.Linear):
        raise ValueError("channel pruning needs a VGG-style model: a .backbone nn.Sequential, a .classifier nn.Linear")
    mods = list(backbone.children())
    convs = []
    for i, mod in enumerate(mods):
        if isinstance(mod, nn.Conv2d):
            if mod.groups != 1 or mod.dilation != (1, 1):
                raise ValueError(f"backbone[{i}] is a grouped or dilated convolution; channel pruning cannot handle it")
            if i + 1 >= len(mods) or not isinstance(mods[i + 1], nn.BatchNorm2d):
                raise ValueError(f"backbone[{i}] (a conv) must be followed by a BatchNorm2d")
            convs.append(i)
        elif not isinstance(mod, (nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d)):
            raise ValueError(
                f"backbone[{i}] is a {type(mod).__name__}; channel pruning handles Conv2d, BatchNorm2d, ReLU and "
                "MaxPool2d only"
            )
    if not convs:
        raise ValueError("the backbone has no Conv2d layer")
    blocks = []
    for j, i in enumerate(convs):
        consumer = mods[convs[j + 1]] if j + 1 < len(convs) else classifier
        blocks.append((i, i + 1, consumer))
    return blocks


def channel_importance(consumer: nn.Module) -> Tensor:
    """Importance of each input channel of ``consumer`` (a conv or linear layer): the L2 norm of the weights that
    read it, ``||W[:, c]||`` over output channels and kernel positions. Shape ``(in_channels,)``."""
    if not isinstance(consumer, (nn.Conv2d, nn.Linear)):
        raise ValueError(f"consumer must be a Conv2d or Linear, got {type(consumer).__name__}")
    w = consumer.weight.detach()
    dims = [d for d in range(w.dim()) if d != 1]
    return w.pow(2).sum(dim=dims).sqrt()


@torch.no_grad()
def channel_prune(model: nn.Module, sparsity: float | Sequence[float], method: str = "l2") -> nn.Module:
    """A copy of a VGG-style ``model`` with output channels removed from every conv layer.

    Conv ``i`` keeps ``kept_channels(c_i, s_i)`` of its ``c_i`` output channels; its batch norm and the input
    channels of the next layer (the next conv, or the classifier after the global average pool) shrink with it.
    ``model`` is not modified. The result is a smaller model of the same class (its ``cfg`` updated when it has a
    :class:`~lmlab.vision.VGGConfig`), on the same device and in the same mode.

    Args:
        model: a :class:`~lmlab.vision.VGG` or any model with a ``backbone`` of Conv2d (groups 1) + BatchNorm2d,
            ReLU and MaxPool2d layers and a ``classifier`` nn.Linear.
        sparsity: the fraction of channels removed, in [0, 1): one number for every conv layer or one per layer.
        method: ``"first"`` keeps channels ``0..k-1`` (naive); ``"l2"`` keeps the ``k`` channels of largest
            :func:`channel_importance` (in their original order).

    Raises:
        ValueError: a sparsity outside [0, 1), a wrong number of sparsities, an unknown method, or a layer the
            function cannot handle.
    """
    if method not in ("first", "l2"):
        raise ValueError(f"method must be 'first' or 'l2', got {method!r}")
    blocks = _vgg_blocks(model)
    ratios = [sparsity] * len(blocks) if isinstance(sparsity, (int, float)) else list(sparsity)
    if len(ratios) != len(blocks):
        raise ValueError(f"sparsity must be one number or {len(blocks)} numbers (one per conv), got {len(ratios)}")
    for r in ratios:
        _check_sparsity(r)
    new = copy.deepcopy(model)
    mods = list(new.backbone.children())
    new_blocks = _vgg_blocks(new)
    widths = []
    for (ci, bi, _), (_, _, consumer), r in zip(blocks, new_blocks, ratios):
        conv, bn = mods[ci], mods[bi]
        k = kept_channels(conv.out_channels, r)
        if method == "first":
            keep = torch.arange(k, device=conv.weight.device)
        else:
            keep = torch.topk(channel_importance(consumer), k).indices.sort().values
        # this conv's output channels and its batch norm
        conv.weight = nn.Parameter(conv.weight[keep].clone())
        if conv.bias is not None:
            conv.bias = nn.Parameter(conv.bias[keep].clone())
        conv.out_channels = k
        bn.weight = nn.Parameter(bn.weight[keep].clone())
        bn.bias = nn.Parameter(bn.bias[keep].clone())
        bn.running_mean = bn.running_mean[keep].clone()
        bn.running_var = bn.running_var[keep].clone()
        bn.num_features = k
        # the next layer's input channels
        consumer.weight = nn.Parameter(consumer.weight[:, keep].clone())
        if isinstance(consumer, nn.Conv2d):
            consumer.in_channels = k
        else:
            consumer.in_features = k
        widths.append(k)
    cfg = getattr(new, "cfg", None)
    if dataclasses.is_dataclass(cfg) and hasattr(cfg, "channels"):
        it = iter(widths)
        new.cfg = dataclasses.replace(cfg, channels=tuple(c if c == "M" else next(it) for c in cfg.channels))
    return new


# --------------------------------------------------------------------------------------------------------------
# cost: MACs, latency, time per operator
# --------------------------------------------------------------------------------------------------------------


@torch.no_grad()
def count_macs(model: nn.Module, x: Tensor) -> dict[str, int]:
    """Multiply-accumulates of every conv and linear layer for the input ``x`` (counted by forward hooks).

    A conv layer with output ``(B, c_o, h_o, w_o)`` does ``B c_o h_o w_o (c_i / groups) k_h k_w`` MACs; a linear
    layer with output ``(..., out)`` does ``(...) out in`` MACs. Other layers (batch norm, ReLU, pooling) are not
    counted. Pass a batch of one image for the MACs per image.

    Returns:
        ``{layer name: MACs}`` in the order the layers ran.
    """
    macs: dict[str, int] = {}
    handles = []

    def hook(name: str) -> Callable[[nn.Module, tuple[Tensor, ...], Tensor], None]:
        def f(mod: nn.Module, _inp: tuple[Tensor, ...], out: Tensor) -> None:
            if isinstance(mod, nn.Conv2d):
                kh, kw = mod.kernel_size
                n = out.numel() * (mod.in_channels // mod.groups) * kh * kw
            else:
                n = out.numel() * mod.in_features
            macs[name] = macs.get(name, 0) + int(n)

        return f

    for name, mod in prunable_layers(model).items():
        handles.append(mod.register_forward_hook(hook(name)))
    _run_once(model, x, handles)
    return macs


def _run_once(model: nn.Module, x: Tensor, handles: list[torch.utils.hooks.RemovableHandle]) -> None:
    """One forward pass of ``x`` in eval mode with the given hooks, which are removed afterwards."""
    was = model.training
    model.eval()
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was)


@torch.no_grad()
def count_outputs(model: nn.Module, x: Tensor) -> dict[str, int]:
    """Number of values every leaf module writes for the input ``x`` (counted by forward hooks): the activations an
    elementwise layer (batch norm, ReLU, pooling) reads and writes, a deterministic measure of its memory traffic.

    Returns:
        ``{leaf module name: output elements}`` in the order the modules ran.
    """
    counts: dict[str, int] = {}
    handles = []
    for name, mod in model.named_modules():
        if name and not any(True for _ in mod.children()):

            def f(_m: nn.Module, _i: object, out: Tensor, name: str = name) -> None:
                counts[name] = counts.get(name, 0) + int(out.numel())

            handles.append(mod.register_forward_hook(f))
    _run_once(model, x, handles)
    return counts


def latency(
    model: Callable[[Tensor], Tensor],
    x: Tensor,
    *,
    min_run_time: float = 0.2,
    num_threads: int = 1,
    clock: str = "auto",
) -> float:
    """Seconds of one forward pass ``model(x)`` under ``torch.no_grad()``, measured with
    ``torch.utils.benchmark.Timer.blocked_autorange``: the time per run of the fastest block of runs.

    Args:
        model: a module or any callable of one tensor (put into eval mode while it is timed, if a module).
        x: the input, already on the model's device.
        min_run_time: seconds to keep measuring, in (0, ``MAX_RUN_TIME_S`` = 60].
        num_threads: intra-op threads for the timer (default 1, as in this book), in [1, ``os.cpu_count()``].
        clock: ``"wall"`` (``time.perf_counter``; the timer synchronises CUDA), ``"cpu"`` (``time.process_time``:
            the process's CPU time, equal to the wall time of single-threaded compute on an idle machine, but blind
            to the time other processes take from it on a busy one), or ``"auto"``: ``"cpu"`` for a CPU tensor with
            one thread, else ``"wall"``.

    Raises:
        TypeError: ``model`` not callable, ``x`` not a tensor, ``min_run_time`` not a number or ``num_threads`` not
            an int.
        ValueError: ``min_run_time`` is not finite in (0, 60], ``num_threads`` outside [1, ``os.cpu_count()``],
            an unknown ``clock``, or ``"cpu"`` for a GPU tensor or with
            several threads (CPU time would then not measure the pass).
    """
    import time

    from torch.utils import benchmark

    if not callable(model):
        raise TypeError(f"model must be callable, got {type(model).__name__}")
    check_tensor("x", x)
    min_run_time = check_float("min_run_time", min_run_time, 0.0, strict=True, high=MAX_RUN_TIME_S)
    num_threads = check_int("num_threads", num_threads, 1, os.cpu_count() or 1)
    if clock not in ("auto", "wall", "cpu"):
        raise ValueError(f"clock must be 'auto', 'wall' or 'cpu', got {clock!r}")
    single_cpu = x.device.type == "cpu" and num_threads == 1
    if clock == "cpu" and not single_cpu:
        raise ValueError("clock='cpu' needs a CPU tensor and num_threads=1")
    use_cpu_clock = clock == "cpu" or (clock == "auto" and single_cpu)
    was = getattr(model, "training", None)
    if isinstance(model, nn.Module):
        model.eval()

    def run() -> None:
        with torch.no_grad():
            model(x)

    run()  # warm-up: first calls allocate and pick kernels
    timer = benchmark.Timer(
        stmt="run()",
        globals={"run": run},
        num_threads=num_threads,
        timer=time.process_time if use_cpu_clock else time.perf_counter,
    )
    m = timer.blocked_autorange(min_run_time=min_run_time)
    if isinstance(model, nn.Module) and was is not None:
        model.train(was)
    return float(min(m.times))


@contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2 (the profiler's C++ backend prints a line at every start and stop)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def layer_times(
    model: nn.Module, x: Tensor, *, reps: int = 10, rounds: int = 3, clock: str = "auto"
) -> dict[str, float]:
    """Seconds per forward pass spent in each leaf module of ``model`` (by name), and in ``"(rest)"``: whatever
    the forward does outside them (a functional global average pool, Python glue).

    Args:
        model: the network (timed in eval mode, under ``torch.no_grad()``).
        x: its input, on the model's device.
        reps: forward passes per round; a round's times are averages over them.
        rounds: rounds; each layer's result is its smallest round average (other processes only add time).
        clock: ``"profiler"``: ``torch.profiler`` with each leaf module's call in a ``record_function`` range; a
            range's time is the time of the GPU kernels launched inside it when ``x`` is on a GPU, else its
            wall-clock CPU time. ``"cpu"``: forward hooks read the process's CPU time (``time.process_time``)
            before and after each leaf module; for a CPU tensor and one thread only. ``"auto"``: ``"cpu"`` for a
            CPU tensor when torch uses one thread, else ``"profiler"``.

    The instrumentation adds a little time to every layer: compare layers with each other, and use
    :func:`latency` for the time of the whole pass.

    Raises:
        TypeError: ``model`` not an ``nn.Module``, ``x`` not a tensor, ``reps`` or ``rounds`` not an int.
        ValueError: ``reps`` outside [1, ``MAX_REPS`` = 10000] or ``rounds`` outside [1, ``MAX_ROUNDS`` = 1000],
            an unknown ``clock``, or ``"cpu"`` where it does not apply.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    check_tensor("x", x)
    reps = check_int("reps", reps, 1, MAX_REPS)
    rounds = check_int("rounds", rounds, 1, MAX_ROUNDS)
    if clock not in ("auto", "profiler", "cpu"):
        raise ValueError(f"clock must be 'auto', 'profiler' or 'cpu', got {clock!r}")
    single_cpu = x.device.type == "cpu" and torch.get_num_threads() == 1
    if clock == "cpu" and not single_cpu:
        raise ValueError("clock='cpu' needs a CPU tensor and torch.get_num_threads() == 1")
    use_cpu_clock = clock == "cpu" or (clock == "auto" and single_cpu)
    leaves = {n: m for n, m in model.named_modules() if n and not any(True for _ in m.children())}
    was = model.training
    model.eval()
    best: dict[str, float] = {}
    try:
        with torch.no_grad():
            model(x)  # warm-up
            for _ in range(rounds):
                times = _times_cpu(model, x, leaves, reps) if use_cpu_clock else _times_profiler(model, x, leaves, reps)
                for k, v in times.items():
                    best[k] = min(best.get(k, float("inf")), v)
    finally:
        model.train(was)
    return best


def _times_cpu(model: nn.Module, x: Tensor, leaves: dict[str, nn.Module], reps: int) -> dict[str, float]:
    import time

    totals = dict.fromkeys(leaves, 0.0)
    start: dict[str, float] = {}
    handles = []
    for name, mod in leaves.items():

        def pre(_m: nn.Module, _i: object, name: str = name) -> None:
            start[name] = time.process_time()

        def post(_m: nn.Module, _i: object, _o: object, name: str = name) -> None:
            totals[name] += time.process_time() - start[name]

        handles += [mod.register_forward_pre_hook(pre), mod.register_forward_hook(post)]
    try:
        t0 = time.process_time()
        for _ in range(reps):
            model(x)
        whole = time.process_time() - t0
    finally:
        for h in handles:
            h.remove()
    out = {n: t / reps for n, t in totals.items()}
    out["(rest)"] = max(0.0, whole / reps - sum(out.values()))
    return out


def _times_profiler(model: nn.Module, x: Tensor, leaves: dict[str, nn.Module], reps: int) -> dict[str, float]:
    from torch.profiler import ProfilerActivity, profile, record_function

    cuda = x.is_cuda
    open_ranges: dict[str, record_function] = {}
    handles = []
    for name, mod in leaves.items():

        def pre(_m: nn.Module, _i: object, name: str = name) -> None:
            open_ranges[name] = record_function(f"layer::{name}")
            open_ranges[name].__enter__()

        def post(_m: nn.Module, _i: object, _o: object, name: str = name) -> None:
            open_ranges.pop(name).__exit__(None, None, None)

        handles += [mod.register_forward_pre_hook(pre), mod.register_forward_hook(post)]
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    try:
        if cuda:
            torch.cuda.synchronize()
        with _quiet_stderr(), profile(activities=activities) as prof:
            for _ in range(reps):
                with record_function("layer::(model)"):
                    model(x)
            if cuda:
                torch.cuda.synchronize()
    finally:
        for h in handles:
            h.remove()
    totals: dict[str, float] = {}
    for ev in prof.key_averages():
        if ev.key.startswith("layer::"):
            us = getattr(ev, "device_time_total", None) if cuda else ev.cpu_time_total
            if us is None:
                us = getattr(ev, "cuda_time_total", 0.0)
            totals[ev.key[len("layer::") :]] = float(us) * 1e-6 / reps
    out = {name: totals.get(name, 0.0) for name in leaves}
    out["(rest)"] = max(0.0, totals.get("(model)", 0.0) - sum(out.values()))
    return out
