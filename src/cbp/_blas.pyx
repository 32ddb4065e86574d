"""Row-major BLAS wrappers over ``scipy.linalg.cython_blas``.

Every matrix product in cbp goes through this module. Arrays are C-ordered: a
row-major matrix is the column-major transpose of itself, so each wrapper swaps
operands (and their transpose flags) once here and nowhere else. The functions
are typed once with the fused ``floating`` type and pick sgemm or dgemm at compile
time. No BLAS library is linked: scipy's is used at run time.
"""

cimport scipy.linalg.cython_blas as blas

import numpy as np


cdef void gemm(bint trans_a, bint trans_b, int m, int n, int k, floating alpha,
               const floating* A, int lda, const floating* B, int ldb,
               floating beta, floating* C, int ldc) noexcept nogil:
    """C := alpha * op(A) @ op(B) + beta * C, with C of shape (m, n), row-major."""
    # Row-major C is column-major C^T = op(B)^T op(A)^T: swap the operands.
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    if floating is float:
        blas.sgemm(&tb, &ta, &n, &m, &k, &alpha, <float*> B, &ldb, <float*> A, &lda,
                   &beta, C, &ldc)
    else:
        blas.dgemm(&tb, &ta, &n, &m, &k, &alpha, <double*> B, &ldb, <double*> A, &lda,
                   &beta, C, &ldc)


cdef void axpy(int n, floating alpha, const floating* x, floating* y) noexcept nogil:
    """y := alpha * x + y."""
    cdef int one = 1
    if floating is float:
        blas.saxpy(&n, &alpha, <float*> x, &one, y, &one)
    else:
        blas.daxpy(&n, &alpha, <double*> x, &one, y, &one)


cdef floating dot(int n, const floating* x, const floating* y) noexcept nogil:
    """Return x . y."""
    cdef int one = 1
    if floating is float:
        return blas.sdot(&n, <float*> x, &one, <float*> y, &one)
    else:
        return blas.ddot(&n, <double*> x, &one, <double*> y, &one)


# Thin entry points so the tests can check each wrapper against NumPy directly.

def _gemm_check(bint trans_a, bint trans_b, double alpha, floating[:, ::1] A,
                floating[:, ::1] B, double beta, floating[:, ::1] C):
    """Compute ``C = alpha * op(A) @ op(B) + beta * C`` in place (test helper)."""
    cdef int m = C.shape[0]
    cdef int n = C.shape[1]
    cdef int k = A.shape[0] if trans_a else A.shape[1]
    cdef int kb = B.shape[1] if trans_b else B.shape[0]
    cdef int nb = B.shape[0] if trans_b else B.shape[1]
    cdef int ma = A.shape[1] if trans_a else A.shape[0]
    if k != kb or n != nb or m != ma:
        raise ValueError("operand shapes do not agree")
    # A zero-sized leading dimension is illegal in BLAS even when unused.
    gemm(trans_a, trans_b, m, n, k, <floating> alpha, &A[0, 0], max(A.shape[1], 1),
         &B[0, 0], max(B.shape[1], 1), <floating> beta, &C[0, 0], max(n, 1))


def _axpy_check(double alpha, floating[::1] x, floating[::1] y):
    """Compute ``y = alpha * x + y`` in place (test helper)."""
    if x.shape[0] != y.shape[0]:
        raise ValueError("operand shapes do not agree")
    axpy(x.shape[0], <floating> alpha, &x[0], &y[0])


def _dot_check(floating[::1] x, floating[::1] y):
    """Return ``x @ y`` (test helper)."""
    if x.shape[0] != y.shape[0]:
        raise ValueError("operand shapes do not agree")
    return dot(x.shape[0], &x[0], &y[0])
