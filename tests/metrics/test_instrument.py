"""The collapse instrument: measures that see scale and relation, and the verdict's states."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import ortho_group

from collapse.metrics import collapse_report, instrument_report, map_at_r, mode_pairs, resolve
from collapse.metrics.controls import merge_two, reference_embedding, shrink_space, shuffle_modes
from collapse.metrics.retrieval import map_at_r_many
from collapse.metrics.verdict import STATES, Verdict, collapse_verdict

MARGIN = 0.2


def tied(points: np.ndarray, n: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tied-model embedding: every mode of ``points`` (C, K, d) repeated ``n`` times."""
    C, K, d = points.shape
    x = np.repeat(points.reshape(C * K, d), n, axis=0)
    y = np.repeat(np.arange(C), K * n)
    m = np.tile(np.repeat(np.arange(K), n), C)
    return x, y, m


def class_points(rng: np.random.Generator, C: int = 4, K: int = 3, d: int = 8, class_scale: float = 1.0,
                 mode_scale: float = 0.4) -> np.ndarray:
    centres = class_scale * np.eye(C, d)
    offsets = rng.standard_normal((C, K, d))
    offsets *= mode_scale / np.linalg.norm(offsets, axis=-1, keepdims=True)
    return centres[:, None, :] + offsets


def test_tiny_differences_in_a_tied_class_score_chance_not_one():
    """Case 2's artefact: modes 1e-4 apart (tied model) used to give sub-mode NMI and fine P@1 of 1.0."""
    rng = np.random.default_rng(0)
    pts = class_points(rng)
    pts = pts.mean(1, keepdims=True) + 1e-4 * (pts - pts.mean(1, keepdims=True))
    x, y, m = tied(pts)
    rep = instrument_report(x, y, m, margin=MARGIN)
    assert rep["submode_nmi"] == 0.0
    assert rep["fine_precision_at_1"] == pytest.approx(rep["fine_chance"], abs=1e-12)
    assert rep["merges"] == rep["merges_possible"]
    old = collapse_report(x, y, m, margin=MARGIN)
    assert old["submode_nmi"] == 0.0 and old["modes_recovered"] == 1.0
    assert old["fine_precision_at_1"] == pytest.approx(old["fine_chance"], abs=1e-12)
    assert collapse_verdict(rep).state == "collapsed"


def test_everything_on_one_spot_is_degenerate_and_reports_no_structure():
    """Case 2 itself: every point within 1e-4, loss = margin: no class, no mode structure anywhere."""
    rng = np.random.default_rng(1)
    x, y, m = tied(1e-4 * class_points(rng))
    rep = instrument_report(x, y, m, margin=MARGIN, loss=MARGIN)
    v = collapse_verdict(rep)
    assert v.state == "degenerate" and v.kind == "shrunk"
    assert rep["loss_over_margin"] == 1.0
    assert rep["class_map_at_r"] <= rep["class_map_at_r_null"] + 3 * rep["class_map_at_r_null_std"]
    assert rep["class_nmi"] == 0.0 and rep["submode_nmi"] == 0.0
    assert np.isnan(rep["submode_separation_over_spacing"])


def test_shrunk_space_with_fine_structure_is_degenerate_not_merged_modes():
    """Case 3: a whole space shrunk to 1e-3 keeps its relative structure but is whole-space degeneracy."""
    x, y, m = reference_embedding(random_state=2)
    small = shrink_space((x, y, m), np.random.default_rng(0), factor=1e-3)
    v = collapse_verdict(instrument_report(*small, margin=MARGIN))
    assert v.state == "degenerate" and v.kind == "shrunk"
    assert str(v) == "degenerate (whole space shrunk)"


def test_partial_collapse_is_counted():
    """Case 1's geometry: two of three modes merged, the third a margin away."""
    rng = np.random.default_rng(3)
    pts = class_points(rng, class_scale=1.0, mode_scale=0.01)
    pts[:, 2] += 0.2 * np.eye(8)[5]  # one margin away along a free axis
    x, y, m = tied(pts)
    v = collapse_verdict(instrument_report(x, y, m, margin=MARGIN))
    assert (v.state, v.merges, v.merges_possible) == ("partly collapsed", 4, 8)
    assert str(v) == "partly collapsed (4 of 8 merges)" and v.short == "partly 4/8"


def test_modes_kept_classes_lost_is_degenerate():
    """Case 9's geometry: modes far apart but dealt to classes at random: no class structure."""
    rng = np.random.default_rng(4)
    modes_xyz = rng.standard_normal((12, 8))
    x, y, m = tied(modes_xyz.reshape(4, 3, 8))
    v = collapse_verdict(instrument_report(x, y, m, margin=MARGIN))
    assert v.state == "degenerate" and v.kind == "no classes"


def test_shuffling_mode_labels_changes_the_sample_level_measure():
    """Case 4: with spread samples the measure is taken at sample level, so a shuffle of modes changes it."""
    x, y, m = reference_embedding(spread=0.05, random_state=5)
    before = instrument_report(x, y, m, margin=MARGIN)
    after = instrument_report(*shuffle_modes((x, y, m), np.random.default_rng(0)), margin=MARGIN)
    assert before["merges"] == 0 and after["merges"] == after["merges_possible"]
    assert after["submode_separation"] < 0.25 * before["submode_separation"]
    assert after["submode_nmi"] < 0.2 < 0.9 < before["submode_nmi"]


def test_sampling_noise_alone_reads_as_merged():
    """Samples of one blob split at random into 'modes': the corrected distance removes the noise floor."""
    rng = np.random.default_rng(6)
    x = np.concatenate([rng.standard_normal((60, 8)) * 0.3 + c for c in (0.0, 3.0)])
    y = np.repeat([0, 1], 60)
    m = rng.integers(0, 3, size=120)
    pairs = mode_pairs(x, y, m, margin=MARGIN)
    assert all(p["merged"] for p in pairs)
    assert np.mean([p["corrected_distance"] for p in pairs]) < 0.5 * np.mean([p["distance"] for p in pairs])


