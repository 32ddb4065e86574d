"""The trainer: schedules, early stopping, weights, divergence, history, arguments.

Expected values are computed here from the documented formulas or from
:meth:`cbp.Network.gradients` followed by a plain gradient-descent step, so each
test checks the trainer's bookkeeping rather than repeating it.
"""

import json
import logging
import math

import numpy as np
import pytest

import cbp
from cbp.optim import LBFGS, SGD, Adam, Rprop
from cbp.schedules import (
    Adaptive,
    CosineAnnealingLR,
    ExponentialLR,
    InvScaling,
    ReduceLROnPlateau,
    StepLR,
)

RTOL = 1e-12


# -- data and helpers -------------------------------------------------------------


def regression_data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    Y = np.column_stack([np.sin(X[:, 0]) + 0.5 * X[:, 1], X[:, 2] * X[:, 0]])
    return X, Y


def classification_data(counts=(10, 4, 2), seed=0):
    """Three Gaussian blobs with ``counts`` points each, labels as integers."""
    rng = np.random.default_rng(seed)
    centres = np.array([[2.0, 0.0], [-1.0, 1.5], [-1.0, -1.5]])
    labels = np.repeat(np.arange(len(counts)), counts)
    X = centres[labels] + 0.8 * rng.normal(size=(labels.size, 2))
    return X, labels


def regression_network(seed=1):
    return cbp.Network([3, 6, 2], activation="tanh", seed=seed)


def classifier_network(seed=1):
    return cbp.Network([2, 6, 3], activation="tanh", output="softmax", seed=seed)


def flat_gradient(net, X, Y, loss="mse", l2=0.0):
    value, grad_w, grad_b = net.gradients(X, Y, loss, l2=l2)
    pieces = [np.concatenate([W.ravel(), b]) for W, b in zip(grad_w, grad_b)]
    return value, np.concatenate(pieces)


def relative_error(actual, expected):
    return np.max(np.abs(actual - expected)) / np.max(np.abs(expected))


class ParamsRecorder:
    """A callback keeping each epoch's end-of-epoch parameters."""

    def __init__(self):
        self.params = {}

    def __call__(self, trainer, record):
        self.params[record["epoch"]] = trainer.network.params.copy()


def fit(net, X, Y, **kwargs):
    kwargs.setdefault("verbose", 0)
    loss = kwargs.pop("loss", "mse")
    fit_args = {k: kwargs.pop(k) for k in ("sample_weight", "class_weight")
                if k in kwargs}
    trainer = cbp.Trainer(net, loss, **kwargs)
    history = trainer.fit(X, Y, **fit_args)
    return trainer, history


# -- learning-rate schedules -------------------------------------------------------


BASE_LR = 0.05
N_EPOCHS = 6


