"""The rival losses (SupCon, SoftTriple, sub-centre ArcFace) equal pytorch-metric-learning 2.9's, value and
gradients, in float64 on random batches; L_spread and the SoftTriple centre regulariser equal naive loops."""

import math

import pytest
import torch

from collapse.losses import SoftTripleLoss, SpreadLoss, SubCenterArcFaceLoss, SupConLoss, make_loss
from collapse.sampling import Sampler

pml_losses = pytest.importorskip("pytorch_metric_learning.losses")
from pytorch_metric_learning import miners as pml_miners  # noqa: E402

RTOL, ATOL = 1e-9, 1e-12

#: The largest absolute differences seen by the tests in this module (printed with ``-s``; quoted in reports).
MAX_ERR: dict[str, float] = {}


def _record(name: str, a: torch.Tensor, b: torch.Tensor) -> None:
    MAX_ERR[name] = max(MAX_ERR.get(name, 0.0), float((a.detach() - b.detach()).abs().max()))


def _value_and_grad(fn, emb):
    x = emb.clone().requires_grad_()
    value = fn(x)
    value.backward()
    return value.detach(), x.grad


SUPCON_CASES = {
    "supcon all/all": (lambda: SupConLoss(sampler=Sampler("all", "all")), lambda: pml_losses.SupConLoss(), None),
    "make_loss supcon": (lambda: make_loss("supcon"), lambda: pml_losses.SupConLoss(), None),
    "supcon tau=0.5 all/all": (
        lambda: SupConLoss(temperature=0.5, sampler=Sampler("all", "all")),
        lambda: pml_losses.SupConLoss(temperature=0.5),
        None,
    ),
    # EPS: the nearest same-label sample is the only positive; PML builds the denominator from the mined pairs.
    "supcon easy/all": (
        lambda: SupConLoss(sampler=Sampler("easy", "all")),
        lambda: pml_losses.SupConLoss(),
        lambda: pml_miners.BatchEasyHardMiner(pos_strategy="easy", neg_strategy="all"),
    ),
    "supcon hard/all": (
        lambda: SupConLoss(sampler=Sampler("hard", "all")),
        lambda: pml_losses.SupConLoss(),
        lambda: pml_miners.BatchEasyHardMiner(pos_strategy="hard", neg_strategy="all"),
    ),
}


