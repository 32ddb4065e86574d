"""What Network accepts as input, what it refuses, and how it starts.

The core trusts its arrays, so everything a user may pass has to be turned into
a finite C-ordered array of the network's dtype first, without touching the
caller's data; everything else must fail with a message that names the
argument and what was wrong with it.
"""

import copy
import warnings

import numpy as np
import pytest

import cbp

N_SAMPLES = 5
N_INPUTS = 3
N_OUTPUTS = 2


@pytest.fixture
def net():
    return cbp.Network([N_INPUTS, 4, N_OUTPUTS], activation="tanh", output="sigmoid",
                       seed=0)


def _base_X():
    """Small non-negative integers: every variant below can hold them exactly."""
    return np.random.default_rng(0).integers(0, 5, size=(N_SAMPLES, N_INPUTS)) * 1.0


def _base_Y():
    return np.random.default_rng(1).integers(0, 2, size=(N_SAMPLES, N_OUTPUTS)) * 1.0


def _read_only(array):
    array = array.copy()
    array.flags.writeable = False
    return array


def _negative_strides(array):
    """A view with negative strides on both axes holding the values of ``array``."""
    flipped = array[::-1, ::-1].copy()
    view = flipped[::-1, ::-1]
    assert view.strides[0] < 0 and view.strides[1] < 0
    return view


def _every_other(array):
    """A non-contiguous view (step 2 in both axes) holding ``array``'s values."""
    big = np.full((2 * array.shape[0], 2 * array.shape[1]), -7.0)
    big[::2, ::2] = array
    return big[::2, ::2]


def _column_block(array):
    """A slice of whole rows' middles: rows are contiguous, the matrix is not."""
    big = np.full((array.shape[0], array.shape[1] + 2), -7.0)
    big[:, 1:-1] = array
    return big[:, 1:-1]


# name -> (make variant from clean values, turn clean values into what it holds)
VARIANTS = {
    "list_of_floats": (lambda a: a.tolist(), None),
    "list_of_ints": (lambda a: a.astype(int).tolist(), None),
    "int64": (lambda a: a.astype(np.int64), None),
    "int32": (lambda a: a.astype(np.int32), None),
    "uint8": (lambda a: a.astype(np.uint8), None),
    "bool": (lambda a: a > 1, lambda a: (a > 1).astype(np.float64)),
    "float32": (lambda a: a.astype(np.float32), None),
    "float16": (lambda a: a.astype(np.float16), None),
    "object_numbers": (lambda a: a.astype(object), None),
    "fortran": (np.asfortranarray, None),
    "negative_strides": (_negative_strides, None),
    "every_other": (_every_other, None),
    "column_block": (_column_block, None),
    "read_only": (_read_only, None),
    "read_only_fortran": (lambda a: _read_only(np.asfortranarray(a)), None),
    "broadcast_row": (
        lambda a: np.broadcast_to(a[1], a.shape),
        lambda a: np.tile(a[1], (a.shape[0], 1)),
    ),
}


def _variant(name, clean):
    make, held = VARIANTS[name]
    expected = clean if held is None else held(clean)
    return make(clean), np.ascontiguousarray(expected, dtype=np.float64)


def _snapshot(value):
    """A deep copy, with the array's write flag, to prove nothing was changed."""
    if isinstance(value, np.ndarray):
        return value.copy(), value.flags.writeable, value.strides
    return copy.deepcopy(value), None, None


def _assert_unchanged(value, snapshot):
    before, writeable, strides = snapshot
    if isinstance(value, np.ndarray):
        np.testing.assert_array_equal(value, before)
        assert value.flags.writeable == writeable
        assert value.strides == strides
    else:
        assert value == before


def _assert_same(got, expected):
    # The same values reach the same BLAS calls; allow only a last-bit change.
    np.testing.assert_allclose(got, expected, rtol=1e-14, atol=1e-15)


# Accepted inputs


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_forward_accepts_any_array_like_X(net, name):
    """Every form of X gives the result of its clean C-ordered float64 copy."""
    X, clean = _variant(name, _base_X())
    snapshot = _snapshot(X)

    out = net.forward(X)

    _assert_same(out, net.forward(clean))
    assert out.dtype == np.float64 and out.shape == (N_SAMPLES, N_OUTPUTS)
    assert out.flags.c_contiguous
    _assert_unchanged(X, snapshot)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_gradients_accept_any_array_like_X_and_Y(net, name):
    """X and Y in every form: same loss and gradients, caller's data untouched."""
    X, clean_X = _variant(name, _base_X())
    Y, clean_Y = _variant(name, _base_Y())
    snapshot_X, snapshot_Y = _snapshot(X), _snapshot(Y)

    value, grad_weights, grad_biases = net.gradients(X, Y, "mse")
    expected = net.gradients(clean_X, clean_Y, "mse")

    assert value == pytest.approx(expected[0], rel=1e-14)
    for got, want in zip(grad_weights + grad_biases, expected[1] + expected[2]):
        _assert_same(got, want)
    assert net.loss(X, Y, "mse") == pytest.approx(expected[0], rel=1e-14)
    _assert_unchanged(X, snapshot_X)
    _assert_unchanged(Y, snapshot_Y)


