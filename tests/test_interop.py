"""collapse.interop: EasyPositiveMiner plugs easy positive sampling into pytorch-metric-learning losses."""

import sys

import pytest
import torch

import collapse.interop as interop
from collapse.distances import CosineDistance, EuclideanDistance
from collapse.losses import ContrastiveLoss, MultiSimilarityLoss, TripletMarginLoss
from collapse.sampling import Sampler

pml_losses = pytest.importorskip("pytorch_metric_learning.losses")
from pytorch_metric_learning import distances as pml_distances  # noqa: E402
from pytorch_metric_learning import miners as pml_miners  # noqa: E402

RTOL, ATOL = 1e-9, 1e-12


def _both(ours, theirs, emb, labels):
    x1, x2 = emb.clone().requires_grad_(), emb.clone().requires_grad_()
    v1, v2 = ours(x1), theirs(x2)
    v1.backward()
    v2.backward()
    assert float(v2.detach()) > 0
    torch.testing.assert_close(v1, v2, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(x1.grad, x2.grad, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("seed", range(4))
def test_pml_triplet_with_miner_equals_ours(make_batch, seed):
    emb, labels = make_batch(seed, n_classes=4, per_class=(2, 5), dim=6)
    ours = TripletMarginLoss(margin=0.2, sampler=Sampler("easy", "semihard"))
    theirs = pml_losses.TripletMarginLoss(margin=0.2)
    miner = interop.EasyPositiveMiner(negative="semihard")
    _both(lambda x: ours(x, labels).loss, lambda x: theirs(x, labels, miner(x, labels)), emb, labels)


@pytest.mark.parametrize("negative", ["semihard", "all", "hard"])
@pytest.mark.parametrize("seed", range(3))
def test_pml_contrastive_with_miner_equals_ours(make_batch, negative, seed):
    emb, labels = make_batch(seed, n_classes=4, per_class=(2, 5), dim=6)
    ours = ContrastiveLoss(sampler=Sampler("easy", negative))
    theirs = pml_losses.ContrastiveLoss()
    miner = interop.EasyPositiveMiner(negative=negative)
    _both(lambda x: ours(x, labels).loss, lambda x: theirs(x, labels, miner(x, labels)), emb, labels)


@pytest.mark.parametrize("seed", range(3))
def test_pml_multisimilarity_with_cosine_miner_equals_ours(make_batch, seed):
    emb, labels = make_batch(seed, n_classes=4, per_class=(2, 4), dim=6)
    ours = MultiSimilarityLoss(sampler=Sampler("easy", "all"))
    theirs = pml_losses.MultiSimilarityLoss()
    miner = interop.EasyPositiveMiner(distance=pml_distances.CosineSimilarity())  # an inverted PML distance
    _both(lambda x: ours(x, labels).loss, lambda x: theirs(x, labels, miner(x, labels)), emb, labels)


@pytest.mark.parametrize("negative", ["semihard", "hard"])
@pytest.mark.parametrize("seed", range(3))
def test_miner_equals_batch_easy_hard_miner(make_batch, negative, seed):
    emb, labels = make_batch(seed, n_classes=5, per_class=(2, 4), dim=5)
    a, p, a2, n = interop.EasyPositiveMiner(negative=negative)(emb, labels)
    assert torch.equal(a, a2)
    ref = pml_miners.BatchEasyHardMiner(pos_strategy="easy", neg_strategy=negative)(emb, labels)
    assert sorted(zip(a.tolist(), p.tolist(), n.tolist())) == sorted(
        zip(ref[0].tolist(), ref[1].tolist(), ref[3].tolist())
    )


def test_default_miner_returns_easy_pairs_and_all_negatives(make_batch):
    emb, labels = make_batch(1, n_classes=3, per_class=(2, 4), dim=4)
    a1, p, a2, n = interop.EasyPositiveMiner()(emb, labels)
    D = torch.cdist(*(2 * [torch.nn.functional.normalize(emb, dim=1)]))
    lab = labels.tolist()
    B = len(lab)
    assert sorted(a1.tolist()) == list(range(B))
    for a, b in zip(a1.tolist(), p.tolist()):
        same = [j for j in range(B) if j != a and lab[j] == lab[a]]
        assert b == min(same, key=lambda j: float(D[a, j]))
    assert sorted(zip(a2.tolist(), n.tolist())) == [(i, j) for i in range(B) for j in range(B) if lab[i] != lab[j]]


def test_miner_with_cosine_similarity_matches_our_cosine_sampler(make_batch):
    emb, labels = make_batch(2, n_classes=4, per_class=(2, 4), dim=5)
    got = interop.EasyPositiveMiner("hard", distance=pml_distances.CosineSimilarity())(emb, labels)
    ref = interop.as_pml_indices(Sampler("easy", "hard")(CosineDistance()(emb), labels, dim=5))
    assert all(torch.equal(x, y) for x, y in zip(got, ref))


def test_distance_weighted_miner_is_seeded_and_valid(make_batch):
    emb, labels = make_batch(3, n_classes=3, per_class=4, dim=4)
    a, p, _, n = interop.EasyPositiveMiner("distance", random_state=4)(emb, labels)
    _, _, _, n2 = interop.EasyPositiveMiner("distance", random_state=4)(emb, labels)
    assert torch.equal(n, n2) and len(n) > 0
    D = EuclideanDistance()(emb)
    assert bool((labels[a] != labels[n]).all()) and bool((D[a, n] < 1.4).all())
    with pytest.raises(ValueError, match="distance"):
        interop.EasyPositiveMiner("distance", distance=pml_distances.CosineSimilarity())
    with pytest.raises(ValueError, match="distance"):
        interop.EasyPositiveMiner("distance", distance=pml_distances.LpDistance(power=2))


def test_ref_emb_is_rejected(make_batch):
    emb, labels = make_batch(0)
    with pytest.raises(ValueError, match="ref_emb"):
        interop.EasyPositiveMiner()(emb, labels, emb.clone(), labels)


@pytest.mark.parametrize("negative", ["all", "random", "hard", "semihard", "distance"])
def test_miner_on_empty_batch_yields_no_tuple_and_pml_loss_zero(negative):
    emb = torch.zeros(0, 4, requires_grad=True)
    labels = torch.zeros(0, dtype=torch.long)
    indices = interop.EasyPositiveMiner(negative)(emb, labels)
    assert len(indices) == 4 and all(i.numel() == 0 and i.dtype == torch.long for i in indices)
    loss = pml_losses.TripletMarginLoss()(emb, labels, indices)
    assert float(loss) == 0.0


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_miner_refuses_non_finite_embeddings(make_batch, bad):
    emb, labels = make_batch(0)
    emb[1, 2] = bad
    with pytest.raises(ValueError, match="NaN or inf"):
        interop.EasyPositiveMiner("semihard")(emb, labels)


def _one_pair_batch():
    """labels [1, 1, 0, 0]: with easy positives and semi-hard negatives exactly one triplet is mined here."""
    emb = torch.randn(4, 8, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    return emb, torch.tensor([1, 1, 0, 0])


def test_single_mined_pair_contrastive_divergence_from_pml_is_pinned():
    # Our choice (documented in collapse.losses.contrastive): one mined pair is a pair, its terms count.
    emb, labels = _one_pair_batch()
    ours = ContrastiveLoss(sampler=Sampler("easy", "semihard"))(emb, labels)
    (a,), (p,), (n,) = (t.tolist() for t in (ours.tuples.triplets.a, ours.tuples.triplets.p, ours.tuples.triplets.n))
    d = EuclideanDistance()(emb)
    expected = float(d[a, p]) + max(0.0, 1.0 - float(d[a, n]))  # pos_margin 0, neg_margin 1, avg over non-zero
    assert float(ours.loss) == pytest.approx(expected, rel=1e-12) and expected > 1.0
    # The miner hands PML exactly that pair ...
    miner_idx = interop.EasyPositiveMiner("semihard")(emb, labels)
    assert [i.tolist() for i in miner_idx] == [[a], [p], [a], [n]]
    # ... and PML 2.9.0's GenericPairLoss returns 0 when every index tuple has at most one entry; with two pairs
    # (a second batch row) it agrees with ours again.
    assert float(pml_losses.ContrastiveLoss()(emb, labels, miner_idx)) == 0.0
    two = (torch.tensor([a, p]), torch.tensor([p, a]), torch.tensor([a, a]), torch.tensor([n, n]))
    assert float(pml_losses.ContrastiveLoss()(emb, labels, two)) == pytest.approx(expected, rel=1e-9)


def test_as_pml_indices():
    D = EuclideanDistance()(torch.randn(2, 6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    labels = torch.tensor([[0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 2, 2]])
    with pytest.raises(ValueError, match="single group"):
        interop.as_pml_indices(Sampler("easy", "hard")(D, labels, dim=3))
    tuples = Sampler("all", "hard")(D[0], labels[0], dim=3)
    a1, p, a2, n = interop.as_pml_indices(tuples)
    t = tuples.triplets
    assert torch.equal(a1, t.a) and torch.equal(p, t.p) and torch.equal(a2, t.a) and torch.equal(n, t.n)
    a, p3, n3 = interop.as_pml_indices(tuples, triplets=True)
    assert torch.equal(a, t.a) and torch.equal(p3, t.p) and torch.equal(n3, t.n)
    tuples = Sampler("easy", "all")(D[0], labels[0], dim=3)
    a1, p, a2, n = interop.as_pml_indices(tuples)
    assert len(a1) == 5 and len(a2) == sum(int((labels[0] != labels[0, i]).sum()) for i in range(5))


def test_missing_pml_raises_import_error_with_pip_command(monkeypatch):
    monkeypatch.delitem(interop.__dict__, "EasyPositiveMiner", raising=False)
    monkeypatch.setitem(sys.modules, "pytorch_metric_learning.miners", None)
    with pytest.raises(ImportError, match="pip install pytorch-metric-learning"):
        interop.EasyPositiveMiner  # noqa: B018
    with pytest.raises(AttributeError):
        interop.NoSuchThing  # noqa: B018
