# Parameter updates of the optimizers, over the flat parameter buffer.

from cbp._blas cimport floating

cdef enum:
    OPT_SGD = 0
    OPT_ADAM = 1
    OPT_RMSPROP = 2
    OPT_RPROP = 3

cdef struct OptimConfig:
    int kind
    double lr
    double momentum
    double dampening
    double weight_decay
    double beta1
    double beta2
    double eps
    double alpha
    double eta_minus
    double eta_plus
    double step_min
    double step_max
    bint nesterov
    bint amsgrad
    bint centered
    bint decoupled
    # Threads for the update of a large buffer: 1, or 2 to split it in halves.
    int threads

cdef void optimizer_step(const OptimConfig* cfg, long long step, Py_ssize_t n,
                         floating* params, floating* grad, floating* s1, floating* s2,
                         floating* s3) noexcept nogil
