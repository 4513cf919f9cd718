"""How a LoRA adapter starts: its scale and the five initialisations the book compares.

Notation (the homework's): a frozen weight W_0 with m rows and l columns becomes W_0 + s A B, with A (m x k) on
the OUTPUT side, B (k x l) on the INPUT side, rank k and scale s. A layer computes y = W x for a column x (book) or
``x @ W.T`` for a row ``x`` (PyTorch, where ``nn.Linear.weight`` has shape (out, in) = (m, l)). Hu et al. (2021)
write the same update as B A with their B (d x r) next to the output and their A (r x k) next to the input, so the
names swap: the homework's A is the paper's B.

Initialisations (``INITS``), each returning the factors and the frozen weight to use with them:

- ``"standard"``: B random (Kaiming-uniform, bound 1/sqrt(l), ``nn.Linear``'s default), A = 0, so A B = 0 and the
  adapted layer starts equal to the pretrained one.
- ``"zero"``: A = B = 0 (the homework's part (b): no gradient reaches either factor).
- ``"xavier"``: both Xavier-uniform (the homework's part (c): A B != 0, the layer jumps at step 0).
- ``"pissa"`` (Meng et al. 2024): the top-k singular triplets of W_0 move into the adapter, s A B = U_k S_k V_k^T,
  and the frozen weight becomes the residual W_0 - s A B, so the output is unchanged at step 0.
- ``"lora-ga"`` (Wang et al. 2024): from the SVD G = U S V^T of the loss gradient with respect to W:
  B = c V_{1..k}^T and A = c U_{k+1..2k} with c = m^(1/4) / sqrt(gamma) (their "ArB2r" directions and "stable"
  scale); the frozen weight becomes W_0 - s A B, so the output is again unchanged at step 0.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lmlab.core.checks import check_float, check_generator, check_int, check_str, check_tensor

__all__ = ["INITS", "SCALINGS", "check_rank", "init_factors", "lora_scale"]

INITS = ("standard", "zero", "xavier", "pissa", "lora-ga")
SCALINGS = ("lora", "rslora")


def check_rank(rank: object, m: int, l: int) -> int:
    """``rank`` as an int in [1, min(m, l)], else ValueError/TypeError naming the allowed range."""
    check_int("m", m, 1)
    check_int("l", l, 1)
    if isinstance(rank, bool) or not isinstance(rank, int):
        raise TypeError(f"rank must be an int, got {type(rank).__name__}")
    if not 1 <= rank <= min(m, l):
        raise ValueError(f"rank must be in [1, min(m, l)] = [1, {min(m, l)}] for a {m} x {l} weight, got {rank}")
    return rank


def lora_scale(alpha: float, rank: int, rule: str = "lora") -> float:
    """The scale s in W_0 + s A B: ``alpha / rank`` (Hu et al. 2021) or ``alpha / sqrt(rank)`` (rsLoRA).

    Raises:
        ValueError: ``alpha`` not a positive finite number, ``rank`` < 1, or ``rule`` not in ``SCALINGS``.
    """
    check_float("alpha", alpha, 0.0, strict=True)
    check_int("rank", rank, 1)
    check_str("rule", rule)
    if rule == "lora":
        return float(alpha) / rank
    if rule == "rslora":
        return float(alpha) / math.sqrt(rank)
    raise ValueError(f"unknown scaling rule {rule!r}; known rules: {', '.join(SCALINGS)}")


def init_factors(
    W0: Tensor,
    rank: int,
    init: str = "standard",
    *,
    scale: float = 1.0,
    grad: Tensor | None = None,
    gamma: float = 16.0,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Initial factors for a frozen weight W0 (m x l): returns ``(A, B, W_frozen)``.

    Args:
        W0: the pretrained weight, (m, l), any float dtype and device (the results share them).
        rank: k in [1, min(m, l)] (``"lora-ga"`` needs 2k <= min(m, l)).
        init: one of ``INITS``.
        scale: s > 0, the factor in W_0 + s A B (PiSSA and LoRA-GA divide it out so that s A B is what they mean).
        grad: dL/dW at W0, (m, l); required by ``"lora-ga"`` and ignored otherwise.
        gamma: LoRA-GA's stability constant (16 in its paper).
        generator: a CPU generator for the random draws (``"standard"``, ``"xavier"``), for reproducibility.

    Returns:
        A (m, k), B (k, l) and the weight to keep frozen: W0 itself, or the residual W0 - s A B for the SVD-based
        starts, so that W_frozen + s A B = W0 exactly in real arithmetic for every init except ``"xavier"``.

    Raises:
        ValueError: unknown init (the known ones are listed), rank out of range, a missing or misshapen grad.
    """
    check_str("init", init)
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; known inits: {', '.join(INITS)}")
    check_tensor("W0", W0, 2, floating=True)
    scale = check_float("scale", scale, 0.0, strict=True)
    gamma = check_float("gamma", gamma, 0.0, strict=True)
    if generator is not None:
        generator = check_generator(generator)
    if grad is not None:
        check_tensor("grad", grad, 2)
    m, l = W0.shape
    k = check_rank(rank, m, l)
    kw = {"dtype": W0.dtype}
    W0 = W0.detach()

    def draw(rows: int, cols: int, bound: float) -> Tensor:
        u = torch.rand(rows, cols, generator=generator, dtype=torch.float64)
        return ((2 * u - 1) * bound).to(W0)

    if init == "standard":
        return torch.zeros(m, k, **kw, device=W0.device), draw(k, l, 1 / math.sqrt(l)), W0.clone()
    if init == "zero":
        return torch.zeros(m, k, **kw, device=W0.device), torch.zeros(k, l, **kw, device=W0.device), W0.clone()
    if init == "xavier":  # torch.nn.init.xavier_uniform_: bound sqrt(6 / (fan_in + fan_out))
        return draw(m, k, math.sqrt(6 / (m + k))), draw(k, l, math.sqrt(6 / (k + l))), W0.clone()
    if init == "pissa":
        U, S, Vh = torch.linalg.svd(W0.double(), full_matrices=False)
        root = (S[:k] / scale).sqrt()
        A, B = U[:, :k] * root, root[:, None] * Vh[:k]
    else:  # lora-ga
        if 2 * k > min(m, l):
            raise ValueError(f"lora-ga needs 2 * rank <= min(m, l) = {min(m, l)}, got rank {k}")
        if grad is None or tuple(grad.shape) != (m, l):
            got = None if grad is None else tuple(grad.shape)
            raise ValueError(f"lora-ga needs grad, the loss gradient dL/dW of shape ({m}, {l}); got {got}")
        U, S, Vh = torch.linalg.svd(grad.detach().double(), full_matrices=False)
        c = m**0.25 / math.sqrt(gamma)
        A, B = c * U[:, k : 2 * k], c * Vh[:k]
    A, B = A.to(W0), B.to(W0)
    return A, B, (W0.double() - scale * (A.double() @ B.double())).to(W0)
