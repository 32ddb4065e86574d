"""The :class:`Trainer`: whole epochs in the core, Python only between epochs."""

import contextlib
import importlib.util
import logging
import math
import numbers
import sys
import time
import warnings

import numpy as np

from cbp import _backprop, _epoch
from cbp._validation import (
    as_matrix,
    as_sample_weight,
    as_targets,
    check_bool,
    check_positive_int,
    check_real,
    check_seed,
)
from cbp.network import PREDICT_CHUNK, Network, check_loss
from cbp.optim import LBFGS, make_optimizer
from cbp.schedules import make_schedule

logger = logging.getLogger("cbp")

# Per-epoch lines of verbose training go to standard error through their own
# logger, so an application can silence or redirect them like any other log.
progress_logger = logging.getLogger("cbp.progress")


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time, so redirections apply."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


if not progress_logger.handlers:
    _handler = _StderrHandler()
    _handler.setFormatter(logging.Formatter("%(message)s"))
    progress_logger.addHandler(_handler)
    progress_logger.setLevel(logging.INFO)
    progress_logger.propagate = False

# Floating-point operations between two checks for Ctrl-C inside an epoch: a few
# milliseconds of work, so a stop is quick and the check costs nothing.
FLOPS_PER_SIGNAL_CHECK = 2e7

CLASSIFICATION_LOSSES = ("cross_entropy", "binary_cross_entropy")


class TrainingDivergedError(FloatingPointError):
    """Raised when the training loss stops being finite."""


class EarlyStopping:
    """Stop when the monitored loss stops improving.

    The monitored loss is the validation loss when there is validation data,
    otherwise the training loss.

    Parameters
    ----------
    patience : int, default=10
        Epochs without an improvement larger than ``min_delta`` before stopping.
    min_delta : float, default=0
    restore_best : bool, default=True
        Put back the parameters of the best epoch when stopping (and at the end
        of training).
    """

    def __init__(self, patience=10, min_delta=0.0, restore_best=True):
        self.patience = check_positive_int(patience, "patience", minimum=0)
        self.min_delta = check_real(min_delta, "min_delta", low=0)
        self.restore_best = bool(restore_best)

    def __repr__(self):
        return (
            f"EarlyStopping(patience={self.patience}, min_delta={self.min_delta}, "
            f"restore_best={self.restore_best})"
        )


class History:
    """What each epoch of a fit measured.

    Attributes
    ----------
    epochs : list of dict
        One record per epoch with keys ``epoch``, ``loss``, ``val_loss``,
        ``accuracy``, ``val_accuracy`` (``None`` where not measured), ``lr`` and
        ``seconds``.
    stopped_early : bool
        Whether early stopping ended the fit.
    best_epoch : int or None
        Epoch (counting from 1) of the best monitored loss.
    interrupted : bool
        Whether Ctrl-C ended the fit (the last record is then a partial epoch).
    """

    KEYS = ("epoch", "loss", "val_loss", "accuracy", "val_accuracy", "lr", "seconds")

    def __init__(self):
        self.epochs = []
        self.stopped_early = False
        self.best_epoch = None
        self.interrupted = False

    def __len__(self):
        return len(self.epochs)

    def __getitem__(self, key):
        """Return the list of one quantity over the epochs, e.g. ``history["loss"]``."""
        if key not in self.KEYS:
            raise KeyError(f"{key!r} is not one of {', '.join(self.KEYS)}")
        return [record[key] for record in self.epochs]

    def to_dict(self):
        """Return the history as plain lists (JSON-serialisable).

        Returns
        -------
        dict
        """
        return {
            "epochs": [dict(record) for record in self.epochs],
            "stopped_early": self.stopped_early,
            "best_epoch": self.best_epoch,
            "interrupted": self.interrupted,
        }

    def plot(self, path=None):
        """Draw the learning curves (loss, and accuracy when measured).

        Needs matplotlib: ``pip install "cbp[plot]"``.

        Parameters
        ----------
        path : str or os.PathLike, optional
            Write the figure there (format from the suffix) instead of returning
            it only.

        Returns
        -------
        matplotlib.figure.Figure
        """
        try:
            import matplotlib

            if path is not None:
                matplotlib.use("Agg", force=False)
            import matplotlib.pyplot as plt
        except ImportError:
            raise ImportError(
                "History.plot needs matplotlib; install it with "
                "'pip install \"cbp[plot]\"' (or 'pip install matplotlib')"
            ) from None
        has_accuracy = any(
            v is not None for v in self["accuracy"] + self["val_accuracy"]
        )
        fig, axes = plt.subplots(
            1, 2 if has_accuracy else 1, figsize=(10 if has_accuracy else 5, 4)
        )
        axes = np.atleast_1d(axes)
        epochs = self["epoch"]
        for ax, (train_key, val_key, label) in zip(
            axes,
            [("loss", "val_loss", "loss"), ("accuracy", "val_accuracy", "accuracy")],
        ):
            for key, name in ((train_key, "training"), (val_key, "validation")):
                values = self[key]
                if any(v is not None for v in values):
                    ax.plot(
                        epochs, [np.nan if v is None else v for v in values], label=name
                    )
            ax.set_xlabel("epoch")
            ax.set_ylabel(label)
            ax.legend()
        fig.tight_layout()
        if path is not None:
            fig.savefig(path)
            plt.close(fig)
        return fig


