"""Hostile input at every public entry point: accepted exactly or refused clearly.

Each odd but valid input (another dtype, memory order, strides, read-only or
broadcast arrays) must give the same result as a clean C-ordered copy in the
network's dtype; each invalid one must raise ValueError or TypeError with a
message naming the argument. Nothing may crash the interpreter, and the
caller's arrays are never modified.

``tests/test_network_input.py`` covers the conversions of ``Network.forward``
and ``Network.gradients`` in depth; here the same inputs go through
``Trainer.fit`` (and the estimators and command line, when installed), and the
limits are probed: empty and single-sample data, batches larger than the data,
one class, huge values and sizes beyond what BLAS's C ``int`` can index.
"""

import copy
import tracemalloc
import warnings

import numpy as np
import pytest

import cbp

N, D, K = 12, 4, 3


def _data(seed=0):
    rng = np.random.default_rng(seed)
    # Small integers: every dtype variant below holds them exactly.
    X = rng.integers(0, 4, size=(N, D)).astype(np.float64)
    y = np.arange(N) % K
    return X, y


def _network(dtype="float64"):
    return cbp.Network(
        [D, 5, K], activation="tanh", output="softmax", dtype=dtype, seed=3
    )


def _fit(network, X, y, **kwargs):
    options = {
        "optimizer": "adam",
        "batch_size": 5,
        "epochs": 2,
        "seed": 7,
        "verbose": 0,
    }
    options.update(kwargs)
    trainer = cbp.Trainer(network, "cross_entropy", **options)
    return trainer.fit(X, y)


def _read_only(array):
    array = array.copy()
    array.flags.writeable = False
    return array


def _negative_strides(array):
    view = array[::-1, ::-1].copy()[::-1, ::-1]
    assert view.strides[0] < 0 and view.strides[1] < 0
    return view


def _every_other(array):
    big = np.full((2 * array.shape[0], 2 * array.shape[1]), -9.0)
    big[::2, ::2] = array
    return big[::2, ::2]


# name -> function returning a variant of X holding the same values (bool and
# broadcast variants hold other values; the expected input is derived from them).
X_VARIANTS = {
    "list": lambda a: a.tolist(),
    "int64": lambda a: a.astype(np.int64),
    "uint8": lambda a: a.astype(np.uint8),
    "bool": lambda a: a > 1,
    "float16": lambda a: a.astype(np.float16),
    "float32": lambda a: a.astype(np.float32),
    "object": lambda a: a.astype(object),
    "fortran": np.asfortranarray,
    "negative_strides": _negative_strides,
    "every_other": _every_other,
    "read_only": _read_only,
    "broadcast_row": lambda a: np.broadcast_to(a[1], a.shape),
}


def _snapshot(value):
    if isinstance(value, np.ndarray):
        return value.copy(), value.flags.writeable, value.strides
    return copy.deepcopy(value), None, None


def _assert_unchanged(value, snapshot):
    before, writeable, strides = snapshot
    if isinstance(value, np.ndarray):
        assert value.dtype == before.dtype
        np.testing.assert_array_equal(value, before)
        assert value.flags.writeable == writeable
        assert value.strides == strides
    else:
        assert value == before


# -- accepted variants ----------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(X_VARIANTS))
def test_fit_and_predict_accept_variants_of_X(name, dtype):
    X, y = _data()
    variant = X_VARIANTS[name](X)
    clean = np.ascontiguousarray(np.asarray(variant, dtype=np.float64), dtype=dtype)
    snap = _snapshot(variant)

    reference = _network(dtype)
    _fit(reference, clean, y)
    network = _network(dtype)
    history = _fit(network, variant, y)

    assert len(history) == 2
    assert network.params.tobytes() == reference.params.tobytes()
    assert network.predict(variant).tobytes() == reference.predict(clean).tobytes()
    _assert_unchanged(variant, snap)


