"""The linear algebra of transformer circuits (Elhage et al., 2021), in the book's notation.

Convention. This module follows the homework's *columns-are-tokens* notation: a residual stream is a matrix
``X`` of shape ``(d_model, n_context)`` whose column ``X[:, j]`` is the vector of token ``j``; a head has
``W_Q, W_K, W_V`` of shape ``(d_head, d_model)`` and ``W_O`` of shape ``(d_model, d_head)``, so that

* the QK circuit is ``W_QK = W_Q^T W_K`` and the score is ``S_ij = X_i^T W_QK X_j``;
* the OV circuit is ``W_OV = W_O W_V`` and the head's output is ``h(X) = W_OV X A^T``.

PyTorch's layers work row-per-token instead (activations ``(batch, n, d_model)``, a linear map applied as
``x @ W.T``): everything here is the transpose of what a PyTorch model stores per token; :func:`to_columns` turns a
sequence ``x`` of shape ``(n, d_model)`` into the book's ``X``. Row-per-token libraries (e.g. TransformerLens) define
the OV matrix as ``W_V W_O``, the transpose of the book's ``W_OV``: their *left* singular vectors are the book's
*right* ones (the read directions) and vice versa.

The circuits ``W_QK = W_Q^T W_K`` and ``W_OV = W_O W_V`` are defined once, by :class:`lmlab.layers.Head`
(``model.head(l, h).W_OV``), as are a head's shapes and default score factor (:func:`lmlab.layers.default_scale`).
Nothing here depends on a trained model: every function takes plain tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from lmlab.core.checks import check_float, check_int, check_tensor
from lmlab.core.layers import causal_mask

__all__ = [
    "SVDFactors",
    "factored_svd",
    "full_svd",
    "read_projector",
    "write_projector",
    "subspace_projector",
    "projection_fraction",
    "energy_fraction",
    "ov_gain",
    "head_output_decomposition",
    "attention_scores",
    "attention_pattern",
    "attention_weighted_average",
    "head_output",
    "circuit_attention",
    "stack_W_O",
    "stack_r",
    "split_W_O",
    "concat_output",
    "additive_output",
    "to_columns",
    "centre_columns",
]


# ----------------------------------------------------------------------------------------------------- checks
def _matrix(name: str, x: Any) -> Tensor:
    return check_tensor(name, x, 2, floating=True)


def _same_device_dtype(**mats: Tensor) -> None:
    (n0, m0), *rest = mats.items()
    for n, m in rest:
        if m.dtype != m0.dtype or m.device != m0.device:
            raise ValueError(
                f"{n} ({m.dtype}, {m.device}) must have the same dtype and device as {n0} ({m0.dtype}, {m0.device})"
            )


# --------------------------------------------------------------------------------------------- the SVD of OV
class SVDFactors(NamedTuple):
    """A compact SVD ``M = U diag(S) V^T`` in the book's notation.

    Attributes:
        U: ``(d_out, r)`` left singular vectors, orthonormal columns: the *write* directions of a head.
        S: ``(r,)`` singular values, descending, all above the rank tolerance.
        V: ``(d_in, r)`` right singular vectors, orthonormal columns: the *read* directions of a head.
    """

    U: Tensor
    S: Tensor
    V: Tensor

    @property
    def Vh(self) -> Tensor:
        """``V^T``, shape ``(r, d_in)``, as ``torch.linalg.svd`` returns it."""
        return self.V.T

    @property
    def rank(self) -> int:
        """The numerical rank ``r``."""
        return int(self.S.numel())

    def matrix(self) -> Tensor:
        """Rebuild ``U diag(S) V^T`` (``(d_out, d_in)``; forms the full matrix, for checks only)."""
        return (self.U * self.S) @ self.V.T


def _truncate(U: Tensor, S: Tensor, V: Tensor, rank_tol: float | None, dims: Sequence[int]) -> SVDFactors:
    if rank_tol is None:
        rank_tol = max(dims) * torch.finfo(S.dtype).eps
    if not (isinstance(rank_tol, (int, float)) and 0.0 <= float(rank_tol) < 1.0):
        raise ValueError(
            f"rank_tol must be a float in [0, 1) (relative to the largest singular value), got {rank_tol!r}"
        )
    r = int((S > float(rank_tol) * S[0]).sum()) if S.numel() else 0
    return SVDFactors(U[:, :r], S[:r], V[:, :r])


def factored_svd(W_O: Tensor, W_V: Tensor, rank_tol: float | None = None) -> SVDFactors:
    """Compact SVD of ``W_OV = W_O W_V`` without ever forming the ``d_model x d_model`` product.

    With thin QR factorisations ``W_O = Q_O R_O`` and ``W_V^T = Q_V R_V``,
    ``W_O W_V = Q_O (R_O R_V^T) Q_V^T``; the small ``k x k`` core (``k <= d_head``) has the SVD
    ``R_O R_V^T = U_c diag(S) V_c^T``, so ``U = Q_O U_c`` and ``V = Q_V V_c`` (products of orthonormal
    columns stay orthonormal). Cost ``O(d_model d_head^2)`` instead of ``O(d_model^3)``.

    Works for any factor shapes ``(m, k) @ (k, n)``; for a head ``m = n = d_model`` and ``k = d_head``.

    Args:
        W_O: ``(d_model, d_head)``, the left factor.
        W_V: ``(d_head, d_model)``, the right factor.
        rank_tol: keep singular values ``> rank_tol * S[0]``. ``None`` (default) uses
            ``max(m, n, k) * eps(dtype)``, like ``numpy.linalg.matrix_rank``; ``0.0`` keeps every nonzero one.

    Returns:
        :class:`SVDFactors` ``(U, S, V)`` with ``U`` ``(d_model, r)``, ``S`` ``(r,)``, ``V`` ``(d_model, r)``
        and ``W_O W_V = U diag(S) V^T`` (``V`` holds the right singular vectors as columns; ``.Vh`` is ``V^T``).

    Raises:
        ValueError: inner dimensions differ, or ``rank_tol`` is outside ``[0, 1)``.
        TypeError: the factors are not floating-point tensors.
    """
    W_O, W_V = _matrix("W_O", W_O), _matrix("W_V", W_V)
    if W_O.shape[1] != W_V.shape[0]:
        raise ValueError(
            "the inner dimensions must agree: W_O is (d_model, d_head) and W_V (d_head, d_model); "
            f"got W_O {tuple(W_O.shape)} and W_V {tuple(W_V.shape)}"
        )
    _same_device_dtype(W_O=W_O, W_V=W_V)
    Q_O, R_O = torch.linalg.qr(W_O, mode="reduced")  # (m, p), (p, k) with p = min(m, k)
    Q_V, R_V = torch.linalg.qr(W_V.T, mode="reduced")  # (n, q), (q, k) with q = min(n, k)
    U_c, S, Vh_c = torch.linalg.svd(R_O @ R_V.T, full_matrices=False)  # the small core, p x q
    U = Q_O @ U_c
    V = Q_V @ Vh_c.T
    return _truncate(U, S, V, rank_tol, (W_O.shape[0], W_V.shape[1], W_O.shape[1]))


def full_svd(M: Tensor, rank_tol: float | None = None) -> SVDFactors:
    """Compact SVD of an explicit matrix with ``torch.linalg.svd`` (the reference :func:`factored_svd` avoids).

    Args:
        M: ``(d_out, d_in)``.
        rank_tol: as in :func:`factored_svd`.

    Returns:
        :class:`SVDFactors` truncated to the numerical rank.
    """
    M = _matrix("M", M)
    U, S, Vh = torch.linalg.svd(M, full_matrices=False)
    return _truncate(U, S, Vh.T, rank_tol, tuple(M.shape))


def subspace_projector(basis: Tensor, rank_tol: float | None = None) -> Tensor:
    """Orthogonal projector onto the column space of ``basis``.

    Args:
        basis: ``(d, k)``; its columns span the subspace (need not be orthonormal or independent).
        rank_tol: relative tolerance for the rank of ``basis`` (as in :func:`factored_svd`).

    Returns:
        ``(d, d)`` symmetric idempotent ``P`` with ``P x`` the closest point of ``span(basis)`` to ``x``.
    """
    basis = _matrix("basis", basis)
    U = full_svd(basis, rank_tol).U
    return U @ U.T


def _svd(svd: Any) -> SVDFactors:
    if not isinstance(svd, SVDFactors):
        raise TypeError(f"svd must be SVDFactors (from factored_svd), got {type(svd).__name__}")
    return svd


def read_projector(svd: SVDFactors) -> Tensor:
    """Projector ``V V^T`` onto a head's *read* subspace ``span(V) = Row(W_OV)``, ``(d_model, d_model)``."""
    return _svd(svd).V @ svd.V.T


