"""Behaviour of cbp.sklearn's estimators next to scikit-learn's own MLP."""

import logging
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")

from scipy import sparse
from sklearn import neural_network
from sklearn.base import clone
from sklearn.datasets import (
    load_wine,
    make_classification,
    make_multilabel_classification,
    make_regression,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from cbp.sklearn import MLPClassifier, MLPRegressor


@pytest.fixture(scope="module")
def wine():
    X, y = load_wine(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def blobs():
    X, y = make_classification(n_samples=120, n_features=6, n_informative=4,
                               n_classes=3, random_state=0)
    return X, y


@pytest.fixture(scope="module")
def regression():
    X, y = make_regression(n_samples=100, n_features=5, noise=0.1, random_state=0)
    return X, y / y.std()


def quiet_fit(estimator, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(*args, **kwargs)


def test_import_cbp_needs_no_sklearn():
    """``import cbp`` works when scikit-learn cannot be imported; cbp.sklearn not."""
    code = (
        "import sys; sys.modules['sklearn'] = None\n"
        "import cbp\n"
        "try:\n"
        "    import cbp.sklearn\n"
        "except ImportError:\n"
        "    print('blocked')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "blocked"


def test_lbfgs_follows_sklearn_step_for_step(wine):
    """Same initial weights and the same L-BFGS stopping rule as scikit-learn."""
    X, y = wine
    ours = quiet_fit(MLPClassifier((30,), solver="lbfgs", random_state=3), X, y)
    theirs = quiet_fit(neural_network.MLPClassifier((30,), solver="lbfgs",
                                                    random_state=3), X, y)
    assert ours.n_iter_ == theirs.n_iter_
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-6)
    for a, b in zip(ours.coefs_ + ours.intercepts_,
                    theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_sgd_invscaling_loss_curve_matches_sklearn(regression):
    """Plain SGD (no momentum, fixed order) with invscaling: identical epochs."""
    X, y = regression
    params = dict(hidden_layer_sizes=(8,), solver="sgd", momentum=0.0,
                  learning_rate="invscaling", learning_rate_init=0.05,
                  batch_size=32, shuffle=False, max_iter=15, random_state=0,
                  alpha=1e-2)
    ours = quiet_fit(MLPRegressor(**params), X, y)
    theirs = quiet_fit(neural_network.MLPRegressor(**params), X, y)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-9)
    assert ours.t_ == theirs.t_ == 15 * X.shape[0]


def test_adaptive_rate_stops_like_sklearn(regression):
    """The adaptive rate divides by 5 after each stall and stops below 1e-6."""
    X, y = regression
    params = dict(hidden_layer_sizes=(4,), solver="sgd", learning_rate="adaptive",
                  tol=1e3, n_iter_no_change=1, max_iter=100, random_state=0)
    ours = quiet_fit(MLPRegressor(**params), X, y)
    theirs = quiet_fit(neural_network.MLPRegressor(**params), X, y)
    assert ours.n_iter_ == theirs.n_iter_ < 100


def test_stops_after_n_iter_no_change_without_warning(regression):
    X, y = regression
    reg = MLPRegressor((4,), tol=1e3, n_iter_no_change=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        reg.fit(X, y)
    # The first epoch sets the best loss; the next three do not beat it by tol.
    assert reg.n_iter_ == 4
    assert len(reg.loss_curve_) == 4
    assert reg.best_loss_ == min(reg.loss_curve_)


def test_convergence_warning_at_max_iter(regression):
    X, y = regression
    with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
        MLPRegressor((4,), max_iter=2, random_state=0).fit(X, y)
    with pytest.warns(ConvergenceWarning, match="lbfgs"):
        MLPRegressor((4,), solver="lbfgs", max_iter=2, random_state=0).fit(X, y)


def test_early_stopping_attributes(blobs):
    X, y = blobs
    clf = quiet_fit(MLPClassifier((10,), early_stopping=True, n_iter_no_change=3,
                                  max_iter=300, learning_rate_init=0.01,
                                  random_state=0), X, y)
    assert clf.best_loss_ is None
    assert len(clf.validation_scores_) == clf.n_iter_ < 300
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    with pytest.raises(ValueError, match="validation_fraction"):
        MLPClassifier(early_stopping=True).fit(X[:10], y[:10])


def test_early_stopping_matches_sklearn(blobs):
    """Same split, same scores, same stop and the best weights put back."""
    X, y = blobs
    params = dict(hidden_layer_sizes=(6,), solver="sgd", momentum=0.0,
                  shuffle=False, learning_rate_init=0.2, early_stopping=True,
                  n_iter_no_change=3, max_iter=200, random_state=4)
    ours = quiet_fit(MLPClassifier(**params), X, y)
    theirs = quiet_fit(neural_network.MLPClassifier(**params), X, y)
    assert ours.n_iter_ == theirs.n_iter_ < 200
    np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_)
    for a, b in zip(ours.coefs_, theirs.coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-12)


def test_adaptive_rate_with_early_stopping_matches_sklearn(blobs):
    """With early stopping, a stalled validation score slows the adaptive rate."""
    X, y = blobs
    params = dict(hidden_layer_sizes=(6,), solver="sgd", momentum=0.0,
                  shuffle=False, learning_rate="adaptive", learning_rate_init=0.2,
                  early_stopping=True, n_iter_no_change=2, max_iter=60,
                  random_state=4)
    ours = quiet_fit(MLPClassifier(**params), X, y)
    theirs = quiet_fit(neural_network.MLPClassifier(**params), X, y)
    assert ours.n_iter_ == theirs.n_iter_ > 3 * params["n_iter_no_change"]
    np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_)


def test_partial_fit_with_early_stopping_validates_when_it_can(blobs):
    """Each batch large enough gives a validation score; a tiny one just trains."""
    X, y = blobs
    clf = MLPClassifier((10,), early_stopping=True, random_state=0)
    clf.partial_fit(X, y, classes=np.unique(y))
    clf.partial_fit(X, y)
    assert len(clf.validation_scores_) == 2
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    before = [c.copy() for c in clf.coefs_]
    clf.partial_fit(X[:5], y[:5])
    assert len(clf.validation_scores_) == 2
    assert not np.array_equal(before[0], clf.coefs_[0])


def test_partial_fit_keeps_optimizer_state(blobs):
    """Two partial_fit calls equal a two-epoch fit, Adam's moments included."""
    X, y = blobs
    params = dict(hidden_layer_sizes=(10,), shuffle=False, batch_size=40,
                  random_state=0)
    fitted = quiet_fit(MLPClassifier(max_iter=2, **params), X, y)
    stepped = MLPClassifier(**params)
    stepped.partial_fit(X, y, classes=np.unique(y))
    stepped.partial_fit(X, y)
    for a, b in zip(fitted.coefs_ + fitted.intercepts_,
                    stepped.coefs_ + stepped.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_warm_start_keeps_optimizer_state(regression):
    X, y = regression
    params = dict(hidden_layer_sizes=(10,), shuffle=False, batch_size=25,
                  random_state=0, n_iter_no_change=50)
    once = quiet_fit(MLPRegressor(max_iter=5, **params), X, y)
    twice = quiet_fit(MLPRegressor(max_iter=3, warm_start=True, **params), X, y)
    quiet_fit(twice.set_params(max_iter=2), X, y)
    np.testing.assert_allclose(twice.predict(X), once.predict(X), rtol=1e-10)
    assert twice.t_ == once.t_
    assert len(twice.loss_curve_) == 5


def test_pickle_round_trip_continues_training(blobs):
    X, y = blobs
    clf = MLPClassifier((10,), random_state=0, shuffle=False)
    clf.partial_fit(X, y, classes=np.unique(y))
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))
    clf.partial_fit(X, y)
    restored.partial_fit(X, y)
    np.testing.assert_allclose(restored.predict_proba(X), clf.predict_proba(X),
                               rtol=1e-12)


def test_partial_fit_needs_classes_first(blobs):
    X, y = blobs
    with pytest.raises(ValueError, match="classes"):
        MLPClassifier().partial_fit(X, y)
    assert not hasattr(MLPClassifier(solver="lbfgs"), "partial_fit")


def test_output_layers_and_shapes(blobs, regression):
    X, y = blobs
    binary = quiet_fit(MLPClassifier((7,), max_iter=5, random_state=0), X, y > 0)
    multi = quiet_fit(MLPClassifier((7, 5), max_iter=5, random_state=0), X, y)
    assert (binary.out_activation_, binary.n_outputs_) == ("logistic", 1)
    assert (multi.out_activation_, multi.n_outputs_, multi.n_layers_) == (
        "softmax", 3, 4)
    assert [c.shape for c in multi.coefs_] == [(6, 7), (7, 5), (5, 3)]
    assert [b.shape for b in multi.intercepts_] == [(7,), (5,), (3,)]
    assert binary.predict_proba(X).shape == (X.shape[0], 2)
    Xr, yr = regression
    reg = quiet_fit(MLPRegressor((7,), max_iter=5, random_state=0), Xr,
                    np.column_stack([yr, -yr]))
    assert reg.out_activation_ == "identity"
    assert reg.predict(Xr).shape == (Xr.shape[0], 2)


def test_string_labels_and_probabilities(blobs):
    X, y = blobs
    labels = np.array(["ant", "bee", "cat"])[y]
    clf = quiet_fit(MLPClassifier((10,), max_iter=100, learning_rate_init=0.01,
                                  random_state=0), X, labels)
    assert set(clf.predict(X)) <= set(labels)
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-12)
    np.testing.assert_allclose(clf.predict_log_proba(X), np.log(proba))
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[proba.argmax(axis=1)])
    assert clf.score(X, labels) > 0.7


