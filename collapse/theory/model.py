r"""The mode-level model of a noisy metric-learning problem (our model, not the seed paper's).

There are :math:`C` observed labels and :math:`N` *modes*. Mode :math:`m` belongs to class :math:`c(m)`, has
weight :math:`\pi_m` (the chance that a sample comes from it, :math:`\sum_m \pi_m = 1`) and one embedding
:math:`z_m` shared by all of its samples, so that no single noisy label can be memorised. Labels are observed
through a transition matrix :math:`T_{m y} = P(\tilde y = y \mid \text{mode } m)`.

Batches are drawn the way a P x M sampler draws them, by *observed* label: a label :math:`y` uniformly among the
labels that occur (:math:`\rho_y = \sum_m \pi_m T_{my} > 0`, :math:`C'` of them), then samples of that label, whose
mode has the law

.. math::
    r(m \mid y) = \frac{\pi_m T_{m y}}{\rho_y}.

Everything the population objective needs is :math:`r` and the label set. A *point* of the model is a pair
(mode :math:`m`, observed label :math:`y`) with :math:`r(m \mid y) > 0`; its embedding is :math:`z_m`. Points
are what anchors, positives and negatives are made of.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from collapse._validation import check_int, check_real
from collapse.data.noise import NOISE_MODELS, transition_matrix

__all__ = ["ModeModel"]


@dataclass(frozen=True)
class ModeModel:
    """Modes, their classes and weights, and the label-transition matrix.

    Attributes
    ----------
    mode_class : np.ndarray of int64, shape (N,)
        True class :math:`c(m)` of each mode.
    weights : np.ndarray of float64, shape (N,)
        :math:`\\pi_m`, summing to 1.
    transition : np.ndarray of float64, shape (N, C)
        Row-stochastic :math:`T`.
    """

    mode_class: np.ndarray
    weights: np.ndarray
    transition: np.ndarray

    def __post_init__(self) -> None:
        mc = np.asarray(self.mode_class)
        if mc.ndim != 1 or mc.size == 0 or not np.issubdtype(mc.dtype, np.integer):
            raise ValueError(f"mode_class must be a non-empty 1-D integer array, got shape {mc.shape} dtype {mc.dtype}")
        T = np.asarray(self.transition, dtype=np.float64)
        if T.ndim != 2 or T.shape[0] != mc.size or T.shape[1] < 2:
            raise ValueError(f"transition must have shape (N={mc.size}, C>=2), got {T.shape}")
        if (T < 0).any() or np.abs(T.sum(1) - 1).max() > 1e-9:
            raise ValueError("transition must be row-stochastic (entries >= 0, rows summing to 1)")
        if mc.min() < 0 or mc.max() >= T.shape[1]:
            raise ValueError(f"mode_class must have values in [0, {T.shape[1]}), got [{mc.min()}, {mc.max()}]")
        w = np.asarray(self.weights, dtype=np.float64)
        if w.shape != mc.shape or (w < 0).any() or not np.isclose(w.sum(), 1.0, atol=1e-9) or not (w > 0).all():
            raise ValueError(f"weights must be {mc.size} positive numbers summing to 1, got {w.tolist()}")
        object.__setattr__(self, "mode_class", mc.astype(np.int64))
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "transition", T)

    # ----------------------------------------------------------------------------------------- builders
    @classmethod
    def from_noise(
        cls,
        modes_per_class: int | Sequence[int],
        eps: float,
        *,
        classes: int | None = None,
        kind: str = "symmetric",
        weights: Sequence[float] | None = None,
    ) -> ModeModel:
        """``classes`` classes with ``modes_per_class`` modes each (or one count per class) and a noise model of
        :data:`collapse.data.NOISE_MODELS` at rate ``eps``. ``weights`` default to uniform over modes."""
        if isinstance(modes_per_class, (int, np.integer)):
            if classes is None:
                raise ValueError("classes is required when modes_per_class is a single count")
            counts = [check_int("modes_per_class", int(modes_per_class), low=1)] * check_int("classes", classes, low=2)
        else:
            counts = [check_int("modes_per_class", int(k), low=1) for k in modes_per_class]
            if classes is not None and classes != len(counts):
                raise ValueError(f"classes={classes} but {len(counts)} mode counts were given")
            if len(counts) < 2:
                raise ValueError(f"need at least 2 classes, got {len(counts)}")
        check_real("eps", eps, low=0.0, high=1.0, high_inclusive=False)
        if kind not in NOISE_MODELS:
            raise ValueError(f"kind must be one of {', '.join(NOISE_MODELS)}, got {kind!r}")
        mode_class = np.repeat(np.arange(len(counts)), counts)
        T = transition_matrix(kind, eps, mode_class, len(counts)).numpy()
        w = np.full(mode_class.size, 1.0 / mode_class.size) if weights is None else np.asarray(weights, float)
        return cls(mode_class, w / w.sum() if weights is not None else w, T)

    @classmethod
    def symmetric(cls, classes: int, modes: int, eps: float) -> ModeModel:
        """``classes`` x ``modes`` uniform modes under symmetric noise ``eps``."""
        return cls.from_noise(modes, eps, classes=classes)

    # ----------------------------------------------------------------------------------------- quantities
    @property
    def n_modes(self) -> int:
        return int(self.mode_class.size)

    @property
    def n_classes(self) -> int:
        return int(self.transition.shape[1])

    @property
    def label_mass(self) -> np.ndarray:
        r""":math:`\rho_y = \sum_m \pi_m T_{my}`, shape (C,)."""
        return self.weights @ self.transition

    @property
    def labels_present(self) -> np.ndarray:
        """Labels that occur (rho_y > 0), the ones a P x M sampler can draw."""
        return np.flatnonzero(self.label_mass > 0)

    @property
    def conditional(self) -> np.ndarray:
        r""":math:`R_{m y} = r(m \mid y) = \pi_m T_{m y} / \rho_y`, shape (N, C); columns of absent labels are 0."""
        rho = self.label_mass
        R = self.weights[:, None] * self.transition
        return np.divide(R, rho[None, :], out=np.zeros_like(R), where=rho[None, :] > 0)

    def same_class_pairs(self) -> np.ndarray:
        """Boolean (N, N): distinct modes of one true class."""
        same = self.mode_class[:, None] == self.mode_class[None, :]
        return same & ~np.eye(self.n_modes, dtype=bool)

    def points(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The model's points: ``(mode, label, r)`` for every pair with r(mode | label) > 0 (int64, int64, float64)."""
        R = self.conditional
        m, y = np.nonzero(R > 0)
        order = np.lexsort((m, y))
        m, y = m[order], y[order]
        return torch.as_tensor(m), torch.as_tensor(y), torch.as_tensor(R[m, y])
