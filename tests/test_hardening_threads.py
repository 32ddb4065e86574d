"""Six threads at once: four training their own networks, two predicting with one
shared network. Every result must equal the same work done sequentially.

``tests/test_threads.py`` runs two trainers or two predictors; this mixes both
kinds, both dtypes and several optimizers (each trainer allocates its own
workspace and optimizer state while the others run without the GIL). BLAS is
held to one thread so sums are split the same way in both runs.
"""

import threading

import numpy as np
import pytest

import cbp
from cbp.optim import SGD, Adam, RMSprop

threadpoolctl = pytest.importorskip("threadpoolctl")

TRAINERS = [
    ("float64", lambda: Adam(lr=0.01), "cross_entropy"),
    ("float32", lambda: SGD(lr=0.05, momentum=0.9), "cross_entropy"),
    ("float64", lambda: RMSprop(lr=0.005), "mse"),
    ("float32", lambda: Adam(lr=0.02), "mse"),
]
PREDICTIONS_PER_THREAD = 30


@pytest.fixture(autouse=True, scope="module")
def one_blas_thread():
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        yield


def _problem(seed, n=600, d=12, k=3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    labels = np.argmax(X[:, :k] + 0.3 * rng.normal(size=(n, k)), axis=1)
    return X, labels


def _training_job(i):
    dtype, make_optimizer, loss = TRAINERS[i]
    X, labels = _problem(i)
    output = "softmax" if loss == "cross_entropy" else "identity"
    Y = labels if loss == "cross_entropy" else np.eye(3)[labels]
    net = cbp.Network([12, 24, 16, 3], activation=["tanh", "relu"], output=output,
                      dtype=dtype, seed=10 + i)

    def job():
        trainer = cbp.Trainer(net, loss, make_optimizer(), batch_size=16, epochs=3,
                              seed=20 + i, verbose=0)
        history = trainer.fit(X, Y)
        return net.params.copy(), history["loss"]

    return job


def _prediction_job(shared, X):
    def job():
        return [shared.predict(X) for _ in range(PREDICTIONS_PER_THREAD)]
    return job


def _run_together(jobs):
    barrier = threading.Barrier(len(jobs))
    results = [None] * len(jobs)
    errors = []

    def worker(i, job):
        try:
            barrier.wait()
            results[i] = job()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(i, job))
               for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in threads)
    if errors:
        raise errors[0]
    return results


def _jobs(shared, X_predict):
    return ([_training_job(i) for i in range(len(TRAINERS))]
            + [_prediction_job(shared, X_predict), _prediction_job(shared, X_predict)])


def test_four_trainers_and_two_predictors_match_sequential_runs():
    shared = cbp.Network([12, 40, 3], activation="gelu", output="softmax", seed=5)
    shared_params = shared.params.copy()
    X_predict = np.random.default_rng(9).normal(size=(5000, 12))
    expected_prediction = shared.predict(X_predict)

    sequential = [job() for job in _jobs(shared, X_predict)]
    concurrent = _run_together(_jobs(shared, X_predict))

    for (params_a, loss_a), (params_b, loss_b) in zip(sequential[:4], concurrent[:4]):
        assert params_a.tobytes() == params_b.tobytes()
        assert loss_a == loss_b
        assert np.isfinite(loss_b).all()
    # The trainers really trained (different problems, different results).
    assert len({params.tobytes() for params, _ in concurrent[:4]}) == 4
    for predictions in concurrent[4:]:
        assert len(predictions) == PREDICTIONS_PER_THREAD
        for prediction in predictions:
            assert prediction.tobytes() == expected_prediction.tobytes()
    assert shared.params.tobytes() == shared_params.tobytes()


def test_gradients_and_training_on_one_shared_network_copy():
    """Threads computing gradients of a network while another trains its copy."""
    base = cbp.Network([12, 24, 3], activation="tanh", output="softmax", seed=1)
    X, labels = _problem(3, n=400)
    expected = base.gradients(X, labels, "cross_entropy")
    trained = base.copy()

    def gradients():
        return [base.gradients(X, labels, "cross_entropy") for _ in range(20)]

    def train():
        cbp.Trainer(trained, "cross_entropy", "adam", batch_size=8, epochs=3, seed=0,
                    verbose=0).fit(X, labels)
        return trained.params.copy()

    reference = base.copy()
    cbp.Trainer(reference, "cross_entropy", "adam", batch_size=8, epochs=3, seed=0,
                verbose=0).fit(X, labels)
    results = _run_together([gradients, gradients, train])
    for runs in results[:2]:
        for value, grad_w, grad_b in runs:
            assert value == expected[0]
            for a, b in zip(grad_w + grad_b, expected[1] + expected[2]):
                assert a.tobytes() == b.tobytes()
    assert results[2].tobytes() == reference.params.tobytes()
