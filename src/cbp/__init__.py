"""cbp: multilayer perceptrons trained by backpropagation at C speed.

The core is typed Cython over scipy's BLAS; this package exposes
:class:`Network`, :class:`Trainer`, the optimizers in :mod:`cbp.optim`, a command
line (``cbp``) and scikit-learn estimators in :mod:`cbp.sklearn`.
"""

from cbp.network import Network

__version__ = "0.1.0"

__all__ = ["Network", "__version__"]
