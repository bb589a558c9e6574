"""Collapse measures on hand-built layouts with known answers, collapsed layouts, and naive oracles."""

from __future__ import annotations

import itertools
import json
import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from collapse.metrics import (
    cdnv,
    collapse_report,
    fine_precision_at_1,
    intra_inter_ratio,
    mode_separation,
    nc1,
    submode_recovery,
)
from tests.conftest import scaled_settings


def layout(mode_positions, per_mode, noise=0.0, seed=0):
    """Samples placed on given mode positions: ``mode_positions[c][m]`` is mode m of class c."""
    rng = np.random.default_rng(seed)
    xs, ys, ms = [], [], []
    for c, modes in enumerate(mode_positions):
        for m, pos in enumerate(modes):
            xs.append(np.asarray(pos, dtype=np.float64) + noise * rng.standard_normal((per_mode, len(pos))))
            ys += [c] * per_mode
            ms += [m] * per_mode
    return np.concatenate(xs), np.array(ys), np.array(ms)


# Two classes, two modes each, modes 2 apart, class centres 10 apart.
SQUARE = [[(0.0, 0.0), (2.0, 0.0)], [(0.0, 10.0), (2.0, 10.0)]]
# The same, with the modes split along the class axis (within-class scatter parallel to between-class).
LINE = [[(0.0, -1.0), (0.0, 1.0)], [(0.0, 9.0), (0.0, 11.0)]]


def well_separated(seed=0, n_classes=3, n_modes=3, per_mode=6, dim=4):
    rng = np.random.default_rng(seed)
    centres = 10.0 * rng.standard_normal((n_classes, n_modes, dim))
    return layout(centres.tolist(), per_mode, noise=0.01, seed=seed)


def collapsed(seed=0, n_classes=3, n_modes=3, per_mode=6, dim=4):
    """Every class at one point, its modes indistinguishable."""
    _, y, m = well_separated(seed, n_classes, n_modes, per_mode, dim)
    centres = np.random.default_rng(seed + 1).standard_normal((n_classes, dim))
    return centres[y], y, m


def test_mode_separation_hand_values():
    x, y, m = layout(SQUARE, per_mode=5)
    out = mode_separation(x, y, m, margin=0.5)
    assert out["mode_separation"] == pytest.approx(2.0)
    assert out["mode_separation_min"] == pytest.approx(2.0)
    assert out["inter_class_separation"] == pytest.approx(10.0)
    assert out["mode_separation_ratio"] == pytest.approx(0.2)
    assert out["mode_separation_over_margin"] == pytest.approx(4.0)
    assert "mode_separation_over_margin" not in mode_separation(x, y, m)


def test_mode_separation_mean_and_min_over_classes():
    # Class 0: three modes at 0, 3, 6 (pairwise 3, 6, 3 -> mean 4); class 1: two modes 1 apart; class 2: one mode.
    pos = [[(0.0,), (3.0,), (6.0,)], [(20.0,), (21.0,)], [(40.0,)]]
    x, y, m = layout(pos, per_mode=2)
    out = mode_separation(x, y, m)
    assert out["mode_separation"] == pytest.approx((4.0 + 1.0) / 2)
    assert out["mode_separation_min"] == pytest.approx(1.0)
    centres = [3.0, 20.5, 40.0]
    assert out["inter_class_separation"] == pytest.approx(
        np.mean([abs(a - b) for a, b in itertools.combinations(centres, 2)])
    )


def test_mode_ids_may_restart_per_class_or_be_global():
    x, y, m = layout(SQUARE, per_mode=3)
    global_ids = m + 2 * y
    assert mode_separation(x, y, m) == mode_separation(x, y, global_ids)


def test_intra_inter_ratio_hand_values():
    n = 4
    x, y, _ = layout(SQUARE, per_mode=n)
    out = intra_inter_ratio(x, y, chunk_size=3)
    # A class of 2n points: n^2 ordered cross-mode pairs each way at distance 2, the rest at 0.
    intra = 2 * n * n * 2.0 / (2 * n * (2 * n - 1))
    inter = (10.0 + math.sqrt(104.0)) / 2
    assert out["intra_class_distance"] == pytest.approx(intra)
    assert out["inter_class_distance"] == pytest.approx(inter)
    assert out["intra_inter_ratio"] == pytest.approx(intra / inter)
    assert out["intra_inter_centroid_ratio"] == pytest.approx(intra / 10.0)


