"""The sampler end to end: pytorch-metric-learning's BatchEasyHardMiner as an oracle, and hypothesis properties
(labels respected, EPS is a nearest same-label sample, stacks equal their groups)."""

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from collapse.distances import EuclideanDistance
from collapse.sampling import Sampler, label_masks
from tests.sampling import as_lists

miners = pytest.importorskip("pytorch_metric_learning.miners")

POSITIVES = ["all", "random", "easy", "hard"]
NEGATIVES = ["all", "random", "hard", "semihard", "distance"]
DETERMINISTIC = [(p, n) for p in ("all", "easy", "hard") for n in ("all", "hard", "semihard")]


@pytest.mark.parametrize("pos,neg", [("easy", "semihard"), ("easy", "hard"), ("hard", "hard"), ("hard", "semihard")])
@pytest.mark.parametrize("seed", range(4))
def test_matches_pml_batch_easy_hard_miner(make_batch, pos, neg, seed):
    emb, labels = make_batch(seed, n_classes=5, per_class=(2, 5), dim=6)
    # A singleton label too: both implementations drop an anchor without a positive.
    emb = torch.cat([emb, torch.randn(1, 6, generator=torch.Generator().manual_seed(seed), dtype=emb.dtype)])
    labels = torch.cat([labels, torch.tensor([99])])
    a, p, a2, n = miners.BatchEasyHardMiner(pos_strategy=pos, neg_strategy=neg)(emb, labels)
    assert torch.equal(a, a2)
    ref = sorted(zip(a.tolist(), p.tolist(), n.tolist()))
    out = Sampler(pos, neg)(EuclideanDistance()(emb), labels, dim=6)
    assert [r[1:] for r in as_lists(out.triplets)] == ref
    assert len(ref) > 0
    assert out.anchors_without_positive == 1


@pytest.mark.parametrize("seed", range(3))
def test_easy_all_matches_pml_pairs(make_batch, seed):
    emb, labels = make_batch(seed, n_classes=4, per_class=(2, 4), dim=5)
    a1, p, a2, n = miners.BatchEasyHardMiner(pos_strategy="easy", neg_strategy="all")(emb, labels)
    out = Sampler("easy", "all")(EuclideanDistance()(emb), labels, dim=5)
    assert [r[1:] for r in as_lists(out.positive_pairs)] == sorted(zip(a1.tolist(), p.tolist()))
    assert [r[1:] for r in as_lists(out.negative_pairs)] == sorted(zip(a2.tolist(), n.tolist()))


# ---------------------------------------------------------------------------------------------- hypothesis


@st.composite
def sphere_groups(draw, max_groups=3):
    """Gaussian float64 embeddings ``(G, B, d)`` with small label alphabets (so singletons and big classes occur)."""
    G = draw(st.integers(1, max_groups))
    B = draw(st.integers(2, 12))
    dim = draw(st.integers(2, 6))
    labels = draw(st.lists(st.lists(st.integers(0, 3), min_size=B, max_size=B), min_size=G, max_size=G))
    seed = draw(st.integers(0, 2**31 - 1))
    emb = torch.tensor(np.random.default_rng(seed).standard_normal((G, B, dim)))
    return emb, torch.tensor(labels, dtype=torch.long)


@given(data=sphere_groups(), pos=st.sampled_from(POSITIVES), neg=st.sampled_from(NEGATIVES))
def test_mined_tuples_respect_labels_and_groups(data, pos, neg):
    emb, labels = data
    G, B, dim = emb.shape
    D = EuclideanDistance()(emb)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = Sampler(pos, neg, random_state=0)(D, labels, dim=dim)
    for pairs, same in ((out.positive_pairs, True), (out.negative_pairs, False)):
        for g, a, b in as_lists(pairs):
            assert 0 <= g < G and 0 <= a < B and 0 <= b < B
            assert (labels[g, a] == labels[g, b]) == same
            assert a != b
    triplets = as_lists(out.triplets)
    for g, a, p, n in triplets:
        assert labels[g, a] == labels[g, p] != labels[g, n] and a != p
    # Anchors without a positive are exactly the anchors whose label occurs once in their group.
    paired = {(g, a) for g in range(G) for a in range(B) if int((labels[g] == labels[g, a]).sum()) > 1}
    assert out.anchors_without_positive == G * B - len(paired)
    anchors = {(g, a) for g, a, _ in as_lists(out.positive_pairs)}
    if neg == "all":
        assert anchors == paired
    else:  # anchors whose negative rule found nothing are counted, not kept
        assert anchors <= paired and len(anchors) + out.anchors_without_negative == len(paired)
    if pos != "all":  # one positive per anchor
        assert len(out.positive_pairs) == len({(g, a) for g, a, _ in as_lists(out.positive_pairs)})


