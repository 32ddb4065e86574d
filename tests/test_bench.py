"""The benchmark suite in ``bench/`` measures what it says it measures.

No test here looks at a time: these check that the peers do the same work as
cbp, that the BLAS limit replays the products of a training step, that targets
are judged from the right numbers, and that a short run completes and writes its
report.
"""

import importlib.util
import json
import os
import sys

import numpy as np
import pytest

import cbp

BENCH_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         "bench")
if not os.path.isfile(os.path.join(BENCH_DIR, "run.py")):
    pytest.skip("bench/ is not beside the tests", allow_module_level=True)
pytest.importorskip("threadpoolctl")


def _load(name):
    if BENCH_DIR not in sys.path:
        sys.path.insert(0, BENCH_DIR)
    spec = importlib.util.spec_from_file_location(f"bench_{name}",
                                                  os.path.join(BENCH_DIR, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


run = _load("run")
numpy_mlp = _load("numpy_mlp")


@pytest.mark.parametrize("sizes", [(784, 256, 128, 10), (16, 32, 32, 1), (64, 64, 10),
                                   (5, 3)])
@pytest.mark.parametrize("rows", [1, 7, 128])
def test_blas_limit_replays_every_product_of_a_step(sizes, rows):
    """3 products per layer but the first, which has no input gradient."""
    calls = run._gemm_calls(sizes, rows)
    weights = run.n_weights(sizes)
    first = sizes[0] * sizes[1]
    assert len(calls) == 3 * (len(sizes) - 1) - 1
    # Each product costs 2 m n k; together, 2 per weight per sample for the
    # forward, the weight gradient and (below the first layer) the input gradient.
    flops = sum(2 * m * n * k for _, _, m, n, k in calls)
    assert flops == 2 * rows * (3 * weights - first)


@pytest.mark.parametrize("output, loss", [("identity", "mse"),
                                          ("softmax", "cross_entropy")])
def test_numpy_peer_trains_exactly_like_cbp(output, loss):
    """Same weights, same batches in order: the same parameters after 3 steps."""
    sizes = (6, 8, 5, 3)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3 * 4, sizes[0]))
    if loss == "mse":
        Y = rng.normal(size=(len(X), sizes[-1]))
    else:
        Y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], len(X))]
    net = cbp.Network(list(sizes), activation="relu", output=output, seed=1)
    peer = numpy_mlp.NumpyMLP(sizes, output, np.float64, seed=0, lr=0.05,
                              momentum=0.9)
    for layer in range(len(sizes) - 1):
        peer.W[layer][...] = net.weights[layer].T
        peer.b[layer][...] = net.biases[layer]

    cbp.Trainer(net, loss, optimizer=cbp.optim.SGD(lr=0.05, momentum=0.9),
                batch_size=4, epochs=1, shuffle=False, verbose=0).fit(X, Y)
    for start in range(0, len(X), 4):
        peer.train_batch(X[start:start + 4], Y[start:start + 4])

    for layer in range(len(sizes) - 1):
        np.testing.assert_allclose(peer.W[layer], net.weights[layer].T, rtol=1e-12,
                                   atol=1e-14)
        np.testing.assert_allclose(peer.b[layer], net.biases[layer], rtol=1e-12,
                                   atol=1e-14)


def _row(config, dtype, threads, **seconds):
    return dict(config=config, dtype=dtype, threads=threads, seconds=seconds)


def test_targets_are_judged_from_the_right_ratios():
    rows = [
        _row("tiny", "float32", 1, cbp=1.0, torch=31.0, sklearn=14.0, numpy=5.0),
        _row("mnist", "float32", 1, cbp=1.0, torch=1.6, sklearn=1.5, numpy=0.9,
             blas=0.9),
        _row("wide", "float32", 1, cbp=1.0, blas=0.9),
        _row("wide", "float32", 2, cbp=1.0, blas=0.5),
    ]
    scaling = [dict(config="tiny", dtype="float32", one=1.0, two=1.04),
               dict(config="mnist", dtype="float32", one=1.0, two=1.2)]
    got = {text: met for text, _, met in run.check_targets(rows, scaling)}

    assert got["tiny float32 1 thr: >= 30x faster than torch"]
    assert not got["tiny float32 1 thr: >= 15x faster than sklearn"]
    assert got["tiny float32 1 thr: >= 5x faster than numpy"]
    assert got["mnist float32 1 thr: >= 1.5x faster than sklearn"]
    assert not got["mnist float32 1 thr: >= 1x faster than numpy"]
    # 1.0 / 0.9 = 1.11: within 1.15 for mnist, not within 1.10 for wide.
    assert got["mnist float32 1 thr: within 1.15x of the BLAS limit"]
    assert not got["wide float32 1 thr: within 1.1x of the BLAS limit"]
    assert not got["wide float32 2 thr: within 1.1x of the BLAS limit"]
    assert got["tiny float32: 2 threads no slower than 1 (+5% noise)"]
    assert not got["mnist float32: 2 threads no slower than 1 (+5% noise)"]
    # Nothing is judged for what was not run.
    assert not any("batch1" in text or "float64" in text for text in got)


