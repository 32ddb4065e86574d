"""An independent plain-NumPy multilayer perceptron, to check cbp against.

Nothing here calls cbp. The forward pass is vectorised over samples; the
backward pass loops over samples one at a time and follows the textbook
recursion, so it shares neither code nor batching tricks with the Cython core:

* layer ``l`` computes ``z_l = W_l a_{l-1} + b_l`` and ``a_l = act_l(z_l)``, with
  ``W_l`` of shape ``(n_out, n_in)`` and ``a_0 = x``;
* the loss is ``sum_i w_i loss_i / sum_i w_i`` (``w_i = 1`` by default), plus
  ``l2 / 2 * sum_l ||W_l||^2`` (weights only);
* ``delta_L = d loss_i / d z_L`` for one sample, and
  ``delta_l = W_{l+1}^T delta_{l+1} * act_l'(z_l)``;
* ``grad W_l = sum_i (w_i / sum w) delta_l a_{l-1}^T``, ``grad b_l`` likewise.

Everything is computed in float64, whatever dtype the inputs have.
"""

import numpy as np
from scipy.special import erf, expit, logsumexp

LEAKY_SLOPE = 0.01
ELU_ALPHA = 1.0

HIDDEN = (
    "identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus", "gelu"
)
OUTPUTS = ("identity", "sigmoid", "softmax")


def _standard_normal_cdf(z):
    return 0.5 * (1.0 + erf(z / np.sqrt(2.0)))


def _standard_normal_pdf(z):
    return np.exp(-0.5 * z * z) / np.sqrt(2.0 * np.pi)


def softmax(z):
    """Row-wise softmax, shifted by the row maximum so exp cannot overflow."""
    shifted = z - z.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


def activate(name, z):
    """Return ``act(z)`` elementwise (row-wise for softmax)."""
    if name == "identity":
        return z.copy()
    if name == "sigmoid":
        return expit(z)
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "leaky_relu":
        return np.where(z > 0, z, LEAKY_SLOPE * z)
    if name == "elu":
        return np.where(z > 0, z, ELU_ALPHA * np.expm1(np.minimum(z, 0.0)))
    if name == "softplus":
        # log(1 + e^z) = log(e^0 + e^z), stable for either sign of z.
        return np.logaddexp(0.0, z)
    if name == "gelu":
        return z * _standard_normal_cdf(z)
    if name == "softmax":
        return softmax(z)
    raise ValueError(f"unknown activation {name!r}")


def derivative(name, z):
    """Return ``act'(z)`` elementwise, for the hidden activations."""
    if name == "identity":
        return np.ones_like(z)
    if name == "sigmoid":
        s = expit(z)
        return s * (1.0 - s)
    if name == "tanh":
        return 1.0 - np.tanh(z) ** 2
    if name == "relu":
        return (z > 0).astype(np.float64)
    if name == "leaky_relu":
        return np.where(z > 0, 1.0, LEAKY_SLOPE)
    if name == "elu":
        return np.where(z > 0, 1.0, ELU_ALPHA * np.exp(np.minimum(z, 0.0)))
    if name == "softplus":
        return expit(z)
    if name == "gelu":
        # d/dz [z Phi(z)] = Phi(z) + z phi(z)
        return _standard_normal_cdf(z) + z * _standard_normal_pdf(z)
    raise ValueError(f"no elementwise derivative for {name!r}")


def forward(weights, biases, activations, output, X):
    """Return ``(zs, outs)``: per-layer pre-activations and activations.

    Parameters
    ----------
    weights, biases : lists of arrays, ``W_l`` of shape (n_out, n_in)
    activations : sequence of str, one per hidden layer
    output : str, activation of the last layer
    X : array of shape (n_samples, n_in)
    """
    names = list(activations) + [output]
    if len(names) != len(weights):
        raise ValueError("need one activation per hidden layer")
    a = np.asarray(X, dtype=np.float64)
    zs, outs = [], []
    for W, b, name in zip(weights, biases, names):
        W = np.asarray(W, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        # One sample per row: z^T = a_prev^T W^T + b^T.
        z = a @ W.T + b
        a = activate(name, z)
        zs.append(z)
        outs.append(a)
    return zs, outs


def sample_losses(loss, z, a, Y):
    """Return the loss of each sample, shape (n_samples,)."""
    Y = np.asarray(Y, dtype=np.float64)
    if loss == "mse":
        return 0.5 * ((a - Y) ** 2).sum(axis=1)
    if loss == "cross_entropy":
        # -sum_j y_j log softmax(z)_j with log softmax(z) = z - logsumexp(z).
        log_p = z - logsumexp(z, axis=1, keepdims=True)
        return -(Y * log_p).sum(axis=1)
    if loss == "binary_cross_entropy":
        return (np.maximum(z, 0.0) - z * Y + np.log1p(np.exp(-np.abs(z)))).sum(axis=1)
    raise ValueError(f"unknown loss {loss!r}")


def output_delta(loss, output, z, a, y):
    """Return ``d loss / d z`` of the last layer for one sample (1-D arrays)."""
    y = np.asarray(y, dtype=np.float64)
    if loss == "mse":
        dl_da = a - y
        if output == "identity":
            return dl_da
        if output == "sigmoid":
            return dl_da * a * (1.0 - a)
        if output == "softmax":
            # Full Jacobian d a_j / d z_k = a_j (1[j = k] - a_k); it is symmetric.
            jacobian = np.diag(a) - np.outer(a, a)
            return jacobian.T @ dl_da
    if loss == "cross_entropy" and output == "softmax":
        # d/dz_k [sum_j y_j logsumexp(z) - sum_j y_j z_j] = softmax_k sum(y) - y_k
        return softmax(z) * y.sum() - y
    if loss == "binary_cross_entropy" and output == "sigmoid":
        # d/dz [max(z, 0) - z y + log1p(exp(-|z|))] = sigmoid(z) - y
        return expit(z) - y
    raise ValueError(f"loss {loss!r} is not defined after output {output!r}")


def loss_and_gradients(weights, biases, activations, output, X, Y, loss,
                       sample_weight=None, l2=0.0):
    """Return ``(loss, grad_weights, grad_biases)`` for one batch.

    ``Y`` must be a 2-D array of targets (one-hot rows for class labels).
    """
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    n = X.shape[0]
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, float)
    total_weight = w.sum()
    names = list(activations) + [output]
    Ws = [np.asarray(W, dtype=np.float64) for W in weights]
    zs, outs = forward(weights, biases, activations, output, X)

    value = (w * sample_losses(loss, zs[-1], outs[-1], Y)).sum() / total_weight
    value += 0.5 * l2 * sum((W * W).sum() for W in Ws)

    grad_W = [np.zeros_like(W) for W in Ws]
    grad_b = [np.zeros(W.shape[0]) for W in Ws]
    for i in range(n):
        inputs = [X[i]] + [a[i] for a in outs[:-1]]
        delta = output_delta(loss, output, zs[-1][i], outs[-1][i], Y[i])
        delta = delta * (w[i] / total_weight)
        for layer in range(len(Ws) - 1, -1, -1):
            grad_W[layer] += np.outer(delta, inputs[layer])
            grad_b[layer] += delta
            if layer > 0:
                below = names[layer - 1]
                delta = (Ws[layer].T @ delta) * derivative(below, zs[layer - 1][i])
    for layer, W in enumerate(Ws):
        grad_W[layer] += l2 * W
    return value, grad_W, grad_b