def test_merge_threshold_is_half_the_margin_and_overlap_is_only_reported():
    rng = np.random.default_rng(7)
    # Two tight modes 0.15 apart: beyond half a margin (0.1) -> apart.
    pts = np.zeros((2, 2, 8))
    pts[0, 1, 0], pts[1] = 0.15, 3.0
    pts[1, 1, 1] += 0.15
    x, y, m = tied(pts, n=200)
    assert not any(p["merged"] for p in mode_pairs(x, y, m, margin=MARGIN))
    assert all(p["merged"] for p in mode_pairs(x, y, m, margin=0.4))  # now within half the margin (0.2)
    # Same centroids, spread 0.2 per coordinate: the clouds overlap, but the centroids are resolved (200 samples
    # per mode) and 0.15 apart, so the pair is overlapping, not merged.
    x2 = x + rng.standard_normal(x.shape) * 0.2
    pairs = mode_pairs(x2, y, m, margin=MARGIN)
    assert all(p["overlapping"] and not p["merged"] for p in pairs)
    assert all(p["noise_floor"] < MARGIN / 2 for p in pairs)


@pytest.mark.parametrize("rank", [1, 2, 8])
@pytest.mark.parametrize("n", [5, 20, 200])
def test_noise_floor_holds_its_false_resolution_rate(rank, n):
    """Random splits of one cloud (spread in ``rank`` directions, wide against the margin) into two 'modes':
    at most a few of 400 pairs may read as resolved, whatever the sample size and shape."""
    rng = np.random.default_rng(rank * 1000 + n)
    apart = 0
    for _ in range(400):
        x = np.zeros((2 * n, 8))
        x[:, :rank] = rng.standard_normal((2 * n, rank)) * 0.5
        x = np.concatenate([x, x + 10.0])
        y = np.repeat([0, 1], 2 * n)
        m = np.tile(np.repeat([0, 1], n), 2)
        apart += sum(not p["merged"] for p in mode_pairs(x, y, m, margin=MARGIN)[:1])
    assert apart <= 8  # NOISE_P = 0.001 per pair; the chi-square approximation is loose at rank 1, n = 5


def test_noise_floor_does_not_hide_resolved_modes():
    """Two modes 2 margins apart, 20 samples each of spread 0.1: the floor is below the gap, so they stay apart."""
    rng = np.random.default_rng(8)
    centres = np.array([[0.0, 0.0], [0.4, 0.0], [5.0, 0.0], [5.0, 0.4]])
    x = np.repeat(centres, 20, axis=0) + rng.standard_normal((80, 2)) * 0.1
    y = np.repeat([0, 0, 1, 1], 20)
    m = np.repeat([0, 1, 0, 1], 20)
    pairs = mode_pairs(x, y, m, margin=MARGIN)
    assert not any(p["merged"] for p in pairs)
    assert all(p["noise_floor"] < p["corrected_distance"] for p in pairs)


def test_report_is_invariant_to_rotation_and_translation():
    x, y, m = reference_embedding(random_state=8)
    q = ortho_group.rvs(x.shape[1], random_state=0)
    a = instrument_report(x, y, m, margin=MARGIN)
    b = instrument_report(x @ q + 5.0, y, m, margin=MARGIN)
    for key, value in a.items():
        assert b[key] == pytest.approx(value, rel=1e-6, abs=1e-9, nan_ok=True), key


@given(st.integers(0, 10_000), st.floats(0.01, 1.0))
def test_resolve_groups_within_resolution(seed, res):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((40, 3)) * 0.5
    xr, order = resolve(x, res, random_state=seed)
    assert sorted(order.tolist()) == list(range(40))
    xr = xr.numpy()
    moved = np.linalg.norm(xr - x[order], axis=1)
    assert (moved <= res + 1e-12).all()
    leaders = np.unique(xr, axis=0)
    if len(leaders) > 1:
        d = np.linalg.norm(leaders[:, None] - leaders[None], axis=-1)
        assert d[~np.eye(len(leaders), dtype=bool)].min() > res


def test_map_at_r_many_matches_map_at_r():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((50, 4))
    labs = [rng.integers(0, 3, 50) for _ in range(4)]
    assert map_at_r_many(x, labs) == pytest.approx([map_at_r(x, lab) for lab in labs], abs=1e-15)


def test_bad_input_raises_one_line_errors():
    x, y, m = reference_embedding(random_state=0)
    with pytest.raises(ValueError, match="margin"):
        instrument_report(x, y, m, margin=0.0)
    with pytest.raises(ValueError, match="2 distinct classes"):
        instrument_report(x, np.zeros_like(y), m, margin=MARGIN)
    with pytest.raises(ValueError, match="2 or more distinct modes"):
        instrument_report(x, y, np.zeros_like(m), margin=MARGIN)
    with pytest.raises(ValueError, match="instrument_report"):
        collapse_verdict({"merges": 0.0})
    with pytest.raises(ValueError, match="label_sets"):
        map_at_r_many(x, [])


def test_verdict_states_are_the_documented_ones():
    x, y, m = reference_embedding(random_state=10)
    states = {collapse_verdict(instrument_report(*e, margin=MARGIN)).state
              for e in [(x, y, m), merge_two((x, y, m), np.random.default_rng(0)),
                        shuffle_modes((x, y, m), np.random.default_rng(0)),
                        shrink_space((x, y, m), np.random.default_rng(0))]}
    assert states == set(STATES)
    assert Verdict("modes kept", 0, 8, "").short == "kept"