@scaled_settings(10)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(4, 25), n_cls=st.integers(2, 4), chunk=st.integers(1, 30))
def test_intra_inter_ratio_matches_naive_loop(seed, n, n_cls, chunk):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3))
    y = rng.integers(0, n_cls, size=n)
    y[:2] = [0, 1]
    y[2] = 0
    intra, inter = [], []
    for i, j in itertools.permutations(range(n), 2):
        (intra if y[i] == y[j] else inter).append(np.linalg.norm(x[i] - x[j]))
    out = intra_inter_ratio(torch.from_numpy(x), y, chunk_size=chunk)
    assert out["intra_class_distance"] == pytest.approx(np.mean(intra), rel=1e-10)
    assert out["inter_class_distance"] == pytest.approx(np.mean(inter), rel=1e-10)


def test_nc1_and_cdnv_hand_values():
    # SQUARE: within-class scatter is orthogonal to the between-class direction, so NC1 = 0.
    x, y, _ = layout(SQUARE, per_mode=3)
    assert nc1(x, y) == pytest.approx(0.0, abs=1e-12)
    # LINE: Sigma_W = diag(0, 1), Sigma_B = diag(0, 25) -> tr(Sigma_W Sigma_B^+) / C = (1/25) / 2.
    x, y, _ = layout(LINE, per_mode=3)
    assert nc1(x, y) == pytest.approx(0.02)
    # Var = 1 in both classes, centres 10 apart: (1 + 1) / (2 * 100).
    assert cdnv(x, y) == pytest.approx(0.01)


@scaled_settings(10)
@given(seed=st.integers(0, 2**31 - 1), n_cls=st.integers(2, 5), dim=st.integers(1, 7))
def test_nc1_and_cdnv_match_direct_formulas(seed, n_cls, dim):
    rng = np.random.default_rng(seed)
    y = np.concatenate([np.arange(n_cls), rng.integers(0, n_cls, size=15)])
    x = rng.standard_normal((y.size, dim)) + 3 * rng.standard_normal((n_cls, dim))[y]
    means = np.stack([x[y == c].mean(axis=0) for c in range(n_cls)])
    w = x - means[y]
    sigma_w = w.T @ w / len(x)
    b = means - means.mean(axis=0)
    sigma_b = b.T @ b / n_cls
    expected = np.trace(sigma_w @ np.linalg.pinv(sigma_b, hermitian=True)) / n_cls
    assert nc1(x, y) == pytest.approx(expected, rel=1e-6)
    var = [np.mean(np.sum((x[y == c] - means[c]) ** 2, axis=1)) for c in range(n_cls)]
    pairs = [
        (var[a] + var[c]) / (2 * np.sum((means[a] - means[c]) ** 2)) for a, c in itertools.combinations(range(n_cls), 2)
    ]
    assert cdnv(x, y) == pytest.approx(np.mean(pairs), rel=1e-10)


def test_submode_recovery_well_separated_and_collapsed():
    x, y, m = well_separated()
    out = submode_recovery(x, y, m)
    assert out == {"submode_nmi": 1.0, "submode_ari": 1.0, "modes_recovered": 3.0, "true_modes": 3.0}
    x, y, m = collapsed()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = submode_recovery(x, y, m)
    assert out["submode_nmi"] == pytest.approx(0.0, abs=1e-12)
    assert out["submode_ari"] == pytest.approx(0.0, abs=1e-12)
    assert out["modes_recovered"] == 1.0
    assert out["true_modes"] == 3.0


def test_modes_recovered_merges_modes_closer_than_tol():
    # Class 0: modes at 0 and 0.1 (closer than 0.05 * 20 = 1) merge; class 1: modes at 20 and 25 stay apart.
    pos = [[(0.0,), (0.1,)], [(20.0,), (25.0,)]]
    x, y, m = layout(pos, per_mode=4)
    out = submode_recovery(x, y, m)
    assert out["modes_recovered"] == pytest.approx(1.5)
    assert submode_recovery(x, y, m, tol=0.01)["modes_recovered"] == pytest.approx(2.0)


def test_fine_precision_at_1_separated_collapsed_and_ties():
    x, y, m = well_separated()
    out = fine_precision_at_1(x, y, m)
    # Every class: 3 modes x 6 points; 5 of the 17 others share the query's mode.
    assert out == {"fine_precision_at_1": 1.0, "fine_chance": pytest.approx(5 / 17)}
    x, y, m = collapsed()
    out = fine_precision_at_1(x, y, m, chunk_size=4)
    # Every other class member is tied at distance 0: the expected P@1 is exactly chance.
    assert out["fine_precision_at_1"] == pytest.approx(5 / 17)
    assert out["fine_chance"] == pytest.approx(5 / 17)


