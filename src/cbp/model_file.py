"""Reading and writing cbp model files.

A model file is a NumPy ``.npz`` archive (a zip of ``.npy`` members, no pickle)
holding

* ``params``: the network's flat parameter buffer, in the network's dtype;
* ``optimizer_state``: the optimizer's state buffers, when saved with one;
* ``document``: a UTF-8 JSON document stored as a ``uint8`` array, with the
  format name (``"cbp-model"``), the format version, the architecture, the
  trainer's state without its arrays, and the user's metadata.

Saving is atomic: the archive is written to a temporary file in the target's
directory, flushed to disk and then renamed over the target, so a reader sees
either the old file or the new one, whatever happens during the save. Loading
never executes anything from the file and checks every part of it; any problem
with the content raises :class:`ModelFileError`.
"""

import json
import math
import numbers
import os
import zipfile
from dataclasses import dataclass, field

import numpy as np

from cbp._atomic_write import write_atomically
from cbp.network import HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS, Network

FORMAT_NAME = "cbp-model"
FORMAT_VERSION = 1

# Members of the archive, as np.savez names them.
PARAMS = "params"
OPTIMIZER_STATE = "optimizer_state"
DOCUMENT = "document"
_KNOWN_MEMBERS = {PARAMS, OPTIMIZER_STATE, DOCUMENT}

# An .npy header is at most a few hundred bytes; this bounds it generously.
_NPY_HEADER_MAX = 65536
# The JSON document holds metadata and a training history, never arrays of
# parameters, so anything larger is not a file this module wrote.
_DOCUMENT_MAX_BYTES = 256 * 2**20


class ModelFileError(ValueError):
    """Raised when a model file cannot be read: damaged, foreign or inconsistent."""


@dataclass
class ModelFile:
    """The content of a model file, as returned by :func:`load_network`.

    Attributes
    ----------
    network : Network
        The network, with the saved parameters.
    trainer_state : dict or None
        What :meth:`cbp.Trainer.state_dict` returned when saving (arrays
        included), ready for :meth:`cbp.Trainer.load_state_dict`; ``None`` when
        no trainer was saved.
    optimizer_state : dict or None
        What :meth:`cbp.optim.Optimizer.state_dict` returned, ready for
        :meth:`~cbp.optim.Optimizer.load_state_dict`; also present when a
        trainer was saved (its optimizer's state).
    metadata : dict
        The user metadata given when saving (empty when none).
    training : dict or None
        The trainer's settings when saving (loss, optimizer name, batch size,
        epochs, seed, ``l2``), for information.
    format_version : int
        Version of the format the file was written in.
    path : str
        The file that was read.
    """

    network: Network
    trainer_state: dict = None
    optimizer_state: dict = None
    metadata: dict = field(default_factory=dict)
    training: dict = None
    format_version: int = FORMAT_VERSION
    path: str = ""


# -- saving --------------------------------------------------------------------