@pytest.mark.parametrize(
    "name",
    ["list", "int64", "uint8", "float32", "fortran", "negative_strides", "read_only"],
)
def test_fit_accepts_variants_of_targets_and_weights(name):
    X, y = _data()
    Y = np.eye(K)[y]
    # Whole numbers, so the integer variants hold the same weights.
    weight = (np.arange(N) % 3 + 1.0)[:, None] * np.ones((1, 2))
    Y_variant = X_VARIANTS[name](Y)
    w_variant = X_VARIANTS[name](weight)
    w_variant = (
        w_variant[:, 0]
        if isinstance(w_variant, np.ndarray)
        else [row[0] for row in w_variant]
    )
    snaps = [_snapshot(Y_variant), _snapshot(w_variant)]

    reference = _network()
    _fit(reference, X, np.asarray(Y_variant, dtype=np.float64))
    with_weight = _network()
    trainer = cbp.Trainer(
        with_weight, "cross_entropy", "adam", batch_size=5, epochs=2, seed=7, verbose=0
    )
    trainer.fit(X, Y, sample_weight=np.asarray(w_variant, dtype=np.float64))
    network = _network()
    _fit(network, X, Y_variant)
    weighted = _network()
    trainer = cbp.Trainer(
        weighted, "cross_entropy", "adam", batch_size=5, epochs=2, seed=7, verbose=0
    )
    trainer.fit(X, Y_variant, sample_weight=w_variant)

    assert network.params.tobytes() == reference.params.tobytes()
    assert weighted.params.tobytes() == with_weight.params.tobytes()
    _assert_unchanged(Y_variant, snaps[0])
    _assert_unchanged(w_variant, snaps[1])


def test_gradients_accept_variants_of_all_arguments():
    X, y = _data()
    Y = np.eye(K)[y]
    weight = np.arange(N) % 3 + 1.0
    network = _network()
    value, gw, gb = network.gradients(X, Y, "cross_entropy", sample_weight=weight)
    X_odd = _negative_strides(X)
    Y_odd = np.asfortranarray(Y.astype(np.uint8))
    w_odd = _read_only(weight.astype(np.uint8))[::-1][::-1]
    snaps = [_snapshot(a) for a in (X_odd, Y_odd, w_odd)]
    value2, gw2, gb2 = network.gradients(
        X_odd, Y_odd, "cross_entropy", sample_weight=w_odd
    )
    assert value2 == value
    for a, b in zip(gw + gb, gw2 + gb2):
        assert a.tobytes() == b.tobytes()
    for array, snap in zip((X_odd, Y_odd, w_odd), snaps):
        _assert_unchanged(array, snap)


def test_fit_does_not_modify_validation_data():
    X, y = _data()
    X_val, y_val = _read_only(X[:4]), y[:4].copy()
    X_snap, y_snap = _snapshot(X_val), _snapshot(y_val)
    network = _network()
    history = _fit(network, X, y, validation_data=(X_val, y_val))
    assert all(np.isfinite(history["val_loss"]))
    _assert_unchanged(X_val, X_snap)
    _assert_unchanged(y_val, y_snap)


def test_bad_validation_data_is_refused_naming_it():
    X, y = _data()
    X_val = X[:4].copy()
    X_val[1, 2] = np.inf
    network = _network()
    before = network.params.copy()
    with pytest.raises(ValueError, match=r"validation_data\[0\] contains inf"):
        _fit(network, X, y, validation_data=(X_val, y[:4]))
    with pytest.raises(ValueError, match=r"validation_data\[1\] has 3 rows"):
        _fit(network, X, y, validation_data=(X[:4], y[:3]))
    with pytest.raises(ValueError, match=r"validation_data\[0\] has 3 features"):
        _fit(network, X, y, validation_data=(X[:4, :3], y[:4]))
    assert network.params.tobytes() == before.tobytes()


# -- refused input ----------------------------------------------------------------


def _bad_X_cases():
    X, _ = _data()
    with_nan = X.copy()
    with_nan[3, 2] = np.nan
    with_inf = X.copy()
    with_inf[0, 1] = -np.inf
    return [
        ("nan", with_nan, ValueError, r"X contains nan at index \(3, 2\)"),
        ("inf", with_inf, ValueError, r"X contains -inf at index \(0, 1\)"),
        ("1-D", X[0], ValueError, r"X must be 2-D .*shape \(4,\)"),
        ("3-D", X[None], ValueError, r"X must be 2-D .*shape \(1, 12, 4\)"),
        ("0-D", np.float64(1.0), ValueError, r"X must be 2-D .*shape \(\)"),
        ("features", X[:, :3], ValueError, r"X has 3 features .*expects 4"),
        ("zero samples", X[:0], ValueError, r"X has 0 samples"),
        ("zero features", np.empty((N, 0)), ValueError, r"X has 0 features"),
        ("complex", X.astype(complex), TypeError, r"X has complex dtype"),
        ("str array", X.astype(str), TypeError, r"X has dtype <U"),
        ("string", "1 2 3 4", TypeError, r"X must be an array of numbers"),
        (
            "object words",
            np.full((N, D), "a", dtype=object),
            TypeError,
            r"X has dtype object with non-numeric entries",
        ),
        (
            "ragged",
            [[1.0, 2.0, 3.0, 4.0], [1.0]],
            ValueError,
            r"X could not be read as an array",
        ),
        ("None", None, TypeError, r"X is None; expected an array"),
    ]


