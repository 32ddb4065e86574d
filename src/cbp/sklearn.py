"""scikit-learn estimators backed by cbp: :class:`MLPClassifier`, :class:`MLPRegressor`.

Both take the parameters of ``sklearn.neural_network``'s estimators of the same
names, with the same meanings, and set the same fitted attributes, so they can
replace them in a pipeline, a grid search or a cross-validation. Every epoch runs
in cbp's core (:class:`cbp.Network` and :class:`cbp.Trainer`); scikit-learn
supplies only input validation, label encoding, the validation split and the
scores.

This module needs scikit-learn (``pip install "cbp[sklearn]"``); ``import cbp``
does not.

Differences from scikit-learn
-----------------------------
* Adam adds ``epsilon`` to the bias-corrected root of the second moment, as
  ``torch.optim.Adam`` does; scikit-learn adds it before the correction, so
  early steps differ slightly.
* SGD's momentum buffer holds gradients (``torch.optim.SGD``'s form) where
  scikit-learn's holds steps; the two agree at a constant learning rate and
  differ while ``invscaling`` or ``adaptive`` changes it (markedly in short runs
  with ``invscaling``, whose rate falls fastest at the start).
* Shuffling uses cbp's own generator (seeded from ``random_state``), so the batch
  order is not scikit-learn's; the initial weights are drawn exactly as
  scikit-learn draws them.
* ``warm_start=True`` keeps the optimizer's state (moments, step count) from one
  ``fit`` to the next, as ``partial_fit`` does; scikit-learn starts a new
  optimizer at every ``fit``.
* ``partial_fit`` works with ``early_stopping=True``: each batch that can spare
  2 samples holds out ``validation_fraction`` of them and appends a validation
  score (the weights are not rolled back between calls); smaller batches train
  on all their samples. scikit-learn refuses the combination.
* Sparse inputs are accepted but turned into dense arrays, since the core works
  on dense matrices.
* With several regression outputs ``loss_`` adds up the outputs' half squared
  errors, where scikit-learn reports their mean.
"""

import logging
import numbers
import warnings

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state, column_or_1d
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import (
    _check_partial_fit_first_call,
    check_classification_targets,
    type_of_target,
    unique_labels,
)
from sklearn.utils.validation import check_is_fitted

from cbp import optim
from cbp._validation import MAX_BLAS_INT
from cbp.network import Network
from cbp.schedules import InvScaling, Schedule
from cbp.trainer import Trainer, TrainingDivergedError

try:
    from sklearn.utils.validation import validate_data
except ImportError:  # scikit-learn < 1.6 validates through a method
    def validate_data(estimator, *args, **kwargs):
        """Validate ``X`` (and ``y``) with the estimator's own method."""
        return estimator._validate_data(*args, **kwargs)


__all__ = ["MLPClassifier", "MLPRegressor"]

# Per-epoch lines go through the same logger as the Trainer's progress lines.
progress_logger = logging.getLogger("cbp.progress")

# scikit-learn's names of the hidden activations, mapped to cbp's.
ACTIVATIONS = {
    "identity": "identity",
    "logistic": "sigmoid",
    "tanh": "tanh",
    "relu": "relu",
    "leaky_relu": "leaky_relu",
    "elu": "elu",
    "softplus": "softplus",
    "gelu": "gelu",
}
SOLVERS = ("sgd", "adam", "lbfgs")
LEARNING_RATES = ("constant", "invscaling", "adaptive")
OUT_ACTIVATION_NAMES = {"sigmoid": "logistic", "softmax": "softmax",
                        "identity": "identity"}

# scikit-learn's adaptive rate gives up once the rate falls to this value.
MIN_ADAPTIVE_LR = 1e-6


def _check_bool(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}={value!r} must be True or False")
    return bool(value)


def _check_int(value, name, minimum):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}={value!r} must be an integer >= {minimum}")
    if value < minimum:
        raise ValueError(f"{name}={value!r} must be an integer >= {minimum}")
    return int(value)


def _check_float(value, name, low, high=None, low_open=False, high_open=False):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}={value!r} must be a real number")
    value = float(value)
    too_low = value < low or (low_open and value == low)
    too_high = high is not None and (value > high or (high_open and value == high))
    if not np.isfinite(value) or too_low or too_high:
        left = "(" if low_open else "["
        right = ")" if high_open or high is None else "]"
        upper = "inf" if high is None else high
        raise ValueError(f"{name}={value!r} must lie in {left}{low}, {upper}{right}")
    return value


def _check_choice(value, name, choices):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name}={value!r} is not one of {', '.join(choices)}")
    return value


def _check_sample_weight(sample_weight, n_samples, dtype):
    """Return ``sample_weight`` as a finite, non-negative 1-D array, or None."""
    if sample_weight is None:
        return None
    if isinstance(sample_weight, numbers.Real) and not isinstance(sample_weight, bool):
        return np.full(n_samples, float(sample_weight), dtype=dtype)
    weight = np.asarray(sample_weight)
    if weight.ndim != 1 or weight.shape[0] != n_samples:
        raise ValueError(
            f"sample_weight has shape {weight.shape}; expected ({n_samples},), one "
            "weight per sample of X"
        )
    if weight.dtype.kind not in "biuf":
        raise TypeError(
            f"sample_weight has dtype {weight.dtype}; expected real numbers"
        )
    weight = weight.astype(dtype)
    if not np.isfinite(weight).all():
        raise ValueError("sample_weight contains NaN or infinite values")
    if (weight < 0).any():
        raise ValueError("sample_weight has negative entries; expected weights >= 0")
    if not weight.sum() > 0:
        raise ValueError(
            "sample_weight is zero for every sample; expected a positive total weight"
        )
    return weight


