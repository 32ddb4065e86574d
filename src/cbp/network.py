"""The :class:`Network`: a multilayer perceptron whose parameters live in one buffer."""

import numbers

import numpy as np

from cbp import _backprop
from cbp._validation import (
    MAX_BLAS_INT,
    as_matrix,
    as_sample_weight,
    as_targets,
    as_vector,
    check_dtype,
    check_real,
    check_seed,
)

HIDDEN_ACTIVATIONS = (
    "identity",
    "sigmoid",
    "tanh",
    "relu",
    "leaky_relu",
    "elu",
    "softplus",
    "gelu",
)
OUTPUT_ACTIVATIONS = ("identity", "sigmoid", "softmax")
LOSSES = _backprop.LOSSES

# The output activation each loss is defined for.
LOSS_OUTPUTS = {
    "mse": ("identity", "sigmoid", "softmax"),
    "cross_entropy": ("softmax",),
    "binary_cross_entropy": ("sigmoid",),
}

# He initialisation suits the rectifier family, Glorot the saturating ones.
HE_ACTIVATIONS = ("relu", "leaky_relu", "elu", "gelu", "softplus")

# Rows per forward chunk at prediction time: bounds memory for large inputs.
PREDICT_CHUNK = 4096


def _activation_code(name):
    return _backprop.ACTIVATIONS.index(name)


def check_loss(loss, output):
    """Return the core code of ``loss`` after checking it fits ``output``."""
    if loss not in LOSSES:
        raise ValueError(f"loss={loss!r} is not one of {', '.join(LOSSES)}")
    if output not in LOSS_OUTPUTS[loss]:
        allowed = " or ".join(LOSS_OUTPUTS[loss])
        raise ValueError(
            f"loss={loss!r} does not fit the output activation {output!r}; it needs "
            f"output={allowed}"
        )
    return LOSSES.index(loss)


def _check_result(values, what):
    """Raise rather than hand back NaN or infinity from finite inputs."""
    if not np.isfinite(values).all():
        advice = " or use dtype='float64'" if values.dtype == np.float32 else ""
        raise FloatingPointError(
            f"{what} overflowed to NaN or infinity; scale the inputs (for example "
            f"to zero mean and unit variance){advice}"
        )


