"""collapse.metrics.probes: sub-class structure on standardised features sees merged means, ignores scale."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from collapse.metrics import eta_squared, subclass_probes


def blobs(seed: int, n: int = 60, d: int = 6, sep: float = 4.0, spread: float = 1.0):
    """Two coarse classes x three fine labels (one fixed population), fine means ``sep`` apart, spread ``spread``."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(2), 3 * n)
    m = np.repeat(np.arange(6), n)
    # One set of centres for every seed: a seed draws a new sample of the same population.
    coarse = np.repeat(np.array([[20.0] * d, [-20.0] * d]), 3, axis=0)
    centres = np.random.default_rng(99).normal(size=(6, d)) * sep + coarse
    x = centres[m] + spread * rng.normal(size=(m.size, d))
    return x, y, m


def merge_means(x, y, m):
    """Move every fine label's mean onto its coarse class's mean, keeping each point's offset (the spread)."""
    out = x.copy()
    for k in np.unique(m):
        rows = m == k
        out[rows] += x[y == y[rows][0]].mean(axis=0) - x[rows].mean(axis=0)
    return out


def test_separated_sub_classes_score_high_and_merged_means_score_chance():
    xf, yf, mf = blobs(0)
    xe, ye, me = blobs(1)
    sep = subclass_probes(xf, yf, mf, xe, ye, me)
    assert sep["test"]["linear_probe"] > 0.9 and sep["test"]["ncm"] > 0.9
    assert sep["train"]["eta2"] > 0.6 and sep["test"]["kmeans_nmi"] > 0.6
    merged = subclass_probes(merge_means(xf, yf, mf), yf, mf, merge_means(xe, ye, me), ye, me)
    for split in ("train", "test"):
        r = merged[split]
        assert r["eta2"] < 0.02
        assert r["ncm"] < r["majority"] + 0.25 and r["kmeans_nmi"] < 0.15
    assert merged["test"]["linear_probe"] < merged["test"]["majority"] + 0.2
    assert merged["test"]["majority"] == pytest.approx(1 / 3)


def test_shrinking_a_class_changes_nothing_here():
    xf, yf, mf = blobs(2)
    xe, ye, me = blobs(3)
    base = subclass_probes(xf, yf, mf, xe, ye, me)
    shrink = lambda x, y: np.where((y == 0)[:, None], 0.1 * x, x)  # noqa: E731
    small = subclass_probes(shrink(xf, yf), yf, mf, shrink(xe, ye), ye, me)
    for split in base:
        for k in base[split]:
            assert small[split][k] == pytest.approx(base[split][k], abs=1e-9), (split, k)


def test_eta_squared_is_the_between_share_of_variance():
    rng = np.random.default_rng(4)
    x, g = rng.normal(size=(40, 3)), rng.integers(0, 4, 40)
    total = ((x - x.mean(0)) ** 2).sum()
    within = sum(((x[g == k] - x[g == k].mean(0)) ** 2).sum() for k in np.unique(g))
    assert eta_squared(x, g) == pytest.approx(1 - within / total)
    assert eta_squared(np.ones((5, 2)), np.arange(5)) == 0.0


def test_bad_input_is_one_line():
    x, y, m = blobs(5, n=5)
    with pytest.raises(ValueError, match="at least one coarse class"):
        subclass_probes(x, y, y, x, y, y)
    with pytest.raises(ValueError, match="one dimension"):
        subclass_probes(x, y, m, x[:, :2], y, m)
    with pytest.raises(ValueError, match="fit fine labels"):
        subclass_probes(x, y, m[:-1], x, y, m)


def test_many_fine_labels_with_few_rows_each_warn_nothing():
    # Glyph-like: most fine labels have one fit row, so more than half the rows carry a label of their own, which
    # sklearn's target-type guess reports as "regression?" on every probe.
    rng = np.random.default_rng(5)
    m = np.concatenate([np.arange(40), [0, 1, 20, 21]])
    y = (m >= 20).astype(int)
    x = rng.normal(size=(m.size, 4)) + m[:, None] * 0.1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = subclass_probes(x, y, m, x, y, m)
    assert 0.0 <= out["train"]["linear_probe"] <= 1.0
