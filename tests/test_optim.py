"""The optimizers against their published update rules and against torch.optim.

Each rule is written out below in plain NumPy, from the algorithm boxes of the
PyTorch documentation (which follow the original papers), without calling cbp.
The gradients come from :meth:`cbp.Network.gradients`, which has its own tests;
what is checked here is the update, its state and its step counting, both
through :meth:`Optimizer.step` and through the epoch loop of the trainer.
"""

import copy

import numpy as np
import pytest

import cbp
from cbp.optim import SGD, Adam, AdamW, Optimizer, RMSprop, Rprop

N_SAMPLES = 24
BATCH = 4
SIZES = (3, 5, 2)

# Rounding differs between the core (one scalar loop, double accumulators) and
# the vectorised NumPy rules by a few ulps per step; 1e-12 leaves a wide margin
# over 6 to 12 steps while catching any slip in the rule itself.
RTOL64 = 1e-12
# float32 against float64 after a few small steps.
RTOL32 = 2e-5


# -- plain NumPy transcriptions of the update rules --------------------------------


class ReferenceSGD:
    """SGD with momentum, dampening, Nesterov and L2 weight decay."""

    def __init__(self, lr, momentum=0.0, dampening=0.0, nesterov=False,
                 weight_decay=0.0):
        self.lr, self.momentum, self.dampening = lr, momentum, dampening
        self.nesterov, self.weight_decay = nesterov, weight_decay
        self.buf = None

    def step(self, p, g):
        g = g + self.weight_decay * p
        if self.momentum:
            if self.buf is None:
                self.buf = g.copy()
            else:
                self.buf = self.momentum * self.buf + (1 - self.dampening) * g
            g = g + self.momentum * self.buf if self.nesterov else self.buf
        return p - self.lr * g


class ReferenceAdam:
    """Adam (L2 in the gradient) or AdamW (decoupled decay), optional AMSGrad."""

    def __init__(self, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False, decoupled=False):
        self.lr, self.b1, self.b2, self.eps = lr, betas[0], betas[1], eps
        self.weight_decay, self.amsgrad = weight_decay, amsgrad
        self.decoupled = decoupled
        self.t = 0
        self.m = self.v = self.v_max = None

    def step(self, p, g):
        if self.m is None:
            self.m, self.v, self.v_max = (np.zeros_like(p) for _ in range(3))
        self.t += 1
        if self.decoupled:
            p = p * (1 - self.lr * self.weight_decay)
        else:
            g = g + self.weight_decay * p
        self.m = self.b1 * self.m + (1 - self.b1) * g
        self.v = self.b2 * self.v + (1 - self.b2) * g * g
        m_hat = self.m / (1 - self.b1 ** self.t)
        if self.amsgrad:
            self.v_max = np.maximum(self.v_max, self.v)
            v = self.v_max
        else:
            v = self.v
        v_hat = v / (1 - self.b2 ** self.t)
        return p - self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


class ReferenceRMSprop:
    """RMSprop, optionally centered, with momentum and L2 weight decay."""

    def __init__(self, lr, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False):
        self.lr, self.alpha, self.eps = lr, alpha, eps
        self.weight_decay, self.momentum = weight_decay, momentum
        self.centered = centered
        self.v = self.g_avg = self.buf = None

    def step(self, p, g):
        if self.v is None:
            self.v, self.g_avg, self.buf = (np.zeros_like(p) for _ in range(3))
        g = g + self.weight_decay * p
        self.v = self.alpha * self.v + (1 - self.alpha) * g**2
        if self.centered:
            self.g_avg = self.alpha * self.g_avg + (1 - self.alpha) * g
            denom = np.sqrt(self.v - self.g_avg**2) + self.eps
        else:
            denom = np.sqrt(self.v) + self.eps
        if self.momentum > 0:
            self.buf = self.momentum * self.buf + g / denom
            return p - self.lr * self.buf
        return p - self.lr * g / denom


class ReferenceRprop:
    """Rprop with the iRprop- rule: after a sign change the step is skipped."""

    def __init__(self, lr, etas=(0.5, 1.2), step_sizes=(1e-6, 50.0)):
        self.lr, self.etas, self.step_sizes = lr, etas, step_sizes
        self.prev = self.size = None

    def step(self, p, g):
        if self.prev is None:
            self.prev = np.zeros_like(p)
            self.size = np.full_like(p, self.lr)
        agree = g * self.prev
        factor = np.where(agree > 0, self.etas[1],
                          np.where(agree < 0, self.etas[0], 1.0))
        self.size = np.clip(self.size * factor, *self.step_sizes)
        g = np.where(agree < 0, 0.0, g)
        self.prev = g
        return p - np.sign(g) * self.size


