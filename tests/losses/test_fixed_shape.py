"""The fixed-shape loss step (masks over every anchor, no data-dependent shapes) equals the listed-tuple path, and
compiles whole: one graph, zero graph breaks, same values and gradients."""

import pytest
import torch

from collapse.bench.compiled_case import explain_breaks
from collapse.losses import make_loss
from collapse.sampling.selection import AnchorSelection

SAMPLERS = [("easy", "semihard"), ("easy", "hard"), ("easy", "all"), ("hard", "semihard"), ("easy", "distance"),
            ("random", "random")]
LOSSES = ["triplet", "triplet-sq", "margin", "multisimilarity", "nca", "contrastive"]


def _batch(G=2, B=24, d=5, seed=0, classes=6):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(G, B, d, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, classes, (G, B), generator=gen)
    labels[:, 0] = classes  # a singleton: an anchor without a positive
    return x, labels


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("positive,negative", SAMPLERS)
def test_fixed_shape_terms_equal_the_listed_terms(name, positive, negative):
    x, labels = _batch()
    loss = make_loss(name, positive, negative)
    dist_x = x.clone().requires_grad_()
    dist = loss.distance(dist_x)
    selection = loss.sampler.select(dist.detach(), labels, dim=x.shape[-1])
    assert isinstance(selection, AnchorSelection) and selection.positive.shape == labels.shape
    listed = selection.to_tuples()
    values = loss.distance.similarity(dist) if loss.matrix_is_similarity else dist
    fixed = loss._reduce(values, selection, labels)
    index = loss._reduce(dist, listed, labels)
    torch.testing.assert_close(fixed.per_group, index.per_group, rtol=1e-9, atol=1e-12)
    g_fixed = torch.autograd.grad(fixed.loss, dist_x, retain_graph=True)[0]
    g_index = torch.autograd.grad(index.loss, dist_x)[0]
    torch.testing.assert_close(g_fixed, g_index, rtol=1e-7, atol=1e-10)
    # The listed view of the fixed-shape terms is the index path's terms, tuple for tuple.
    for key, t in index.terms.items():
        got = fixed.terms[key]
        assert [i.tolist() for i in got.indices] == [i.tolist() for i in t.indices], key
        torch.testing.assert_close(got.losses, t.losses, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", ["triplet", "margin", "multisimilarity"])
def test_forward_keeps_its_selection_unlisted_until_read(name):
    x, labels = _batch(G=1, B=16)
    out = make_loss(name, "easy")(x[0].float().requires_grad_(), labels[0])
    assert out.selection is not None and all(t.mask is not None for t in out.raw_terms.values())
    singletons = int((torch.bincount(labels[0])[labels[0]] == 1).sum())
    assert singletons >= 1 and out.tuples.anchors_without_positive == singletons  # listed on first read


CASES = [("triplet", "easy", "semihard"), ("margin", "easy", "semihard"), ("margin", "easy", "distance"),
         ("multisimilarity", "easy", "all")]


@pytest.mark.parametrize("name,positive,negative", CASES)
def test_the_step_compiles_without_graph_breaks(name, positive, negative):
    torch._dynamo.reset()
    x, labels = _batch(G=1, B=32, d=8)
    graphs, breaks, reasons = explain_breaks(make_loss(name, positive, negative), x[0].float(), labels[0])
    assert (graphs, breaks) == (1, 0), reasons


@pytest.mark.parametrize("name,positive,negative", [c for c in CASES if c[2] != "distance"])
def test_compiled_forward_and_backward_equal_eager(name, positive, negative):
    # aot_eager traces forward and backward with AOTAutograd (the joint graph inductor would compile) and runs them.
    torch._dynamo.reset()
    x, labels = _batch(G=1, B=32, d=8)
    x, y = x[0], labels[0]
    loss = make_loss(name, positive, negative)
    compiled = torch.compile(lambda e: loss(e, y).loss, backend="aot_eager", fullgraph=True, dynamic=False)
    e0, e1 = x.clone().requires_grad_(), x.clone().requires_grad_()
    v0, v1 = loss(e0, y).loss, compiled(e1)
    v0.backward()
    v1.backward()
    torch.testing.assert_close(v1, v0, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(e1.grad, e0.grad, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("distance", ["euclidean", "sqeuclidean", "cosine"])
@pytest.mark.parametrize("positive,negative", [("easy", "semihard"), ("easy", "hard"), ("hard", "semihard"),
                                               ("easy", "random"), ("random", "random")])
def test_order_only_rules_select_on_the_order_matrix_as_on_the_distances(distance, positive, negative):
    """The loss step hands order-only rules :meth:`Distance.order_matrix`; their tuples are those of the distance
    matrix (random float64 rows: no rounding ties), and a sampler that reads values gets the distances."""
    from collapse.losses.triplet import TripletMarginLoss
    from collapse.sampling import Sampler

    x, labels = _batch(B=40, classes=5)
    sampler = Sampler(positive, negative, random_state=0)
    assert sampler.order_only
    loss = TripletMarginLoss(sampler=sampler, distance=distance)
    got = loss(x, labels).tuples.triplets
    ref = Sampler(positive, negative, random_state=0)(loss.distance(x), labels, dim=x.shape[-1])
    assert [t.tolist() for t in (got.g, got.a, got.p, got.n)] == [
        t.tolist() for t in (ref.triplets.g, ref.triplets.a, ref.triplets.p, ref.triplets.n)
    ]
    assert not Sampler("easy", "semihard", exclude_duplicates=0.1).order_only
    assert not Sampler("easy", "distance").order_only
