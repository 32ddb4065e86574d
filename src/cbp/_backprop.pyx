"""Forward pass, losses and backward pass of a multilayer perceptron, in C.

Activations are stored row-major, one sample per row: for a batch of ``n``
samples, layer ``l`` holds ``Z[l]`` and ``A[l]`` of shape ``(n, n_out)``. With
``W`` of shape ``(n_out, n_in)`` the per-sample rule ``z = W a_prev + b`` reads
``Z = A_prev @ W.T + b`` for the batch, and the backward rules become

* ``grad_W = delta.T @ A_prev`` (the sum over the batch of ``delta a_prev^T``),
* ``grad_b = delta.T @ ones`` (the column sums of ``delta``),
* ``delta_prev = (delta @ W) * act'(Z_prev)``.

The parameters live in one flat buffer: for each layer ``W`` (row-major) and then
``b``. The loss's ``1 / sum(weights)`` factor is folded into the output delta, so
every gradient below it is already averaged over the batch.
"""

from cpython.mem cimport PyMem_Calloc, PyMem_Free
from libc.string cimport memcpy
from libc.math cimport erf, exp, expm1, fabs, isfinite, log, log1p, sqrt, tanh

from cbp._blas cimport axpy, dot, gemm
from cbp._optim_step cimport optimizer_step
from cbp._vector_loops cimport (bias_identity_double, bias_identity_float,
                                bias_relu_double, bias_relu_float,
                                column_sums_double, column_sums_float,
                                relu_derivative_double, relu_derivative_float)

import numpy as np

# Names shared with the Python layer; the order matches the enums in the .pxd.
ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu",
               "softplus", "gelu", "softmax")
LOSSES = ("mse", "cross_entropy", "binary_cross_entropy")

cdef double LEAKY_SLOPE = 0.01
cdef double INV_SQRT2 = 0.7071067811865476
cdef double INV_SQRT_2PI = 0.3989422804014327


cdef class Layout:
    """Sizes, activations and parameter offsets of a network, in C arrays.

    Parameters
    ----------
    sizes : sequence of int
        Units per layer, input first.
    activations : sequence of int
        Activation code of each weight layer (``len(sizes) - 1`` codes).
    """

    def __cinit__(self, sizes, activations):
        cdef int L = len(sizes) - 1
        cdef int l
        cdef Py_ssize_t offset = 0
        if L < 1 or len(activations) != L:
            raise ValueError("need at least two sizes and one activation per layer")
        self.spec.n_layers = L
        self.spec.sizes = <Py_ssize_t*> PyMem_Calloc(L + 1, sizeof(Py_ssize_t))
        self.spec.w_offset = <Py_ssize_t*> PyMem_Calloc(L, sizeof(Py_ssize_t))
        self.spec.b_offset = <Py_ssize_t*> PyMem_Calloc(L, sizeof(Py_ssize_t))
        self.spec.activation = <int*> PyMem_Calloc(L, sizeof(int))
        if (self.spec.sizes == NULL or self.spec.w_offset == NULL
                or self.spec.b_offset == NULL or self.spec.activation == NULL):
            raise MemoryError()
        self.max_width = 0
        for l in range(L + 1):
            self.spec.sizes[l] = sizes[l]
            if self.spec.sizes[l] > self.max_width:
                self.max_width = self.spec.sizes[l]
        for l in range(L):
            self.spec.activation[l] = activations[l]
            self.spec.w_offset[l] = offset
            offset += self.spec.sizes[l] * self.spec.sizes[l + 1]
            self.spec.b_offset[l] = offset
            offset += self.spec.sizes[l + 1]
        self.n_params = offset

    def __dealloc__(self):
        PyMem_Free(self.spec.sizes)
        PyMem_Free(self.spec.w_offset)
        PyMem_Free(self.spec.b_offset)
        PyMem_Free(self.spec.activation)

    def offsets(self):
        """Return ``[(w_start, b_start, n_out, n_in), ...]``, one tuple per layer."""
        return [(self.spec.w_offset[l], self.spec.b_offset[l],
                 self.spec.sizes[l + 1], self.spec.sizes[l])
                for l in range(self.spec.n_layers)]


