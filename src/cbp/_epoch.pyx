"""A whole training epoch in C: shuffle, gather, forward, backward, update.

The GIL is released for the entire epoch and taken back only every
``check_every`` batches to let Python notice Ctrl-C. Every buffer (batch rows,
activations, gradients, optimizer state) is allocated by the caller once per
fit; nothing here allocates.
"""

from cpython.exc cimport PyErr_Clear
from libc.math cimport isfinite
from libc.stdint cimport uint64_t

from cbp._backprop cimport (Layout, NetSpec, Workspace, backward_pass, check_buffer,
                            count_correct, forward_pass, loss_and_delta,
                            squared_weights)
from cbp._blas cimport floating
from cbp._optim_step cimport OptimConfig
from cbp._vector_loops cimport copy_finite_double, copy_finite_float

cdef extern from *:
    """
    /* Shuffled rows are read in random order: ask for them a few rows ahead.
       Only GCC and Clang have the builtin; elsewhere it is a no-op. */
    #if defined(__GNUC__) || defined(__clang__)
    #define CBP_PREFETCH(address) __builtin_prefetch(address)
    #else
    #define CBP_PREFETCH(address) ((void) 0)
    #endif
    """
    void prefetch "CBP_PREFETCH" (const void* address) noexcept nogil

cdef extern from *:
    """
    /* High and low words of the 128-bit product a * b. The portable version is
       compiled everywhere (and tested against the native one); compilers with a
       128-bit integer use that instead. */
    static inline uint64_t cbp_mul_high_portable(uint64_t a, uint64_t b,
                                                 uint64_t* low) {
        uint64_t a_lo = a & 0xFFFFFFFFu, a_hi = a >> 32;
        uint64_t b_lo = b & 0xFFFFFFFFu, b_hi = b >> 32;
        uint64_t lo_lo = a_lo * b_lo, hi_lo = a_hi * b_lo;
        uint64_t lo_hi = a_lo * b_hi, hi_hi = a_hi * b_hi;
        uint64_t cross = (lo_lo >> 32) + (hi_lo & 0xFFFFFFFFu) + lo_hi;
        *low = (cross << 32) | (lo_lo & 0xFFFFFFFFu);
        return hi_hi + (hi_lo >> 32) + (cross >> 32);
    }
    #if defined(__SIZEOF_INT128__)
    static inline uint64_t cbp_mul_high(uint64_t a, uint64_t b, uint64_t* low) {
        unsigned __int128 product = (unsigned __int128) a * b;
        *low = (uint64_t) product;
        return (uint64_t) (product >> 64);
    }
    #else
    #define cbp_mul_high cbp_mul_high_portable
    #endif
    """
    uint64_t mul_high "cbp_mul_high" (uint64_t a, uint64_t b,
                                      uint64_t* low) noexcept nogil
    uint64_t mul_high_portable "cbp_mul_high_portable" (uint64_t a, uint64_t b,
                                                        uint64_t* low) noexcept nogil

cdef enum:
    # Rows ahead of the one being copied whose memory is requested early.
    PREFETCH_AHEAD = 8
    # Rows of at most this many cache lines, in batches of at most this many
    # rows, are requested a whole batch ahead instead.
    SHORT_ROW_LINES = 8
    SHORT_ROW_BATCH = 256
    # Shuffled inputs with fewer features than this are gathered one sample per
    # column (unshuffled batches are read in place, one sample per row).
    NARROW_INPUT = 32

cdef extern from "Python.h":
    # Declared here without Cython's "except -1" so that a pending Ctrl-C comes
    # back as a status code: the trainer then records what the epoch did before
    # it raises KeyboardInterrupt.
    int check_signals "PyErr_CheckSignals" ()

cdef enum:
    STATUS_DONE = 0
    STATUS_INTERRUPTED = 1
    STATUS_DIVERGED = 2

