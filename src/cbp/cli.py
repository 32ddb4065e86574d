"""The ``cbp`` command line: train, evaluate, predict, inspect, and a demo.

Run ``cbp --help`` or ``cbp COMMAND --help`` for the options. Data files are CSV
with a header row, ``.npy`` (a 2-D array; ``--target`` is a column index) or
``.npz`` (features in the array ``X``; ``--target`` names the target array,
``y`` by default). Bad input ends the command with one message on standard
error and exit status 2; results go to standard output and training progress to
standard error.
"""

import argparse
import csv
import math
import os
import sys
import time
from dataclasses import dataclass

import numpy as np

from cbp.datasets import load_digits
from cbp.model_file import ModelFileError, load_network, save_network
from cbp.network import HIDDEN_ACTIVATIONS, LOSSES, Network
from cbp.optim import OPTIMIZERS, make_optimizer
from cbp.trainer import Trainer, TrainingDivergedError

# Exit statuses: 2 for bad input (as argparse uses), 1 for a failed training.
EXIT_BAD_INPUT = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130

# A numeric target with at most this many distinct integer values is taken for
# class labels when the task is "auto".
MAX_AUTO_CLASSES = 20

# The demo: the bundled digits, one hidden layer of tanh units, trained with
# Adam. The same settings are used by the parity benchmark against scikit-learn.
DEMO_HIDDEN = (128,)
DEMO_ACTIVATION = "tanh"
DEMO_EPOCHS = 30
DEMO_BATCH_SIZE = 32
DEMO_TEST_FRACTION = 0.25
DEMO_MODEL = "cbp-demo-model.npz"

# Probabilities are clipped before the logarithm so one confident mistake gives
# a large but finite log-loss, as scikit-learn's log_loss does.
LOG_LOSS_EPS = 1e-15


class CLIError(Exception):
    """Bad input to a command; its message is shown without a traceback."""


# -- reading data ----------------------------------------------------------------


@dataclass
class Table:
    """Features and (optionally) the raw target read from a data file."""

    path: str
    X: np.ndarray
    feature_names: list
    target: np.ndarray = None
    target_name: str = None
    # Where each row came from, for messages ("line 7" of a CSV, "row 6" else).
    row_labels: list = None

    def where(self, i):
        return self.row_labels[i] if self.row_labels else f"row {i}"


def _parse_number(cell):
    try:
        return float(cell)
    except ValueError:
        return None


