"""Checks and conversions of user input, done once while holding the GIL.

Every public entry point passes its arrays through here before the core sees
them, so the core can trust shapes, dtype, memory order and finiteness. Errors
name the argument, what was seen and what was expected.
"""

import numbers

import numpy as np

# BLAS takes its dimensions as C int.
MAX_BLAS_INT = 2**31 - 1

FLOAT_DTYPES = {"float32": np.float32, "float64": np.float64}


def check_dtype(dtype):
    """Return ``np.float32`` or ``np.float64`` for a dtype-like, or raise."""
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        raise TypeError(
            f"dtype={dtype!r} is not a dtype; expected 'float32' or 'float64'"
        ) from None
    if resolved not in (np.float32, np.float64):
        raise ValueError(
            f"dtype={dtype!r} is not supported; expected 'float32' or 'float64'"
        )
    return resolved.type


def _numeric_array(values, name):
    """Turn an array-like into a real numeric ndarray, without changing it."""
    if values is None:
        raise TypeError(f"{name} is None; expected an array of numbers")
    if isinstance(values, (str, bytes)):
        raise TypeError(f"{name} must be an array of numbers, got a string")
    try:
        array = np.asarray(values)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"{name} could not be read as an array of numbers: {error}"
        ) from None
    kind = array.dtype.kind
    if kind in "biuf":
        return array
    if kind == "c":
        raise TypeError(
            f"{name} has complex dtype {array.dtype}; expected real numbers"
        )
    if kind == "O":
        # NumPy would turn None into NaN; it is missing data, not a number.
        try:
            if any(value is None for value in array.flat):
                raise TypeError
            return array.astype(np.float64)
        except (ValueError, TypeError):
            raise TypeError(
                f"{name} has dtype object with non-numeric entries; expected real "
                "numbers"
            ) from None
    raise TypeError(f"{name} has dtype {array.dtype}; expected real numbers")


def _check_finite(array, name):
    if not np.isfinite(array).all():
        bad = np.argwhere(~np.isfinite(array))[0]
        where = ", ".join(str(int(i)) for i in bad)
        value = array[tuple(bad)]
        raise ValueError(
            f"{name} contains {value} at index ({where}); expected finite numbers "
            "(remove or impute NaN and infinite values)"
        )


def as_matrix(values, name, dtype, n_features=None):
    """Return ``values`` as a finite C-ordered 2-D array of ``dtype``.

    Copies only when the input is not already in that form; the caller's array is
    never modified.
    """
    array = _numeric_array(values, name)
    if array.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D (n_samples, n_features), got shape {array.shape}"
        )
    n, d = array.shape
    if n == 0:
        raise ValueError(
            f"{name} has 0 samples (shape {array.shape}); expected at least 1"
        )
    if d == 0:
        raise ValueError(
            f"{name} has 0 features (shape {array.shape}); expected at least 1"
        )
    if n_features is not None and d != n_features:
        raise ValueError(
            f"{name} has {d} features (shape {array.shape}); the network expects "
            f"{n_features}"
        )
    if n > MAX_BLAS_INT:
        raise ValueError(f"{name} has {n} rows; at most {MAX_BLAS_INT} are supported")
    return _to_finite_float(array, name, dtype)


def _to_finite_float(array, name, dtype):
    """Convert to C-ordered ``dtype``, refusing NaN, inf and overflow."""
    if array.dtype.kind == "f":
        _check_finite(array, name)
    with np.errstate(over="ignore"):
        converted = np.ascontiguousarray(array, dtype=dtype)
    if not np.isfinite(converted).all():
        if array.dtype.kind != "f":
            _check_finite(converted, name)
        limit = np.finfo(dtype).max
        raise ValueError(
            f"{name} has values beyond the range of {np.dtype(dtype).name} "
            f"(largest magnitude {np.abs(array).max():g} > {limit:g}); scale the "
            "data or use dtype='float64'"
        )
    return converted


def as_vector(values, name, dtype, length):
    """Return ``values`` as a finite 1-D array of ``length`` entries of ``dtype``."""
    array = _numeric_array(values, name)
    if array.shape != (length,):
        raise ValueError(f"{name} has shape {array.shape}; expected ({length},)")
    return _to_finite_float(array, name, dtype)