BAD_X = _bad_X_cases()


@pytest.mark.parametrize("case", BAD_X, ids=[c[0] for c in BAD_X])
def test_bad_X_is_refused_everywhere(case):
    _, X, error, message = case
    _, y = _data()
    Y = np.eye(K)[y]
    snap = _snapshot(X)
    network = _network()
    before = network.params.copy()
    with pytest.raises(error, match=message):
        network.forward(X)
    with pytest.raises(error, match=message):
        network.predict(X)
    with pytest.raises(error, match=message):
        network.gradients(X, Y, "cross_entropy")
    with pytest.raises(error, match=message):
        _fit(network, X, y)
    assert network.params.tobytes() == before.tobytes()
    _assert_unchanged(X, snap)


def _bad_y_cases():
    _, y = _data()
    Y = np.eye(K)[y]
    Y_nan = Y.copy()
    Y_nan[5, 0] = np.nan
    return [
        ("short", y[:-1], ValueError, r"Y has 11 rows but X has 12"),
        (
            "long 2-D",
            np.eye(K)[np.arange(N + 1) % K],
            ValueError,
            r"Y has 13 rows but X has 12",
        ),
        ("3-D", Y[None], ValueError, r"Y must be 1-D or 2-D"),
        ("columns", Y[:, :2], ValueError, r"Y has 2 columns .*3 outputs"),
        ("nan", Y_nan, ValueError, r"Y contains nan at index \(5, 0\)"),
        ("label too big", np.full(N, K), ValueError, r"Y has class labels from 3 to 3"),
        ("negative label", -np.ones(N, dtype=int), ValueError, r"Y has class labels"),
        ("fractional label", y + 0.5, ValueError, r"Y is 1-D with non-integer values"),
        ("complex", Y.astype(complex), TypeError, r"Y has complex dtype"),
        ("str", y.astype(str), TypeError, r"Y has dtype <U"),
        ("negative probabilities", -Y, ValueError, r"Y has values from -1"),
    ]


BAD_Y = _bad_y_cases()


@pytest.mark.parametrize("case", BAD_Y, ids=[c[0] for c in BAD_Y])
def test_bad_targets_are_refused(case):
    _, Y, error, message = case
    X, _ = _data()
    snap = _snapshot(Y)
    network = _network()
    before = network.params.copy()
    with pytest.raises(error, match=message):
        network.gradients(X, Y, "cross_entropy")
    with pytest.raises(error, match=message):
        _fit(network, X, Y)
    assert network.params.tobytes() == before.tobytes()
    _assert_unchanged(Y, snap)


@pytest.mark.parametrize(
    "weight, error, message",
    [
        (np.ones(N - 1), ValueError, r"sample_weight must have shape \(12,\).*\(11,\)"),
        (
            np.ones((N, 1)),
            ValueError,
            r"sample_weight must have shape \(12,\).*\(12, 1\)",
        ),
        (np.full(N, np.inf), ValueError, r"sample_weight contains inf"),
        (-np.ones(N), ValueError, r"sample_weight has negative entries"),
        (np.zeros(N), ValueError, r"sample_weight sums to 0"),
        (np.ones(N, dtype=complex), TypeError, r"sample_weight has complex dtype"),
    ],
)
def test_bad_sample_weight_is_refused_by_fit(weight, error, message):
    X, y = _data()
    snap = _snapshot(weight)
    trainer = cbp.Trainer(_network(), "cross_entropy", epochs=1, verbose=0)
    with pytest.raises(error, match=message):
        trainer.fit(X, y, sample_weight=weight)
    _assert_unchanged(weight, snap)