@pytest.mark.parametrize("schedule, expected", [
    (None, lambda i, n: BASE_LR),
    (StepLR(step_size=2, gamma=0.5), lambda i, n: BASE_LR * 0.5 ** (i // 2)),
    (ExponentialLR(gamma=0.7), lambda i, n: BASE_LR * 0.7**i),
    (CosineAnnealingLR(T_max=4, eta_min=0.01),
     lambda i, n: 0.01 + (BASE_LR - 0.01) * (1 + math.cos(math.pi * min(i, 4) / 4))
     / 2),
    ("cosine",
     lambda i, n: BASE_LR * (1 + math.cos(math.pi * i / N_EPOCHS)) / 2),
    (InvScaling(power_t=0.3), lambda i, n: BASE_LR / (i * n + 1) ** 0.3),
], ids=["constant", "step", "exponential", "cosine", "cosine-by-name", "invscaling"])
def test_lr_in_history_follows_schedule(schedule, expected):
    X, Y = regression_data()
    n = X.shape[0]
    _, history = fit(regression_network(), X, Y, optimizer=SGD(lr=BASE_LR),
                     batch_size=8, epochs=N_EPOCHS, lr_schedule=schedule, seed=0)
    want = [expected(i, n) for i in range(N_EPOCHS)]
    np.testing.assert_allclose(history["lr"], want, rtol=1e-14)


# With a step this small the loss moves by far less than min_delta or tol, so
# every epoch after the first counts as a stall.
STALL_LR = 1e-9


@pytest.mark.parametrize("schedule, factor", [
    (ReduceLROnPlateau(factor=0.5, patience=1, min_delta=1e-4), 0.5),
    (Adaptive(tol=1e-4, patience=1), 0.2),
], ids=["plateau", "adaptive"])
def test_schedule_reduces_after_stalls(schedule, factor):
    X, Y = regression_data()
    _, history = fit(regression_network(), X, Y, optimizer=SGD(lr=STALL_LR),
                     batch_size=24, epochs=N_EPOCHS, lr_schedule=schedule)
    # Epoch 1 sets the best loss; epochs 2 and 3 stall, which exceeds patience 1,
    # so epoch 4 runs at the reduced rate; epochs 4 and 5 stall again.
    want = STALL_LR * np.array([1, 1, 1, factor, factor, factor**2])
    np.testing.assert_allclose(history["lr"], want, rtol=1e-14)


@pytest.mark.parametrize("schedule", [
    ReduceLROnPlateau(factor=0.5, patience=0, min_delta=1e-6),
    Adaptive(tol=1e-6, patience=0),
], ids=["plateau", "adaptive"])
def test_schedule_keeps_lr_while_improving(schedule):
    X, Y = regression_data()
    _, history = fit(regression_network(), X, Y, optimizer=SGD(lr=0.05),
                     batch_size=24, epochs=N_EPOCHS, lr_schedule=schedule)
    losses = np.array(history["loss"])
    assert np.all(np.diff(losses) < -1e-5), "the loss should improve every epoch"
    assert history["lr"] == [0.05] * N_EPOCHS


# -- early stopping ----------------------------------------------------------------


def overshooting_problem():
    """Training drives the output from 1 towards 0; validation wants 0.5.

    The validation loss therefore falls, passes its minimum and rises again, so
    early stopping fires after a known best epoch.
    """
    rng = np.random.default_rng(1)
    X, Y = rng.normal(size=(20, 2)), np.zeros((20, 1))
    X_val, Y_val = rng.normal(size=(10, 2)), np.full((10, 1), 0.5)
    net = cbp.Network([2, 3, 1], activation="tanh", seed=0)
    for W in net.weights:
        W *= 0.1
    net.biases[-1][:] = 1.0
    return net, X, Y, X_val, Y_val


def test_early_stopping_restores_best_with_validation_data():
    net, X, Y, X_val, Y_val = overshooting_problem()
    recorder = ParamsRecorder()
    val_losses = {}

    def measure(trainer, record):
        val_losses[record["epoch"]] = trainer.network.loss(X_val, Y_val, "mse")

    _, history = fit(net, X, Y, optimizer=SGD(lr=0.2), batch_size=20, epochs=30,
                     shuffle=False, validation_data=(X_val, Y_val),
                     early_stopping=cbp.EarlyStopping(patience=2),
                     callbacks=[recorder, measure])
    assert history.stopped_early
    assert len(history) < 30
    best = int(np.argmin(history["val_loss"])) + 1
    assert history.best_epoch == best
    assert best < len(history)
    # Early stopping watched the validation loss of the end-of-epoch parameters.
    np.testing.assert_allclose(history["val_loss"],
                               [val_losses[e] for e in history["epoch"]], rtol=RTOL)
    np.testing.assert_array_equal(net.params, recorder.params[best])
    assert not np.array_equal(net.params, recorder.params[len(history)])


def test_early_stopping_without_restore_keeps_last():
    net, X, Y, X_val, Y_val = overshooting_problem()
    recorder = ParamsRecorder()
    _, history = fit(net, X, Y, optimizer=SGD(lr=0.2), batch_size=20, epochs=30,
                     shuffle=False, validation_data=(X_val, Y_val),
                     early_stopping=cbp.EarlyStopping(patience=2, restore_best=False),
                     callbacks=[recorder])
    assert history.stopped_early
    np.testing.assert_array_equal(net.params, recorder.params[len(history)])


def test_early_stopping_restores_best_with_validation_split():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(40, 3))
    Y = np.sin(3 * X[:, :1]) + 0.5 * rng.normal(size=(40, 1))
    net = cbp.Network([3, 32, 1], activation="tanh", seed=0)
    recorder = ParamsRecorder()
    _, history = fit(net, X, Y, optimizer=Adam(lr=0.05), batch_size=8, epochs=60,
                     seed=0, validation_split=0.25, early_stopping=3,
                     callbacks=[recorder])
    assert all(v is not None for v in history["val_loss"])
    assert history.stopped_early
    best = int(np.argmin(history["val_loss"])) + 1
    assert history.best_epoch == best < len(history)
    np.testing.assert_array_equal(net.params, recorder.params[best])


def test_validation_split_holds_out_samples():
    """Training sees only the remaining rows: full-batch losses show it."""
    X, Y = regression_data(n=20)
    net = regression_network()
    start = net.params.copy()
    _, history = fit(net, X, Y, optimizer=SGD(lr=1e-9), batch_size=15, epochs=1,
                     validation_split=0.25, seed=3)
    net.params[...] = start
    per_sample = 0.5 * ((net.forward(X) - Y) ** 2).sum(axis=1)
    # The recorded training loss is the mean over some 15 of the 20 rows and
    # the validation loss the mean over the other 5. The validation loss is
    # measured after the epoch's one update, which moves it by about 1e-9.
    total = per_sample.sum()
    train_mean, val_mean = history["loss"][0], history["val_loss"][0]
    assert math.isclose(15 * train_mean + 5 * val_mean, total, rel_tol=1e-7)
    assert not math.isclose(train_mean, per_sample.mean(), rel_tol=1e-6)


# -- sample and class weights ------------------------------------------------------


def test_weight_two_equals_duplicated_sample():
    X, Y = regression_data(n=12)
    weight = np.array([1, 2, 1, 1, 2, 2, 1, 1, 1, 2, 1, 1])
    net_w, net_d = regression_network(), regression_network()
    _, h_w = fit(net_w, X, Y, optimizer=SGD(lr=0.1), batch_size=12, epochs=5,
                 shuffle=False, sample_weight=weight.astype(float))
    X_d, Y_d = np.repeat(X, weight, axis=0), np.repeat(Y, weight, axis=0)
    _, h_d = fit(net_d, X_d, Y_d, optimizer=SGD(lr=0.1), batch_size=X_d.shape[0],
                 epochs=5, shuffle=False)
    assert not np.array_equal(net_w.params, regression_network().params)
    assert relative_error(net_w.params, net_d.params) <= RTOL
    np.testing.assert_allclose(h_w["loss"], h_d["loss"], rtol=RTOL)


def test_weight_zero_equals_removed_sample():
    X, Y = regression_data(n=12)
    weight = np.ones(12)
    weight[[2, 7]] = 0
    net_w, net_r = regression_network(), regression_network()
    fit(net_w, X, Y, optimizer=SGD(lr=0.1), batch_size=12, epochs=5, shuffle=False,
        sample_weight=weight)
    keep = weight > 0
    fit(net_r, X[keep], Y[keep], optimizer=SGD(lr=0.1), batch_size=10, epochs=5,
        shuffle=False)
    assert relative_error(net_w.params, net_r.params) <= RTOL


def test_class_weight_balanced_equals_its_sample_weights():
    X, labels = classification_data()
    counts = np.bincount(labels)
    per_class = labels.size / (counts.size * counts)
    nets = [classifier_network() for _ in range(3)]
    common = {"loss": "cross_entropy", "optimizer": SGD(lr=0.3), "batch_size": 16,
                  "epochs": 4, "shuffle": False}
    fit(nets[0], X, labels, class_weight="balanced", **common)
    common["optimizer"] = SGD(lr=0.3)
    fit(nets[1], X, labels, sample_weight=per_class[labels], **common)
    common["optimizer"] = SGD(lr=0.3)
    fit(nets[2], X, labels, **common)
    assert relative_error(nets[0].params, nets[1].params) <= RTOL
    assert relative_error(nets[0].params, nets[2].params) > 1e-3


def test_class_weight_dict_multiplies_sample_weight():
    X, labels = classification_data()
    sample_weight = np.linspace(0.5, 1.5, labels.size)
    net_c, net_s = classifier_network(), classifier_network()
    common = {"loss": "cross_entropy", "batch_size": 4, "epochs": 2, "shuffle": False}
    fit(net_c, X, labels, optimizer=SGD(lr=0.3), sample_weight=sample_weight,
        class_weight={1: 3.0, 2: 0.5}, **common)
    table = np.array([1.0, 3.0, 0.5])
    fit(net_s, X, labels, optimizer=SGD(lr=0.3),
        sample_weight=sample_weight * table[labels], **common)
    assert relative_error(net_c.params, net_s.params) <= RTOL


def test_class_weight_binary_cross_entropy():
    X, labels = classification_data(counts=(12, 4))
    Y = labels[:, None].astype(float)
    net_c, net_s = (cbp.Network([2, 4, 1], activation="tanh", output="sigmoid",
                                seed=2) for _ in range(2))
    common = {"loss": "binary_cross_entropy", "batch_size": 16, "epochs": 3,
              "shuffle": False}
    fit(net_c, X, Y, optimizer=SGD(lr=0.5), class_weight="balanced", **common)
    fit(net_s, X, Y, optimizer=SGD(lr=0.5),
        sample_weight=np.where(labels == 1, 16 / 8, 16 / 24), **common)
    assert relative_error(net_c.params, net_s.params) <= RTOL


def test_class_weight_errors():
    X, labels = classification_data()
    with pytest.raises(ValueError, match="class_weight"):
        fit(classifier_network(), X, labels, loss="cross_entropy",
            class_weight={7: 2.0})
    with pytest.raises(ValueError, match="class_weight"):
        fit(classifier_network(), X, labels, loss="cross_entropy",
            class_weight="even")
    X, Y = regression_data()
    with pytest.raises(ValueError, match="class_weight"):
        fit(regression_network(), X, Y, class_weight="balanced")


# -- divergence --------------------------------------------------------------------


def test_divergence_raises_and_restores_last_finite_epoch():
    X, Y = regression_data(n=16)
    net = cbp.Network([3, 4, 2], activation="tanh", seed=0)
    recorder = ParamsRecorder()
    trainer = cbp.Trainer(net, "mse", optimizer=SGD(lr=1e4), batch_size=4, epochs=50,
                          shuffle=False, callbacks=[recorder], verbose=0)
    with pytest.raises(cbp.TrainingDivergedError) as caught:
        trainer.fit(X, Y)
    message = str(caught.value)
    assert "learning rate" in message and "scale the inputs" in message
    assert isinstance(caught.value, FloatingPointError)
    last = max(recorder.params)
    assert last >= 1, "at least one epoch should finish before the loss overflows"
    assert len(trainer.history) == last
    assert all(math.isfinite(v) for v in trainer.history["loss"])
    assert np.isfinite(net.params).all()
    np.testing.assert_array_equal(net.params, recorder.params[last])
    assert trainer.optimizer.step_count == last * 4


def test_divergence_from_overflowing_update_leaves_finite_params():
    """Guards against an update that overflows the parameters after a finite loss.

    The batch loss is taken before the update, so such an epoch once counted as
    finite and the next epoch's divergence restored non-finite parameters.
    """
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(16, 3)), 100 + rng.normal(size=(16, 1))
    net = cbp.Network([3, 4, 1], activation="tanh", seed=0)
    start = net.params.copy()
    trainer = cbp.Trainer(net, "mse", optimizer=SGD(lr=1e307), batch_size=16,
                          epochs=5, shuffle=False, verbose=0)
    with pytest.raises(cbp.TrainingDivergedError):
        trainer.fit(X, Y)
    assert np.isfinite(net.params).all()
    # The first epoch's own update overflowed, so nothing was kept from it.
    np.testing.assert_array_equal(net.params, start)
    assert len(trainer.history) == 0
    assert trainer.optimizer.step_count == 0


