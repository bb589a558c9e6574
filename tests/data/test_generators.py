import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from collapse.data import LAYOUTS, MultiModeData, make_multimode, mode_centers
from tests.conftest import scaled_settings


def test_defaults_shapes_and_dtypes():
    data = make_multimode(random_state=0)
    assert isinstance(data, MultiModeData)
    assert data.n_classes == 4 and data.modes_per_class == (3, 3, 3, 3)
    assert data.n_modes == 12 and data.n_samples == 1200 and data.dim == 2
    assert data.X.shape == (1200, 2) and data.X.dtype == np.float32
    assert data.y.shape == (1200,) and data.y.dtype == np.int64
    assert data.modes.shape == (1200,) and data.modes.dtype == np.int64
    assert data.mode_class.shape == (12,) and data.mode_class.dtype == np.int64
    assert data.centers.shape == (12, 2) and data.centers.dtype == np.float64
    np.testing.assert_array_equal(data.mode_counts, 100)
    np.testing.assert_allclose(data.mode_weights, 1 / 12)


@scaled_settings(25)
@given(
    counts=st.lists(st.integers(1, 4), min_size=2, max_size=4),
    layout=st.sampled_from(LAYOUTS),
    dim=st.integers(2, 4),
    seed=st.integers(0, 2**32 - 1),
    data=st.data(),
)
def test_labels_follow_modes(counts, layout, dim, seed, data):
    n_modes = sum(counts)
    per_mode = data.draw(st.lists(st.integers(1, 5), min_size=n_modes, max_size=n_modes))
    d = make_multimode(
        len(counts), counts, dim, samples_per_mode=per_mode, layout=layout, spread=0.1, random_state=seed
    )
    assert d.modes_per_class == tuple(counts)
    np.testing.assert_array_equal(d.mode_class, np.repeat(np.arange(len(counts)), counts))
    np.testing.assert_array_equal(d.y, d.mode_class[d.modes])
    np.testing.assert_array_equal(d.mode_counts, per_mode)
    np.testing.assert_allclose(d.mode_weights, np.asarray(per_mode) / sum(per_mode))
    assert d.n_samples == sum(per_mode)
    # Samples come ordered by mode.
    assert np.all(np.diff(d.modes) >= 0)
    assert set(np.unique(d.y)) == set(range(len(counts)))


def test_centres_are_those_of_mode_centers():
    d = make_multimode(3, [1, 2, 3], 2, layout="rings", separation=2.0, random_state=0)
    expected, mode_class = mode_centers([1, 2, 3], 2, layout="rings", separation=2.0)
    np.testing.assert_array_equal(d.centers, expected)
    np.testing.assert_array_equal(d.mode_class, mode_class)


def test_deterministic_for_a_seed():
    a = make_multimode(3, 2, 5, random_state=123)
    b = make_multimode(3, 2, 5, random_state=123)
    c = make_multimode(3, 2, 5, random_state=124)
    for field in ("X", "y", "modes", "mode_class", "centers"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.X, c.X)


def test_accepts_a_generator():
    a = make_multimode(2, 2, 2, random_state=np.random.default_rng(5))
    b = make_multimode(2, 2, 2, random_state=np.random.default_rng(5))
    np.testing.assert_array_equal(a.X, b.X)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_empirical_spread(layout):
    d = make_multimode(2, 3, 3, samples_per_mode=2000, spread=0.7, layout=layout, random_state=0)
    resid = d.X.astype(np.float64) - d.centers[d.modes]
    assert resid.std() == pytest.approx(0.7, rel=0.02)
    assert np.abs(resid.mean(0)).max() < 0.02
    # Per-mode sample means sit on the centres.
    for m in range(d.n_modes):
        np.testing.assert_allclose(d.X[d.modes == m].mean(0), d.centers[m], atol=0.07)


def test_zero_spread_puts_samples_on_centres():
    d = make_multimode(2, 2, 2, spread=0.0, layout="line", random_state=0)
    np.testing.assert_array_equal(d.X, d.centers[d.modes].astype(np.float32))


def test_unequal_modes_per_class():
    d = make_multimode(3, [1, 4, 2], 2, samples_per_mode=10, random_state=0)
    assert d.n_modes == 7
    np.testing.assert_array_equal(np.bincount(d.mode_class), [1, 4, 2])
    np.testing.assert_array_equal(np.bincount(d.y), [10, 40, 20])


def test_dataclass_is_frozen_and_checks_shapes():
    d = make_multimode(2, 1, 2, samples_per_mode=3, random_state=0)
    with pytest.raises(AttributeError):
        d.n_classes = 5
    with pytest.raises(ValueError, match="y and modes must have shape"):
        MultiModeData(d.X, d.y[:2], d.modes, d.mode_class, d.centers, 2, (1, 1))
    with pytest.raises(ValueError, match="mode_class must have shape"):
        MultiModeData(d.X, d.y, d.modes, d.mode_class, d.centers, 2, (1, 2))


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"n_classes": 1}, ValueError, r"n_classes must be an integer in \[2, inf\), got 1"),
        ({"n_classes": 2.0}, TypeError, r"n_classes must be an integer, got 2.0"),
        ({"modes_per_class": 0}, ValueError, r"modes_per_class must be an integer in \[1, inf\), got 0"),
        ({"modes_per_class": [1, 2, 3]}, ValueError, r"modes_per_class must be an int or a sequence of 4 ints, got a"),
        (
            {"modes_per_class": [1, 2, 0, 1]},
            ValueError,
            r"modes_per_class\[2\] must be an integer in \[1, inf\), got 0",
        ),
        ({"modes_per_class": None}, TypeError, r"modes_per_class must be an int or a sequence of ints, got None"),
        ({"dim": 0}, ValueError, r"dim must be an integer in \[1, inf\), got 0"),
        ({"dim": 1, "layout": "rings"}, ValueError, r"dim \(layout 'rings'\) must be an integer in \[2, inf\), got 1"),
        ({"samples_per_mode": 0}, ValueError, r"samples_per_mode must be an integer in \[1, inf\), got 0"),
        ({"samples_per_mode": [5] * 11}, ValueError, r"samples_per_mode must be an int or a sequence of 12 ints"),
        ({"samples_per_mode": [5] * 11 + [-1]}, ValueError, r"samples_per_mode\[11\] must be an integer in \[1, inf\)"),
        ({"samples_per_mode": 2.5}, TypeError, r"samples_per_mode must be an int or a sequence of ints, got 2.5"),
        ({"spread": -0.1}, ValueError, r"spread must be in \[0, inf\), got -0.1"),
        ({"spread": float("inf")}, ValueError, r"spread must be in \[0, inf\), got inf"),
        ({"separation": 0}, ValueError, r"separation must be in \(0, inf\), got 0"),
        ({"layout": "spiral"}, ValueError, r"layout must be one of random, line, circle, checkerboard, rings; got"),
        ({"random_state": 1.5}, TypeError, r"random_state must be None, an int or a numpy.random.Generator"),
    ],
)
def test_bad_input(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        make_multimode(**kwargs)