def _class_indices(Y, loss):
    """Return each sample's class (CE) or label-combination key (BCE, 1 output)."""
    if loss == "cross_entropy":
        return Y.argmax(axis=1)
    if Y.shape[1] == 1:
        return (Y[:, 0] > 0.5).astype(np.int64)
    raise ValueError("class_weight is not supported with several binary outputs")


def _class_weights(class_weight, Y, loss, n_outputs):
    """Return per-sample weights from ``class_weight`` ("balanced" or a dict)."""
    if loss not in CLASSIFICATION_LOSSES:
        raise ValueError(
            f"class_weight needs a classification loss "
            f"({', '.join(CLASSIFICATION_LOSSES)}), got loss={loss!r}"
        )
    classes = _class_indices(Y, loss)
    n_classes = n_outputs if loss == "cross_entropy" else 2
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise ValueError(
                f"class_weight={class_weight!r}; expected 'balanced' or a dict"
            )
        counts = np.bincount(classes, minlength=n_classes).astype(np.float64)
        table = np.where(
            counts > 0, len(classes) / (n_classes * np.maximum(counts, 1)), 0
        )
    elif isinstance(class_weight, dict):
        table = np.ones(n_classes)
        for key, value in class_weight.items():
            if not (isinstance(key, (int, np.integer)) and 0 <= key < n_classes):
                raise ValueError(
                    f"class_weight has key {key!r}; expected class indices 0 to "
                    f"{n_classes - 1}"
                )
            table[key] = check_real(value, f"class_weight[{key}]", low=0)
    else:
        raise TypeError(f"class_weight={class_weight!r}; expected 'balanced' or a dict")
    return table[classes]


def _accuracy(outputs, Y, loss, weight):
    """Return the weighted fraction of rows classified right."""
    if loss == "cross_entropy":
        right = outputs.argmax(axis=1) == Y.argmax(axis=1)
    else:
        right = ((outputs > 0.5) == (Y > 0.5)).all(axis=1)
    if weight.size:
        return float(np.dot(right, weight) / weight.sum())
    return float(right.mean())


class _Progress:
    """A tqdm bar per epoch on a terminal, one logged line per epoch otherwise."""

    def __init__(self, verbose, epochs):
        self.verbose = verbose
        self.epochs = epochs
        self.bar = None
        self.use_bar = False
        if verbose and getattr(sys.stderr, "isatty", lambda: False)():
            self.use_bar = importlib.util.find_spec("tqdm") is not None

    def start(self):
        if self.use_bar:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.epochs, unit="epoch", leave=True)

    def update(self, record):
        if not self.verbose:
            return
        parts = [f"epoch {record['epoch']}/{self.epochs}", f"loss {record['loss']:.5g}"]
        for key in ("accuracy", "val_loss", "val_accuracy"):
            if record[key] is not None:
                parts.append(f"{key} {record[key]:.5g}")
        parts.append(f"lr {record['lr']:.3g}")
        parts.append(f"{record['seconds']:.2f}s")
        if self.bar is not None:
            self.bar.set_postfix_str(" ".join(parts[1:]), refresh=False)
            self.bar.update(1)
        else:
            progress_logger.info("  ".join(parts))

    def close(self):
        if self.bar is not None:
            self.bar.close()