def test_a_short_run_writes_its_report(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(run, "PAUSE", 0.0)
    report = tmp_path / "bench.json"
    status = run.main(["--quick", "--configs", "tiny", "--peers", "cbp,numpy,blas",
                       "--threads", "1,2", "--repeats", "1", "--no-rss",
                       "--json", str(report), "--png", ""])
    assert status == 0
    out = capsys.readouterr().out
    assert "tiny    float32   1" in out and "tiny    float32   2" in out
    assert "cbp alone at 1 and 2 threads" in out

    data = json.loads(report.read_text())
    assert [(r["config"], r["threads"]) for r in data["results"]] == [("tiny", 1),
                                                                     ("tiny", 2)]
    for result in data["results"]:
        assert set(result["seconds"]) == {"cbp", "numpy", "blas"}
        assert all(len(result["times"][p]) == 1 for p in ("cbp", "numpy", "blas"))
        assert result["seconds"]["cbp"] > 0
    (scaling,) = data["thread_scaling"]
    assert scaling["config"] == "tiny" and scaling["rounds"] == 3
    assert len(scaling["times"]["1"]) == len(scaling["times"]["2"]) == 3
    targets = {t["target"] for t in data["targets"]}
    assert "tiny float32: 2 threads no slower than 1 (+5% noise)" in targets
    assert "tiny float32 1 thr: >= 5x faster than numpy" in targets


@pytest.mark.parametrize("argv, named", [
    (["--threads", "0"], "--threads"),
    (["--threads", "abc"], "--threads"),
    (["--threads", "1,-2"], "--threads"),
    (["--threads", str((os.cpu_count() or 1) + 1)], "--threads"),
    (["--repeats", "0"], "--repeats"),
    (["--repeats", "-1"], "--repeats"),
    (["--seed", "-1"], "--seed"),
    (["--configs", "huge"], "--configs"),
    (["--configs", ","], "--configs"),
    (["--dtype", "float16"], "--dtype"),
    (["--dtype", "float32,,f4"], "--dtype"),
    (["--peers", "jax"], "--peers"),
    (["--peers", ""], "--peers"),
    (["--png", "chart.svg"], "--png"),
    (["--threads", "1,1"], "--threads"),
    (["--configs", "tiny,tiny"], "--configs"),
    (["--seed", str(2**32)], "--seed"),
    (["--json", " "], "--json"),
    (["--json", "reports/"], "--json"),
    (["--json", "same.png", "--png", "same.png"], "--png"),
])
def test_bad_arguments_stop_before_any_timing(argv, named, capsys):
    with pytest.raises(SystemExit) as stopped:
        run.parse_args(argv)
    assert stopped.value.code == 2
    assert named in capsys.readouterr().err


def test_unwritable_report_paths_stop_before_any_timing(tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    for option, path in [("--json", tmp_path),
                         ("--json", a_file / "report.json"),
                         ("--png", a_file / "chart.png")]:
        with pytest.raises(SystemExit):
            run.parse_args([option, str(path), "--png" if option == "--json"
                            else "--json", ""])
        err = capsys.readouterr().err
        assert option in err and str(path) in err
    assert a_file.read_text() == ""


def test_checking_a_report_path_leaves_nothing_behind(tmp_path):
    report = tmp_path / "new" / "deeper" / "report.json"
    args = run.parse_args(["--json", str(report), "--png", ""])
    assert args.json == os.path.realpath(report)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not hasattr(os, "symlink") or sys.platform == "win32",
                    reason="needs symbolic links")
def test_a_link_to_a_report_not_yet_written_is_kept(tmp_path):
    link = tmp_path / "latest.json"
    link.symlink_to(tmp_path / "runs" / "today.json")
    with pytest.raises(SystemExit):
        run.parse_args(["--json", str(link), "--png", "chart.svg"])
    args = run.parse_args(["--json", str(link), "--png", ""])
    assert args.json == str(tmp_path / "runs" / "today.json")
    assert link.is_symlink() and not (tmp_path / "runs").exists()


@pytest.mark.skipif(not os.path.exists("/dev/null"), reason="needs /dev/null")
def test_a_report_must_be_a_regular_file(capsys):
    with pytest.raises(SystemExit):
        run.parse_args(["--json", "/dev/null", "--png", ""])
    assert "not a regular file" in capsys.readouterr().err


def test_a_failed_write_keeps_the_previous_report(tmp_path):
    report = tmp_path / "latest.json"
    report.write_text("previous")

    def fail(handle):
        handle.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        run._write_report(str(report), fail)
    assert report.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["latest.json"]

    def write_new(handle):
        handle.write(b"new")

    report.chmod(0o640)
    run._write_report(str(report), write_new)
    assert report.read_text() == "new"
    if sys.platform != "win32":
        assert report.stat().st_mode & 0o777 == 0o640


def test_lists_are_parsed_in_order():
    args = run.parse_args(["--configs", "mnist,tiny", "--dtype", "float64",
                           "--threads", "1", "--peers", "cbp,blas",
                           "--json", "", "--png", ""])
    assert args.configs == ["mnist", "tiny"]
    assert args.dtype == ["float64"]
    assert args.threads == [1]
    assert args.peers == ["cbp", "blas"]