@pytest.mark.parametrize("name", ["float64", "fortran", "negative_strides", "int64"])
def test_float32_network_converts_input(name):
    """A float32 network casts any input to float32 and answers in float32."""
    net32 = cbp.Network([N_INPUTS, 4, N_OUTPUTS], activation="relu", dtype="float32",
                        seed=3)
    clean = _base_X()
    if name == "float64":
        X = clean.copy()
    else:
        X, _ = _variant(name, clean)
    snapshot = _snapshot(X)

    out = net32.forward(X)

    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, net32.forward(clean.astype(np.float32)))
    _assert_unchanged(X, snapshot)


def test_c_ordered_float64_input_is_used_without_modification(net):
    """The fast path (no copy) must still leave the caller's array alone."""
    X = _base_X()
    Y = _base_Y()
    X_before, Y_before = X.copy(), Y.copy()
    net.forward(X)
    net.gradients(X, Y, "mse", l2=0.1)
    np.testing.assert_array_equal(X, X_before)
    np.testing.assert_array_equal(Y, Y_before)


def test_one_dimensional_targets_for_one_output():
    """With one output unit, Y of shape (n,) means one column."""
    net = cbp.Network([N_INPUTS, 3, 1], activation="tanh", seed=1)
    X = _base_X()
    y = np.arange(N_SAMPLES, dtype=float)
    value = net.gradients(X, y, "mse")[0]
    assert value == net.gradients(X, y[:, None], "mse")[0]


# Refused inputs


def _X_with(i, j, value):
    X = _base_X()
    X[i, j] = value
    return X


BAD_X = [
    ("one_dimensional", np.ones(N_INPUTS), ValueError, r"X must be 2-D.*\(3,\)"),
    ("three_dimensional", np.ones((2, 3, 1)), ValueError,
     r"X must be 2-D.*\(2, 3, 1\)"),
    ("scalar", 3.0, ValueError, r"X must be 2-D.*\(\)"),
    ("wrong_features", np.ones((4, 2)), ValueError,
     r"X has 2 features \(shape \(4, 2\)\).*expects 3"),
    ("zero_samples", np.ones((0, N_INPUTS)), ValueError,
     r"X has 0 samples \(shape \(0, 3\)\)"),
    ("zero_features", np.ones((4, 0)), ValueError,
     r"X has 0 features \(shape \(4, 0\)\)"),
    ("nan", _X_with(1, 2, np.nan), ValueError, r"X contains nan at index \(1, 2\)"),
    ("inf", _X_with(0, 1, np.inf), ValueError, r"X contains inf at index \(0, 1\)"),
    ("minus_inf", _X_with(4, 0, -np.inf), ValueError,
     r"X contains -inf at index \(4, 0\)"),
    ("complex", np.ones((2, 3), dtype=complex), TypeError,
     r"X has complex dtype complex"),
    ("object_strings", np.array([[1, "a", 2.0]], dtype=object), TypeError,
     r"X has dtype object"),
    ("str_array", np.array([["1", "2", "3"]]), TypeError, r"X has dtype <U1"),
    ("list_with_strings", [[1.0, "a", 2.0]], TypeError, r"X has dtype <U"),
    ("bytes_array", np.array([[b"1", b"2", b"3"]]), TypeError, r"X has dtype \|S1"),
    ("a_string", "1 2 3", TypeError, r"X must be an array of numbers, got a string"),
    ("ragged", [[1.0, 2.0, 3.0], [1.0]], ValueError, r"X could not be read"),
    ("datetimes", np.zeros((2, 3), dtype="datetime64[s]"), TypeError,
     r"X has dtype datetime64"),
]


@pytest.mark.parametrize("X, error, message", [pytest.param(*case[1:], id=case[0])
                                               for case in BAD_X])
