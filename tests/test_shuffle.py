"""The epoch shuffle: cbp's own generator, the permutation it draws, and its use.

The generator (SplitMix64 with Lemire's bounded integers) is written out again
here with Python integers, so the test pins the exact sequence: a fit shuffles
the same way on every platform and compiler.
"""

import numpy as np
import pytest

import cbp
from cbp import _epoch
from cbp.optim import SGD

MASK = (1 << 64) - 1


def splitmix64(state):
    """Return (next state, output) of SplitMix64."""
    state = (state + 0x9E3779B97F4A7C15) & MASK
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return state, z ^ (z >> 31)


def bounded(state, bound):
    """Lemire's multiply-shift draw in [0, bound) with rejection."""
    state, r = splitmix64(state)
    product = r * bound
    low = product & MASK
    if low < bound:
        threshold = (-bound % (1 << 64)) % bound
        while low < threshold:
            state, r = splitmix64(state)
            product = r * bound
            low = product & MASK
    return state, product >> 64


def reference_permutation(n, state):
    order = list(range(n))
    for i in range(n - 1, 0, -1):
        state, j = bounded(state, i + 1)
        order[i], order[j] = order[j], order[i]
    return order, state


@pytest.mark.parametrize("n", [1, 2, 3, 10, 257, 1000])
@pytest.mark.parametrize("seed_word", [0, 1, 0xDEADBEEF, MASK])
def test_permutation_matches_python_reference(n, seed_word):
    order = np.empty(n, dtype=np.intp)
    state = np.array([seed_word], dtype=np.uint64)
    _epoch.shuffle_indices(order, state)
    expected, expected_state = reference_permutation(n, seed_word)
    assert order.tolist() == expected
    assert int(state[0]) == expected_state
    assert sorted(order.tolist()) == list(range(n))


def test_draws_are_uniform():
    # 20,000 shuffles of 4 items: every item lands in every slot about 1/4 of the
    # time (a biased draw, e.g. a plain modulo of a short range, would skew it).
    counts = np.zeros((4, 4))
    order = np.empty(4, dtype=np.intp)
    state = np.array([12345], dtype=np.uint64)
    for _ in range(20_000):
        _epoch.shuffle_indices(order, state)
        counts[order, np.arange(4)] += 1
    expected = 20_000 / 4
    # Binomial standard deviation is about 61; 5 sigma.
    assert np.abs(counts - expected).max() < 5 * np.sqrt(20_000 * 0.25 * 0.75)


@pytest.mark.parametrize("a, b", [
    (0, 0), (1, 1), (MASK, MASK), (MASK, 2), (1 << 63, 3), (0xFFFFFFFF, 0xFFFFFFFF),
    (0x123456789ABCDEF0, 0x0FEDCBA987654321), (MASK, 1), ((1 << 32) + 1, 1 << 32),
])
def test_high_word_of_product(a, b):
    high, low, high_portable, low_portable = _epoch._mul_high_check(a, b)
    assert (high, low) == ((a * b) >> 64, (a * b) & MASK)
    assert (high_portable, low_portable) == (high, low)


def test_high_word_of_product_random():
    rng = np.random.default_rng(0)
    for a, b in rng.integers(0, MASK, size=(2000, 2), dtype=np.uint64, endpoint=True):
        a, b = int(a), int(b)
        assert _epoch._mul_high_check(a, b) == ((a * b) >> 64, (a * b) & MASK,
                                               (a * b) >> 64, (a * b) & MASK)


def test_shuffle_indices_rejects_bad_state():
    with pytest.raises(ValueError, match="one 64-bit word"):
        _epoch.shuffle_indices(np.empty(3, dtype=np.intp), np.zeros(2, np.uint64))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n_features", [3, 16, 200])
def test_shuffled_epoch_equals_unshuffled_epoch_on_permuted_rows(dtype, n_features):
    # The trainer's first epoch visits the rows in the order shuffle_indices
    # draws from the trainer's seed; training on the rows already in that order
    # without shuffling must give the same parameters. Covers both gather paths
    # (short rows fetched a batch ahead, long rows a few rows ahead).
    rng = np.random.default_rng(3)
    n = 203
    X = rng.normal(size=(n, n_features)).astype(dtype)
    Y = rng.normal(size=(n, 2)).astype(dtype)
    seed = 11

    def trained(X, Y, shuffle):
        net = cbp.Network([n_features, 7, 2], dtype=dtype, seed=0)
        cbp.Trainer(net, "mse", optimizer=SGD(lr=0.05, momentum=0.9), batch_size=16,
                    epochs=1, shuffle=shuffle, seed=seed, verbose=0).fit(X, Y)
        return net.params

    state = np.random.SeedSequence(seed).generate_state(1, np.uint64)
    order = np.empty(n, dtype=np.intp)
    _epoch.shuffle_indices(order, state)
    shuffled = trained(X, Y, True)
    permuted = trained(X[order], Y[order], False)
    tolerance = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(shuffled, permuted, rtol=tolerance, atol=tolerance)
    # And the shuffle did something: unshuffled training on the original order
    # ends elsewhere.
    assert not np.allclose(trained(X, Y, False), shuffled, rtol=1e-3, atol=1e-6)
