"""Damaged and random model files: the loader raises ModelFileError and nothing else.

Hypothesis feeds the loader random bytes, valid files with bytes flipped,
inserted or cut, and well-formed archives whose JSON document or parameter
array was mutated (so the zip checksums hold and the checks behind them are
reached). Any other exception, a crash or an example slower than the deadline
fails the test. The long coverage-guided run is ``tests/fuzz/fuzz_model_file.py``.
"""

import io
import json
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cbp
from cbp.model_file import ModelFileError, load_network, save_network

FUZZ = settings(
    max_examples=200,
    deadline=2000,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _seed_files(directory):
    """Valid model files in float32 and float64, with and without training state."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 3))
    y = (X[:, 0] > 0).astype(np.int64)
    paths = []
    for dtype in ("float32", "float64"):
        net = cbp.Network(
            [3, 4, 2], activation="tanh", output="softmax", dtype=dtype, seed=1
        )
        path = directory / f"plain-{dtype}.npz"
        save_network(path, net, metadata={"classes": ["a", "b"], "scale": [1.5, 2.0]})
        paths.append(path)
        trainer = cbp.Trainer(
            net, "cross_entropy", "adam", batch_size=8, epochs=1, seed=2, verbose=0
        )
        trainer.fit(X, y)
        path = directory / f"trainer-{dtype}.npz"
        save_network(path, net, trainer=trainer)
        paths.append(path)
    return [path.read_bytes() for path in paths]


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    return _seed_files(tmp_path_factory.mktemp("seeds"))


def _members(data):
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def _archive(members):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _npy(array):
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _load_only_model_file_errors(path, data):
    """Write ``data`` to ``path`` and load it: a usable network or ModelFileError."""
    path.write_bytes(data)
    try:
        loaded = load_network(path)
    except ModelFileError as error:
        assert str(path) in str(error)
        return None
    net = loaded.network
    out = net.predict(np.zeros((2, net.n_inputs)))
    assert out.shape == (2, net.n_outputs) and np.isfinite(out).all()
    return loaded


def test_seed_files_load(seeds, tmp_path):
    for data in seeds:
        assert _load_only_model_file_errors(tmp_path / "seed.npz", data) is not None


@FUZZ
@given(data=st.binary(max_size=4096))
def test_random_bytes(tmp_path, data):
    assert _load_only_model_file_errors(tmp_path / "random.npz", data) is None


@st.composite
def mutated_seed(draw, seeds):
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            data[at] = draw(st.sampled_from([0x00, 0xFF, 0x7F, 0x80, ord("P")]))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        else:
            del data[at:]
    return bytes(data)


@FUZZ
@given(st.data())
def test_mutated_files(seeds, tmp_path, data):
    mutated = data.draw(mutated_seed(seeds))
    _load_only_model_file_errors(tmp_path / "mutated.npz", mutated)


def _json_values():
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(-(2**70), 2**70)
        | st.floats(allow_nan=False)
        | st.text(max_size=8)
    )
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=8,
    )


@st.composite
def mutated_document(draw, seeds):
    """A seed's JSON document with entries replaced, removed or added."""
    members = _members(draw(st.sampled_from(seeds)))
    doc = json.loads(np.load(io.BytesIO(members["document.npy"])).tobytes())
    for _ in range(draw(st.integers(1, 4))):
        # Walk down to a random object inside the document.
        target = doc
        while True:
            keys = [k for k, v in target.items() if isinstance(v, dict)]
            if not keys or draw(st.booleans()):
                break
            target = target[draw(st.sampled_from(sorted(keys)))]
        action = draw(st.sampled_from(["replace", "remove", "add"]))
        if action == "add" or not target:
            target[draw(st.text(max_size=8))] = draw(_json_values())
            continue
        key = draw(st.sampled_from(sorted(target)))
        if action == "remove":
            del target[key]
        else:
            target[key] = draw(
                _json_values()
                | st.sampled_from(
                    [
                        [3, 4, 2],
                        [3, 2],
                        [0, 2],
                        [2**40, 2],
                        "float16",
                        "relu",
                        10**30,
                        -1,
                    ]
                )
            )
    members["document.npy"] = _npy(
        np.frombuffer(json.dumps(doc).encode(), dtype=np.uint8)
    )
    return _archive(members)


@FUZZ
@given(st.data())
def test_mutated_documents(seeds, tmp_path, data):
    _load_only_model_file_errors(
        tmp_path / "document.npz", data.draw(mutated_document(seeds))
    )


@st.composite
def replaced_array(draw, seeds):
    """A well-formed archive whose params array is another valid .npy array."""
    members = _members(draw(st.sampled_from(seeds)))
    dtype = draw(st.sampled_from(["<f4", "<f8", ">f8", "<i8", "|u1", "<c16", "|b1"]))
    shape = draw(st.sampled_from([(26,), (0,), (26, 1), (2, 13), (), (27,), (25,)]))
    values = draw(st.sampled_from([0.0, 1.0, np.nan, np.inf, 1e300]))
    with np.errstate(all="ignore"):
        array = np.full(shape, values).astype(dtype)
    name = draw(st.sampled_from(["params.npy", "optimizer_state.npy"]))
    members[name] = _npy(array)
    return _archive(members)


@FUZZ
@given(st.data())
def test_replaced_arrays(seeds, tmp_path, data):
    _load_only_model_file_errors(
        tmp_path / "array.npz", data.draw(replaced_array(seeds))
    )


def _with_member(seed, name, content):
    members = _members(seed)
    members[name] = content
    return _archive(members)


def test_member_that_is_not_npy_is_refused(seeds, tmp_path):
    data = _with_member(seeds[1], "params.npy", b"not an npy array")
    with pytest.raises(ModelFileError):
        load_network(_write(tmp_path / "raw.npz", data))


@pytest.mark.parametrize("name", ["params.npy", "document.npy"])
def test_unparsable_npy_header_is_refused(seeds, tmp_path, name):
    header = b"{'descr': '<f8"
    content = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header
    data = _with_member(seeds[1], name, content)
    with pytest.raises(ModelFileError):
        load_network(_write(tmp_path / "header.npz", data))


def _write(path, data):
    path.write_bytes(data)
    return path


@FUZZ
@given(st.data())
def test_mutated_npy_members(seeds, tmp_path, data):
    """Bytes of the params member mutated inside a well-formed archive."""
    members = _members(data.draw(st.sampled_from(seeds)))
    raw = bytearray(members["params.npy"])
    for _ in range(data.draw(st.integers(1, 4))):
        # Mutate the header (the first 128 bytes) more often than the values.
        at = data.draw(st.integers(6, 127) | st.integers(0, len(raw) - 1))
        raw[at] = data.draw(st.integers(0, 255))
    # Keep the magic, so np.load reads the member as an array (see the
    # test above for members without it).
    raw[:6] = b"\x93NUMPY"
    members["params.npy"] = bytes(raw)
    _load_only_model_file_errors(tmp_path / "npy.npz", _archive(members))