def write_projector(svd: SVDFactors) -> Tensor:
    """Projector ``U U^T`` onto a head's *write* subspace ``span(U) = Col(W_OV)``, ``(d_model, d_model)``."""
    return _svd(svd).U @ svd.U.T


def projection_fraction(vectors: Tensor, basis: Tensor, rank_tol: float | None = None) -> Tensor:
    """Fraction of each column's squared norm that lies in ``span(basis)``.

    Args:
        vectors: ``(d, k)``, columns to measure (e.g. a head's ``U`` or ``V``).
        basis: ``(d, m)``, columns spanning the subspace (e.g. ``W_E`` or ``W_pos``).

    Returns:
        ``(k,)`` numbers in ``[0, 1]``: ``||P v||^2 / ||v||^2`` per column (0 for a zero column).

    Raises:
        ValueError: the two have a different number of rows ``d``.
    """
    vectors, basis = _matrix("vectors", vectors), _matrix("basis", basis)
    if vectors.shape[0] != basis.shape[0]:
        raise ValueError(
            f"vectors {tuple(vectors.shape)} and basis {tuple(basis.shape)} must have the same number of rows (d)"
        )
    _same_device_dtype(vectors=vectors, basis=basis)
    Ub = full_svd(basis, rank_tol).U
    num = (Ub.T @ vectors).pow(2).sum(0)
    den = vectors.pow(2).sum(0)
    return torch.where(den > 0, num / den.clamp_min(torch.finfo(den.dtype).tiny), torch.zeros_like(den))