def test_multilabel(regression):
    X, Y = make_multilabel_classification(n_samples=80, n_features=6, n_classes=3,
                                          random_state=0)
    clf = quiet_fit(MLPClassifier((10,), max_iter=100, random_state=0), X, Y)
    assert clf.out_activation_ == "logistic"
    assert clf.predict(X).shape == Y.shape
    proba = clf.predict_proba(X)
    assert proba.shape == Y.shape
    np.testing.assert_array_equal(clf.predict(X), (proba > 0.5).astype(int))
    stepped = MLPClassifier((10,), random_state=0)
    stepped.partial_fit(X, Y, classes=np.arange(3))
    stepped.partial_fit(X, Y)
    assert stepped.predict(X).shape == Y.shape


def test_dtype_follows_input_or_parameter(blobs):
    X, y = blobs
    clf = quiet_fit(MLPClassifier((5,), max_iter=3, random_state=0),
                    X.astype(np.float32), y)
    assert clf.coefs_[0].dtype == np.float32
    assert clf.predict_proba(X).dtype == np.float32
    forced = quiet_fit(MLPClassifier((5,), max_iter=3, dtype="float64",
                                     random_state=0), X.astype(np.float32), y)
    assert forced.coefs_[0].dtype == np.float64


def test_sparse_input_matches_dense(blobs):
    X, y = blobs
    dense = quiet_fit(MLPClassifier((5,), max_iter=5, random_state=0), X, y)
    sparse_fit = quiet_fit(MLPClassifier((5,), max_iter=5, random_state=0),
                           sparse.csr_matrix(X), y)
    np.testing.assert_allclose(sparse_fit.predict_proba(sparse.csc_matrix(X)),
                               dense.predict_proba(X), rtol=1e-10)


