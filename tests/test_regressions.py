"""Regression tests: each guards a fault found by trying cbp as a new user would."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import cbp


def _data(n=40, d=4, k=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    return X, rng.integers(0, k, n)


def test_assigning_params_copies_values_and_keeps_views():
    """Replacing the buffer once left the core reading past a too-short array."""
    net = cbp.Network([4, 8, 3], output="softmax", seed=0)
    buffer = net.params
    values = np.arange(net.n_params, dtype=float) / net.n_params
    net.params = values
    assert net.params is buffer
    np.testing.assert_array_equal(net.params, values)
    np.testing.assert_array_equal(net.weights[0].ravel(), values[: 8 * 4])
    with pytest.raises(ValueError, match=r"values has shape \(3,\)"):
        net.params = np.zeros(3)
    np.testing.assert_array_equal(net.params, values)
    with pytest.raises(AttributeError):
        net.weights = []


def test_core_refuses_a_parameter_buffer_of_the_wrong_length():
    """The kernels trust the layout's offsets, so the entry points check lengths."""
    from cbp import _backprop

    net = cbp.Network([4, 8, 3], seed=0)
    X = np.ones((2, 4))
    with pytest.raises(ValueError, match="params has 3 entries"):
        _backprop.forward(net._layout, np.zeros(3), X, np.empty((2, 3)), 16)


def test_schedule_starts_from_the_rate_set_before_the_first_fit():
    """The base rate was taken when the trainer was built, undoing a later change."""
    X, y = _data()
    net = cbp.Network([4, 8, 3], output="softmax", seed=0)
    trainer = cbp.Trainer(net, "cross_entropy", optimizer=cbp.optim.SGD(lr=0.5),
                          lr_schedule=cbp.schedules.StepLR(1, 0.5), epochs=4,
                          verbose=0)
    trainer.optimizer.lr = 0.01
    assert trainer.fit(X, y)["lr"] == [0.01, 0.005, 0.0025, 0.00125]


CHILD = textwrap.dedent("""
    import signal, sys, threading, time, _thread
    import numpy as np
    import cbp

    signal.signal(signal.SIGINT, signal.default_int_handler)
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(4096, 256)), rng.normal(size=(4096, 10))
    net = cbp.Network([256, 1024, 1024, 10], seed=0)
    trainer = cbp.Trainer(net, "mse", optimizer="sgd", batch_size=4096, epochs=1000,
                          verbose=0)
    threading.Timer(1.0, _thread.interrupt_main).start()
    try:
        trainer.fit(X, Y)
    except KeyboardInterrupt as error:
        assert trainer.history.interrupted, "history not marked interrupted"
        assert "Ctrl-C" in str(error), repr(error)
        assert np.isfinite(net.params).all()
        print("OK", len(trainer.history))
    else:
        sys.exit("not interrupted")
""")


@pytest.mark.skipif(sys.platform == "win32", reason="interrupt_main needs SIGINT")
def test_ctrl_c_with_one_batch_per_epoch_is_recorded():
    """With one batch per epoch the signal came back as a bare KeyboardInterrupt."""
    result = subprocess.run([sys.executable, "-c", CHILD], capture_output=True,
                            text=True, timeout=120,
                            env={**os.environ, "OPENBLAS_NUM_THREADS": "1",
                                 "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("OK")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX links and FIFOs")
def test_save_writes_through_links_and_refuses_special_files(tmp_path):
    """Saving renamed its temporary file over links, FIFOs and device nodes."""
    net = cbp.Network([3, 2], seed=0)
    target = tmp_path / "real.npz"
    net.save(target)
    link = tmp_path / "link.npz"
    link.symlink_to(target)
    other = cbp.Network([3, 2], seed=1)
    other.save(link)
    assert link.is_symlink()
    np.testing.assert_array_equal(cbp.Network.load(target).params, other.params)
    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="not a regular file"):
        net.save(fifo)
    assert fifo.exists() and not fifo.is_file()


def _iris_files(tmp_path):
    X, y = _data(n=60, d=4, k=3, seed=3)
    csv_path = tmp_path / "data.csv"
    rows = ["a,b,c,d,label"] + [
        ",".join(f"{v:.6f}" for v in x) + f",c{t}" for x, t in zip(X, y)
    ]
    csv_path.write_text("\n".join(rows) + "\n")
    npy_path = tmp_path / "data.npy"
    np.save(npy_path, np.column_stack([X, X[:, 0] * 2 + X[:, 1]]))
    np.save(tmp_path / "features.npy", X)
    return csv_path, npy_path


def test_cli_refuses_bad_outputs_and_losses_before_training(tmp_path, capsys):
    """Output paths and the loss were checked only after a whole training run."""
    from cbp.cli import main

    csv_path, _ = _iris_files(tmp_path)
    cases = [
        (["--out", str(tmp_path / "missing" / "m.npz")], "does not exist"),
        (["--out", str(tmp_path / "m.npz"), "--plot", str(tmp_path / "c.xyz")],
         "unknown image format"),
        (["--out", str(tmp_path / "m.npz"), "--loss", "mse"], "--loss mse"),
    ]
    for extra, message in cases:
        status = main(["train", str(csv_path), "--target", "label", "--quiet",
                       "--epochs", "2", *extra])
        out, err = capsys.readouterr()
        assert status == 2
        assert message in err
        assert "trained" not in out


def test_cli_predicts_on_npy_features_without_a_target_column(tmp_path, capsys):
    """A model trained on .npy data demanded a dummy target column at predict."""
    from cbp.cli import main

    _, npy_path = _iris_files(tmp_path)
    model = tmp_path / "m.npz"
    assert main(["train", str(npy_path), "--target", "4", "--quiet", "--epochs", "2",
                 "--out", str(model)]) == 0
    predictions = tmp_path / "p.csv"
    assert main(["predict", str(model), str(tmp_path / "features.npy"), "--out",
                 str(predictions)]) == 0
    capsys.readouterr()
    assert len(predictions.read_text().splitlines()) == 61


def test_trainer_network_loss_and_rate_cannot_be_set_to_unchecked_values():
    """Reassigning them after construction skipped every check."""
    net = cbp.Network([4, 3], output="softmax", seed=0)
    trainer = cbp.Trainer(net, "cross_entropy", optimizer=cbp.optim.SGD(0.1),
                          verbose=0)
    with pytest.raises(AttributeError):
        trainer.loss = "mse"
    with pytest.raises(AttributeError):
        trainer.network = cbp.Network([4, 3], output="sigmoid")
    with pytest.raises(ValueError, match=r"lr=-5\.0"):
        trainer.optimizer.lr = -5
