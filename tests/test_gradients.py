"""Gradients of cbp.Network, checked three independent ways.

1. Central finite differences of ``Network.loss`` (float64).
2. The same batch through the plain-NumPy reference in ``reference.py``.
3. One tiny network worked by hand, every intermediate value written out.

Then: float32 against float64, saturated logits, integer labels against
one-hot rows, and the loss/output pairs that must be refused.

The largest error each kind of check measures is printed at the end of the
module (visible with ``pytest -s``).
"""

import collections

import numpy as np
import pytest
from reference import forward as reference_forward
from reference import loss_and_gradients as reference_gradients
from reference import sample_losses

import cbp

HIDDEN = (
    "identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus", "gelu"
)

# Every (loss, output) pair the network accepts.
COMBOS = [
    ("mse", "identity"),
    ("mse", "sigmoid"),
    ("mse", "softmax"),
    ("cross_entropy", "softmax"),
    ("binary_cross_entropy", "sigmoid"),
]

N_INPUTS = 3
HIDDEN_WIDTHS = (4, 3, 4)
N_OUTPUTS = 3
N_SAMPLES = 4

# Step of the central differences: truncation error ~ h^2, rounding ~ eps / h.
FD_STEP = 1e-6
# Keep hidden pre-activations this far from 0: relu, leaky_relu and elu have a
# kink (or a jump in curvature) there, and a step of FD_STEP moves z by far less.
KINK_MARGIN = 1e-3

TINY = np.finfo(np.float64).tiny

# Largest error per kind of check, printed when the module finishes.
LARGEST = collections.defaultdict(float)


@pytest.fixture(scope="module", autouse=True)
def report_largest_errors():
    yield
    for kind, value in sorted(LARGEST.items()):
        print(f"\nlargest {kind}: {value:.3e}")


def _record(kind, value):
    LARGEST[kind] = max(LARGEST[kind], float(value))


def relative_error(got, expected):
    """max |got - expected| / max |expected|, over arrays or lists of arrays."""
    if isinstance(got, (list, tuple)):
        got = np.concatenate([np.ravel(g) for g in got])
        expected = np.concatenate([np.ravel(e) for e in expected])
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    return np.max(np.abs(got - expected)) / max(np.max(np.abs(expected)), TINY)


def make_targets(rng, loss, output, n, k):
    """Targets that suit the loss: probabilities, [0, 1] values or any reals."""
    if loss == "cross_entropy":
        # Soft labels: rows of probabilities (one-hot is a special case).
        return rng.dirichlet(np.ones(k), size=n)
    if loss == "binary_cross_entropy" or output != "identity":
        return rng.uniform(0.0, 1.0, size=(n, k))
    return rng.standard_normal((n, k))


def make_problem(depth, activation, loss, output, seed, dtype="float64"):
    """A small network with random biases, and a batch clear of every kink.

    ``depth`` counts weight layers. Inputs are redrawn until no hidden
    pre-activation lies within KINK_MARGIN of 0.
    """
    sizes = [N_INPUTS, *HIDDEN_WIDTHS[: depth - 1], N_OUTPUTS]
    net = cbp.Network(sizes, activation=activation, output=output, dtype=dtype,
                      seed=seed)
    rng = np.random.default_rng(seed)
    for b in net.biases:
        # Non-zero biases so that the bias gradients are not a special case.
        b[...] = rng.normal(0.0, 0.3, size=b.shape)
    Y = make_targets(rng, loss, output, N_SAMPLES, N_OUTPUTS)
    for _ in range(100):
        X = rng.standard_normal((N_SAMPLES, N_INPUTS))
        zs, _outs = reference_forward(net.weights, net.biases, net.activations,
                                      net.output, X)
        hidden = zs[:-1]
        if all(np.min(np.abs(z)) > KINK_MARGIN for z in hidden):
            return net, X, Y
    raise RuntimeError("could not draw inputs away from the kinks")