def test_batch_of_zero_weights_does_not_diverge():
    """Zero weights are allowed (only the total must be positive), so a batch can
    hold only zero-weight samples; it must contribute nothing, not NaN."""
    X = np.arange(8.0).reshape(4, 2)
    y = np.array([0, 1, 0, 1])
    network = cbp.Network([2, 2], output="softmax", seed=0)
    trainer = cbp.Trainer(
        network,
        "cross_entropy",
        "sgd",
        batch_size=2,
        epochs=1,
        shuffle=False,
        verbose=0,
    )
    history = trainer.fit(X, y, sample_weight=[0, 0, 1, 1])
    assert np.isfinite(history["loss"]).all()
    assert np.isfinite(network.params).all()


def test_set_params_accepts_variants_and_keeps_them():
    network = _network()
    values = np.arange(network.n_params, dtype=np.float64) / network.n_params
    for variant in (
        values.tolist(),
        _read_only(values),
        values.astype(np.float32),
        values[::-1].copy()[::-1],
    ):
        snap = _snapshot(variant)
        network.set_params(variant)
        np.testing.assert_array_equal(
            network.params, np.asarray(variant, dtype=np.float64)
        )
        _assert_unchanged(variant, snap)
    with pytest.raises(ValueError, match=r"values has shape \(3,\); expected"):
        network.set_params(values[:3])
    with pytest.raises(ValueError, match=r"(?i)values contains NaN"):
        network.set_params(np.full(network.n_params, np.nan))


def test_set_params_refuses_values_beyond_float32():
    network = _network("float32")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(ValueError, match="values"):
            network.set_params(np.full(network.n_params, 1e39))
    assert np.isfinite(network.params).all()


@pytest.mark.parametrize("kind", ["complex", "str", "None"])
def test_set_params_refuses_non_real_values_naming_them(kind):
    network = _network()
    n = network.n_params
    values = {
        "complex": np.full(n, 1 + 1j),
        "str": np.full(n, "1"),
        "None": [None] * n,
    }[kind]
    before = network.params.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(TypeError, match=r"\bvalues\b"):
            network.set_params(values)
    assert network.params.tobytes() == before.tobytes()


# -- limits -------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_one_sample(dtype):
    X, y = _data()
    network = _network(dtype)
    out = network.predict(X[:1])
    assert out.shape == (1, K)
    np.testing.assert_array_equal(out, network.predict(X)[:1])
    with pytest.warns(UserWarning, match="batch_size=5 is larger than the 1"):
        history = _fit(network, X[:1], y[:1])
    assert len(history) == 2 and np.isfinite(history["loss"]).all()
    assert np.isfinite(network.params).all()


def test_batch_larger_than_data_is_one_full_batch():
    X, y = _data()
    full = _network()
    _fit(full, X, y, batch_size=N)
    larger = _network()
    with pytest.warns(UserWarning, match=f"batch_size=1000 is larger than the {N}"):
        _fit(larger, X, y, batch_size=1000)
    assert larger.params.tobytes() == full.params.tobytes()


@pytest.mark.parametrize(
    "loss, output, n_out",
    [
        ("cross_entropy", "softmax", 3),
        ("binary_cross_entropy", "sigmoid", 1),
    ],
)
def test_labels_of_one_class_train_towards_that_class(loss, output, n_out):
    X, _ = _data()
    y = np.zeros(N, dtype=np.int64) if loss == "cross_entropy" else np.ones((N, 1))
    network = cbp.Network([D, 5, n_out], activation="tanh", output=output, seed=0)
    trainer = cbp.Trainer(
        network, loss, "adam", batch_size=4, epochs=30, seed=0, verbose=0
    )
    before = network.predict(X)
    history = trainer.fit(X, y)
    assert np.isfinite(history["loss"]).all()
    assert history["loss"][-1] < history["loss"][0]
    # Every sample moved towards the only class.
    after = network.predict(X)
    if loss == "cross_entropy":
        assert (after[:, 0] > before[:, 0]).all()
    else:
        assert (after > before).all()