cdef class Workspace:
    """Per-layer buffers for ``Z``, ``A`` and ``delta`` of up to ``max_batch`` rows.

    Allocated once (per fit, or per call of a one-shot entry point) and reused for
    every batch, so the loops below never allocate.
    """

    def __cinit__(self, Layout layout, dtype, Py_ssize_t max_batch):
        cdef int L = layout.spec.n_layers
        cdef int l
        cdef Py_ssize_t rows = max(max_batch, 1)
        self.layout = layout
        self.max_batch = rows
        self.itemsize = np.dtype(dtype).itemsize
        self.Z = <void**> PyMem_Calloc(L, sizeof(void*))
        self.A = <void**> PyMem_Calloc(L, sizeof(void*))
        self.delta = <void**> PyMem_Calloc(L, sizeof(void*))
        if self.Z == NULL or self.A == NULL or self.delta == NULL:
            raise MemoryError()
        for l in range(L):
            width = layout.spec.sizes[l + 1]
            self.Z[l] = PyMem_Calloc(rows * width, self.itemsize)
            self.A[l] = PyMem_Calloc(rows * width, self.itemsize)
            self.delta[l] = PyMem_Calloc(rows * width, self.itemsize)
            if self.Z[l] == NULL or self.A[l] == NULL or self.delta[l] == NULL:
                raise MemoryError(
                    f"cannot allocate buffers for a batch of {rows} samples")

    def __dealloc__(self):
        cdef int l
        if self.layout is not None:
            for l in range(self.layout.spec.n_layers):
                if self.Z != NULL:
                    PyMem_Free(self.Z[l])
                if self.A != NULL:
                    PyMem_Free(self.A[l])
                if self.delta != NULL:
                    PyMem_Free(self.delta[l])
        PyMem_Free(self.Z)
        PyMem_Free(self.A)
        PyMem_Free(self.delta)


cdef inline floating sigmoid(floating z) noexcept nogil:
    # Two branches so that exp never overflows.
    cdef floating e
    if z >= 0:
        return 1 / (1 + exp(-z))
    e = exp(z)
    return e / (1 + e)


cdef void bias_activation(int act, int n, int k, const floating* b, floating* Z,
                          floating* A) noexcept nogil:
    """Z += b row by row, then A = act(Z): one pass over the gemm output."""
    cdef Py_ssize_t i, j
    cdef floating z, m, s
    cdef floating* zr
    cdef floating* ar
    # The piecewise-linear activations have vectorised loops.
    if act == ACT_RELU or act == ACT_LEAKY_RELU:
        s = 0 if act == ACT_RELU else <floating> LEAKY_SLOPE
        if floating is float:
            bias_relu_float(n, k, b, Z, A, s)
        else:
            bias_relu_double(n, k, b, Z, A, s)
        return
    if act == ACT_IDENTITY:
        if floating is float:
            bias_identity_float(n, k, b, Z, A)
        else:
            bias_identity_double(n, k, b, Z, A)
        return
    for i in range(n):
        zr = Z + i * k
        ar = A + i * k
        if act == ACT_SIGMOID:
            for j in range(k):
                z = zr[j] + b[j]
                zr[j] = z
                ar[j] = sigmoid(z)
        elif act == ACT_TANH:
            for j in range(k):
                z = zr[j] + b[j]
                zr[j] = z
                ar[j] = tanh(z)
        elif act == ACT_ELU:
            for j in range(k):
                z = zr[j] + b[j]
                zr[j] = z
                ar[j] = z if z > 0 else expm1(z)
        elif act == ACT_SOFTPLUS:
            for j in range(k):
                z = zr[j] + b[j]
                zr[j] = z
                ar[j] = (z if z > 0 else 0) + log1p(exp(-fabs(z)))
        elif act == ACT_GELU:
            for j in range(k):
                z = zr[j] + b[j]
                zr[j] = z
                ar[j] = 0.5 * z * (1 + erf(z * INV_SQRT2))
        elif act == ACT_SOFTMAX:
            # Shift by the row maximum so that exp never overflows.
            m = zr[0] + b[0]
            for j in range(k):
                z = zr[j] + b[j]
                zr[j] = z
                if z > m:
                    m = z
            s = 0
            for j in range(k):
                ar[j] = exp(zr[j] - m)
                s += ar[j]
            for j in range(k):
                ar[j] /= s