def finite_difference_gradient(net, objective):
    """Central differences of ``objective()`` over every entry of net.params."""
    grad = np.empty_like(net.params)
    for i in range(net.params.size):
        original = net.params[i]
        net.params[i] = original + FD_STEP
        plus = objective()
        net.params[i] = original - FD_STEP
        minus = objective()
        net.params[i] = original
        grad[i] = (plus - minus) / (2 * FD_STEP)
    return grad


def flat(net, grad_weights, grad_biases):
    """Lay gradients out like net.params (W then b, layer by layer)."""
    parts = []
    for gW, gb in zip(grad_weights, grad_biases):
        parts.extend([gW.ravel(), gb.ravel()])
    return np.concatenate(parts)


def _fd_cases():
    cases = []
    for loss, output in COMBOS:
        # One weight layer: no hidden activation to vary.
        cases.append(pytest.param(1, "identity", loss, output,
                                  id=f"depth1-{loss}-{output}"))
        for depth in (2, 3, 4):
            for activation in HIDDEN:
                name = f"depth{depth}-{activation}-{loss}-{output}"
                cases.append(pytest.param(depth, activation, loss, output, id=name))
    return cases


# 1. Finite differences


@pytest.mark.parametrize("depth, activation, loss, output", _fd_cases())
def test_gradient_matches_finite_differences(depth, activation, loss, output):
    """The analytic gradient is the derivative of the loss the network reports."""
    seed = 1000 * depth + 10 * HIDDEN.index(activation) + COMBOS.index((loss, output))
    net, X, Y = make_problem(depth, activation, loss, output, seed)

    value, grad_weights, grad_biases = net.gradients(X, Y, loss)
    analytic = flat(net, grad_weights, grad_biases)
    numeric = finite_difference_gradient(net, lambda: net.loss(X, Y, loss))

    error = relative_error(analytic, numeric)
    _record("finite-difference relative error", error)
    assert value == pytest.approx(net.loss(X, Y, loss), rel=1e-14)
    assert np.max(np.abs(analytic)) > 1e-3, "a vanishing gradient would prove nothing"
    assert error < 1e-6


@pytest.mark.parametrize("loss, output", COMBOS)
def test_weighted_l2_gradient_matches_finite_differences(loss, output):
    """Sample weights and the l2 penalty are differentiated too.

    ``Network.loss`` reports the data term only, so the penalty
    ``l2 / 2 * sum ||W||^2`` is added here before differencing.
    """
    net, X, Y = make_problem(3, "tanh", loss, output, seed=77)
    weight = np.array([0.5, 2.0, 0.0, 1.25])
    l2 = 0.3

    def objective():
        penalty = 0.5 * l2 * sum(float((W * W).sum()) for W in net.weights)
        return net.loss(X, Y, loss, sample_weight=weight) + penalty

    value, grad_weights, grad_biases = net.gradients(X, Y, loss, weight, l2)
    analytic = flat(net, grad_weights, grad_biases)
    numeric = finite_difference_gradient(net, objective)

    error = relative_error(analytic, numeric)
    _record("finite-difference relative error (weights, l2)", error)
    assert value == pytest.approx(objective(), rel=1e-14)
    assert error < 1e-6


def test_cross_entropy_unnormalised_targets():
    """Target rows need not sum to 1 (counts, say): the delta scales with sum(y)."""
    net, X, _ = make_problem(2, "softplus", "cross_entropy", "softmax", seed=31)
    Y = np.random.default_rng(32).uniform(0.0, 3.0, size=(N_SAMPLES, N_OUTPUTS))

    value, grad_weights, grad_biases = net.gradients(X, Y, "cross_entropy")
    analytic = flat(net, grad_weights, grad_biases)
    numeric = finite_difference_gradient(net, lambda: net.loss(X, Y, "cross_entropy"))
    ref_value, ref_weights, ref_biases = reference_gradients(
        net.weights, net.biases, net.activations, net.output, X, Y, "cross_entropy"
    )

    error = relative_error(analytic, numeric)
    _record("finite-difference relative error (unnormalised targets)", error)
    assert error < 1e-6
    assert value == pytest.approx(ref_value, rel=1e-12)
    assert relative_error(grad_weights + grad_biases, ref_weights + ref_biases) < 1e-12