def test_balanced_class_weight_with_one_class():
    X, _ = _data()
    network = _network()
    trainer = cbp.Trainer(
        network, "cross_entropy", "adam", batch_size=4, epochs=2, seed=0, verbose=0
    )
    history = trainer.fit(X, np.zeros(N, dtype=np.int64), class_weight="balanced")
    assert np.isfinite(history["loss"]).all()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_huge_inputs_give_finite_results_or_a_clear_error(dtype):
    """Inputs of 1e30: finite outputs, or an error that names the overflow.

    In float32, 1e30 times weights near 1 and summed over inputs stays finite in
    the first layer, but squares in the loss and products in the gradient do
    not; they must never come back as NaN.
    """
    X = np.full((6, D), 1e30)
    Y = np.zeros((6, 2))
    for activation in ("relu", "tanh", "sigmoid", "identity"):
        network = cbp.Network([D, 5, 2], activation=activation, dtype=dtype, seed=0)
        try:
            out = network.forward(X)
        except FloatingPointError as error:
            assert "overflowed" in str(error) and "scale the inputs" in str(error)
        else:
            assert np.isfinite(out).all()
        try:
            value, gw, gb = network.gradients(X, Y, "mse")
        except FloatingPointError as error:
            assert "overflowed" in str(error) and "scale the inputs" in str(error)
        else:
            assert np.isfinite(value)
            assert all(np.isfinite(g).all() for g in gw + gb)
        before = network.params.copy()
        trainer = cbp.Trainer(network, "mse", "sgd", batch_size=3, epochs=1, verbose=0)
        try:
            trainer.fit(X, Y)
        except cbp.TrainingDivergedError as error:
            assert "scale the inputs" in str(error)
            assert network.params.tobytes() == before.tobytes()
        else:
            assert np.isfinite(network.params).all()
            assert np.isfinite(trainer.history["loss"]).all()


def test_float64_overflow_advice_fits_the_network():
    network = cbp.Network([D, 50, 2], activation="relu", dtype="float64", seed=0)
    with pytest.raises(FloatingPointError, match="overflowed") as info:
        network.forward(np.full((2, D), 1e308))
    assert "dtype='float64'" not in str(info.value)


def test_float64_values_beyond_float32_are_refused_by_fit():
    X, y = _data()
    X[2, 3] = 1e39
    network = _network("float32")
    with pytest.raises(ValueError, match=r"\bX\b"):
        _fit(network, X, y)


def _peak_allocation(call):
    """Run ``call`` (which must raise ValueError) and return the traced peak bytes."""
    tracemalloc.start()
    try:
        with pytest.raises(ValueError) as info:
            call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, str(info.value)


def test_more_rows_than_blas_can_index_are_refused_without_allocating():
    rows = 2**31
    X = np.broadcast_to(np.zeros((1, D)), (rows, D))
    y = np.broadcast_to(np.zeros(1, dtype=np.int64), (rows,))
    network = _network()
    for call in (
        lambda: network.forward(X),
        lambda: network.predict(X),
        lambda: network.gradients(X, y, "cross_entropy"),
        lambda: _fit(network, X, y),
    ):
        peak, message = _peak_allocation(call)
        assert f"X has {rows} rows" in message
        assert peak < 2**20


@pytest.mark.parametrize("sizes", [[2**16, 2**16, 1], [1, 2**31], [3, 50_000, 50_000]])
def test_layers_beyond_blas_int_are_refused_without_allocating(sizes):
    peak, message = _peak_allocation(lambda: cbp.Network(sizes, seed=0))
    assert "exceeds" in message and str(2**31 - 1) in message
    assert peak < 2**20


# -- numerics ------------------------------------------------------------------------


