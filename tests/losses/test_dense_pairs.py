"""The dense all-pairs step (the all x all rule as masks or label segments over the matrix, for losses with
``all_pairs_terms``: contrastive, multi-similarity, SupCon) equals the listed-pair path: values, listed terms,
tuples and gradients; and the rule's edge cases behave as the listed path's."""

import warnings

import pytest
import torch

from collapse.losses import make_loss
from collapse.sampling import Sampler


def _batch(G, B=24, d=5, seed=0, classes=6):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(G, B, d, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, classes, (G, B), generator=gen)
    labels[:, 0] = classes  # a singleton: an anchor without a positive, whose negatives the rule does not list
    return x, labels


@pytest.mark.parametrize("G", [1, 3])
@pytest.mark.parametrize("distance", ["euclidean", "sqeuclidean", "cosine"])
@pytest.mark.parametrize("reducer", ["avg_nonzero", "mean", "sum"])
def test_dense_contrastive_equals_the_listed_pairs(G, distance, reducer):
    x, labels = _batch(G)
    loss = make_loss("contrastive", distance=distance, reducer=reducer)
    assert loss._dense_pairs(loss.sampler)
    e1, e2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    dense = loss(e1, labels)
    listed = loss.from_distances(loss.distance(e2), labels, dim=x.shape[-1])  # the index path
    torch.testing.assert_close(dense.per_group, listed.per_group, rtol=1e-12, atol=1e-14)
    dense.loss.backward()
    listed.loss.backward()
    torch.testing.assert_close(e1.grad, e2.grad, rtol=1e-12, atol=1e-14)
    assert set(dense.terms) == set(listed.terms) == {"pos_loss", "neg_loss"}
    for name, t in dense.terms.items():
        ref = listed.terms[name]
        assert t.kind == ref.kind and torch.equal(t.group, ref.group)
        assert all(torch.equal(i, j) for i, j in zip(t.indices, ref.indices))
        torch.testing.assert_close(t.losses, ref.losses)
    assert torch.equal(dense.tuples.negative_mask(), listed.tuples.negative_mask())
    assert dense.tuples.anchors_without_positive == listed.tuples.anchors_without_positive >= G


def test_dense_path_is_taken_only_for_the_plain_all_x_all_rule():
    loss = make_loss("contrastive")
    assert loss._dense_pairs(Sampler("all", "all"))
    assert not loss._dense_pairs(Sampler("all", "all", exclude_duplicates=0.0))
    assert not loss._dense_pairs(Sampler("all", "hard"))
    assert not loss._dense_pairs(Sampler("easy", "all"))
    assert not make_loss("triplet")._dense_pairs(Sampler("all", "all"))  # triplets are not pairs
    assert make_loss("multisimilarity")._dense_pairs(Sampler("all", "all"))
    assert make_loss("supcon")._dense_pairs(Sampler("all", "all"))
    # SupCon's other forms (weighted positives, positives out of the denominator) stay on the listed path.
    assert not make_loss("supcon-weighted")._dense_pairs(Sampler("all", "all"))
    assert not make_loss("supcon", positives_in_denominator=False)._dense_pairs(Sampler("all", "all"))


def test_no_positive_in_the_batch_warns_and_keeps_the_graph():
    x = torch.randn(6, 4, requires_grad=True)
    with pytest.warns(RuntimeWarning, match="no anchor in the batch has a valid positive"):
        out = make_loss("contrastive")(x, torch.arange(6))
    assert float(out.loss) == 0.0
    out.loss.backward()
    assert torch.equal(x.grad, torch.zeros_like(x))
    assert len(out.tuples.positive_pairs) == 0


def test_a_batch_with_positives_does_not_warn():
    x = torch.randn(8, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_loss("contrastive")(x, torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]))