# 2. The plain-NumPy reference


def _reference_cases():
    cases = []
    for loss, output in COMBOS:
        for activation in HIDDEN:
            cases.append(pytest.param(activation, loss, output,
                                      id=f"{activation}-{loss}-{output}"))
    return cases


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("l2", [0.0, 0.05])
@pytest.mark.parametrize("activation, loss, output", _reference_cases())
def test_gradient_matches_reference(activation, loss, output, l2, weighted):
    """Loss and every gradient agree with the NumPy reference to 1e-12."""
    net, X, Y = make_problem(3, activation, loss, output, seed=5)
    rng = np.random.default_rng(11)
    weight = rng.uniform(0.1, 3.0, size=N_SAMPLES) if weighted else None

    value, grad_weights, grad_biases = net.gradients(X, Y, loss, weight, l2)
    ref_value, ref_weights, ref_biases = reference_gradients(
        net.weights, net.biases, net.activations, net.output, X, Y, loss, weight, l2
    )

    loss_error = abs(value - ref_value) / abs(ref_value)
    grad_error = max(relative_error(g, r) for g, r in
                     zip(grad_weights + grad_biases, ref_weights + ref_biases))
    _record("reference loss relative error", loss_error)
    _record("reference gradient relative error", grad_error)
    assert loss_error < 1e-12
    assert grad_error < 1e-12
    # The loss without l2, as Network.loss reports it, agrees as well.
    data_value = reference_gradients(net.weights, net.biases, net.activations,
                                     net.output, X, Y, loss, weight)[0]
    assert net.loss(X, Y, loss, weight) == pytest.approx(data_value, rel=1e-12)


@pytest.mark.parametrize("activation", HIDDEN)
def test_forward_matches_reference(activation):
    """The outputs themselves, for a network with two different hidden layers."""
    net = cbp.Network([3, 5, 4, 2], activation=[activation, "tanh"],
                      output="softmax", seed=2)
    X = np.random.default_rng(3).standard_normal((6, 3))
    _zs, outs = reference_forward(net.weights, net.biases, net.activations,
                                  net.output, X)
    error = relative_error(net.forward(X), outs[-1])
    _record("reference forward relative error", error)
    assert error < 1e-13


@pytest.mark.parametrize("loss, output", COMBOS)
def test_loss_over_many_chunks_matches_reference(loss, output):
    """Network.loss walks the rows in chunks; weights must follow their rows.

    More samples than one prediction chunk (4096 rows), with uneven weights, so
    a chunk that restarted the weights at row 0 would change the result.
    """
    net = cbp.Network([3, 4, 3], activation="gelu", output=output, seed=12)
    rng = np.random.default_rng(13)
    n = 2 * 4096 + 37
    X = rng.standard_normal((n, 3))
    Y = make_targets(rng, loss, output, n, 3)
    weight = np.linspace(0.0, 2.0, n) ** 3

    value = net.loss(X, Y, loss, sample_weight=weight)
    zs, outs = reference_forward(net.weights, net.biases, net.activations,
                                 net.output, X)

    per_sample = sample_losses(loss, zs[-1], outs[-1], Y)
    expected = (weight * per_sample).sum() / weight.sum()
    error = abs(value - expected) / abs(expected)
    _record("reference loss relative error (chunked)", error)
    assert error < 1e-12
    assert net.gradients(X, Y, loss, weight)[0] == pytest.approx(expected, rel=1e-12)


# 3. A tiny network worked by hand