def as_sample_weight(sample_weight, n_samples, dtype, name="sample_weight"):
    """Return per-sample weights as a 1-D array, or an empty array for none."""
    if sample_weight is None:
        return np.empty(0, dtype=dtype)
    if isinstance(sample_weight, numbers.Real) and not isinstance(sample_weight, bool):
        sample_weight = np.full(n_samples, sample_weight)
    array = _numeric_array(sample_weight, name)
    if array.ndim != 1 or array.shape[0] != n_samples:
        raise ValueError(
            f"{name} must have shape ({n_samples},) to match X, got shape {array.shape}"
        )
    array = _to_finite_float(array, name, dtype)
    if (array < 0).any():
        raise ValueError(f"{name} has negative entries; expected weights >= 0")
    if not array.sum() > 0:
        raise ValueError(f"{name} sums to 0; expected a positive total weight")
    return array


def as_targets(Y, name, loss, n_samples, n_outputs, dtype):
    """Return targets as a finite C-ordered (n_samples, n_outputs) array.

    For ``cross_entropy``, a 1-D array of integer class labels in
    ``[0, n_outputs)`` is turned into one-hot rows.
    """
    array = _numeric_array(Y, name)
    if array.ndim == 0 or array.ndim > 2:
        raise ValueError(
            f"{name} must be 1-D or 2-D with {n_samples} rows, got shape {array.shape}"
        )
    if array.shape[0] != n_samples:
        raise ValueError(
            f"{name} has {array.shape[0]} rows but X has {n_samples}; expected the "
            "same number of samples"
        )
    if loss == "cross_entropy" and array.ndim == 1:
        if array.dtype.kind == "f":
            _check_finite(array, name)
            if not np.array_equal(array, np.round(array)):
                raise ValueError(
                    f"{name} is 1-D with non-integer values; for cross_entropy "
                    "expected integer class labels or (n_samples, n_classes) "
                    "probabilities"
                )
        if array.min() < 0 or array.max() >= n_outputs:
            raise ValueError(
                f"{name} has class labels from {array.min()} to {array.max()}; "
                f"expected labels in [0, {n_outputs}) for {n_outputs} outputs"
            )
        onehot = np.zeros((n_samples, n_outputs), dtype=dtype)
        onehot[np.arange(n_samples), array.astype(np.int64)] = 1
        return onehot
    if array.ndim == 1:
        if n_outputs != 1:
            raise ValueError(
                f"{name} is 1-D (shape {array.shape}) but the network has {n_outputs} "
                f"outputs; expected shape ({n_samples}, {n_outputs})"
            )
        array = array.reshape(-1, 1)
    if array.shape[1] != n_outputs:
        raise ValueError(
            f"{name} has {array.shape[1]} columns (shape {array.shape}); the network "
            f"has {n_outputs} outputs"
        )
    converted = _to_finite_float(array, name, dtype)
    if loss in ("cross_entropy", "binary_cross_entropy"):
        low, high = converted.min(), converted.max()
        if low < 0 or (loss == "binary_cross_entropy" and high > 1):
            expected = "[0, 1]" if loss == "binary_cross_entropy" else ">= 0"
            raise ValueError(
                f"{name} has values from {low} to {high}; {loss} expects "
                f"targets {expected}"
            )
    return converted


def check_positive_int(value, name, minimum=1):
    """Return ``value`` as an int >= ``minimum``, or raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}={value!r} must be an integer >= {minimum}")
    if value < minimum:
        raise ValueError(f"{name}={value!r} must be an integer >= {minimum}")
    return int(value)


def check_real(value, name, low=None, high=None, low_open=False, high_open=False):
    """Return ``value`` as a float within the given bounds, or raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}={value!r} must be a real number")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name}={value!r} must be finite")
    if low is not None and (value < low or (low_open and value == low)):
        bound = f"> {low}" if low_open else f">= {low}"
        raise ValueError(f"{name}={value!r} must be {bound}")
    if high is not None and (value > high or (high_open and value == high)):
        bound = f"< {high}" if high_open else f"<= {high}"
        raise ValueError(f"{name}={value!r} must be {bound}")
    return value


def check_bool(value, name):
    """Return ``value`` as a bool; only True, False (or NumPy's) are accepted."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"{name}={value!r} must be True or False")


def check_seed(seed, name="seed", allow_generator=False):
    """Return ``seed`` after checking it is None or an integer >= 0.

    With ``allow_generator``, a ``numpy.random.Generator`` is accepted too.
    """
    if seed is None or (allow_generator and isinstance(seed, np.random.Generator)):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        expected = "None, an integer >= 0"
        if allow_generator:
            expected += " or a numpy.random.Generator"
        raise ValueError(f"{name}={seed!r}; expected {expected}")
    return int(seed)