@pytest.mark.parametrize("G", [1, 3])
@pytest.mark.parametrize("segments", [True, False])
@pytest.mark.parametrize("name", ["multisimilarity", "supcon"])
def test_dense_anchor_losses_equal_the_listed_anchors(name, G, segments, monkeypatch):
    """Both forms of the per-anchor terms (label segments on eager CPU steps, masks elsewhere)."""
    from collapse.sampling.all_pairs import AllPairsSelection

    if not segments:
        monkeypatch.setattr(AllPairsSelection, "segments", property(lambda self: None))
    x, labels = _batch(G)
    loss = make_loss(name)
    e1, e2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    dense = loss(e1, labels)
    listed = loss.from_distances(loss.distance(e2), labels, dim=x.shape[-1])
    torch.testing.assert_close(dense.per_group, listed.per_group, rtol=1e-12, atol=1e-14)
    dense.loss.backward()
    listed.loss.backward()
    torch.testing.assert_close(e1.grad, e2.grad, rtol=1e-10, atol=1e-13)
    (t,), (ref,) = dense.terms.values(), listed.terms.values()
    assert t.kind == ref.kind == "anchor" and torch.equal(t.group, ref.group)
    assert torch.equal(t.indices[0], ref.indices[0])
    torch.testing.assert_close(t.losses, ref.losses, rtol=1e-12, atol=1e-14)
    assert len(dense.tuples.positive_pairs) == len(listed.tuples.positive_pairs)