# Shuffled inputs narrower than this are gathered one sample per column (for the
# benchmark's replay of the core's BLAS calls).
NARROW_INPUT_FEATURES = NARROW_INPUT

# Status codes returned by train_epoch, for the Python layer.
DONE = STATUS_DONE
INTERRUPTED = STATUS_INTERRUPTED
DIVERGED = STATUS_DIVERGED


cdef inline uint64_t splitmix64(uint64_t* state) noexcept nogil:
    # SplitMix64: same integers on every platform and compiler.
    cdef uint64_t z
    state[0] += <uint64_t> 0x9E3779B97F4A7C15
    z = state[0]
    z = (z ^ (z >> 30)) * <uint64_t> 0xBF58476D1CE4E5B9
    z = (z ^ (z >> 27)) * <uint64_t> 0x94D049BB133111EB
    return z ^ (z >> 31)


cdef inline uint64_t bounded(uint64_t* state, uint64_t bound) noexcept nogil:
    # Uniform in [0, bound) by Lemire's multiply-shift: the high word of r * bound,
    # rejecting the few r whose low word falls below 2**64 mod bound. The division
    # that finds that threshold runs only when the low word is small, which is rare.
    cdef uint64_t low, threshold
    cdef uint64_t high = mul_high(splitmix64(state), bound, &low)
    if low < bound:
        threshold = (-bound) % bound
        while low < threshold:
            high = mul_high(splitmix64(state), bound, &low)
    return high


cdef void shuffle_order(Py_ssize_t* order, Py_ssize_t n,
                        uint64_t* state) noexcept nogil:
    # Fisher-Yates from the identity, so the order depends on the generator's
    # state alone: a fit resumed from a saved state shuffles as one uninterrupted
    # fit would.
    cdef Py_ssize_t i, j, held
    for i in range(n):
        order[i] = i
    for i in range(n - 1, 0, -1):
        j = <Py_ssize_t> bounded(state, <uint64_t> (i + 1))
        held = order[i]
        order[i] = order[j]
        order[j] = held


def shuffle_indices(Py_ssize_t[::1] order, uint64_t[::1] state):
    """Fill ``order`` with the permutation ``train_epoch`` would use from ``state``.

    ``state`` (one 64-bit word) is advanced exactly as ``train_epoch`` advances it.
    """
    if state.shape[0] != 1:
        raise ValueError("state must hold one 64-bit word")
    if order.shape[0] == 0:
        return
    with nogil:
        shuffle_order(&order[0], order.shape[0], &state[0])


def copy_if_finite(floating[::1] source, floating[::1] target):
    """Copy ``source`` into ``target`` and tell whether every value is finite.

    One pass over ``source`` without the GIL and without a temporary: the trainer
    checks the parameters after each epoch and keeps them as the next epoch's
    restore point in the same read.

    Returns
    -------
    bool
        False when ``source`` holds a NaN or an infinity (``target`` is then a
        full copy all the same).
    """
    cdef Py_ssize_t n = source.shape[0]
    cdef int finite = 1
    if target.shape[0] != n:
        raise ValueError(
            f"target has {target.shape[0]} values, expected {n} like source")
    if n == 0:
        return True
    with nogil:
        if floating is float:
            finite = copy_finite_float(n, &source[0], &target[0])
        else:
            finite = copy_finite_double(n, &source[0], &target[0])
    return finite != 0


def _mul_high_check(uint64_t a, uint64_t b):
    """Return (high, low, portable high, portable low) of a * b (test helper)."""
    cdef uint64_t low, low_portable
    cdef uint64_t high = mul_high(a, b, &low)
    cdef uint64_t high_portable = mul_high_portable(a, b, &low_portable)
    return high, low, high_portable, low_portable