cdef void multiply_derivative(int act, Py_ssize_t size, const floating* Z,
                              const floating* A, floating* D) noexcept nogil:
    """D *= act'(Z), elementwise, for a hidden layer (A = act(Z) is reused)."""
    cdef Py_ssize_t i
    cdef floating z
    # relu and leaky relu select rather than branch (in _vector_loops.h): a
    # branch on the sign of random pre-activations mispredicts often.
    if act == ACT_RELU or act == ACT_LEAKY_RELU:
        if floating is float:
            relu_derivative_float(size, Z, D,
                                  0 if act == ACT_RELU else <float> LEAKY_SLOPE)
        else:
            relu_derivative_double(size, Z, D,
                                   0 if act == ACT_RELU else LEAKY_SLOPE)
    elif act == ACT_IDENTITY:
        pass
    elif act == ACT_SIGMOID:
        for i in range(size):
            D[i] *= A[i] * (1 - A[i])
    elif act == ACT_TANH:
        for i in range(size):
            D[i] *= 1 - A[i] * A[i]
    elif act == ACT_ELU:
        for i in range(size):
            if Z[i] <= 0:
                D[i] *= A[i] + 1
    elif act == ACT_SOFTPLUS:
        for i in range(size):
            D[i] *= sigmoid(Z[i])
    elif act == ACT_GELU:
        for i in range(size):
            z = Z[i]
            D[i] *= (0.5 * (1 + erf(z * INV_SQRT2))
                     + z * INV_SQRT_2PI * exp(-0.5 * z * z))


cdef void forward_pass(const NetSpec* spec, const floating* params, const floating* X,
                       bint x_by_column, int n, floating** Z,
                       floating** A) noexcept nogil:
    """Fill ``Z`` and ``A`` for a batch of ``n`` samples.

    ``X`` holds one sample per row, shape ``(n, n_in)``, or with ``x_by_column``
    one per column, shape ``(n_in, n)``.
    """
    cdef int l
    cdef int n_in, n_out
    cdef const floating* a_prev = X
    for l in range(spec.n_layers):
        n_in = spec.sizes[l]
        n_out = spec.sizes[l + 1]

        # Z = A_prev @ W.T
        if l == 0 and x_by_column:
            gemm(True, True, n, n_out, n_in, <floating> 1, X, n,
                 params + spec.w_offset[l], n_in, <floating> 0, Z[l], n_out)
        else:
            gemm(False, True, n, n_out, n_in, <floating> 1, a_prev, n_in,
                 params + spec.w_offset[l], n_in, <floating> 0, Z[l], n_out)

        # Z += b; A = act(Z)
        bias_activation(spec.activation[l], n, n_out, params + spec.b_offset[l],
                        Z[l], A[l])
        a_prev = A[l]