@given(data=sphere_groups(), neg=st.sampled_from(NEGATIVES), exclude=st.none() | st.just(0.3))
def test_easy_positive_is_a_nearest_same_label_sample(data, neg, exclude):
    emb, labels = data
    G, B, dim = emb.shape
    D = EuclideanDistance()(emb)
    out = Sampler("easy", neg, exclude_duplicates=exclude, random_state=1)(D, labels, dim=dim, warn=False)
    for g, a, p in as_lists(out.positive_pairs):
        others = [float(D[g, a, j]) for j in range(B) if j != a and labels[g, j] == labels[g, a]]
        if exclude is not None:
            others = [d for d in others if d > exclude]
        assert float(D[g, a, p]) == min(others)


@given(data=sphere_groups(max_groups=4), rules=st.sampled_from(DETERMINISTIC))
def test_stack_equals_per_group(data, rules):
    emb, labels = data
    D = EuclideanDistance()(emb)
    dim = emb.shape[-1]
    out = Sampler(*rules)(D, labels, dim=dim, warn=False)
    without_pos = without_neg = 0
    for g in range(labels.shape[0]):
        one = Sampler(*rules)(D[g], labels[g], dim=dim, warn=False)
        assert one.n_groups == 1
        for name in ("positive_pairs", "negative_pairs", "triplets"):
            assert as_lists(getattr(out, name), g) == as_lists(getattr(one, name), 0)
        without_pos += one.anchors_without_positive
        without_neg += one.anchors_without_negative
    assert (out.anchors_without_positive, out.anchors_without_negative) == (without_pos, without_neg)


def test_groups_never_mix():
    # Group 1 is group 0 with relabelled samples: label sets that would match across groups must not pair up.
    D = EuclideanDistance()(torch.randn(2, 6, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    labels = torch.tensor([[0, 1, 2, 3, 4, 5], [0, 0, 1, 1, 2, 2]])
    out = Sampler("all", "all")(D, labels, dim=3)
    assert {g for g, _, _ in as_lists(out.positive_pairs)} == {1}
    assert out.anchors_without_positive == 6
    assert as_lists(out.positive_pairs) == [(1, 0, 1), (1, 1, 0), (1, 2, 3), (1, 3, 2), (1, 4, 5), (1, 5, 4)]


def test_label_masks():
    same, diff = label_masks(torch.tensor([[0, 1, 0]]))
    assert same.tolist() == [[[False, False, True], [False, False, False], [True, False, False]]]
    assert diff.tolist() == [[[False, True, False], [True, False, True], [False, True, False]]]


def test_no_positive_warns_with_count_and_can_be_silenced():
    D = torch.rand(5, 5, dtype=torch.float64)
    labels = torch.arange(5)
    with pytest.warns(RuntimeWarning, match=r"\b5 anchors"):
        out = Sampler("easy", "semihard")(D, labels, dim=2)
    assert len(out.triplets) == 0 and out.anchors_without_positive == 5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Sampler("easy", "semihard")(D, labels, dim=2, warn=False)


def test_sampler_does_not_track_gradients():
    x = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    D = EuclideanDistance()(x)
    out = Sampler("easy", "distance")(D, torch.tensor([0, 0, 1, 1, 2, 2]), dim=3)
    assert not out.positive_pairs.a.requires_grad and len(out.triplets) > 0
