# Forward pass, losses and backward pass of a multilayer perceptron.

from cbp._blas cimport floating
from cbp._optim_step cimport OptimConfig

cdef enum:
    ACT_IDENTITY = 0
    ACT_SIGMOID = 1
    ACT_TANH = 2
    ACT_RELU = 3
    ACT_LEAKY_RELU = 4
    ACT_ELU = 5
    ACT_SOFTPLUS = 6
    ACT_GELU = 7
    ACT_SOFTMAX = 8

cdef enum:
    LOSS_MSE = 0
    LOSS_CROSS_ENTROPY = 1
    LOSS_BINARY_CROSS_ENTROPY = 2

cdef struct NetSpec:
    int n_layers
    Py_ssize_t* sizes
    Py_ssize_t* w_offset
    Py_ssize_t* b_offset
    int* activation


cdef class Layout:
    cdef NetSpec spec
    cdef readonly Py_ssize_t n_params
    cdef readonly Py_ssize_t max_width


cdef class Workspace:
    cdef readonly Layout layout
    cdef readonly Py_ssize_t max_batch
    cdef readonly Py_ssize_t itemsize
    cdef void** Z
    cdef void** A
    cdef void** delta


cdef void forward_pass(const NetSpec* spec, const floating* params, const floating* X,
                       bint x_by_column, int n, floating** Z,
                       floating** A) noexcept nogil

cdef double loss_and_delta(int loss, int activation, int n, int k, const floating* Z,
                           const floating* A, const floating* Y, const floating* weight,
                           double weight_sum, floating* delta) noexcept nogil

cdef void backward_pass(const NetSpec* spec, floating* params, const floating* X,
                        bint x_by_column, int n, floating** Z, floating** A, floating** delta,
                        double l2, floating* grad,
                        const OptimConfig* update, long long step, floating* s1,
                        floating* s2, floating* s3) noexcept nogil

cdef double count_correct(int loss, int n, int k, const floating* A, const floating* Y,
                          const floating* weight) noexcept nogil

cdef double squared_weights(const NetSpec* spec, const floating* params) noexcept nogil

cdef int check_buffer(Layout layout, Py_ssize_t size, str name) except -1