@pytest.mark.parametrize("name", ["contrastive", "multisimilarity", "supcon"])
def test_one_sample_and_one_pair_batches(name):
    for labels in ([0], [0, 0], [0, 1]):
        x = torch.randn(len(labels), 3, dtype=torch.float64, requires_grad=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            out = make_loss(name)(x, torch.tensor(labels))
        out.loss.backward()
        assert torch.isfinite(out.loss) and torch.isfinite(x.grad).all()


def _spy_pruned(monkeypatch):
    """Record whether each contrastive step took the pruned path (True) or declined it (False)."""
    from collapse.losses.contrastive import ContrastiveLoss

    taken, original = [], ContrastiveLoss.pruned_pairs_terms

    def spy(self, *args):
        out = original(self, *args)
        taken.append(out is not None)
        return out

    monkeypatch.setattr(ContrastiveLoss, "pruned_pairs_terms", spy)
    return taken


def _close_negatives(G, B=40, d=16, seed=1):
    """High-dimensional rows (other labels far apart) with a few planted negative pairs inside the margin, and a
    singleton anchor (no positive: its negatives are not the rule's)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(G, B, d, generator=gen, dtype=torch.float64)
    labels = (torch.arange(B) // 4).repeat(G, 1)
    labels[:, -1] = B  # a singleton
    x[:, 5] = x[:, 9] + 0.2 * torch.randn(G, d, generator=gen, dtype=torch.float64)  # labels 1 and 2
    x[:, 12] = x[:, 30] + 0.1 * torch.randn(G, d, generator=gen, dtype=torch.float64)
    x[:, -1] = x[:, 0]  # the singleton sits on another label's sample
    return x, labels


@pytest.mark.parametrize("G", [1, 3])
@pytest.mark.parametrize("distance,normalize,margin", [
    ("euclidean", True, 1.0), ("sqeuclidean", True, 1.0), ("cosine", True, 0.4), ("euclidean", False, 3.0),
])
@pytest.mark.parametrize("reducer", ["avg_nonzero", "sum", "divisor"])
def test_pruned_contrastive_equals_the_listed_pairs(G, distance, normalize, margin, reducer, monkeypatch):
    """Reducers that skip zero terms get only the negative pairs inside the margin; value, gradient and the full
    listing of terms are the listed path's."""
    from collapse.distances import get_distance

    taken = _spy_pruned(monkeypatch)
    x, labels = _close_negatives(G)
    dist = get_distance(distance) if normalize else type(get_distance(distance))(normalize=False)
    loss = make_loss("contrastive", distance=dist, reducer=reducer, neg_margin=margin)
    e1, e2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    dense = loss(e1, labels)
    assert taken == [True]
    held = dense.raw_terms["neg_loss"]
    assert 0 < held.losses.numel() < 0.125 * G * 40 * 40 and bool((held.losses > 0).any())
    listed = loss.from_distances(loss.distance(e2), labels, dim=x.shape[-1])
    torch.testing.assert_close(dense.per_group, listed.per_group, rtol=1e-12, atol=1e-14)
    dense.loss.backward()
    listed.loss.backward()
    torch.testing.assert_close(e1.grad, e2.grad, rtol=1e-10, atol=1e-13)
    # The held pairs are the listed path's non-zero negative terms (and perhaps a few zeros at the margin).
    ref = listed.terms["neg_loss"]
    nonzero = ref.losses > 0
    held_pairs = set(zip(held.group.tolist(), held.indices[0].tolist(), held.indices[1].tolist()))
    assert set(zip(ref.group[nonzero].tolist(), *(i[nonzero].tolist() for i in ref.indices))) <= held_pairs
    for name, t in dense.terms.items():
        r = listed.terms[name]
        assert len(t) == len(r) and t.kind == r.kind and torch.equal(t.group, r.group)
        assert all(torch.equal(i, j) for i, j in zip(t.indices, r.indices))
        torch.testing.assert_close(t.losses, r.losses, rtol=1e-12, atol=1e-14)
    assert torch.equal(dense.tuples.negative_mask(), listed.tuples.negative_mask())


def test_no_negative_inside_the_margin_keeps_only_the_positive_terms(monkeypatch):
    taken = _spy_pruned(monkeypatch)
    x = torch.eye(8, dtype=torch.float64) * 5.0  # every pair sqrt(2) apart on the unit sphere
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    e = x.clone().requires_grad_()
    out = make_loss("contrastive")(e, labels)
    assert taken == [True] and out.raw_terms["neg_loss"].losses.numel() == 0
    assert len(out.terms["neg_loss"]) == 48 and float(out.terms["neg_loss"].losses.max()) == 0.0
    out.loss.backward()
    ref = make_loss("contrastive")
    listed = ref.from_distances(ref.distance(x).unsqueeze(0), labels.unsqueeze(0), dim=8)
    torch.testing.assert_close(out.loss, listed.loss)


def test_pruning_is_declined_where_it_would_not_pay_or_not_hold(monkeypatch):
    taken = _spy_pruned(monkeypatch)
    x, labels = _close_negatives(1)
    make_loss("contrastive", neg_margin=10.0)(x, labels)  # every negative inside the margin: the dense step
    assert taken == [False]
    taken.clear()
    make_loss("contrastive", reducer="mean")(x, labels)  # the mean counts the zero terms: not offered
    assert taken == []
    from collapse.distances import EuclideanDistance

    class Manhattan(EuclideanDistance):  # no radius search of its own: the dense step, and the right loss
        def _pairwise(self, x, y, out=None):
            return (x.unsqueeze(-2) - y.unsqueeze(-3)).abs().sum(-1)

    before = len(taken)
    manhattan = make_loss("contrastive", distance=Manhattan())
    e1 = x.clone().requires_grad_()
    out = manhattan(e1, labels)
    assert len(taken) == before  # not offered
    ref = manhattan.from_distances(manhattan.distance(x), labels, dim=x.shape[-1])
    torch.testing.assert_close(out.per_group, ref.per_group, rtol=1e-12, atol=1e-14)
    two_classes = (torch.arange(40) // 20).unsqueeze(0)  # 19 positives per anchor: the matrix is cheaper
    e1, e2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    loss = make_loss("contrastive")
    out = loss(e1, two_classes)
    assert taken == [False]
    listed = loss.from_distances(loss.distance(e2), two_classes, dim=x.shape[-1])
    torch.testing.assert_close(out.per_group, listed.per_group, rtol=1e-12, atol=1e-14)


def test_pruned_terms_hold_flat_terms_and_list_the_full_rule_once():
    from collapse.losses.terms import PrunedTerms, Terms

    calls = []
    full = Terms(torch.tensor([0.0, 0.5, 0.0]), torch.zeros(3, dtype=torch.long),
                 (torch.tensor([0, 0, 1]), torch.tensor([1, 2, 2])), "neg_pair")  # fmt: skip
    held = Terms(torch.tensor([0.5]), torch.zeros(1, dtype=torch.long), (torch.tensor([0]), torch.tensor([2])),
                 "neg_pair")  # fmt: skip
    pruned = PrunedTerms(held, lambda: calls.append(1) or full)
    assert pruned.losses.numel() == 1 and len(pruned) == 3 and pruned.compact() is full and calls == [1]
    masked = Terms(torch.ones(2, 2), torch.zeros(2, 2, dtype=torch.long), (torch.zeros(2, 2),), "anchor",
                   mask=torch.ones(2, 2, dtype=torch.bool))  # fmt: skip
    with pytest.raises(ValueError, match="flat"):
        PrunedTerms(masked, lambda: full)