cdef double loss_and_delta(int loss, int activation, int n, int k, const floating* Z,
                           const floating* A, const floating* Y, const floating* weight,
                           double weight_sum, floating* delta) noexcept nogil:
    """Return sum_i w_i loss_i and set delta = (w_i / weight_sum) d loss_i / d z.

    ``weight`` may be NULL (every w_i = 1). The gradients of the softmax with
    cross-entropy and of the sigmoid with binary cross-entropy are fused into
    ``a - y`` (scaled by ``sum(y)`` for unnormalised targets), and both losses are
    computed from the logits, so saturated outputs stay exact and finite.
    """
    cdef Py_ssize_t i, j
    cdef double total = 0, sample, w, scale, m, s, sy, syz, g
    cdef const floating* z
    cdef const floating* a
    cdef const floating* y
    cdef floating* d
    for i in range(n):
        z = Z + i * k
        a = A + i * k
        y = Y + i * k
        d = delta + i * k
        w = 1 if weight == NULL else weight[i]
        scale = w / weight_sum
        sample = 0
        if loss == LOSS_MSE:
            for j in range(k):
                g = a[j] - y[j]
                sample += 0.5 * g * g
            if activation == ACT_IDENTITY:
                for j in range(k):
                    d[j] = scale * (a[j] - y[j])
            elif activation == ACT_SIGMOID:
                for j in range(k):
                    d[j] = scale * (a[j] - y[j]) * a[j] * (1 - a[j])
            else:
                # Softmax Jacobian-vector product: a * (g - a . g).
                s = 0
                for j in range(k):
                    s += a[j] * (a[j] - y[j])
                for j in range(k):
                    d[j] = scale * a[j] * ((a[j] - y[j]) - s)
        elif loss == LOSS_CROSS_ENTROPY:
            # -sum_j y_j (z_j - logsumexp(z)), with the log-sum-exp shifted by max z.
            m = z[0]
            for j in range(k):
                if z[j] > m:
                    m = z[j]
            s = 0
            sy = 0
            syz = 0
            for j in range(k):
                s += exp(z[j] - m)
                sy += y[j]
                syz += y[j] * z[j]
            sample = sy * (m + log(s)) - syz
            for j in range(k):
                d[j] = scale * (a[j] * sy - y[j])
        else:
            # Logistic loss from the logit: max(z, 0) - z y + log(1 + exp(-|z|)).
            for j in range(k):
                sample += ((z[j] if z[j] > 0 else 0) - z[j] * y[j]
                           + log1p(exp(-fabs(z[j]))))
                d[j] = scale * (a[j] - y[j])
        total += w * sample
    return total


cdef void backward_pass(const NetSpec* spec, floating* params, const floating* X,
                        bint x_by_column, int n, floating** Z, floating** A, floating** delta,
                        double l2, floating* grad,
                        const OptimConfig* update, long long step, floating* s1,
                        floating* s2, floating* s3) noexcept nogil:
    """Fill ``grad`` from ``delta[L - 1]``, which ``loss_and_delta`` has set.

    With an ``update`` rule (not NULL), each layer's parameters are updated as
    soon as its gradient is complete and its weights have served the previous
    layer's delta: the gradient is then still in cache, and the result is the
    same as one update of the whole buffer afterwards, since every rule works
    element by element. ``s1``, ``s2``, ``s3`` are the rule's state buffers.
    """
    cdef int l
    cdef int n_in, n_out
    cdef Py_ssize_t start
    cdef const floating* a_prev
    cdef const floating* W
    for l in range(spec.n_layers - 1, -1, -1):
        n_in = spec.sizes[l]
        n_out = spec.sizes[l + 1]
        a_prev = X if l == 0 else A[l - 1]
        W = params + spec.w_offset[l]

        # grad_W = delta.T @ A_prev
        if l == 0 and x_by_column:
            gemm(True, True, n_out, n_in, n, <floating> 1, delta[l], n_out, X, n,
                 <floating> 0, grad + spec.w_offset[l], n_in)
        else:
            gemm(True, False, n_out, n_in, n, <floating> 1, delta[l], n_out, a_prev,
                 n_in, <floating> 0, grad + spec.w_offset[l], n_in)

        # grad_b = delta.T @ ones, as column sums: a vectorised pass over delta
        # while it is in cache costs less than a BLAS call on small layers.
        if floating is float:
            column_sums_float(n, n_out, delta[l], grad + spec.b_offset[l])
        else:
            column_sums_double(n, n_out, delta[l], grad + spec.b_offset[l])

        # grad_W += l2 * W
        if l2 != 0:
            axpy(n_out * n_in, <floating> l2, W, grad + spec.w_offset[l])

        # delta_prev = (delta @ W) * act'(Z_prev); the input layer needs none.
        if l > 0:
            gemm(False, False, n, n_in, n_out, <floating> 1, delta[l], n_out, W, n_in,
                 <floating> 0, delta[l - 1], n_in)
            multiply_derivative(spec.activation[l - 1], <Py_ssize_t> n * n_in,
                                Z[l - 1], A[l - 1], delta[l - 1])

        # Update this layer's W and b, which lie side by side in the buffer.
        if update != NULL:
            start = spec.w_offset[l]
            optimizer_step(update, step, <Py_ssize_t> n_out * (n_in + 1),
                           params + start, grad + start, s1 + start, s2 + start,
                           s3 + start)