def energy_fraction(svd: SVDFactors, basis: Tensor, side: str = "read", rank_tol: float | None = None) -> float:
    """Share of a head's OV circuit that reads from (or writes to) the subspace ``span(basis)``.

    ``side="read"``: ``||W_OV P||_F^2 / ||W_OV||_F^2 = sum_k sigma_k^2 ||P V_k||^2 / sum_k sigma_k^2``;
    ``side="write"``: the same with ``P W_OV`` and the ``U_k``. ``P`` projects onto ``span(basis)``. A subspace of
    dimension ``m`` met by random directions in ``R^d`` gets about ``m / d``: compare against that baseline.

    Args:
        svd: compact SVD of ``W_OV`` (:func:`factored_svd`), vectors ``(d_model, r)``.
        basis: ``(d_model, m)`` columns spanning the subspace (e.g. ``W_E``, ``W_pos``, ``W_U^T``).
        side: ``"read"`` (use ``V``) or ``"write"`` (use ``U``).

    Returns:
        A float in ``[0, 1]``.
    """
    svd = _svd(svd)
    if side not in ("read", "write"):
        raise ValueError(f"side must be 'read' or 'write', got {side!r}")
    vecs = svd.V if side == "read" else svd.U
    if svd.rank == 0:
        return 0.0
    frac = projection_fraction(vecs, basis, rank_tol)
    w = svd.S.pow(2)
    return float((w * frac).sum() / w.sum())


