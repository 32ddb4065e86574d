"""Time one training epoch of cbp against its peers and against the BLAS limit.

Each configuration is trained with SGD (learning rate 0.01, momentum 0.9) on
shuffled minibatches of random data: forward, backward and update for every
batch. The same epoch is timed for

* ``cbp``     -- ``cbp.Trainer(...).fit``; one epoch is the time between two
  epoch callbacks, so it includes everything the trainer does per epoch;
* ``torch``   -- PyTorch eager on the CPU: ``nn.Sequential``, ``torch.optim.SGD``
  and a plain loop over shuffled index batches (``torch.set_num_threads``);
* ``sklearn`` -- ``MLPClassifier`` / ``MLPRegressor`` with ``solver="sgd"``, one
  ``partial_fit`` (one pass over the data) per epoch, in the input's dtype;
* ``numpy``   -- a plain vectorised NumPy backprop (``bench/numpy_mlp.py``);
* ``blas``    -- the BLAS limit: only the matrix products of an epoch (per batch,
  one forward gemm per layer, one weight-gradient gemm per layer and one
  input-gradient gemm per layer but the first, the last shorter batch
  included), in cbp's order, with cbp's shapes and transpose flags, through the
  same BLAS library cbp calls (scipy's), on preallocated operands. They are
  called from Python (``scipy.linalg.blas``), so the median cost of a Python call
  to a 1x1x1 gemm, times the number of calls, is subtracted: the limit is gemm
  time only. For the small shapes of ``tiny`` and ``batch1`` that call cost is
  larger than the gemm itself, so their limit is only indicative.

Every peer first runs one untimed warm-up epoch; the table shows the median of
``--repeats`` epochs. The peers take their epochs in turn (one epoch of each, then
again: the others run inside cbp's epoch callback, outside cbp's timing), so that a
change of load on a shared machine hits all of them alike; still, on a shared
machine only the ratios within one row are reliable. Medians, not means, and every
sample is kept in the JSON file (``times``: the seconds of each timed epoch as
measured; ``seconds``: their median scaled to the full epoch). BLAS and OpenMP
threads are limited with threadpoolctl, PyTorch's with ``torch.set_num_threads``.
Each peer's epoch starts after a rest of ``PAUSE`` seconds (untimed): an idle
OpenBLAS worker spins on its core for about 0.1 s before it sleeps, and without the
rest the previous peer's workers take a core from a 2-thread epoch (on the
development machine: cbp's 2-thread mnist epoch twice as long right after the NumPy
peer's). A peer that is not installed is skipped with a note.

An epoch of ``wide`` holds 16,384 samples, but it is timed on 4,096 (16 batches
of 256) and scaled by 4 to keep the run short: its batches all cost the same,
so the scaled time is the epoch's, except that what a trainer does once per
epoch is counted 4 times (for cbp, the copy of the parameters and optimizer
state that is restored if an epoch diverges: 7.5 ms in float32 and 18 ms in
float64 on the development machine, 3 times too many: about 0.5% of the time).
The ``timed`` column says how many samples each measured epoch had;
``s/epoch`` is always for the full epoch.

Columns: seconds per epoch (cbp), samples per second, GFLOP/s (6 floating-point
operations per weight per sample: forward, weight gradient and input gradient
of 2 each), ``xBLAS`` (cbp's time over the BLAS limit: 1.00 is the limit) and
the speed-up over each peer (the peer's time over cbp's: above 1, cbp is
faster).

When both 1 and 2 threads are run, cbp's thread scaling is measured on its own:
fits at 1 and at 2 threads alternate (``SCALING`` gives the samples and rounds
of each configuration) and the medians of their second epochs are compared, so
that the "2 threads no slower than 1" target does not rest on two rows measured
minutes apart. The run also measures cbp's peak resident memory during a fit of
each configuration in a fresh subprocess, and checks the project's targets.

Usage::

    python bench/run.py                      # everything: 15 to 25 minutes
    python bench/run.py --quick              # under two minutes
    python bench/run.py --configs tiny,mnist --dtype float32 --threads 1

Sample output (2 shared cores of an AMD EPYC with AVX2, OpenBLAS 0.3.30 Haswell
kernels; rows cut)::

 config  dtype   thr  timed   s/epoch  samples/s  GFLOP/s  xBLAS   torch sklearn   numpy
 ---------------------------------------------------------------------------------------
 tiny    float32   1 100000    0.0615   1.63e+06     15.3   1.45   38.69   20.88    6.73
 mnist   float32   1  60000    1.0242   5.86e+04     82.5   1.01    1.60    1.74    1.13
 wide    float64   1   4096   19.8766        824     41.6   1.05    1.19    1.41    1.15
 batch1  float32   2  20000    0.1696   1.18e+05      3.4   2.03   62.54   35.93   10.16

followed by the seconds of every peer, cbp alone at 1 and 2 threads, the peak
memory of each fit and the targets met or missed. An ``xBLAS`` of ``-`` means the
gemm time was lost in the noise of the Python calls it was measured through.
"""