cdef double count_correct(int loss, int n, int k, const floating* A, const floating* Y,
                          const floating* weight) noexcept nogil:
    """Return the weighted number of rows classified right (0 for regression).

    With cross-entropy a row is right when the largest output and the largest
    target share their index; with binary cross-entropy when every output is on
    the same side of 1/2 as its target.
    """
    cdef Py_ssize_t i, j, best_a, best_y
    cdef double total = 0
    cdef bint right
    cdef const floating* a
    cdef const floating* y
    if loss == LOSS_MSE:
        return 0
    for i in range(n):
        a = A + i * k
        y = Y + i * k
        if loss == LOSS_CROSS_ENTROPY:
            best_a = 0
            best_y = 0
            for j in range(1, k):
                if a[j] > a[best_a]:
                    best_a = j
                if y[j] > y[best_y]:
                    best_y = j
            right = best_a == best_y
        else:
            right = True
            for j in range(k):
                if (a[j] > 0.5) != (y[j] > 0.5):
                    right = False
                    break
        if right:
            total += 1 if weight == NULL else weight[i]
    return total


cdef double squared_weights(const NetSpec* spec, const floating* params) noexcept nogil:
    """Return sum over layers of ||W||^2 (biases excluded)."""
    cdef int l
    cdef double total = 0
    cdef int size
    for l in range(spec.n_layers):
        size = spec.sizes[l] * spec.sizes[l + 1]
        total += dot(size, params + spec.w_offset[l], params + spec.w_offset[l])
    return total


cdef int check_buffer(Layout layout, Py_ssize_t size, str name) except -1:
    # The kernels index parameter-sized buffers by the layout's offsets.
    if size != layout.n_params:
        raise ValueError(
            f"{name} has {size} entries; the network has {layout.n_params} parameters")
    return 0


cdef Workspace workspace_for(Layout layout, Workspace ws, dtype, Py_ssize_t rows):
    """Return ``ws`` when it fits ``rows`` rows of this network, else a new one."""
    if ws is None or ws.max_batch < rows or ws.layout is not layout:
        return Workspace(layout, dtype, rows)
    if ws.itemsize != np.dtype(dtype).itemsize:
        raise ValueError("the workspace's dtype does not match params")
    return ws


def forward(Layout layout, floating[::1] params, const floating[:, ::1] X,
            floating[:, ::1] out, Py_ssize_t chunk):
    """Write the network's outputs for the rows of ``X`` into ``out``.

    Rows are processed ``chunk`` at a time so memory stays bounded. Inputs are
    trusted: the Python layer has validated shapes and dtype.
    """
    cdef NetSpec* spec = &layout.spec
    cdef int L = spec.n_layers
    cdef Py_ssize_t n = X.shape[0]
    cdef Py_ssize_t k = out.shape[1]
    cdef Py_ssize_t start, rows
    check_buffer(layout, params.shape[0], "params")
    if X.shape[1] != spec.sizes[0] or out.shape[0] != n or k != spec.sizes[L]:
        raise ValueError("X or out does not match the network")
    cdef Workspace ws = Workspace(layout, np.asarray(params).dtype, min(chunk, n))
    cdef floating** Z = <floating**> ws.Z
    cdef floating** A = <floating**> ws.A
    with nogil:
        start = 0
        while start < n:
            rows = min(chunk, n - start)
            forward_pass(spec, &params[0], &X[start, 0], False, <int> rows, Z, A)
            memcpy(&out[start, 0], A[L - 1], rows * k * sizeof(floating))
            start += rows


