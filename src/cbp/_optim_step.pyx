"""One optimizer step over the flat parameter buffer, following ``torch.optim``.

Each rule below is the published update of its optimizer, written in the same
order of operations as PyTorch's single-tensor implementation so that a run
reproduces PyTorch's trajectory. ``step`` counts from 1 and ``s1``, ``s2``,
``s3`` are the optimizer's state buffers (their meaning depends on the rule);
``grad`` may be overwritten.
"""

from libc.float cimport DBL_MIN, FLT_MIN
from libc.math cimport pow, sqrt

from cbp._vector_loops cimport (CBP_SGD_FIRST, CBP_SGD_FIRST_NESTEROV,
                                CBP_SGD_MOMENTUM, CBP_SGD_NESTEROV, CBP_SGD_PLAIN,
                                adam_step_double, adam_step_float, sgd_step_double,
                                sgd_step_float)

import numpy as np


cdef inline floating flush(floating x) noexcept nogil:
    """Return ``x``, or 0 when it is subnormal.

    A running average whose gradient stays zero (a dead unit) decays into the
    subnormal range, where every multiply takes a slow microcode path; values that
    small change no parameter, so they are stored as 0.
    """
    cdef floating smallest = FLT_MIN if floating is float else DBL_MIN
    return x if (x >= smallest or x <= -smallest) else 0


cdef extern from "_thread_pair.h" nogil:
    ctypedef void (*work_fn "cbp_work_fn")(void* arg) noexcept nogil
    int run_pair "cbp_run_pair" (work_fn work, void* first, void* second)

cdef enum:
    # Buffers at least this long are updated in two halves at once when the
    # configuration allows two threads: from here on the update takes about a
    # millisecond, against tens of microseconds to start the helper thread.
    SPLIT_MIN = 1 << 20


cdef struct StepPart:
    # One half of an update; the buffers are float* or double* by the function
    # that runs the part.
    const OptimConfig* cfg
    long long step
    Py_ssize_t n
    void* params
    void* grad
    void* s1
    void* s2
    void* s3


cdef void step_part_float(void* arg) noexcept nogil:
    cdef StepPart* part = <StepPart*> arg
    update_range(part.cfg, part.step, part.n, <float*> part.params,
                 <float*> part.grad, <float*> part.s1, <float*> part.s2,
                 <float*> part.s3)


cdef void step_part_double(void* arg) noexcept nogil:
    cdef StepPart* part = <StepPart*> arg
    update_range(part.cfg, part.step, part.n, <double*> part.params,
                 <double*> part.grad, <double*> part.s1, <double*> part.s2,
                 <double*> part.s3)