def test_bad_X_is_refused_with_its_name_and_shape(net, X, error, message):
    """Forward, gradients and loss all refuse it, naming X and what is wrong."""
    Y = np.zeros((N_SAMPLES, N_OUTPUTS))
    with pytest.raises(error, match=message):
        net.forward(X)
    with pytest.raises(error, match=message):
        net.gradients(X, Y, "mse")
    with pytest.raises(error, match=message):
        net.loss(X, Y, "mse")


def _targets_with(i, j, value):
    Y = _base_Y()
    Y[i, j] = value
    return Y


BAD_Y = [
    ("too_few_rows", "mse", np.zeros((3, 2)), ValueError, r"Y has 3 rows but X has 5"),
    ("no_rows", "mse", np.zeros((0, 2)), ValueError, r"Y has 0 rows but X has 5"),
    ("wrong_columns", "mse", np.zeros((5, 3)), ValueError,
     r"Y has 3 columns \(shape \(5, 3\)\)"),
    ("three_dimensional", "mse", np.zeros((5, 2, 1)), ValueError,
     r"Y must be 1-D or 2-D.*\(5, 2, 1\)"),
    ("scalar", "mse", 0.5, ValueError, r"Y must be 1-D or 2-D.*\(\)"),
    ("one_dimensional_for_two_outputs", "mse", np.zeros(5), ValueError,
     r"Y is 1-D \(shape \(5,\)\).*2 outputs"),
    ("nan", "mse", _targets_with(2, 1, np.nan), ValueError,
     r"Y contains nan at index \(2, 1\)"),
    ("inf", "mse", _targets_with(0, 0, np.inf), ValueError,
     r"Y contains inf at index \(0, 0\)"),
    ("complex", "mse", np.zeros((5, 2), dtype=complex), TypeError, r"Y has complex"),
    ("str_array", "mse", np.full((5, 2), "0"), TypeError, r"Y has dtype <U1"),
    ("object_strings", "mse", np.full((5, 2), "x", dtype=object), TypeError,
     r"Y has dtype object"),
    ("labels_out_of_range", "cross_entropy", np.array([0, 1, 5, 1, 0]), ValueError,
     r"Y has class labels from 0 to 5"),
    ("negative_labels", "cross_entropy", np.array([0, -1, 1, 1, 0]), ValueError,
     r"Y has class labels from -1 to 1"),
    ("fractional_labels", "cross_entropy", np.array([0, 0.5, 1, 1, 0]), ValueError,
     r"Y is 1-D with non-integer values"),
    ("negative_probabilities", "cross_entropy", _targets_with(1, 0, -0.5), ValueError,
     r"Y has values from -0.5"),
    ("binary_target_above_one", "binary_cross_entropy", _targets_with(3, 1, 2.0),
     ValueError, r"Y has values from 0.0 to 2.0"),
]


@pytest.mark.parametrize("loss, Y, error, message", [
    pytest.param(*case[1:], id=case[0]) for case in BAD_Y
])
def test_bad_Y_is_refused_with_its_name_and_shape(loss, Y, error, message):
    """Targets of the wrong shape, value or kind are refused, naming Y."""
    output = {"mse": "identity", "cross_entropy": "softmax",
              "binary_cross_entropy": "sigmoid"}[loss]
    net = cbp.Network([N_INPUTS, 4, N_OUTPUTS], activation="tanh", output=output,
                      seed=0)
    X = _base_X()
    with pytest.raises(error, match=message):
        net.gradients(X, Y, loss)
    with pytest.raises(error, match=message):
        net.loss(X, Y, loss)


@pytest.mark.parametrize("weight, message", [
    (np.ones(4), r"sample_weight must have shape \(5,\).*got shape \(4,\)"),
    (np.ones((5, 1)), r"sample_weight must have shape \(5,\).*got shape \(5, 1\)"),
    (np.array([1.0, -1.0, 1.0, 1.0, 1.0]), r"sample_weight has negative entries"),
    (np.zeros(5), r"sample_weight sums to 0"),
    (np.array([1.0, np.nan, 1.0, 1.0, 1.0]), r"sample_weight contains nan"),
])
def test_bad_sample_weight_is_refused(net, weight, message):
    """Sample weights are checked as carefully as X and Y."""
    with pytest.raises(ValueError, match=message):
        net.gradients(_base_X(), _base_Y(), "mse", sample_weight=weight)


