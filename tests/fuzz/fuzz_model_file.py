"""Coverage-guided fuzzing of the model-file loader with atheris.

Every input becomes a file given to :func:`cbp.model_file.load_network`. The only
exception the loader may raise is :class:`cbp.model_file.ModelFileError`;
anything else (another exception, a crash, a hang caught by ``-timeout``, memory
beyond ``-rss_limit_mb``) is a fault, and libFuzzer stops and writes the input
to ``crash-*``, ``timeout-*`` or ``oom-*`` in the working directory.

An input is read in one of three ways, chosen by its first byte:

* ``\\x00`` + text: the rest is the JSON document, stored in a well-formed
  archive beside valid parameters (so the fuzzer reaches the document checks
  instead of stopping at zip checksums);
* ``\\x01`` + bytes: the rest is the ``params.npy`` member (header and data),
  beside a valid document;
* anything else: the whole input is the file.

The corpus starts from valid model files (float32 and float64, with and without
a trainer's state) and their documents and parameter members, written into the
corpus directory on the first run.

Run by hand, not in the test suite::

    pip install atheris
    PYTHONPATH=src nice -n 10 python3 tests/fuzz/fuzz_model_file.py \\
        -max_total_time=600 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \\
        /tmp/cbp-fuzz-corpus

It ends with libFuzzer's statistics, for example::

    Done 151234 runs in 601 second(s)
    stat::number_of_executed_units: 151234
    stat::peak_rss_mb:              160

To keep looking for other faults once one is known (and reported), name its
exception classes in ``CBP_FUZZ_KNOWN`` (comma-separated, e.g.
``CBP_FUZZ_KNOWN=TokenError``): those are counted and reported at the end
instead of stopping the run (their counts are printed at each power of two).

Options after the script name go to libFuzzer (``-help=1`` lists them); the
last argument is the corpus directory, created and seeded when missing or empty.
"""

import atexit
import io
import os
import sys
import tempfile
import zipfile

import atheris

with atheris.instrument_imports():
    import json  # noqa: F401 (instrumented for coverage)

    import numpy as np
    from numpy.lib import format as npy_format  # noqa: F401

    import cbp
    from cbp.model_file import ModelFileError, load_network, save_network

KNOWN = {name for name in os.environ.get("CBP_FUZZ_KNOWN", "").split(",") if name}
known_seen = {}

DOCUMENT_MODE = 0
PARAMS_MODE = 1

with tempfile.NamedTemporaryFile(prefix="cbp-fuzz-", suffix=".npz",
                                 delete=False) as _scratch:
    pass


def _members(path):
    with zipfile.ZipFile(path) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def _base_members():
    """The members of a small valid float64 model file."""
    net = cbp.Network([3, 4, 2], activation="tanh", output="softmax", seed=1)
    save_network(_scratch.name, net, metadata={"classes": ["a", "b"]})
    return _members(_scratch.name)


def write_seeds(directory):
    """Write valid model files and their parts into ``directory``, if it is empty."""
    os.makedirs(directory, exist_ok=True)
    if os.listdir(directory):
        return
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = (X[:, 0] > 0).astype(np.int64)
    for dtype in ("float32", "float64"):
        net = cbp.Network([3, 4, 2], activation="tanh", output="softmax",
                          dtype=dtype, seed=1)
        save_network(os.path.join(directory, f"plain-{dtype}.npz"), net,
                     metadata={"classes": ["a", "b"]})
        trainer = cbp.Trainer(net, "cross_entropy", "adam", batch_size=8, epochs=1,
                              seed=2, verbose=0)
        trainer.fit(X, y)
        path = os.path.join(directory, f"trainer-{dtype}.npz")
        save_network(path, net, trainer=trainer)
        members = _members(path)
        document = np.load(io.BytesIO(members["document.npy"]), allow_pickle=False)
        with open(os.path.join(directory, f"document-{dtype}"), "wb") as handle:
            handle.write(bytes([DOCUMENT_MODE]) + document.tobytes())
    with open(os.path.join(directory, "params-float64"), "wb") as handle:
        handle.write(bytes([PARAMS_MODE]) + BASE["params.npy"])
    save_network(os.path.join(directory, "tiny.npz"), cbp.Network([2, 1], seed=3))


def _npy(array):
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def file_bytes(data):
    """Return the bytes of the model file that ``data`` stands for."""
    if not data or data[0] not in (DOCUMENT_MODE, PARAMS_MODE):
        return data
    members = dict(BASE)
    if data[0] == DOCUMENT_MODE:
        members["document.npy"] = _npy(np.frombuffer(data[1:], dtype=np.uint8))
    else:
        members["params.npy"] = data[1:]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def test_one_input(data):
    with open(_scratch.name, "wb") as handle:
        handle.write(file_bytes(data))
    try:
        loaded = load_network(_scratch.name)
    except ModelFileError:
        return
    except Exception as error:
        name = type(error).__name__
        if name not in KNOWN:
            raise
        count = known_seen[name] = known_seen.get(name, 0) + 1
        if count & (count - 1) == 0:
            # libFuzzer leaves through C's exit(), so report as it goes.
            print(f"known fault {name} seen {count} times", file=sys.stderr)
        return
    # A file that loads gives a usable network.
    net = loaded.network
    out = net.predict(np.zeros((1, net.n_inputs), dtype=net.dtype))
    assert out.shape == (1, net.n_outputs)
    assert np.isfinite(out).all()


BASE = _base_members()


def main():
    corpus = [arg for arg in sys.argv[1:] if not arg.startswith("-")]
    if corpus:
        write_seeds(corpus[-1])
    atheris.Setup(sys.argv, test_one_input)
    atexit.register(_report)
    atheris.Fuzz()


def _report():
    if os.path.exists(_scratch.name):
        os.unlink(_scratch.name)
    if KNOWN:
        print(f"known faults seen: {known_seen or 'none'}", file=sys.stderr)


if __name__ == "__main__":
    main()
