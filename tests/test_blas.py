"""The row-major BLAS shim, checked directly against NumPy.

Every product in cbp goes through ``cbp._blas``; the row-major to column-major
translation (operand swap, flipped transpose flags, leading dimensions) lives
there only, so it is tested here over dtype, transposes, degenerate shapes and
scalars before anything built on it.

Errors are bounded the way rounding errors of a dot product of length ``k`` are:
``|computed - exact| <= c * k * eps * (|alpha| |op(A)| @ |op(B)| + |beta| |C|)``,
with the exact value taken in float64 from the same (rounded) inputs.
"""

import itertools

import numpy as np
import pytest

from cbp import _blas

DTYPES = [np.float32, np.float64]

# (m, n, k): C is (m, n), op(A) is (m, k), op(B) is (k, n). Single rows, single
# columns and k = 1 are where a swapped operand or a wrong leading dimension
# shows; the larger shapes take the blocked code paths of the BLAS.
GEMM_SHAPES = [
    (1, 1, 1),
    (1, 5, 3),
    (4, 1, 3),
    (4, 5, 1),
    (1, 1, 6),
    (1, 6, 1),
    (6, 1, 1),
    (3, 4, 5),
    (7, 2, 9),
    (33, 17, 65),
]

TRANSPOSES = list(itertools.product([False, True], repeat=2))

SCALARS = [(1.0, 0.0), (0.5, 0.0), (1.0, 1.0), (-1.5, 0.25), (2.0, -1.0), (0.0, 0.5)]


def _bound_factor(dtype, k):
    """Allowed error per unit of magnitude for length-``k`` sums in ``dtype``."""
    return 4.0 * (k + 2) * np.finfo(dtype).eps


def _op(M, trans):
    return M.T if trans else M


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a, trans_b", TRANSPOSES)
@pytest.mark.parametrize("m, n, k", GEMM_SHAPES)
@pytest.mark.parametrize("alpha, beta", SCALARS)
def test_gemm_matches_numpy(dtype, trans_a, trans_b, m, n, k, alpha, beta):
    """C := alpha op(A) op(B) + beta C, for every transpose pair and shape."""
    rng = np.random.default_rng([m, n, k, int(trans_a), int(trans_b)])
    A = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    B = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    C = rng.standard_normal((m, n)).astype(dtype)
    A_before, B_before = A.copy(), B.copy()
    C_before = C.astype(np.float64)

    _blas._gemm_check(trans_a, trans_b, alpha, A, B, beta, C)

    opA = _op(A_before, trans_a).astype(np.float64)
    opB = _op(B_before, trans_b).astype(np.float64)
    # The scalars are rounded to dtype before use, as the shim does.
    a64, b64 = float(dtype(alpha)), float(dtype(beta))
    expected = a64 * opA @ opB + b64 * C_before
    scale = abs(a64) * np.abs(opA) @ np.abs(opB) + abs(b64) * np.abs(C_before)
    error = np.abs(C.astype(np.float64) - expected)
    assert C.dtype == dtype
    assert np.all(error <= _bound_factor(dtype, k) * scale + np.finfo(dtype).tiny)
    # The inputs are only read.
    np.testing.assert_array_equal(A, A_before)
    np.testing.assert_array_equal(B, B_before)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a, trans_b", TRANSPOSES)
def test_gemm_beta_zero_ignores_garbage_in_c(dtype, trans_a, trans_b):
    """With beta = 0, C is overwritten: NaN already in C must not leak through.

    The kernels hand uninitialised or stale buffers to gemm with beta = 0.
    """
    m, n, k = 5, 3, 4
    rng = np.random.default_rng(7)
    A = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    B = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    C = np.full((m, n), np.nan, dtype=dtype)

    _blas._gemm_check(trans_a, trans_b, 1.0, A, B, 0.0, C)

    expected = _op(A, trans_a).astype(np.float64) @ _op(B, trans_b).astype(np.float64)
    assert np.isfinite(C).all()
    np.testing.assert_allclose(C, expected, rtol=_bound_factor(dtype, k) * 10)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_transposed_fortran_view_is_the_other_order(dtype):
    """A Fortran-ordered M seen through ``M.T`` is C-ordered: trans flips it back.

    This is the memory-order half of the row-major translation: the same bytes
    read as M (Fortran) or as M.T (C order) must give the same product.
    """
    rng = np.random.default_rng(3)
    M = np.asfortranarray(rng.standard_normal((6, 4)).astype(dtype))
    N = np.asfortranarray(rng.standard_normal((4, 5)).astype(dtype))
    C = np.zeros((6, 5), dtype=dtype)
    assert M.T.flags.c_contiguous and N.T.flags.c_contiguous

    # M.T (4, 6) transposed is M; N.T (5, 4) transposed is N.
    _blas._gemm_check(True, True, 1.0, M.T, N.T, 0.0, C)

    expected = M.astype(np.float64) @ N.astype(np.float64)
    np.testing.assert_allclose(C, expected, rtol=_bound_factor(dtype, 4) * 10)


