/* One precision of the loops declared in _vector_loops.h: included once with
 * CBP_REAL = float and once with CBP_REAL = double. No include guard on purpose.
 *
 * Every loop below reads and writes each element independently, with no branch
 * on its value (selects instead), so that the compiler vectorises it.
 */

/* x, or 0 when x is subnormal: a running average of a dead unit's zero gradient
 * decays into the subnormal range, where every multiply takes a slow microcode
 * path, and values that small change no parameter. */
#define CBP_FLUSHED(x) (((x) >= CBP_SMALLEST || (x) <= -CBP_SMALLEST) ? (x) : 0)


/* Z += b row by row, then A = relu(Z) (slope 0) or leaky relu(Z); Z is (n, k). */
CBP_LOOP void CBP_NAME(bias_relu)(
    Py_ssize_t n, Py_ssize_t k, const CBP_REAL* CBP_RESTRICT b,
    CBP_REAL* CBP_RESTRICT Z, CBP_REAL* CBP_RESTRICT A, CBP_REAL slope)
{
    Py_ssize_t i, j;
    CBP_REAL z;
    for (i = 0; i < n; i++) {
        CBP_REAL* zr = Z + i * k;
        CBP_REAL* ar = A + i * k;
        if (slope == 0) {
            for (j = 0; j < k; j++) {
                z = zr[j] + b[j];
                zr[j] = z;
                ar[j] = z > 0 ? z : 0;
            }
        } else {
            for (j = 0; j < k; j++) {
                z = zr[j] + b[j];
                zr[j] = z;
                ar[j] = z > 0 ? z : slope * z;
            }
        }
    }
}


/* Z += b row by row and A = Z (identity activation). */
CBP_LOOP void CBP_NAME(bias_identity)(
    Py_ssize_t n, Py_ssize_t k, const CBP_REAL* CBP_RESTRICT b,
    CBP_REAL* CBP_RESTRICT Z, CBP_REAL* CBP_RESTRICT A)
{
    Py_ssize_t i, j;
    CBP_REAL z;
    for (i = 0; i < n; i++) {
        for (j = 0; j < k; j++) {
            z = Z[i * k + j] + b[j];
            Z[i * k + j] = z;
            A[i * k + j] = z;
        }
    }
}


/* D *= relu'(Z) (slope 0) or leaky relu'(Z), over size elements. */
CBP_LOOP void CBP_NAME(relu_derivative)(
    Py_ssize_t size, const CBP_REAL* CBP_RESTRICT Z, CBP_REAL* CBP_RESTRICT D,
    CBP_REAL slope)
{
    Py_ssize_t i;
    if (slope == 0) {
        for (i = 0; i < size; i++)
            D[i] = Z[i] > 0 ? D[i] : 0;
    } else {
        for (i = 0; i < size; i++)
            D[i] = Z[i] > 0 ? D[i] : slope * D[i];
    }
}


/* out[j] = sum over rows i of D[i, j], D of shape (n, k); rows added in order. */
CBP_LOOP void CBP_NAME(column_sums)(
    Py_ssize_t n, Py_ssize_t k, const CBP_REAL* CBP_RESTRICT D,
    CBP_REAL* CBP_RESTRICT out)
{
    Py_ssize_t i, j;
    for (j = 0; j < k; j++)
        out[j] = 0;
    for (i = 0; i < n; i++) {
        const CBP_REAL* row = D + i * k;
        for (j = 0; j < k; j++)
            out[j] += row[j];
    }
}


/* torch.optim.SGD over n parameters: p -= lr * (update direction), with g the
 * gradient plus weight decay, m the momentum buffer and keep = 1 - dampening. */