def test_hand_worked_network():
    """A 2-2-1 network, sigmoid hidden, identity output, mse, one sample.

    Every value below was worked out from the definitions; the tolerance only
    allows for the last digit of the printed decimals.
    """
    x = np.array([[1.0, 2.0]])
    y = np.array([[0.5]])
    W1 = np.array([[0.5, -0.25], [0.25, 0.5]])
    b1 = np.array([0.0, -1.0])
    W2 = np.array([[1.0, -2.0]])
    b2 = np.array([0.5])
    rtol = 1e-14

    # z1 = W1 x + b1 = [0.5 - 0.5 + 0, 0.25 + 1 - 1] = [0, 0.25]
    # a1 = sigmoid(z1) = [0.5, 0.5621765008857981]
    first = cbp.Network([2, 2], output="identity")
    first.weights[0][...] = W1
    first.biases[0][...] = b1
    np.testing.assert_allclose(first.forward(x), [[0.0, 0.25]], rtol=rtol, atol=0)
    first = cbp.Network([2, 2], output="sigmoid")
    first.weights[0][...] = W1
    first.biases[0][...] = b1
    np.testing.assert_allclose(first.forward(x), [[0.5, 0.5621765008857981]],
                               rtol=rtol)

    net = cbp.Network([2, 2, 1], activation="sigmoid", output="identity")
    net.weights[0][...] = W1
    net.biases[0][...] = b1
    net.weights[1][...] = W2
    net.biases[1][...] = b2

    # z2 = W2 a1 + b2 = 0.5 - 2 * 0.5621765008857981 + 0.5 = -0.1243530017715962
    # a2 = z2 (identity output)
    np.testing.assert_allclose(net.forward(x), [[-0.1243530017715962]], rtol=rtol)

    # loss = 1/2 (a2 - y)^2 = 1/2 (-0.6243530017715962)^2 = 0.19490833541060137
    value, grad_weights, grad_biases = net.gradients(x, y, "mse")
    assert value == pytest.approx(0.19490833541060137, rel=rtol)

    # delta2 = a2 - y = -0.6243530017715962 (identity output, one sample)
    # grad_b2 = delta2;  grad_W2 = delta2 a1^T
    #         = [-0.6243530017715962 * 0.5, -0.6243530017715962 * 0.5621765008857981]
    #         = [-0.3121765008857981, -0.3509965858535004]
    np.testing.assert_allclose(grad_biases[1], [-0.6243530017715962], rtol=rtol)
    np.testing.assert_allclose(grad_weights[1], [[-0.3121765008857981,
                                                  -0.3509965858535004]], rtol=rtol)

    # delta1 = W2^T delta2 * a1 (1 - a1)
    #        = [1 * -0.6243530017715962 * 0.25,
    #           -2 * -0.6243530017715962 * 0.5621765008857981 * 0.4378234991142019]
    #        = [-0.15608825044289905, 0.3073491067910359]
    # grad_b1 = delta1;  grad_W1 = delta1 x^T = [[d1_0, 2 d1_0], [d1_1, 2 d1_1]]
    delta1 = [-0.15608825044289905, 0.3073491067910359]
    np.testing.assert_allclose(grad_biases[0], delta1, rtol=rtol)
    np.testing.assert_allclose(
        grad_weights[0],
        [[-0.15608825044289905, -0.3121765008857981],
         [0.3073491067910359, 0.6146982135820718]],
        rtol=rtol,
    )

    # The reference reproduces the same hand-worked numbers.
    ref_value, ref_weights, ref_biases = reference_gradients(
        [W1, W2], [b1, b2], ["sigmoid"], "identity", x, y, "mse"
    )
    assert ref_value == pytest.approx(0.19490833541060137, rel=rtol)
    np.testing.assert_allclose(ref_biases[0], delta1, rtol=rtol)
    np.testing.assert_allclose(ref_weights[1], grad_weights[1], rtol=rtol)


# Float32 against float64


