"""Write cbp's bundled digits data set, ``src/cbp/data/digits.npz``.

The images are the 1,797 8x8 handwritten digits that scikit-learn ships as
``sklearn.datasets.load_digits``: the test part of the UCI "Optical Recognition
of Handwritten Digits" data set (E. Alpaydin and C. Kaynak, 1998), licensed CC BY
4.0. Each pixel counts the "on" pixels of a 4x4 block, 0 to 16, so the images
are stored as ``uint8``.

Run once from the repository root (needs scikit-learn)::

    python3 bench/make_demo_data.py

Sample output::

    wrote src/cbp/data/digits.npz: 1797 images of 8x8, 10 classes, 45 kB
"""

import argparse
import os

import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join("src", "cbp", "data",
                                                      "digits.npz"))
    args = parser.parse_args()
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images
    # Pixel counts are small integers; fail loudly if that ever changes.
    if not (np.array_equal(images, np.round(images)) and images.min() >= 0
            and images.max() <= 16):
        raise ValueError("expected integer pixel counts from 0 to 16")
    labels = digits.target
    np.savez_compressed(args.out, images=images.astype(np.uint8),
                        target=labels.astype(np.uint8))
    size = os.path.getsize(args.out)
    print(f"wrote {args.out}: {images.shape[0]} images of "
          f"{images.shape[1]}x{images.shape[2]}, {len(np.unique(labels))} classes, "
          f"{size / 1000:.0f} kB")


if __name__ == "__main__":
    main()
