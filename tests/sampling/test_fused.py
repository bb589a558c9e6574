"""The fused selection (collapse.sampling.fused) equals the generic rules, which the other sampling tests check
against naive loops: same tuples, same counts, on tied, signed, infinite and huge distances."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from collapse.sampling import EasyPositive, HardNegative, HardPositive, Sampler, SemiHardNegative
from collapse.sampling.fused import LabelSegments, fused_negatives_apply
from tests.sampling import as_lists, naive_tuples, tied_groups


# Subclasses are not the built-in rules, so a sampler made of them takes the generic path.
class GenericEasy(EasyPositive):
    pass


class GenericHard(HardPositive):
    pass


class GenericHardNegative(HardNegative):
    pass


class GenericSemiHard(SemiHardNegative):
    pass


GENERIC = {"easy": GenericEasy, "hard": GenericHard, "hard_neg": GenericHardNegative, "semihard": GenericSemiHard}


def _generic(positive, negative, exclude=None):
    neg = negative if negative == "all" else GENERIC["hard_neg" if negative == "hard" else negative]()
    return Sampler(GENERIC[positive](), neg, exclude_duplicates=exclude)


def _same_tuples(a, b):
    for name in ("positive_pairs", "negative_pairs", "triplets"):
        assert as_lists(getattr(a, name)) == as_lists(getattr(b, name)), name
    assert (a.anchors_without_positive, a.anchors_without_negative) == (
        b.anchors_without_positive,
        b.anchors_without_negative,
    )
    assert a.per_positive_negatives == b.per_positive_negatives


@pytest.mark.parametrize("positive", ["easy", "hard"])
@pytest.mark.parametrize("negative", ["all", "hard", "semihard"])
@given(batch=tied_groups(), exclude=st.none() | st.just(1.0), shift=st.sampled_from([0.0, -2.5]))
def test_fused_equals_generic_with_ties(positive, negative, batch, exclude, shift):
    D, labels = batch
    D = D + shift  # negative entries too (cosine distances can round below 0)
    fused = Sampler(positive, negative, exclude_duplicates=exclude)(D, labels, dim=3, warn=False)
    generic = _generic(positive, negative, exclude)(D, labels, dim=3, warn=False)
    _same_tuples(fused, generic)
    sampler = Sampler(positive, negative, exclude_duplicates=exclude)
    again = sampler(D.clone(), labels, dim=3, warn=False, overwrite=True)
    _same_tuples(again, generic)


@pytest.mark.parametrize("positive", ["easy", "hard"])
@pytest.mark.parametrize("negative", ["hard", "semihard"])
@given(batch=tied_groups(max_batch=12), data=st.data())
def test_fused_equals_naive_loop_with_infinite_and_huge_entries(positive, negative, batch, data):
    D, labels = batch
    special = data.draw(st.sampled_from([float("inf"), 1e300, 3.0]))
    G, B, _ = D.shape
    if B > 2:
        i, j = data.draw(st.integers(0, B - 1)), data.draw(st.integers(0, B - 1))
        D[:, i, j] = D[:, j, i] = special
    out = Sampler(positive, negative)(D, labels, dim=3, warn=False)
    generic = _generic(positive, negative)(D, labels, dim=3, warn=False)
    _same_tuples(out, generic)
    for g in range(G):
        pos, neg, trip, miss, lack = naive_tuples(positive, negative, D[g].tolist(), labels[g].tolist())
        # The naive loop treats an infinite distance as a candidate; the rules (both paths) treat it as none.
        if special == float("inf") and B > 2:
            continue
        assert as_lists(out.triplets, g) == trip


def test_guard_sends_unbounded_matrices_to_the_generic_path():
    D = torch.rand(1, 6, 6, dtype=torch.float64)
    assert fused_negatives_apply(D, "semihard") and fused_negatives_apply(D, "hard")
    for bad in (float("inf"), float("nan"), 1e308, -1e308):
        E = D.clone()
        E[0, 1, 2] = bad
        assert not fused_negatives_apply(E, "semihard")
    assert fused_negatives_apply(torch.full((1, 3, 3), float("inf")), "hard")


def test_label_segments_list_each_label_in_batch_order():
    labels = torch.tensor([[3, 1, 3, 2, 1, 3], [0, 0, 0, 0, 0, 1]])
    seg = LabelSegments(labels)
    assert seg.count.tolist() == [[3, 2, 3, 1, 2, 3], [5, 5, 5, 5, 5, 1]]
    members = [[row[:c] for row, c in zip(m.tolist(), k.tolist())] for m, k in zip(seg.members, seg.count)]
    assert members[0] == [[0, 2, 5], [1, 4], [0, 2, 5], [3], [1, 4], [0, 2, 5]]
    assert members[1][5] == [5] and members[1][0] == [0, 1, 2, 3, 4]
    # Padding (up to the largest count over all groups, 5) repeats the segment's last member.
    assert seg.members[0, 3].tolist() == [3] * 5 and seg.members[0, 1].tolist() == [1, 4, 4, 4, 4]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_on_float_embeddings_equals_generic(dtype):
    gen = torch.Generator().manual_seed(0)
    x = torch.nn.functional.normalize(torch.randn(3, 64, 5, generator=gen, dtype=dtype), dim=-1)
    D = torch.cdist(x, x)
    labels = torch.randint(0, 6, (3, 64), generator=gen)
    for positive in ("easy", "hard"):
        for negative in ("hard", "semihard", "all"):
            _same_tuples(Sampler(positive, negative)(D, labels, dim=5), _generic(positive, negative)(D, labels, dim=5))


def test_built_in_rules_take_the_fused_path_and_subclasses_do_not(monkeypatch):
    import collapse.sampling.sampler as sampler_module

    calls = []
    real = sampler_module.fused_negatives
    monkeypatch.setattr(sampler_module, "fused_negatives", lambda *a, **k: calls.append(1) or real(*a, **k))
    D = torch.rand(1, 8, 8, dtype=torch.float64)
    labels = torch.tensor([[0, 0, 1, 1, 2, 2, 3, 3]])
    Sampler("easy", "semihard")(D, labels, dim=2)
    assert calls == [1]
    _generic("easy", "semihard")(D, labels, dim=2)
    assert calls == [1]


def test_mask_pairs_list_the_mask_only_when_read():
    from collapse.sampling.tuples import MaskPairs, Pairs

    mask = torch.rand(2, 5, 5, generator=torch.Generator().manual_seed(0)) > 0.5
    pairs = MaskPairs(mask)
    assert isinstance(pairs, Pairs) and pairs._listed is None
    assert len(pairs) == int(mask.sum()) and pairs._listed is None
    assert pairs.mask(2, 5) is mask
    g, a, b = mask.nonzero(as_tuple=True)
    assert torch.equal(pairs.g, g) and torch.equal(pairs.a, a) and torch.equal(pairs.b, b)
    assert len(pairs) == len(g)
    D = torch.rand(2, 5, 5)
    assert torch.equal(pairs.gather(D), D[g, a, b])


@pytest.mark.parametrize("negative", ["random", "distance", "hard", "semihard"])
@pytest.mark.parametrize("positive", ["easy", "all"])
def test_negative_rules_in_row_chunks_draw_the_same_tuples(monkeypatch, positive, negative):
    # The generic rules work on chunks of rows; on CPU the result does not depend on the chunk size.
    import collapse.sampling.negatives as negatives

    gen = torch.Generator().manual_seed(5)
    x = torch.nn.functional.normalize(torch.randn(2, 30, 4, generator=gen, dtype=torch.float64), dim=-1)
    D = torch.cdist(x, x)
    labels = torch.randint(0, 5, (2, 30), generator=gen)
    neg = {"hard": GenericHardNegative(), "semihard": GenericSemiHard()}.get(negative, negative)
    whole = Sampler(positive, neg, random_state=3)(D, labels, dim=4)
    monkeypatch.setattr(negatives, "CHUNK_ELEMENTS", 7 * 30)
    chunked = Sampler(positive, neg, random_state=3)(D, labels, dim=4)
    _same_tuples(whole, chunked)
