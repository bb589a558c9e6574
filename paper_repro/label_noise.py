r"""Label noise on the training split of a real-image run: the coarse training labels corrupted once, per seed.

The noise model is the theory's (:mod:`collapse.data.noise`, no second copy here): a mode-level transition
matrix :math:`T_{m y} = P(\tilde y = y \mid \text{mode } m)` from :func:`collapse.data.transition_matrix`, each
image's observed label drawn once by :func:`collapse.data.draw_labels`. The *mode* of an image is its
(class, fine label) pair when the data set has fine labels (a Fashion-MNIST clothing type inside a superclass, a
digit inside a digit group), else its class; modes are numbered in increasing (class, fine label) order, so the
"last mode of a class" of ``mode_confusion`` is its highest fine label. Only the classes present in the training
split take part (:math:`C` = their number): noise never invents members of a class the split does not have.
For ``symmetric`` noise with rate :math:`\varepsilon` an image keeps its class with probability
:math:`1 - \varepsilon` and moves to each other class with probability :math:`\varepsilon / (C - 1)`; modes do not
matter. ``pair_flip`` moves it to the next class; ``mode_confusion`` flips only the last mode of each class.

The draw is a pure function of the labels and the run seed: its uniforms come from a private
``torch.Generator`` seeded by :func:`paper_repro.batches.step_seed` ``(seed, 0, NOISE_STREAM)``, a stream used by
nothing else, and the global random state is left alone. So ``--resume`` rebuilds exactly the same noisy labels,
and a rate of 0 returns the clean data set itself (no randomness consumed, the run bit for bit unchanged).
Test labels are never touched: only :func:`paper_repro.builders.load_train` calls this.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from collapse._validation import check_choice, check_int, check_real
from collapse.data import NOISE_MODELS, draw_labels, transition_matrix
from paper_repro.batches import step_seed

__all__ = ["NOISE_STREAM", "noisy_labels", "with_label_noise"]

#: Seed stream of the label draw (the batch draw uses ``(seed, step)``, the augmentation stream 1).
NOISE_STREAM = 2


def noisy_labels(
    labels: np.ndarray, fine_labels: np.ndarray | None, eps: float, kind: str = "symmetric", *, seed: int = 0
) -> np.ndarray:
    r"""Observed labels :math:`\tilde y_i \sim T_{m(i), \cdot}` for images with classes ``labels`` (see module doc).

    Parameters
    ----------
    labels : (N,) int class ids.
    fine_labels : (N,) int fine labels refining the classes, or None (then every class is one mode).
    eps : noise rate in [0, 1).
    kind : one of :data:`collapse.data.NOISE_MODELS`.
    seed : run seed; the result is a function of ``(labels, fine_labels, eps, kind, seed)`` only.

    Returns
    -------
    (N,) int64 array; a copy of ``labels`` when ``eps == 0``.
    """
    eps = check_real("label_noise", eps, low=0.0, high=1.0, high_inclusive=False)
    kind = check_choice("noise_kind", kind, NOISE_MODELS)
    seed = check_int("seed", seed, low=0)
    labels = np.asarray(labels, dtype=np.int64)
    if eps == 0.0:
        return labels.copy()
    present, cls = np.unique(labels, return_inverse=True)
    if present.size < 2:
        raise ValueError(f"label noise needs at least 2 classes in the training split, got {present.size}")
    fine = np.zeros_like(labels) if fine_labels is None else np.asarray(fine_labels, dtype=np.int64)
    if fine.shape != labels.shape:
        raise ValueError(f"fine_labels must have the shape of labels {labels.shape}, got {fine.shape}")
    # Modes = distinct (class, fine) pairs; np.unique sorts them by class, then fine label.
    pairs, mode = np.unique(np.stack([cls.reshape(-1), fine]), axis=1, return_inverse=True)
    T = transition_matrix(kind, eps, pairs[0], present.size)
    gen = torch.Generator().manual_seed(step_seed(seed, 0, NOISE_STREAM))
    observed = draw_labels(torch.from_numpy(mode.reshape(-1).astype(np.int64)), T, gen).numpy()
    return present[observed]


def with_label_noise(data, eps: float, kind: str = "symmetric", *, seed: int = 0):
    """``data`` (an ImageDataset) with noisy ``labels`` and its clean ones kept as ``clean_labels``.

    A shallow copy: pixels are shared and ``data`` itself is not modified. ``eps == 0`` returns ``data`` unchanged.
    """
    eps = check_real("label_noise", eps, low=0.0, high=1.0, high_inclusive=False)
    if eps == 0.0:
        return data
    noisy = copy.copy(data)
    noisy.labels = noisy_labels(data.labels, data.fine_labels, eps, kind, seed=seed)
    noisy.clean_labels = np.asarray(data.labels, dtype=np.int64).copy()
    return noisy