@pytest.mark.parametrize("case", list(SUPCON_CASES))
@pytest.mark.parametrize("seed", range(4))
def test_supcon_equals_pml(make_batch, case, seed):
    ours_f, theirs_f, miner_f = SUPCON_CASES[case]
    emb, labels = make_batch(seed, n_classes=4, per_class=(2, 5), dim=6)
    ours, theirs = ours_f(), theirs_f()

    def pml(x):
        return theirs(x, labels, miner_f()(x, labels)) if miner_f is not None else theirs(x, labels)

    v_ours, g_ours = _value_and_grad(lambda x: ours(x, labels).loss, emb)
    v_pml, g_pml = _value_and_grad(pml, emb)
    assert v_pml > 0
    torch.testing.assert_close(v_ours, v_pml, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(g_ours, g_pml, rtol=RTOL, atol=ATOL)
    _record("supcon value", v_ours, v_pml)
    _record("supcon grad", g_ours, g_pml)


def _copy_proxies(ours, pml_weight: torch.Tensor) -> None:
    with torch.no_grad():
        pml_weight.copy_(ours.proxies[0].T)


@pytest.mark.parametrize("K", [1, 3])
@pytest.mark.parametrize("seed", range(4))
def test_softtriple_equals_pml(make_batch, K, seed):
    emb, labels = make_batch(seed, n_classes=4, per_class=(2, 5), dim=6)
    ours = SoftTripleLoss(4, 6, centers_per_class=K, random_state=seed).double()
    theirs = pml_losses.SoftTripleLoss(num_classes=4, embedding_size=6, centers_per_class=K).double()
    _copy_proxies(ours, theirs.fc)
    x1, x2 = emb.clone().requires_grad_(), emb.clone().requires_grad_()
    v_ours, v_pml = ours(x1, labels).loss, theirs(x2, labels)
    v_ours.backward()
    v_pml.backward()
    torch.testing.assert_close(v_ours, v_pml, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(x1.grad, x2.grad, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(ours.proxies.grad[0], theirs.fc.grad.T, rtol=RTOL, atol=ATOL)
    assert float(ours.proxies.grad.abs().sum()) > 0
    _record("softtriple value", v_ours, v_pml)
    _record("softtriple grad (embeddings)", x1.grad, x2.grad)
    _record("softtriple grad (proxies)", ours.proxies.grad[0], theirs.fc.grad.T)


@pytest.mark.parametrize(("K", "margin", "scale"), [(1, 28.6, 64.0), (3, 28.6, 64.0), (2, 10.0, 16.0)])
@pytest.mark.parametrize("seed", range(4))
def test_subcenter_arcface_equals_pml(make_batch, K, margin, scale, seed):
    emb, labels = make_batch(seed, n_classes=4, per_class=(2, 5), dim=6)
    ours = SubCenterArcFaceLoss(4, 6, centers_per_class=K, margin=margin, scale=scale, random_state=seed).double()
    theirs = pml_losses.SubCenterArcFaceLoss(
        num_classes=4, embedding_size=6, margin=margin, scale=scale, sub_centers=K
    ).double()
    _copy_proxies(ours, theirs.W)
    x1, x2 = emb.clone().requires_grad_(), emb.clone().requires_grad_()
    v_ours, v_pml = ours(x1, labels).loss, theirs(x2, labels)
    v_ours.backward()
    v_pml.backward()
    torch.testing.assert_close(v_ours, v_pml, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(x1.grad, x2.grad, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(ours.proxies.grad[0], theirs.W.grad.T, rtol=RTOL, atol=ATOL)
    _record("subcenter-arcface value", v_ours, v_pml)
    _record("subcenter-arcface grad (embeddings)", x1.grad, x2.grad)
    _record("subcenter-arcface grad (proxies)", ours.proxies.grad[0], theirs.W.grad.T)


def test_subcenter_arcface_obtuse_branch_equals_pml():
    """Samples more than pi - m from their class's sub-centres take the cos(theta) - m sin(m) branch."""
    gen = torch.Generator().manual_seed(3)
    ours = SubCenterArcFaceLoss(2, 3, centers_per_class=1, margin=60.0, scale=4.0).double()
    theirs = pml_losses.SubCenterArcFaceLoss(num_classes=2, embedding_size=3, margin=60.0, scale=4.0, sub_centers=1)
    theirs = theirs.double()
    _copy_proxies(ours, theirs.W)
    w = ours.proxies[0].detach().double()
    # Rows 0-1 sit opposite their class's centre (the obtuse branch); rows 2-3 near, not on, theirs (on it, the
    # 1 - c^2 floor of our cos(theta + m) differs from arccos by about 1e-6 sin m).
    emb = w[[0, 1, 0, 1]] * torch.tensor([[-1.0], [-1.0], [1.0], [1.0]], dtype=torch.float64)
    emb = emb + 0.05 * torch.randn(4, 3, generator=gen, dtype=torch.float64)
    labels = torch.tensor([0, 1, 0, 1])
    x1, x2 = emb.clone().requires_grad_(), emb.clone().requires_grad_()
    v1, v2 = ours(x1, labels).loss, theirs(x2, labels)
    v1.backward()
    v2.backward()
    torch.testing.assert_close(v1, v2, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(x1.grad, x2.grad, rtol=RTOL, atol=ATOL)


# ------------------------------------------------------------------------------------------------ naive loops
def _cos(x: torch.Tensor) -> torch.Tensor:
    u = x / x.norm(dim=-1, keepdim=True)
    return u @ u.T


def naive_supcon_no_pos_denominator(x, labels, tau):
    S = _cos(x) / tau
    total, count = 0.0, 0
    for a in range(len(labels)):
        pos = [p for p in range(len(labels)) if p != a and labels[p] == labels[a]]
        neg = [n for n in range(len(labels)) if labels[n] != labels[a]]
        if not pos:
            continue
        terms = []
        for p in pos:
            den = torch.exp(S[a, p]) + sum(torch.exp(S[a, n]) for n in neg)
            terms.append(-torch.log(torch.exp(S[a, p]) / den))
        total = total + sum(terms) / len(terms)
        count += 1
    return total, count


def naive_spread(x, labels, tau, alpha):
    S = _cos(x) / tau
    attract, n_att = naive_supcon_no_pos_denominator(x, labels, tau)
    spread = 0.0
    for a in range(len(labels)):
        same = [p for p in range(len(labels)) if labels[p] == labels[a]]
        spread = spread - torch.log(torch.exp(S[a, a]) / sum(torch.exp(S[a, p]) for p in same))
    return (1 - alpha) * attract / n_att + alpha * spread / len(labels)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(("tau", "alpha"), [(0.5, 0.5), (0.1, 0.2), (1.0, 1.0), (0.3, 0.0)])
def test_spread_equals_naive_loop(make_batch, seed, tau, alpha):
    emb, labels = make_batch(seed, n_classes=3, per_class=(2, 4), dim=5)
    ours = SpreadLoss(temperature=tau, alpha=alpha)
    v1, g1 = _value_and_grad(lambda x: ours(x, labels).loss, emb)
    v2, g2 = _value_and_grad(lambda x: naive_spread(x, labels.tolist(), tau, alpha), emb)
    torch.testing.assert_close(v1, v2, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(g1, g2, rtol=RTOL, atol=ATOL)
    _record("spread value (naive)", v1, v2)
    _record("spread grad (naive)", g1, g2)


@pytest.mark.parametrize("seed", range(3))
def test_supcon_without_positives_in_denominator_equals_naive_loop(make_batch, seed):
    emb, labels = make_batch(seed, n_classes=3, per_class=(2, 4), dim=5)
    ours = SupConLoss(temperature=0.2, positives_in_denominator=False, reducer="mean", sampler=Sampler("all", "all"))
    v1, g1 = _value_and_grad(lambda x: ours(x, labels).loss, emb)

    def naive(x):
        total, count = naive_supcon_no_pos_denominator(x, labels.tolist(), 0.2)
        return total / count

    v2, g2 = _value_and_grad(naive, emb)
    torch.testing.assert_close(v1, v2, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(g1, g2, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("seed", range(3))
def test_softtriple_center_regulariser_equals_naive_loop(make_batch, seed):
    emb, labels = make_batch(seed, n_classes=3, per_class=(2, 4), dim=5)
    tau, K, C = 0.2, 4, 3
    ours = SoftTripleLoss(C, 5, centers_per_class=K, center_reg=tau, random_state=seed).double()
    plain = SoftTripleLoss(C, 5, centers_per_class=K, random_state=seed).double()
    w = ours.proxies[0].detach()
    w = w / w.norm(dim=-1, keepdim=True)
    reg = 0.0
    for c in range(C):
        for t in range(K):
            for s in range(t + 1, K):
                reg += math.sqrt(2 + 1e-5 - 2 * float(w[c * K + t] @ w[c * K + s]))
    expected = plain(emb, labels).loss + tau * reg / (C * K * (K - 1))
    torch.testing.assert_close(ours(emb, labels).loss, expected, rtol=RTOL, atol=ATOL)


def test_print_max_errors():
    """Run last in this module (pytest keeps file order): prints the largest oracle differences seen."""
    print("\nrival-loss oracle max abs errors:", {k: f"{v:.1e}" for k, v in MAX_ERR.items()})
