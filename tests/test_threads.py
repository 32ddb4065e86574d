"""Training and prediction from several Python threads at once.

The core releases the GIL for whole epochs and forward passes, so two threads
really run at the same time; the results must not depend on it. BLAS is held to
one thread for the whole module, once and process-wide, because results are
compared bit for bit and a threaded BLAS may split sums differently run to run.
"""

import threading

import numpy as np
import pytest

import cbp
from cbp.optim import SGD, Adam

threadpoolctl = pytest.importorskip("threadpoolctl")


@pytest.fixture(autouse=True, scope="module")
def one_blas_thread():
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        yield


def run_in_threads(*jobs):
    """Run the callables in threads started together; return their results."""
    barrier = threading.Barrier(len(jobs))
    results = [None] * len(jobs)
    errors = []

    def worker(i, job):
        try:
            barrier.wait()
            results[i] = job()
        except BaseException as error:  # re-raised in the main thread below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(i, job))
               for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    if errors:
        raise errors[0]
    return results


def make_problem(seed, n=2000):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 20))
    Y = np.tanh(X[:, :4] @ rng.normal(size=(4, 3)))
    return X, Y


def make_training(net, X, Y, optimizer, seed):
    """A job training ``net`` on (X, Y) and returning its final parameters."""
    def job():
        trainer = cbp.Trainer(net, "mse", optimizer=optimizer, batch_size=16,
                              epochs=3, seed=seed, verbose=0)
        trainer.fit(X, Y)
        return net.params.copy()
    return job


def training_jobs():
    base = cbp.Network([20, 64, 64, 3], activation="tanh", seed=0)
    # The copy shares the architecture object with the original.
    other = base.copy()
    X_a, Y_a = make_problem(1)
    X_b, Y_b = make_problem(2)
    return (make_training(base, X_a, Y_a, Adam(lr=0.01), seed=3),
            make_training(other, X_b, Y_b, SGD(lr=0.05, momentum=0.9), seed=4))


def test_concurrent_trainers_match_sequential_runs():
    sequential = [job() for job in training_jobs()]
    concurrent = run_in_threads(*training_jobs())
    assert not np.array_equal(sequential[0], sequential[1])
    for alone, together in zip(sequential, concurrent):
        np.testing.assert_array_equal(together, alone)


def test_concurrent_predictions_with_shared_network():
    net = cbp.Network([20, 64, 64, 3], activation="relu", seed=5)
    # More rows than one prediction chunk, so each call loops over chunks.
    X_a, _ = make_problem(6, n=9000)
    X_b, _ = make_problem(7, n=7000)
    expected = [net.predict(X_a), net.predict(X_b)]

    def predict_repeatedly(X):
        return [net.predict(X) for _ in range(3)]

    results = run_in_threads(lambda: predict_repeatedly(X_a),
                             lambda: predict_repeatedly(X_b))
    for outputs, want in zip(results, expected):
        for output in outputs:
            np.testing.assert_array_equal(output, want)