# Each case: an id, the cbp optimizer and the reference with the same settings.
CASES = [
    ("sgd", lambda: SGD(lr=0.1), lambda: ReferenceSGD(0.1)),
    ("sgd-momentum", lambda: SGD(lr=0.05, momentum=0.9),
     lambda: ReferenceSGD(0.05, momentum=0.9)),
    ("sgd-dampening", lambda: SGD(lr=0.05, momentum=0.8, dampening=0.3),
     lambda: ReferenceSGD(0.05, momentum=0.8, dampening=0.3)),
    ("sgd-nesterov", lambda: SGD(lr=0.05, momentum=0.9, nesterov=True),
     lambda: ReferenceSGD(0.05, momentum=0.9, nesterov=True)),
    ("sgd-weight-decay", lambda: SGD(lr=0.1, momentum=0.5, weight_decay=0.01),
     lambda: ReferenceSGD(0.1, momentum=0.5, weight_decay=0.01)),
    ("adam", lambda: Adam(lr=0.01), lambda: ReferenceAdam(0.01)),
    ("adam-weight-decay", lambda: Adam(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1),
     lambda: ReferenceAdam(0.01, betas=(0.8, 0.99), weight_decay=0.1)),
    ("adam-amsgrad", lambda: Adam(lr=0.01, amsgrad=True),
     lambda: ReferenceAdam(0.01, amsgrad=True)),
    ("adamw", lambda: AdamW(lr=0.01, weight_decay=0.1),
     lambda: ReferenceAdam(0.01, weight_decay=0.1, decoupled=True)),
    ("adamw-amsgrad", lambda: AdamW(lr=0.01, weight_decay=0.1, amsgrad=True),
     lambda: ReferenceAdam(0.01, weight_decay=0.1, amsgrad=True, decoupled=True)),
    ("rmsprop", lambda: RMSprop(lr=0.01), lambda: ReferenceRMSprop(0.01)),
    ("rmsprop-centered", lambda: RMSprop(lr=0.01, alpha=0.9, centered=True),
     lambda: ReferenceRMSprop(0.01, alpha=0.9, centered=True)),
    ("rmsprop-momentum", lambda: RMSprop(lr=0.01, momentum=0.9),
     lambda: ReferenceRMSprop(0.01, momentum=0.9)),
    ("rmsprop-weight-decay", lambda: RMSprop(lr=0.01, weight_decay=0.1, centered=True,
                                             momentum=0.5),
     lambda: ReferenceRMSprop(0.01, weight_decay=0.1, centered=True, momentum=0.5)),
    ("rprop", lambda: Rprop(lr=0.05), lambda: ReferenceRprop(0.05)),
    ("rprop-etas", lambda: Rprop(lr=0.2, etas=(0.3, 1.5), step_sizes=(1e-3, 0.25)),
     lambda: ReferenceRprop(0.2, etas=(0.3, 1.5), step_sizes=(1e-3, 0.25))),
]
CASE_IDS = [case[0] for case in CASES]


# -- helpers -------------------------------------------------------------------


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(N_SAMPLES, SIZES[0]))
    Y = np.column_stack([np.sin(X[:, 0]) + X[:, 1], X[:, 2] * X[:, 0]])
    return X, Y


def make_network(dtype="float64"):
    return cbp.Network(SIZES, activation="tanh", dtype=dtype, seed=3)


def flat_gradient(net, X, Y):
    """The gradient of the mean MSE in the layout of ``net.params`` (W, then b)."""
    _, grad_w, grad_b = net.gradients(X, Y, "mse")
    pieces = [np.concatenate([W.ravel(), b]) for W, b in zip(grad_w, grad_b)]
    return np.concatenate(pieces)


def batches(X, Y, size):
    for start in range(0, X.shape[0], size):
        yield X[start:start + size], Y[start:start + size]


def reference_run(make_reference, X, Y, batch, n_epochs):
    """Apply the NumPy rule to the gradients of successive batches, in order."""
    net = make_network()
    rule = make_reference()
    for _ in range(n_epochs):
        for X_b, Y_b in batches(X, Y, batch):
            net.params[...] = rule.step(net.params.copy(), flat_gradient(net, X_b, Y_b))
    return net.params.copy()


def relative_error(actual, expected):
    return np.max(np.abs(actual - expected)) / np.max(np.abs(expected))


