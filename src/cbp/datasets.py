"""Small data sets bundled with cbp, for the demo, examples and tests."""

from importlib import resources

import numpy as np


def load_digits(return_images=False):
    """Return the bundled handwritten digits (1,797 images of 8x8 pixels).

    The test part of the UCI "Optical Recognition of Handwritten Digits" data
    set (E. Alpaydin and C. Kaynak, 1998; CC BY 4.0, see ``cbp/data/README.md``).
    Each pixel counts the "on" pixels of a 4x4 block of the original 32x32
    bitmap, from 0 to 16.

    Parameters
    ----------
    return_images : bool, default=False
        Return the images with shape (n, 8, 8) instead of rows of 64 features.

    Returns
    -------
    X : ndarray of shape (1797, 64) or (1797, 8, 8), float64
        Pixel counts from 0 to 16.
    y : ndarray of shape (1797,), int64
        The digit each image shows, 0 to 9.

    Examples
    --------
    >>> from cbp.datasets import load_digits
    >>> X, y = load_digits()
    >>> X.shape, y.shape
    ((1797, 64), (1797,))
    """
    source = resources.files("cbp").joinpath("data").joinpath("digits.npz")
    with resources.as_file(source) as path, np.load(path, allow_pickle=False) as data:
        images = data["images"].astype(np.float64)
        y = data["target"].astype(np.int64)
    X = images if return_images else images.reshape(images.shape[0], -1)
    return X, y