def _has_stochastic_solver(estimator):
    # partial_fit exists only for the solvers that work epoch by epoch.
    if estimator.solver not in ("sgd", "adam"):
        raise AttributeError(
            f"partial_fit needs a stochastic solver (sgd or adam); "
            f"solver={estimator.solver!r} is not one"
        )
    return True


def _dense(X):
    # The core multiplies dense matrices only, so sparse input is expanded here.
    return X.toarray() if sparse.issparse(X) else X


class _EpochMonitor:
    """scikit-learn's per-epoch bookkeeping and stopping rule, as a Trainer callback.

    After every epoch it appends the loss (or, with early stopping, the
    validation score), counts epochs without an improvement of ``tol``, divides
    the learning rate by 5 for the ``adaptive`` rate and stops training when
    scikit-learn would.
    """

    def __init__(self, estimator, n_train, validation):
        self.estimator = estimator
        self.n_train = n_train
        self.validation = validation
        self.converged = False

    def __call__(self, trainer, record):
        est = self.estimator
        est.n_iter_ += 1
        est.t_ += self.n_train
        est.loss_ = record["loss"]
        est.loss_curve_.append(record["loss"])
        if est.verbose:
            progress_logger.info("Iteration %d, loss = %.8f", est.n_iter_, est.loss_)

        if self.validation is not None:
            X_val, y_val, w_val = self.validation
            score = est._score_outputs(est._network.forward(X_val), y_val, w_val)
            est.validation_scores_.append(score)
            if est.verbose:
                progress_logger.info("Validation score: %f", score)
            if score < est.best_validation_score_ + est.tol:
                est._no_improvement_count += 1
            else:
                est._no_improvement_count = 0
            if score > est.best_validation_score_:
                est.best_validation_score_ = score
                est._best_params = est._network.params.copy()
        elif est.early_stopping:
            # A partial_fit batch too small to validate on: nothing to compare.
            return False
        else:
            if est.loss_ > est.best_loss_ - est.tol:
                est._no_improvement_count += 1
            else:
                est._no_improvement_count = 0
            est.best_loss_ = min(est.best_loss_, est.loss_)

        if est._no_improvement_count <= est.n_iter_no_change:
            return False
        what = "Validation score" if self.validation is not None else "Training loss"
        message = (f"{what} did not improve more than tol={est.tol:f} for "
                   f"{est.n_iter_no_change} consecutive epochs.")
        # The adaptive rate reacts to a stall (of the loss or of the validation
        # score) by slowing down; every other setting stops.
        if not (est.solver == "sgd" and est.learning_rate == "adaptive"):
            if est.verbose:
                progress_logger.info("%s Stopping.", message)
            self.converged = True
            return True
        if trainer.optimizer.lr <= MIN_ADAPTIVE_LR:
            if est.verbose:
                progress_logger.info("%s Learning rate too small. Stopping.", message)
            self.converged = True
            return True
        trainer.optimizer.lr /= 5.0
        est._no_improvement_count = 0
        if est.verbose:
            progress_logger.info("%s Setting learning rate to %f", message,
                                 trainer.optimizer.lr)
        return False


def _log_lbfgs_iteration(trainer, record):
    """Trainer callback: scikit-learn's verbose line for each L-BFGS iteration."""
    progress_logger.info("Iteration %d, loss = %.8f", record["epoch"], record["loss"])
    return False


def _refuse_complex(X):
    """Refuse complex X with a message that names it (scikit-learn's does not).

    Also refuses, before any copy is made, more rows than BLAS can index.
    """
    shape = getattr(X, "shape", None)
    if shape is not None and len(shape) >= 1 and shape[0] > MAX_BLAS_INT:
        raise ValueError(
            f"X has {shape[0]} rows; at most {MAX_BLAS_INT} are supported"
        )
    dtype = getattr(X, "dtype", None)
    if not isinstance(dtype, np.dtype):
        dtype = np.asarray(X).dtype
    if dtype.kind == "c":
        raise ValueError(
            f"Complex data not supported: X has dtype {dtype}; expected real numbers"
        )


