r"""Where the modes of each class sit: layouts of mode centres.

A data set has :math:`C` classes; class :math:`c` has :math:`K_c \ge 1` modes, :math:`N = \sum_c K_c` in all.
Modes carry a *global* index :math:`m`: the :math:`K_0` modes of class 0 come first, then the :math:`K_1`
modes of class 1, and so on, so mode :math:`j` of class :math:`c` is :math:`m = \sum_{c' < c} K_{c'} + j`.

Every deterministic layout puts modes of different classes next to each other, so that a class is a
union of separated blobs that cannot be told apart from its neighbours by position alone: the setting in
which triplet-like losses collapse a class to one point.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from numbers import Integral

import numpy as np

from collapse._validation import check_choice, check_int, check_random_state, check_real

__all__ = ["LAYOUTS", "mode_centers"]

LAYOUTS = ("random", "line", "circle", "checkerboard", "rings")

# Layouts that place modes in the plane of the first two axes.
_PLANAR = ("circle", "checkerboard", "rings")


def mode_centers(
    modes_per_class: Sequence[int],
    dim: int,
    *,
    layout: str = "random",
    separation: float = 4.0,
    random_state: None | int | np.random.Generator = None,
) -> tuple[np.ndarray, np.ndarray]:
    r"""Place the centres of :math:`N = \sum_c K_c` modes, :math:`K_c` = ``modes_per_class[c]``.

    Let :math:`s` = ``separation``. Axes beyond those a layout uses are 0. The layouts:

    ``random``
        :math:`\mu_m \sim \mathcal N(0, s^2 I_{dim})` i.i.d., whatever the class, so any class may sit
        anywhere (typical distance between two modes :math:`s\sqrt{2\,dim}`). The only layout that uses
        ``random_state``.
    ``line``
        On the first axis. Modes are dealt round-robin into slots :math:`t = 0, \dots, N-1`: round
        :math:`j` takes mode :math:`j` of every class that has one, in class order. With equal counts
        :math:`K` this is slot :math:`t = jC + c` for mode :math:`j` of class :math:`c`, so the classes
        alternate. Slot :math:`t` sits at :math:`x = (t - (N-1)/2)\,s`: consecutive modes are :math:`s` apart
        and the line is centred at 0.
    ``circle``
        The same slots on a circle in the first two axes, with arc length :math:`s` between consecutive
        slots: radius :math:`R = N s / (2\pi)`, slot :math:`t` at angle :math:`2\pi t / N`.
    ``checkerboard``
        A grid of spacing :math:`s` in the first two axes, :math:`W = \lceil\sqrt{C \max_c K_c}\,\rceil`
        columns and as few rows as give every class enough cells. Cell (row :math:`i`, column :math:`j`)
        has colour :math:`(i + j) \bmod C`; scanning cells row by row, mode :math:`k` of class :math:`c`
        takes the :math:`k`-th cell of colour :math:`c`. Grid neighbours differ in colour by
        :math:`\pm 1 \pmod C`, so for :math:`C \ge 2` two modes of one class are never grid neighbours
        (with :math:`C = 2, K = 2` this is the XOR pattern). Cell :math:`(i, j)` sits at
        :math:`((j - (W-1)/2)\,s, (i - (H-1)/2)\,s)`; cells left over stay empty.
    ``rings``
        Class :math:`c` on the circle of radius :math:`(c + 1)\,s` in the first two axes, its mode
        :math:`j` at angle :math:`2\pi (j + c/C) / K_c`: evenly spaced, each class rotated by a fraction
        :math:`c/C` of its own angular step so that, with equal counts, classes alternate in angle.

    Parameters
    ----------
    modes_per_class : sequence of int
        :math:`K_c \ge 1` for each class (at least one class).
    dim : int
        Ambient dimension: ``>= 1`` for ``random`` and ``line``, ``>= 2`` for ``circle``, ``checkerboard``
        and ``rings``.
    layout : str
        One of :data:`LAYOUTS`.
    separation : float
        The scale :math:`s > 0` above.
    random_state : None, int or numpy.random.Generator
        Seed for the ``random`` layout; ignored by the others.

    Returns
    -------
    centers : ndarray of shape (N, dim), float64
    mode_class : ndarray of shape (N,), int64
        ``mode_class[m]`` is the class of mode ``m``, non-decreasing in ``m``.
    """
    counts = _check_counts("modes_per_class", modes_per_class)
    layout = check_choice("layout", layout, LAYOUTS)
    dim = check_int("dim", dim, low=1)
    if layout in _PLANAR:
        dim = check_int(f"dim (layout {layout!r})", dim, low=2)
    separation = check_real("separation", separation, low=0.0, low_inclusive=False)
    rng = check_random_state(random_state)

    n_classes = len(counts)
    mode_class = np.repeat(np.arange(n_classes, dtype=np.int64), counts)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    n_modes = int(sum(counts))
    centers = np.zeros((n_modes, dim), dtype=np.float64)

    if layout == "random":
        centers[:] = separation * rng.standard_normal((n_modes, dim))
    elif layout in ("line", "circle"):
        slot = _round_robin_slots(counts, first)
        if layout == "line":
            centers[:, 0] = (slot - (n_modes - 1) / 2.0) * separation
        else:
            radius = n_modes * separation / (2.0 * math.pi)
            angle = 2.0 * math.pi * slot / n_modes
            centers[:, 0] = radius * np.cos(angle)
            centers[:, 1] = radius * np.sin(angle)
    elif layout == "checkerboard":
        centers[:, :2] = _checkerboard(counts, first) * separation
    else:  # rings
        for c, (k, m0) in enumerate(zip(counts, first, strict=True)):
            angle = 2.0 * math.pi * (np.arange(k) + c / n_classes) / k
            centers[m0 : m0 + k, 0] = (c + 1) * separation * np.cos(angle)
            centers[m0 : m0 + k, 1] = (c + 1) * separation * np.sin(angle)
    return centers, mode_class


def _round_robin_slots(counts: tuple[int, ...], first: np.ndarray) -> np.ndarray:
    """Slot of each global mode when modes are dealt one per class per round (no gaps for unequal counts)."""
    slot = np.empty(int(sum(counts)), dtype=np.float64)
    t = 0
    for j in range(max(counts)):
        for c, k in enumerate(counts):
            if j < k:
                slot[first[c] + j] = t
                t += 1
    return slot


def _checkerboard(counts: tuple[int, ...], first: np.ndarray) -> np.ndarray:
    """Grid coordinates (N, 2) in units of the spacing, centred on the W x H grid."""
    n_classes = len(counts)
    width = math.ceil(math.sqrt(n_classes * max(counts)))
    height = 1
    while True:
        rows, cols = np.divmod(np.arange(width * height), width)
        colour = (rows + cols) % n_classes
        if all(np.count_nonzero(colour == c) >= k for c, k in enumerate(counts)):
            break
        height += 1
    xy = np.empty((int(sum(counts)), 2), dtype=np.float64)
    for c, k in enumerate(counts):
        cells = np.flatnonzero(colour == c)[:k]
        xy[first[c] : first[c] + k, 0] = cols[cells] - (width - 1) / 2.0
        xy[first[c] : first[c] + k, 1] = rows[cells] - (height - 1) / 2.0
    return xy


def _check_counts(name: str, value: object, *, length: int | None = None, low: int = 1) -> tuple[int, ...]:
    """Return ``value`` as a tuple of ints ``>= low``.

    An int is broadcast to ``length`` entries when ``length`` is given; a sequence must then have exactly
    ``length`` entries, and otherwise at least one.
    """
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if length is not None and isinstance(value, Integral) and not isinstance(value, bool):
        return (check_int(name, value, low=low),) * length
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        kind = "an int or a sequence of ints" if length is not None else "a sequence of ints"
        raise TypeError(f"{name} must be {kind}, got {value!r}")
    values = list(value)
    if length is not None and len(values) != length:
        raise ValueError(
            f"{name} must be an int or a sequence of {length} ints, got a sequence of length {len(values)}"
        )
    if not values:
        raise ValueError(f"{name} must be a non-empty sequence of ints, got {value!r}")
    return tuple(check_int(f"{name}[{i}]", v, low=low) for i, v in enumerate(values))