@pytest.mark.parametrize("activation", HIDDEN)
@pytest.mark.parametrize("loss, output", COMBOS)
def test_float32_agrees_with_float64(activation, loss, output):
    """Same parameters and data, cast: float32 results within 1e-4 relative."""
    net64, X, Y = make_problem(3, activation, loss, output, seed=21)
    net32 = cbp.Network(net64.layer_sizes, activation=net64.activations,
                        output=output, dtype="float32")
    net32.params[...] = net64.params
    # Give both networks the very same (float32-representable) values.
    net64.params[...] = net32.params
    X = X.astype(np.float32)
    Y = Y.astype(np.float32)

    out32 = net32.forward(X)
    value32, gw32, gb32 = net32.gradients(X, Y, loss, l2=0.01)
    out64 = net64.forward(X)
    value64, gw64, gb64 = net64.gradients(X, Y, loss, l2=0.01)

    assert out32.dtype == np.float32
    assert all(g.dtype == np.float32 for g in gw32 + gb32)
    assert all(g.dtype == np.float64 for g in gw64 + gb64)
    assert isinstance(value32, float)
    errors = [relative_error(out32, out64),
              abs(value32 - value64) / abs(value64),
              relative_error(gw32 + gb32, gw64 + gb64)]
    _record("float32 vs float64 relative error", max(errors))
    assert max(errors) < 1e-4


# Saturated logits


@pytest.mark.parametrize("target", [0, 1, 2])
def test_softmax_cross_entropy_saturated(target):
    """Logits of +-1e4: the loss stays finite and the delta is exactly a - y.

    With one sample and no hidden layer, grad_b is the output delta itself.
    """
    net = cbp.Network([2, 3], output="softmax")
    net.weights[0][...] = [[1e4, 0.0], [-1e4, 0.0], [0.0, 0.0]]
    net.biases[0][...] = 0.0
    x = np.array([[1.0, 0.0]])
    y = np.eye(3)[[target]]

    value, grad_weights, grad_biases = net.gradients(x, y, "cross_entropy")
    a = net.forward(x)
    ref_value, ref_weights, ref_biases = reference_gradients(
        net.weights, net.biases, (), "softmax", x, y, "cross_entropy"
    )

    # z = [1e4, -1e4, 0]: softmax is exactly [1, 0, 0] in float64.
    np.testing.assert_array_equal(a, [[1.0, 0.0, 0.0]])
    # loss = logsumexp(z) - z_target = 1e4 - z_target
    assert np.isfinite(value)
    assert value == pytest.approx([0.0, 2e4, 1e4][target], rel=1e-15, abs=0)
    assert value == pytest.approx(ref_value, rel=1e-15, abs=0)
    np.testing.assert_array_equal(grad_biases[0], (a - y)[0])
    np.testing.assert_allclose(grad_weights[0], ref_weights[0], rtol=1e-15, atol=0)
    np.testing.assert_allclose(grad_biases[0], ref_biases[0], rtol=1e-15, atol=0)


@pytest.mark.parametrize("y", [[0.0, 1.0], [1.0, 0.0], [0.25, 0.75]])
def test_sigmoid_binary_cross_entropy_saturated(y):
    """Logits of +-1e4 through the sigmoid: finite, exact, delta = a - y."""
    net = cbp.Network([2, 2], output="sigmoid")
    net.weights[0][...] = [[1e4, 0.0], [-1e4, 0.0]]
    net.biases[0][...] = 0.0
    x = np.array([[1.0, 0.0]])
    Y = np.array([y])

    value, grad_weights, grad_biases = net.gradients(x, Y, "binary_cross_entropy")
    a = net.forward(x)
    ref_value, ref_weights, ref_biases = reference_gradients(
        net.weights, net.biases, (), "sigmoid", x, Y, "binary_cross_entropy"
    )

    np.testing.assert_array_equal(a, [[1.0, 0.0]])
    # loss = (1e4 - 1e4 y_0) + (1e4 y_1): the logistic loss of each logit
    expected = 1e4 * (1.0 - y[0]) + 1e4 * y[1]
    assert np.isfinite(value)
    assert value == pytest.approx(expected, rel=1e-15, abs=0)
    assert value == pytest.approx(ref_value, rel=1e-15, abs=0)
    np.testing.assert_array_equal(grad_biases[0], (a - Y)[0])
    np.testing.assert_allclose(grad_weights[0], ref_weights[0], rtol=1e-15, atol=0)