class Network:
    """A fully connected feed-forward network trained by backpropagation.

    Layer ``l`` computes ``z = W a_prev + b`` and ``a = act(z)``, with ``W`` of
    shape ``(n_out, n_in)``. All weights and biases are views into one contiguous
    parameter buffer, :attr:`params`, laid out layer by layer as ``W`` (row-major)
    followed by ``b``.

    Parameters
    ----------
    layer_sizes : sequence of int
        Units per layer, input first and output last; at least two entries.
    activation : str or sequence of str, default="relu"
        Activation of the hidden layers: one name for all, or one name per hidden
        layer. One of identity, sigmoid, tanh, relu, leaky_relu (slope 0.01),
        elu (alpha 1), softplus, gelu (the exact erf form).
    output : {"identity", "sigmoid", "softmax"}, default="identity"
        Activation of the output layer.
    dtype : {"float64", "float32"}, default="float64"
        Floating-point type of the parameters and of every computation.
    seed : int, numpy.random.Generator or None, default=None
        Seed of the initialisation. Weights of a layer followed by a rectifier
        (relu, leaky_relu, elu, gelu, softplus) are drawn from He's normal
        ``N(0, 2 / n_in)``; the others (identity, sigmoid, tanh and the output
        layer) from Glorot's uniform ``U(-r, r)`` with ``r = sqrt(6 / (n_in +
        n_out))``. Biases start at zero.

    Attributes
    ----------
    weights : list of ndarray
        ``weights[l]`` has shape ``(n_out, n_in)``; writable views into ``params``.
    biases : list of ndarray
        ``biases[l]`` has shape ``(n_out,)``; writable views into ``params``.
    params : ndarray
        The flat parameter buffer.

    Examples
    --------
    >>> import numpy as np
    >>> import cbp
    >>> net = cbp.Network([4, 8, 3], output="softmax", seed=0)
    >>> net.forward(np.ones((2, 4))).shape
    (2, 3)
    """

    def __init__(
        self,
        layer_sizes,
        activation="relu",
        output="identity",
        dtype="float64",
        seed=None,
    ):
        self.layer_sizes = self._check_sizes(layer_sizes)
        n_hidden = len(self.layer_sizes) - 2
        if isinstance(activation, str):
            if activation not in HIDDEN_ACTIVATIONS:
                raise ValueError(
                    f"activation={activation!r} is not one of "
                    f"{', '.join(HIDDEN_ACTIVATIONS)}"
                )
            activations = [activation] * n_hidden
        else:
            try:
                activations = list(activation)
            except TypeError:
                raise TypeError(
                    f"activation={activation!r} must be a name or a list of names"
                ) from None
            if len(activations) != n_hidden:
                raise ValueError(
                    f"activation has {len(activations)} names but the network has "
                    f"{n_hidden} hidden layers; expected one name per hidden layer"
                )
        for name in activations:
            if name not in HIDDEN_ACTIVATIONS:
                raise ValueError(
                    f"activation={name!r} is not one of {', '.join(HIDDEN_ACTIVATIONS)}"
                )
        if output not in OUTPUT_ACTIVATIONS:
            raise ValueError(
                f"output={output!r} is not one of {', '.join(OUTPUT_ACTIVATIONS)}"
            )
        if output == "softmax" and self.layer_sizes[-1] < 2:
            raise ValueError("output='softmax' needs at least 2 output units")
        self.activations = tuple(activations)
        self.output = output
        self.dtype = np.dtype(check_dtype(dtype))
        codes = [_activation_code(a) for a in self.activations] + [
            _activation_code(output)
        ]
        self._layout = _backprop.Layout(self.layer_sizes, codes)
        self._params = np.zeros(self._layout.n_params, dtype=self.dtype)
        self._weights, self._biases = self._views(self._params)
        self.initialize(check_seed(seed, allow_generator=True))

    @staticmethod
    def _check_sizes(layer_sizes):
        try:
            sizes = list(layer_sizes)
        except TypeError:
            raise TypeError(
                f"layer_sizes={layer_sizes!r} must be a sequence of positive integers"
            ) from None
        if len(sizes) < 2:
            raise ValueError(
                f"layer_sizes={layer_sizes!r} needs at least 2 entries "
                "(inputs, outputs)"
            )
        for size in sizes:
            if (
                isinstance(size, bool)
                or not isinstance(size, numbers.Integral)
                or size < 1
            ):
                raise ValueError(
                    f"layer_sizes={layer_sizes!r} must hold positive integers; "
                    f"got {size!r}"
                )
        sizes = tuple(int(s) for s in sizes)
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            if n_in * n_out > MAX_BLAS_INT:
                raise ValueError(
                    f"a layer of {n_out} x {n_in} weights exceeds the {MAX_BLAS_INT} "
                    "elements BLAS can index"
                )
        return sizes

    def _views(self, flat):
        weights, biases = [], []
        for w_start, b_start, n_out, n_in in self._layout.offsets():
            weights.append(flat[w_start:b_start].reshape(n_out, n_in))
            biases.append(flat[b_start : b_start + n_out])
        return weights, biases

    def initialize(self, seed=None):
        """Draw fresh weights (He or Glorot, see the class docstring), zero biases.

        Parameters
        ----------
        seed : int, numpy.random.Generator or None
            Seed of the draw.
        """
        rng = np.random.default_rng(seed)
        acts = self.activations + (self.output,)
        for W, b, act in zip(self.weights, self.biases, acts):
            n_out, n_in = W.shape
            if act in HE_ACTIVATIONS:
                W[...] = rng.normal(0.0, np.sqrt(2.0 / n_in), size=W.shape)
            else:
                limit = np.sqrt(6.0 / (n_in + n_out))
                W[...] = rng.uniform(-limit, limit, size=W.shape)
            b[...] = 0
        return self

    # The buffer and its views are fixed for the network's life: the core reads
    # the layout's number of parameters from them, so they are not reassignable.

    @property
    def params(self):
        """ndarray: the flat parameter buffer; write into it, do not replace it.

        Assigning ``net.params = values`` copies ``values`` in (as
        :meth:`set_params`), so the weight and bias views stay valid.
        """
        return self._params

    @params.setter
    def params(self, values):
        self.set_params(values)

    @property
    def weights(self):
        """list of ndarray: ``weights[l]`` of shape (n_out, n_in), views of params."""
        return self._weights

    @property
    def biases(self):
        """list of ndarray: ``biases[l]`` of shape (n_out,), views of params."""
        return self._biases

    @property
    def n_inputs(self):
        """int: Number of input features."""
        return self.layer_sizes[0]

    @property
    def n_outputs(self):
        """int: Number of output units."""
        return self.layer_sizes[-1]

    @property
    def n_params(self):
        """int: Number of weights and biases."""
        return self.params.shape[0]

    def __repr__(self):
        sizes = "-".join(str(s) for s in self.layer_sizes)
        hidden = ",".join(self.activations) or "none"
        return (
            f"Network({sizes}, activation={hidden}, output={self.output}, "
            f"dtype={self.dtype.name})"
        )

    def copy(self):
        """Return an independent copy: same architecture, copied parameters."""
        other = Network.__new__(Network)
        other.layer_sizes = self.layer_sizes
        other.activations = self.activations
        other.output = self.output
        other.dtype = self.dtype
        other._layout = self._layout
        other._params = self._params.copy()
        other._weights, other._biases = other._views(other._params)
        return other

    def set_params(self, values):
        """Copy a flat vector of ``n_params`` values into the parameter buffer.

        Parameters
        ----------
        values : array-like of shape (n_params,)
        """
        values = as_vector(values, "values", self.dtype, self.n_params)
        self.params[...] = values

    def forward(self, X):
        """Return the network's outputs for the rows of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_inputs)

        Returns
        -------
        ndarray of shape (n_samples, n_outputs), in the network's dtype
        """
        X = as_matrix(X, "X", self.dtype, self.n_inputs)
        out = np.empty((X.shape[0], self.n_outputs), dtype=self.dtype)
        _backprop.forward(self._layout, self.params, X, out, PREDICT_CHUNK)
        _check_result(out, "the outputs")
        return out

    def predict(self, X):
        """Return the network's outputs for the rows of ``X`` (same as :meth:`forward`).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_inputs)

        Returns
        -------
        ndarray of shape (n_samples, n_outputs)
        """
        return self.forward(X)

    def _prepare(self, X, Y, loss, sample_weight):
        code = check_loss(loss, self.output)
        X = as_matrix(X, "X", self.dtype, self.n_inputs)
        Y = as_targets(Y, "Y", loss, X.shape[0], self.n_outputs, self.dtype)
        weight = as_sample_weight(sample_weight, X.shape[0], self.dtype)
        return code, X, Y, weight

    def gradients(self, X, Y, loss, sample_weight=None, l2=0.0):
        """Return the loss and its gradient for one batch, in one call to the core.

        Losses are averaged over the batch: ``sum_i w_i loss_i / sum_i w_i`` (all
        ``w_i = 1`` without ``sample_weight``), where for sample ``i``

        * ``"mse"``: ``loss_i = 1/2 sum_j (a_j - y_j)^2``;
        * ``"cross_entropy"`` (softmax output): ``loss_i = -sum_j y_j log
          softmax(z)_j``, computed from the logits with log-sum-exp; ``Y`` may be
          integer labels of shape (n,) or class probabilities of shape (n, k);
        * ``"binary_cross_entropy"`` (sigmoid output): ``loss_i = sum_j max(z_j, 0)
          - z_j y_j + log(1 + exp(-|z_j|))``, the logistic loss from the logits.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_inputs)
        Y : array-like of shape (n_samples, n_outputs) or (n_samples,)
        loss : {"mse", "cross_entropy", "binary_cross_entropy"}
        sample_weight : array-like of shape (n_samples,), optional
        l2 : float, default=0
            Adds ``l2 / 2 * sum_l ||W_l||^2`` (weights only) to the loss.

        Returns
        -------
        loss_value : float
        grad_weights : list of ndarray
            Shapes as :attr:`weights`.
        grad_biases : list of ndarray
            Shapes as :attr:`biases`.
        """
        code, X, Y, weight = self._prepare(X, Y, loss, sample_weight)
        l2 = check_real(l2, "l2", low=0)
        grad = np.empty_like(self.params)
        value = _backprop.loss_and_gradient(
            self._layout, self.params, X, Y, weight, code, l2, grad
        )
        with np.errstate(over="ignore"):
            _check_result(np.array([value], dtype=self.dtype), "the loss")
        _check_result(grad, "the gradient")
        grad_weights, grad_biases = self._views(grad)
        return value, grad_weights, grad_biases

    def loss(self, X, Y, loss, sample_weight=None):
        """Return the mean loss over the samples (see :meth:`gradients`).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_inputs)
        Y : array-like of shape (n_samples, n_outputs) or (n_samples,)
        loss : {"mse", "cross_entropy", "binary_cross_entropy"}
        sample_weight : array-like of shape (n_samples,), optional

        Returns
        -------
        float
        """
        code, X, Y, weight = self._prepare(X, Y, loss, sample_weight)
        out = np.empty((X.shape[0], self.n_outputs), dtype=self.dtype)
        total = _backprop.evaluate(
            self._layout, self.params, X, Y, weight, code, out, PREDICT_CHUNK
        )
        value = total / (weight.sum() if weight.size else X.shape[0])
        with np.errstate(over="ignore"):
            _check_result(np.array([value], dtype=self.dtype), "the loss")
        return value

    def save(self, path, optimizer=None, metadata=None):
        """Write the network to ``path`` atomically (see :mod:`cbp.model_file`).

        Parameters
        ----------
        path : str or os.PathLike
        optimizer : cbp.optim.Optimizer, optional
            Its state is saved too, so training can resume.
        metadata : dict, optional
            JSON-serialisable extra information (scaling, class labels, history).
        """
        from cbp.model_file import save_network

        save_network(path, self, optimizer=optimizer, metadata=metadata)

    @classmethod
    def load(cls, path):
        """Read a network written by :meth:`save`. Never executes code from the file.

        Parameters
        ----------
        path : str or os.PathLike

        Returns
        -------
        Network
        """
        from cbp.model_file import load_network

        return load_network(path).network
