"""The fast path of MetricLoss.forward (selection on a no-grad matrix, terms from pair distances with a closed-form
backward) equals the dense path (``from_distances`` on the matrix with autograd): same tuples, values, gradients."""

import pytest
import torch

from collapse import _buffers
from collapse.losses import (
    ContrastiveLoss,
    EasyPositiveNCALoss,
    MarginLoss,
    MultiSimilarityLoss,
    TripletMarginLoss,
    make_loss,
)
from collapse.sampling import Sampler

CASES = {
    "triplet easy/semihard": lambda: TripletMarginLoss(sampler=Sampler("easy", "semihard")),
    "triplet hard/hard sq": lambda: TripletMarginLoss(distance="sqeuclidean", sampler=Sampler("hard", "hard")),
    "triplet all/semihard": lambda: TripletMarginLoss(sampler=Sampler("all", "semihard")),
    "triplet random/random": lambda: TripletMarginLoss(sampler=Sampler("random", "random", random_state=3)),
    "margin easy/distance": lambda: MarginLoss(sampler=Sampler("easy", "distance", random_state=1)),
    "margin-learned easy/hard": lambda: make_loss(
        "margin-learned", "easy", "hard", num_classes=5, num_groups=3, nu=0.1
    ),
    "contrastive easy/hard": lambda: ContrastiveLoss(sampler=Sampler("easy", "hard")),
    "nca easy/hard": lambda: EasyPositiveNCALoss(sampler=Sampler("easy", "hard")),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("seed", range(2))
def test_fast_path_equals_dense_path(make_batch, case, seed):
    assert CASES[case]().pairwise_terms
    emb, labels = make_batch(seed, n_classes=5, per_class=(2, 5), dim=6, groups=3)
    fast, dense = CASES[case](), CASES[case]()
    dense.load_state_dict(fast.state_dict())
    x1, x2 = emb.clone().requires_grad_(), emb.clone().requires_grad_()
    out = fast(x1, labels)
    ref = dense.from_distances(dense.distance(x2), labels, dim=emb.shape[-1])
    for name in ("positive_pairs", "triplets"):
        got, want = getattr(out.tuples, name), getattr(ref.tuples, name)
        assert all(torch.equal(a, b) for a, b in zip(vars(got).values(), vars(want).values())), name
    torch.testing.assert_close(out.per_group, ref.per_group, rtol=1e-10, atol=1e-12)
    out.loss.backward()
    ref.loss.backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-9, atol=1e-12)
    for p1, p2 in zip(fast.parameters(), dense.parameters()):
        torch.testing.assert_close(p1.grad, p2.grad, rtol=1e-9, atol=1e-12)


def test_dense_losses_keep_the_matrix_path():
    assert not MultiSimilarityLoss().pairwise_terms
    # All negatives: no per-pair tuples, so the fast path is not taken even for a pairwise loss.
    emb = torch.randn(12, 4, dtype=torch.float64)
    labels = torch.arange(12) % 3
    out = TripletMarginLoss(sampler=Sampler("easy", "all"))(emb, labels)
    assert not out.tuples.per_positive_negatives and len(out.tuples.triplets) > 0



def test_tied_embeddings_are_at_distance_zero_on_the_fast_path():
    # Two samples of one mode are bitwise equal: the pair distance is exactly 0 (the matrix would give a residue).
    emb = torch.tensor([[0.6, 0.8], [0.6, 0.8], [0.0, 1.0], [1.0, 0.0]], dtype=torch.float32, requires_grad=True)
    loss = MarginLoss(margin=0.2, beta=0.1, sampler=Sampler("easy", "hard"))
    out = loss(emb, torch.tensor([0, 0, 1, 1]))
    pos = out.terms["pos_loss"]
    # pos_loss = relu(D_ap - beta + margin) = relu(0 - 0.1 + 0.2) for anchors 0 and 1.
    assert pos.losses[:2].tolist() == pytest.approx([0.1, 0.1], abs=1e-7)
    out.loss.backward()
    assert bool(torch.isfinite(emb.grad).all())


@pytest.mark.parametrize("name", ["euclidean", "sqeuclidean", "cosine"])
def test_matrix_into_a_buffer_is_bitwise_the_matrix(name):
    from collapse.distances import get_distance

    dist = get_distance(name)
    x = torch.randn(2, 9, 5, generator=torch.Generator().manual_seed(0))
    ref = dist(x)
    buf = torch.full((2, 9, 9), float("nan"))
    with torch.no_grad():
        out = dist(x, out=buf)
    assert out.data_ptr() == buf.data_ptr() and torch.equal(out, ref)
    with pytest.raises(ValueError, match="without autograd"):
        dist(x.clone().requires_grad_(), out=buf)


def test_the_selection_buffer_is_reused_and_changes_nothing(make_batch):
    emb, labels = make_batch(4, n_classes=4, per_class=4, dim=5)
    loss = TripletMarginLoss(sampler=Sampler("easy", "semihard"))
    first = loss(emb, labels)
    buf = getattr(_buffers._kept, "selection-matrix")
    second = loss(emb + 0.0, labels)
    assert getattr(_buffers._kept, "selection-matrix") is buf
    assert torch.equal(first.loss, second.loss)
    fresh = TripletMarginLoss(sampler=Sampler("easy", "semihard"))(emb, labels)
    assert torch.equal(first.loss, fresh.loss)


def test_a_sampler_subclass_with_the_old_call_signature_still_works(make_batch):
    class Logging(Sampler):
        seen = []

        def __call__(self, dist, labels, *, dim, warn=True):  # no overwrite keyword
            self.seen.append(dist.clone())
            return super().__call__(dist, labels, dim=dim, warn=warn)

    emb, labels = make_batch(1, n_classes=3, per_class=3, dim=4)
    sampler = Logging("easy", "semihard")
    out = TripletMarginLoss()(emb, labels, sampler=sampler)
    ref = TripletMarginLoss(sampler=Sampler("easy", "semihard"))(emb, labels)
    assert torch.equal(out.loss, ref.loss) and len(sampler.seen) == 1