def test_overflowing_update_in_a_later_epoch_restores_the_epoch_before():
    """The restore point moves on after every finite epoch, and only then."""
    rng = np.random.default_rng(1)
    X, Y = rng.normal(size=(16, 3)), 100 + rng.normal(size=(16, 1))
    net = cbp.Network([3, 4, 1], activation="tanh", seed=0)
    recorder = ParamsRecorder()

    def raise_lr_after_two(trainer, record):
        if record["epoch"] == 2:
            trainer.optimizer.lr = 1e307

    trainer = cbp.Trainer(net, "mse", optimizer=SGD(lr=1e-3, momentum=0.9),
                          batch_size=16, epochs=6, shuffle=False, verbose=0,
                          callbacks=[recorder, raise_lr_after_two])
    with pytest.raises(cbp.TrainingDivergedError, match="epoch 3"):
        trainer.fit(X, Y)
    assert sorted(recorder.params) == [1, 2]
    np.testing.assert_array_equal(net.params, recorder.params[2])
    assert trainer.optimizer.step_count == 2


def test_divergence_restores_what_a_callback_left_before_the_epoch():
    """A callback's change to the parameters between epochs is kept by the restore."""
    rng = np.random.default_rng(1)
    X, Y = rng.normal(size=(40, 3)), 100 + rng.normal(size=(40, 1))
    net = cbp.Network([3, 5, 1], activation="tanh", seed=0)
    started = {}

    def halve_then_explode(trainer, record):
        if record["epoch"] == 2:
            trainer.network.params[...] *= 0.5
            started["params"] = trainer.network.params.copy()
            started["state"] = trainer.optimizer.state.copy()
            trainer.optimizer.lr = 1e307

    trainer = cbp.Trainer(net, "mse", optimizer=SGD(lr=1e-3, momentum=0.9),
                          batch_size=8, epochs=5, seed=3, verbose=0,
                          callbacks=[halve_then_explode])
    with pytest.raises(cbp.TrainingDivergedError, match="epoch 3"):
        trainer.fit(X, Y)
    np.testing.assert_array_equal(net.params, started["params"])
    np.testing.assert_array_equal(trainer.optimizer.state, started["state"])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 31, 1000])