import argparse
import datetime
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from numpy_mlp import NumpyMLP  # noqa: E402

LR = 0.01
MOMENTUM = 0.9

# n: samples in an epoch; timed: samples in each measured epoch (scaled to n).
CONFIGS = {
    "tiny": dict(sizes=(16, 32, 32, 1), output="identity", loss="mse", batch=32,
                 n=100_000, timed=100_000, quick=20_000),
    "mnist": dict(sizes=(784, 256, 128, 10), output="softmax", loss="cross_entropy",
                  batch=128, n=60_000, timed=60_000, quick=10_240),
    "wide": dict(sizes=(2048, 2048, 2048, 10), output="softmax",
                 loss="cross_entropy", batch=256, n=16_384, timed=4_096, quick=512),
    "batch1": dict(sizes=(64, 64, 10), output="softmax", loss="cross_entropy",
                   batch=1, n=20_000, timed=20_000, quick=4_000),
}
PEERS = ("cbp", "torch", "sklearn", "numpy", "blas")

# The targets: (config, threads, peer, at least this speed-up) with the BLAS
# limit given as at most this overhead factor.
SPEEDUP_TARGETS = [
    ("tiny", 1, "torch", 30.0), ("tiny", 1, "sklearn", 15.0), ("tiny", 1, "numpy", 5.0),
    ("batch1", 1, "torch", 30.0),
    ("mnist", 1, "torch", 1.5), ("mnist", 1, "sklearn", 1.5),
    ("mnist", 1, "numpy", 1.0),
]
OVERHEAD_TARGETS = [("mnist", 1, 1.15), ("wide", 1, 1.10), ("wide", 2, 1.10)]
# 2 threads must be no slower than 1: differences below this fraction are noise.
THREAD_NOISE = 0.05
# Seconds of rest before each peer's epoch. An idle OpenBLAS worker keeps its core
# busy for about 0.1 s after its last call before it sleeps; without the rest, a
# peer's spinning workers take a core from the next peer's 2-thread epoch.
PAUSE = 0.2
# The thread-scaling check: cbp alone, fits at 1 and 2 threads in turn, each on
# this many samples, this many rounds (the second epoch of each fit is timed);
# with --quick, the config's quick samples and 3 rounds.
SCALING = {"tiny": (100_000, 5), "mnist": (20_480, 5), "wide": (1_024, 3),
           "batch1": (20_000, 5)}


def n_weights(sizes):
    return sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


def make_data(cfg, n, dtype, seed):
    """Random inputs, targets for cbp/NumPy, and what sklearn/torch take."""
    rng = np.random.default_rng(seed)
    d, k = cfg["sizes"][0], cfg["sizes"][-1]
    X = np.empty((n, d), dtype=dtype)
    rng.standard_normal(out=X, dtype=dtype)
    if cfg["loss"] == "mse":
        Y = rng.standard_normal((n, k)).astype(dtype)
        return X, Y, Y[:, 0].copy()
    labels = rng.integers(0, k, n)
    Y = np.zeros((n, k), dtype=dtype)
    Y[np.arange(n), labels] = 1
    return X, Y, labels


# -- peers: each is set up once and returns a function that runs one epoch ------


def make_torch(cfg, dtype, threads, X, Y, labels, seed):
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    sizes = cfg["sizes"]
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers).to(getattr(torch, np.dtype(dtype).name))
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    if cfg["loss"] == "mse":
        loss_fn = torch.nn.MSELoss()
        targets = torch.from_numpy(Y)
    else:
        loss_fn = torch.nn.CrossEntropyLoss()
        targets = torch.from_numpy(labels.astype(np.int64))
    inputs = torch.from_numpy(X)
    generator = torch.Generator().manual_seed(seed)
    n, batch = X.shape[0], cfg["batch"]

    def epoch():
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch):
            idx = order[start:start + batch]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(inputs[idx]), targets[idx])
            loss.backward()
            optimizer.step()

    return epoch


