"""Learning-rate schedules, applied by the trainer between epochs.

Each schedule is asked once after every epoch for the learning rate of the next
one, given what the epoch measured. Names accepted by :func:`make_schedule`:
``"step"``, ``"exponential"``, ``"cosine"``, ``"plateau"``, ``"invscaling"`` and
``"adaptive"``.
"""

import math

from cbp._validation import check_positive_int, check_real


class Schedule:
    """Base class: keeps the learning rate constant.

    Subclasses override :meth:`next_lr`.
    """

    def next_lr(self, epoch, base_lr, lr, monitor, samples_seen):
        """Return the learning rate for the epoch after ``epoch``.

        Parameters
        ----------
        epoch : int
            Number of epochs completed so far (1 after the first).
        base_lr : float
            The optimizer's learning rate when training started.
        lr : float
            The learning rate of the epoch just completed.
        monitor : float
            The validation loss when there is validation data, else the training
            loss, of the epoch just completed.
        samples_seen : int
            Samples processed since training started.

        Returns
        -------
        float
        """
        return lr

    def state_dict(self):
        """Return the schedule's mutable state (empty for stateless schedules)."""
        return {}

    def load_state_dict(self, state):
        """Restore what :meth:`state_dict` returned."""
        for key, value in state.items():
            setattr(self, key, math.inf if key == "best" and value is None else value)


class StepLR(Schedule):
    """Multiply the rate by ``gamma`` every ``step_size`` epochs.

    Parameters
    ----------
    step_size : int, default=10
    gamma : float, default=0.1
    """

    def __init__(self, step_size=10, gamma=0.1):
        self.step_size = check_positive_int(step_size, "step_size")
        self.gamma = check_real(gamma, "gamma", low=0, low_open=True)

    def next_lr(self, epoch, base_lr, lr, monitor, samples_seen):
        """Return ``base_lr * gamma ** (epoch // step_size)``."""
        return base_lr * self.gamma ** (epoch // self.step_size)


class ExponentialLR(Schedule):
    """Multiply the rate by ``gamma`` after every epoch.

    Parameters
    ----------
    gamma : float, default=0.95
    """

    def __init__(self, gamma=0.95):
        self.gamma = check_real(gamma, "gamma", low=0, low_open=True)

    def next_lr(self, epoch, base_lr, lr, monitor, samples_seen):
        """Return ``base_lr * gamma ** epoch``."""
        return base_lr * self.gamma**epoch


class CosineAnnealingLR(Schedule):
    """Cosine decay from the base rate to ``eta_min`` over ``T_max`` epochs.

    Parameters
    ----------
    T_max : int
        Epochs of one half cosine period.
    eta_min : float, default=0
    """

    def __init__(self, T_max=50, eta_min=0.0):
        self.T_max = check_positive_int(T_max, "T_max")
        self.eta_min = check_real(eta_min, "eta_min", low=0)

    def next_lr(self, epoch, base_lr, lr, monitor, samples_seen):
        """Return ``eta_min + (base_lr - eta_min) (1 + cos(pi t / T_max)) / 2``."""
        t = min(epoch, self.T_max)
        return (
            self.eta_min
            + (base_lr - self.eta_min) * (1 + math.cos(math.pi * t / self.T_max)) / 2
        )


class ReduceLROnPlateau(Schedule):
    """Multiply the rate by ``factor`` when the monitored loss stops improving.

    The monitored loss is the validation loss when there is validation data,
    otherwise the training loss.

    Parameters
    ----------
    factor : float, default=0.1
    patience : int, default=10
        Epochs without an improvement larger than ``min_delta`` before reducing.
    min_delta : float, default=1e-4
    min_lr : float, default=0
    """

    def __init__(self, factor=0.1, patience=10, min_delta=1e-4, min_lr=0.0):
        self.factor = check_real(factor, "factor", 0, 1, True, True)
        self.patience = check_positive_int(patience, "patience", minimum=0)
        self.min_delta = check_real(min_delta, "min_delta", low=0)
        self.min_lr = check_real(min_lr, "min_lr", low=0)
        self.best = math.inf
        self.bad_epochs = 0

    def next_lr(self, epoch, base_lr, lr, monitor, samples_seen):
        """Return ``lr``, reduced after ``patience`` epochs without improvement."""
        if monitor < self.best - self.min_delta:
            self.best = monitor
            self.bad_epochs = 0
            return lr
        self.bad_epochs += 1
        if self.bad_epochs > self.patience:
            self.bad_epochs = 0
            return max(lr * self.factor, self.min_lr)
        return lr

    def state_dict(self):
        """Return the best loss seen (None before the first) and the epochs since."""
        return {
            "best": None if math.isinf(self.best) else self.best,
            "bad_epochs": self.bad_epochs,
        }


class InvScaling(Schedule):
    """scikit-learn's ``invscaling``: ``base_lr / (samples_seen + 1) ** power_t``.

    Parameters
    ----------
    power_t : float, default=0.5
    """

    def __init__(self, power_t=0.5):
        self.power_t = check_real(power_t, "power_t", low=0)

    def next_lr(self, epoch, base_lr, lr, monitor, samples_seen):
        """Return ``base_lr / (samples_seen + 1) ** power_t``."""
        return base_lr / (samples_seen + 1) ** self.power_t


class Adaptive(Schedule):
    """scikit-learn's ``adaptive``: divide the rate by 5 when progress stalls.

    When the monitored loss has not improved by ``tol`` for more than
    ``patience`` epochs in a row, the rate is divided by 5.

    Parameters
    ----------
    tol : float, default=1e-4
    patience : int, default=2
    """

    def __init__(self, tol=1e-4, patience=2):
        self.tol = check_real(tol, "tol", low=0)
        self.patience = check_positive_int(patience, "patience", minimum=0)
        self.best = math.inf
        self.bad_epochs = 0

    def next_lr(self, epoch, base_lr, lr, monitor, samples_seen):
        """Return ``lr``, or ``lr / 5`` after a stall."""
        if monitor > self.best - self.tol:
            self.bad_epochs += 1
        else:
            self.bad_epochs = 0
        self.best = min(self.best, monitor)
        if self.bad_epochs > self.patience:
            self.bad_epochs = 0
            return lr / 5
        return lr

    def state_dict(self):
        """Return the best loss seen (None before the first) and the epochs since."""
        return {
            "best": None if math.isinf(self.best) else self.best,
            "bad_epochs": self.bad_epochs,
        }


SCHEDULES = {
    "constant": Schedule,
    "step": StepLR,
    "exponential": ExponentialLR,
    "cosine": CosineAnnealingLR,
    "plateau": ReduceLROnPlateau,
    "invscaling": InvScaling,
    "adaptive": Adaptive,
}


def make_schedule(schedule, epochs=None):
    """Return a schedule object from ``None``, a name or a :class:`Schedule`.

    Parameters
    ----------
    schedule : None, str or Schedule
    epochs : int, optional
        Number of epochs, used as ``T_max`` for ``"cosine"``.

    Returns
    -------
    Schedule
    """
    if schedule is None:
        return Schedule()
    if isinstance(schedule, Schedule):
        return schedule
    if isinstance(schedule, str) and schedule in SCHEDULES:
        if schedule == "cosine" and epochs:
            return CosineAnnealingLR(T_max=epochs)
        return SCHEDULES[schedule]()
    raise ValueError(
        f"lr_schedule={schedule!r} is not one of {', '.join(SCHEDULES)} or a "
        "Schedule instance"
    )