def test_copy_if_finite_copies_and_finds_every_non_finite_value(dtype, n):
    from cbp import _epoch

    source = np.random.default_rng(n).normal(size=n).astype(dtype)
    target = np.full(n, 7, dtype=dtype)
    assert _epoch.copy_if_finite(source, target) is True
    np.testing.assert_array_equal(target, source)
    largest = np.finfo(dtype).max
    source[: n // 2] = largest
    assert _epoch.copy_if_finite(source, target) is True
    for position in {0, n // 2, n - 1} if n else set():
        for bad in (np.inf, -np.inf, np.nan):
            damaged = source.copy()
            damaged[position] = bad
            assert _epoch.copy_if_finite(damaged, target) is False
            np.testing.assert_array_equal(target, damaged)


def test_copy_if_finite_rejects_a_target_of_another_length():
    from cbp import _epoch

    with pytest.raises(ValueError, match="target has 3 values, expected 4"):
        _epoch.copy_if_finite(np.zeros(4), np.zeros(3))


# -- determinism and batch size ----------------------------------------------------


def test_same_seed_gives_identical_params():
    X, Y = regression_data()
    runs = []
    for seed in (4, 4, 5):
        net = regression_network()
        fit(net, X, Y, optimizer=Adam(lr=0.01), batch_size=5, epochs=3, seed=seed)
        runs.append(net.params)
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_batch_larger_than_data_warns_and_uses_one_batch():
    X, Y = regression_data()
    net_big, net_n = regression_network(), regression_network()
    with pytest.warns(UserWarning, match="batch_size=50"):
        fit(net_big, X, Y, optimizer=Adam(lr=0.01), batch_size=50, epochs=3, seed=1)
    fit(net_n, X, Y, optimizer=Adam(lr=0.01), batch_size=X.shape[0], epochs=3, seed=1)
    np.testing.assert_array_equal(net_big.params, net_n.params)


# -- L2 penalty --------------------------------------------------------------------


def test_l2_matches_gradients_with_l2():
    X, Y = regression_data()
    l2, lr, batch = 0.05, 0.1, 6
    net = regression_network()
    _, history = fit(net, X, Y, optimizer=SGD(lr=lr), batch_size=batch, epochs=2,
                     shuffle=False, l2=l2)
    ref = regression_network()
    expected_losses = []
    for _ in range(2):
        batch_losses = []
        for start in range(0, X.shape[0], batch):
            value, grad = flat_gradient(ref, X[start:start + batch],
                                        Y[start:start + batch], l2=l2)
            batch_losses.append(value)
            ref.params[...] = ref.params - lr * grad
        expected_losses.append(np.mean(batch_losses))
    assert relative_error(net.params, ref.params) <= RTOL
    np.testing.assert_allclose(history["loss"], expected_losses, rtol=RTOL)
    # The penalty changes the result: the same fit without it ends elsewhere.
    plain = regression_network()
    fit(plain, X, Y, optimizer=SGD(lr=lr), batch_size=batch, epochs=2, shuffle=False)
    assert relative_error(plain.params, ref.params) > 1e-6


# -- full-batch optimizers ---------------------------------------------------------


@pytest.mark.parametrize("optimizer", [LBFGS, lambda: Rprop(lr=0.01)],
                         ids=["lbfgs", "rprop"])
def test_full_batch_optimizers_reduce_regression_loss(optimizer):
    X, Y = regression_data(n=40)
    net = regression_network()
    before = net.loss(X, Y, "mse")
    _, history = fit(net, X, Y, optimizer=optimizer(), epochs=40, batch_size=4)
    after = net.loss(X, Y, "mse")
    assert after < 0.3 * before
    assert 1 <= len(history) <= 40


def test_lbfgs_loss_never_increases():
    X, Y = regression_data(n=40)
    net = regression_network()
    _, history = fit(net, X, Y, optimizer=LBFGS(), epochs=25)
    losses = np.array(history["loss"])
    assert np.all(np.diff(losses) <= 1e-12 * losses[:-1])
    assert math.isclose(losses[-1], net.loss(X, Y, "mse"), rel_tol=1e-10)


@pytest.mark.parametrize("optimizer", [LBFGS, lambda: Rprop(lr=0.01)],
                         ids=["lbfgs", "rprop"])
def test_full_batch_optimizers_learn_classification(optimizer):
    X, labels = classification_data(counts=(20, 20, 20))
    net = classifier_network()
    before = net.loss(X, labels, "cross_entropy")
    _, history = fit(net, X, labels, loss="cross_entropy", optimizer=optimizer(),
                     epochs=40)
    assert net.loss(X, labels, "cross_entropy") < 0.5 * before
    assert (net.predict(X).argmax(axis=1) == labels).mean() > 0.9
    assert history["accuracy"][-1] > 0.9


# -- history -----------------------------------------------------------------------


def test_history_for_regression():
    X, Y = regression_data()
    trainer, history = fit(regression_network(), X, Y, optimizer=SGD(lr=0.05),
                           batch_size=8, epochs=3)
    assert len(history) == 3 and trainer.epochs_done == 3
    assert history["epoch"] == [1, 2, 3]
    for record in history.epochs:
        assert set(record) == set(cbp.History.KEYS)
        assert record["accuracy"] is None and record["val_accuracy"] is None
        assert record["val_loss"] is None
        assert record["seconds"] >= 0 and math.isfinite(record["loss"])
    assert not history.stopped_early and not history.interrupted
    assert history.best_epoch == int(np.argmin(history["loss"])) + 1
    assert json.loads(json.dumps(history.to_dict()))["epochs"] == history.epochs
    with pytest.raises(KeyError, match="val_los"):
        history["val_los"]


def test_history_accuracy_for_classification():
    """With one full batch, an epoch's accuracy is that of its starting weights."""
    X, labels = classification_data(counts=(12, 10, 8))
    X_val, labels_val = classification_data(counts=(5, 5, 5), seed=9)
    net = classifier_network()
    start = net.params.copy()
    recorder = ParamsRecorder()
    _, history = fit(net, X, labels, loss="cross_entropy", optimizer=SGD(lr=0.5),
                     batch_size=30, epochs=4, shuffle=False, callbacks=[recorder],
                     validation_data=(X_val, labels_val))
    probe = classifier_network()

    def accuracy(params, X, labels):
        probe.params[...] = params
        return float((probe.predict(X).argmax(axis=1) == labels).mean())

    starts = [start] + [recorder.params[e] for e in (1, 2, 3)]
    assert history["accuracy"] == pytest.approx(
        [accuracy(p, X, labels) for p in starts], abs=1e-12)
    assert history["val_accuracy"] == pytest.approx(
        [accuracy(recorder.params[e], X_val, labels_val) for e in (1, 2, 3, 4)],
        abs=1e-12)
    assert all(0 <= a <= 1 for a in history["accuracy"])


def test_history_accuracy_for_lbfgs_classification():
    X, labels = classification_data()
    net = classifier_network()
    _, history = fit(net, X, labels, loss="cross_entropy", optimizer=LBFGS(), epochs=5)
    final = float((net.predict(X).argmax(axis=1) == labels).mean())
    assert history["accuracy"][-1] == pytest.approx(final, abs=1e-12)


# -- output and callbacks ----------------------------------------------------------


class Collect(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.mark.parametrize("verbose", [0, 1])
def test_verbose_output(verbose, capfd, caplog):
    X, Y = regression_data()
    progress = logging.getLogger("cbp.progress")
    collect = Collect()
    progress.addHandler(collect)
    try:
        with caplog.at_level(logging.DEBUG):
            fit(regression_network(), X, Y, optimizer=SGD(lr=0.05), batch_size=8,
                epochs=2, verbose=verbose)
    finally:
        progress.removeHandler(collect)
    out, err = capfd.readouterr()
    if verbose:
        # One line per epoch (standard error is not a terminal under pytest).
        assert len(collect.messages) == 2
        assert collect.messages[0].startswith("epoch 1/2")
    else:
        assert collect.messages == []
        assert out == "" and err == ""
        assert caplog.records == []


def test_callback_returning_true_stops_training():
    X, Y = regression_data()
    seen = []

    def stop_at_three(trainer, record):
        seen.append(record["epoch"])
        return record["epoch"] == 3

    trainer, history = fit(regression_network(), X, Y, optimizer=SGD(lr=0.05),
                           batch_size=8, epochs=10, callbacks=[stop_at_three])
    assert seen == [1, 2, 3]
    assert len(history) == 3 and trainer.epochs_done == 3


# -- argument checks ---------------------------------------------------------------


@pytest.mark.parametrize("kwargs, error, name", [
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"batch_size": 2.5}, TypeError, "batch_size"),
    ({"epochs": -1}, ValueError, "epochs"),
    ({"optimizer": "adagrad"}, ValueError, "optimizer"),
    ({"lr_schedule": "warmup"}, ValueError, "lr_schedule"),
    ({"loss": "cross_entropy"}, ValueError, "loss"),
    ({"loss": "hinge"}, ValueError, "loss"),
    ({"validation_split": 1.5}, ValueError, "validation_split"),
    ({"l2": -0.1}, ValueError, "l2"),
    ({"early_stopping": "yes"}, TypeError, "early_stopping"),
    ({"callbacks": [3]}, TypeError, "callbacks"),
    ({"n_threads": 0}, ValueError, "n_threads"),
])
def test_bad_arguments_name_the_argument(kwargs, error, name):
    kwargs = dict(kwargs)
    loss = kwargs.pop("loss", "mse")
    with pytest.raises(error, match=name):
        cbp.Trainer(regression_network(), loss, **kwargs)


def test_bad_fit_arguments_name_the_argument():
    X, Y = regression_data(n=10)
    trainer = cbp.Trainer(regression_network(), "mse", validation_split=0.01,
                          verbose=0)
    with pytest.raises(ValueError, match="validation_split"):
        trainer.fit(X, Y)
    trainer = cbp.Trainer(regression_network(), "mse", verbose=0)
    with pytest.raises(ValueError, match="sample_weight"):
        trainer.fit(X, Y, sample_weight=np.ones(3))
    with pytest.raises(TypeError, match="network"):
        cbp.Trainer("net", "mse")
