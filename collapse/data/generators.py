r"""Sampling a data set whose classes are unions of Gaussian modes.

Mode :math:`m` (of class :math:`c(m)`) contributes :math:`n_m` samples

.. math:: x \sim \mathcal N(\mu_m, \sigma^2 I_d), \qquad y = c(m),

with centres :math:`\mu_m` from :func:`collapse.data.mode_centers`. The empirical mode weights are
:math:`\pi_m = n_m / \sum_{m'} n_{m'}`, uniform when every mode gets the same count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from collapse._validation import check_choice, check_int, check_random_state, check_real
from collapse.data.layouts import LAYOUTS, _check_counts, mode_centers

__all__ = ["MultiModeData", "make_multimode"]


@dataclass(frozen=True, eq=False)
class MultiModeData:
    """A sampled multi-mode data set. Samples are ordered by mode: all of mode 0, then mode 1, ...

    ``eq=False``: fields are arrays, so equality and hashing are by identity.
    """

    X: np.ndarray
    """(n, dim) float32 inputs."""
    y: np.ndarray
    """(n,) int64 true class labels, ``y == mode_class[modes]``."""
    modes: np.ndarray
    """(n,) int64 global mode index of each sample."""
    mode_class: np.ndarray
    """(N,) int64 class of each mode."""
    centers: np.ndarray
    """(N, dim) float64 mode centres."""
    n_classes: int
    modes_per_class: tuple[int, ...]

    def __post_init__(self) -> None:
        n, n_modes = self.X.shape[0], self.centers.shape[0]
        if self.y.shape != (n,) or self.modes.shape != (n,):
            raise ValueError(
                f"y and modes must have shape ({n},) to match X, got {self.y.shape} and {self.modes.shape}"
            )
        if self.mode_class.shape != (n_modes,) or sum(self.modes_per_class) != n_modes:
            raise ValueError(
                f"mode_class must have shape ({n_modes},) and modes_per_class must sum to {n_modes}, "
                f"got {self.mode_class.shape} and {self.modes_per_class}"
            )

    @property
    def n_samples(self) -> int:
        return int(self.X.shape[0])

    @property
    def n_modes(self) -> int:
        return int(self.centers.shape[0])

    @property
    def dim(self) -> int:
        return int(self.X.shape[1])

    @property
    def mode_counts(self) -> np.ndarray:
        """(N,) int64 number of samples :math:`n_m` of each mode."""
        return np.bincount(self.modes, minlength=self.n_modes).astype(np.int64)

    @property
    def mode_weights(self) -> np.ndarray:
        r"""(N,) float64 empirical mode weights :math:`\pi_m = n_m / n`."""
        return self.mode_counts / float(self.n_samples)


def make_multimode(
    n_classes: int = 4,
    modes_per_class: int | Sequence[int] = 3,
    dim: int = 2,
    *,
    samples_per_mode: int | Sequence[int] = 100,
    spread: float = 0.5,
    separation: float = 4.0,
    layout: str = "random",
    random_state: None | int | np.random.Generator = None,
) -> MultiModeData:
    r"""Draw Gaussian blobs :math:`\mathcal N(\mu_m, \sigma^2 I)` around each mode centre :math:`\mu_m`.

    Parameters
    ----------
    n_classes : int
        :math:`C \ge 2`.
    modes_per_class : int or sequence of int
        :math:`K_c \ge 1`: one count for every class, or one per class (length ``n_classes``).
    dim : int
        Input dimension (``>= 2`` for the planar layouts, see :func:`mode_centers`).
    samples_per_mode : int or sequence of int
        :math:`n_m \ge 1`: one count for every mode, or one per mode (length :math:`N = \sum_c K_c`, in
        global mode order); unequal counts give unequal mode weights :math:`\pi_m`.
    spread : float
        Standard deviation :math:`\sigma \ge 0` of each coordinate within a mode.
    separation : float
        Scale of the layout, :math:`> 0` (see :func:`mode_centers`).
    layout : str
        One of :data:`LAYOUTS`.
    random_state : None, int or numpy.random.Generator
        An int gives the same data set every time.

    Returns
    -------
    MultiModeData
    """
    n_classes = check_int("n_classes", n_classes, low=2)
    counts = _check_counts("modes_per_class", modes_per_class, length=n_classes)
    dim = check_int("dim", dim, low=1)
    n_modes = sum(counts)
    per_mode = np.asarray(_check_counts("samples_per_mode", samples_per_mode, length=n_modes), dtype=np.int64)
    spread = check_real("spread", spread, low=0.0)
    separation = check_real("separation", separation, low=0.0, low_inclusive=False)
    layout = check_choice("layout", layout, LAYOUTS)
    rng = check_random_state(random_state)

    # One generator for centres and noise, so a single seed fixes the whole data set.
    centers, mode_class = mode_centers(counts, dim, layout=layout, separation=separation, random_state=rng)
    modes = np.repeat(np.arange(n_modes, dtype=np.int64), per_mode)
    X = centers[modes] + spread * rng.standard_normal((modes.size, dim))
    return MultiModeData(
        X=X.astype(np.float32),
        y=mode_class[modes],
        modes=modes,
        mode_class=mode_class,
        centers=centers,
        n_classes=n_classes,
        modes_per_class=counts,
    )
