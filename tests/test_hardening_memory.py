"""Repeated fit / predict / save / load cycles must not leak memory.

The resident set size is read from ``/proc/self/statm`` after a warm-up (so
allocator pools, imported modules and first-call caches are in place) and again
after the remaining cycles; each cycle allocates and frees workspaces,
optimizer state, outputs and model files, so a leak of even a few hundred bytes
per cycle shows up as megabytes.
"""

import gc
import os
import sys
import tempfile

import numpy as np
import pytest

import cbp
from cbp.model_file import load_network, save_network

pytestmark = pytest.mark.skipif(
    not os.path.exists("/proc/self/statm"), reason="reads /proc/self/statm (Linux)"
)

CYCLES = 2000
WARM_UP = 100
MAX_GROWTH_BYTES = 5 * 2**20


def _rss_bytes():
    with open("/proc/self/statm") as handle:
        resident_pages = int(handle.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


@pytest.fixture
def model_dir(tmp_path):
    """A directory in memory when there is one: every save calls fsync, which on
    a disk would make this test slow without making it more telling."""
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        with tempfile.TemporaryDirectory(dir="/dev/shm") as directory:
            yield directory
    else:
        yield str(tmp_path)


def test_cycles_do_not_grow_memory(model_dir):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(32, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
    X32 = X.astype(np.float32)
    path = os.path.join(model_dir, "model.npz")

    def cycle(i):
        dtype = "float32" if i % 2 else "float64"
        net = cbp.Network([4, 6, 2], activation="tanh", output="softmax", dtype=dtype,
                          seed=i)
        optimizer = ("adam", "sgd", "rmsprop")[i % 3]
        trainer = cbp.Trainer(net, "cross_entropy", optimizer, batch_size=8, epochs=1,
                              seed=i, verbose=0, validation_split=0.25)
        trainer.fit(X32 if i % 2 else X, y)
        out = net.predict(X)
        value, _, _ = net.gradients(X, y, "cross_entropy")
        save_network(path, net, trainer=trainer, metadata={"cycle": i})
        loaded = load_network(path)
        assert loaded.metadata["cycle"] == i
        assert np.array_equal(loaded.network.predict(X), out)
        assert np.isfinite(value)

    for i in range(WARM_UP):
        cycle(i)
    gc.collect()
    before = _rss_bytes()
    for i in range(WARM_UP, CYCLES):
        cycle(i)
    gc.collect()
    growth = _rss_bytes() - before
    print(f"RSS growth over {CYCLES - WARM_UP} cycles: {growth / 2**20:.2f} MiB",
          file=sys.stderr)
    assert growth < MAX_GROWTH_BYTES
