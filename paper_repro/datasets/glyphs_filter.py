r"""Cleaning the rendered glyphs: placeholders, near-duplicate designs, and glyphs that draw something else.

All distances are between uint8 images scaled to [0, 1], as a mean absolute pixel difference

.. math:: d(a, b) = \frac{1}{HW} \sum_{p} |a_p - b_p| \in [0, 1].

* **Placeholders** (:func:`placeholder_mask`): a glyph that renders nothing, or is pixel-identical (up to 1/255)
  to the font's own ``.notdef`` box, or whose glyph is shared by ``min_shared`` or more code points of the script
  (a font that maps a whole block to one box, like LastResort).
* **Near duplicates** (:func:`near_duplicates`): per character, designs are visited in order (the most complete
  design first) and a glyph within ``tau`` of one already kept is dropped, so copied glyphs and the weights or
  regional variants of one family count once.
* **Consensus** (:func:`consensus_outliers`): per character with at least 3 glyphs, each glyph's distance to the
  pixel-wise median image, both lightly blurred so that a stroke shifted by one pixel is not an outlier
  (:math:`\tilde d_i = d(\mathrm{blur}(x_i), \mathrm{median}_j \mathrm{blur}(x_j))`). A glyph is an outlier when
  :math:`\tilde d_i > \max(\text{floor}, \mathrm{med}(\tilde d) + z \cdot 1.4826\,\mathrm{MAD}(\tilde d))`: a
  robust z-score, with a floor so that a character whose designs all agree loses nothing.
  A design whose glyphs are outliers for more than half of the characters it draws in a script does not draw that
  script (e.g. a font whose cmap maps Thai code points to Tibetan shapes) and is dropped from it entirely
  (:func:`bad_designs`); the consensus is then recomputed without it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["bad_designs", "blur", "consensus_outliers", "mean_abs_diff", "near_duplicates", "placeholder_mask"]


def _as_float(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    return images.astype(np.float32) / 255.0 if images.dtype == np.uint8 else images.astype(np.float32)


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """:math:`d(a, b)` over the last two axes (uint8 images are scaled to [0, 1]); broadcasts."""
    return np.abs(_as_float(a) - _as_float(b)).mean(axis=(-2, -1))


def blur(images: np.ndarray, passes: int = 2) -> np.ndarray:
    """Separable [1, 2, 1] / 4 binomial blur of ``(..., H, W)`` images, ``passes`` times (edges replicated)."""
    x = _as_float(images)
    for _ in range(passes):
        for axis in (-2, -1):
            lo = np.concatenate([np.take(x, [0], axis=axis), np.take(x, range(x.shape[axis] - 1), axis=axis)], axis)
            hi = np.concatenate([np.take(x, range(1, x.shape[axis]), axis=axis), np.take(x, [-1], axis=axis)], axis)
            x = 0.25 * lo + 0.5 * x + 0.25 * hi
    return x


def placeholder_mask(
    images: Sequence[np.ndarray | None],
    glyph_names: Sequence[str],
    notdef: np.ndarray | None,
    *,
    min_shared: int = 3,
) -> np.ndarray:
    """``True`` for each glyph of one font and script that is a placeholder (see the module docstring).

    ``images[i]`` is ``None`` for an empty rendering; ``glyph_names[i]`` is the cmap's glyph name for it.
    """
    names, counts = np.unique(np.asarray(glyph_names, dtype=object).astype(str), return_counts=True)
    shared = set(names[counts >= min_shared].tolist()) | {".notdef"}
    out = np.zeros(len(images), dtype=bool)
    for i, (img, name) in enumerate(zip(images, glyph_names)):
        if img is None or not np.any(img) or str(name) in shared:
            out[i] = True
        elif notdef is not None and np.abs(img.astype(np.int16) - notdef.astype(np.int16)).max() <= 1:
            out[i] = True
    return out


def near_duplicates(images: np.ndarray, tau: float) -> np.ndarray:
    """``True`` for each image within ``tau`` of an earlier image that is kept (greedy, in the given order)."""
    x = _as_float(images)
    dup = np.zeros(len(x), dtype=bool)
    kept: list[int] = []
    for i in range(len(x)):
        if kept and float(mean_abs_diff(x[kept], x[i]).min()) < tau:
            dup[i] = True
        else:
            kept.append(i)
    return dup


def consensus_outliers(images: np.ndarray, *, z: float = 3.5, floor: float = 0.12) -> tuple[np.ndarray, np.ndarray]:
    """``(outlier mask, distances to the blurred median)`` for the glyphs of one character; no outliers below 3."""
    x = blur(images)
    if len(x) < 3:
        return np.zeros(len(x), dtype=bool), np.zeros(len(x))
    med_img = np.median(x, axis=0)
    d = np.abs(x - med_img).mean(axis=(-2, -1))
    med = float(np.median(d))
    mad = float(np.median(np.abs(d - med)))
    return d > max(floor, med + z * 1.4826 * mad), d


def bad_designs(designs: np.ndarray, outlier: np.ndarray, *, fraction: float = 0.5, min_glyphs: int = 3) -> set[int]:
    """Designs with more than ``fraction`` of their glyphs (of one script) flagged, given at least ``min_glyphs``."""
    designs, outlier = np.asarray(designs), np.asarray(outlier, dtype=bool)
    bad = set()
    for d in np.unique(designs):
        mine = designs == d
        if mine.sum() >= min_glyphs and outlier[mine].mean() > fraction:
            bad.add(int(d))
    return bad
