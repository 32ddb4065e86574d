"""Optimizers with the argument names and update rules of ``torch.optim``.

Each optimizer keeps its state (moments, step count) in flat arrays laid out like
the network's parameter buffer; the update itself runs in the core, over every
parameter in one pass. :meth:`Optimizer.state_dict` and
:meth:`Optimizer.load_state_dict` save and restore that state.
"""

import numpy as np

from cbp import _optim_step
from cbp._validation import check_bool, check_positive_int, check_real

_KINDS = {"sgd": 0, "adam": 1, "rmsprop": 2, "rprop": 3}


class Optimizer:
    """Base class of the optimizers; not used directly.

    Attributes
    ----------
    lr : float
        The learning rate; a schedule may change it between epochs.
    step_count : int
        Number of updates applied so far.
    """

    kind = None
    #: Whether the rule is meant for full-batch gradients only.
    full_batch = False

    def __init__(self, lr):
        self.lr = check_real(lr, "lr", low=0, low_open=True)
        self.step_count = 0
        self.state = None

    @property
    def lr(self):
        """float: the learning rate; checked whenever it is set.

        It starts above 0; a schedule may bring it down to 0 (no update).
        """
        return self._lr

    @lr.setter
    def lr(self, value):
        self._lr = check_real(value, "lr", low=0)

    def _fields(self):
        return {}

    def config(self):
        """Return the rule and its hyperparameters as the core expects them.

        Returns
        -------
        dict
        """
        fields = dict(
            kind=_KINDS[self.kind],
            lr=self.lr,
            momentum=0.0,
            dampening=0.0,
            weight_decay=0.0,
            beta1=0.0,
            beta2=0.0,
            eps=0.0,
            alpha=0.0,
            eta_minus=0.0,
            eta_plus=0.0,
            step_min=0.0,
            step_max=0.0,
            nesterov=False,
            amsgrad=False,
            centered=False,
            decoupled=False,
            threads=1,
        )
        fields.update(self._fields())
        return fields

    def state_rows(self):
        """Return how many state buffers the rule uses (the core's s1, s2, s3).

        Returns
        -------
        int
        """
        return 3

    def _initial_state(self, n, dtype):
        return np.zeros((self.state_rows(), n), dtype=dtype)

    def buffers(self):
        """Return the three state buffers the core takes.

        Buffers a rule does not use stand in for by its first one, which that
        rule never reads through them, so no memory is spent on them.

        Returns
        -------
        tuple of ndarray
        """
        rows = self.state
        return tuple(rows[min(i, rows.shape[0] - 1)] for i in range(3))

    def prepare(self, n_params, dtype):
        """Create the state buffers for ``n_params`` parameters, unless they fit.

        Parameters
        ----------
        n_params : int
        dtype : numpy dtype
        """
        if (
            self.state is None
            or self.state.shape != (self.state_rows(), n_params)
            or self.state.dtype != dtype
        ):
            self.state = self._initial_state(n_params, dtype)
            self.step_count = 0
        return self.state

    def reset(self):
        """Forget the state, as if no step had been taken."""
        self.state = None
        self.step_count = 0

    def step(self, params, grad):
        """Apply one update to ``params`` in place, given its gradient ``grad``.

        Parameters
        ----------
        params : ndarray of shape (n_params,)
            A network's flat parameter buffer (``network.params``).
        grad : ndarray of shape (n_params,)
            The gradient, laid out like ``params``.
        """
        if not isinstance(params, np.ndarray) or params.ndim != 1:
            raise TypeError("params must be a 1-D ndarray (a network's .params)")
        grad = np.ascontiguousarray(grad, dtype=params.dtype)
        if grad.shape != params.shape:
            raise ValueError(
                f"grad has shape {grad.shape}; expected {params.shape} like params"
            )
        self.prepare(params.shape[0], params.dtype)
        self.step_count += 1
        _optim_step.step(self.config(), self.step_count, params, grad, *self.buffers())

    def state_dict(self):
        """Return the hyperparameters and state as plain numbers and arrays.

        Returns
        -------
        dict
        """
        return {
            "name": type(self).__name__,
            "hyperparameters": self.hyperparameters(),
            "step_count": self.step_count,
            "state": None if self.state is None else self.state.copy(),
        }

    def load_state_dict(self, state):
        """Restore what :meth:`state_dict` returned.

        Parameters
        ----------
        state : dict
        """
        if state.get("name") != type(self).__name__:
            raise ValueError(
                f"state of {state.get('name')!r} cannot be loaded into "
                f"{type(self).__name__}"
            )
        for key, value in state["hyperparameters"].items():
            setattr(self, key, value)
        self.step_count = int(state["step_count"])
        buffers = state["state"]
        if buffers is not None:
            buffers = np.array(buffers, copy=True)
            if buffers.ndim != 2 or buffers.shape[0] != self.state_rows():
                raise ValueError(
                    f"state buffers have shape {buffers.shape}; "
                    f"{type(self).__name__} with these settings uses "
                    f"{self.state_rows()} rows"
                )
        self.state = buffers

    def hyperparameters(self):
        """Return the constructor arguments as a dict.

        Returns
        -------
        dict
        """
        raise NotImplementedError

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum.

    As ``torch.optim.SGD``: ``g = grad + weight_decay * p``; with momentum,
    ``buf = g`` at the first step, then ``buf = momentum * buf + (1 - dampening) *
    g``, and ``g = g + momentum * buf`` (Nesterov) or ``g = buf``; finally
    ``p -= lr * g``.

    Parameters
    ----------
    lr : float, default=0.01
    momentum : float, default=0
    dampening : float, default=0
    nesterov : bool, default=False
    weight_decay : float, default=0
    """

    kind = "sgd"

    def state_rows(self):
        """Return 1: the momentum buffer."""
        return 1

    def __init__(
        self, lr=0.01, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0
    ):
        super().__init__(lr)
        self.momentum = check_real(momentum, "momentum", low=0)
        self.dampening = check_real(dampening, "dampening")
        self.nesterov = check_bool(nesterov, "nesterov")
        self.weight_decay = check_real(weight_decay, "weight_decay", low=0)
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError("nesterov=True needs momentum > 0 and dampening = 0")

    def _fields(self):
        return dict(
            momentum=self.momentum,
            dampening=self.dampening,
            nesterov=self.nesterov,
            weight_decay=self.weight_decay,
        )

    def hyperparameters(self):
        """Return the constructor arguments as a dict."""
        return dict(
            lr=self.lr,
            momentum=self.momentum,
            dampening=self.dampening,
            nesterov=self.nesterov,
            weight_decay=self.weight_decay,
        )


class Adam(Optimizer):
    """Adam, as ``torch.optim.Adam`` (L2 penalty added to the gradient).

    ``g = grad + weight_decay * p``; ``m = b1 m + (1 - b1) g``; ``v = b2 v + (1 -
    b2) g^2`` (with ``amsgrad``, ``v`` is replaced by its running maximum);
    ``p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)``.

    Parameters
    ----------
    lr : float, default=1e-3
    betas : (float, float), default=(0.9, 0.999)
    eps : float, default=1e-8
    weight_decay : float, default=0
    amsgrad : bool, default=False
    """

    kind = "adam"
    decoupled = False

    def state_rows(self):
        """Return 2 (the two moments), or 3 with amsgrad (their running maximum)."""
        return 3 if self.amsgrad else 2

    def __init__(
        self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False
    ):
        super().__init__(lr)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas={betas!r} must be a pair (beta1, beta2)")
        self.betas = (
            check_real(betas[0], "betas[0]", 0, 1, high_open=True),
            check_real(betas[1], "betas[1]", 0, 1, high_open=True),
        )
        self.eps = check_real(eps, "eps", low=0)
        self.weight_decay = check_real(weight_decay, "weight_decay", low=0)
        self.amsgrad = check_bool(amsgrad, "amsgrad")

    def _fields(self):
        return dict(
            beta1=self.betas[0],
            beta2=self.betas[1],
            eps=self.eps,
            weight_decay=self.weight_decay,
            amsgrad=self.amsgrad,
            decoupled=self.decoupled,
        )

    def hyperparameters(self):
        """Return the constructor arguments as a dict."""
        return dict(
            lr=self.lr,
            betas=tuple(self.betas),
            eps=self.eps,
            weight_decay=self.weight_decay,
            amsgrad=self.amsgrad,
        )


class AdamW(Adam):
    """Adam with decoupled weight decay, as ``torch.optim.AdamW``.

    Before the Adam step, ``p *= 1 - lr * weight_decay``; the gradient itself is
    not penalised.

    Parameters
    ----------
    lr : float, default=1e-3
    betas : (float, float), default=(0.9, 0.999)
    eps : float, default=1e-8
    weight_decay : float, default=1e-2
    amsgrad : bool, default=False
    """

    decoupled = True

    def __init__(
        self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False
    ):
        super().__init__(lr, betas, eps, weight_decay, amsgrad)


class RMSprop(Optimizer):
    """RMSprop, as ``torch.optim.RMSprop``.

    ``g = grad + weight_decay * p``; ``v = alpha v + (1 - alpha) g^2``; the
    denominator is ``sqrt(v) + eps``, or ``sqrt(v - m^2) + eps`` with ``centered``
    where ``m = alpha m + (1 - alpha) g``; with momentum ``buf = momentum buf +
    g / denom`` and ``p -= lr buf``, else ``p -= lr g / denom``.

    Parameters
    ----------
    lr : float, default=1e-2
    alpha : float, default=0.99
    eps : float, default=1e-8
    weight_decay : float, default=0
    momentum : float, default=0
    centered : bool, default=False
    """

    kind = "rmsprop"

    def state_rows(self):
        """Return 1 (mean square), 2 when centered, 3 with momentum."""
        return 3 if self.momentum > 0 else (2 if self.centered else 1)

    def __init__(
        self,
        lr=1e-2,
        alpha=0.99,
        eps=1e-8,
        weight_decay=0.0,
        momentum=0.0,
        centered=False,
    ):
        super().__init__(lr)
        self.alpha = check_real(alpha, "alpha", 0, 1)
        self.eps = check_real(eps, "eps", low=0)
        self.weight_decay = check_real(weight_decay, "weight_decay", low=0)
        self.momentum = check_real(momentum, "momentum", low=0)
        self.centered = check_bool(centered, "centered")

    def _fields(self):
        return dict(
            alpha=self.alpha,
            eps=self.eps,
            weight_decay=self.weight_decay,
            momentum=self.momentum,
            centered=self.centered,
        )

    def hyperparameters(self):
        """Return the constructor arguments as a dict."""
        return dict(
            lr=self.lr,
            alpha=self.alpha,
            eps=self.eps,
            weight_decay=self.weight_decay,
            momentum=self.momentum,
            centered=self.centered,
        )


class Rprop(Optimizer):
    """Resilient backpropagation (iRprop-), as ``torch.optim.Rprop``; full batch.

    Each parameter has its own step size, starting at ``lr``: multiplied by
    ``etas[1]`` when the gradient keeps its sign, by ``etas[0]`` when it flips
    (and that step is skipped), clipped to ``step_sizes``; then ``p -= sign(g) *
    step``. Only the sign of the gradient is used, so it is meant for full-batch
    training: the trainer uses one batch of all samples with it.

    Parameters
    ----------
    lr : float, default=0.01
    etas : (float, float), default=(0.5, 1.2)
    step_sizes : (float, float), default=(1e-6, 50)
    """

    kind = "rprop"
    full_batch = True

    def __init__(self, lr=0.01, etas=(0.5, 1.2), step_sizes=(1e-6, 50.0)):
        super().__init__(lr)
        self.etas = (
            check_real(etas[0], "etas[0]", 0, 1, True, True),
            check_real(etas[1], "etas[1]", 1, None, True),
        )
        self.step_sizes = (
            check_real(step_sizes[0], "step_sizes[0]", low=0),
            check_real(step_sizes[1], "step_sizes[1]", low=0),
        )

    def state_rows(self):
        """Return 2: the previous gradient and the step sizes."""
        return 2

    def _initial_state(self, n, dtype):
        state = np.zeros((2, n), dtype=dtype)
        state[1] = self.lr
        return state

    def _fields(self):
        return dict(
            eta_minus=self.etas[0],
            eta_plus=self.etas[1],
            step_min=self.step_sizes[0],
            step_max=self.step_sizes[1],
        )

    def hyperparameters(self):
        """Return the constructor arguments as a dict."""
        return dict(
            lr=self.lr, etas=tuple(self.etas), step_sizes=tuple(self.step_sizes)
        )


class LBFGS(Optimizer):
    """Limited-memory BFGS through ``scipy.optimize``'s L-BFGS-B; full batch.

    The core computes the loss and its gradient in one call per function
    evaluation; scipy does the line search and the curvature pairs. One trainer
    epoch is one L-BFGS iteration.

    Parameters
    ----------
    lr : float, default=1.0
        Unused by L-BFGS-B (the line search picks the step); kept for a uniform
        interface.
    history_size : int, default=10
        Number of curvature pairs kept (scipy's ``maxcor``).
    max_fun : int, default=15000
        Largest number of loss evaluations in one fit.
    tol : float, default=1e-5
        Stop when the largest gradient entry falls below this (scipy's ``gtol``).
    ftol : float, default=2.220446049250313e-09
        Stop when the relative reduction of the loss falls below this (scipy's
        ``ftol``, with scipy's default).
    """

    kind = "lbfgs"
    full_batch = True

    def __init__(
        self,
        lr=1.0,
        history_size=10,
        max_fun=15000,
        tol=1e-5,
        ftol=2.220446049250313e-09,
    ):
        super().__init__(lr)
        self.history_size = check_positive_int(history_size, "history_size")
        self.max_fun = check_positive_int(max_fun, "max_fun")
        self.tol = check_real(tol, "tol", low=0)
        self.ftol = check_real(ftol, "ftol", low=0)

    def config(self):
        """L-BFGS has no per-step rule in the core."""
        raise TypeError("LBFGS runs through scipy.optimize, not the core's update")

    def step(self, params, grad):
        """L-BFGS needs the loss function, not one gradient: use the Trainer."""
        raise TypeError("LBFGS cannot take a single step; train with cbp.Trainer")

    def hyperparameters(self):
        """Return the constructor arguments as a dict."""
        return dict(
            lr=self.lr,
            history_size=self.history_size,
            max_fun=self.max_fun,
            tol=self.tol,
            ftol=self.ftol,
        )


OPTIMIZERS = {
    "sgd": SGD,
    "adam": Adam,
    "adamw": AdamW,
    "rmsprop": RMSprop,
    "rprop": Rprop,
    "lbfgs": LBFGS,
}


def make_optimizer(optimizer, lr=None):
    """Return an optimizer object from a name or an object.

    Parameters
    ----------
    optimizer : str or Optimizer
        A name from ``OPTIMIZERS`` or an optimizer instance.
    lr : float, optional
        Learning rate for an optimizer given by name (its default otherwise).

    Returns
    -------
    Optimizer
    """
    if isinstance(optimizer, Optimizer):
        return optimizer
    if isinstance(optimizer, str) and optimizer.lower() in OPTIMIZERS:
        cls = OPTIMIZERS[optimizer.lower()]
        return cls() if lr is None else cls(lr=lr)
    raise ValueError(
        f"optimizer={optimizer!r} is not one of {', '.join(OPTIMIZERS)} or an "
        "Optimizer instance"
    )
