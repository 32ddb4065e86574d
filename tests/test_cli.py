"""The ``cbp`` command line, end to end on real data written to CSV."""

import csv
import os
import subprocess
import sys

import numpy as np
import pytest

from cbp.cli import infer_task, main
from cbp.model_file import load_network

sklearn_datasets = pytest.importorskip("sklearn.datasets")

IRIS_COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def _write_csv(path, header, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


@pytest.fixture
def iris_csv(tmp_path):
    iris = sklearn_datasets.load_iris()
    names = iris.target_names[iris.target]
    rows = [[*map(repr, x), name] for x, name in zip(iris.data.tolist(), names)]
    return _write_csv(tmp_path / "iris.csv", IRIS_COLUMNS + ["species"], rows)


@pytest.fixture
def diabetes_csv(tmp_path):
    data = sklearn_datasets.load_diabetes(scaled=False)
    rows = [[*map(repr, x), int(t)] for x, t in zip(data.data.tolist(), data.target)]
    header = list(data.feature_names) + ["progress"]
    return _write_csv(tmp_path / "diabetes.csv", header, rows)


def _run(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def _fails(capsys, *argv, match):
    status, out, err = _run(capsys, *argv)
    assert status == 2, (out, err)
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    for piece in [match] if isinstance(match, str) else match:
        assert piece in err, err
    return err


def test_classification_train_evaluate_predict_info(capsys, tmp_path, iris_csv):
    model = tmp_path / "iris.npz"
    status, out, err = _run(
        capsys,
        "train",
        iris_csv,
        "--target",
        "species",
        "--layers",
        "16",
        "--epochs",
        "60",
        "--batch-size",
        "16",
        "--seed",
        "1",
        "--out",
        model,
    )
    assert status == 0, err
    assert "task classification" in out and f"model saved to {model}" in out
    loaded = load_network(model)
    assert loaded.metadata["classes"] == ["setosa", "versicolor", "virginica"]
    assert loaded.metadata["feature_names"] == IRIS_COLUMNS
    assert len(loaded.metadata["scaling"]["mean"]) == 4

    status, out, err = _run(capsys, "evaluate", model, iris_csv, "--target", "species")
    assert status == 0, err
    values = dict(line.split() for line in out.splitlines()[1:])
    assert float(values["accuracy"]) > 0.9
    assert 0 < float(values["log_loss"]) < 0.5

    predictions = tmp_path / "pred.csv"
    status, out, err = _run(
        capsys, "predict", model, iris_csv, "--out", predictions, "--proba"
    )
    assert status == 0, err
    with open(predictions, newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == [
        "prediction",
        "proba_setosa",
        "proba_versicolor",
        "proba_virginica",
    ]
    assert len(rows) == 151
    assert {r[0] for r in rows[1:]} <= {"setosa", "versicolor", "virginica"}
    proba = np.array([[float(v) for v in r[1:]] for r in rows[1:]])
    assert np.allclose(proba.sum(axis=1), 1)
    assert rows[1][0] == "setosa" and rows[-1][0] == "virginica"

    status, out, err = _run(capsys, "info", model)
    assert status == 0, err
    assert "4-16-3" in out and "relu" in out and "float64" in out
    assert f"{loaded.network.n_params:,}" in out
    assert "setosa, versicolor, virginica" in out


def test_predict_matches_columns_by_name(capsys, tmp_path, iris_csv):
    model = tmp_path / "m.npz"
    assert (
        _run(
            capsys,
            "train",
            iris_csv,
            "--target",
            "species",
            "--epochs",
            "5",
            "--quiet",
            "--out",
            model,
        )[0]
        == 0
    )
    with open(iris_csv, newline="") as handle:
        rows = list(csv.reader(handle))
    # Same data, columns reversed and the target dropped.
    reordered = _write_csv(
        tmp_path / "reordered.csv", rows[0][:4][::-1], [r[:4][::-1] for r in rows[1:]]
    )
    out_a, out_b = tmp_path / "a.csv", tmp_path / "b.csv"
    assert _run(capsys, "predict", model, iris_csv, "--out", out_a, "--proba")[0] == 0
    assert _run(capsys, "predict", model, reordered, "--out", out_b, "--proba")[0] == 0
    assert out_a.read_text() == out_b.read_text()


def test_regression_is_inferred_and_scored(capsys, tmp_path, diabetes_csv):
    model = tmp_path / "reg.npz"
    plot = tmp_path / "curves.png"
    status, out, err = _run(
        capsys,
        "train",
        diabetes_csv,
        "--target",
        "progress",
        "--layers",
        "32",
        "--epochs",
        "40",
        "--validation-split",
        "0.2",
        "--early-stopping",
        "10",
        "--quiet",
        "--plot",
        plot,
        "--out",
        model,
        "--dtype",
        "float32",
    )
    assert status == 0, err
    assert "task regression" in out and err == ""
    pytest.importorskip("matplotlib")
    assert plot.stat().st_size > 1000
    status, out, err = _run(capsys, "evaluate", model, diabetes_csv)
    assert status == 0, err
    values = dict(line.split() for line in out.splitlines()[1:])
    assert 0.3 < float(values["r2"]) <= 1
    # RMSE is in the target's units (about 77 for a constant guess).
    assert 20 < float(values["rmse"]) < 70
    status, out, err = _run(capsys, "predict", model, diabetes_csv, "--out", "-")
    lines = out.splitlines()
    assert lines[0] == "prediction" and len(lines) == 443
    assert 25 < np.mean([float(v) for v in lines[1:]]) < 350


def test_npy_and_npz_data(capsys, tmp_path):
    wine = sklearn_datasets.load_wine()
    table = np.column_stack([wine.data, wine.target])
    np.save(tmp_path / "wine.npy", table)
    np.savez(tmp_path / "wine.npz", X=wine.data, y=wine.target)
    for data, target in [(tmp_path / "wine.npy", "-1"), (tmp_path / "wine.npz", "y")]:
        model = tmp_path / f"{data.suffix[1:]}.npz"
        status, out, err = _run(
            capsys,
            "train",
            data,
            "--target",
            target,
            "--epochs",
            "30",
            "--quiet",
            "--out",
            model,
        )
        assert status == 0, err
        assert "task classification" in out
        status, out, err = _run(capsys, "evaluate", model, data, "--target", target)
        assert status == 0, err
        metrics = dict(line.split() for line in out.splitlines()[1:])
        assert float(metrics["accuracy"]) > 0.9
    _fails(
        capsys,
        "train",
        tmp_path / "wine.npy",
        "--target",
        "14",
        "--out",
        tmp_path / "x.npz",
        match=["out of range", "wine.npy"],
    )


def test_demo_runs_and_saves(capsys, tmp_path):
    out_path = tmp_path / "demo.npz"
    status, out, err = _run(
        capsys, "demo", "--epochs", "5", "--quiet", "--out", out_path
    )
    assert status == 0, err
    assert err == ""
    accuracy = float(out.split("test accuracy ")[1].split("%")[0])
    assert accuracy > 90
    assert "samples/s" in out and f"model saved to {out_path}" in out
    assert load_network(out_path).network.layer_sizes[0] == 64


def test_python_dash_m_cbp(tmp_path, iris_csv):
    model = tmp_path / "m.npz"
    env = dict(os.environ)
    command = [sys.executable, "-m", "cbp"]
    done = subprocess.run(
        command
        + [
            "train",
            iris_csv,
            "--target",
            "species",
            "--epochs",
            "3",
            "--out",
            str(model),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "epoch 3/3" in done.stderr
    done = subprocess.run(
        command + ["info", str(model)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0 and "4-64-3" in done.stdout
    done = subprocess.run(
        command + ["evaluate", str(model), str(tmp_path / "no.csv")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 2 and "no.csv" in done.stderr
    assert "Traceback" not in done.stderr


# -- bad input -------------------------------------------------------------------


def test_missing_and_empty_files(capsys, tmp_path):
    out = tmp_path / "m.npz"
    _fails(
        capsys,
        "train",
        tmp_path / "absent.csv",
        "--target",
        "y",
        "--out",
        out,
        match=["absent.csv", "no such file"],
    )
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    _fails(
        capsys,
        "train",
        empty,
        "--target",
        "y",
        "--out",
        out,
        match=["empty.csv", "empty"],
    )
    header_only = _write_csv(tmp_path / "header.csv", ["a", "y"], [])
    _fails(
        capsys,
        "train",
        header_only,
        "--target",
        "y",
        "--out",
        out,
        match=["header.csv", "no data rows"],
    )
    assert not out.exists()


def test_unknown_target_column(capsys, iris_csv, tmp_path):
    _fails(
        capsys,
        "train",
        iris_csv,
        "--target",
        "colour",
        "--out",
        tmp_path / "m.npz",
        match=["'colour'", "iris.csv", "species"],
    )


def test_bad_cells_name_line_and_column(capsys, tmp_path):
    out = tmp_path / "m.npz"
    rows = [[i, i % 2, i % 3] for i in range(20)]
    text = [list(map(str, r)) for r in rows]
    text[4][1] = "blue"
    bad = _write_csv(tmp_path / "words.csv", ["a", "b", "y"], text)
    _fails(
        capsys,
        "train",
        bad,
        "--target",
        "y",
        "--out",
        out,
        match=["words.csv, line 6", "'blue'", "'b'"],
    )
    text[4][1] = "nan"
    bad = _write_csv(tmp_path / "nan.csv", ["a", "b", "y"], text)
    _fails(
        capsys,
        "train",
        bad,
        "--target",
        "y",
        "--out",
        out,
        match=["nan.csv, line 6", "'nan'", "'b'"],
    )
    text[4][1] = ""
    bad = _write_csv(tmp_path / "hole.csv", ["a", "b", "y"], text)
    _fails(
        capsys,
        "train",
        bad,
        "--target",
        "y",
        "--out",
        out,
        match=["hole.csv, line 6", "empty cell", "'b'"],
    )
    text[4][1] = "1"
    text[7][2] = ""
    bad = _write_csv(tmp_path / "notarget.csv", ["a", "b", "y"], text)
    _fails(
        capsys,
        "train",
        bad,
        "--target",
        "y",
        "--out",
        out,
        match=["notarget.csv, line 9", "target column 'y'"],
    )
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b,y\n1,2,0\n1,2\n")
    _fails(
        capsys,
        "train",
        ragged,
        "--target",
        "y",
        "--out",
        out,
        match=["ragged.csv, line 3", "2 fields"],
    )
    assert not out.exists()


def test_single_class(capsys, tmp_path):
    data = _write_csv(
        tmp_path / "one.csv", ["a", "label"], [[i, "cat"] for i in range(10)]
    )
    _fails(
        capsys,
        "train",
        data,
        "--target",
        "label",
        "--out",
        tmp_path / "m.npz",
        match=["one.csv", "single class", "'cat'"],
    )


def test_predict_with_mismatched_columns(capsys, tmp_path, iris_csv):
    model = tmp_path / "m.npz"
    assert (
        _run(
            capsys,
            "train",
            iris_csv,
            "--target",
            "species",
            "--epochs",
            "2",
            "--quiet",
            "--out",
            model,
        )[0]
        == 0
    )
    other = _write_csv(tmp_path / "other.csv", ["sepal_length", "height"], [[1, 2]])
    _fails(
        capsys,
        "predict",
        model,
        other,
        match=["other.csv", "'sepal_width'", "'height'"],
    )
    unknown = _write_csv(
        tmp_path / "labels.csv", IRIS_COLUMNS + ["species"], [[1, 2, 3, 4, "rose"]]
    )
    _fails(capsys, "evaluate", model, unknown, match=["labels.csv, line 2", "'rose'"])


def test_corrupt_and_missing_model_files(capsys, tmp_path, iris_csv):
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"PK\x03\x04 this is not really a zip")
    for command in (
        ["info", broken],
        ["predict", broken, iris_csv],
        ["evaluate", broken, iris_csv, "--target", "species"],
    ):
        _fails(capsys, *command, match="broken.npz")
    _fails(capsys, "info", tmp_path / "none.npz", match=["none.npz", "no such"])


def test_unwritable_output_exits_2(capsys, tmp_path, iris_csv):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    _fails(
        capsys,
        "train",
        iris_csv,
        "--target",
        "species",
        "--epochs",
        "1",
        "--quiet",
        "--out",
        blocker / "m.npz",
        match="m.npz",
    )


def test_bad_options_exit_2(capsys, iris_csv, tmp_path):
    status, out, err = _run(
        capsys,
        "train",
        iris_csv,
        "--target",
        "species",
        "--layers",
        "8,x",
        "--out",
        tmp_path / "m.npz",
    )
    assert status == 2 and "8,x" in err
    _fails(
        capsys,
        "train",
        iris_csv,
        "--target",
        "species",
        "--loss",
        "mse",
        "--task",
        "regression",
        "--out",
        tmp_path / "m.npz",
        match=["iris.csv", "'setosa'", "non-numeric"],
    )
    assert _run(capsys)[0] == 2


def test_task_inference():
    assert infer_task(np.array(["a", "b", "a"], dtype=object)) == "classification"
    assert infer_task(np.array(["1", "2", "1"], dtype=object)) == "classification"
    assert infer_task(np.array(["0.5", "2", "1"], dtype=object)) == "regression"
    assert infer_task(np.arange(100.0)) == "regression"
