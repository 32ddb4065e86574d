"""scikit-learn's estimator checks, run on cbp's MLPClassifier and MLPRegressor."""

import pytest

pytest.importorskip("sklearn")

from sklearn.utils.estimator_checks import parametrize_with_checks

from cbp.sklearn import MLPClassifier, MLPRegressor

# Small networks and few epochs keep the whole suite to seconds; scikit-learn's
# own suite runs its MLPs with max_iter=100 for the same reason.
ESTIMATORS = [
    MLPClassifier(hidden_layer_sizes=(20,), max_iter=100, random_state=0),
    MLPRegressor(hidden_layer_sizes=(20,), max_iter=100, random_state=0),
    # The other solvers take other paths through fit: full-batch L-BFGS, and
    # SGD with momentum and the adaptive rate. Early stopping is left to
    # test_sklearn.py: the checks' 10-sample data sets cannot spare the 2
    # validation samples it needs, and there scikit-learn's MLP raises too.
    MLPClassifier(hidden_layer_sizes=(20,), solver="lbfgs", max_iter=100,
                  random_state=0),
    MLPRegressor(hidden_layer_sizes=(20,), solver="sgd", learning_rate="adaptive",
                 max_iter=100, random_state=0),
]


def expected_failed_checks(estimator):
    """Return the checks known to fail, each with the reason."""
    return {}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
