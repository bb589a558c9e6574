"""Negative rules against naive loops: all / hard / semihard with ties; random is valid, seeded and uniform;
distance-weighted sampling probabilities against Wu et al.'s formula, and its empirical frequencies."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from collapse.distances import EuclideanDistance
from collapse.sampling import NEGATIVE_RULES, AllNegatives, DistanceWeightedNegative, Sampler
from tests.sampling import as_lists, naive_tuples, tied_groups


def test_registry_and_validation():
    assert set(NEGATIVE_RULES) == {"all", "random", "hard", "semihard", "distance"}
    with pytest.raises(ValueError, match="negative"):
        Sampler("easy", "hardest")
    with pytest.raises(TypeError):
        AllNegatives().select(None, None, None, None, 2)
    with pytest.raises(ValueError, match="cutoff"):
        DistanceWeightedNegative(cutoff=0.0)
    with pytest.raises(ValueError, match="nonzero_loss_cutoff"):
        DistanceWeightedNegative(nonzero_loss_cutoff=-1.0)


@pytest.mark.parametrize("positive", ["all", "easy", "hard"])
@pytest.mark.parametrize("negative", ["all", "hard", "semihard"])
@given(batch=tied_groups(), exclude=st.none() | st.just(1.0))
def test_deterministic_rules_match_naive_loop(positive, negative, batch, exclude):
    D, labels = batch
    out = Sampler(positive, negative, exclude_duplicates=exclude)(D, labels, dim=3, warn=False)
    assert out.per_positive_negatives == (negative != "all")
    missing = lacking = 0
    for g in range(labels.shape[0]):
        pos, neg, trip, miss, lack = naive_tuples(positive, negative, D[g].tolist(), labels[g].tolist(), exclude)
        assert as_lists(out.positive_pairs, g) == pos
        assert as_lists(out.negative_pairs, g) == neg
        assert as_lists(out.triplets, g) == trip
        missing, lacking = missing + miss, lacking + lack
    assert out.anchors_without_positive == missing
    assert out.anchors_without_negative == lacking
    if negative == "all":
        mask = torch.zeros_like(D, dtype=torch.bool)
        for g, a, n in as_lists(out.negative_pairs):
            mask[g, a, n] = True
        assert torch.equal(out.negative_mask(), mask)


def test_semihard_is_strictly_farther_than_the_positive():
    # Anchor 0 (label 0) with its easy positive 1 at 0.5; negatives at 0.5 (tie: not semi-hard), 0.6, 0.6, 0.9.
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    D = torch.ones(6, 6, dtype=torch.float64)
    D[0] = D[:, 0] = torch.tensor([0.0, 0.5, 0.5, 0.6, 0.6, 0.9], dtype=torch.float64)
    D.fill_diagonal_(0)
    t = Sampler("easy", "semihard")(D, labels, dim=2).triplets
    assert int(t.n[t.a == 0]) == 3  # 2 is at the same distance as the positive; 3 and 4 tie, lowest index wins
    t = Sampler("easy", "hard")(D, labels, dim=2).triplets
    assert int(t.n[t.a == 0]) == 2


def test_random_negative_valid_seeded_uniform():
    labels = torch.tensor([0, 0, 1, 2, 2, 0, 3, 1, 1])
    D = torch.rand(9, 9, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    G = 3000
    Ds, ls = D.expand(G, 9, 9).clone(), labels.expand(G, 9).clone()
    out = Sampler("easy", "random", random_state=7)(Ds, ls, dim=2)
    t = out.triplets
    assert len(t) == G * 8 and out.anchors_without_positive == G  # label 3 is a singleton
    lab = labels.tolist()
    for a in range(9):
        if lab[a] == 3:
            continue
        cands = [j for j in range(9) if lab[j] != lab[a]]
        chosen = t.n[t.a == a]
        counts = np.array([(chosen == j).sum().item() for j in cands])
        assert counts.sum() == G  # every draw is a valid candidate
        assert stats.chisquare(counts).pvalue > 1e-4, (a, counts)
        assert np.abs(counts / G - 1 / len(cands)).max() < 0.04
    again = Sampler("easy", "random", random_state=7)(Ds, ls, dim=2).triplets
    other = Sampler("easy", "random", random_state=8)(Ds, ls, dim=2).triplets
    assert torch.equal(again.n, t.n) and not torch.equal(other.n, t.n)


# ---------------------------------------------------------------------------------------------- distance-weighted


def naive_dw_probabilities(d_row, candidates, dim, cutoff, nonzero_loss_cutoff):
    """Wu et al. 2017: P(n) proportional to 1/q(max(d, cutoff)) for candidates with d < nonzero_loss_cutoff, where
    q(d) = d^(dim-2) (1 - d^2/4)^((dim-3)/2) is the density of the distance between uniform points on S^(dim-1)."""
    weights = []
    for j, d in enumerate(d_row):
        if j not in candidates or d >= nonzero_loss_cutoff:
            weights.append(0.0)
            continue
        c = max(d, cutoff)
        q = c ** (dim - 2) * (1.0 - c * c / 4.0) ** ((dim - 3) / 2.0)
        weights.append(1.0 / q)
    total = sum(weights)
    return [w / total for w in weights] if total > 0 else weights


def _sphere_batch(seed, n, dim, n_classes):
    gen = torch.Generator().manual_seed(seed)
    emb = torch.randn(n, dim, generator=gen, dtype=torch.float64)
    labels = torch.arange(n) % n_classes
    return emb, labels


@pytest.mark.parametrize("dim", [2, 3, 4, 8])
@pytest.mark.parametrize("cutoff,nzc", [(0.5, 1.4), (0.3, 1.8), (0.8, 1.2)])
def test_dw_log_weights_match_wu_formula(dim, cutoff, nzc):
    emb, labels = _sphere_batch(dim, 12, dim, 3)
    D = EuclideanDistance()(emb)
    rule = DistanceWeightedNegative(cutoff=cutoff, nonzero_loss_cutoff=nzc)
    lw = rule.log_weights(D, dim)
    lab = labels.tolist()
    for a in range(12):
        cands = {j for j in range(12) if lab[j] != lab[a]}
        ref = naive_dw_probabilities(D[a].tolist(), cands, dim, cutoff, nzc)
        mask = torch.tensor([j in cands for j in range(12)])
        row = lw[a].masked_fill(~mask, float("-inf"))
        if not torch.isfinite(row).any():
            assert sum(ref) == 0
            continue
        got = torch.softmax(row, dim=0)
        torch.testing.assert_close(got, torch.tensor(ref, dtype=torch.float64), rtol=1e-9, atol=1e-12)
        beyond = D[a] >= nzc
        assert torch.isneginf(lw[a][beyond]).all()


def test_dw_empirical_frequencies_with_easy_positive():
    dim, n, G = 4, 10, 6000
    emb, labels = _sphere_batch(11, n, dim, 3)
    D = EuclideanDistance()(emb)
    out = Sampler("easy", "distance", random_state=3)(D.expand(G, n, n).clone(), labels.expand(G, n).clone(), dim=dim)
    t = out.triplets
    lab, Dl = labels.tolist(), D.tolist()
    checked = 0
    for a in range(n):
        cands = {j for j in range(n) if lab[j] != lab[a]}
        probs = np.array(naive_dw_probabilities(Dl[a], cands, dim, 0.5, 1.4))
        sel = t.a == a
        if probs.sum() == 0:
            assert not sel.any()  # every negative is beyond the cut-off: the anchor is dropped
            continue
        # The positive is the easy one, the same in every draw.
        same = [j for j in range(n) if j != a and lab[j] == lab[a]]
        assert set(t.p[sel].tolist()) == {min(same, key=lambda j: Dl[a][j])}
        freq = np.bincount(t.n[sel].numpy(), minlength=n) / G
        assert int(sel.sum()) == G
        assert np.all(freq[probs == 0] == 0)  # never beyond nonzero_loss_cutoff, never a same-label sample
        assert np.abs(freq - probs).max() < 0.03, (a, freq.round(3), probs.round(3))
        support = probs > 0
        if support.sum() > 1:
            assert stats.chisquare(freq[support] * G, probs[support] * G).pvalue > 1e-4
        checked += 1
    assert checked >= 5
    assert out.anchors_without_negative == G * (n - checked)


@given(seed=st.integers(0, 10_000), dim=st.integers(2, 8), n=st.integers(4, 12), nzc=st.floats(0.3, 1.9))
def test_dw_never_beyond_nonzero_loss_cutoff(seed, dim, n, nzc):
    emb, labels = _sphere_batch(seed, n, dim, 2)
    D = EuclideanDistance()(emb)
    out = Sampler("easy", DistanceWeightedNegative(cutoff=0.25, nonzero_loss_cutoff=nzc), random_state=seed)(
        D, labels, dim=dim
    )
    t = out.triplets
    assert bool((D[t.a, t.n] < nzc).all())
    assert bool((labels[t.a] != labels[t.n]).all())
    # An anchor is dropped exactly when it has no different-label sample closer than the cut-off.
    has_close = ((D < nzc) & (labels[:, None] != labels[None, :])).any(1)
    assert sorted(t.a.tolist()) == [a for a in range(n) if bool(has_close[a])]


def test_dw_sampler_is_seeded():
    emb, labels = _sphere_batch(5, 10, 4, 2)
    D = EuclideanDistance()(emb).expand(50, 10, 10)
    lab = labels.expand(50, 10)
    a = Sampler("easy", "distance", random_state=1)(D, lab, dim=4).triplets.n
    b = Sampler("easy", "distance", random_state=1)(D, lab, dim=4).triplets.n
    c = Sampler("easy", "distance", random_state=2)(D, lab, dim=4).triplets.n
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_dw_weight_is_finite_for_antipodal_points_in_dim_2():
    # In dim 2 the weight sqrt(1 - d^2/4) vanishes at d = 2; just below it the weight is small but positive.
    rule = DistanceWeightedNegative(cutoff=0.5, nonzero_loss_cutoff=3.0)
    d = torch.tensor([1.0, 1.999], dtype=torch.float64)
    lw = rule.log_weights(d, 2)
    ref = [math.log(math.sqrt(1 - 1 / 4)), math.log(math.sqrt(1 - 1.999**2 / 4))]
    torch.testing.assert_close(lw, torch.tensor(ref, dtype=torch.float64))