def step_run(optimizer, X, Y, batch, n_epochs, dtype="float64"):
    """Apply ``optimizer.step`` to the gradients of successive batches, in order."""
    net = make_network(dtype)
    for _ in range(n_epochs):
        for X_b, Y_b in batches(X, Y, batch):
            optimizer.step(net.params, flat_gradient(net, X_b, Y_b))
    return net.params.copy()


# -- Optimizer.step against the NumPy rules -------------------------------------------


@pytest.mark.parametrize("name, make_optimizer, make_reference", CASES, ids=CASE_IDS)
def test_step_matches_numpy_rule(data, name, make_optimizer, make_reference):
    X, Y = data
    optimizer = make_optimizer()
    actual = step_run(optimizer, X, Y, BATCH, n_epochs=1)
    expected = reference_run(make_reference, X, Y, BATCH, n_epochs=1)
    assert optimizer.step_count == N_SAMPLES // BATCH
    assert not np.array_equal(actual, make_network().params)
    assert relative_error(actual, expected) <= RTOL64


@pytest.mark.parametrize("name, make_optimizer, make_reference", CASES, ids=CASE_IDS)
def test_float32_follows_float64(data, name, make_optimizer, make_reference):
    X, Y = data
    p64 = step_run(make_optimizer(), X, Y, BATCH, n_epochs=1)
    p32 = step_run(make_optimizer(), X, Y, BATCH, n_epochs=1, dtype="float32")
    assert p32.dtype == np.float32
    assert relative_error(p32.astype(np.float64), p64) <= RTOL32


def test_step_leaves_gradient_untouched(data):
    X, Y = data
    net = make_network()
    grad = flat_gradient(net, X, Y)
    kept = grad.copy()
    Adam(lr=0.1, weight_decay=0.5).step(net.params, grad)
    np.testing.assert_array_equal(grad, kept)


def test_step_rejects_mismatched_gradient():
    net = make_network()
    with pytest.raises(ValueError, match="grad has shape"):
        SGD().step(net.params, np.zeros(net.n_params + 1))
    with pytest.raises(TypeError, match="params"):
        SGD().step(list(net.params), np.zeros(net.n_params))


# -- the trainer's epoch loop against the NumPy rules ---------------------------------


