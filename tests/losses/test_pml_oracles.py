"""Our losses equal pytorch-metric-learning 2.9's (value and gradients), in float64, wherever PML has the loss."""

import pytest
import torch

from collapse.losses import (
    ContrastiveLoss,
    MarginLoss,
    MultiSimilarityLoss,
    TripletMarginLoss,
    make_loss,
)
from collapse.sampling import Sampler

pml_losses = pytest.importorskip("pytorch_metric_learning.losses")
from pytorch_metric_learning import distances as pml_distances  # noqa: E402
from pytorch_metric_learning import miners as pml_miners  # noqa: E402

RTOL, ATOL = 1e-9, 1e-12


def _miner(pos, neg):
    return lambda: pml_miners.BatchEasyHardMiner(pos_strategy=pos, neg_strategy=neg)


# name -> (our loss, PML loss, PML miner or None)
CASES = {
    "triplet all/all": (
        lambda: TripletMarginLoss(margin=0.2, sampler=Sampler("all", "all")),
        lambda: pml_losses.TripletMarginLoss(margin=0.2),
        None,
    ),
    "triplet easy/semihard": (
        lambda: TripletMarginLoss(margin=0.2, sampler=Sampler("easy", "semihard")),
        lambda: pml_losses.TripletMarginLoss(margin=0.2),
        _miner("easy", "semihard"),
    ),
    "triplet easy/hard": (
        lambda: TripletMarginLoss(margin=0.2, sampler=Sampler("easy", "hard")),
        lambda: pml_losses.TripletMarginLoss(margin=0.2),
        _miner("easy", "hard"),
    ),
    "triplet hard/hard": (
        lambda: TripletMarginLoss(margin=0.2, sampler=Sampler("hard", "hard")),
        lambda: pml_losses.TripletMarginLoss(margin=0.2),
        _miner("hard", "hard"),
    ),
    "triplet-sq all/all": (
        lambda: make_loss("triplet-sq", "all", "all"),
        lambda: pml_losses.TripletMarginLoss(margin=0.2, distance=pml_distances.LpDistance(power=2)),
        None,
    ),
    "triplet-sq easy/semihard": (
        lambda: TripletMarginLoss(margin=0.2, distance="sqeuclidean", sampler=Sampler("easy", "semihard")),
        lambda: pml_losses.TripletMarginLoss(margin=0.2, distance=pml_distances.LpDistance(power=2)),
        lambda: pml_miners.BatchEasyHardMiner(distance=pml_distances.LpDistance(power=2)),
    ),
    "make_loss triplet": (lambda: make_loss("triplet"), lambda: pml_losses.TripletMarginLoss(margin=0.2), None),
    "contrastive all/all": (
        lambda: ContrastiveLoss(sampler=Sampler("all", "all")),
        lambda: pml_losses.ContrastiveLoss(),
        None,
    ),
    "make_loss contrastive": (lambda: make_loss("contrastive"), lambda: pml_losses.ContrastiveLoss(), None),
    "contrastive easy/semihard": (
        lambda: ContrastiveLoss(sampler=Sampler("easy", "semihard")),
        lambda: pml_losses.ContrastiveLoss(),
        _miner("easy", "semihard"),
    ),
    "contrastive easy/all": (
        lambda: ContrastiveLoss(pos_margin=0.1, neg_margin=0.9, sampler=Sampler("easy", "all")),
        lambda: pml_losses.ContrastiveLoss(pos_margin=0.1, neg_margin=0.9),
        _miner("easy", "all"),
    ),
    "margin all/all": (
        lambda: MarginLoss(sampler=Sampler("all", "all")),
        lambda: pml_losses.MarginLoss(),
        None,
    ),
    "margin easy/semihard": (
        lambda: MarginLoss(margin=0.1, beta=0.9, sampler=Sampler("easy", "semihard")),
        lambda: pml_losses.MarginLoss(margin=0.1, beta=0.9),
        _miner("easy", "semihard"),
    ),
    "multisimilarity all/all": (
        lambda: MultiSimilarityLoss(sampler=Sampler("all", "all")),
        lambda: pml_losses.MultiSimilarityLoss(),
        None,
    ),
    "make_loss multisimilarity": (lambda: make_loss("multisimilarity"), lambda: pml_losses.MultiSimilarityLoss(), None),
    "multisimilarity easy/all": (
        lambda: MultiSimilarityLoss(alpha=1.5, beta=20.0, base=0.3, sampler=Sampler("easy", "all")),
        lambda: pml_losses.MultiSimilarityLoss(alpha=1.5, beta=20.0, base=0.3),
        _miner("easy", "all"),
    ),
}