def test_float32_overflow_in_X_is_refused_naming_the_value():
    """A float64 value beyond float32's range must not reach a float32 network.

    The message names X and the caller's value, not the inf the cast would make,
    and the cast must not emit an overflow warning on the way.
    """
    net32 = cbp.Network([N_INPUTS, 2], dtype="float32", seed=0)
    X = _base_X()
    X[2, 1] = 1e300
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.raises(ValueError, match=r"X has values beyond .*float32.*1e\+300"):
            net32.forward(X)
        with pytest.raises(ValueError, match=r"X has values beyond .*float32.*1e\+300"):
            net32.gradients(X, np.zeros((N_SAMPLES, 2)), "mse")


def test_float32_overflow_in_Y_is_refused():
    """The same guard on the targets: refused, naming Y."""
    net32 = cbp.Network([N_INPUTS, 2], dtype="float32", seed=0)
    Y = _base_Y()
    Y[1, 1] = 1e300
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(ValueError, match=r"Y "):
            net32.gradients(_base_X(), Y, "mse")


@pytest.mark.parametrize("argument", ["Y", "sample_weight"])
def test_float32_overflow_in_targets_and_weights_names_the_value(argument):
    """Y and sample_weight should be refused as X is: no warning, value named."""
    net32 = cbp.Network([N_INPUTS, 2], dtype="float32", seed=0)
    Y = _base_Y()
    weight = np.ones(N_SAMPLES)
    if argument == "Y":
        Y[1, 1] = 1e300
    else:
        weight[1] = 1e300
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.raises(ValueError, match=rf"{argument} .*1e\+300"):
            net32.gradients(_base_X(), Y, "mse", sample_weight=weight)


# The constructor


@pytest.mark.parametrize("layer_sizes, error, message", [
    ([3], ValueError, r"layer_sizes=\[3\] needs at least 2 entries"),
    ([], ValueError, r"layer_sizes=\[\] needs at least 2 entries"),
    ([3, 0], ValueError, r"layer_sizes=\[3, 0\] must hold positive integers; got 0"),
    ([3, -2, 1], ValueError, r"positive integers; got -2"),
    ([3, 2.5], ValueError, r"positive integers; got 2.5"),
    ([3, True], ValueError, r"positive integers; got True"),
    ([3, "4"], ValueError, r"positive integers; got '4'"),
    (None, TypeError, r"layer_sizes=None must be a sequence"),
    (5, TypeError, r"layer_sizes=5 must be a sequence"),
])
def test_bad_layer_sizes(layer_sizes, error, message):
    with pytest.raises(error, match=message):
        cbp.Network(layer_sizes)


def test_numpy_integer_layer_sizes_are_accepted():
    net = cbp.Network(np.array([3, 4, 2]), seed=0)
    assert net.layer_sizes == (3, 4, 2)
    assert all(type(s) is int for s in net.layer_sizes)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"activation": "swish"}, ValueError, r"activation='swish' is not one of"),
    ({"activation": ["relu", "swish"]}, ValueError, r"activation='swish'"),
    # softmax is an output, not a hidden activation
    ({"activation": "softmax"}, ValueError, r"activation='softmax' is not one of"),
    ({"activation": ["relu"]}, ValueError,
     r"activation has 1 names but the network has 2 hidden layers"),
    ({"activation": ["relu"] * 3}, ValueError, r"activation has 3 names"),
    ({"activation": 5}, TypeError, r"activation=5 must be a name or a list"),
    ({"output": "relu"}, ValueError, r"output='relu' is not one of"),
    ({"dtype": "int32"}, ValueError, r"dtype='int32' is not supported"),
    ({"dtype": "float16"}, ValueError, r"dtype='float16' is not supported"),
    ({"dtype": np.complex128}, ValueError, r"dtype=.*complex128.* is not supported"),
    ({"dtype": "nonsense"}, TypeError, r"dtype='nonsense' is not a dtype"),
])
def test_bad_constructor_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        cbp.Network([3, 4, 4, 2], **kwargs)


def test_softmax_needs_two_outputs():
    """A softmax over one unit is constant 1: refused rather than silently useless."""
    with pytest.raises(ValueError, match=r"softmax.*at least 2 output units"):
        cbp.Network([3, 4, 1], output="softmax")


def test_unknown_activation_refused_without_hidden_layers():
    """A misspelt activation is an error even when no hidden layer would use it."""
    with pytest.raises(ValueError, match="swish"):
        cbp.Network([3, 2], activation="swish")


@pytest.mark.parametrize("dtype", ["float32", "float64", np.float32, np.dtype("f8")])
def test_dtype_spellings(dtype):
    net = cbp.Network([3, 2], dtype=dtype, seed=0)
    assert net.dtype == np.dtype(dtype)
    assert net.params.dtype == np.dtype(dtype)
    assert all(W.dtype == np.dtype(dtype) for W in net.weights)


