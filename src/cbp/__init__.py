"""cbp: multilayer perceptrons trained by backpropagation at C speed.

The core is typed Cython over scipy's BLAS; this package exposes
:class:`Network`, :class:`Trainer`, the optimizers in :mod:`cbp.optim`, a command
line (``cbp``) and scikit-learn estimators in :mod:`cbp.sklearn`.
"""

from cbp import optim, schedules
from cbp.network import Network
from cbp.trainer import EarlyStopping, History, Trainer, TrainingDivergedError

__version__ = "0.1.0"

__all__ = [
    "EarlyStopping",
    "History",
    "Network",
    "Trainer",
    "TrainingDivergedError",
    "__version__",
    "optim",
    "schedules",
]