CBP_LOOP void CBP_NAME(sgd_step)(
    int mode, Py_ssize_t n, CBP_REAL* CBP_RESTRICT p, const CBP_REAL* CBP_RESTRICT g,
    CBP_REAL* CBP_RESTRICT m, CBP_REAL lr, CBP_REAL wd, CBP_REAL mom, CBP_REAL keep)
{
    Py_ssize_t i;
    CBP_REAL gi, mi;
    switch (mode) {
    case CBP_SGD_PLAIN:
        for (i = 0; i < n; i++)
            p[i] = p[i] - lr * (g[i] + wd * p[i]);
        break;
    case CBP_SGD_FIRST_NESTEROV:
        for (i = 0; i < n; i++) {
            gi = g[i] + wd * p[i];
            gi = CBP_FLUSHED(gi);
            m[i] = gi;
            p[i] = p[i] - lr * (gi + mom * gi);
        }
        break;
    case CBP_SGD_FIRST:
        for (i = 0; i < n; i++) {
            gi = g[i] + wd * p[i];
            gi = CBP_FLUSHED(gi);
            m[i] = gi;
            p[i] = p[i] - lr * gi;
        }
        break;
    case CBP_SGD_NESTEROV:
        for (i = 0; i < n; i++) {
            gi = g[i] + wd * p[i];
            mi = mom * m[i] + keep * gi;
            mi = CBP_FLUSHED(mi);
            m[i] = mi;
            p[i] = p[i] - lr * (gi + mom * mi);
        }
        break;
    default:
        for (i = 0; i < n; i++) {
            gi = g[i] + wd * p[i];
            mi = mom * m[i] + keep * gi;
            mi = CBP_FLUSHED(mi);
            m[i] = mi;
            p[i] = p[i] - lr * mi;
        }
        break;
    }
}


/* torch.optim.Adam / AdamW over n parameters, computed in double whatever the
 * storage: m and v (s1, s2) are the moment estimates, s3 the running maximum of
 * v (amsgrad). step_size = lr / (1 - beta1^t), bc2_sqrt = sqrt(1 - beta2^t). */
CBP_LOOP void CBP_NAME(adam_step)(
    Py_ssize_t n, CBP_REAL* CBP_RESTRICT p, const CBP_REAL* CBP_RESTRICT grad,
    CBP_REAL* CBP_RESTRICT s1, CBP_REAL* CBP_RESTRICT s2, CBP_REAL* CBP_RESTRICT s3,
    double lr, double wd, double b1, double b2, double eps, double step_size,
    double bc2_sqrt, int decoupled, int amsgrad)
{
    Py_ssize_t i;
    double g, m, v, denom;
    CBP_REAL stored, largest;
    for (i = 0; i < n; i++) {
        g = grad[i];
        if (decoupled)
            p[i] = (CBP_REAL) (p[i] * (1 - lr * wd));
        else if (wd != 0)
            g = g + wd * p[i];
        m = b1 * s1[i] + (1 - b1) * g;
        v = b2 * s2[i] + (1 - b2) * g * g;
        stored = (CBP_REAL) m;
        s1[i] = CBP_FLUSHED(stored);
        stored = (CBP_REAL) v;
        s2[i] = CBP_FLUSHED(stored);
        if (amsgrad) {
            largest = v > s3[i] ? (CBP_REAL) v : s3[i];
            s3[i] = largest;
            v = largest;
        }
        denom = sqrt(v) / bc2_sqrt + eps;
        p[i] = (CBP_REAL) (p[i] - step_size * (m / denom));
    }
}

/* dst = src over n elements; returns 1 when every element is finite, else 0.
 * x - x is 0 for a finite x and NaN for an infinite or NaN one. */
CBP_LOOP int CBP_NAME(copy_finite)(
    Py_ssize_t n, const CBP_REAL* CBP_RESTRICT src, CBP_REAL* CBP_RESTRICT dst)
{
    Py_ssize_t i;
    int bad = 0;
    CBP_REAL x;
    for (i = 0; i < n; i++) {
        x = src[i];
        dst[i] = x;
        bad |= !(x - x == 0);
    }
    return !bad;
}


#undef CBP_FLUSHED