def ov_gain(svd: SVDFactors, inputs: Tensor, centre: bool = True) -> float:
    """Root-mean-square gain of a head's OV map on a set of inputs: ``||W_OV X||_F / ||X||_F``.

    Computed from the SVD as ``||diag(S) V^T X||_F / ||X||_F`` (``V`` reads, ``S`` weighs; ``U`` has orthonormal
    columns and does not change norms). With ``centre=True`` the mean column is removed first, so the gain measures
    how strongly the head passes on the *differences* between the inputs, e.g. between token embeddings
    (``inputs = W_E``) or between positions (``inputs = W_pos``). Compare with ``||W_OV||_F / sqrt(d_model)``,
    the RMS gain on a random direction.

    Args:
        svd: compact SVD of ``W_OV`` (:func:`factored_svd`).
        inputs: ``(d_model, m)`` columns.
        centre: subtract the mean column before measuring.

    Returns:
        A non-negative float (0 if the inputs are all equal).
    """
    svd = _svd(svd)
    inputs = _matrix("inputs", inputs)
    if inputs.shape[0] != svd.V.shape[0]:
        raise ValueError(f"inputs must be (d_model, m) with d_model = {svd.V.shape[0]}, got {tuple(inputs.shape)}")
    _same_device_dtype(inputs=inputs, V=svd.V)
    X = inputs - inputs.mean(1, keepdim=True) if centre else inputs
    den = float(X.norm())
    return float((svd.S[:, None] * (svd.V.T @ X)).norm()) / den if den > 0.0 else 0.0


def head_output_decomposition(svd: SVDFactors, x: Tensor) -> Tensor:
    """The terms ``sigma_k (V_k^T x) U_k`` of ``W_OV x``, one per singular direction.

    Args:
        svd: the compact SVD of ``W_OV`` (from :func:`factored_svd`).
        x: a source vector ``(d_model,)`` or a matrix of source columns ``(d_model, n)``.

    Returns:
        ``(r, d_model)`` for a vector, ``(r, d_model, n)`` for a matrix; summing over the first axis gives
        ``W_OV x``.

    Raises:
        ValueError: ``x`` has the wrong number of rows.
    """
    svd = _svd(svd)
    x = check_tensor("x", x, floating=True)
    d_in = svd.V.shape[0]
    if x.ndim not in (1, 2) or x.shape[0] != d_in:
        raise ValueError(f"x must be (d_model,) or (d_model, n) with d_model = {d_in}; got shape {tuple(x.shape)}")
    coeff = svd.S.unsqueeze(-1) * (svd.V.T @ x) if x.ndim == 2 else svd.S * (svd.V.T @ x)  # (r[, n])
    if x.ndim == 1:
        return coeff[:, None] * svd.U.T  # (r, d_model)
    return svd.U.T[:, :, None] * coeff[:, None, :]  # (r, d_model, n)


# ------------------------------------------------------------------------------------- attention, book notation
# Each function also takes a batch: X (batch, d_model, n), S and A (batch, n, n).
def attention_scores(W_qk: Tensor, X: Tensor, scale: float = 1.0) -> Tensor:
    """Scores ``S = scale * X^T W_QK X``, i.e. ``S_ij = scale * X_i^T W_QK X_j``.

    Args:
        W_qk: ``(d_model, d_model)``.
        X: residual stream ``(d_model, n_context)``, columns are tokens.
        scale: multiplies every score, > 0 (a model's head: :func:`lmlab.layers.default_scale`, ``1/sqrt(d_head)``).

    Returns:
        ``(n_context, n_context)``, row ``i`` = query ``i``, column ``j`` = key ``j``.
    """
    W_qk, X = _matrix("W_qk", W_qk), check_tensor("X", X, (2, 3), floating=True)
    scale = check_float("scale", scale, 0.0, strict=True)
    if W_qk.shape[0] != W_qk.shape[1] or W_qk.shape[1] != X.shape[-2]:
        raise ValueError(f"W_qk must be (d, d) and X (d, n); got W_qk {tuple(W_qk.shape)}, X {tuple(X.shape)}")
    return scale * (X.transpose(-1, -2) @ W_qk @ X)


def attention_pattern(S: Tensor, causal: bool = True) -> Tensor:
    """Post-softmax pattern ``A`` from scores ``S`` (``(n, n)``): each row ``i`` is a distribution over keys.

    Args:
        S: ``(n_context, n_context)`` scores, row = query.
        causal: mask keys ``j > i`` (they get weight 0).

    Returns:
        ``(n_context, n_context)``, rows summing to 1.
    """
    S = check_tensor("S", S, (2, 3), floating=True)
    if S.shape[-2] != S.shape[-1]:
        raise ValueError(f"S must be square (n_context, n_context), got {tuple(S.shape)}")
    if causal:
        S = S.masked_fill(~causal_mask(S.shape[-1], device=S.device), float("-inf"))
    return torch.softmax(S, dim=-1)


