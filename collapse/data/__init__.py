"""Synthetic data: classes made of several Gaussian modes, and mode-level label-noise models.

* :func:`mode_centers` places mode centres in one of the :data:`LAYOUTS`.
* :func:`make_multimode` samples Gaussian blobs around them into a :class:`MultiModeData`.
* :func:`transition_matrix`, :func:`draw_labels` and :class:`LabelNoise` give observed labels drawn from
  a mode-level transition matrix ``T[m, y] = P(observed y | mode m)``.
"""

from collapse.data.generators import MultiModeData, make_multimode
from collapse.data.layouts import LAYOUTS, mode_centers
from collapse.data.noise import NOISE_MODELS, RESAMPLE_MODES, LabelNoise, draw_labels, transition_matrix

__all__ = [
    "LAYOUTS",
    "NOISE_MODELS",
    "RESAMPLE_MODES",
    "LabelNoise",
    "MultiModeData",
    "draw_labels",
    "make_multimode",
    "mode_centers",
    "transition_matrix",
]