def make_sklearn(cfg, dtype, threads, X, Y, labels, seed):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    regression = cfg["loss"] == "mse"
    estimator = (MLPRegressor if regression else MLPClassifier)(
        hidden_layer_sizes=cfg["sizes"][1:-1], activation="relu", solver="sgd",
        alpha=0.0, batch_size=cfg["batch"], learning_rate="constant",
        learning_rate_init=LR, momentum=MOMENTUM, nesterovs_momentum=False,
        shuffle=True, random_state=seed, max_iter=1, early_stopping=False,
    )
    extra = {} if regression else {"classes": np.arange(cfg["sizes"][-1])}

    def epoch():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            estimator.partial_fit(X, labels, **extra)
        if estimator.coefs_[0].dtype != np.dtype(dtype):
            raise RuntimeError(f"scikit-learn trained in {estimator.coefs_[0].dtype}")

    return epoch


def make_numpy(cfg, dtype, threads, X, Y, labels, seed):
    model = NumpyMLP(cfg["sizes"], cfg["output"], dtype, seed=seed, lr=LR,
                     momentum=MOMENTUM)
    rng = np.random.default_rng(seed)
    return lambda: model.train_epoch(X, Y, cfg["batch"], rng)


def time_interleaved(cfg, dtype, threads, X, Y, labels, peers, repeats, seed):
    """Seconds of ``repeats`` epochs of each peer, after one warm-up epoch each.

    Epochs are taken in turn (one of each peer, then again), so that a change of
    load on a shared machine hits every peer alike. cbp's epochs come from one
    multi-epoch ``fit``: the other peers run inside its epoch callback, and cbp's
    epoch is the time between two callbacks less the time spent inside them.
    """
    makers = dict(torch=make_torch, sklearn=make_sklearn, numpy=make_numpy,
                  blas=make_blas)
    epochs = {p: makers[p](cfg, dtype, threads, X, Y, labels, seed)
              for p in peers if p != "cbp"}
    times = {p: [] for p in peers}

    def one_round(record):
        for peer, epoch in epochs.items():
            time.sleep(PAUSE)
            started = time.perf_counter()
            result = epoch()
            seconds = time.perf_counter() - started
            if peer == "blas":
                # the Python cost of the gemm calls
                seconds = max(seconds - result, 0.0)
            if record:
                times[peer].append(seconds)
        time.sleep(PAUSE)

    if "cbp" not in peers:
        for i in range(repeats + 1):
            one_round(record=i > 0)
        return times

    import cbp

    marks = []

    def between_epochs(trainer, record):
        entered = time.perf_counter()
        if marks:
            times["cbp"].append(entered - marks[-1])
        one_round(record=bool(marks))
        marks.append(time.perf_counter())

    net = cbp.Network(cfg["sizes"], activation="relu", output=cfg["output"],
                      dtype=dtype, seed=seed)
    trainer = cbp.Trainer(
        net, cfg["loss"], optimizer=cbp.optim.SGD(lr=LR, momentum=MOMENTUM),
        batch_size=cfg["batch"], epochs=repeats + 1, shuffle=True, seed=seed,
        n_threads=threads, verbose=0, callbacks=[between_epochs],
    )
    trainer.fit(X, Y)
    return times


# -- the BLAS limit -------------------------------------------------------------


def _gemm_calls(sizes, rows):
    """cbp's column-major gemm calls for one batch: (trans_a, trans_b, m, n, k)."""
    from cbp._epoch import NARROW_INPUT_FEATURES

    calls = []
    for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        if l == 0 and n_in < NARROW_INPUT_FEATURES:
            # A narrow shuffled input batch is gathered one sample per column.
            calls.append((1, 1, n_out, rows, n_in))
            calls.append((1, 1, n_in, n_out, rows))
            continue
        # forward, Z = A_prev @ W.T
        calls.append((1, 0, n_out, rows, n_in))
        # weight gradient, grad_W = delta.T @ A_prev
        calls.append((0, 1, n_in, n_out, rows))
        # input gradient, delta_prev = delta @ W (none for the first layer)
        if l > 0:
            calls.append((0, 0, n_in, rows, n_out))
    return calls


def _call_overhead(gemm, dtype, rounds=5, calls=20_000):
    """Median seconds of one Python call to a 1x1x1 gemm: the cost to subtract."""
    a = np.ones((1, 1), dtype=dtype, order="F")
    c = np.zeros((1, 1), dtype=dtype, order="F")
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(calls):
            gemm(1.0, a, a, 0.0, c, 0, 0, 1)
        samples.append((time.perf_counter() - started) / calls)
    return statistics.median(samples)