def evaluate(Layout layout, floating[::1] params, const floating[:, ::1] X,
             const floating[:, ::1] Y, const floating[::1] weight, int loss,
             floating[:, ::1] out, Py_ssize_t chunk, Workspace ws=None):
    """Return ``sum_i w_i loss_i`` over the rows of ``X`` and fill ``out``.

    ``weight`` of length 0 means every weight is one. A ``ws`` of at least
    ``chunk`` rows may be passed to reuse its buffers across calls.
    """
    cdef NetSpec* spec = &layout.spec
    cdef int L = spec.n_layers
    cdef Py_ssize_t n = X.shape[0]
    cdef Py_ssize_t k = out.shape[1]
    cdef Py_ssize_t start, rows
    cdef double total = 0
    check_buffer(layout, params.shape[0], "params")
    chunk = max(1, min(chunk, n))
    ws = workspace_for(layout, ws, np.asarray(params).dtype, chunk)
    cdef floating** Z = <floating**> ws.Z
    cdef floating** A = <floating**> ws.A
    cdef floating** D = <floating**> ws.delta
    cdef bint weighted = weight.shape[0] > 0
    with nogil:
        start = 0
        while start < n:
            rows = min(chunk, n - start)
            forward_pass(spec, &params[0], &X[start, 0], False, <int> rows, Z, A)
            total += loss_and_delta(loss, spec.activation[L - 1], <int> rows, <int> k,
                                    Z[L - 1], A[L - 1], &Y[start, 0],
                                    &weight[start] if weighted else NULL, 1.0,
                                    D[L - 1])
            memcpy(&out[start, 0], A[L - 1], rows * k * sizeof(floating))
            start += rows
    return total


def loss_and_gradient(Layout layout, floating[::1] params,
                      const floating[:, ::1] X, const floating[:, ::1] Y,
                      const floating[::1] weight, int loss, double l2,
                      floating[::1] grad, Workspace ws=None):
    """Return the mean loss over the batch (plus ``l2 / 2 * sum ||W||^2``).

    Fills ``grad`` (laid out like ``params``) with its gradient, in one forward
    and one backward pass over the whole batch. A ``ws`` of at least
    ``len(X)`` rows may be passed to reuse its buffers across calls.
    """
    cdef NetSpec* spec = &layout.spec
    cdef int L = spec.n_layers
    cdef int n = X.shape[0]
    cdef Py_ssize_t i
    cdef double total, weight_sum = 0
    check_buffer(layout, params.shape[0], "params")
    check_buffer(layout, grad.shape[0], "grad")
    ws = workspace_for(layout, ws, np.asarray(params).dtype, n)
    cdef floating** Z = <floating**> ws.Z
    cdef floating** A = <floating**> ws.A
    cdef floating** D = <floating**> ws.delta
    cdef const floating* w = NULL
    if weight.shape[0] > 0:
        w = &weight[0]
        for i in range(n):
            weight_sum += weight[i]
    else:
        weight_sum = n
    with nogil:
        forward_pass(spec, &params[0], &X[0, 0], False, n, Z, A)
        total = loss_and_delta(loss, spec.activation[L - 1], n,
                               <int> spec.sizes[L], Z[L - 1], A[L - 1], &Y[0, 0], w,
                               weight_sum, D[L - 1])
        backward_pass(spec, &params[0], &X[0, 0], False, n, Z, A, D,
                      l2, &grad[0], NULL, 0, NULL, NULL, NULL)
        total /= weight_sum
        if l2 != 0:
            total += 0.5 * l2 * squared_weights(spec, &params[0])
    return total


def workspace_correct(Workspace ws, int loss, const floating[:, ::1] Y,
                      const floating[::1] weight):
    """Return the weighted count of right rows among the workspace's last outputs.

    The outputs are those of the last forward pass of ``len(Y)`` rows through
    ``ws`` (for example by :func:`loss_and_gradient`).
    """
    cdef int L = ws.layout.spec.n_layers
    cdef int n = Y.shape[0]
    cdef int k = Y.shape[1]
    if (n > ws.max_batch or ws.itemsize != sizeof(floating)
            or k != ws.layout.spec.sizes[L]):
        raise ValueError("Y does not match the workspace")
    return count_correct(loss, n, k, <floating*> ws.A[L - 1], &Y[0, 0],
                         &weight[0] if weight.shape[0] > 0 else NULL)