@pytest.mark.parametrize("loss, output", [("cross_entropy", "softmax"),
                                          ("binary_cross_entropy", "sigmoid")])
def test_saturated_deep_network_matches_reference(loss, output):
    """Large weights saturate the hidden tanh and the output; all stays exact."""
    net = cbp.Network([3, 4, 3], activation="tanh", output=output, seed=8)
    for W in net.weights:
        W *= 1e4 / np.abs(W).max()
    rng = np.random.default_rng(9)
    X = rng.standard_normal((5, 3))
    Y = make_targets(rng, loss, output, 5, 3)

    value, grad_weights, grad_biases = net.gradients(X, Y, loss)
    ref_value, ref_weights, ref_biases = reference_gradients(
        net.weights, net.biases, net.activations, net.output, X, Y, loss
    )
    zs, outs = reference_forward(net.weights, net.biases, net.activations,
                                 net.output, X)

    assert np.abs(zs[-1]).max() > 1e3, "the logits must actually saturate"
    assert np.isfinite(value)
    assert all(np.isfinite(g).all() for g in grad_weights + grad_biases)
    assert value == pytest.approx(ref_value, rel=1e-13)
    for got, expected in zip(grad_weights + grad_biases, ref_weights + ref_biases):
        np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(net.forward(X), outs[-1], rtol=1e-15, atol=0)


# Integer labels and mismatched losses


@pytest.mark.parametrize("weighted", [False, True])
def test_integer_labels_equal_one_hot_rows(weighted):
    """cross_entropy takes class labels of shape (n,) as one-hot rows."""
    net = cbp.Network([3, 5, 4], activation="relu", output="softmax", seed=4)
    X = np.random.default_rng(6).standard_normal((6, 3))
    labels = np.array([0, 3, 1, 3, 2, 0])
    one_hot = np.eye(4)[labels]
    weight = np.arange(1.0, 7.0) if weighted else None

    from_labels = net.gradients(X, labels, "cross_entropy", weight)
    from_rows = net.gradients(X, one_hot, "cross_entropy", weight)

    assert from_labels[0] == from_rows[0]
    for a, b in zip(from_labels[1] + from_labels[2], from_rows[1] + from_rows[2]):
        np.testing.assert_array_equal(a, b)
    assert net.loss(X, labels, "cross_entropy", weight) == net.loss(
        X, one_hot, "cross_entropy", weight
    )
    # A wrong label must change the loss, so the comparison above has teeth.
    shifted = (labels + 1) % 4
    assert net.loss(X, shifted, "cross_entropy") != net.loss(X, labels, "cross_entropy")


@pytest.mark.parametrize("loss, output", [
    ("cross_entropy", "identity"),
    ("cross_entropy", "sigmoid"),
    ("binary_cross_entropy", "softmax"),
    ("binary_cross_entropy", "identity"),
])
def test_loss_output_mismatch_raises(loss, output):
    """A loss after the wrong output activation is refused, naming the loss."""
    net = cbp.Network([3, 4, 2], activation="tanh", output=output, seed=0)
    X = np.zeros((2, 3))
    Y = np.array([[0.0, 1.0], [1.0, 0.0]])
    with pytest.raises(ValueError, match=loss):
        net.gradients(X, Y, loss)
    with pytest.raises(ValueError, match=loss):
        net.loss(X, Y, loss)


def test_unknown_loss_raises():
    net = cbp.Network([3, 2], output="identity", seed=0)
    with pytest.raises(ValueError, match="hinge"):
        net.gradients(np.zeros((1, 3)), np.zeros((1, 2)), "hinge")
