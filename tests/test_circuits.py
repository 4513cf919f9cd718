"""Tests of lmlab.circuits: the factored SVD against torch.linalg.svd, the block identity of multi-head
attention, the column-space property of a head's output, and clear errors for bad shapes."""

from __future__ import annotations

import lmlab
import pytest
import torch
from lmlab import circuits as C
from lmlab.core.layers import Head


def _low_rank_factors(m: int, k: int, n: int, rank: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random W_O (m x k) and W_V (k x n) whose product has rank exactly min(rank, k, m, n)."""
    g = lmlab.generator(seed)
    W_O = torch.randn(m, k, generator=g, dtype=torch.float64)
    W_V = torch.randn(k, n, generator=g, dtype=torch.float64)
    if rank < k:  # kill k - rank inner directions of W_O so the product loses rank
        P = torch.linalg.qr(torch.randn(k, k, generator=g, dtype=torch.float64))[0][:, :rank]
        W_O = W_O @ P @ P.T
    return W_O, W_V


SHAPES = [  # (d_model_out, d_head, d_model_in, rank)
    (64, 8, 64, 8),
    (64, 8, 64, 5),
    (50, 12, 40, 12),
    (30, 40, 20, 20),  # "head" wider than the output: rank limited by the outer dimensions
    (7, 1, 9, 1),
    (128, 16, 128, 3),
]


@pytest.mark.parametrize("m,k,n,rank", SHAPES)
def test_factored_svd_matches_full_svd(m: int, k: int, n: int, rank: int) -> None:
    W_O, W_V = _low_rank_factors(m, k, n, rank, seed=m + 7 * k + n + rank)
    M = W_O @ W_V
    fac = C.factored_svd(W_O, W_V)
    U, S, Vh = torch.linalg.svd(M, full_matrices=False)
    r = int(torch.linalg.matrix_rank(M))
    assert fac.rank == r == min(rank, m, n)
    torch.testing.assert_close(fac.S, S[:r], rtol=1e-10, atol=1e-10)
    # singular vectors are unique only up to sign/rotation within equal values: compare projectors
    torch.testing.assert_close(fac.U @ fac.U.T, U[:, :r] @ U[:, :r].T, rtol=0, atol=1e-9)
    torch.testing.assert_close(fac.V @ fac.V.T, Vh[:r].T @ Vh[:r], rtol=0, atol=1e-9)
    # orthonormal columns, reconstruction, and the Vh alias
    torch.testing.assert_close(fac.U.T @ fac.U, torch.eye(r, dtype=M.dtype), rtol=0, atol=1e-12)
    torch.testing.assert_close(fac.V.T @ fac.V, torch.eye(r, dtype=M.dtype), rtol=0, atol=1e-12)
    torch.testing.assert_close(fac.matrix(), M, rtol=0, atol=1e-10 * float(S[0]))
    assert torch.equal(fac.Vh, fac.V.T)
    # the same decomposition through full_svd
    ref = C.full_svd(M)
    assert ref.rank == r
    torch.testing.assert_close(ref.S, fac.S, rtol=1e-10, atol=1e-10)


def test_factored_svd_float32_and_rank_tol() -> None:
    W_O, W_V = _low_rank_factors(96, 16, 96, 16, seed=3)
    W_O, W_V = W_O.float(), W_V.float()
    fac = C.factored_svd(W_O, W_V)
    S = torch.linalg.svdvals((W_O @ W_V).double())[:16]
    torch.testing.assert_close(fac.S.double(), S, rtol=1e-4, atol=1e-4)
    # a loose tolerance truncates: only values above tol * S[0] survive
    tol = float(fac.S[3] / fac.S[0]) * 0.999
    assert C.factored_svd(W_O, W_V, rank_tol=tol).rank == 4
    with pytest.raises(ValueError, match="rank_tol"):
        C.factored_svd(W_O, W_V, rank_tol=1.5)


def test_attention_scores_are_the_bilinear_form_of_W_QK() -> None:
    g = lmlab.generator(0)
    W_Q, W_K, W_V = (torch.randn(4, 10, generator=g, dtype=torch.float64) for _ in range(3))
    W_O = torch.randn(10, 4, generator=g, dtype=torch.float64)
    X = torch.randn(10, 6, generator=g, dtype=torch.float64)
    head = Head(W_Q, W_K, W_V, W_O)
    # S_ij = (W_Q X_i)^T (W_K X_j) = X_i^T W_QK X_j; transposing W_QK would swap query and key
    S = C.attention_scores(head.W_QK, X)
    torch.testing.assert_close(S, (W_Q @ X).T @ (W_K @ X))
    assert not torch.allclose(S, C.attention_scores(head.W_QK.T, X))
    assert torch.linalg.matrix_rank(head.W_OV) == 4  # rank d_head


def test_circuit_attention_is_scores_pattern_average_and_W_OV_batched_or_not() -> None:
    """circuit_attention = attention_pattern(attention_scores(W_QK, X)) then W_OV X A^T; a batch is its columns."""
    g = lmlab.generator(3)
    d, n, d_out, batch = 6, 5, 4, 3
    X = torch.randn(batch, d, n, generator=g, dtype=torch.float64)
    W_QK = torch.randn(d, d, generator=g, dtype=torch.float64)
    W_OV = torch.randn(d_out, d, generator=g, dtype=torch.float64)
    for causal in (True, False):
        out, A = C.circuit_attention(X, W_QK, W_OV, scale=0.7, causal=causal)
        assert out.shape == (batch, d_out, n) and A.shape == (batch, n, n)
        for b in range(batch):
            A_b = C.attention_pattern(C.attention_scores(W_QK, X[b], scale=0.7), causal=causal)
            one = C.circuit_attention(X[b], W_QK, W_OV, scale=0.7, causal=causal)
            assert torch.equal(one[1], A_b) and torch.equal(one[0], W_OV @ C.attention_weighted_average(X[b], A_b))
            torch.testing.assert_close(out[b], one[0], rtol=1e-13, atol=1e-13)
            torch.testing.assert_close(A[b], A_b, rtol=1e-13, atol=1e-13)
        assert causal == bool((A.triu(1) == 0).all())
    with pytest.raises(ValueError, match=r"W_QK \(d, d\).*got W_QK \(5, 5\)"):
        C.circuit_attention(X, W_QK[:5, :5], W_OV)
    with pytest.raises(ValueError, match=r"W_OV \(4, 5\)"):
        C.circuit_attention(X, W_QK, W_OV[:, :5])
    with pytest.raises(ValueError, match="W_QK .* must have the same dtype and device as X"):
        C.circuit_attention(X, W_QK.float(), W_OV)
    with pytest.raises(ValueError, match="scale must be a finite number > 0"):
        C.circuit_attention(X, W_QK, W_OV, scale=0.0)


def test_concat_equals_additive_and_split_inverts_stack() -> None:
    g = lmlab.generator(1)
    H, d_model, d_head, n = 4, 32, 8, 11
    W_Os = [torch.randn(d_model, d_head, generator=g, dtype=torch.float64) for _ in range(H)]
    rs = [torch.randn(d_head, n, generator=g, dtype=torch.float64) for _ in range(H)]
    W_O_H = C.stack_W_O(W_Os)
    assert W_O_H.shape == (d_model, H * d_head)
    assert C.stack_r(rs).shape == (H * d_head, n)
    torch.testing.assert_close(C.concat_output(W_Os, rs), C.additive_output(W_Os, rs), rtol=1e-12, atol=1e-12)
    for a, b in zip(C.split_W_O(W_O_H, H), W_Os):
        assert torch.equal(a, b)


def test_head_output_lies_in_column_space_of_W_OV() -> None:
    g = lmlab.generator(2)
    d_model, d_head, n = 24, 3, 9
    W_Q, W_K, W_V = (torch.randn(d_head, d_model, generator=g, dtype=torch.float64) for _ in range(3))
    W_O = torch.randn(d_model, d_head, generator=g, dtype=torch.float64)
    X = torch.randn(d_model, n, generator=g, dtype=torch.float64)
    head = Head(W_Q, W_K, W_V, W_O)
    A = C.attention_pattern(C.attention_scores(head.W_QK, X, scale=d_head**-0.5))
    torch.testing.assert_close(A.sum(1), torch.ones(n, dtype=X.dtype))
    assert torch.all(A.triu(1) == 0)
    # column i of X A^T is sum_j A_ij X_j
    Z = C.attention_weighted_average(X, A)
    torch.testing.assert_close(Z[:, 4], sum(A[4, j] * X[:, j] for j in range(n)))
    h = C.head_output(W_O, W_V, X, A)
    torch.testing.assert_close(h, head.W_OV @ X @ A.T)
    # the book-notation functions compute what the model's own head computes (on X^T, row-per-token)
    out_model, A_model = head(X.T)
    torch.testing.assert_close(A, A_model, rtol=0, atol=1e-12)
    torch.testing.assert_close(h, out_model.T, rtol=0, atol=1e-12)
    svd = C.factored_svd(W_O, W_V)
    P = C.write_projector(svd)
    assert float((h - P @ h).norm() / h.norm()) < 1e-12
    # a generic vector is NOT in the 3-dimensional write subspace
    x = torch.randn(d_model, generator=g, dtype=torch.float64)
    assert float((x - P @ x).norm() / x.norm()) > 0.5


def test_decomposition_read_subspace_and_orthogonal_blindness() -> None:
    g = lmlab.generator(4)
    d_model, d_head = 20, 4
    W_O = torch.randn(d_model, d_head, generator=g, dtype=torch.float64)
    W_V = torch.randn(d_head, d_model, generator=g, dtype=torch.float64)
    svd = C.factored_svd(W_O, W_V)
    x = torch.randn(d_model, generator=g, dtype=torch.float64)
    terms = C.head_output_decomposition(svd, x)
    assert terms.shape == (d_head, d_model)
    torch.testing.assert_close(terms.sum(0), W_O @ W_V @ x)
    Xs = torch.randn(d_model, 5, generator=g, dtype=torch.float64)
    torch.testing.assert_close(C.head_output_decomposition(svd, Xs).sum(0), W_O @ W_V @ Xs)
    # perturbing along the orthogonal complement of the read subspace changes nothing
    P_read = C.read_projector(svd)
    perp = (torch.eye(d_model, dtype=x.dtype) - P_read) @ torch.randn(d_model, generator=g, dtype=x.dtype)
    torch.testing.assert_close(W_O @ W_V @ (x + 10 * perp), W_O @ W_V @ x)
    # the read subspace lies in the row space of W_V
    P_rowV = C.subspace_projector(W_V.T)
    torch.testing.assert_close(P_rowV @ svd.V, svd.V)
    # projection_fraction: 1 inside the subspace, 0 orthogonal to it
    fr = C.projection_fraction(torch.stack([svd.V[:, 0], perp], 1), svd.V)
    torch.testing.assert_close(fr, torch.tensor([1.0, 0.0], dtype=x.dtype), rtol=0, atol=1e-12)


def test_to_columns_and_centre_columns() -> None:
    x = torch.arange(6.0).reshape(1, 3, 2)
    assert torch.equal(C.to_columns(x), x[0].T)
    with pytest.raises(ValueError, match="batch size"):
        C.to_columns(torch.zeros(2, 3, 2))
    M = torch.randn(5, 4, generator=lmlab.generator(1), dtype=torch.float64)
    Mc = C.centre_columns(M)
    torch.testing.assert_close(Mc.sum(0), torch.zeros(4, dtype=M.dtype), rtol=0, atol=1e-12)
    # centring keeps what a softmax over each column sees, and only that
    torch.testing.assert_close(Mc.softmax(0), M.softmax(0))
    torch.testing.assert_close(C.centre_columns(M + torch.arange(4.0, dtype=M.dtype)), Mc)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: C.factored_svd(torch.zeros(10, 4), torch.zeros(5, 10)), r"inner dimensions.*\(10, 4\).*\(5, 10\)"),
        (lambda: C.factored_svd(torch.zeros(10), torch.zeros(1, 10)), r"W_O must have 2 dimensions"),
        (lambda: C.stack_W_O([torch.zeros(8, 2), torch.zeros(8, 3)]), r"W_Os\[1\].*\(8, 3\)"),
        (lambda: C.additive_output([torch.zeros(8, 2)], [torch.zeros(3, 5)]), r"W_O\^h"),
        (lambda: C.split_W_O(torch.zeros(8, 6), 4), r"not divisible by n_heads = 4"),
        (lambda: C.attention_scores(torch.zeros(3, 3), torch.zeros(4, 2)), r"W_qk.*X \(4, 2\)"),
        (lambda: C.attention_weighted_average(torch.zeros(3, 4), torch.zeros(3, 3)), r"A must be"),
        (lambda: C.projection_fraction(torch.zeros(3, 2), torch.zeros(4, 2)), r"same number of rows"),
    ],
)
def test_shape_errors_are_clear(call, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=match):
        call()


def test_type_errors() -> None:
    with pytest.raises(TypeError, match="W_O must be a torch.Tensor"):
        C.factored_svd([[1.0]], torch.zeros(1, 1))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="floating-point"):
        C.factored_svd(torch.zeros(3, 2, dtype=torch.long), torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(TypeError, match="SVDFactors"):
        C.read_projector(torch.zeros(3, 3))  # type: ignore[arg-type]


def test_energy_fraction_equals_frobenius_ratio() -> None:
    g = lmlab.generator(6)
    d_model, d_head = 16, 4
    W_O = torch.randn(d_model, d_head, generator=g, dtype=torch.float64)
    W_V = torch.randn(d_head, d_model, generator=g, dtype=torch.float64)
    B = torch.randn(d_model, 5, generator=g, dtype=torch.float64)
    svd = C.factored_svd(W_O, W_V)
    P = C.subspace_projector(B)
    M = W_O @ W_V
    torch.testing.assert_close(C.energy_fraction(svd, B, "read"), float((M @ P).norm() ** 2 / M.norm() ** 2))
    torch.testing.assert_close(C.energy_fraction(svd, B, "write"), float((P @ M).norm() ** 2 / M.norm() ** 2))
    with pytest.raises(ValueError, match="side"):
        C.energy_fraction(svd, B, "both")


def test_ov_gain_matches_direct_computation() -> None:
    g = lmlab.generator(7)
    W_O = torch.randn(12, 3, generator=g, dtype=torch.float64)
    W_V = torch.randn(3, 12, generator=g, dtype=torch.float64)
    X = torch.randn(12, 9, generator=g, dtype=torch.float64)
    svd = C.factored_svd(W_O, W_V)
    Xc = X - X.mean(1, keepdim=True)
    torch.testing.assert_close(C.ov_gain(svd, X), float((W_O @ W_V @ Xc).norm() / Xc.norm()))
    torch.testing.assert_close(C.ov_gain(svd, X, centre=False), float((W_O @ W_V @ X).norm() / X.norm()))
    assert C.ov_gain(svd, torch.ones(12, 4, dtype=torch.float64)) == 0.0
    with pytest.raises(ValueError, match="d_model = 12"):
        C.ov_gain(svd, torch.zeros(5, 2, dtype=torch.float64))