def test_assigning_coefs_changes_the_model(regression):
    X, y = regression
    reg = quiet_fit(MLPRegressor((5,), max_iter=3, random_state=0), X, y)
    reg.coefs_ = [np.zeros_like(c) for c in reg.coefs_]
    reg.intercepts_[-1][...] = 2.5
    np.testing.assert_allclose(reg.predict(X), 2.5)
    with pytest.raises(ValueError, match=r"coefs_\[0\] has shape"):
        reg.coefs_ = [np.zeros((1, 1))] + reg.coefs_[1:]


def test_class_weight_shifts_predictions(blobs):
    X, y = blobs
    params = dict(hidden_layer_sizes=(5,), max_iter=30, random_state=0)
    plain = quiet_fit(MLPClassifier(**params), X, y)
    heavy = quiet_fit(MLPClassifier(class_weight={2: 50.0}, **params), X, y)
    assert (heavy.predict(X) == 2).sum() > (plain.predict(X) == 2).sum()
    with pytest.raises(ValueError, match="balanced"):
        MLPClassifier(class_weight="balanced").partial_fit(X, y, classes=[0, 1, 2])


@pytest.mark.parametrize("name, value, error", [
    ("hidden_layer_sizes", (10, 0), ValueError),
    ("activation", "softmax", ValueError),
    ("solver", "newton", ValueError),
    ("alpha", -1.0, ValueError),
    ("batch_size", 0, ValueError),
    ("batch_size", "all", ValueError),
    ("learning_rate", "cyclic", ValueError),
    ("learning_rate_init", 0.0, ValueError),
    ("max_iter", 0, ValueError),
    ("momentum", 1.5, ValueError),
    ("early_stopping", "yes", TypeError),
    ("validation_fraction", 1.0, ValueError),
    ("beta_2", 1.0, ValueError),
    ("n_iter_no_change", 0, ValueError),
    ("dtype", "float16", ValueError),
])
def test_bad_parameters_are_named(blobs, name, value, error):
    X, y = blobs
    with pytest.raises(error, match=name):
        MLPClassifier(**{name: value}).fit(X, y)