def test_gemm_rejects_shapes_that_do_not_agree():
    """The test entry point checks shapes, so a wrong case cannot read past arrays."""
    A = np.ones((3, 4))
    B = np.ones((5, 2))
    C = np.zeros((3, 2))
    with pytest.raises(ValueError, match="shapes"):
        _blas._gemm_check(False, False, 1.0, A, B, 0.0, C)


def test_gemm_rejects_mixed_dtypes():
    """The fused type resolves to one precision; mixing them is an error."""
    A = np.ones((2, 2), dtype=np.float32)
    B = np.ones((2, 2), dtype=np.float64)
    C = np.zeros((2, 2), dtype=np.float64)
    with pytest.raises((TypeError, ValueError)):
        _blas._gemm_check(False, False, 1.0, A, B, 0.0, C)


# (m, n): A is (m, n). Single row, single column and a square-ish case.
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", [1, 2, 7, 1000])
@pytest.mark.parametrize("alpha", [1.0, -2.5, 0.0, 1e-3])
def test_axpy_matches_numpy(dtype, size, alpha):
    """y := alpha x + y, elementwise: one rounding per entry at most."""
    rng = np.random.default_rng(size)
    x = rng.standard_normal(size).astype(dtype)
    y = rng.standard_normal(size).astype(dtype)
    x_before, y_before = x.copy(), y.copy()

    _blas._axpy_check(alpha, x, y)

    a = float(dtype(alpha))
    expected = a * x_before.astype(np.float64) + y_before
    scale = abs(a) * np.abs(x_before) + np.abs(y_before)
    assert y.dtype == dtype
    assert np.all(np.abs(y - expected) <= 4 * np.finfo(dtype).eps * scale)
    np.testing.assert_array_equal(x, x_before)


@pytest.mark.parametrize("dtype", DTYPES)
def test_axpy_zero_alpha_leaves_y_unchanged(dtype):
    """alpha = 0 adds nothing (the l2 = 0 case of the backward pass)."""
    x = np.full(5, 3.0, dtype=dtype)
    y = np.arange(5, dtype=dtype)
    _blas._axpy_check(0.0, x, y)
    np.testing.assert_array_equal(y, np.arange(5, dtype=dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", [1, 2, 7, 1000])
def test_dot_matches_numpy(dtype, size):
    """x . y within the rounding bound of a length-``size`` sum."""
    rng = np.random.default_rng(size + 100)
    x = rng.standard_normal(size).astype(dtype)
    y = rng.standard_normal(size).astype(dtype)

    got = _blas._dot_check(x, y)

    exact = float(x.astype(np.float64) @ y.astype(np.float64))
    scale = float(np.abs(x).astype(np.float64) @ np.abs(y))
    assert abs(got - exact) <= _bound_factor(dtype, size) * scale


@pytest.mark.parametrize("dtype", DTYPES)
def test_dot_of_integers_is_exact(dtype):
    """Small integers are exact in both precisions: any wrong element shows."""
    x = np.arange(1, 9, dtype=dtype)
    y = np.arange(8, 0, -1, dtype=dtype)
    assert _blas._dot_check(x, y) == float(np.arange(1, 9) @ np.arange(8, 0, -1))


def test_axpy_and_dot_reject_different_lengths():
    with pytest.raises(ValueError, match="shapes"):
        _blas._axpy_check(1.0, np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="shapes"):
        _blas._dot_check(np.ones(3), np.ones(4))