def make_blas(cfg, dtype, threads, X, Y, labels, seed):
    """An epoch of gemm calls only, returning its gemm seconds.

    Every batch makes cbp's gemm calls in cbp's order on its own preallocated
    operands (so the weights of every layer go through the caches as in
    training); the Python cost of each call is subtracted.
    """
    from scipy.linalg import blas

    gemm = blas.sgemm if np.dtype(dtype) == np.float32 else blas.dgemm
    rng = np.random.default_rng(seed)
    n, batch = X.shape[0], cfg["batch"]

    def operands(rows):
        bound = []
        for trans_a, trans_b, m, n_, k in _gemm_calls(cfg["sizes"], rows):
            a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
            b = rng.standard_normal((n_, k) if trans_b else (k, n_)).astype(dtype)
            bound.append((np.asfortranarray(a), np.asfortranarray(b),
                          np.zeros((m, n_), dtype=dtype, order="F"), trans_a, trans_b))
        return bound

    batches = [operands(batch)] * (n // batch)
    if n % batch:
        batches.append(operands(n % batch))
    n_calls = sum(len(calls) for calls in batches)
    overhead = _call_overhead(gemm, dtype)
    make_blas.overhead = overhead

    def epoch():
        for calls in batches:
            for a, b, c, trans_a, trans_b in calls:
                gemm(1.0, a, b, 0.0, c, trans_a, trans_b, 1)
        return n_calls * overhead

    return epoch


# -- thread scaling -------------------------------------------------------------


def cbp_epoch_seconds(cfg, dtype, threads, X, Y, seed, epochs=2):
    """Seconds of each epoch but the first of one cbp fit at ``threads`` threads."""
    import cbp

    marks = []
    net = cbp.Network(cfg["sizes"], activation="relu", output=cfg["output"],
                      dtype=dtype, seed=seed)
    trainer = cbp.Trainer(
        net, cfg["loss"], optimizer=cbp.optim.SGD(lr=LR, momentum=MOMENTUM),
        batch_size=cfg["batch"], epochs=epochs, shuffle=True, seed=seed,
        n_threads=threads, verbose=0,
        callbacks=[lambda trainer, record: marks.append(time.perf_counter())],
    )
    trainer.fit(X, Y)
    return [b - a for a, b in zip(marks[:-1], marks[1:])]


def thread_scaling(config, dtype, seed, quick, log):
    """cbp's epoch at 1 and at 2 threads, measured in turn, for the thread target.

    The rows of the main table for 1 and 2 threads are measured minutes apart;
    this check alternates fits at 1 and 2 threads with nothing else running, so
    that a change of load hits both alike.
    """
    from threadpoolctl import threadpool_limits

    cfg = CONFIGS[config]
    samples, rounds = SCALING[config]
    if quick:
        samples, rounds = min(samples, cfg["quick"]), 3
    X, Y, _ = make_data(cfg, samples, dtype, seed)
    times = {1: [], 2: []}
    for _ in range(rounds):
        for threads in (1, 2):
            time.sleep(PAUSE)
            with threadpool_limits(limits=threads):
                times[threads] += cbp_epoch_seconds(cfg, dtype, threads, X, Y, seed)
    one, two = (statistics.median(times[t]) for t in (1, 2))
    log(f"  {config:7s} {dtype} thread scaling: 1 thr {one:.4g}  2 thr {two:.4g}  "
        f"s/epoch of {samples} samples")
    return dict(config=config, dtype=dtype, samples=samples, rounds=rounds,
                times={str(t): v for t, v in times.items()}, one=one, two=two)


def format_scaling(items):
    head = (f"{'config':7s} {'dtype':7s} {'samples':>7s} {'1 thr s':>9s} "
            f"{'2 thr s':>9s} {'2/1':>6s}")
    lines = [head]
    for m in items:
        lines.append(f"{m['config']:7s} {m['dtype']:7s} {m['samples']:7d} "
                     f"{m['one']:9.4f} {m['two']:9.4f} {m['two'] / m['one']:6.2f}")
    return "\n".join(lines)


# -- memory ---------------------------------------------------------------------


def rss_child(config, dtype, n, seed):
    """Run in a subprocess: one cbp fit, print peak and baseline RSS as JSON."""
    import cbp

    def status(field):
        with open("/proc/self/status") as f:
            line = next(line for line in f if line.startswith(field + ":"))
        return int(line.split()[1]) * 1024

    def reset_peak():
        # Linux: writing 5 to clear_refs resets the peak (VmHWM) to the current
        # RSS. Without it the peak of a fresh process still counts its start-up.
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass

    cfg = CONFIGS[config]
    after_imports = status("VmRSS")
    X, Y, _ = make_data(cfg, n, dtype, seed)
    before_fit = status("VmRSS")
    reset_peak()
    net = cbp.Network(cfg["sizes"], output=cfg["output"], dtype=dtype, seed=seed)
    cbp.Trainer(net, cfg["loss"], optimizer=cbp.optim.SGD(lr=LR, momentum=MOMENTUM),
                batch_size=cfg["batch"], epochs=1, seed=seed, verbose=0).fit(X, Y)
    peak = status("VmHWM")
    print(json.dumps(dict(after_imports=after_imports, before_fit=before_fit,
                          peak=peak)))


def measure_rss(config, dtype, n, seed):
    cfg = CONFIGS[config]
    out = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--rss-child", config, dtype,
         str(n), str(seed)],
        capture_output=True, text=True, check=True,
    )
    got = json.loads(out.stdout.strip().splitlines()[-1])
    item = np.dtype(dtype).itemsize
    sizes = cfg["sizes"]
    params = (n_weights(sizes) + sum(sizes[1:])) * item
    data = n * (sizes[0] + sizes[-1]) * item
    # Z, A and delta per layer, plus the gathered batch of X and Y.
    activations = cfg["batch"] * (3 * sum(sizes[1:]) + sizes[0] + sizes[-1]) * item
    estimate = data + 4 * params + activations
    used = got["peak"] - got["after_imports"]
    return dict(config=config, dtype=dtype, samples=n, data=data, params=params,
                activations=activations, estimate=estimate, used=used,
                fit_increase=got["peak"] - got["before_fit"], **got)


