# The vectorised loops of _vector_loops.h (one version per instruction set, picked
# at load time); each for float and double.

cdef extern from "_vector_loops.h" nogil:
    enum:
        CBP_SGD_PLAIN
        CBP_SGD_FIRST_NESTEROV
        CBP_SGD_FIRST
        CBP_SGD_NESTEROV
        CBP_SGD_MOMENTUM

    void bias_relu_float "cbp_bias_relu_float" (
        Py_ssize_t n, Py_ssize_t k, const float* b, float* Z, float* A, float slope)
    void bias_relu_double "cbp_bias_relu_double" (
        Py_ssize_t n, Py_ssize_t k, const double* b, double* Z, double* A,
        double slope)
    void bias_identity_float "cbp_bias_identity_float" (
        Py_ssize_t n, Py_ssize_t k, const float* b, float* Z, float* A)
    void bias_identity_double "cbp_bias_identity_double" (
        Py_ssize_t n, Py_ssize_t k, const double* b, double* Z, double* A)
    void relu_derivative_float "cbp_relu_derivative_float" (
        Py_ssize_t size, const float* Z, float* D, float slope)
    void relu_derivative_double "cbp_relu_derivative_double" (
        Py_ssize_t size, const double* Z, double* D, double slope)
    void column_sums_float "cbp_column_sums_float" (
        Py_ssize_t n, Py_ssize_t k, const float* D, float* out)
    void column_sums_double "cbp_column_sums_double" (
        Py_ssize_t n, Py_ssize_t k, const double* D, double* out)
    void sgd_step_float "cbp_sgd_step_float" (
        int mode, Py_ssize_t n, float* p, const float* g, float* m, float lr,
        float wd, float mom, float keep)
    void sgd_step_double "cbp_sgd_step_double" (
        int mode, Py_ssize_t n, double* p, const double* g, double* m, double lr,
        double wd, double mom, double keep)
    void adam_step_float "cbp_adam_step_float" (
        Py_ssize_t n, float* p, const float* grad, float* s1, float* s2, float* s3,
        double lr, double wd, double b1, double b2, double eps, double step_size,
        double bc2_sqrt, int decoupled, int amsgrad)
    void adam_step_double "cbp_adam_step_double" (
        Py_ssize_t n, double* p, const double* grad, double* s1, double* s2,
        double* s3, double lr, double wd, double b1, double b2, double eps,
        double step_size, double bc2_sqrt, int decoupled, int amsgrad)
    int copy_finite_float "cbp_copy_finite_float" (
        Py_ssize_t n, const float* src, float* dst)
    int copy_finite_double "cbp_copy_finite_double" (
        Py_ssize_t n, const double* src, double* dst)
