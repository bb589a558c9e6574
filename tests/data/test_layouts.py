import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from collapse.data import LAYOUTS, mode_centers
from tests.conftest import scaled_settings

counts_st = st.lists(st.integers(1, 4), min_size=2, max_size=5)


def _pairwise(centers):
    return np.linalg.norm(centers[:, None, :] - centers[None, :, :], axis=-1)


@scaled_settings(25)
@given(counts=counts_st, layout=st.sampled_from(LAYOUTS), dim=st.integers(2, 5), sep=st.floats(0.1, 10.0))
def test_shapes_dtypes_and_mode_order(counts, layout, dim, sep):
    centers, mode_class = mode_centers(counts, dim, layout=layout, separation=sep, random_state=0)
    n = sum(counts)
    assert centers.shape == (n, dim) and centers.dtype == np.float64
    assert mode_class.shape == (n,) and mode_class.dtype == np.int64
    # Global mode order: class 0's modes first, then class 1's, ...
    np.testing.assert_array_equal(mode_class, np.repeat(np.arange(len(counts)), counts))
    assert np.all(np.isfinite(centers))
    if layout != "random":
        # Deterministic layouts use the first two axes at most; the others stay 0.
        np.testing.assert_array_equal(centers[:, 2:], 0.0)
        # No two modes share a centre.
        d = _pairwise(centers)
        assert np.all(d[~np.eye(n, dtype=bool)] > 1e-9)


