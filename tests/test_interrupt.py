"""Ctrl-C during a long epoch: a quick stop and a consistent network afterwards.

The fit runs in a child process so that the signal reaches a real interpreter
in the middle of the core's epoch loop, exactly as a user's Ctrl-C would.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import cbp

pytestmark = pytest.mark.skipif(
    sys.platform == "win32", reason="sends SIGINT, which Windows does not deliver"
)

# Generous on purpose: the core checks for signals every few milliseconds of
# work, but the machine may be busy with other jobs. This bounds responsiveness;
# it is not a measure of speed.
STOP_BOUND_SECONDS = 5.0

# An epoch of this problem takes several seconds on one BLAS thread, so the
# signal arrives inside the first epoch, in the middle of the core's loop.
CHILD = textwrap.dedent("""
    import json
    import signal
    import time

    import numpy as np

    import cbp
    from cbp.optim import SGD

    # A child started from a background job inherits SIGINT as ignored, and
    # Python then installs no handler: put back the one that raises
    # KeyboardInterrupt, as in an interactive session.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    SIZES, N, BATCH = [64, 512, 512, 10], 65536, 64
    rng = np.random.default_rng(0)
    X = rng.normal(size=(N, SIZES[0]))
    Y = rng.normal(size=(N, SIZES[-1]))

    def make_optimizer():
        return SGD(lr=1e-3, momentum=0.9)

    net = cbp.Network(SIZES, seed=0)
    initial = net.params.copy()
    trainer = cbp.Trainer(net, "mse", optimizer=make_optimizer(), batch_size=BATCH,
                          epochs=50, shuffle=False, verbose=0)
    print("READY", flush=True)
    try:
        trainer.fit(X, Y)
    except KeyboardInterrupt as error:
        caught = time.time()
        message = str(error)
    else:
        raise SystemExit("the fit ended without being interrupted")

    # Replay the batches in order through Optimizer.step and find after how
    # many the replayed parameters equal the interrupted ones: the network must
    # hold the state after a whole number of batches, not a partial update.
    per_epoch = N // BATCH
    replay = cbp.Network(SIZES, seed=0)
    optimizer = make_optimizer()
    matched, replay_error = -1, None
    for step in range(1, per_epoch + 1):
        start = (step - 1) * BATCH
        _, grad_w, grad_b = replay.gradients(X[start:start + BATCH],
                                             Y[start:start + BATCH], "mse")
        grad = np.concatenate([np.concatenate([W.ravel(), b])
                               for W, b in zip(grad_w, grad_b)])
        optimizer.step(replay.params, grad)
        error = np.max(np.abs(net.params - replay.params))
        error /= np.max(np.abs(replay.params))
        if error <= 1e-10:
            matched, replay_error = step, float(error)
            break
    print(json.dumps({
        "caught": caught,
        "message": message,
        "interrupted": trainer.history.interrupted,
        "records": len(trainer.history),
        "epochs_done": trainer.epochs_done,
        "step_count": trainer.optimizer.step_count,
        "samples_seen": trainer.samples_seen,
        "finite": bool(np.isfinite(net.params).all()),
        "changed": bool(not np.array_equal(net.params, initial)),
        "matched_batches": matched,
        "replay_error": replay_error,
    }), flush=True)
""")


@pytest.fixture(scope="module")
def interrupted_fit():
    """Run the child, send SIGINT one second into its fit, return its report."""
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(cbp.__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [package_root] + [p for p in [env.get("PYTHONPATH")] if p]
    )
    env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=env,
    )
    try:
        ready = child.stdout.readline()
        assert ready.strip() == "READY", child.stderr.read()
        # Let the fit get well into its first epoch.
        time.sleep(1.0)
        sent = time.time()
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    report["stop_seconds"] = report["caught"] - sent
    return report


def test_ctrl_c_stops_quickly_after_whole_batches(interrupted_fit):
    report = interrupted_fit
    print(f"stop time after SIGINT: {report['stop_seconds']:.3f} s, after "
          f"{report['matched_batches']} batches")
    assert 0 <= report["stop_seconds"] < STOP_BOUND_SECONDS
    assert report["finite"] and report["changed"]
    assert report["matched_batches"] >= 1, "params match no whole number of batches"


def test_ctrl_c_keeps_bookkeeping_consistent(interrupted_fit):
    """Guards against Ctrl-C escaping the core as an exception.

    The trainer's record of the partial epoch, its step count and its sample
    count are then skipped, and the optimizer's count falls out of step with
    the updates already applied.
    """
    report = interrupted_fit
    batches = report["matched_batches"]
    assert report["interrupted"]
    assert "Ctrl-C" in report["message"]
    # Interrupted inside the first epoch, which left a partial-epoch record.
    assert report["epochs_done"] == 0
    assert report["records"] == 1
    assert report["step_count"] == batches
    assert report["samples_seen"] == 64 * batches