def _json_default(value):
    """Turn NumPy scalars and arrays in metadata into plain JSON values."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biufU":
            raise TypeError(f"an array of dtype {value.dtype} is not JSON-serialisable")
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} object is not JSON-serialisable")


def _split_optimizer_state(state, network):
    """Return the optimizer state without its buffers, and the buffers."""
    state = dict(state)
    buffers = state.pop("state", None)
    if buffers is not None:
        buffers = np.ascontiguousarray(buffers)
        if buffers.ndim != 2 or buffers.shape[1] != network.n_params:
            raise ValueError(
                f"the optimizer's state has shape {buffers.shape}; expected "
                f"(n_buffers, {network.n_params}) for this network"
            )
    state["state"] = OPTIMIZER_STATE if buffers is not None else None
    return state, buffers


def _training_settings(trainer):
    optimizer = trainer.optimizer
    return {
        "loss": trainer.loss,
        "optimizer": type(optimizer).__name__,
        "batch_size": trainer.batch_size,
        "epochs": trainer.epochs,
        "shuffle": trainer.shuffle,
        "seed": trainer.seed if isinstance(trainer.seed, (int, type(None))) else None,
        "l2": trainer.l2,
    }


def _document(network, trainer, optimizer, metadata):
    """Return the JSON text and the optimizer buffers (or None) to be saved."""
    if not isinstance(network, Network):
        raise TypeError(f"network must be a cbp.Network, got {type(network).__name__}")
    if (
        trainer is not None
        and optimizer is not None
        and optimizer is not trainer.optimizer
    ):
        raise ValueError(
            "give either trainer or optimizer: the trainer's state already holds "
            "its optimizer's"
        )
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
    doc = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "architecture": {
            "layer_sizes": list(network.layer_sizes),
            "activations": list(network.activations),
            "output": network.output,
            "dtype": network.dtype.name,
            "n_params": network.n_params,
        },
        "trainer": None,
        "optimizer": None,
        "training": None,
        "metadata": metadata,
    }
    buffers = None
    if trainer is not None:
        state = dict(trainer.state_dict())
        state["optimizer"], buffers = _split_optimizer_state(
            state["optimizer"], network
        )
        doc["optimizer"] = state.pop("optimizer")
        doc["trainer"] = state
        doc["training"] = _training_settings(trainer)
    elif optimizer is not None:
        doc["optimizer"], buffers = _split_optimizer_state(
            optimizer.state_dict(), network
        )
    try:
        text = json.dumps(doc, default=_json_default, ensure_ascii=False)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"metadata or trainer state cannot be written as JSON: {error}"
        ) from None
    return text, buffers


def save_network(path, network, trainer=None, optimizer=None, metadata=None):
    """Write ``network`` (and optionally its training state) to ``path`` atomically.

    The file is first written to a temporary file in the same directory, flushed
    with ``os.fsync`` and then renamed over ``path``; if anything fails the
    temporary file is removed and a previous file at ``path`` is left as it was.

    Parameters
    ----------
    path : str or os.PathLike
        Where to write; ``.npz`` is the customary suffix (none is added).
    network : Network
    trainer : cbp.Trainer, optional
        Its :meth:`~cbp.Trainer.state_dict` is saved (optimizer state, shuffling
        generator, counters, schedule), so that training can resume exactly.
    optimizer : cbp.optim.Optimizer, optional
        Saved on its own when no trainer is given.
    metadata : dict, optional
        JSON-serialisable information (NumPy arrays and scalars are turned into
        lists and numbers): input scaling, class labels, a training summary.

    Raises
    ------
    OSError
        When the file cannot be written (the message names ``path``).
    TypeError
        When ``metadata`` cannot be written as JSON.
    """
    text, buffers = _document(network, trainer, optimizer, metadata)
    arrays = {
        PARAMS: network.params,
        DOCUMENT: np.frombuffer(text.encode("utf-8"), dtype=np.uint8),
    }
    if buffers is not None:
        arrays[OPTIMIZER_STATE] = buffers
    write_atomically(path, lambda handle: np.savez(handle, **arrays),
                     action="save the model to")


# -- loading -------------------------------------------------------------------


class _Reader:
    """Checks of one file, each raising ModelFileError that names the file."""

    def __init__(self, path):
        self.path = path

    def fail(self, what):
        raise ModelFileError(f"model file {self.path!r}: {what}")

    def member_sizes(self):
        """Return {member name: uncompressed size} after checking the zip itself."""
        try:
            with zipfile.ZipFile(self.path) as archive:
                infos = archive.infolist()
        except zipfile.BadZipFile:
            self.fail("not a cbp model file (not a zip archive, or truncated)")
        except (OSError, EOFError, ValueError, RuntimeError) as error:
            if isinstance(error, FileNotFoundError):
                raise
            self.fail(f"cannot be read as a zip archive ({error})")
        sizes = {}
        for info in infos:
            name = info.filename
            if not name.endswith(".npy"):
                self.fail(f"unexpected member {name!r}; expected only .npy arrays")
            sizes[name[:-4]] = info.file_size
        missing = {PARAMS, DOCUMENT} - set(sizes)
        if missing:
            self.fail(f"missing {', '.join(sorted(missing))}; not a cbp model file")
        unknown = set(sizes) - _KNOWN_MEMBERS
        if unknown:
            self.fail(f"unexpected arrays {', '.join(sorted(unknown))}")
        return sizes

    def arrays(self, sizes, expected_bytes):
        """Read every member with NumPy, refusing oversized or pickled ones."""
        for name, limit in expected_bytes.items():
            if name in sizes and sizes[name] > limit + _NPY_HEADER_MAX:
                self.fail(
                    f"{name} holds {sizes[name]} bytes, more than the {limit} the "
                    "architecture allows"
                )
        arrays = {}
        try:
            with np.load(self.path, allow_pickle=False) as archive:
                for name in sizes:
                    arrays[name] = archive[name]
        except (FileNotFoundError, MemoryError):
            raise
        except Exception as error:
            # NumPy's header parser can fail in many ways on damaged bytes
            # (ValueError, SyntaxError, tokenize errors, zlib errors, ...): every
            # one of them means the same thing here.
            self.fail(
                f"damaged or unreadable array data ({type(error).__name__}: {error})"
            )
        for name, value in arrays.items():
            # A member without the .npy magic comes back as raw bytes.
            if not isinstance(value, np.ndarray):
                self.fail(f"{name} is not a NumPy array")
        return arrays

    def document(self, raw):
        if raw.dtype != np.uint8 or raw.ndim != 1:
            self.fail(
                f"the document has dtype {raw.dtype} and shape {raw.shape}; expected "
                "a 1-D uint8 array of JSON text"
            )
        try:
            doc = json.loads(raw.tobytes().decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as error:
            self.fail(f"the document is not valid JSON ({error})")
        if not isinstance(doc, dict):
            self.fail("the document is not a JSON object")
        if doc.get("format") != FORMAT_NAME:
            self.fail(
                f"format is {doc.get('format')!r}; expected {FORMAT_NAME!r} (not a cbp "
                "model file)"
            )
        version = doc.get("version")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            self.fail(f"format version {version!r} is not a positive integer")
        if version > FORMAT_VERSION:
            self.fail(
                f"format version {version} is newer than the {FORMAT_VERSION} this "
                "cbp reads; upgrade cbp to load it"
            )
        for key in ("architecture", "metadata"):
            if key not in doc:
                self.fail(f"the document has no {key!r} entry")
        for key in ("metadata",):
            if not isinstance(doc[key], dict):
                self.fail(f"{key!r} is {type(doc[key]).__name__}; expected an object")
        for key in ("trainer", "optimizer", "training"):
            if doc.get(key) is not None and not isinstance(doc[key], dict):
                self.fail(f"{key!r} is {type(doc[key]).__name__}; expected an object")
        return doc

    def architecture(self, arch):
        """Return the checked architecture and its parameter count."""
        if not isinstance(arch, dict):
            self.fail("'architecture' is not an object")
        for key in ("layer_sizes", "activations", "output", "dtype"):
            if key not in arch:
                self.fail(f"the architecture has no {key!r}")
        sizes = arch["layer_sizes"]
        if (
            not isinstance(sizes, list)
            or len(sizes) < 2
            or not all(
                isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in sizes
            )
        ):
            self.fail(f"layer_sizes={sizes!r}; expected at least 2 positive integers")
        activations = arch["activations"]
        if (
            not isinstance(activations, list)
            or len(activations) != len(sizes) - 2
            or not all(a in HIDDEN_ACTIVATIONS for a in activations)
        ):
            self.fail(
                f"activations={activations!r}; expected {len(sizes) - 2} names among "
                f"{', '.join(HIDDEN_ACTIVATIONS)}"
            )
        if arch["output"] not in OUTPUT_ACTIVATIONS:
            self.fail(
                f"output={arch['output']!r}; expected one of "
                f"{', '.join(OUTPUT_ACTIVATIONS)}"
            )
        if arch["dtype"] not in ("float32", "float64"):
            self.fail(f"dtype={arch['dtype']!r}; expected 'float32' or 'float64'")
        n_params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
        stated = arch.get("n_params", n_params)
        if stated != n_params:
            self.fail(
                f"n_params={stated!r} does not match layer_sizes {sizes} "
                f"({n_params} parameters)"
            )
        return arch, n_params

    def parameter_array(self, array, name, dtype, shape):
        if array.dtype != dtype:
            self.fail(f"{name} has dtype {array.dtype}; the architecture says {dtype}")
        if array.shape != shape:
            self.fail(f"{name} has shape {array.shape}; expected {shape}")
        if not np.isfinite(array).all():
            self.fail(f"{name} contains NaN or infinite values")
        return array

    def optimizer_state(self, state, arrays, dtype, n_params, where):
        if not isinstance(state, dict):
            self.fail(f"{where} is not an object")
        for key in ("name", "hyperparameters", "step_count"):
            if key not in state:
                self.fail(f"{where} has no {key!r}")
        if not isinstance(state["hyperparameters"], dict):
            self.fail(f"{where}.hyperparameters is not an object")
        step = state["step_count"]
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            self.fail(f"{where}.step_count={step!r}; expected an integer >= 0")
        state = dict(state)
        if state.get("state") is None:
            if OPTIMIZER_STATE in arrays:
                self.fail(f"{OPTIMIZER_STATE} is stored but {where} does not use it")
            state["state"] = None
            return state
        if state["state"] != OPTIMIZER_STATE or OPTIMIZER_STATE not in arrays:
            self.fail(f"{where} refers to state buffers the file does not hold")
        buffers = arrays[OPTIMIZER_STATE]
        if buffers.ndim != 2:
            self.fail(f"{OPTIMIZER_STATE} has shape {buffers.shape}; expected 2-D")
        state["state"] = self.parameter_array(
            buffers, OPTIMIZER_STATE, dtype, (buffers.shape[0], n_params)
        ).copy()
        return state

    def trainer_state(self, state, optimizer):
        for key in ("epochs_done", "samples_seen"):
            value = state.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                self.fail(f"trainer.{key}={value!r}; expected an integer >= 0")
        rng = state.get("rng_state")
        if rng is not None and (
            isinstance(rng, bool) or not isinstance(rng, int) or not 0 <= rng < 2**64
        ):
            self.fail(f"trainer.rng_state={rng!r}; expected an unsigned 64-bit integer")
        base_lr = state.get("base_lr")
        if (
            isinstance(base_lr, bool)
            or not isinstance(base_lr, numbers.Real)
            or not math.isfinite(base_lr)
        ):
            self.fail(f"trainer.base_lr={base_lr!r}; expected a finite number")
        schedule = state.get("schedule", {})
        if not isinstance(schedule, dict):
            self.fail("trainer.schedule is not an object")
        state = dict(state)
        state["optimizer"] = optimizer
        return state


def load_network(path):
    """Read a model file written by :func:`save_network`.

    Only ``.npy`` arrays (with ``allow_pickle=False``) and JSON are read: nothing
    in the file is ever executed.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    ModelFile

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ModelFileError
        When the file is not a cbp model file, is truncated or damaged, was
        written by a newer format version, or its parts do not agree (parameter
        count or dtype against the architecture, non-finite values, missing
        entries). The message names the file and the problem.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ModelFileError(f"model file {path!r}: is a directory")
    reader = _Reader(path)
    sizes = reader.member_sizes()
    if sizes[DOCUMENT] > _DOCUMENT_MAX_BYTES + _NPY_HEADER_MAX:
        reader.fail(f"the document holds {sizes[DOCUMENT]} bytes; too large")
    doc = reader.document(reader.arrays({DOCUMENT: sizes[DOCUMENT]}, {})[DOCUMENT])
    arch, n_params = reader.architecture(doc["architecture"])
    dtype = np.dtype(arch["dtype"])
    arrays = reader.arrays(
        sizes,
        {
            PARAMS: n_params * dtype.itemsize,
            # Optimizers keep at most a few buffers per parameter.
            OPTIMIZER_STATE: 8 * n_params * dtype.itemsize,
        },
    )
    params = reader.parameter_array(arrays[PARAMS], PARAMS, dtype, (n_params,))

    network = Network(
        arch["layer_sizes"],
        activation=list(arch["activations"]),
        output=arch["output"],
        dtype=arch["dtype"],
        seed=0,
    )
    network.params[...] = params

    optimizer_state = None
    if doc.get("optimizer") is not None:
        optimizer_state = reader.optimizer_state(
            doc["optimizer"], arrays, dtype, n_params, "optimizer"
        )
    elif OPTIMIZER_STATE in arrays:
        reader.fail(f"{OPTIMIZER_STATE} is stored without an optimizer entry")
    trainer_state = None
    if doc.get("trainer") is not None:
        if optimizer_state is None:
            reader.fail("the trainer's state has no optimizer entry")
        trainer_state = reader.trainer_state(doc["trainer"], optimizer_state)
    return ModelFile(
        network=network,
        trainer_state=trainer_state,
        optimizer_state=optimizer_state,
        metadata=doc["metadata"],
        training=doc.get("training"),
        format_version=doc["version"],
        path=path,
    )