def attention_weighted_average(X: Tensor, A: Tensor) -> Tensor:
    """``Z = X A^T``: column ``i`` is ``sum_j A_ij X_j``.

    Args:
        X: ``(d_model, n_context)``.
        A: ``(n_context, n_context)``, ``A_ij`` = weight of source ``j`` for destination ``i``.

    Returns:
        ``(d_model, n_context)``.
    """
    X, A = check_tensor("X", X, (2, 3), floating=True), check_tensor("A", A, (2, 3), floating=True)
    n = X.shape[-1]
    if A.shape != (*X.shape[:-2], n, n):
        raise ValueError(f"A must be (n_context, n_context) = {(n, n)} for X {tuple(X.shape)}, got {tuple(A.shape)}")
    return X @ A.transpose(-1, -2)


def head_output(W_O: Tensor, W_V: Tensor, X: Tensor, A: Tensor) -> Tensor:
    """One head's write into the stream, ``h(X) = W_O W_V X A^T``, computed without forming ``W_OV``.

    Args:
        W_O: ``(d_model, d_head)``; W_V: ``(d_head, d_model)``.
        X: ``(d_model, n_context)``; A: ``(n_context, n_context)``.

    Returns:
        ``(d_model, n_context)``.
    """
    W_O, W_V, X = _matrix("W_O", W_O), _matrix("W_V", W_V), check_tensor("X", X, (2, 3), floating=True)
    if W_O.shape[1] != W_V.shape[0] or W_V.shape[1] != X.shape[-2]:
        raise ValueError(
            f"need W_O (d_model, d_head), W_V (d_head, d_model), X (d_model, n); got W_O {tuple(W_O.shape)}, "
            f"W_V {tuple(W_V.shape)}, X {tuple(X.shape)}"
        )
    return W_O @ (W_V @ attention_weighted_average(X, A))


def circuit_attention(
    X: Tensor, W_QK: Tensor, W_OV: Tensor, *, scale: float = 1.0, causal: bool = True
) -> tuple[Tensor, Tensor]:
    """One head from its two circuits: ``A = softmax(mask(scale X^T W_QK X))`` and the output ``W_OV X A^T``.

    The package's one attention in the book's notation, run by :func:`lmlab.induction.single_head` (a head's
    ``W_QK``, ``W_OV`` and score factor) and by the lab's :func:`lmlab.lab_induction.attention_head` (scale 1).

    Args:
        X: ``(d, n)`` or ``(batch, d, n)``; W_QK: ``(d, d)``, query side on the left; W_OV: ``(d_out, d)``;
        scale: > 0, multiplies the scores (1: the bare bilinear form); causal: mask the keys ``j > i``.

    Returns:
        ``(out, A)``: ``(d_out, n)`` and ``(n, n)`` (with ``X``'s batch dimension), rows of ``A`` summing to 1.
    """
    X, W_QK, W_OV = check_tensor("X", X, (2, 3), floating=True), _matrix("W_QK", W_QK), _matrix("W_OV", W_OV)
    if tuple(W_QK.shape) != (X.shape[-2],) * 2 or W_OV.shape[1] != X.shape[-2]:
        raise ValueError(
            f"need W_QK (d, d) and W_OV (d_out, d) for X (d, n) = {tuple(X.shape)}; got W_QK {tuple(W_QK.shape)}, "
            f"W_OV {tuple(W_OV.shape)}"
        )
    _same_device_dtype(X=X, W_QK=W_QK, W_OV=W_OV)
    A = attention_pattern(attention_scores(W_QK, X, scale), causal=causal)
    return W_OV @ attention_weighted_average(X, A), A


# ------------------------------------------------------------------------------------ concatenation vs addition
def stack_W_O(W_Os: Sequence[Tensor]) -> Tensor:
    """``W_O^H = [W_O^1 ... W_O^H]``: the heads' output matrices side by side.

    Args:
        W_Os: ``H`` matrices, each ``(d_model, d_head)`` (same shape).

    Returns:
        ``(d_model, H * d_head)``.
    """
    mats = _same_shape_list("W_Os", W_Os)
    return torch.cat(mats, dim=1)