class Trainer:
    """Trains a :class:`~cbp.Network`, running each whole epoch in the core.

    Parameters
    ----------
    network : Network
    loss : {"mse", "cross_entropy", "binary_cross_entropy"}
        See :meth:`Network.gradients` for the definitions.
    optimizer : str or cbp.optim.Optimizer, default="adam"
        A name (``sgd``, ``adam``, ``adamw``, ``rmsprop``, ``rprop``, ``lbfgs``,
        with default hyperparameters) or an optimizer object. Rprop and L-BFGS
        always use one batch of all samples.
    batch_size : int, default=32
        A batch size larger than the data means one full batch (with a warning).
    epochs : int, default=10
    shuffle : bool, default=True
        Shuffle the samples before each epoch with cbp's own generator, which
        gives the same order on every platform.
    seed : int or None, default=None
        Seed of the shuffling and of the validation split.
    l2 : float, default=0
        Adds ``l2 / 2 * sum_l ||W_l||^2`` (weights only, not biases) to the loss.
    lr_schedule : None, str or cbp.schedules.Schedule, default=None
        See :mod:`cbp.schedules`.
    validation_data : (X_val, Y_val) or (X_val, Y_val, sample_weight_val), optional
    validation_split : float, default=0
        Fraction of the samples held out (at random, seeded) for validation when
        no ``validation_data`` is given.
    early_stopping : None, int or EarlyStopping, default=None
        An int is the patience of an :class:`EarlyStopping` with defaults.
    callbacks : sequence of callables, default=()
        Each is called after every epoch as ``callback(trainer, record)`` with the
        epoch's record (see :class:`History`); returning True stops training.
    n_threads : int or None, default=None
        Limit BLAS threads during the fit (needs threadpoolctl, the ``threads``
        extra); ``None`` leaves them as they are. With 2 or more, the optimizer's
        update of a network of at least 2**20 parameters is also split over two
        threads.
    verbose : int, default=1
        0 prints nothing; 1 shows a tqdm bar on a terminal (if tqdm is installed)
        and one line per epoch otherwise, on standard error.

    Attributes
    ----------
    history : History
        The history of the last fit.
    epochs_done : int
        Epochs completed over every fit of this trainer (the schedule counts on).
    """

    def __init__(
        self,
        network,
        loss,
        optimizer="adam",
        batch_size=32,
        epochs=10,
        shuffle=True,
        seed=None,
        l2=0.0,
        lr_schedule=None,
        validation_data=None,
        validation_split=0.0,
        early_stopping=None,
        callbacks=(),
        n_threads=None,
        verbose=1,
    ):
        if not isinstance(network, Network):
            raise TypeError(
                f"network must be a cbp.Network, got {type(network).__name__}"
            )
        self._network = network
        self._loss = loss
        self._loss_code = check_loss(loss, network.output)
        self.optimizer = make_optimizer(optimizer)
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.epochs = check_positive_int(epochs, "epochs")
        self.shuffle = check_bool(shuffle, "shuffle")
        self.seed = check_seed(seed)
        self.l2 = check_real(l2, "l2", low=0)
        self.l2_per_sample = False
        self.schedule = make_schedule(lr_schedule, self.epochs)
        self.validation_data = validation_data
        self.validation_split = check_real(
            validation_split, "validation_split", 0, 1, high_open=True
        )
        if isinstance(early_stopping, bool) or (
            early_stopping is not None and not isinstance(early_stopping, EarlyStopping)
        ):
            if isinstance(early_stopping, bool) or not isinstance(
                early_stopping, numbers.Integral
            ):
                raise TypeError(
                    f"early_stopping={early_stopping!r}; expected None, an int "
                    "patience or an EarlyStopping"
                )
            early_stopping = EarlyStopping(patience=int(early_stopping))
        self.early_stopping = early_stopping
        if callbacks is None:
            callbacks = ()
        self.callbacks = list(callbacks)
        for callback in self.callbacks:
            if not callable(callback):
                raise TypeError(f"callbacks must be callables, got {callback!r}")
        if n_threads is not None:
            n_threads = check_positive_int(n_threads, "n_threads")
        self.n_threads = n_threads
        if isinstance(verbose, bool):
            verbose = int(verbose)
        if not isinstance(verbose, numbers.Integral) or verbose < 0:
            raise TypeError(f"verbose={verbose!r}; expected 0 (silent) or 1")
        self.verbose = int(verbose)
        self.history = History()
        self.epochs_done = 0
        self.samples_seen = 0
        self.base_lr = self.optimizer.lr
        self._rng_state = None

    # The network and the loss are fixed at construction: the loss was checked
    # against the network's output and turned into the core's code once.

    @property
    def network(self):
        """Network: the network this trainer updates (fixed at construction)."""
        return self._network

    @property
    def loss(self):
        """str: the loss being minimised (fixed at construction)."""
        return self._loss

    # -- state -----------------------------------------------------------------

    def _rng(self):
        if self._rng_state is None:
            words = np.random.SeedSequence(self.seed).generate_state(1, np.uint64)
            self._rng_state = np.array(words, dtype=np.uint64)
        return self._rng_state

    def state_dict(self):
        """Return what a later fit needs to continue exactly where this one ended.

        Returns
        -------
        dict
            The optimizer's state, the shuffling generator's state, the epoch and
            sample counters, the base learning rate and the schedule's state.
        """
        return {
            "optimizer": self.optimizer.state_dict(),
            "rng_state": None if self._rng_state is None else int(self._rng_state[0]),
            "epochs_done": self.epochs_done,
            "samples_seen": self.samples_seen,
            "base_lr": self.base_lr,
            "schedule": self.schedule.state_dict(),
        }

    def load_state_dict(self, state):
        """Restore what :meth:`state_dict` returned.

        Parameters
        ----------
        state : dict
        """
        self.optimizer.load_state_dict(state["optimizer"])
        rng = state.get("rng_state")
        self._rng_state = None if rng is None else np.array([rng], dtype=np.uint64)
        self.epochs_done = int(state["epochs_done"])
        self.samples_seen = int(state["samples_seen"])
        self.base_lr = float(state["base_lr"])
        self.schedule.load_state_dict(state.get("schedule", {}))

    # -- data ------------------------------------------------------------------

    def _prepare(self, X, Y, sample_weight, class_weight):
        net = self.network
        X = as_matrix(X, "X", net.dtype, net.n_inputs)
        Y = as_targets(Y, "Y", self.loss, X.shape[0], net.n_outputs, net.dtype)
        weight = as_sample_weight(sample_weight, X.shape[0], net.dtype)
        if class_weight is not None:
            per_class = _class_weights(class_weight, Y, self.loss, net.n_outputs)
            weight = (per_class if weight.size == 0 else weight * per_class).astype(
                net.dtype
            )
            if not weight.sum() > 0:
                raise ValueError("class_weight leaves every sample with weight 0")
        return X, Y, weight

    def _split(self, X, Y, weight):
        if self.validation_data is not None:
            data = tuple(self.validation_data)
            if len(data) not in (2, 3):
                raise ValueError(
                    "validation_data must be (X_val, Y_val) or (X_val, Y_val, weight)"
                )
            net = self.network
            X_val = as_matrix(data[0], "validation_data[0]", net.dtype, net.n_inputs)
            Y_val = as_targets(
                data[1],
                "validation_data[1]",
                self.loss,
                X_val.shape[0],
                net.n_outputs,
                net.dtype,
            )
            w_val = as_sample_weight(
                data[2] if len(data) == 3 else None,
                X_val.shape[0],
                net.dtype,
                "validation_data[2]",
            )
            return X, Y, weight, (X_val, Y_val, w_val)
        if self.validation_split <= 0:
            return X, Y, weight, None
        n = X.shape[0]
        n_val = int(round(n * self.validation_split))
        if n_val < 1 or n - n_val < 1:
            raise ValueError(
                f"validation_split={self.validation_split} of {n} samples leaves "
                f"{n_val} for validation and {n - n_val} for training; need at least "
                "1 of each"
            )
        perm = np.random.default_rng(self.seed).permutation(n)
        val, train = np.sort(perm[:n_val]), np.sort(perm[n_val:])

        def pick(w, idx):
            return w[idx] if w.size else w

        return (
            X[train],
            Y[train],
            pick(weight, train),
            (X[val], Y[val], pick(weight, val)),
        )

    def _evaluate(self, validation):
        X_val, Y_val, w_val = validation
        net = self.network
        out = np.empty((X_val.shape[0], net.n_outputs), dtype=net.dtype)
        if self._val_workspace is None:
            self._val_workspace = _backprop.Workspace(
                net._layout, net.dtype, min(PREDICT_CHUNK, X_val.shape[0])
            )
        total = _backprop.evaluate(
            net._layout,
            net.params,
            X_val,
            Y_val,
            w_val,
            self._loss_code,
            out,
            PREDICT_CHUNK,
            self._val_workspace,
        )
        val_loss = total / (w_val.sum() if w_val.size else X_val.shape[0])
        val_acc = None
        if self.loss in CLASSIFICATION_LOSSES:
            val_acc = _accuracy(out, Y_val, self.loss, w_val)
        return float(val_loss), val_acc

    # -- fitting ---------------------------------------------------------------

    def fit(self, X, Y, sample_weight=None, class_weight=None):
        """Train the network on ``(X, Y)`` for ``epochs`` epochs.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_inputs)
        Y : array-like of shape (n_samples, n_outputs) or (n_samples,)
            Integer class labels are accepted with ``cross_entropy``.
        sample_weight : array-like of shape (n_samples,), optional
            Each sample's loss is weighted; a loss is ``sum w_i loss_i / sum w_i``
            per batch, so a weight of 2 counts like the sample twice.
        class_weight : "balanced" or dict, optional
            Multiplies each sample's weight by its class's weight; ``"balanced"``
            uses ``n_samples / (n_classes * count)``.

        Returns
        -------
        History

        Raises
        ------
        TrainingDivergedError
            When the loss or the parameters become NaN or infinite; the
            parameters and optimizer state are put back to those the diverged
            epoch started from (as the callbacks of the epoch before left them).
        KeyboardInterrupt
            On Ctrl-C; the parameters hold the last completed batch's update and
            ``history`` the epochs done.
        """
        X, Y, weight = self._prepare(X, Y, sample_weight, class_weight)
        X, Y, weight, validation = self._split(X, Y, weight)
        if self.epochs_done == 0:
            # Schedules count from the rate training starts with, which the user
            # may have set on the optimizer after building the trainer.
            self.base_lr = self.optimizer.lr
        self.history = History()
        self._val_workspace = None
        if self.n_threads is None:
            limits = contextlib.nullcontext()
        else:
            try:
                from threadpoolctl import threadpool_limits
            except ImportError:
                raise ImportError(
                    "n_threads needs threadpoolctl; install it with "
                    "'pip install \"cbp[threads]\"'"
                ) from None
            limits = threadpool_limits(limits=self.n_threads, user_api="blas")
        progress = _Progress(self.verbose, self.epochs)
        progress.start()
        try:
            with limits:
                if isinstance(self.optimizer, LBFGS):
                    self._fit_lbfgs(X, Y, weight, validation, progress)
                else:
                    self._fit_epochs(X, Y, weight, validation, progress)
        finally:
            progress.close()
        return self.history

    def _batch_size(self, n):
        if self.optimizer.full_batch:
            return n
        if self.batch_size > n:
            warnings.warn(
                f"batch_size={self.batch_size} is larger than the {n} training "
                f"samples; using one batch of {n}",
                UserWarning,
                stacklevel=4,
            )
            return n
        return self.batch_size

    def _record(self, epoch, loss, accuracy, validation, lr, seconds):
        val_loss = val_acc = None
        if validation is not None:
            val_loss, val_acc = self._evaluate(validation)
        record = {
            "epoch": epoch,
            "loss": float(loss),
            "val_loss": val_loss,
            "accuracy": accuracy,
            "val_accuracy": val_acc,
            "lr": float(lr),
            "seconds": float(seconds),
        }
        self.history.epochs.append(record)
        return record

    def _after_epoch(self, record, progress, tracker):
        """Progress, schedule, callbacks and early stopping; return True to stop."""
        progress.update(record)
        monitor = (
            record["val_loss"] if record["val_loss"] is not None else record["loss"]
        )
        stop = tracker.update(record["epoch"], monitor)
        self.optimizer.lr = self.schedule.next_lr(
            self.epochs_done,
            self.base_lr,
            self.optimizer.lr,
            monitor,
            self.samples_seen,
        )
        for callback in self.callbacks:
            if callback(self, record):
                stop = True
        return stop

    def _fit_epochs(self, X, Y, weight, validation, progress):
        net = self.network
        n, d = X.shape
        k = Y.shape[1]
        batch = self._batch_size(n)
        dtype = net.dtype

        # Everything the epochs need, allocated once for the whole fit.
        workspace = _backprop.Workspace(net._layout, dtype, batch)
        grad = np.empty_like(net.params)
        state = self.optimizer.prepare(net.n_params, dtype)
        X_batch = np.empty((batch, d), dtype=dtype)
        Y_batch = np.empty((batch, k), dtype=dtype)
        w_batch = np.empty(batch if weight.size else 0, dtype=dtype)
        order = np.arange(n, dtype=np.intp)
        rng = self._rng()
        # The restore point if an epoch diverges: the parameters and optimizer
        # state at the start of the epoch. The check of the parameters after an
        # epoch writes them into `spare`, which then becomes the next restore
        # point, unless callbacks, which may change the parameters, run in between.
        snapshot = net.params.copy()
        spare = np.empty_like(net.params)
        state_snapshot = state.copy()
        flops = 6.0 * sum(
            a * b for a, b in zip(net.layer_sizes[:-1], net.layer_sizes[1:])
        )
        check_every = max(1, int(FLOPS_PER_SIGNAL_CHECK / (flops * batch)))
        tracker = _BestTracker(self.early_stopping, net)
        update_threads = 2 if self.n_threads is not None and self.n_threads > 1 else 1

        for epoch_index in range(self.epochs):
            if epoch_index:
                state_snapshot[...] = state
                if self.callbacks:
                    snapshot[...] = net.params
            step_before = self.optimizer.step_count
            lr = self.optimizer.lr
            config = self.optimizer.config()
            config["threads"] = update_threads
            started = time.perf_counter()
            status, loss_sum, weight_sum, step, batches, correct = _epoch.train_epoch(
                net._layout,
                workspace,
                net.params,
                grad,
                X,
                Y,
                weight,
                order,
                rng,
                self.shuffle,
                batch,
                self._loss_code,
                self.l2,
                self.l2_per_sample,
                config,
                *self.optimizer.buffers(),
                self.optimizer.step_count,
                check_every,
                X_batch,
                Y_batch,
                w_batch,
            )
            seconds = time.perf_counter() - started
            self.optimizer.step_count = step
            done = min(batches * batch, n)
            self.samples_seen += done
            loss = loss_sum / weight_sum if weight_sum > 0 else math.nan
            accuracy = None
            if self.loss in CLASSIFICATION_LOSSES and weight_sum > 0:
                accuracy = correct / weight_sum

            # An update can overflow the parameters even though the loss it
            # followed was finite: that epoch diverged too.
            diverged = status == _epoch.DIVERGED or not math.isfinite(loss)
            if not diverged:
                diverged = not _epoch.copy_if_finite(net.params, spare)
            if diverged:
                net.params[...] = snapshot
                state[...] = state_snapshot
                self.optimizer.step_count = step_before
                raise TrainingDivergedError(
                    "the training loss became NaN or infinite in epoch "
                    f"{self.epochs_done + 1}; the parameters of the last finite epoch "
                    "were restored. Try a lower learning rate (optimizer lr) or scale "
                    "the inputs (for example to zero mean and unit variance)."
                )
            if status == _epoch.INTERRUPTED:
                if batches:
                    self._record(
                        self.epochs_done + 1, loss, accuracy, None, lr, seconds
                    )
                # The parameters stay those of the last completed batch, even with
                # early stopping's restore_best: Ctrl-C keeps what was trained.
                self.history.interrupted = True
                raise KeyboardInterrupt(
                    f"training stopped by Ctrl-C during epoch {self.epochs_done + 1} "
                    f"after {batches} batches"
                )

            snapshot, spare = spare, snapshot
            self.epochs_done += 1
            record = self._record(
                self.epochs_done, loss, accuracy, validation, lr, seconds
            )
            if self._after_epoch(record, progress, tracker):
                self.history.stopped_early = tracker.stopped
                break
        self.history.best_epoch = tracker.best_epoch
        tracker.finish()

    def _fit_lbfgs(self, X, Y, weight, validation, progress):
        from scipy.optimize import minimize

        net = self.network
        opt = self.optimizer
        n = X.shape[0]
        workspace = _backprop.Workspace(net._layout, net.dtype, n)
        grad = np.empty_like(net.params)
        tracker = _BestTracker(self.early_stopping, net)
        accepted = net.params.copy()
        total_weight = weight.sum() if weight.size else n
        l2 = self.l2 / total_weight if self.l2_per_sample else self.l2
        evaluated = np.empty_like(net.params)

        def loss_and_grad(theta):
            net.params[...] = theta
            evaluated[...] = net.params
            value = _backprop.loss_and_gradient(
                net._layout,
                net.params,
                X,
                Y,
                weight,
                self._loss_code,
                l2,
                grad,
                workspace,
            )
            return value, grad.astype(np.float64)

        started = [time.perf_counter()]
        diverged = [False]

        def after_iteration(intermediate_result):
            loss = float(intermediate_result.fun)
            if not math.isfinite(loss):
                diverged[0] = True
                raise StopIteration
            theta = intermediate_result.x
            accepted[...] = theta
            net.params[...] = theta
            self.epochs_done += 1
            self.samples_seen += n
            record = self._record(
                self.epochs_done,
                loss,
                None,
                validation,
                opt.lr,
                time.perf_counter() - started[0],
            )
            if self.loss in CLASSIFICATION_LOSSES:
                # The line search normally ends on the accepted point, whose
                # outputs are then still in the workspace.
                if not np.array_equal(evaluated, net.params):
                    loss_and_grad(net.params)
                correct = _backprop.workspace_correct(
                    workspace, self._loss_code, Y, weight
                )
                record["accuracy"] = correct / total_weight
            started[0] = time.perf_counter()
            if self._after_epoch(record, progress, tracker):
                self.history.stopped_early = tracker.stopped
                raise StopIteration

        try:
            result = minimize(
                loss_and_grad,
                net.params.astype(np.float64),
                jac=True,
                method="L-BFGS-B",
                callback=after_iteration,
                options=dict(
                    maxiter=self.epochs,
                    maxfun=opt.max_fun,
                    maxcor=opt.history_size,
                    gtol=opt.tol,
                    ftol=opt.ftol,
                ),
            )
        except KeyboardInterrupt:
            # A line search may have left a trial point: keep the last accepted one.
            net.params[...] = accepted
            self.history.interrupted = True
            raise
        net.params[...] = accepted
        if diverged[0] or not np.isfinite(accepted).all():
            raise TrainingDivergedError(
                "the L-BFGS loss became NaN or infinite. Try scaling the inputs "
                "(for example to zero mean and unit variance)."
            )
        self.lbfgs_result_ = result
        self.history.best_epoch = tracker.best_epoch
        tracker.finish()


class _BestTracker:
    """Early stopping's bookkeeping: the best monitored loss and its parameters."""

    def __init__(self, early_stopping, network):
        self.rule = early_stopping
        self.network = network
        self.best = math.inf
        self.best_epoch = None
        self.bad_epochs = 0
        self.stopped = False
        self.best_params = None
        if early_stopping is not None and early_stopping.restore_best:
            self.best_params = network.params.copy()

    def update(self, epoch, monitor):
        if self.rule is None:
            if monitor < self.best:
                self.best, self.best_epoch = monitor, epoch
            return False
        if monitor < self.best - self.rule.min_delta:
            self.best, self.best_epoch = monitor, epoch
            self.bad_epochs = 0
            if self.best_params is not None:
                self.best_params[...] = self.network.params
            return False
        self.bad_epochs += 1
        if self.bad_epochs > self.rule.patience:
            self.stopped = True
            logger.info(
                "early stopping after epoch %d (best epoch %s)", epoch, self.best_epoch
            )
            return True
        return False

    def finish(self):
        """Put back the best parameters when early stopping asks for it."""
        if self.best_params is not None and self.best_epoch is not None:
            self.network.params[...] = self.best_params
