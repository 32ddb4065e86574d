"""A plain NumPy multilayer perceptron trained by minibatch backpropagation.

The reference point "what vectorised NumPy gives you" for ``bench/run.py``. It is
written from the textbook rules and shares no code with cbp: each batch is one
forward pass, one backward pass and one SGD-with-momentum update, every step a
whole-batch NumPy expression (matrix products go to NumPy's BLAS).

Weights are stored ``(n_in, n_out)`` so the forward rule reads ``Z = A @ W + b``.
Hidden layers use ReLU; the output is the identity (squared error, ``1/2 (a -
y)^2`` per output, averaged over the batch) or a softmax with cross-entropy. The
momentum rule is PyTorch's: ``v = g`` at the first step, then ``v = mu v + g``,
and ``W -= lr v``.
"""

import numpy as np


class NumpyMLP:
    """ReLU network with an identity or softmax output, trained with momentum SGD.

    Parameters
    ----------
    sizes : sequence of int
        Units per layer, input first.
    output : {"identity", "softmax"}
    dtype : numpy dtype
    seed : int
        Seed of the He-normal initialisation.
    lr, momentum : float
    """

    def __init__(self, sizes, output, dtype, seed=0, lr=0.01, momentum=0.9):
        rng = np.random.default_rng(seed)
        self.output = output
        self.lr = lr
        self.momentum = momentum
        self.dtype = np.dtype(dtype)
        self.W = [
            rng.normal(0, np.sqrt(2 / n_in), (n_in, n_out)).astype(dtype)
            for n_in, n_out in zip(sizes[:-1], sizes[1:])
        ]
        self.b = [np.zeros(n_out, dtype=dtype) for n_out in sizes[1:]]
        self.vW = [np.zeros_like(W) for W in self.W]
        self.vb = [np.zeros_like(b) for b in self.b]
        self.steps = 0

    def train_batch(self, X, Y):
        """One forward, backward and update on the batch; return its mean loss."""
        n = X.shape[0]
        L = len(self.W)

        # forward: keep every layer's input for the weight gradients
        inputs = [X]
        A = X
        for l in range(L):
            Z = A @ self.W[l] + self.b[l]
            if l < L - 1:
                A = np.maximum(Z, 0)
                inputs.append(A)

        # loss and the output delta (already divided by the batch size)
        if self.output == "softmax":
            Z = Z - Z.max(axis=1, keepdims=True)
            E = np.exp(Z)
            S = E.sum(axis=1, keepdims=True)
            loss = float((np.log(S[:, 0]) - (Z * Y).sum(axis=1)).mean())
            delta = (E / S - Y) / n
        else:
            diff = Z - Y
            loss = float(0.5 * (diff * diff).sum() / n)
            delta = diff / n

        # backward: gradients of the weights, then the delta of the layer below
        grads = [None] * L
        for l in range(L - 1, -1, -1):
            grads[l] = (inputs[l].T @ delta, delta.sum(axis=0))
            if l > 0:
                delta = (delta @ self.W[l].T) * (inputs[l] > 0)

        # update: SGD with momentum
        self.steps += 1
        for l in range(L):
            for p, v, g in ((self.W[l], self.vW[l], grads[l][0]),
                            (self.b[l], self.vb[l], grads[l][1])):
                if self.steps == 1:
                    v[...] = g
                else:
                    v *= self.momentum
                    v += g
                p -= self.lr * v
        return loss

    def train_epoch(self, X, Y, batch_size, rng):
        """Shuffle, then one update per batch; return the mean batch loss."""
        order = rng.permutation(X.shape[0])
        total = 0.0
        batches = 0
        for start in range(0, X.shape[0], batch_size):
            idx = order[start:start + batch_size]
            total += self.train_batch(X[idx], Y[idx])
            batches += 1
        return total / batches