cdef void optimizer_step(const OptimConfig* cfg, long long step, Py_ssize_t n,
                         floating* params, floating* grad, floating* s1, floating* s2,
                         floating* s3) noexcept nogil:
    # Every rule updates each element from that element alone, so the halves
    # are independent and the result is the same to the bit however it is split.
    cdef StepPart first, second
    cdef Py_ssize_t half
    if cfg.threads < 2 or n < SPLIT_MIN:
        update_range(cfg, step, n, params, grad, s1, s2, s3)
        return

    # The first half is a whole number of 64-byte cache lines, so that with
    # aligned buffers no line is written by both threads.
    half = (n // 2) & ~(<Py_ssize_t> (64 // sizeof(floating) - 1))
    first.cfg = cfg
    first.step = step
    first.n = half
    first.params = params
    first.grad = grad
    first.s1 = s1
    first.s2 = s2
    first.s3 = s3
    second = first
    second.n = n - half
    second.params = params + half
    second.grad = grad + half
    second.s1 = s1 + half
    second.s2 = s2 + half
    second.s3 = s3 + half
    if floating is float:
        run_pair(step_part_float, &first, &second)
    else:
        run_pair(step_part_double, &first, &second)


cdef void update_range(const OptimConfig* cfg, long long step, Py_ssize_t n,
                       floating* params, floating* grad, floating* s1, floating* s2,
                       floating* s3) noexcept nogil:
    cdef Py_ssize_t i
    cdef double lr = cfg.lr
    cdef double wd = cfg.weight_decay
    cdef double g, m, v, denom, bc1, bc2_sqrt, step_size, avg, sign, prev
    cdef double b1 = cfg.beta1, b2 = cfg.beta2, eps = cfg.eps
    cdef int mode

    if cfg.kind == OPT_SGD:
        # One branch-free pass for the combination of options, in
        # _vector_loops.h: the loops vectorise and touch each array once, which
        # matters when steps are many and small. (Adding weight_decay * p with
        # weight_decay = 0 changes nothing, so it is not a separate case.) s1 is
        # the momentum buffer, which starts as the first gradient.
        if cfg.momentum == 0:
            mode = CBP_SGD_PLAIN
        elif step == 1:
            mode = CBP_SGD_FIRST_NESTEROV if cfg.nesterov else CBP_SGD_FIRST
        else:
            mode = CBP_SGD_NESTEROV if cfg.nesterov else CBP_SGD_MOMENTUM
        if floating is float:
            sgd_step_float(mode, n, params, grad, s1, <float> lr, <float> wd,
                           <float> cfg.momentum, <float> (1 - cfg.dampening))
        else:
            sgd_step_double(mode, n, params, grad, s1, lr, wd, cfg.momentum,
                            1 - cfg.dampening)

    elif cfg.kind == OPT_ADAM:
        # s1: first moment, s2: second moment, s3: running maximum (amsgrad).
        bc1 = 1 - pow(b1, <double> step)
        bc2_sqrt = sqrt(1 - pow(b2, <double> step))
        step_size = lr / bc1
        if floating is float:
            adam_step_float(n, params, grad, s1, s2, s3, lr, wd, b1, b2, eps,
                            step_size, bc2_sqrt, cfg.decoupled, cfg.amsgrad)
        else:
            adam_step_double(n, params, grad, s1, s2, s3, lr, wd, b1, b2, eps,
                             step_size, bc2_sqrt, cfg.decoupled, cfg.amsgrad)

    elif cfg.kind == OPT_RMSPROP:
        # s1: mean square, s2: mean gradient (centered), s3: momentum buffer.
        for i in range(n):
            g = grad[i]
            if wd != 0:
                g = g + wd * params[i]
            v = cfg.alpha * s1[i] + (1 - cfg.alpha) * g * g
            s1[i] = flush(<floating> v)
            if cfg.centered:
                m = cfg.alpha * s2[i] + (1 - cfg.alpha) * g
                s2[i] = flush(<floating> m)
                avg = sqrt(v - m * m) + eps
            else:
                avg = sqrt(v) + eps
            if cfg.momentum > 0:
                s3[i] = flush(<floating> (cfg.momentum * s3[i] + g / avg))
                params[i] = params[i] - lr * s3[i]
            else:
                params[i] = params[i] - lr * (g / avg)

    elif cfg.kind == OPT_RPROP:
        # s1: previous gradient, s2: per-parameter step size (starts at lr).
        for i in range(n):
            g = grad[i]
            prev = s1[i]
            if g * prev > 0:
                s2[i] = s2[i] * cfg.eta_plus
            elif g * prev < 0:
                s2[i] = s2[i] * cfg.eta_minus
                # iRprop-: after a sign change, skip this update and forget g.
                g = 0
            if s2[i] < cfg.step_min:
                s2[i] = cfg.step_min
            elif s2[i] > cfg.step_max:
                s2[i] = cfg.step_max
            if g > 0:
                params[i] = params[i] - s2[i]
            elif g < 0:
                params[i] = params[i] + s2[i]
            s1[i] = g


def step(dict config, long long step, floating[::1] params, floating[::1] grad,
         floating[::1] s1, floating[::1] s2, floating[::1] s3):
    """Apply one update in place: the Python entry point of ``optimizer_step``.

    ``grad`` is copied first, so the caller's gradient is left as it was.
    """
    cdef OptimConfig cfg = config
    cdef Py_ssize_t n = params.shape[0]
    if grad.shape[0] != n or s1.shape[0] != n or s2.shape[0] != n or s3.shape[0] != n:
        raise ValueError("params, grad and state buffers must have the same length")
    if step < 1:
        raise ValueError(f"step counts from 1, got {step}")
    work = np.array(grad, copy=True)
    cdef floating[::1] g = work
    with nogil:
        optimizer_step(&cfg, step, n, &params[0], &g[0], &s1[0], &s2[0], &s3[0])