def test_random_layout_is_seeded_and_scaled():
    a, _ = mode_centers([3, 3], 4, layout="random", separation=2.0, random_state=7)
    b, _ = mode_centers([3, 3], 4, layout="random", separation=2.0, random_state=7)
    c, _ = mode_centers([3, 3], 4, layout="random", separation=2.0, random_state=8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    big, _ = mode_centers([500, 500], 10, layout="random", separation=3.0, random_state=0)
    assert big.std() == pytest.approx(3.0, rel=0.05)
    assert abs(big.mean()) < 0.1


def test_deterministic_layouts_ignore_random_state():
    for layout in ("line", "circle", "checkerboard", "rings"):
        a, _ = mode_centers([2, 3], 2, layout=layout, random_state=0)
        b, _ = mode_centers([2, 3], 2, layout=layout, random_state=np.random.default_rng(1))
        np.testing.assert_array_equal(a, b)


def test_line_exact_positions_equal_counts():
    n_classes, k, sep = 3, 4, 2.5
    centers, mode_class = mode_centers([k] * n_classes, 1, layout="line", separation=sep)
    n = n_classes * k
    for c in range(n_classes):
        for j in range(k):
            slot = j * n_classes + c
            assert centers[c * k + j, 0] == pytest.approx((slot - (n - 1) / 2) * sep)
    assert centers.mean() == pytest.approx(0.0, abs=1e-12)


@scaled_settings(25)
@given(n_classes=st.integers(2, 5), k=st.integers(1, 4), sep=st.floats(0.1, 10.0))
def test_line_nearest_other_mode_is_other_class(n_classes, k, sep):
    centers, mode_class = mode_centers([k] * n_classes, 2, layout="line", separation=sep)
    d = _pairwise(centers)
    np.fill_diagonal(d, np.inf)
    nearest = d.argmin(1)
    assert np.all(mode_class[nearest] != mode_class)
    np.testing.assert_allclose(d.min(1), sep)


@scaled_settings(25)
@given(counts=counts_st, sep=st.floats(0.1, 10.0))
def test_line_unequal_counts_are_evenly_spaced(counts, sep):
    centers, _ = mode_centers(counts, 1, layout="line", separation=sep)
    x = np.sort(centers[:, 0])
    np.testing.assert_allclose(np.diff(x), sep)


@scaled_settings(25)
@given(n_classes=st.integers(2, 5), k=st.integers(1, 4), sep=st.floats(0.1, 10.0))
def test_circle_arc_spacing_and_interleaving(n_classes, k, sep):
    centers, mode_class = mode_centers([k] * n_classes, 3, layout="circle", separation=sep)
    n = n_classes * k
    radius = np.linalg.norm(centers[:, :2], axis=1)
    np.testing.assert_allclose(radius, n * sep / (2 * math.pi))
    order = np.argsort(np.mod(np.arctan2(centers[:, 1], centers[:, 0]), 2 * math.pi))
    # Walking round the circle, classes cycle 0, 1, ..., C-1.
    np.testing.assert_array_equal(mode_class[order], np.tile(np.arange(n_classes), k))
    # Arc length between consecutive modes is `separation`.
    angles = np.mod(np.arctan2(centers[order, 1], centers[order, 0]), 2 * math.pi)
    gaps = np.diff(np.append(angles, angles[0] + 2 * math.pi))
    np.testing.assert_allclose(radius[0] * gaps, sep, rtol=1e-9)


def test_checkerboard_two_classes_is_xor():
    centers, mode_class = mode_centers([2, 2], 2, layout="checkerboard", separation=1.0)
    # Cell (row, col) with col = x + 1/2, row = y + 1/2 on the centred 2 x 2 grid.
    col = np.rint(centers[:, 0] + 0.5).astype(int)
    row = np.rint(centers[:, 1] + 0.5).astype(int)
    np.testing.assert_array_equal(mode_class, row ^ col)
    assert len({(r, c) for r, c in zip(row, col, strict=True)}) == 4


@scaled_settings(25)
@given(counts=counts_st, sep=st.floats(0.1, 10.0))
def test_checkerboard_same_class_never_grid_neighbours(counts, sep):
    centers, mode_class = mode_centers(counts, 2, layout="checkerboard", separation=sep)
    grid = centers / sep
    # On a grid of spacing `separation` (offset by a half cell at most).
    frac = np.mod(grid * 2, 1.0)
    assert np.all(np.minimum(frac, 1 - frac) < 1e-9)
    d = _pairwise(grid)
    neighbours = np.isclose(d, 1.0)
    same = mode_class[:, None] == mode_class[None, :]
    assert not np.any(neighbours & same)
    # Every class has a grid neighbour of another class whenever it has more than one cell around.
    assert np.any(neighbours)


@scaled_settings(25)
@given(n_classes=st.integers(2, 5), k=st.integers(1, 4), sep=st.floats(0.1, 10.0))
def test_rings_radii_and_angular_interleaving(n_classes, k, sep):
    centers, mode_class = mode_centers([k] * n_classes, 2, layout="rings", separation=sep)
    np.testing.assert_allclose(np.linalg.norm(centers, axis=1), (mode_class + 1) * sep)
    angles = np.mod(np.arctan2(centers[:, 1], centers[:, 0]), 2 * math.pi)
    order = np.argsort(angles + 1e-9 * mode_class)  # guard exact ties
    np.testing.assert_array_equal(mode_class[order], np.tile(np.arange(n_classes), k))


def test_rings_unequal_counts_evenly_spaced_per_class():
    centers, mode_class = mode_centers([1, 2, 5], 2, layout="rings", separation=1.5)
    for c, k in enumerate([1, 2, 5]):
        pts = centers[mode_class == c]
        np.testing.assert_allclose(np.linalg.norm(pts, axis=1), (c + 1) * 1.5)
        if k > 1:
            angles = np.sort(np.mod(np.arctan2(pts[:, 1], pts[:, 0]), 2 * math.pi))
            np.testing.assert_allclose(np.diff(angles), 2 * math.pi / k)


def test_single_class_is_allowed():
    centers, mode_class = mode_centers([3], 2, layout="circle")
    assert centers.shape == (3, 2) and np.all(mode_class == 0)


def test_accepts_numpy_counts():
    centers, mode_class = mode_centers(np.array([2, 1]), 2, layout="line")
    np.testing.assert_array_equal(mode_class, [0, 0, 1])


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"modes_per_class": []}, ValueError, r"modes_per_class must be a non-empty"),
        ({"modes_per_class": [2, 0]}, ValueError, r"modes_per_class\[1\] must be an integer in \[1, inf\), got 0"),
        ({"modes_per_class": [2, 1.5]}, TypeError, r"modes_per_class\[1\] must be an integer, got 1.5"),
        ({"modes_per_class": 3}, TypeError, r"modes_per_class must be a sequence of ints, got 3"),
        ({"modes_per_class": "ab"}, TypeError, r"modes_per_class must be a sequence of ints"),
        ({"dim": 0}, ValueError, r"dim must be an integer in \[1, inf\), got 0"),
        ({"dim": 2.0}, TypeError, r"dim must be an integer, got 2.0"),
        (
            {"dim": 1, "layout": "circle"},
            ValueError,
            r"dim \(layout 'circle'\) must be an integer in \[2, inf\), got 1",
        ),
        ({"dim": 1, "layout": "checkerboard"}, ValueError, r"dim \(layout 'checkerboard'\) .*got 1"),
        ({"dim": 1, "layout": "rings"}, ValueError, r"dim \(layout 'rings'\) .*got 1"),
        (
            {"layout": "grid"},
            ValueError,
            r"layout must be one of random, line, circle, checkerboard, rings; got 'grid'",
        ),
        ({"separation": 0.0}, ValueError, r"separation must be in \(0, inf\), got 0"),
        ({"separation": -1}, ValueError, r"separation must be in \(0, inf\), got -1"),
        ({"separation": float("nan")}, ValueError, r"separation must be in \(0, inf\), got nan"),
        ({"separation": "4"}, TypeError, r"separation must be a real number"),
        ({"random_state": "seed"}, TypeError, r"random_state must be None, an int or a numpy.random.Generator"),
    ],
)
def test_bad_input(kwargs, exc, match):
    args = {"modes_per_class": [2, 2], "dim": 2, **kwargs}
    with pytest.raises(exc, match=match):
        mode_centers(args.pop("modes_per_class"), args.pop("dim"), **args)


def test_line_works_in_one_dimension():
    centers, _ = mode_centers([2, 2], 1, layout="line")
    assert centers.shape == (4, 1)
