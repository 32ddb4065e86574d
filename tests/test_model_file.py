"""Model files: exact round trips, resumed training, atomic saves, damaged files."""

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile

import numpy as np
import pytest

import cbp
from cbp import model_file
from cbp.model_file import ModelFileError, load_network, save_network


def _data(n=240, d=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = (X[:, 0] + 0.5 * X[:, 1] - X[:, 2] > 0).astype(np.int64) + (X[:, 3] > 1)
    return X, y


def _trained(dtype="float64", epochs=3):
    X, y = _data()
    net = cbp.Network([6, 12, 7, 3], activation=["tanh", "relu"], output="softmax",
                      dtype=dtype, seed=4)
    trainer = cbp.Trainer(net, "cross_entropy", "adam", batch_size=16, epochs=epochs,
                          seed=5, verbose=0)
    trainer.fit(X, y)
    return net, trainer, X


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trip_is_bit_identical(tmp_path, dtype):
    net, trainer, X = _trained(dtype)
    path = tmp_path / "model.npz"
    metadata = {"classes": ["cat", "dog", "émeu"], "mean": np.arange(3.0) / 7,
                "note": {"epochs": 3}}
    save_network(path, net, trainer=trainer, metadata=metadata)
    loaded = load_network(path)
    other = loaded.network
    assert other.layer_sizes == net.layer_sizes
    assert other.activations == net.activations
    assert other.output == net.output
    assert other.dtype == np.dtype(dtype)
    assert other.params.tobytes() == net.params.tobytes()
    assert np.array_equal(other.predict(X), net.predict(X))
    assert loaded.metadata["classes"] == ["cat", "dog", "émeu"]
    # Floats go through JSON with their shortest exact representation.
    assert loaded.metadata["mean"] == (np.arange(3.0) / 7).tolist()
    assert loaded.training["loss"] == "cross_entropy"
    state = loaded.trainer_state
    assert state["epochs_done"] == 3
    assert state["optimizer"]["step_count"] == trainer.optimizer.step_count
    assert state["optimizer"]["state"].dtype == np.dtype(dtype)
    assert np.array_equal(state["optimizer"]["state"], trainer.optimizer.state)


def test_network_save_and_load_methods(tmp_path):
    net, trainer, X = _trained()
    path = tmp_path / "net.npz"
    net.save(path, optimizer=trainer.optimizer, metadata={"a": 1})
    again = cbp.Network.load(path)
    assert np.array_equal(again.forward(X), net.forward(X))
    loaded = load_network(path)
    assert loaded.trainer_state is None
    assert loaded.optimizer_state["name"] == "Adam"
    assert loaded.metadata == {"a": 1}


def test_save_without_trainer_has_no_state(tmp_path):
    net = cbp.Network([3, 2], output="identity", seed=0)
    save_network(tmp_path / "plain.npz", net)
    loaded = load_network(tmp_path / "plain.npz")
    assert loaded.trainer_state is None and loaded.optimizer_state is None
    assert loaded.metadata == {}
    with zipfile.ZipFile(tmp_path / "plain.npz") as archive:
        assert sorted(archive.namelist()) == ["document.npy", "params.npy"]


def _resume_case(shuffle, tmp_path):
    X, y = _data(seed=1)

    def make():
        net = cbp.Network([6, 10, 3], output="softmax", seed=2)
        trainer = cbp.Trainer(net, "cross_entropy", "adam", batch_size=16, epochs=5,
                              shuffle=shuffle, seed=7, verbose=0, lr_schedule="plateau")
        return net, trainer

    straight, trainer = make()
    trainer.epochs = 10
    trainer.fit(X, y)

    first, trainer = make()
    trainer.fit(X, y)
    save_network(tmp_path / "half.npz", first, trainer=trainer)
    loaded = load_network(tmp_path / "half.npz")
    second, trainer = make()
    second.set_params(loaded.network.params)
    trainer.load_state_dict(loaded.trainer_state)
    trainer.fit(X, y)
    assert trainer.epochs_done == 10
    return straight.params, second.params


@pytest.mark.parametrize("shuffle", [False, True])
def test_resume_is_bit_identical(tmp_path, shuffle):
    """5 epochs, save, load into fresh objects, 5 more == 10 epochs at once."""
    straight, resumed = _resume_case(shuffle, tmp_path)
    assert straight.tobytes() == resumed.tobytes()


# -- atomic saving ---------------------------------------------------------------


def _leftovers(directory, keep):
    return sorted(p.name for p in directory.iterdir() if p.name != keep)


def test_failed_write_keeps_previous_file(tmp_path, monkeypatch):
    net, trainer, X = _trained()
    path = tmp_path / "model.npz"
    save_network(path, net)
    before = path.read_bytes()

    def full_disk(handle, **arrays):
        handle.write(b"PK\x03\x04 partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(model_file.np, "savez", full_disk)
    other = cbp.Network([6, 12, 7, 3], output="softmax", seed=99)
    with pytest.raises(OSError, match="model.npz") as info:
        save_network(path, other)
    assert info.value.errno == errno.ENOSPC
    assert path.read_bytes() == before
    assert _leftovers(tmp_path, "model.npz") == []


def test_failed_fsync_keeps_previous_file(tmp_path, monkeypatch):
    net, _, X = _trained()
    path = tmp_path / "model.npz"
    save_network(path, net)
    before = path.read_bytes()

    def failing_fsync(fd):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(model_file.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="model.npz"):
        save_network(path, cbp.Network([2, 2], seed=0))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert _leftovers(tmp_path, "model.npz") == []
    assert np.array_equal(load_network(path).network.predict(X), net.predict(X))


def test_unwritable_destination_names_path(tmp_path):
    net = cbp.Network([2, 2], seed=0)
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    target = blocker / "model.npz"
    with pytest.raises(OSError, match="a_file"):
        save_network(target, net)
    with pytest.raises(OSError, match="missing_dir"):
        save_network(tmp_path / "missing_dir" / "model.npz", net)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_full_device_keeps_previous_file(tmp_path, monkeypatch):
    net, _, X = _trained()
    path = tmp_path / "model.npz"
    save_network(path, net)
    before = path.read_bytes()
    real_fdopen = os.fdopen

    def onto_full_device(fd, mode="r", *args, **kwargs):
        # The temporary file exists, but every byte written to it fails as on
        # a full disk.
        os.close(fd)
        return real_fdopen(os.open("/dev/full", os.O_WRONLY), mode, *args, **kwargs)

    monkeypatch.setattr(model_file.os, "fdopen", onto_full_device)
    with pytest.raises(OSError, match="model.npz") as info:
        save_network(path, cbp.Network([6, 12, 7, 3], output="softmax", seed=1))
    monkeypatch.undo()
    assert info.value.errno == errno.ENOSPC
    assert path.read_bytes() == before
    assert _leftovers(tmp_path, "model.npz") == []


def test_metadata_that_is_not_json_is_refused_before_writing(tmp_path):
    net = cbp.Network([2, 2], seed=0)
    with pytest.raises(TypeError, match="JSON"):
        save_network(tmp_path / "m.npz", net, metadata={"f": object()})
    assert list(tmp_path.iterdir()) == []


CHILD = textwrap.dedent(
    """
    import sys
    import numpy as np
    import cbp
    from cbp.model_file import save_network

    path = sys.argv[1]
    net = cbp.Network([400, 600, 400, 10], seed=0)
    version = 0
    print("ready", flush=True)
    while True:
        version += 1
        net.params[...] = version
        save_network(path, net, metadata={"version": version})
    """
)


def test_killed_save_leaves_a_loadable_file(tmp_path):
    """SIGKILL at random moments of a save loop: the target always loads whole."""
    path = tmp_path / "big.npz"
    first = cbp.Network([400, 600, 400, 10], seed=0)
    save_network(path, first, metadata={"version": 0})
    rng = np.random.default_rng(0)
    versions = set()
    for _ in range(4):
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)],
                                 stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout.readline().strip() == "ready"
            time.sleep(rng.uniform(0.05, 0.4))
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
            child.stdout.close()
        loaded = load_network(path)
        version = loaded.metadata["version"]
        # Every parameter carries the version the document names: no mixture
        # of an old document with new parameters or of two parameter arrays.
        if version:
            assert np.all(loaded.network.params == version)
        versions.add(version)
    assert any(v > 0 for v in versions), "the child never completed a save"