# Initialisation and the parameter buffer


def test_seeded_initialisation_is_reproducible():
    sizes = [4, 6, 5, 3]
    first = cbp.Network(sizes, activation=["relu", "tanh"], seed=42)
    second = cbp.Network(sizes, activation=["relu", "tanh"], seed=42)
    other = cbp.Network(sizes, activation=["relu", "tanh"], seed=43)
    from_generator = cbp.Network(sizes, activation=["relu", "tanh"],
                                 seed=np.random.default_rng(42))
    np.testing.assert_array_equal(first.params, second.params)
    np.testing.assert_array_equal(first.params, from_generator.params)
    assert not np.array_equal(first.params, other.params)
    # initialize() with the same seed draws the same values again.
    first.params[...] = 0
    first.initialize(42)
    np.testing.assert_array_equal(first.params, second.params)


def test_unseeded_initialisations_differ():
    a = cbp.Network([4, 6, 3])
    b = cbp.Network([4, 6, 3])
    assert not np.array_equal(a.params, b.params)


def test_weights_and_biases_are_views_of_params():
    """Shapes (n_out, n_in) and (n_out,), laid out W then b, layer by layer."""
    sizes = [4, 6, 5, 3]
    net = cbp.Network(sizes, seed=0)
    assert net.n_params == sum(i * o + o for i, o in zip(sizes[:-1], sizes[1:]))
    assert net.params.shape == (net.n_params,)
    for W, b, n_in, n_out in zip(net.weights, net.biases, sizes[:-1], sizes[1:]):
        assert W.shape == (n_out, n_in)
        assert b.shape == (n_out,)
        assert np.shares_memory(W, net.params) and np.shares_memory(b, net.params)
    layout = np.concatenate([p.ravel() for W, b in zip(net.weights, net.biases)
                             for p in (W, b)])
    np.testing.assert_array_equal(layout, net.params)

    # Writing through a view changes params and the network's output.
    X = np.ones((1, 4))
    before = net.forward(X)
    net.biases[-1][1] += 1.0
    assert net.params[-2] == net.biases[-1][1]
    after = net.forward(X)
    assert after[0, 1] == pytest.approx(before[0, 1] + 1.0, rel=1e-14)
    # Writing params changes the views.
    net.params[0] = 123.0
    assert net.weights[0][0, 0] == 123.0


def test_gradients_are_shaped_like_the_parameters():
    """Gradients come back shaped like the weights and biases, in their dtype."""
    net = cbp.Network([4, 6, 3], seed=0)
    _, grad_weights, grad_biases = net.gradients(np.ones((2, 4)), np.ones((2, 3)),
                                                 "mse")
    for g, W in zip(grad_weights, net.weights):
        assert g.shape == W.shape
    for g, b in zip(grad_biases, net.biases):
        assert g.shape == b.shape
    assert all(g.dtype == np.float64 for g in grad_weights + grad_biases)
    # They are fresh arrays, not the parameters themselves.
    assert not any(np.shares_memory(g, net.params) for g in grad_weights + grad_biases)


HE = ("relu", "leaky_relu", "elu", "gelu", "softplus")


@pytest.mark.parametrize("activation", ["identity", "sigmoid", "tanh", *HE])
def test_initial_scales(activation):
    """He N(0, 2 / n_in) before rectifiers, Glorot U(-r, r) elsewhere; zero biases.

    Glorot's r = sqrt(6 / (n_in + n_out)) gives a standard deviation r / sqrt(3).
    With tens of thousands of draws the sample standard deviation is within 1%.
    """
    n_in, n_hidden, n_out = 300, 200, 100
    net = cbp.Network([n_in, n_hidden, n_out], activation=activation, seed=0)
    W_hidden, W_out = net.weights

    if activation in HE:
        expected_std = np.sqrt(2.0 / n_in)
    else:
        limit = np.sqrt(6.0 / (n_in + n_hidden))
        expected_std = limit / np.sqrt(3.0)
        assert np.abs(W_hidden).max() <= limit
    assert W_hidden.std() == pytest.approx(expected_std, rel=0.03)
    assert abs(W_hidden.mean()) < 0.05 * expected_std

    # The output layer (identity here) always uses Glorot.
    limit = np.sqrt(6.0 / (n_hidden + n_out))
    assert np.abs(W_out).max() <= limit
    assert np.abs(W_out).max() > 0.99 * limit
    assert W_out.std() == pytest.approx(limit / np.sqrt(3.0), rel=0.03)
    assert all(np.all(b == 0) for b in net.biases)