@pytest.mark.parametrize("name, make_optimizer, make_reference", CASES, ids=CASE_IDS)
def test_epoch_loop_matches_numpy_rule(data, name, make_optimizer, make_reference):
    X, Y = data
    optimizer = make_optimizer()
    net = make_network()
    # Rprop always trains on one full batch, so it needs epochs to make steps.
    full_batch = optimizer.full_batch
    batch = N_SAMPLES if full_batch else BATCH
    n_epochs = 6 if full_batch else 2
    trainer = cbp.Trainer(net, "mse", optimizer=optimizer, batch_size=batch,
                          epochs=n_epochs, shuffle=False, verbose=0)
    trainer.fit(X, Y)
    expected = reference_run(make_reference, X, Y, batch, n_epochs)
    assert optimizer.step_count == n_epochs * (N_SAMPLES // batch)
    assert relative_error(net.params, expected) <= RTOL64


# -- state_dict and load_state_dict -------------------------------------------------


@pytest.mark.parametrize("name, make_optimizer, make_reference", CASES, ids=CASE_IDS)
def test_state_dict_round_trip_continues_identically(data, name, make_optimizer,
                                                     make_reference):
    X, Y = data
    parts = list(batches(X, Y, BATCH))
    net = make_network()
    optimizer = make_optimizer()
    for X_b, Y_b in parts[:3]:
        optimizer.step(net.params, flat_gradient(net, X_b, Y_b))
    saved_state = copy.deepcopy(optimizer.state_dict())
    saved_params = net.params.copy()

    for X_b, Y_b in parts[3:]:
        optimizer.step(net.params, flat_gradient(net, X_b, Y_b))

    # A fresh optimizer built with other hyperparameters takes the saved ones.
    resumed = type(optimizer)(lr=0.5)
    resumed.load_state_dict(saved_state)
    assert resumed.hyperparameters() == optimizer.hyperparameters()
    assert resumed.step_count == 3
    other = make_network()
    other.params[...] = saved_params
    for X_b, Y_b in parts[3:]:
        resumed.step(other.params, flat_gradient(other, X_b, Y_b))
    np.testing.assert_array_equal(other.params, net.params)
    assert resumed.step_count == optimizer.step_count


def test_state_dict_is_a_copy(data):
    X, Y = data
    net = make_network()
    optimizer = Adam(lr=0.1)
    optimizer.step(net.params, flat_gradient(net, X, Y))
    saved = optimizer.state_dict()
    kept = saved["state"].copy()
    optimizer.step(net.params, flat_gradient(net, X, Y))
    np.testing.assert_array_equal(saved["state"], kept)


def test_load_state_dict_rejects_other_optimizer():
    state = SGD(lr=0.1).state_dict()
    with pytest.raises(ValueError, match="SGD"):
        Adam().load_state_dict(state)


def test_trainer_state_dict_resumes_training(data):
    """Two fits of one epoch each, via a saved trainer state, equal one of two."""
    X, Y = data
    net_once = make_network()
    cbp.Trainer(net_once, "mse", optimizer=Adam(lr=0.01), batch_size=BATCH, epochs=2,
                seed=5, verbose=0).fit(X, Y)

    net_twice = make_network()
    first = cbp.Trainer(net_twice, "mse", optimizer=Adam(lr=0.01), batch_size=BATCH,
                        epochs=1, seed=5, verbose=0)
    first.fit(X, Y)
    state = copy.deepcopy(first.state_dict())
    second = cbp.Trainer(net_twice, "mse", optimizer=Adam(lr=0.3), batch_size=BATCH,
                         epochs=1, seed=99, verbose=0)
    second.load_state_dict(state)
    second.fit(X, Y)
    np.testing.assert_array_equal(net_twice.params, net_once.params)


def test_optimizers_are_optimizers():
    for _, make_optimizer, _ in CASES:
        assert isinstance(make_optimizer(), Optimizer)


# -- torch.optim itself ------------------------------------------------------------


def torch_optimizer(torch, optimizer, parameters):
    """The torch.optim optimizer with the hyperparameters of a cbp optimizer."""
    hp = optimizer.hyperparameters()
    classes = {SGD: torch.optim.SGD, Adam: torch.optim.Adam, AdamW: torch.optim.AdamW,
               RMSprop: torch.optim.RMSprop, Rprop: torch.optim.Rprop}
    return classes[type(optimizer)](parameters, **hp)


@pytest.mark.parametrize("name, make_optimizer, make_reference", CASES, ids=CASE_IDS)
def test_matches_torch_optim(data, name, make_optimizer, make_reference):
    torch = pytest.importorskip("torch")
    X, Y = data
    net = make_network()
    model = torch.nn.Sequential(
        torch.nn.Linear(SIZES[0], SIZES[1]), torch.nn.Tanh(),
        torch.nn.Linear(SIZES[1], SIZES[2]),
    ).double()
    with torch.no_grad():
        linears = [model[0], model[2]]
        for layer, W, b in zip(linears, net.weights, net.biases):
            layer.weight.copy_(torch.from_numpy(W.copy()))
            layer.bias.copy_(torch.from_numpy(b.copy()))

    optimizer = make_optimizer()
    reference = torch_optimizer(torch, optimizer, model.parameters())
    batch = N_SAMPLES if optimizer.full_batch else BATCH
    n_steps = 0
    for _ in range(6 if optimizer.full_batch else 2):
        for X_b, Y_b in batches(X, Y, batch):
            optimizer.step(net.params, flat_gradient(net, X_b, Y_b))
            reference.zero_grad()
            out = model(torch.from_numpy(X_b))
            # cbp's "mse": half the squared error summed over outputs, batch mean.
            loss = 0.5 * ((out - torch.from_numpy(Y_b)) ** 2).sum(dim=1).mean()
            loss.backward()
            reference.step()
            n_steps += 1
    assert n_steps >= 6

    expected = np.concatenate([
        np.concatenate([layer.weight.detach().numpy().ravel(),
                        layer.bias.detach().numpy()])
        for layer in linears
    ])
    assert relative_error(net.params, expected) <= 1e-10


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, make, make_reference", CASES, ids=[c[0] for c in CASES])
def test_update_split_over_two_threads_is_bit_identical(name, make, make_reference,
                                                        dtype):
    """A buffer long enough to be updated in two halves at once gives the same bits.

    The length is odd so that the second half is not a whole number of vectors.
    """
    from cbp import _optim_step

    n = (1 << 20) + 37
    rng = np.random.default_rng(5)
    start = rng.normal(size=n).astype(dtype)
    results = []
    for threads in (1, 2):
        optimizer = make()
        params = start.copy()
        optimizer.prepare(n, dtype)
        config = optimizer.config()
        config["threads"] = threads
        for step in (1, 2, 3):
            grad = np.random.default_rng(step).normal(size=n).astype(dtype)
            _optim_step.step(config, step, params, grad, *optimizer.buffers())
        results.append((params, optimizer.state.copy()))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
    assert not np.array_equal(results[0][0], start)
