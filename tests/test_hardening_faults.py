"""Faults while saving a model: the error is clear and the previous file stays.

``tests/test_model_file.py`` covers a full disk while writing (a failing
``np.savez`` and ``/dev/full``), a failing ``fsync``, a directory that is a
regular file, and SIGKILL in the middle of saves; ``tests/test_interrupt.py``
covers Ctrl-C during a fit. This adds the failures left: the final rename
failing, Ctrl-C in the middle of a save, and a target the kernel refuses.
"""

import errno
import os

import numpy as np
import pytest

import cbp
from cbp import model_file
from cbp.model_file import load_network, save_network


@pytest.fixture
def saved(tmp_path):
    net = cbp.Network([3, 5, 2], activation="tanh", output="softmax", seed=0)
    path = tmp_path / "model.npz"
    save_network(path, net, metadata={"version": 1})
    return path, net


def _others(directory, keep):
    return sorted(p.name for p in directory.iterdir() if p.name != keep)


def _assert_previous_file_intact(path, net, before):
    assert path.read_bytes() == before
    loaded = load_network(path)
    assert loaded.metadata == {"version": 1}
    assert loaded.network.params.tobytes() == net.params.tobytes()
    assert _others(path.parent, path.name) == []


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EXDEV, errno.EACCES])
def test_failed_rename_keeps_previous_file(saved, monkeypatch, code):
    path, net = saved
    before = path.read_bytes()

    def failing_replace(source, target):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(model_file.os, "replace", failing_replace)
    other = cbp.Network([3, 5, 2], activation="tanh", output="softmax", seed=1)
    with pytest.raises(OSError, match="model.npz") as info:
        other.save(path, metadata={"version": 2})
    assert info.value.errno == code
    assert os.strerror(code) in str(info.value)
    monkeypatch.undo()
    _assert_previous_file_intact(path, net, before)


def test_ctrl_c_during_save_keeps_previous_file(saved, monkeypatch):
    path, net = saved
    before = path.read_bytes()
    real_savez = np.savez

    def interrupted_savez(handle, **arrays):
        real_savez(handle, **arrays)
        handle.flush()
        raise KeyboardInterrupt

    monkeypatch.setattr(model_file.np, "savez", interrupted_savez)
    with pytest.raises(KeyboardInterrupt):
        save_network(path, cbp.Network([3, 5, 2], output="softmax", seed=2),
                     metadata={"version": 2})
    monkeypatch.undo()
    _assert_previous_file_intact(path, net, before)


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc")
def test_target_the_kernel_refuses_names_the_path():
    """Nobody, not even root, can create a file in /proc."""
    net = cbp.Network([2, 2], seed=0)
    target = "/proc/cbp-model-test.npz"
    with pytest.raises(OSError, match="cbp-model-test.npz") as info:
        net.save(target)
    assert info.value.errno is not None
    assert not os.path.exists(target)


def test_saving_onto_a_directory_keeps_it(tmp_path):
    target = tmp_path / "models"
    target.mkdir()
    (target / "keep.txt").write_text("kept")
    with pytest.raises(OSError, match="models"):
        save_network(target, cbp.Network([2, 2], seed=0))
    assert (target / "keep.txt").read_text() == "kept"
    assert _others(tmp_path, "models") == []