def _grads(loss_fn, emb):
    x = emb.clone().requires_grad_()
    value = loss_fn(x)
    value.backward()
    return value.detach(), x.grad


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("seed", range(4))
def test_loss_and_gradient_equal_pml(make_batch, case, seed):
    ours_f, theirs_f, miner_f = CASES[case]
    emb, labels = make_batch(seed, n_classes=4, per_class=(2, 5), dim=6)
    ours, theirs = ours_f(), theirs_f()

    def pml(x):
        return theirs(x, labels, miner_f()(x, labels)) if miner_f is not None else theirs(x, labels)

    v_ours, g_ours = _grads(lambda x: ours(x, labels).loss, emb)
    v_pml, g_pml = _grads(pml, emb)
    assert v_pml > 0
    torch.testing.assert_close(v_ours, v_pml, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(g_ours, g_pml, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("num_classes", [None, 5])
@pytest.mark.parametrize("sampler", [("all", "all"), ("easy", "semihard")])
@pytest.mark.parametrize("seed", range(3))
def test_margin_learned_beta_equals_pml(make_batch, num_classes, sampler, seed):
    emb, labels = make_batch(seed, n_classes=5, per_class=(2, 4), dim=5)
    ours = MarginLoss(learn_beta=True, num_classes=num_classes, nu=0.1, sampler=Sampler(*sampler))
    theirs = pml_losses.MarginLoss(learn_beta=True, num_classes=num_classes, nu=0.1)
    # Distinct betas per class, identical in both.
    betas = torch.linspace(0.7, 1.3, 1 if num_classes is None else num_classes)
    with torch.no_grad():
        ours.beta.copy_(betas.unsqueeze(0))
        theirs.beta.copy_(betas)
    miner = pml_miners.BatchEasyHardMiner("easy", "semihard") if sampler == ("easy", "semihard") else None
    x1, x2 = emb.clone().requires_grad_(), emb.clone().requires_grad_()
    out = ours(x1, labels)
    ref = theirs(x2, labels, miner(x2, labels)) if miner is not None else theirs(x2, labels)
    torch.testing.assert_close(out.loss, ref, rtol=RTOL, atol=ATOL)
    out.loss.backward()
    ref.backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=RTOL, atol=ATOL)
    assert ours.beta.grad is not None
    # beta is a float32 parameter; we gather it before casting, so its gradient accumulates in float32.
    torch.testing.assert_close(ours.beta.grad[0], theirs.beta.grad, rtol=2e-5, atol=1e-6)
    assert float(theirs.beta.grad.abs().sum()) > 0


def test_make_loss_margin_learned_matches_pml(make_batch):
    emb, labels = make_batch(5, n_classes=3, per_class=3, dim=4)
    ours = make_loss("margin-learned", "all", "all", num_classes=3)
    theirs = pml_losses.MarginLoss(learn_beta=True, num_classes=3)
    assert isinstance(ours.beta, torch.nn.Parameter) and ours.beta.shape == (1, 3)
    torch.testing.assert_close(ours(emb, labels).loss, theirs(emb, labels), rtol=RTOL, atol=ATOL)


def test_margin_single_learned_beta_regulariser_is_computed_in_embedding_dtype(make_batch):
    emb, labels = make_batch(0, n_classes=5, per_class=(2, 4), dim=5)
    ours = MarginLoss(learn_beta=True, nu=0.1, sampler=Sampler("all", "all"))
    theirs = pml_losses.MarginLoss(learn_beta=True, nu=0.1)
    with torch.no_grad():
        ours.beta.fill_(0.7)
        theirs.beta.fill_(0.7)
    torch.testing.assert_close(ours(emb, labels).loss, theirs(emb, labels), rtol=1e-12, atol=1e-14)