def stack_r(rs: Sequence[Tensor]) -> Tensor:
    """``R^H``: the heads' value outputs ``r^h`` (each ``(d_head, n_context)``) stacked vertically.

    Returns:
        ``(H * d_head, n_context)``.
    """
    mats = _same_shape_list("rs", rs)
    return torch.cat(mats, dim=0)


def split_W_O(W_O_H: Tensor, n_heads: int) -> list[Tensor]:
    """Inverse of :func:`stack_W_O`: cut ``(d_model, H * d_head)`` into ``H`` blocks ``(d_model, d_head)``."""
    W_O_H = _matrix("W_O_H", W_O_H)
    check_int("n_heads", n_heads, 1)
    if W_O_H.shape[1] % n_heads:
        raise ValueError(f"W_O_H has {W_O_H.shape[1]} columns, not divisible by n_heads = {n_heads}")
    return list(W_O_H.split(W_O_H.shape[1] // n_heads, dim=1))


def _same_shape_list(name: str, mats: Sequence[Tensor]) -> list[Tensor]:
    if isinstance(mats, Tensor) or not isinstance(mats, Sequence) or len(mats) == 0:
        raise ValueError(f"{name} must be a non-empty list of matrices")
    out = [_matrix(f"{name}[{i}]", m) for i, m in enumerate(mats)]
    for i, m in enumerate(out[1:], 1):
        if m.shape != out[0].shape:
            raise ValueError(f"{name}[{i}] has shape {tuple(m.shape)}, but {name}[0] has {tuple(out[0].shape)}")
    return out


def _head_pairs(W_Os: Sequence[Tensor], rs: Sequence[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
    Ws, Rs = _same_shape_list("W_Os", W_Os), _same_shape_list("rs", rs)
    if len(Ws) != len(Rs) or Ws[0].shape[1] != Rs[0].shape[0]:
        raise ValueError(
            f"need as many W_O^h (d_model, d_head) as r^h (d_head, n); got {len(Ws)} of {tuple(Ws[0].shape)} "
            f"and {len(Rs)} of {tuple(Rs[0].shape)}"
        )
    return Ws, Rs


def concat_output(W_Os: Sequence[Tensor], rs: Sequence[Tensor]) -> Tensor:
    """Vaswani et al.'s view: ``H = W_O^H R^H`` (one matrix product). Shapes as in :func:`additive_output`."""
    Ws, Rs = _head_pairs(W_Os, rs)
    return torch.cat(Ws, dim=1) @ torch.cat(Rs, dim=0)


def additive_output(W_Os: Sequence[Tensor], rs: Sequence[Tensor]) -> Tensor:
    """The circuits view: ``H = sum_h W_O^h r^h`` (``H`` separate products).

    Args:
        W_Os: ``H`` matrices ``(d_model, d_head)``.
        rs: ``H`` matrices ``(d_head, n_context)``.

    Returns:
        ``(d_model, n_context)``.
    """
    Ws, Rs = _head_pairs(W_Os, rs)
    return sum((W @ r for W, r in zip(Ws[1:], Rs[1:])), Ws[0] @ Rs[0])


# --------------------------------------------------------------------------------------- conventions, residual
def to_columns(x: Tensor) -> Tensor:
    """PyTorch's row-per-token ``(n, d)`` (or ``(1, n, d)``) to the book's ``(d, n)``: a transpose.

    Raises:
        ValueError: a 3-D input with batch size other than 1, or another rank.
    """
    x = check_tensor("x", x, floating=True)
    if x.ndim == 3:
        if x.shape[0] != 1:
            raise ValueError(f"x must be (n, d) or (1, n, d); got batch size {x.shape[0]} (pick one sequence)")
        x = x[0]
    if x.ndim != 2:
        raise ValueError(f"x must be (n, d) or (1, n, d), got shape {tuple(x.shape)}")
    return x.T


def centre_columns(M: Tensor) -> Tensor:
    """``M`` minus each column's mean: the part of a column of logits that a softmax can see.

    Softmax ignores a constant added to all of its inputs, so two logit tables (e.g. ``W_U W_E`` and ``log P^T``)
    are compared after centring each column.
    """
    M = _matrix("M", M)
    return M - M.mean(0, keepdim=True)