def train_epoch(Layout layout, Workspace ws, floating[::1] params, floating[::1] grad,
                const floating[:, ::1] X, const floating[:, ::1] Y,
                const floating[::1] weight,
                Py_ssize_t[::1] order, uint64_t[::1] rng_state, bint shuffle,
                Py_ssize_t batch_size, int loss, double l2, bint l2_per_sample,
                dict optim_config, floating[::1] s1, floating[::1] s2,
                floating[::1] s3, long long step, Py_ssize_t check_every,
                floating[:, ::1] X_batch, floating[:, ::1] Y_batch,
                floating[::1] w_batch):
    """Run one epoch of minibatch training; return what it did.

    Parameters are updated in place after each batch. ``weight`` of length 0
    means unweighted samples. With ``l2_per_sample`` the penalty of a batch is
    ``l2 / (2 w_batch) sum ||W||^2`` with ``w_batch`` the batch's total sample
    weight (its row count when unweighted; scikit-learn's convention), otherwise
    ``l2 / 2 sum ||W||^2``.

    Returns
    -------
    status : int
        ``DONE``, ``INTERRUPTED`` (Ctrl-C; parameters hold the last completed
        batch's update) or ``DIVERGED`` (a batch loss was not finite; that batch's
        update was not applied).
    loss_sum : float
        Sum over completed batches of (batch loss times batch weight).
    weight_sum : float
        Sum of the weights of the completed batches' samples.
    step : int
        The optimizer's step count after the epoch.
    batches : int
        Number of completed batches.
    correct : float
        Weighted count of samples classified right, each judged by the outputs
        of its batch before that batch's update (0 for regression).
    """
    cdef OptimConfig cfg = optim_config
    cdef NetSpec* spec = &layout.spec
    cdef int L = spec.n_layers
    cdef Py_ssize_t n = X.shape[0]
    cdef Py_ssize_t d = X.shape[1]
    cdef Py_ssize_t k = Y.shape[1]
    cdef bint weighted = weight.shape[0] > 0
    cdef floating** Z = <floating**> ws.Z
    cdef floating** A = <floating**> ws.A
    cdef floating** D = <floating**> ws.delta
    cdef Py_ssize_t start, rows, i, j, src, ahead, batches = 0
    cdef const floating* xb
    cdef const floating* yb
    cdef const floating* wb
    cdef double batch_weight, batch_loss, l2_batch
    cdef double loss_sum = 0, weight_sum = 0, correct = 0
    cdef int status = STATUS_DONE
    # Narrow shuffled inputs are gathered one sample per column: the first layer's
    # products then avoid the transposed-left-operand form (TN in BLAS terms),
    # which OpenBLAS's small-matrix kernels refuse for an inner dimension below
    # 32 and hand to its slower general path.
    cdef bint by_column = shuffle and d < NARROW_INPUT
    cdef floating* x_columns = &X_batch[0, 0]
    # Items per cache line, and whether a row spans few enough lines (and a batch
    # few enough rows) to fetch the whole next batch ahead; longer rows stream
    # well with the hardware prefetcher and a request a few rows ahead.
    cdef Py_ssize_t line_items = max(<Py_ssize_t> (64 // sizeof(floating)), 1)
    cdef bint short_rows = (d <= SHORT_ROW_LINES * line_items
                            and batch_size <= SHORT_ROW_BATCH)

    for buffer, name in ((params, "params"), (grad, "grad"), (s1, "s1"), (s2, "s2"),
                         (s3, "s3")):
        check_buffer(layout, buffer.shape[0], name)
    if X.shape[1] != spec.sizes[0] or Y.shape[1] != spec.sizes[L]:
        raise ValueError("X or Y does not match the network")
    if ws.itemsize != sizeof(floating) or ws.layout is not layout:
        raise ValueError("the workspace does not match the network or its dtype")
    if batch_size < 1 or batch_size > ws.max_batch or batch_size > X_batch.shape[0]:
        raise ValueError("batch_size is larger than the preallocated buffers")
    if rng_state.shape[0] != 1:
        raise ValueError("rng_state must hold one 64-bit word")
    if (n == 0 or Y.shape[0] != n or order.shape[0] != n
            or (weighted and weight.shape[0] != n)):
        raise ValueError("X, Y, weight and order must have the same number of rows")

    with nogil:
        if shuffle:
            shuffle_order(&order[0], n, &rng_state[0])

        start = 0
        while start < n:
            rows = min(batch_size, n - start)

            # Gather the batch (a view of the data when nothing was shuffled).
            if shuffle:
                # Plain loops: rows are often a few values long, where a memcpy
                # call costs more than the copy.
                for i in range(rows):
                    if not short_rows and start + i + PREFETCH_AHEAD < n:
                        ahead = order[start + i + PREFETCH_AHEAD]
                        prefetch(&X[ahead, 0])
                        prefetch(&X[ahead, 0] + d - 1)
                        prefetch(&Y[ahead, 0])
                    src = order[start + i]
                    if by_column:
                        for j in range(d):
                            x_columns[j * rows + i] = X[src, j]
                    else:
                        for j in range(d):
                            X_batch[i, j] = X[src, j]
                    for j in range(k):
                        Y_batch[i, j] = Y[src, j]
                    if weighted:
                        w_batch[i] = weight[src]

                # Short rows: request every line of the next batch's rows now, so
                # they arrive while this batch is computed.
                if short_rows:
                    for i in range(start + rows, min(start + rows + batch_size, n)):
                        src = order[i]
                        j = 0
                        while j < d:
                            prefetch(&X[src, j])
                            j += line_items
                        prefetch(&X[src, d - 1])
                        prefetch(&Y[src, 0])
                        prefetch(&Y[src, k - 1])
                xb = &X_batch[0, 0]
                yb = &Y_batch[0, 0]
                wb = &w_batch[0] if weighted else NULL
            else:
                xb = &X[start, 0]
                yb = &Y[start, 0]
                wb = &weight[start] if weighted else NULL
            if wb != NULL:
                batch_weight = 0
                for i in range(rows):
                    batch_weight += wb[i]
            else:
                batch_weight = rows
            # A batch of zero total weight carries no information: skip it
            # rather than divide 0 by 0.
            if batch_weight > 0:
                l2_batch = l2 / batch_weight if l2_per_sample else l2

                # Forward, loss and output delta.
                forward_pass(spec, &params[0], xb, by_column, <int> rows, Z, A)
                batch_loss = loss_and_delta(
                    loss, spec.activation[L - 1], <int> rows, <int> k, Z[L - 1],
                    A[L - 1], yb, wb, batch_weight, D[L - 1]) / batch_weight
                if l2_batch != 0:
                    batch_loss += (0.5 * l2_batch
                                   * squared_weights(spec, &params[0]))
                if not isfinite(batch_loss):
                    status = STATUS_DIVERGED
                    break
                correct += count_correct(loss, <int> rows, <int> k, A[L - 1], yb,
                                         wb)
                # Backward, with each layer's update applied as soon as its
                # gradient is complete.
                step += 1
                backward_pass(spec, &params[0], xb, by_column, <int> rows, Z, A, D,
                              l2_batch, &grad[0], &cfg, step, &s1[0], &s2[0],
                              &s3[0])
                loss_sum += batch_loss * batch_weight
                weight_sum += batch_weight
            batches += 1
            start += rows

            if batches % check_every == 0 and start < n:
                with gil:
                    if check_signals() == -1:
                        PyErr_Clear()
                        status = STATUS_INTERRUPTED
                if status == STATUS_INTERRUPTED:
                    break

    # A Ctrl-C during the last batch (or the only one) is reported here, with the
    # epoch complete, rather than as a bare KeyboardInterrupt in the caller.
    if status == STATUS_DONE and check_signals() == -1:
        PyErr_Clear()
        status = STATUS_INTERRUPTED
    return status, loss_sum, weight_sum, step, batches, correct