def test_fine_precision_at_1_partial_ties():
    # One class, modes a (points 0, 1) and b (points 2, 3); plus a second single-mode class, which is ignored.
    x = np.array([[0.0], [1.0], [-1.0], [5.0], [100.0], [101.0]])
    y = np.array([0, 0, 0, 0, 1, 1])
    m = np.array([0, 0, 1, 1, 0, 0])
    out = fine_precision_at_1(x, y, m)
    # Query 0: tied nearest {1 (a), 2 (b)} -> 1/2; query 1 -> 0 (a): 1; query 2 -> 0 (a): 0; query 3 -> 1 (a): 0.
    assert out["fine_precision_at_1"] == pytest.approx((0.5 + 1 + 0 + 0) / 4)
    assert out["fine_chance"] == pytest.approx(1 / 3)
    # tie_tol = 1.5 widens the tied sets: query 1 now ties 0 (a) with 2 (b) -> 1/2; the others keep their scores.
    assert fine_precision_at_1(x, y, m, tie_tol=1.5)["fine_precision_at_1"] == pytest.approx((0.5 + 0.5 + 0 + 0) / 4)


def test_fine_precision_at_1_collapsed_is_chance_under_random_tie_breaking():
    # Cross-check the expectation against simulated uniformly random tie-breaking.
    x, y, m = collapsed(seed=3, per_mode=5)
    exact = fine_precision_at_1(x, y, m)["fine_precision_at_1"]
    rng = np.random.default_rng(0)
    hits = []
    for i in range(len(x)):
        others = [j for j in range(len(x)) if j != i and y[j] == y[i]]
        picks = rng.choice(others, size=200)
        hits.append(np.mean(m[picks] == m[i]))
    assert exact == pytest.approx(np.mean(hits), abs=0.02)


def test_collapse_report_keys_and_json():
    x, y, m = well_separated(per_mode=4)
    report = collapse_report(torch.from_numpy(x).float(), torch.from_numpy(y), m, margin=0.2)
    expected = {
        "intra_class_distance",
        "inter_class_distance",
        "intra_inter_ratio",
        "intra_inter_centroid_ratio",
        "mode_separation",
        "mode_separation_min",
        "inter_class_separation",
        "mode_separation_ratio",
        "mode_separation_over_margin",
        "nc1",
        "cdnv",
        "submode_nmi",
        "submode_ari",
        "modes_recovered",
        "true_modes",
        "fine_precision_at_1",
        "fine_chance",
    }
    assert set(report) == expected
    assert all(type(v) is float for v in report.values())
    json.dumps(report, allow_nan=False)
    assert "mode_separation_over_margin" not in collapse_report(x, y, m)


def test_collapse_report_separates_collapsed_from_not():
    sep = collapse_report(*well_separated())
    col = collapse_report(*collapsed())
    assert col["mode_separation_ratio"] == pytest.approx(0.0, abs=1e-12)
    assert sep["mode_separation_ratio"] > 0.1
    assert col["modes_recovered"] == 1.0 and sep["modes_recovered"] == 3.0
    assert col["fine_precision_at_1"] == pytest.approx(col["fine_chance"])
    assert sep["fine_precision_at_1"] == 1.0
    assert col["nc1"] == pytest.approx(0.0, abs=1e-12) and col["cdnv"] == pytest.approx(0.0, abs=1e-12)
    assert col["intra_inter_ratio"] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: mode_separation(np.zeros((4, 2)), [0, 0, 1, 1], [0, 1, 0]), "modes must have the same length"),
        (lambda: mode_separation(np.eye(4), [0, 0, 1, 1], [0, 0, 0, 0]), "at least one class 2 or more"),
        (lambda: mode_separation(np.eye(4), [0, 0, 0, 0], [0, 1, 0, 1]), "at least 2 distinct classes"),
        (lambda: mode_separation(np.eye(4), [0, 0, 1, 1], [0, 1, 0, 1], margin=0.0), "margin must be in"),
        (lambda: intra_inter_ratio(np.eye(4), [0, 1, 2, 3]), "one class with 2 or more"),
        (lambda: intra_inter_ratio(np.eye(4), [0, 0, 0]), "labels must have the same length"),
        (lambda: nc1(np.eye(3), [0, 0, 0]), "at least 2 distinct classes"),
        (lambda: cdnv(np.array([[np.nan], [0.0]]), [0, 1]), "embeddings must be finite"),
        (lambda: submode_recovery(np.eye(4), [0, 0, 1, 1], [0, 1, 0, 1], tol=-1.0), "tol must be in"),
        (lambda: fine_precision_at_1(np.eye(4), [0, 0, 1, 1], [0, 1, 0, 1], tie_tol=-1.0), "tie_tol must be in"),
        (lambda: collapse_report(np.zeros((1, 2)), [0], [0]), "at least 2 samples"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