# -- damaged and foreign files ---------------------------------------------------


@pytest.fixture
def saved(tmp_path):
    net, trainer, _ = _trained(epochs=1)
    path = tmp_path / "model.npz"
    save_network(path, net, trainer=trainer, metadata={"k": "v"})
    return path


def _rewrite(path, members):
    with open(path, "wb") as handle:
        np.savez(handle, **members)


def _members(path):
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def _document(doc):
    return np.frombuffer(json.dumps(doc).encode(), dtype=np.uint8)


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_network(tmp_path / "absent.npz")


@pytest.mark.parametrize("content", [b"", b"hello, not a model\n", b"\x93NUMPY junk"])
def test_foreign_bytes_are_refused(tmp_path, content):
    path = tmp_path / "foreign.npz"
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match="foreign.npz"):
        load_network(path)


def test_plain_npy_file_is_refused(tmp_path):
    path = tmp_path / "array.npy"
    np.save(path, np.arange(5.0))
    with pytest.raises(ModelFileError, match="zip"):
        load_network(path)


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, 0.999])
def test_truncated_file_is_refused(saved, keep):
    data = saved.read_bytes()
    saved.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ModelFileError, match="model.npz"):
        load_network(saved)


def test_flipped_bytes_in_params_are_detected(saved):
    data = bytearray(saved.read_bytes())
    start = data.find(b"params.npy")
    # Past the local header and the .npy header: inside the float data.
    for offset in (300, 400, 500):
        data[start + offset] ^= 0xFF
    saved.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="model.npz"):
        load_network(saved)


