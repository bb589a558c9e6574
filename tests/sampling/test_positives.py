"""Positive rules against naive loops: all / easy / hard with ties and exclude_duplicates; random is valid,
seeded and uniform."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from collapse.sampling import POSITIVE_RULES, EasyPositive, HardPositive, RandomPositive, Sampler
from tests.sampling import as_lists, naive_positive_pairs, same_label_candidates, tied_groups


def test_registry():
    assert set(POSITIVE_RULES) == {"all", "random", "easy", "hard"}
    assert isinstance(Sampler("hard").positive, HardPositive)
    rule = EasyPositive()
    assert Sampler(rule).positive is rule
    with pytest.raises(ValueError, match="positive"):
        Sampler("nearest")


@pytest.mark.parametrize("rule", ["all", "easy", "hard"])
@given(batch=tied_groups(), exclude=st.none() | st.sampled_from([0.0, 1.0, 2.5]))
def test_deterministic_rules_match_naive_loop(rule, batch, exclude):
    D, labels = batch
    out = Sampler(rule, "all", exclude_duplicates=exclude)(D, labels, dim=3, warn=False)
    missing = 0
    for g in range(labels.shape[0]):
        pairs, miss = naive_positive_pairs(rule, D[g].tolist(), labels[g].tolist(), exclude)
        assert as_lists(out.positive_pairs, g) == pairs
        missing += miss
    assert out.anchors_without_positive == missing
    assert out.n_groups == labels.shape[0] and out.batch_size == labels.shape[1]


def test_ties_go_to_lowest_index():
    # Anchor 0 has same-label partners 2, 3, 5 at distances 1, 1, 3 and 4, 6 at 3 (max): easy -> 2, hard -> 4.
    labels = torch.tensor([0, 1, 0, 0, 0, 0, 0])
    D = torch.full((7, 7), 2.0, dtype=torch.float64)
    D.fill_diagonal_(0)
    D[0, [2, 3, 4, 5, 6]] = torch.tensor([1.0, 1.0, 3.0, 2.0, 3.0], dtype=torch.float64)
    for rule, expected in (("easy", 2), ("hard", 4)):
        pairs = Sampler(rule)(D, labels, dim=2).positive_pairs
        assert int(pairs.b[pairs.a == 0]) == expected


def test_exclude_duplicates_skips_copies_and_counts_dropped_anchors():
    labels = torch.tensor([0, 0, 0, 1, 1, 2])
    D = torch.tensor(
        [
            [0.0, 0.0, 0.7, 1.0, 1.0, 1.0],
            [0.0, 0.0, 0.5, 1.0, 1.0, 1.0],
            [0.7, 0.5, 0.0, 1.0, 1.0, 1.0],
            [1.0, 1.0, 1.0, 0.0, 0.05, 1.0],
            [1.0, 1.0, 1.0, 0.05, 0.0, 1.0],
            [1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
        ],
        dtype=torch.float64,
    )
    plain = Sampler("easy")(D, labels, dim=2)
    assert as_lists(plain.positive_pairs) == [(0, 0, 1), (0, 1, 0), (0, 2, 1), (0, 3, 4), (0, 4, 3)]
    assert plain.anchors_without_positive == 1  # the singleton label 2
    skip = Sampler("easy", exclude_duplicates=0.1)(D, labels, dim=2)
    # 0 and 1 are copies (distance 0), 3 and 4 near-copies: 3 and 4 lose their only positive.
    assert as_lists(skip.positive_pairs) == [(0, 0, 2), (0, 1, 2), (0, 2, 1)]
    assert skip.anchors_without_positive == 3


def _uniformity_case():
    """One batch in which anchors have 1 to 4 same-label candidates."""
    labels = torch.tensor([0, 0, 1, 0, 2, 0, 1, 0, 2])
    D = torch.rand(9, 9, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return D, labels


def test_random_positive_valid_seeded_uniform():
    D, labels = _uniformity_case()
    G = 4000
    Ds, ls = D.expand(G, 9, 9).clone(), labels.expand(G, 9).clone()
    out = Sampler("random", "all", random_state=123)(Ds, ls, dim=2)
    pairs = out.positive_pairs
    assert len(pairs) == G * 9 and out.anchors_without_positive == 0  # one per anchor, every anchor has one
    lab = labels.tolist()
    for a in range(9):
        cands = same_label_candidates(D.tolist(), lab, a)
        chosen = pairs.b[pairs.a == a]
        assert set(chosen.tolist()) <= set(cands)
        counts = np.array([(chosen == j).sum().item() for j in cands])
        assert counts.sum() == G
        if len(cands) > 1:
            assert stats.chisquare(counts).pvalue > 1e-4, (a, counts)
            assert np.abs(counts / G - 1 / len(cands)).max() < 0.04
    # Seeded: a fresh sampler with the same seed repeats the draw, another seed does not.
    again = Sampler("random", "all", random_state=123)(Ds, ls, dim=2).positive_pairs
    other = Sampler("random", "all", random_state=124)(Ds, ls, dim=2).positive_pairs
    assert torch.equal(again.b, pairs.b) and not torch.equal(other.b, pairs.b)
    gen = torch.Generator().manual_seed(123)
    assert torch.equal(Sampler(RandomPositive(), random_state=gen)(Ds, ls, dim=2).positive_pairs.b, pairs.b)


def test_random_positive_respects_exclude_duplicates():
    labels = torch.tensor([0, 0, 0, 1, 1])
    D = torch.ones(5, 5, dtype=torch.float64)
    D.fill_diagonal_(0)
    D[0, 1] = D[1, 0] = 0.0  # 0 and 1 are copies
    out = Sampler("random", random_state=0, exclude_duplicates=0.0)(D.expand(200, 5, 5), labels.expand(200, 5), dim=2)
    pairs = out.positive_pairs
    assert set(pairs.b[pairs.a == 0].tolist()) == {2} and set(pairs.b[pairs.a == 1].tolist()) == {2}
    assert set(pairs.b[pairs.a == 2].tolist()) == {0, 1}