def test_bad_sample_weight_is_named(regression):
    X, y = regression
    with pytest.raises(ValueError, match="sample_weight"):
        MLPRegressor().fit(X, y, sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="sample_weight"):
        MLPRegressor().fit(X, y, sample_weight=-np.ones(len(y)))


def test_warm_start_with_other_features_is_refused(regression):
    X, y = regression
    reg = quiet_fit(MLPRegressor((5,), max_iter=2, warm_start=True), X, y)
    with pytest.raises(ValueError, match="features"):
        reg.fit(X[:, :3], y)


def test_verbose_logs_instead_of_printing(regression, caplog, capsys):
    X, y = regression
    logger = logging.getLogger("cbp.progress")
    logger.addHandler(caplog.handler)
    try:
        quiet_fit(MLPRegressor((4,), max_iter=2, verbose=True), X, y)
    finally:
        logger.removeHandler(caplog.handler)
    assert "Iteration 2, loss = " in caplog.text
    assert capsys.readouterr().out == ""


def test_pipeline_grid_search_and_cross_validation(blobs):
    X, y = blobs
    pipe = make_pipeline(StandardScaler(),
                         MLPClassifier((8,), max_iter=60, learning_rate_init=0.01,
                                       random_state=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search = GridSearchCV(pipe, {"mlpclassifier__alpha": [1e-4, 1e-1]}, cv=3,
                              n_jobs=2).fit(X, y)
        scores = cross_val_score(clone(pipe), X, y, cv=3)
    assert set(search.cv_results_["param_mlpclassifier__alpha"]) == {1e-4, 1e-1}
    assert search.best_estimator_.score(X, y) > 0.6
    assert scores.shape == (3,) and scores.mean() > 0.5
    cloned = clone(search.best_estimator_)
    assert not hasattr(cloned[-1], "coefs_")


def test_divergence_raises_value_error(regression):
    X, y = regression
    reg = MLPRegressor((5,), solver="sgd", learning_rate_init=10.0, random_state=0)
    with pytest.raises(ValueError, match="non-finite"):
        reg.fit(X * 1e3, y * 1e3)


def test_feature_names_are_kept(blobs):
    pd = pytest.importorskip("pandas")
    X, y = blobs
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    clf = quiet_fit(MLPClassifier((5,), max_iter=3, random_state=0), frame, y)
    np.testing.assert_array_equal(clf.feature_names_in_, frame.columns)
    with pytest.warns(UserWarning, match="feature names"):
        clf.predict(X)


def test_warm_start_may_change_solver_and_early_stopping(blobs):
    X, y = blobs
    clf = quiet_fit(MLPClassifier((5,), solver="lbfgs", max_iter=5,
                                  warm_start=True, random_state=0), X, y)
    assert not hasattr(clf, "loss_curve_")
    quiet_fit(clf.set_params(solver="adam", max_iter=3), X, y)
    assert len(clf.loss_curve_) == 3 and clf.validation_scores_ is None
    quiet_fit(clf.set_params(early_stopping=True), X, y)
    assert len(clf.validation_scores_) == 3 and clf.best_loss_ is None
    assert len(clf.loss_curve_) == 6


def test_refit_starts_new_records(regression):
    """A second fit without warm_start forgets the first fit's loss curve."""
    X, y = regression
    reg = MLPRegressor((5,), max_iter=4, random_state=0, n_iter_no_change=50)
    first = list(quiet_fit(reg, X, y).loss_curve_)
    assert quiet_fit(reg, X, y).loss_curve_ == first
