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