class _BaseMLP(BaseEstimator):
    """Parameters, fitting and persistence shared by the two estimators."""

    # Whether y holds class labels (the classifier sets it); the subclasses
    # also name cbp's loss in _loss, the classifier once it has seen y.
    _is_classifier = False

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *,
                 solver="adam", alpha=0.0001, batch_size="auto",
                 learning_rate="constant", learning_rate_init=0.001, power_t=0.5,
                 max_iter=200, shuffle=True, random_state=None, tol=1e-4,
                 verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False,
                 validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 n_iter_no_change=10, max_fun=15000, dtype=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dtype = dtype

    # -- parameters ------------------------------------------------------------

    def _check_params(self):
        """Check every constructor parameter; return the hidden layer sizes."""
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, numbers.Integral) and not isinstance(sizes, bool):
            sizes = [sizes]
        try:
            sizes = list(sizes)
        except TypeError:
            raise TypeError(
                f"hidden_layer_sizes={self.hidden_layer_sizes!r} must be an int or "
                "a sequence of ints"
            ) from None
        for size in sizes:
            if (isinstance(size, (bool, np.bool_))
                    or not isinstance(size, numbers.Integral) or size <= 0):
                raise ValueError(
                    f"hidden_layer_sizes={self.hidden_layer_sizes!r} must hold "
                    f"positive integers; got {size!r}"
                )
        _check_choice(self.activation, "activation", tuple(ACTIVATIONS))
        _check_choice(self.solver, "solver", SOLVERS)
        _check_choice(self.learning_rate, "learning_rate", LEARNING_RATES)
        _check_float(self.alpha, "alpha", 0)
        if not (isinstance(self.batch_size, str) and self.batch_size == "auto"):
            if isinstance(self.batch_size, str):
                raise ValueError(
                    f"batch_size={self.batch_size!r} must be 'auto' or an int >= 1"
                )
            _check_int(self.batch_size, "batch_size", 1)
        _check_float(self.learning_rate_init, "learning_rate_init", 0, low_open=True)
        _check_float(self.power_t, "power_t", 0)
        _check_int(self.max_iter, "max_iter", 1)
        _check_bool(self.shuffle, "shuffle")
        _check_float(self.tol, "tol", 0)
        if isinstance(self.verbose, str) or not isinstance(
                self.verbose, (bool, np.bool_, numbers.Integral)):
            raise TypeError(f"verbose={self.verbose!r} must be a bool or an int")
        _check_bool(self.warm_start, "warm_start")
        _check_float(self.momentum, "momentum", 0, 1)
        _check_bool(self.nesterovs_momentum, "nesterovs_momentum")
        _check_bool(self.early_stopping, "early_stopping")
        _check_float(self.validation_fraction, "validation_fraction", 0, 1,
                     low_open=True, high_open=True)
        _check_float(self.beta_1, "beta_1", 0, 1, high_open=True)
        _check_float(self.beta_2, "beta_2", 0, 1, high_open=True)
        _check_float(self.epsilon, "epsilon", 0, low_open=True)
        _check_int(self.n_iter_no_change, "n_iter_no_change", 1)
        _check_int(self.max_fun, "max_fun", 1)
        if self.dtype is not None:
            try:
                resolved = np.dtype(self.dtype)
            except TypeError:
                resolved = None
            if resolved not in (np.float32, np.float64):
                raise ValueError(
                    f"dtype={self.dtype!r} must be None, 'float32' or 'float64'"
                )
        return [int(s) for s in sizes]

    def _optimizer_key(self):
        """What the optimizer is made of; a change means a new optimizer."""
        if self.solver == "sgd":
            return ("sgd", float(self.momentum), bool(self.nesterovs_momentum))
        if self.solver == "adam":
            return ("adam", float(self.beta_1), float(self.beta_2),
                    float(self.epsilon))
        return ("lbfgs", int(self.max_fun), float(self.tol))

    def _make_optimizer(self):
        if self.solver == "sgd":
            nesterov = bool(self.nesterovs_momentum) and self.momentum > 0
            return optim.SGD(lr=self.learning_rate_init, momentum=self.momentum,
                             nesterov=nesterov)
        if self.solver == "adam":
            return optim.Adam(lr=self.learning_rate_init,
                              betas=(self.beta_1, self.beta_2), eps=self.epsilon)
        # tol is the gradient tolerance; ftol stays at scipy's default, as in
        # scikit-learn.
        return optim.LBFGS(max_fun=self.max_fun, tol=self.tol)

    # -- fitted state ----------------------------------------------------------

    def __sklearn_is_fitted__(self):
        """Return whether the estimator holds a fitted network.

        Returns
        -------
        bool
        """
        return self.__dict__.get("_network") is not None

    @property
    def coefs_(self):
        """list of ndarray: ``coefs_[i]`` has shape (n_in, n_out) for layer ``i``.

        The arrays are views into the network's parameters, so changing their
        entries changes the model; assigning a new list copies its values in.
        """
        net = self.__dict__.get("_network")
        if net is None:
            raise AttributeError(f"{type(self).__name__} is not fitted; no coefs_")
        return [W.T for W in net.weights]

    @coefs_.setter
    def coefs_(self, values):
        self._assign("coefs_", values, [W.T for W in self._network.weights])

    @property
    def intercepts_(self):
        """list of ndarray: ``intercepts_[i]`` has shape (n_out,) for layer ``i``.

        Views into the network's parameters, like :attr:`coefs_`.
        """
        net = self.__dict__.get("_network")
        if net is None:
            raise AttributeError(
                f"{type(self).__name__} is not fitted; no intercepts_"
            )
        return list(net.biases)

    @intercepts_.setter
    def intercepts_(self, values):
        self._assign("intercepts_", values, list(self._network.biases))

    @staticmethod
    def _assign(name, values, targets):
        values = list(values)
        if len(values) != len(targets):
            raise ValueError(
                f"{name} needs {len(targets)} arrays (one per layer), got {len(values)}"
            )
        checked = []
        for i, (value, target) in enumerate(zip(values, targets)):
            value = np.asarray(value)
            if value.shape != target.shape:
                raise ValueError(
                    f"{name}[{i}] has shape {value.shape}; expected {target.shape}"
                )
            if not np.isfinite(value).all():
                raise ValueError(f"{name}[{i}] contains NaN or infinite values")
            checked.append(value)
        for value, target in zip(checked, targets):
            target[...] = value

    def _init_sklearn_weights(self, rng):
        """Draw the initial weights as scikit-learn's MLP does, from ``rng``.

        Glorot's uniform range ``sqrt(factor / (fan_in + fan_out))`` (factor 2
        for the logistic activation, 6 otherwise) for weights and biases alike,
        layer by layer, so a given ``random_state`` starts both libraries from
        the same point.
        """
        factor = 2.0 if self.activation == "logistic" else 6.0
        for W, b in zip(self._network.weights, self._network.biases):
            n_out, n_in = W.shape
            bound = np.sqrt(factor / (n_in + n_out))
            W[...] = rng.uniform(-bound, bound, (n_in, n_out)).T
            b[...] = rng.uniform(-bound, bound, n_out)

    def _initialize(self, layer_units, output, dtype, rng):
        self._network = Network(layer_units, activation=ACTIVATIONS[self.activation],
                                output=output, dtype=dtype, seed=0)
        self._init_sklearn_weights(rng)
        self._trainer = None
        self._optimizer_signature = None
        self.n_iter_ = 0
        self.t_ = 0
        self.n_layers_ = len(layer_units)
        self.n_outputs_ = layer_units[-1]
        self.out_activation_ = OUT_ACTIVATION_NAMES[output]
        self._best_params = self._network.params.copy()
        # A new fit forgets the records of an earlier one.
        for name in ("loss_curve_", "validation_scores_", "best_validation_score_",
                     "best_loss_", "_no_improvement_count"):
            self.__dict__.pop(name, None)
        if self.solver != "lbfgs":
            self._start_stochastic_records()

    def _start_stochastic_records(self):
        """Set up the stochastic solvers' records, or adapt them to the settings.

        A warm start may follow an L-BFGS fit (no records yet) or switch
        ``early_stopping``; the records then start afresh for what is monitored.
        """
        if "loss_curve_" not in self.__dict__:
            self.loss_curve_ = []
            self._no_improvement_count = 0
            self.validation_scores_ = self.best_validation_score_ = None
            self.best_loss_ = None
        if self.early_stopping and self.validation_scores_ is None:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
            self._no_improvement_count = 0
        elif not self.early_stopping and self.best_loss_ is None:
            self.best_loss_ = np.inf
            self.validation_scores_ = self.best_validation_score_ = None
            self._no_improvement_count = 0

    def _get_trainer(self, seed):
        """Return the Trainer, keeping it (and its optimizer state) when possible."""
        signature = self._optimizer_key()
        if self._trainer is None:
            self._trainer = Trainer(self._network, self._loss,
                                    optimizer=self._make_optimizer(), seed=seed,
                                    verbose=0)
            self._trainer.l2_per_sample = True
        elif signature != self._optimizer_signature:
            self._trainer.optimizer = self._make_optimizer()
            self._trainer.base_lr = self._trainer.optimizer.lr
        self._optimizer_signature = signature
        return self._trainer

    # -- fitting ---------------------------------------------------------------

    def _fit(self, X, y, sample_weight=None, incremental=False):
        hidden = self._check_params()
        first_pass = (self.__dict__.get("_network") is None
                      or (not self.warm_start and not incremental))
        X, Y, y = self._validate_input(X, y, incremental, reset=first_pass)
        if first_pass:
            dtype = np.dtype(self.dtype) if self.dtype is not None else X.dtype
        else:
            dtype = self._network.dtype
        X = np.ascontiguousarray(X, dtype=dtype)
        Y = np.ascontiguousarray(Y, dtype=dtype)
        n_samples, n_features = X.shape
        sample_weight = self._sample_weight(sample_weight, y, n_samples, dtype,
                                            incremental)
        layer_units = [n_features] + hidden + [Y.shape[1]]
        rng = check_random_state(self.random_state)
        if first_pass:
            self._initialize(layer_units, self._output(Y), dtype, rng)
        elif list(self._network.layer_sizes) != layer_units:
            raise ValueError(
                f"the data needs layers {layer_units} but the fitted network has "
                f"{list(self._network.layer_sizes)}; with warm_start=True or "
                "partial_fit the features, outputs and hidden_layer_sizes must stay "
                "the same (refit with warm_start=False to start over)"
            )
        self.n_outputs_ = Y.shape[1]

        try:
            if self.solver == "lbfgs":
                self._fit_lbfgs(X, Y, sample_weight, rng)
            else:
                self._fit_stochastic(X, Y, y, sample_weight, rng, incremental)
        except TrainingDivergedError as error:
            raise ValueError(
                "Solver produced non-finite parameter weights. The input data may "
                "contain large values and need to be preprocessed (for example "
                "with StandardScaler)."
            ) from error
        return self

    def _split_validation(self, X, Y, y, sample_weight, rng, incremental):
        """Hold out ``validation_fraction`` of the data for early stopping.

        Returns the training part and ``(X_val, y_val, w_val)``, or ``None`` in
        place of the latter when a ``partial_fit`` batch is too small to spare
        2 validation samples (that batch then trains on all its samples).
        """
        n_samples = X.shape[0]
        n_val = int(np.ceil(self.validation_fraction * n_samples))
        if incremental and (n_val < 2 or n_val >= n_samples):
            return X, Y, sample_weight, None
        if not incremental and n_val < 2:
            raise ValueError(
                f"validation_fraction={self.validation_fraction} of {n_samples} "
                f"samples leaves {n_val} for validation; early_stopping needs at "
                "least 2. Increase validation_fraction or the size of the data set."
            )
        # scikit-learn stratifies only a single output column; a partial_fit
        # batch is not stratified, since it need not hold every class.
        single = self._is_classifier and Y.shape[1] == 1 and not incremental
        arrays = [X, Y, y] + ([] if sample_weight is None else [sample_weight])
        parts = train_test_split(*arrays, random_state=rng, test_size=n_val,
                                 stratify=Y if single else None)
        X, X_val, Y, _, _, y_val = parts[:6]
        w_val = None
        if sample_weight is not None:
            sample_weight, w_val = parts[6], parts[7]
        return X, Y, sample_weight, (X_val, y_val, w_val)

    def _fit_stochastic(self, X, Y, y, sample_weight, rng, incremental):
        self._start_stochastic_records()
        validation = None
        if self.early_stopping:
            X, Y, sample_weight, validation = self._split_validation(
                X, Y, y, sample_weight, rng, incremental
            )

        n_samples = X.shape[0]
        if self.batch_size == "auto":
            batch_size = min(200, n_samples)
        else:
            if self.batch_size > n_samples:
                warnings.warn(
                    f"batch_size={self.batch_size} is larger than the {n_samples} "
                    f"training samples; it is clipped to {n_samples}",
                    UserWarning,
                    stacklevel=4,
                )
            batch_size = min(self.batch_size, n_samples)

        trainer = self._get_trainer(seed=int(rng.randint(np.iinfo(np.int32).max)))
        if not incremental:
            # A new fit starts from the initial rate, as scikit-learn's new optimizer.
            trainer.optimizer.lr = trainer.base_lr = float(self.learning_rate_init)
        trainer.batch_size = batch_size
        trainer.epochs = 1 if incremental else self.max_iter
        trainer.shuffle = self.shuffle
        trainer.l2 = float(self.alpha)
        invscaling = self.solver == "sgd" and self.learning_rate == "invscaling"
        trainer.schedule = InvScaling(self.power_t) if invscaling else Schedule()
        monitor = _EpochMonitor(self, n_samples, validation)
        trainer.callbacks = [monitor]
        self.n_iter_ = 0
        try:
            trainer.fit(X, Y, sample_weight=sample_weight)
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.", UserWarning, stacklevel=4)
        finally:
            # The monitor holds the validation data; do not keep it alive.
            trainer.callbacks = []
        if not incremental and not monitor.converged and self.n_iter_ == self.max_iter:
            warnings.warn(
                f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached "
                "and the optimization hasn't converged yet.",
                ConvergenceWarning,
                stacklevel=4,
            )
        if self.early_stopping and not incremental:
            self._network.params[...] = self._best_params

    def _fit_lbfgs(self, X, Y, sample_weight, rng):
        trainer = self._get_trainer(seed=int(rng.randint(np.iinfo(np.int32).max)))
        trainer.epochs = self.max_iter
        trainer.l2 = float(self.alpha)
        trainer.schedule = Schedule()
        trainer.callbacks = [_log_lbfgs_iteration] if self.verbose else []
        try:
            trainer.fit(X, Y, sample_weight=sample_weight)
        finally:
            trainer.callbacks = []
        result = trainer.lbfgs_result_
        self.n_iter_ = int(result.nit)
        self.loss_ = float(result.fun)
        if result.status != 0:
            message = result.message
            if isinstance(message, bytes):
                message = message.decode("latin1")
            warnings.warn(
                f"lbfgs failed to converge after {self.n_iter_} iteration(s) "
                f"(status={result.status}): {message}. Increase max_iter (or "
                "max_fun), or scale the data, for example with StandardScaler.",
                ConvergenceWarning,
                stacklevel=4,
            )

    # -- prediction --------------------------------------------------------------

    def _forward(self, X):
        check_is_fitted(self)
        _refuse_complex(X)
        X = validate_data(self, X, accept_sparse=["csr", "csc"],
                          dtype=(np.float64, np.float32), reset=False)
        return self._network.forward(_dense(X))

    # -- persistence -------------------------------------------------------------

    def __getstate__(self):
        """Return the estimator's state with the network kept as plain arrays.

        Returns
        -------
        dict
        """
        state = dict(super().__getstate__())
        network = state.pop("_network", None)
        trainer = state.pop("_trainer", None)
        if network is not None:
            state["_network_state"] = {
                "layer_sizes": list(network.layer_sizes),
                "activations": list(network.activations),
                "output": network.output,
                "dtype": network.dtype.name,
                "params": network.params.copy(),
            }
        if trainer is not None:
            state["_trainer_state"] = {
                "loss": trainer.loss,
                "batch_size": trainer.batch_size,
                "epochs": trainer.epochs,
                "state": trainer.state_dict(),
            }
        return state

    def __setstate__(self, state):
        """Rebuild the network (and trainer) from :meth:`__getstate__`'s arrays.

        Parameters
        ----------
        state : dict
        """
        state = dict(state)
        network_state = state.pop("_network_state", None)
        trainer_state = state.pop("_trainer_state", None)
        super().__setstate__(state)
        if network_state is None:
            return
        network = Network(network_state["layer_sizes"],
                          activation=network_state["activations"],
                          output=network_state["output"],
                          dtype=network_state["dtype"], seed=0)
        network.set_params(network_state["params"])
        self._network = network
        self._trainer = None
        if trainer_state is not None:
            saved = trainer_state["state"]["optimizer"]
            optimizer = getattr(optim, saved["name"])(**saved["hyperparameters"])
            trainer = Trainer(network, trainer_state["loss"], optimizer=optimizer,
                              batch_size=trainer_state["batch_size"],
                              epochs=trainer_state["epochs"], verbose=0)
            trainer.l2_per_sample = True
            trainer.load_state_dict(trainer_state["state"])
            self._trainer = trainer

    def _more_tags(self):
        # Tags of scikit-learn < 1.6; newer versions read __sklearn_tags__.
        return {"multioutput": True}

    def __sklearn_tags__(self):
        """Return the estimator's tags: sparse input is accepted (and densified).

        Returns
        -------
        sklearn.utils.Tags
        """
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multilayer perceptron classifier trained by cbp, a drop-in for scikit-learn's.

    It minimises the log-loss with L-BFGS, SGD or Adam. Two classes use one
    logistic output unit, more classes a softmax layer, and multilabel indicator
    targets one logistic unit per label.

    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int, default=(100,)
        Units of each hidden layer.
    activation : {"identity", "logistic", "tanh", "relu", "leaky_relu", "elu", \
"softplus", "gelu"}, default="relu"
        Activation of the hidden layers.
    solver : {"lbfgs", "sgd", "adam"}, default="adam"
        ``lbfgs`` is the full-batch quasi-Newton method (good for small data
        sets); ``sgd`` is minibatch SGD with momentum; ``adam`` is Adam.
    alpha : float, default=1e-4
        Strength of the L2 penalty ``alpha / (2 n) * sum ||W||^2`` (``n``: samples
        of the batch).
    batch_size : int or "auto", default="auto"
        Minibatch size of the stochastic solvers; "auto" is ``min(200, n)``.
    learning_rate : {"constant", "invscaling", "adaptive"}, default="constant"
        Schedule of the ``sgd`` solver (ignored by the others): constant;
        ``learning_rate_init / (t + 1) ** power_t`` after ``t`` samples; or
        divided by 5 each time the loss stalls for ``n_iter_no_change`` epochs.
    learning_rate_init : float, default=1e-3
        Initial learning rate of ``sgd`` and ``adam``.
    power_t : float, default=0.5
        Exponent of the ``invscaling`` schedule.
    max_iter : int, default=200
        Most epochs (stochastic solvers) or iterations (``lbfgs``).
    shuffle : bool, default=True
        Shuffle the samples before each epoch (stochastic solvers).
    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights, the validation split and the shuffling.
    tol : float, default=1e-4
        Training stops when the loss (or the validation score with
        ``early_stopping``) has not improved by ``tol`` for ``n_iter_no_change``
        epochs; for ``lbfgs`` the gradient tolerance.
    verbose : bool or int, default=False
        Log the loss of every epoch (logger ``cbp.progress``).
    warm_start : bool, default=False
        Continue from the previous fit's weights and optimizer state.
    momentum : float, default=0.9
        Momentum of ``sgd``, between 0 and 1.
    nesterovs_momentum : bool, default=True
        Use Nesterov's momentum (``sgd`` with ``momentum > 0``).
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data (stratified for a single
        output) and stop when its accuracy stalls; the best weights are kept.
        Stochastic solvers only. With :meth:`partial_fit`, see the module notes.
    validation_fraction : float, default=0.1
        Fraction held out with ``early_stopping``.
    beta_1 : float, default=0.9
        Decay of Adam's first moment, in [0, 1).
    beta_2 : float, default=0.999
        Decay of Adam's second moment, in [0, 1).
    epsilon : float, default=1e-8
        Adam's denominator offset.
    n_iter_no_change : int, default=10
        Epochs without an improvement of ``tol`` before stopping.
    max_fun : int, default=15000
        Most loss evaluations of ``lbfgs``.
    dtype : {None, "float32", "float64"}, default=None
        Floating type of the network; None follows the input (float32 stays
        float32, anything else becomes float64).
    class_weight : dict, list of dict, "balanced" or None, default=None
        Weights of the classes, multiplied into ``sample_weight``; keys are class
        labels, and "balanced" uses ``n_samples / (n_classes * count)``.

    Attributes
    ----------
    classes_ : ndarray or list of ndarray
        The class labels (for multilabel targets, one array per label).
    loss_ : float
        Loss (with the penalty) at the end of the last epoch or iteration.
    best_loss_ : float or None
        Lowest training loss seen; None with ``early_stopping``.
    loss_curve_ : list of float
        Training loss of every epoch (stochastic solvers).
    validation_scores_ : list of float or None
        Validation accuracy of every epoch with ``early_stopping``.
    best_validation_score_ : float or None
        Best validation accuracy with ``early_stopping``.
    t_ : int
        Training samples seen by the stochastic solvers.
    coefs_ : list of ndarray
        ``coefs_[i]`` of shape (n_in, n_out) holds the weights of layer ``i``.
    intercepts_ : list of ndarray
        ``intercepts_[i]`` holds the biases of layer ``i``.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of str
        Feature names seen during fit, when ``X`` had string column names.
    n_iter_ : int
        Epochs (or L-BFGS iterations) run by the last fit.
    n_layers_ : int
        Number of layers, input and output included.
    n_outputs_ : int
        Number of output units.
    out_activation_ : str
        "logistic" or "softmax".

    See Also
    --------
    MLPRegressor : The regressor.
    cbp.Trainer : The training loop underneath.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from cbp.sklearn import MLPClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = MLPClassifier(solver="lbfgs", max_iter=300, random_state=0).fit(X, y)
    >>> clf.predict(X[:2]).tolist()
    [0, 0]
    """

    _is_classifier = True
    _loss = None

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *,
                 solver="adam", alpha=0.0001, batch_size="auto",
                 learning_rate="constant", learning_rate_init=0.001, power_t=0.5,
                 max_iter=200, shuffle=True, random_state=None, tol=1e-4,
                 verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False,
                 validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 n_iter_no_change=10, max_fun=15000, dtype=None, class_weight=None):
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes, activation=activation,
            solver=solver, alpha=alpha, batch_size=batch_size,
            learning_rate=learning_rate, learning_rate_init=learning_rate_init,
            power_t=power_t, max_iter=max_iter, shuffle=shuffle,
            random_state=random_state, tol=tol, verbose=verbose,
            warm_start=warm_start, momentum=momentum,
            nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
            validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2,
            epsilon=epsilon, n_iter_no_change=n_iter_no_change, max_fun=max_fun,
            dtype=dtype,
        )
        self.class_weight = class_weight

    def _validate_input(self, X, y, incremental, reset):
        """Return dense ``X``, the binarised targets and the labels ``y``."""
        _refuse_complex(X)
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"],
                             multi_output=True, dtype=(np.float64, np.float32),
                             reset=reset)
        X = _dense(X)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if "classes_" not in self.__dict__ or (not self.warm_start
                                               and not incremental):
            self._label_binarizer = LabelBinarizer().fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start and not incremental:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        "warm_start=True needs y to have the classes of the previous "
                        f"fit: previously {self.classes_}, now {classes}"
                    )
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(
                    f"y has classes {classes} that are not all in classes_ "
                    f"{self.classes_}"
                )
        Y = self._label_binarizer.transform(y)
        if Y.ndim == 1:
            Y = Y.reshape(-1, 1)
        return X, Y, y

    def _output(self, Y):
        if self._label_binarizer.y_type_ == "multiclass":
            self._loss = "cross_entropy"
            return "softmax"
        self._loss = "binary_cross_entropy"
        return "sigmoid"

    def _sample_weight(self, sample_weight, y, n_samples, dtype, incremental):
        weight = _check_sample_weight(sample_weight, n_samples, dtype)
        if self.class_weight is None:
            return weight
        if incremental and isinstance(self.class_weight, str):
            raise ValueError(
                "class_weight='balanced' is not supported by partial_fit, whose "
                "batches do not show the class frequencies; pass a dict of weights"
            )
        per_class = compute_sample_weight(self.class_weight, y).astype(dtype)
        weight = per_class if weight is None else weight * per_class
        if not weight.sum() > 0:
            raise ValueError("class_weight leaves every sample with weight zero")
        return weight

    def _score_outputs(self, outputs, y, sample_weight):
        """Accuracy of the network's ``outputs`` against the labels ``y``."""
        if not np.isfinite(outputs).all():
            return np.nan
        return accuracy_score(y, self._decode(outputs), sample_weight=sample_weight)

    def _decode(self, outputs):
        if self.n_outputs_ == 1:
            outputs = outputs.ravel()
        return self._label_binarizer.inverse_transform(outputs)

    def fit(self, X, y, sample_weight=None):
        """Fit the network to the data ``X`` and labels ``y``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Class labels, or a multilabel indicator matrix.
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each sample's loss.

        Returns
        -------
        self : MLPClassifier
            The fitted estimator.
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    @available_if(_has_stochastic_solver)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """Train for one epoch over ``(X, y)``, continuing any earlier training.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Class labels, or a multilabel indicator matrix.
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each sample's loss.
        classes : array-like of shape (n_classes,), default=None
            Every class of the whole data; required on the first call, ignored
            afterwards. For multilabel targets the labels are read from ``y``'s
            columns, but ``classes`` must still be given on the first call.

        Returns
        -------
        self : MLPClassifier
            The updated estimator.
        """
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict(self, X):
        """Predict the class labels of ``X``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_labels)
        """
        return self._decode(self._forward(X))

    def predict_proba(self, X):
        """Return the probability of each class for each sample of ``X``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Columns follow :attr:`classes_`.
        """
        outputs = self._forward(X)
        multilabel = self._label_binarizer.y_type_ == "multilabel-indicator"
        if self.n_outputs_ == 1 and not multilabel:
            p = outputs.ravel()
            return np.column_stack([1 - p, p])
        return outputs

    def predict_log_proba(self, X):
        """Return the log of :meth:`predict_proba`.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
        """
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def __sklearn_tags__(self):
        """Return the estimator's tags: multilabel targets are supported.

        Returns
        -------
        sklearn.utils.Tags
        """
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags

    def _more_tags(self):
        return {"multilabel": True}


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multilayer perceptron regressor trained by cbp, a drop-in for scikit-learn's.

    It minimises the half squared error (plus the L2 penalty) with L-BFGS, SGD or
    Adam; the output layer is linear, with one unit per target.

    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int, default=(100,)
        Units of each hidden layer.
    activation : {"identity", "logistic", "tanh", "relu", "leaky_relu", "elu", \
"softplus", "gelu"}, default="relu"
        Activation of the hidden layers.
    solver : {"lbfgs", "sgd", "adam"}, default="adam"
        ``lbfgs`` is the full-batch quasi-Newton method; ``sgd`` is minibatch
        SGD with momentum; ``adam`` is Adam.
    alpha : float, default=1e-4
        Strength of the L2 penalty ``alpha / (2 n) * sum ||W||^2``.
    batch_size : int or "auto", default="auto"
        Minibatch size of the stochastic solvers; "auto" is ``min(200, n)``.
    learning_rate : {"constant", "invscaling", "adaptive"}, default="constant"
        Schedule of the ``sgd`` solver; see :class:`MLPClassifier`.
    learning_rate_init : float, default=1e-3
        Initial learning rate of ``sgd`` and ``adam``.
    power_t : float, default=0.5
        Exponent of the ``invscaling`` schedule.
    max_iter : int, default=200
        Most epochs (stochastic solvers) or iterations (``lbfgs``).
    shuffle : bool, default=True
        Shuffle the samples before each epoch.
    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights, the validation split and the shuffling.
    tol : float, default=1e-4
        Stopping tolerance on the loss (or the validation R² with
        ``early_stopping``); for ``lbfgs`` the gradient tolerance.
    verbose : bool or int, default=False
        Log the loss of every epoch (logger ``cbp.progress``).
    warm_start : bool, default=False
        Continue from the previous fit's weights and optimizer state.
    momentum : float, default=0.9
        Momentum of ``sgd``.
    nesterovs_momentum : bool, default=True
        Use Nesterov's momentum.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data and stop when its R² stalls;
        the best weights are kept.
    validation_fraction : float, default=0.1
        Fraction held out with ``early_stopping``.
    beta_1 : float, default=0.9
        Decay of Adam's first moment.
    beta_2 : float, default=0.999
        Decay of Adam's second moment.
    epsilon : float, default=1e-8
        Adam's denominator offset.
    n_iter_no_change : int, default=10
        Epochs without an improvement of ``tol`` before stopping.
    max_fun : int, default=15000
        Most loss evaluations of ``lbfgs``.
    dtype : {None, "float32", "float64"}, default=None
        Floating type of the network; None follows the input.

    Attributes
    ----------
    loss_ : float
        Loss (with the penalty) at the end of the last epoch or iteration.
    best_loss_ : float or None
        Lowest training loss seen; None with ``early_stopping``.
    loss_curve_ : list of float
        Training loss of every epoch (stochastic solvers).
    validation_scores_ : list of float or None
        Validation R² of every epoch with ``early_stopping``.
    best_validation_score_ : float or None
        Best validation R² with ``early_stopping``.
    t_ : int
        Training samples seen by the stochastic solvers.
    coefs_ : list of ndarray
        ``coefs_[i]`` of shape (n_in, n_out) holds the weights of layer ``i``.
    intercepts_ : list of ndarray
        ``intercepts_[i]`` holds the biases of layer ``i``.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of str
        Feature names seen during fit, when ``X`` had string column names.
    n_iter_ : int
        Epochs (or L-BFGS iterations) run by the last fit.
    n_layers_ : int
        Number of layers, input and output included.
    n_outputs_ : int
        Number of outputs.
    out_activation_ : str
        Always "identity".

    See Also
    --------
    MLPClassifier : The classifier.

    Examples
    --------
    >>> import numpy as np
    >>> from cbp.sklearn import MLPRegressor
    >>> X = np.linspace(-1, 1, 50).reshape(-1, 1)
    >>> reg = MLPRegressor((20,), solver="lbfgs", random_state=0).fit(X, 2 * X[:, 0])
    >>> bool(abs(reg.predict([[0.5]])[0] - 1.0) < 0.1)
    True
    """

    _loss = "mse"

    def _validate_input(self, X, y, incremental, reset):
        """Return dense ``X``, the targets as a 2-D array and ``y``."""
        _refuse_complex(X)
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"],
                             multi_output=True, y_numeric=True,
                             dtype=(np.float64, np.float32), reset=reset)
        X = _dense(X)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        Y = y.reshape(-1, 1) if y.ndim == 1 else y
        return X, Y, y

    def _output(self, Y):
        return "identity"

    def _sample_weight(self, sample_weight, y, n_samples, dtype, incremental):
        return _check_sample_weight(sample_weight, n_samples, dtype)

    def _score_outputs(self, outputs, y, sample_weight):
        """R² of the network's ``outputs`` against the targets ``y``."""
        if not np.isfinite(outputs).all():
            return np.nan
        pred = outputs.ravel() if outputs.shape[1] == 1 else outputs
        return r2_score(y, pred, sample_weight=sample_weight)

    def fit(self, X, y, sample_weight=None):
        """Fit the network to the data ``X`` and targets ``y``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Target values.
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each sample's loss.

        Returns
        -------
        self : MLPRegressor
            The fitted estimator.
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    @available_if(_has_stochastic_solver)
    def partial_fit(self, X, y, sample_weight=None):
        """Train for one epoch over ``(X, y)``, continuing any earlier training.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Target values.
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each sample's loss.

        Returns
        -------
        self : MLPRegressor
            The updated estimator.
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict(self, X):
        """Predict the targets of ``X``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_targets)
        """
        outputs = self._forward(X)
        return outputs.ravel() if outputs.shape[1] == 1 else outputs

    def __sklearn_tags__(self):
        """Return the estimator's tags: several targets are supported.

        Returns
        -------
        sklearn.utils.Tags
        """
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