# -- the run --------------------------------------------------------------------


def machine_info():
    from threadpoolctl import threadpool_info

    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = {"python": platform.python_version(), "numpy": np.__version__}
    for name in ("cbp", "scipy", "torch", "sklearn"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            versions[name] = None
    return dict(
        date=datetime.datetime.now().isoformat(timespec="seconds"),
        cpu=cpu, cores=os.cpu_count(), platform=platform.platform(),
        load_average=os.getloadavg(),
        versions=versions, command=" ".join([os.path.basename(sys.executable)]
                                            + sys.argv),
        environment={k: os.environ.get(k) for k in
                     ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS")},
        blas=[{k: lib.get(k) for k in ("internal_api", "prefix", "version",
                                        "architecture", "threading_layer",
                                        "num_threads", "filepath")}
              for lib in threadpool_info()],
    )


def available_peers(wanted):
    notes, peers = [], []
    for peer in wanted:
        module = {"torch": "torch", "sklearn": "sklearn"}.get(peer)
        if module is not None:
            try:
                __import__(module)
            except ImportError:
                notes.append(f"{peer} skipped: {module} is not installed")
                continue
        peers.append(peer)
    return peers, notes


def run_one(config, dtype, threads, peers, repeats, seed, quick, log):
    from threadpoolctl import threadpool_limits

    cfg = CONFIGS[config]
    n = cfg["n"]
    timed = cfg["quick"] if quick else cfg["timed"]
    scale = n / timed
    X, Y, labels = make_data(cfg, timed, dtype, seed)
    row = dict(config=config, dtype=dtype, threads=threads, samples=n, timed=timed,
               batch=cfg["batch"], sizes=list(cfg["sizes"]),
               gflop=6 * n_weights(cfg["sizes"]) * n / 1e9, times={}, seconds={})
    started = time.perf_counter()
    with threadpool_limits(limits=threads):
        row["times"] = time_interleaved(cfg, dtype, threads, X, Y, labels, peers,
                                        repeats, seed)
    if "blas" in peers:
        row["gemm_call_overhead"] = make_blas.overhead
    for peer in peers:
        row["seconds"][peer] = statistics.median(row["times"][peer]) * scale
    log(f"  {config:7s} {dtype} {threads} thr  "
        + "  ".join(f"{p} {row['seconds'][p]:.4g}" for p in peers)
        + f"  s/epoch ({time.perf_counter() - started:.0f} s)")
    return row


def check_targets(rows, scaling):
    """Return a list of (description, value, met) for every target that was run."""
    by_key = {(r["config"], r["dtype"], r["threads"]): r for r in rows}
    results = []
    for dtype in sorted({r["dtype"] for r in rows}):
        for config, threads, peer, target in SPEEDUP_TARGETS:
            row = by_key.get((config, dtype, threads))
            if row is None or peer not in row["seconds"] or "cbp" not in row["seconds"]:
                continue
            value = row["seconds"][peer] / row["seconds"]["cbp"]
            results.append((f"{config} {dtype} {threads} thr: >= {target:g}x faster "
                            f"than {peer}", f"{value:.2f}x", value >= target))
        for config, threads, limit in OVERHEAD_TARGETS:
            row = by_key.get((config, dtype, threads))
            seconds = {} if row is None else row["seconds"]
            if not seconds.get("blas") or "cbp" not in seconds:
                continue
            value = row["seconds"]["cbp"] / row["seconds"]["blas"]
            results.append((f"{config} {dtype} {threads} thr: within {limit:g}x of "
                            "the BLAS limit", f"{value:.2f}x", value <= limit))
        for item in scaling:
            if item["dtype"] != dtype:
                continue
            config = item["config"]
            value = item["two"] / item["one"]
            results.append((f"{config} {dtype}: 2 threads no slower than 1 "
                            f"(+{THREAD_NOISE:.0%} noise)", f"{value:.2f}x time",
                            value <= 1.0 + THREAD_NOISE))
    return results


def format_table(rows):
    head = (f"{'config':7s} {'dtype':7s} {'thr':>3s} {'timed':>6s} {'s/epoch':>9s} "
            f"{'samples/s':>10s} {'GFLOP/s':>8s} {'xBLAS':>6s} {'torch':>7s} "
            f"{'sklearn':>7s} {'numpy':>7s}")
    lines = [head, "-" * len(head)]
    for r in rows:
        s = r["seconds"]
        cbp_s = s.get("cbp")

        def ratio(peer, inverse=False):
            if not cbp_s or not s.get(peer):
                return "-"
            value = cbp_s / s[peer] if inverse else s[peer] / cbp_s
            return f"{value:.2f}"

        lines.append(
            f"{r['config']:7s} {r['dtype']:7s} {r['threads']:3d} {r['timed']:6d} "
            + (f"{cbp_s:9.4f} {r['samples'] / cbp_s:10.3g} {r['gflop'] / cbp_s:8.1f} "
               if cbp_s else f"{'-':>9s} {'-':>10s} {'-':>8s} ")
            + f"{ratio('blas', True):>6s} {ratio('torch'):>7s} {ratio('sklearn'):>7s} "
            f"{ratio('numpy'):>7s}"
        )
    return "\n".join(lines)


def format_seconds(rows):
    head = (f"{'config':7s} {'dtype':7s} {'thr':>3s} "
            + " ".join(f"{p:>9s}" for p in PEERS) + "   (s/epoch, median)")
    lines = [head]
    for r in rows:
        cells = " ".join(
            f"{r['seconds'][p]:9.4f}" if p in r["seconds"] else f"{'-':>9s}"
            for p in PEERS
        )
        lines.append(f"{r['config']:7s} {r['dtype']:7s} {r['threads']:3d} {cells}")
    return "\n".join(lines)


def format_rss(items):
    mb = 1 / 2**20
    head = (f"{'config':7s} {'dtype':7s} {'samples':>7s} {'peak MB':>8s} "
            f"{'used MB':>8s} {'estimate':>8s} {'used/est':>8s} {'fit+ MB':>8s} "
            f"{'params MB':>9s}")
    lines = [head]
    for m in items:
        lines.append(
            f"{m['config']:7s} {m['dtype']:7s} {m['samples']:7d} {m['peak'] * mb:8.1f} "
            f"{m['used'] * mb:8.1f} {m['estimate'] * mb:8.1f} "
            f"{m['used'] / m['estimate']:8.2f} {m['fit_increase'] * mb:8.1f} "
            f"{m['params'] * mb:9.1f}"
        )
    return "\n".join(lines)


def plot(rows, target):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    peers = [p for p in PEERS if any(p in r["seconds"] for r in rows)]
    labels = [f"{r['config']} f{r['dtype'][5:]} {r['threads']}t" for r in rows]
    width = 0.8 / max(len(peers), 1)
    fig, ax = plt.subplots(figsize=(max(8, 0.9 * len(rows) + 2), 4.5))
    for i, peer in enumerate(peers):
        xs = [j + (i - (len(peers) - 1) / 2) * width for j in range(len(rows))]
        ys = [r["samples"] / r["seconds"][peer] if r["seconds"].get(peer) else 0
              for r in rows]
        ax.bar(xs, ys, width, label="BLAS limit" if peer == "blas" else peer)
    ax.set_yscale("log")
    ax.set_ylabel("samples per second (higher is better)")
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels(labels, rotation=45, ha="right")
    ax.set_title("One training epoch, SGD with momentum (median)")
    ax.legend(ncol=len(peers), fontsize="small")
    fig.tight_layout()
    fig.savefig(target, dpi=100, format="png")
    plt.close(fig)


def _usable_cores():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _no_repeats(items, text, what):
    repeated = sorted({str(item) for item in items if items.count(item) > 1})
    if repeated:
        raise argparse.ArgumentTypeError(
            f"{what} {', '.join(repeated)} given more than once in {text!r}")


def _names(allowed, what):
    """An argparse type: a comma-separated subset of ``allowed``, in order."""
    def parse(text):
        names = [name.strip() for name in text.split(",") if name.strip()]
        if not names:
            raise argparse.ArgumentTypeError(f"no {what} given in {text!r}")
        unknown = [name for name in names if name not in allowed]
        if unknown:
            raise argparse.ArgumentTypeError(
                f"unknown {what} {', '.join(map(repr, unknown))}; "
                f"choose from {', '.join(allowed)}")
        _no_repeats(names, text, what)
        return names
    return parse


def _whole_number(text, low, high, what, why=""):
    """``text`` as an int from ``low`` to ``high``, or an argparse error."""
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < low or (high is not None and value > high):
        bounds = f"from {low} to {high}" if high is not None else f">= {low}"
        raise argparse.ArgumentTypeError(f"{text!r} is not {what} {bounds}{why}")
    return value


def _thread_counts(text):
    """An argparse type: a comma-separated list of thread counts."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"no thread count given in {text!r}")
    # More threads than cores would time the scheduler, not the library.
    cores = _usable_cores()
    counts = [_whole_number(item, 1, cores, "a thread count",
                            f" (this process may use {cores} cores)")
              for item in items]
    _no_repeats(counts, text, "thread count")
    return counts


def _positive_int(text):
    return _whole_number(text, 1, None, "a whole number")


# scikit-learn's random_state, the tightest of the peers' seeds.
MAX_SEED = 2**32 - 1


def _seed(text):
    return _whole_number(text, 0, MAX_SEED, "a whole number")


def _report_path(parser, option, path):
    """Resolve where a report goes; fail now, not after the run, if it cannot.

    Nothing is created: the deepest existing folder on the way must take a new
    file, and an existing report must be a regular file that can be written.
    """
    if not path.strip():
        parser.error(f"{option} {path!r} is blank; give a file name, or '' for "
                     "no report")
    if path.endswith(("/", os.sep)):
        parser.error(f"{option} {path!r} names a folder; expected a file name")
    resolved = os.path.realpath(path)
    if os.path.isdir(resolved):
        parser.error(f"{option} {path!r} is a folder; expected a file name")
    if os.path.exists(resolved):
        if not os.path.isfile(resolved):
            parser.error(f"{option} {path!r} is not a regular file")
        if not os.access(resolved, os.W_OK):
            parser.error(f"{option} {path!r} cannot be written: permission denied")
        return resolved
    folder = os.path.dirname(resolved)
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        parser.error(f"{option} {path!r} cannot be written: {folder!r} is a file, "
                     "not a folder")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".cbp-bench-"):
            pass
    except OSError as error:
        parser.error(f"{option} {path!r} cannot be written: no new file can be "
                     f"made in {folder!r} ({error.strerror})")
    return resolved


def _write_report(path, write):
    """Write a report with ``write(binary_file)``; a failed write keeps the old one."""
    from cbp._atomic_write import write_atomically

    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_atomically(path, write, action="write the report to")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="fewer samples and repeats, float32 and 1 thread only "
                             "unless given: under two minutes")
    parser.add_argument("--configs", type=_names(tuple(CONFIGS), "config"),
                        default=list(CONFIGS),
                        help="comma-separated subset of " + ", ".join(CONFIGS)
                             + " (default: all)")
    parser.add_argument("--dtype", type=_names(("float32", "float64"), "dtype"),
                        default=None,
                        help="float32, float64 or both (comma-separated); default "
                             "both, float32 with --quick")
    parser.add_argument("--threads", type=_thread_counts, default=None,
                        help="comma-separated thread counts, e.g. 1 or 1,2; default "
                             "1,2, 1 with --quick")
    parser.add_argument("--peers", type=_names(PEERS, "peer"), default=list(PEERS),
                        help="comma-separated subset of " + ", ".join(PEERS)
                             + " (default: all that are installed)")
    parser.add_argument("--repeats", type=_positive_int, default=None,
                        help="timed epochs per peer (median); default 5, "
                             "3 with --quick")
    parser.add_argument("--seed", type=_seed, default=0,
                        help="seed of the random data and of the shuffles "
                             "(default: 0)")
    parser.add_argument("--no-rss", action="store_true",
                        help="skip the peak-memory subprocesses")
    parser.add_argument("--json", default=os.path.join(HERE, "results", "latest.json"),
                        help="where to write the report as JSON; '' for nowhere "
                             "(default: bench/results/latest.json)")
    parser.add_argument("--png", default=os.path.join(HERE, "results", "latest.png"),
                        help="where to write the bar chart; '' for nowhere "
                             "(default: bench/results/latest.png)")
    parser.add_argument("--rss-child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rss_child:
        return args
    if args.png:
        if not args.png.lower().endswith(".png"):
            parser.error(f"--png {args.png!r} does not end in .png; the chart is a "
                         "PNG")
        if importlib.util.find_spec("matplotlib") is None:
            parser.error("--png needs matplotlib, which is not installed "
                         "(pip install \".[bench]\"); give --png '' for no chart")
    for option in ("json", "png"):
        if getattr(args, option):
            setattr(args, option,
                    _report_path(parser, "--" + option, getattr(args, option)))
    if args.json and args.json == args.png:
        parser.error(f"--json and --png are the same file {args.json!r}")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.rss_child:
        config, dtype, n, seed = args.rss_child
        rss_child(config, dtype, int(n), int(seed))
        return 0

    configs = args.configs
    dtypes = args.dtype or (["float32"] if args.quick else ["float32", "float64"])
    threads = args.threads or ([1] if args.quick else [1, 2])
    repeats = args.repeats or (3 if args.quick else 5)
    peers, notes = available_peers(args.peers)
    if not peers:
        raise SystemExit("nothing to time: " + "; ".join(notes))

    def log(message):
        print(message, file=sys.stderr, flush=True)

    info = machine_info()
    for note in notes:
        log(note)
    rows = []
    started = time.perf_counter()
    for config in configs:
        for dtype in dtypes:
            for t in threads:
                rows.append(run_one(config, dtype, t, peers, repeats, args.seed,
                                    args.quick, log))
    scaling = []
    if "cbp" in peers and {1, 2} <= set(threads):
        for config in configs:
            for dtype in dtypes:
                scaling.append(thread_scaling(config, dtype, args.seed, args.quick,
                                              log))
    rss = []
    if not args.no_rss and "cbp" in peers:
        for config in configs:
            for dtype in dtypes:
                cfg = CONFIGS[config]
                n = cfg["quick"] if args.quick else cfg["timed"]
                rss.append(measure_rss(config, dtype, n, args.seed))
    targets = check_targets(rows, scaling)
    elapsed = time.perf_counter() - started

    info["load_average_end"] = os.getloadavg()
    print(f"cbp {info['versions']['cbp']} on {info['cpu']}, {info['cores']} cores; "
          f"{info['date']}; {elapsed:.0f} s; load average "
          f"{info['load_average'][0]:.1f} at the start, "
          f"{info['load_average_end'][0]:.1f} at the end")
    for lib in info["blas"]:
        if lib["internal_api"] not in ("openblas", "mkl", "blis"):
            continue
        path = lib.get("filepath") or ""
        owner = ("scipy's, which cbp calls" if "scipy.libs" in path
                 else "numpy's" if "numpy.libs" in path else lib["prefix"])
        print(f"BLAS: {lib['internal_api']} {lib['version']} {lib['architecture']} "
              f"kernels ({owner})")
    print(f"median of {repeats} epochs after a warm-up; speed-up = peer time / cbp "
          "time; xBLAS = cbp time / BLAS limit\n")
    print(format_table(rows))
    print()
    print(format_seconds(rows))
    if scaling:
        print("\ncbp alone at 1 and 2 threads, fits in turn (median seconds of an "
              "epoch of `samples`, not of a full epoch)")
        print(format_scaling(scaling))
    if rss:
        print("\npeak RSS of a cbp fit (used = peak - RSS after imports; estimate = "
              "data + 4 x params + one batch of activations)")
        print(format_rss(rss))
    if targets:
        print("\ntargets")
        for text, value, met in targets:
            print(f"  {'met   ' if met else 'MISSED'}  {text:58s} {value}")
    for note in notes:
        print(f"note: {note}")

    if args.json:
        report = dict(machine=info, repeats=repeats, seconds_total=elapsed,
                      results=rows, thread_scaling=scaling, rss=rss, notes=notes,
                      targets=[dict(target=t, value=v, met=bool(m))
                               for t, v, m in targets])

        _write_report(args.json, lambda f: f.write(
            json.dumps(report, indent=1).encode("utf-8")))
        log(f"wrote {args.json}")
    if args.png and rows:
        _write_report(args.png, lambda f: plot(rows, f))
        log(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