def _stable_sigmoid(z):
    return np.where(
        z >= 0, 1 / (1 + np.exp(-np.abs(z))), 1 - 1 / (1 + np.exp(-np.abs(z)))
    )


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("scale", [1e4, -1e4])
def test_saturated_softmax_keeps_the_exact_output_delta(dtype, scale):
    """Logits of +-1e4: finite loss, and dL/db = mean(a - y), dL/dW = mean((a-y) x^T).

    With one layer the bias gradient is the output delta averaged over the
    batch; saturated outputs are exactly 0 or 1, so a - y is exact.
    """
    network = cbp.Network([2, 3], output="softmax", dtype=dtype, seed=0)
    network.weights[0][...] = np.array([[scale, 0], [0, scale], [-scale, -scale]]) / 2
    network.biases[0][...] = 0
    X = np.array([[2.0, 0.0], [0.0, 2.0], [1.0, 1.0], [-2.0, 0.0]])
    y = np.array([0, 0, 2, 1])
    Y = np.eye(3)[y]
    z = X @ network.weights[0].astype(np.float64).T
    a = _softmax(z)
    value, gw, gb = network.gradients(X, y, "cross_entropy")
    assert np.isfinite(value)
    # Log-sum-exp: the loss of a confidently wrong sample is the logit gap.
    expected_loss = np.mean(
        np.log(np.exp(z - z.max(1, keepdims=True)).sum(1))
        + z.max(1)
        - z[np.arange(4), y]
    )
    np.testing.assert_allclose(value, expected_loss, rtol=1e-6)
    np.testing.assert_array_equal(gb[0], np.mean(a - Y, axis=0).astype(dtype))
    np.testing.assert_allclose(gw[0], (a - Y).T @ X / 4, rtol=1e-6)
    out = network.forward(X)
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out, a.astype(dtype))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("scale", [1e4, -1e4])
def test_saturated_sigmoid_keeps_the_exact_output_delta(dtype, scale):
    network = cbp.Network([2, 2], output="sigmoid", dtype=dtype, seed=0)
    network.weights[0][...] = np.array([[scale, 0], [0, -scale]])
    network.biases[0][...] = 0
    X = np.array([[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0], [0.5, 0.0]])
    Y = np.array([[1, 1], [1, 0], [0, 1], [0, 0], [0.5, 0.5]], dtype=np.float64)
    z = X @ network.weights[0].astype(np.float64).T
    a = _stable_sigmoid(z)
    value, gw, gb = network.gradients(X, Y, "binary_cross_entropy")
    assert np.isfinite(value)
    expected_loss = np.mean(
        np.sum(np.maximum(z, 0) - z * Y + np.log1p(np.exp(-np.abs(z))), axis=1)
    )
    np.testing.assert_allclose(value, expected_loss, rtol=1e-6)
    np.testing.assert_allclose(gb[0], np.mean(a - Y, axis=0), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(gw[0], (a - Y).T @ X / 5, rtol=1e-6, atol=1e-7)
    assert np.isfinite(network.forward(X)).all()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_training_on_saturated_logits_stays_finite(dtype):
    network = cbp.Network([2, 2], output="softmax", dtype=dtype, seed=0)
    network.weights[0][...] = [[1e4, 0], [0, 1e4]]
    X = np.array([[1.0, 0.0], [0.0, 1.0]] * 4)
    y = np.array([1, 0] * 4)  # every sample confidently wrong
    trainer = cbp.Trainer(
        network, "cross_entropy", "sgd", batch_size=4, epochs=3, seed=0, verbose=0
    )
    history = trainer.fit(X, y)
    assert np.isfinite(history["loss"]).all()
    assert np.isfinite(network.params).all()
    assert history["loss"][-1] < history["loss"][0]


# -- estimators and command line (when installed) -------------------------------------


def _estimators():
    sklearn_api = pytest.importorskip("cbp.sklearn")
    X, y = _data()
    options = {"hidden_layer_sizes": (5,), "max_iter": 3, "random_state": 0}
    return [
        (sklearn_api.MLPClassifier, options, y),
        (sklearn_api.MLPRegressor, options, X[:, 0] - X[:, 1]),
    ]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize(
    "name", ["int64", "fortran", "negative_strides", "read_only", "list", "every_other"]
)
def test_estimators_accept_variants_of_X(name):
    X, _ = _data()
    variant = X_VARIANTS[name](X)
    snap = _snapshot(variant)
    for estimator, options, target in _estimators():
        clean = estimator(**options).fit(X, target)
        odd = estimator(**options).fit(variant, target)
        np.testing.assert_array_equal(odd.predict(variant), clean.predict(X))
        _assert_unchanged(variant, snap)


def _bad_estimator_X():
    X, _ = _data()
    with_nan = X.copy()
    with_nan[1, 1] = np.nan
    with_inf = X.copy()
    with_inf[2, 0] = np.inf
    return [
        ("nan", with_nan, r"X contains NaN"),
        ("inf", with_inf, r"X contains infinity"),
        ("1-D", X[:, 0], r"Expected 2D array, got 1D"),
        ("zero samples", X[:0], r"0 sample\(s\)"),
        ("zero features", X[:, :0], r"0 feature\(s\)"),
    ]


BAD_ESTIMATOR_X = _bad_estimator_X()


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("case", BAD_ESTIMATOR_X, ids=[c[0] for c in BAD_ESTIMATOR_X])
def test_estimators_refuse_bad_X_and_keep_it(case):
    _, bad, message = case
    X, _ = _data()
    snap = _snapshot(bad)
    for estimator, options, target in _estimators():
        with pytest.raises(ValueError, match=message):
            estimator(**options).fit(bad, target[: len(bad)])
        fitted = estimator(**options).fit(X, target)
        with pytest.raises(ValueError, match=message):
            fitted.predict(bad)
        _assert_unchanged(bad, snap)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_estimators_refuse_wrong_feature_count_and_sample_mismatch():
    X, _ = _data()
    for estimator, options, target in _estimators():
        fitted = estimator(**options).fit(X, target)
        with pytest.raises(ValueError, match=r"X has 3 features.*expecting 4"):
            fitted.predict(X[:, :3])
        with pytest.raises(ValueError, match=r"inconsistent numbers of samples"):
            estimator(**options).fit(X, target[:5])


def test_estimators_refuse_complex_X_naming_it():
    X, _ = _data()
    for estimator, options, target in _estimators():
        with pytest.raises((TypeError, ValueError), match=r"\bX\b"):
            estimator(**options).fit(X.astype(complex), target)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_estimators_with_huge_inputs_are_finite_or_refused():
    X = np.full((N, D), 1e30)
    for estimator, options, target in _estimators():
        try:
            fitted = estimator(**options).fit(X, target)
        except (ValueError, FloatingPointError) as error:
            assert "scale" in str(error) or "overflow" in str(error)
            continue
        if hasattr(fitted, "predict_proba"):
            assert np.isfinite(fitted.predict_proba(X)).all()
        else:
            assert np.isfinite(fitted.predict(X)).all()


def test_classifier_with_one_class():
    sklearn_api = pytest.importorskip("cbp.sklearn")
    X, _ = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = sklearn_api.MLPClassifier(
            hidden_layer_sizes=(5,), max_iter=3, random_state=0
        ).fit(X, np.full(N, 7))
    assert (fitted.predict(X) == 7).all()


def _cli_main():
    return pytest.importorskip("cbp.cli").main


def _cli(capsys, *argv):
    status = _cli_main()([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def _table(X, y):
    return np.column_stack([X, y])


BAD_TABLES = {
    "inf": (
        lambda t: np.where(np.arange(t.size).reshape(t.shape) == 5, np.inf, t),
        "inf",
    ),
    "complex": (lambda t: t.astype(complex), "complex128"),
    "str": (lambda t: t.astype(str), "<U"),
    "3-D": (lambda t: t[None], "expected 2-D"),
    "no rows": (lambda t: t[:0], "no rows"),
    "target only": (lambda t: t[:, -1:], "no feature columns"),
}


@pytest.mark.parametrize("name", sorted(BAD_TABLES))
def test_cli_refuses_bad_arrays_in_one_line(capsys, tmp_path, name):
    X, y = _data()
    make, message = BAD_TABLES[name]
    data = tmp_path / f"{name.replace(' ', '_')}.npy"
    np.save(data, make(_table(X, y)))
    model = tmp_path / "model.npz"
    status, _, err = _cli(
        capsys,
        "train",
        data,
        "--target",
        "-1",
        "--epochs",
        "1",
        "--quiet",
        "--out",
        model,
    )
    assert status == 2
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert data.name in err and message in err
    assert not model.exists()


def test_cli_with_huge_values_trains_or_refuses_cleanly(capsys, tmp_path):
    X, y = _data()
    data = tmp_path / "huge.npy"
    np.save(data, _table(X * 1e30, y))
    model = tmp_path / "model.npz"
    status, _, err = _cli(
        capsys,
        "train",
        data,
        "--target",
        "-1",
        "--epochs",
        "2",
        "--batch-size",
        "4",
        "--quiet",
        "--out",
        model,
    )
    assert "Traceback" not in err
    if status != 0:
        assert status in (1, 2) and len(err.strip().splitlines()) == 1
        return
    predictions = tmp_path / "predictions.csv"
    status, _, err = _cli(
        capsys, "predict", model, data, "--out", predictions, "--proba"
    )
    assert status == 0, err
    rows = predictions.read_text().strip().splitlines()
    assert len(rows) == N + 1
    values = np.array([[float(v) for v in row.split(",")] for row in rows[1:]])
    assert np.isfinite(values).all()


def test_cli_info_on_a_model_with_a_foreign_member(capsys, tmp_path):
    import zipfile

    model = tmp_path / "model.npz"
    _network().save(model)
    with zipfile.ZipFile(model) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    members["params.npy"] = b"not an array"
    with zipfile.ZipFile(model, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    status, _, err = _cli(capsys, "info", model)
    assert status == 2 and "model.npz" in err