def test_wrong_format_name_and_newer_version(saved):
    members = _members(saved)
    doc = json.loads(members["document"].tobytes())
    _rewrite(saved, {**members, "document": _document({**doc, "format": "other"})})
    with pytest.raises(ModelFileError, match="'other'"):
        load_network(saved)
    newer = {**doc, "version": model_file.FORMAT_VERSION + 1}
    _rewrite(saved, {**members, "document": _document(newer)})
    with pytest.raises(ModelFileError, match="newer"):
        load_network(saved)


def test_missing_members_and_keys(saved):
    members = _members(saved)
    _rewrite(saved, {"document": members["document"]})
    with pytest.raises(ModelFileError, match="missing params"):
        load_network(saved)
    doc = json.loads(members["document"].tobytes())
    del doc["architecture"]["layer_sizes"]
    _rewrite(saved, {**members, "document": _document(doc)})
    with pytest.raises(ModelFileError, match="layer_sizes"):
        load_network(saved)


def test_params_disagreeing_with_architecture(saved):
    members = _members(saved)
    params = members["params"]
    _rewrite(saved, {**members, "params": params[:-1]})
    with pytest.raises(ModelFileError, match="shape"):
        load_network(saved)
    _rewrite(saved, {**members, "params": params.astype(np.float32)})
    with pytest.raises(ModelFileError, match="dtype float32"):
        load_network(saved)
    bad = params.copy()
    bad[3] = np.nan
    _rewrite(saved, {**members, "params": bad})
    with pytest.raises(ModelFileError, match="NaN"):
        load_network(saved)


def test_bad_architecture_values(saved):
    members = _members(saved)
    doc = json.loads(members["document"].tobytes())
    for key, value, match in [("activations", ["nope", "relu"], "activations"),
                              ("output", "softplus", "output"),
                              ("dtype", "int8", "dtype"),
                              ("layer_sizes", [6, -1, 3], "layer_sizes")]:
        broken = json.loads(json.dumps(doc))
        broken["architecture"][key] = value
        _rewrite(saved, {**members, "document": _document(broken)})
        with pytest.raises(ModelFileError, match=match):
            load_network(saved)


def test_document_that_is_not_json(saved):
    members = _members(saved)
    _rewrite(saved, {**members, "document": np.frombuffer(b"{not json", np.uint8)})
    with pytest.raises(ModelFileError, match="JSON"):
        load_network(saved)


def test_object_arrays_are_never_unpickled(saved, tmp_path):
    members = _members(saved)
    sentinel = tmp_path / "executed"
    payload = np.array([{"x": 1}, str(sentinel)], dtype=object)
    with open(saved, "wb") as handle:
        np.savez(handle, **{**members, "params": payload})
    with pytest.raises(ModelFileError, match="model.npz"):
        load_network(saved)
    assert not sentinel.exists()


def test_optimizer_state_with_wrong_shape(saved):
    members = _members(saved)
    state = members["optimizer_state"]
    _rewrite(saved, {**members, "optimizer_state": state[:, :-2]})
    with pytest.raises(ModelFileError, match="optimizer_state"):
        load_network(saved)


def test_error_is_a_value_error():
    assert issubclass(ModelFileError, ValueError)
