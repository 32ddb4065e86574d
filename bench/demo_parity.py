"""Test accuracy of ``cbp demo`` against scikit-learn's MLPClassifier.

Both train the same network (64 inputs, the demo's hidden layers and activation,
10 softmax outputs) with Adam (lr 1e-3), the same batch size and number of epochs,
no L2 penalty and no early stopping, on the demo's split of the bundled digits,
for each seed. Initial weights and shuffling differ between the libraries, so
single seeds differ by a few test images either way; the mean over seeds is the
fair comparison.

Usage::

    python3 bench/demo_parity.py [--seeds 0 1 2 3 4] [--epochs 30] [--json out.json]

Sample output (2-core machine shared with other jobs, so the seconds vary)::

    seed  cbp acc  sklearn acc  cbp s  sklearn s
       0   0.9711       0.9667   0.56       0.92
       1   0.9711       0.9689   0.59       0.97
       2   0.9667       0.9644   0.57       0.97
       3   0.9711       0.9711   0.57       0.79
       4   0.9733       0.9644   0.49       0.82
    mean   0.9707       0.9671   0.56       0.90
"""

import argparse
import json
import time
import warnings

import numpy as np

from cbp.cli import (DEMO_ACTIVATION, DEMO_BATCH_SIZE, DEMO_EPOCHS, DEMO_HIDDEN,
                     demo_data, train_demo_network)


def cbp_accuracy(seed, epochs, data):
    """Return (test accuracy, seconds) of the demo's network trained by cbp."""
    net, _, seconds = train_demo_network(data, seed, epochs)
    X_test, y_test = data[1], data[3]
    return float(np.mean(net.predict(X_test).argmax(axis=1) == y_test)), seconds


def sklearn_accuracy(seed, epochs, data):
    """Return (test accuracy, seconds) of MLPClassifier with the same settings."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    X_train, X_test, y_train, y_test, _ = data
    model = MLPClassifier(
        hidden_layer_sizes=DEMO_HIDDEN, activation=DEMO_ACTIVATION, solver="adam",
        learning_rate_init=1e-3, alpha=0.0, batch_size=DEMO_BATCH_SIZE,
        max_iter=epochs, shuffle=True, random_state=seed, early_stopping=False,
        # Never stop before max_iter: the same number of epochs as cbp.
        tol=0.0, n_iter_no_change=epochs + 1,
    )
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X_train, y_train)
    seconds = time.perf_counter() - started
    return float(model.score(X_test, y_test)), seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--epochs", type=int, default=DEMO_EPOCHS)
    parser.add_argument("--split-seed", type=int, default=0,
                        help="seed of the train/test split (the demo's --seed)")
    parser.add_argument("--json", default=None, help="also write the rows here")
    args = parser.parse_args()
    data = demo_data(args.split_seed)
    rows = []
    print(f"{'seed':>4}  {'cbp acc':>7}  {'sklearn acc':>11}  {'cbp s':>5}  "
          f"{'sklearn s':>9}")
    for seed in args.seeds:
        ours, ours_s = cbp_accuracy(seed, args.epochs, data)
        theirs, theirs_s = sklearn_accuracy(seed, args.epochs, data)
        rows.append(dict(seed=seed, cbp=ours, sklearn=theirs, cbp_seconds=ours_s,
                         sklearn_seconds=theirs_s))
        print(f"{seed:>4}  {ours:>7.4f}  {theirs:>11.4f}  {ours_s:>5.2f}  "
              f"{theirs_s:>9.2f}")
    mean = {key: float(np.mean([r[key] for r in rows]))
            for key in ("cbp", "sklearn", "cbp_seconds", "sklearn_seconds")}
    print(f"{'mean':>4}  {mean['cbp']:>7.4f}  {mean['sklearn']:>11.4f}  "
          f"{mean['cbp_seconds']:>5.2f}  {mean['sklearn_seconds']:>9.2f}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"epochs": args.epochs, "rows": rows, "mean": mean}, handle,
                      indent=2)


if __name__ == "__main__":
    main()