def _read_csv(path, target, need_target):
    try:
        handle = open(path, newline="", encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise CLIError(f"{path}: not a UTF-8 text file") from None
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            if header is None:
                raise CLIError(f"{path}: the file is empty; expected a CSV header row")
            header = [name.strip() for name in header]
            rows, lines = [], []
            for row in reader:
                if not row or all(not cell.strip() for cell in row):
                    continue
                if len(row) != len(header):
                    raise CLIError(
                        f"{path}, line {reader.line_num}: {len(row)} fields, but the "
                        f"header has {len(header)}"
                    )
                rows.append(row)
                lines.append(f"line {reader.line_num}")
        except (csv.Error, UnicodeDecodeError) as error:
            raise CLIError(f"{path}: cannot be read as CSV ({error})") from None
    for i, name in enumerate(header):
        if not name:
            raise CLIError(f"{path}: column {i + 1} of the header has no name")
    duplicates = sorted({n for n in header if header.count(n) > 1})
    if duplicates:
        raise CLIError(f"{path}: duplicate column names {', '.join(duplicates)}")
    if not rows:
        raise CLIError(f"{path}: the header has no data rows below it")
    if target is not None and target not in header:
        if need_target:
            raise CLIError(
                f"{path}: no column named {target!r}; the columns are "
                f"{', '.join(header)}"
            )
        target = None
    feature_columns = [j for j, name in enumerate(header) if name != target]
    if not feature_columns:
        raise CLIError(f"{path}: no feature columns besides the target {target!r}")
    X = np.empty((len(rows), len(feature_columns)))
    for i, row in enumerate(rows):
        for k, j in enumerate(feature_columns):
            cell = row[j].strip()
            value = _parse_number(cell) if cell else None
            if value is None or not math.isfinite(value):
                problem = ("an empty cell" if not cell else
                           f"the non-numeric value {cell!r}" if value is None else
                           f"the value {cell!r}")
                raise CLIError(
                    f"{path}, {lines[i]}: {problem} in feature column "
                    f"{header[j]!r}; features must be finite numbers"
                )
            X[i, k] = value
    raw = None
    if target is not None:
        j = header.index(target)
        raw = np.array([row[j].strip() for row in rows], dtype=object)
        empty = [i for i, cell in enumerate(raw) if not cell]
        if empty:
            raise CLIError(
                f"{path}, {lines[empty[0]]}: empty cell in the target column {target!r}"
            )
    return Table(path, X, [header[j] for j in feature_columns], raw, target, lines)


def _numeric_2d(array, path, what):
    if array.dtype.kind not in "biuf":
        raise CLIError(f"{path}: {what} has dtype {array.dtype}; expected numbers")
    if array.ndim != 2:
        raise CLIError(
            f"{path}: {what} has shape {array.shape}; expected 2-D (samples, columns)"
        )
    if array.shape[0] == 0:
        raise CLIError(f"{path}: {what} has no rows")
    bad = np.argwhere(~np.isfinite(array))
    if bad.size:
        i, j = bad[0]
        raise CLIError(
            f"{path}: {what} has {array[i, j]} at row {i}, column {j}; expected finite "
            "numbers"
        )
    return array


def _read_npy(path, target, need_target, n_features=None):
    array = _numeric_2d(np.load(path, allow_pickle=False), path, "the array")
    d = array.shape[1]
    raw = None
    columns = list(range(d))
    if not need_target and d == n_features:
        # Exactly the model's features: the file has no target column.
        target = None
    if target is not None and not need_target:
        try:
            int(target)
        except ValueError:
            # A model trained on named columns: .npy data can only hold features.
            target = None
    if target is not None:
        try:
            index = int(target)
        except ValueError:
            raise CLIError(
                f"{path}: the target {target!r} must be a column index for .npy data"
            ) from None
        if not -d <= index < d:
            raise CLIError(
                f"{path}: target column {index} is out of range for {d} columns"
            )
        index %= d
        if need_target or d > 1:
            raw = array[:, index]
            columns.remove(index)
            target = str(index)
    if not columns:
        raise CLIError(f"{path}: no feature columns besides the target")
    return Table(path, array[:, columns].astype(np.float64),
                 [str(j) for j in columns], raw, target)


def _read_npz(path, target, need_target):
    with np.load(path, allow_pickle=False) as archive:
        names = archive.files
        if "X" not in names:
            raise CLIError(
                f"{path}: no array named 'X'; .npz data keeps its features in X "
                f"(found {', '.join(names) or 'no arrays'})"
            )
        X = _numeric_2d(archive["X"], path, "X").astype(np.float64)
        target = "y" if target is None else target
        raw = None
        if target in names:
            raw = archive[target]
            if raw.ndim != 1 or raw.shape[0] != X.shape[0]:
                raise CLIError(
                    f"{path}: target array {target!r} has shape {raw.shape}; expected "
                    f"({X.shape[0]},) to match X"
                )
            if raw.dtype.kind not in "biufU":
                raise CLIError(
                    f"{path}: target array {target!r} has dtype {raw.dtype}; expected "
                    "numbers or strings"
                )
        elif need_target:
            raise CLIError(
                f"{path}: no array named {target!r} for the target; found "
                f"{', '.join(names)}"
            )
    return Table(path, X, [f"X[{j}]" for j in range(X.shape[1])], raw,
                 target if raw is not None else None)


def read_table(path, target=None, need_target=True, n_features=None):
    """Read a data file into a :class:`Table`, or raise :class:`CLIError`.

    Parameters
    ----------
    path : str
        A CSV file with a header row, a ``.npy`` or a ``.npz`` file.
    target : str, optional
        The target column (CSV), column index (``.npy``) or array name (``.npz``).
    need_target : bool, default=True
        Whether a missing target is an error; otherwise the target is read when
        present and left out of the features.
    n_features : int, optional
        The model's number of features: a ``.npy`` file with exactly that many
        columns is taken to hold no target (when ``need_target`` is false).

    Returns
    -------
    Table
    """
    if not os.path.exists(path):
        raise CLIError(f"{path}: no such file")
    if os.path.isdir(path):
        raise CLIError(f"{path}: is a directory, expected a data file")
    if os.path.getsize(path) == 0:
        raise CLIError(f"{path}: the file is empty")
    suffix = os.path.splitext(path)[1].lower()
    try:
        if suffix == ".npy":
            return _read_npy(path, target, need_target, n_features)
        if suffix == ".npz":
            return _read_npz(path, target, need_target)
        return _read_csv(path, target, need_target)
    except CLIError:
        raise
    except (ValueError, OSError, EOFError) as error:
        raise CLIError(f"{path}: cannot be read ({error})") from None


# -- targets ---------------------------------------------------------------------


def _as_numbers(raw):
    """Return the target as floats, or None when some value is not a number."""
    if raw.dtype.kind in "biuf":
        return raw.astype(np.float64)
    values = np.empty(raw.shape[0])
    for i, cell in enumerate(raw):
        number = _parse_number(str(cell))
        if number is None:
            return None
        values[i] = number
    return values


def _label(value):
    """A class label as JSON keeps it: int for integral numbers, else as given."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def _normalised_labels(raw):
    numbers = _as_numbers(raw)
    if numbers is None:
        return [str(v) for v in raw]
    return [_label(v) for v in numbers]


def infer_task(raw):
    """Return ``"classification"`` or ``"regression"`` for a raw target column.

    Parameters
    ----------
    raw : ndarray
        The target's values as read (strings from a CSV).

    Returns
    -------
    str
        Classification when some value is not a number, or when every value is an
        integer and there are at most ``MAX_AUTO_CLASSES`` distinct ones.
    """
    numbers = _as_numbers(raw)
    if numbers is None:
        return "classification"
    if not np.isfinite(numbers).all():
        return "regression"
    integral = np.array_equal(numbers, np.round(numbers))
    if integral and len(np.unique(numbers)) <= MAX_AUTO_CLASSES:
        return "classification"
    return "regression"


def _regression_target(table):
    numbers = _as_numbers(table.target)
    if numbers is None:
        for i, cell in enumerate(table.target):
            if _parse_number(str(cell)) is None:
                raise CLIError(
                    f"{table.path}, {table.where(i)}: the target {table.target_name!r} "
                    f"has the non-numeric value {cell!r}; a regression needs numbers "
                    "(or use --task classification)"
                )
    bad = np.flatnonzero(~np.isfinite(numbers))
    if bad.size:
        i = bad[0]
        raise CLIError(
            f"{table.path}, {table.where(i)}: the target {table.target_name!r} is "
            f"{table.target[i]!r}; expected a finite number"
        )
    return numbers


def _class_indices(table, classes):
    index = {label: k for k, label in enumerate(classes)}
    labels = _normalised_labels(table.target)
    if classes and all(isinstance(c, str) for c in classes):
        labels = [str(v) for v in table.target]
    out = np.empty(len(labels), dtype=np.int64)
    for i, label in enumerate(labels):
        if label not in index:
            shown = ", ".join(repr(c) for c in classes[:10])
            raise CLIError(
                f"{table.path}, {table.where(i)}: the label {label!r} in "
                f"{table.target_name!r} is not one of the model's classes ({shown}"
                f"{', ...' if len(classes) > 10 else ''})"
            )
        out[i] = index[label]
    return out


# -- models ----------------------------------------------------------------------


def _load_model(path):
    if not os.path.exists(path):
        raise CLIError(f"{path}: no such model file")
    model = load_network(path)
    meta = model.metadata
    net = model.network
    task = meta.get("task")
    if task not in ("classification", "regression"):
        task = "classification" if net.output == "softmax" else "regression"
    classes = meta.get("classes")
    if task == "classification":
        if not isinstance(classes, list) or len(classes) != net.n_outputs:
            classes = list(range(net.n_outputs))
    return model, task, classes


def _scaling(meta, key, size, path):
    scaling = meta.get(key)
    if scaling is None:
        return None
    try:
        mean = np.asarray(scaling["mean"], dtype=np.float64)
        scale = np.asarray(scaling["scale"], dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        raise CLIError(f"{path}: the model's {key} metadata is malformed") from None
    if mean.shape != (size,) or scale.shape != (size,) or not (scale > 0).all():
        raise CLIError(
            f"{path}: the model's {key} holds {mean.shape} means and {scale.shape} "
            f"scales; expected {size} of each, scales > 0"
        )
    return mean, scale


def _model_inputs(model, table, model_path):
    """Return the features of ``table`` ordered and scaled as the model expects."""
    net = model.network
    meta = model.metadata
    names = meta.get("feature_names")
    X = table.X
    if isinstance(names, list) and len(names) == net.n_inputs:
        missing = [n for n in names if n not in table.feature_names]
        extra = [n for n in table.feature_names if n not in names]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing column(s) {', '.join(map(repr, missing))}")
            if extra:
                parts.append(f"unexpected column(s) {', '.join(map(repr, extra))}")
            raise CLIError(
                f"{table.path}: does not match the columns the model {model_path} was "
                f"trained on: {'; '.join(parts)}"
            )
        order = [table.feature_names.index(n) for n in names]
        X = X[:, order]
    elif X.shape[1] != net.n_inputs:
        raise CLIError(
            f"{table.path}: has {X.shape[1]} feature columns; the model {model_path} "
            f"expects {net.n_inputs}"
        )
    scaling = _scaling(meta, "scaling", net.n_inputs, model_path)
    if scaling is not None:
        X = (X - scaling[0]) / scaling[1]
    return X


def _standardise(X):
    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    # A constant column carries no information: centre it, do not divide by 0.
    scale[scale == 0] = 1.0
    return mean, scale


def _stratified_split(y, test_fraction, seed):
    """Return (train, test) indices with each class split in the same proportion."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == label))
        n_test = int(round(len(members) * test_fraction))
        test.append(members[:n_test])
        train.append(members[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def demo_data(seed=0):
    """Return the demo's split of the bundled digits, standardised on the training part.

    A stratified split of ``DEMO_TEST_FRACTION`` of the images for testing,
    drawn with ``seed``.

    Parameters
    ----------
    seed : int, default=0

    Returns
    -------
    X_train, X_test : ndarray of shape (n, 64), float64
    y_train, y_test : ndarray of shape (n,), int64
    scaling : (ndarray, ndarray)
        The training means and scales that were applied.
    """
    X, y = load_digits()
    train, test = _stratified_split(y, DEMO_TEST_FRACTION, seed)
    mean, scale = _standardise(X[train])
    return ((X[train] - mean) / scale, (X[test] - mean) / scale, y[train], y[test],
            (mean, scale))


def train_demo_network(data, seed=0, epochs=DEMO_EPOCHS, verbose=0):
    """Train the demo's network on ``data`` (from :func:`demo_data`).

    Parameters
    ----------
    data : tuple
        What :func:`demo_data` returned.
    seed : int, default=0
        Seed of the initial weights and of the shuffling.
    epochs : int, default=DEMO_EPOCHS
    verbose : int, default=0
        Passed to :class:`~cbp.Trainer`.

    Returns
    -------
    network : Network
    trainer : Trainer
    seconds : float
        Wall time of the fit.
    """
    X_train, y_train = data[0], data[2]
    layers = [X_train.shape[1], *DEMO_HIDDEN, 10]
    net = Network(layers, activation=DEMO_ACTIVATION, output="softmax", seed=seed)
    trainer = Trainer(net, "cross_entropy", "adam", batch_size=DEMO_BATCH_SIZE,
                      epochs=epochs, seed=seed, verbose=verbose)
    _, seconds = _fit(trainer, X_train, y_train)
    return net, trainer, seconds


def _summary(history, seconds, n_samples, restored=False):
    last = history.epochs[-1] if history.epochs else {}
    if restored and history.best_epoch is not None:
        # The saved parameters are the best epoch's: report that epoch.
        last = history.epochs[history.best_epoch - 1]
    epochs = len(history.epochs)
    return {
        "epochs": epochs,
        "seconds": seconds,
        "samples_per_second": epochs * n_samples / seconds if seconds > 0 else None,
        "n_samples": n_samples,
        "loss": last.get("loss"),
        "accuracy": last.get("accuracy"),
        "val_loss": last.get("val_loss"),
        "val_accuracy": last.get("val_accuracy"),
        "stopped_early": history.stopped_early,
        "best_epoch": history.best_epoch,
    }


def _fit(trainer, X, Y):
    started = time.perf_counter()
    history = trainer.fit(X, Y)
    return history, time.perf_counter() - started


def _metrics(task, outputs, Y):
    if task == "classification":
        predicted = outputs.argmax(axis=1)
        proba = np.clip(outputs[np.arange(len(Y)), Y], LOG_LOSS_EPS, 1.0)
        return {"accuracy": float(np.mean(predicted == Y)),
                "log_loss": float(-np.mean(np.log(proba)))}
    residual = Y - outputs[:, 0]
    total = np.sum((Y - Y.mean()) ** 2)
    r2 = 1.0 - np.sum(residual ** 2) / total if total > 0 else float("nan")
    return {"r2": float(r2), "rmse": float(np.sqrt(np.mean(residual ** 2))),
            "mae": float(np.mean(np.abs(residual)))}


def _predict(model, task, X):
    outputs = model.network.predict(X).astype(np.float64)
    if task == "regression":
        target_scaling = _scaling(model.metadata, "target_scaling", 1, model.path)
        if target_scaling is not None:
            outputs = outputs * target_scaling[1] + target_scaling[0]
    return outputs


# -- commands --------------------------------------------------------------------


def _check_plot_support(path):
    if path is None:
        return
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise CLIError(
            "--plot needs matplotlib; install it with 'pip install \"cbp[plot]\"'"
        ) from None
    _check_output_path(path, "--plot")
    suffix = os.path.splitext(path)[1].lstrip(".").lower()
    supported = plt.gcf().canvas.get_supported_filetypes()
    plt.close("all")
    if suffix not in supported:
        raise CLIError(
            f"--plot {path}: unknown image format {suffix!r}; expected one of "
            f"{', '.join(sorted(supported))}"
        )


def _check_output_path(path, flag):
    """Refuse, before any training, an output path that cannot be written."""
    target = os.path.realpath(path)
    directory = os.path.dirname(target)
    if not os.path.isdir(directory):
        raise CLIError(f"{flag} {path}: the directory {directory} does not exist")
    if os.path.lexists(target) and not os.path.isfile(target):
        raise CLIError(f"{flag} {path}: exists and is not a regular file")
    if not os.access(directory, os.W_OK):
        raise CLIError(f"{flag} {path}: the directory {directory} is not writable")


def _print_fit(summary, out, extra=()):
    rate = summary["samples_per_second"]
    print(f"trained {summary['epochs']} epochs in {summary['seconds']:.2f} s"
          + (f" ({rate:,.0f} samples/s)" if rate else ""))
    for line in extra:
        print(line)
    print(f"model saved to {out}")


def cmd_demo(args):
    """Train on the bundled digits; print test accuracy and speed; save the model."""
    data = demo_data(args.seed)
    X_train, X_test, y_train, y_test, (mean, scale) = data
    layers = [X_train.shape[1], *DEMO_HIDDEN, 10]
    print(f"digits: {len(y_train)} training and {len(y_test)} test images of 8x8 "
          "pixels (UCI optical digits, CC BY 4.0)")
    print(f"network {'-'.join(map(str, layers))} ({DEMO_ACTIVATION}, softmax), adam, "
          f"batch {DEMO_BATCH_SIZE}, {args.epochs} epochs")
    sys.stdout.flush()
    net, trainer, seconds = train_demo_network(data, args.seed, args.epochs,
                                               verbose=0 if args.quiet else 1)
    history = trainer.history
    right = int(np.sum(net.predict(X_test).argmax(axis=1) == y_test))
    summary = _summary(history, seconds, len(y_train))
    summary["test_accuracy"] = right / len(y_test)
    metadata = {
        "task": "classification",
        "target": "digit",
        "classes": list(range(10)),
        "feature_names": [f"pixel_{i}" for i in range(X_train.shape[1])],
        "scaling": {"mean": mean, "scale": scale},
        "data": "bundled digits (cbp.datasets.load_digits)",
        "training": summary,
        "history": history.to_dict(),
    }
    save_network(args.out, net, trainer=trainer, metadata=metadata)
    _print_fit(summary, args.out, [
        f"test accuracy {right / len(y_test):.2%} ({right}/{len(y_test)})"
    ])
    return 0


def cmd_train(args):
    """Train a network on a data file and save it."""
    _check_output_path(args.out, "--out")
    _check_plot_support(args.plot)
    table = read_table(args.data, args.target)
    task = args.task
    if task == "auto":
        task = infer_task(table.target)
    meta = {"task": task, "target": table.target_name,
            "feature_names": table.feature_names,
            "data": os.path.basename(args.data)}
    if task == "classification":
        labels = _normalised_labels(table.target)
        classes = sorted(set(labels), key=lambda v: (isinstance(v, str), v))
        if len(classes) < 2:
            raise CLIError(
                f"{args.data}: the target {table.target_name!r} has a single class "
                f"({classes[0]!r}); classification needs at least 2"
            )
        meta["classes"] = classes
        Y = _class_indices(table, classes)
        n_outputs, output = len(classes), "softmax"
        loss = args.loss or "cross_entropy"
        if loss != "cross_entropy":
            raise CLIError(
                f"--loss {loss} does not fit a classification target; the command "
                "line trains classifiers with cross_entropy (use --task regression "
                "for a numeric target)"
            )
    else:
        numbers = _regression_target(table)
        # Training on a unit-scale target keeps default learning rates sensible
        # whatever the target's units; predictions are scaled back.
        target_mean = float(numbers.mean())
        target_scale = float(numbers.std()) or 1.0
        meta["target_scaling"] = {"mean": [target_mean], "scale": [target_scale]}
        Y = ((numbers - target_mean) / target_scale).reshape(-1, 1)
        n_outputs, output = 1, "identity"
        loss = args.loss or "mse"
        if loss != "mse":
            raise CLIError(
                f"--loss {loss} does not fit a regression target; the command line "
                "trains regressors with mse (use --task classification for labels)"
            )
    X = table.X
    if args.standardize:
        mean, scale = _standardise(X)
        meta["scaling"] = {"mean": mean, "scale": scale}
        X = (X - mean) / scale
    layers = [X.shape[1], *args.layers, n_outputs]
    net = Network(layers, activation=args.activation, output=output, dtype=args.dtype,
                  seed=args.seed)
    trainer = Trainer(
        net, loss, make_optimizer(args.optimizer, args.lr),
        batch_size=args.batch_size, epochs=args.epochs, seed=args.seed,
        validation_split=args.validation_split, early_stopping=args.early_stopping,
        n_threads=args.threads, verbose=0 if args.quiet else 1,
    )
    history, seconds = _fit(trainer, X, Y)
    stopping = trainer.early_stopping
    restored = stopping is not None and stopping.restore_best
    summary = _summary(history, seconds, X.shape[0], restored)
    meta["training"] = summary
    meta["history"] = history.to_dict()
    # After early stopping put back an earlier epoch's parameters, the trainer's
    # state (optimizer moments, counters) belongs to a later epoch: resuming
    # from it would mix the two, so it is not saved.
    resumable = not (restored and history.best_epoch != len(history.epochs))
    save_network(args.out, net, trainer=trainer if resumable else None, metadata=meta)
    extra = [f"task {task}, {X.shape[0]} samples, {X.shape[1]} features, "
             f"network {'-'.join(map(str, layers))}"]
    if restored and history.best_epoch is not None:
        extra.append(f"kept epoch {history.best_epoch}, the best on the monitored loss")
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        if summary[key] is not None:
            extra.append(f"final {key.replace('_', ' ')} {summary[key]:.4g}")
    _print_fit(summary, args.out, extra)
    if args.plot is not None:
        history.plot(args.plot)
        print(f"learning curves saved to {args.plot}")
    return 0


def cmd_evaluate(args):
    """Print the model's metrics on a labelled data file."""
    model, task, classes = _load_model(args.model)
    target = args.target or model.metadata.get("target")
    if target is None:
        raise CLIError(
            f"{args.model}: the model does not name its target; give --target"
        )
    table = read_table(args.data, target)
    X = _model_inputs(model, table, args.model)
    outputs = _predict(model, task, X)
    if task == "classification":
        Y = _class_indices(table, classes)
    else:
        Y = _regression_target(table)
    metrics = _metrics(task, outputs, Y)
    print(f"{len(Y)} samples from {args.data}")
    for key, value in metrics.items():
        print(f"{key:<9} {value:.6g}")
    return 0


def cmd_predict(args):
    """Write the model's predictions for a data file as CSV."""
    model, task, classes = _load_model(args.model)
    table = read_table(args.data, model.metadata.get("target"), need_target=False,
                       n_features=model.network.n_inputs)
    X = _model_inputs(model, table, args.model)
    outputs = _predict(model, task, X)
    header = ["prediction"]
    if task == "classification":
        predictions = [classes[k] for k in outputs.argmax(axis=1)]
        if args.proba:
            header += [f"proba_{c}" for c in classes]
    else:
        if args.proba:
            raise CLIError(f"{args.model}: --proba needs a classification model")
        predictions = outputs[:, 0].tolist()
    handle = sys.stdout if args.out == "-" else None
    try:
        if handle is None:
            handle = open(args.out, "w", newline="", encoding="utf-8")
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        for i, prediction in enumerate(predictions):
            row = [prediction]
            if args.proba:
                row += [repr(float(p)) for p in outputs[i]]
            writer.writerow(row)
    finally:
        if handle is not None and handle is not sys.stdout:
            handle.close()
    if args.out != "-":
        print(f"{len(predictions)} predictions written to {args.out}")
    return 0


def cmd_info(args):
    """Describe a model file."""
    model, task, classes = _load_model(args.model)
    net = model.network
    meta = model.metadata
    print(f"model file     {args.model} (format version {model.format_version})")
    print(f"layers         {'-'.join(map(str, net.layer_sizes))}")
    print(f"activations    {', '.join(net.activations) or 'none'}; output {net.output}")
    print(f"parameters     {net.n_params:,}")
    print(f"dtype          {net.dtype.name}")
    print(f"task           {task}")
    if meta.get("target") is not None:
        print(f"target         {meta['target']}")
    if task == "classification":
        print(f"classes        {', '.join(map(str, classes))}")
    print(f"scaled inputs  {'yes' if meta.get('scaling') else 'no'}")
    if model.training:
        t = model.training
        print(f"trained with   {t.get('optimizer')}, loss {t.get('loss')}, batch "
              f"{t.get('batch_size')}, seed {t.get('seed')}")
    summary = meta.get("training")
    if isinstance(summary, dict):
        parts = [f"{summary.get('epochs')} epochs"]
        if isinstance(summary.get("seconds"), (int, float)):
            parts.append(f"{summary['seconds']:.2f} s")
        for key in ("loss", "accuracy", "val_loss", "val_accuracy", "test_accuracy"):
            if isinstance(summary.get(key), (int, float)):
                parts.append(f"{key.replace('_', ' ')} {summary[key]:.4g}")
        print(f"training       {', '.join(parts)}")
    if model.trainer_state is not None:
        print(f"resumable      yes ({model.trainer_state['epochs_done']} epochs, "
              f"{model.trainer_state['optimizer']['step_count']} optimizer steps)")
    return 0


# -- parsing ---------------------------------------------------------------------


def _layers(text):
    text = text.strip()
    if not text:
        return ()
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of layer sizes such as 128,64"
        ) from None
    if any(size < 1 for size in sizes):
        raise argparse.ArgumentTypeError(f"{text!r}: layer sizes must be >= 1")
    return sizes


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 1")
    return value


def _fraction(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be in [0, 1)")
    return value


def build_parser():
    """Return the argument parser of the ``cbp`` command.

    Returns
    -------
    argparse.ArgumentParser
    """
    from cbp import __version__

    parser = argparse.ArgumentParser(
        prog="cbp",
        description="Train multilayer perceptrons by backpropagation at C speed.",
    )
    parser.add_argument("--version", action="version", version=f"cbp {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = commands.add_parser("demo", help="train on the bundled handwritten digits")
    demo.add_argument("--epochs", type=_positive_int, default=DEMO_EPOCHS)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--out", default=DEMO_MODEL, help="where to save the model")
    demo.add_argument("--quiet", action="store_true", help="no progress output")
    demo.set_defaults(run=cmd_demo)

    train = commands.add_parser("train", help="train a network on a data file")
    train.add_argument("data", metavar="DATA", help="CSV with a header, .npy or .npz")
    train.add_argument("--target", required=True, metavar="COLUMN",
                       help="target column name (CSV), index (.npy) or array (.npz)")
    train.add_argument("--out", required=True, metavar="MODEL")
    train.add_argument("--layers", type=_layers, default=(64,),
                       help="hidden layer sizes, e.g. 128,64 (default 64)")
    train.add_argument("--activation", choices=HIDDEN_ACTIVATIONS, default="relu")
    train.add_argument("--task", choices=("auto", "classification", "regression"),
                       default="auto")
    train.add_argument("--loss", choices=LOSSES, default=None,
                       help="default: cross_entropy (classification) or mse")
    train.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="adam")
    train.add_argument("--lr", type=float, default=None,
                       help="learning rate (default: the optimizer's)")
    train.add_argument("--epochs", type=_positive_int, default=50)
    train.add_argument("--batch-size", type=_positive_int, default=32)
    train.add_argument("--validation-split", type=_fraction, default=0.0)
    train.add_argument("--early-stopping", type=int, default=None, metavar="PATIENCE")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--threads", type=_positive_int, default=None)
    train.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    train.add_argument("--no-standardize", dest="standardize", action="store_false",
                       help="use the features as they are")
    train.add_argument("--plot", default=None, metavar="PATH",
                       help="save the learning curves (needs matplotlib)")
    train.add_argument("--quiet", action="store_true", help="no progress output")
    train.set_defaults(run=cmd_train)

    evaluate = commands.add_parser("evaluate", help="score a model on labelled data")
    evaluate.add_argument("model", metavar="MODEL")
    evaluate.add_argument("data", metavar="DATA")
    evaluate.add_argument("--target", metavar="COLUMN", default=None,
                          help="default: the target the model was trained on")
    evaluate.set_defaults(run=cmd_evaluate)

    predict = commands.add_parser("predict", help="write predictions as CSV")
    predict.add_argument("model", metavar="MODEL")
    predict.add_argument("data", metavar="DATA")
    predict.add_argument("--out", default="-", help="CSV file (default: stdout)")
    predict.add_argument("--proba", action="store_true",
                         help="add one probability column per class")
    predict.set_defaults(run=cmd_predict)

    info = commands.add_parser("info", help="describe a model file")
    info.add_argument("model", metavar="MODEL")
    info.set_defaults(run=cmd_info)
    return parser


def main(argv=None):
    """Run the ``cbp`` command line.

    Parameters
    ----------
    argv : list of str, optional
        The arguments after the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status: 0 on success, 2 for bad input, 1 when training
        diverged, 130 on Ctrl-C.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else EXIT_BAD_INPUT
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_BAD_INPUT
    try:
        return args.run(args)
    except (CLIError, ModelFileError, ImportError) as error:
        print(f"cbp {args.command}: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except TrainingDivergedError as error:
        print(f"cbp {args.command}: training failed: {error}", file=sys.stderr)
        return EXIT_FAILED
    except BrokenPipeError:
        # The reader of our output went away (``cbp predict ... | head``): not an
        # error of the input. Point stdout at devnull so the final flush is quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
    except OSError as error:
        name = f"{error.filename}: " if error.filename else ""
        print(f"cbp {args.command}: error: {name}{error.strerror or error}",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    except ValueError as error:
        # Settings the library refused (a loss that does not fit the task, a
        # learning rate out of range): the message names the argument.
        print(f"cbp {args.command}: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"cbp {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
