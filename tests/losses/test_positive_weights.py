"""SupCon with weighted easy positives (``supcon-weighted``) against a naive float64 loop, values and gradients; its
limits (EPS, uniform SupCon) and the gradient identity with Khosla et al.'s L_in."""

import pytest
import torch

from collapse.losses import SoftEasyPositiveWeights, SpreadLoss, SupConLoss, make_loss
from collapse.sampling import Sampler

RTOL, ATOL = 1e-9, 1e-12


def _value_and_grad(fn, emb):
    x = emb.clone().requires_grad_()
    value = fn(x)
    value.backward()
    return value.detach(), x.grad


def _cos(x: torch.Tensor) -> torch.Tensor:
    u = x / x.norm(dim=-1, keepdim=True)
    return u @ u.T


def naive_weighted_supcon(x, labels, tau, tau_w, pos_in_denominator=True):
    """Loop over anchors: w_ap = exp(-D_ap/tau_w) / sum_p' exp(-D_ap'/tau_w) over the other same-label samples
    (cosine D = 1 - S, the weights detached), l_a = -sum_p w_ap log(e^{s_ap} / sum_{k in A_a(p)} e^{s_ak});
    the mean over anchors with a positive."""
    S = _cos(x)
    total, count = 0.0, 0
    n = len(labels)
    for a in range(n):
        pos = [p for p in range(n) if p != a and labels[p] == labels[a]]
        neg = [k for k in range(n) if labels[k] != labels[a]]
        if not pos:
            continue
        raw = [torch.exp(-(1.0 - S[a, p].detach()) / tau_w) for p in pos]
        w = [r / sum(raw) for r in raw]
        term = 0.0
        for wp, p in zip(w, pos):
            den_set = (pos if pos_in_denominator else [p]) + neg
            den = sum(torch.exp(S[a, k] / tau) for k in den_set)
            term = term - wp * torch.log(torch.exp(S[a, p] / tau) / den)
        total = total + term
        count += 1
    return total / count


def naive_supcon_in(x, labels, tau):
    """Khosla et al. 2020 eq. 3, L_in: -log((1/|P|) sum_p e^{s_ap} / sum_{k != a} e^{s_ak}), mean over anchors."""
    S = _cos(x) / tau
    total, count = 0.0, 0
    n = len(labels)
    for a in range(n):
        pos = [p for p in range(n) if p != a and labels[p] == labels[a]]
        if not pos:
            continue
        den = sum(torch.exp(S[a, k]) for k in range(n) if k != a)
        total = total - torch.log(sum(torch.exp(S[a, p]) for p in pos) / len(pos) / den)
        count += 1
    return total / count


def _assert_same_value_and_grad(loss, naive, emb, labels) -> torch.Tensor:
    """Our loss and a naive-loop oracle agree in value and gradient; returns the oracle's value."""
    v1, g1 = _value_and_grad(lambda x: loss(x, labels).loss, emb)
    v2, g2 = _value_and_grad(naive, emb)
    torch.testing.assert_close(v1, v2, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(g1, g2, rtol=RTOL, atol=ATOL)
    return v2


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(("tau", "tau_w", "in_den"), [(0.1, 0.1, True), (0.2, 0.05, True), (0.1, 0.3, False)])
def test_weighted_supcon_equals_naive_loop(make_batch, seed, tau, tau_w, in_den):
    emb, labels = make_batch(seed, n_classes=3, per_class=(2, 5), dim=5)
    ours = SupConLoss(
        temperature=tau, positives_in_denominator=in_den, positive_weights=SoftEasyPositiveWeights(tau_w),
        sampler=Sampler("all", "all"),
    )  # fmt: skip
    value = _assert_same_value_and_grad(ours, lambda x: naive_weighted_supcon(x, labels.tolist(), tau, tau_w, in_den),
                                        emb, labels)  # fmt: skip
    assert value > 0


@pytest.mark.parametrize("seed", range(3))
def test_make_loss_supcon_weighted_is_tau_w_equal_tau(make_batch, seed):
    emb, labels = make_batch(seed, n_classes=4, per_class=(2, 4), dim=6)
    loss = make_loss("supcon-weighted")
    assert isinstance(loss.positive_weights, SoftEasyPositiveWeights) and loss.positive_weights.temperature == 0.1
    assert loss.sampler.positive.name == "all" and loss.positives_in_denominator
    _assert_same_value_and_grad(loss, lambda x: naive_weighted_supcon(x, labels.tolist(), 0.1, 0.1), emb, labels)


@pytest.mark.parametrize("seed", range(4))
def test_gradient_equals_khosla_l_in_at_tau_w_equal_tau(make_batch, seed):
    emb, labels = make_batch(seed, n_classes=3, per_class=(2, 5), dim=5)
    ours = make_loss("supcon-weighted")
    v1, g1 = _value_and_grad(lambda x: ours(x, labels).loss, emb)
    v2, g2 = _value_and_grad(lambda x: naive_supcon_in(x, labels.tolist(), 0.1), emb)
    torch.testing.assert_close(g1, g2, rtol=RTOL, atol=ATOL)
    assert not torch.isclose(v1, v2)  # the values differ (by the weights' entropy less log|P|), the gradients not


@pytest.mark.parametrize("seed", range(3))
def test_limits_are_eps_and_uniform_supcon(make_batch, seed):
    emb, labels = make_batch(seed, n_classes=3, per_class=(2, 5), dim=5)
    # tau_w -> 0: all the weight on the nearest positive, i.e. SupCon + EPS (exactly so without other positives
    # in the denominator).
    sharp = SupConLoss(positives_in_denominator=False, positive_weights=SoftEasyPositiveWeights(1e-4),
                       sampler=Sampler("all", "all"))  # fmt: skip
    eps = SupConLoss(sampler=Sampler("easy", "all"))
    v1, g1 = _value_and_grad(lambda x: sharp(x, labels).loss, emb)
    v2, g2 = _value_and_grad(lambda x: eps(x, labels).loss, emb)
    torch.testing.assert_close(v1, v2, rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(g1, g2, rtol=1e-7, atol=1e-9)
    # tau_w -> infinity: uniform weights, the published SupCon.
    flat = SupConLoss(positive_weights=SoftEasyPositiveWeights(1e9), sampler=Sampler("all", "all"))
    v3, g3 = _value_and_grad(lambda x: flat(x, labels).loss, emb)
    v4, g4 = _value_and_grad(lambda x: make_loss("supcon")(x, labels).loss, emb)
    torch.testing.assert_close(v3, v4, rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(g3, g4, rtol=1e-7, atol=1e-9)


def test_weights_sum_to_one_per_anchor_and_favour_the_nearest(make_batch):
    emb, labels = make_batch(5, n_classes=3, per_class=(3, 6), dim=4, groups=2)
    loss = make_loss("supcon-weighted")
    dist = loss.distance(emb)
    pos = loss.sampler(dist, labels, dim=4).positive_pairs
    w = loss.positive_weights.weights(dist, pos)
    assert not w.requires_grad and bool((w > 0).all())
    sums = torch.zeros(2, labels.shape[1], dtype=w.dtype).index_put((pos.g, pos.a), w, accumulate=True)
    has = torch.zeros_like(sums, dtype=torch.bool)
    has[pos.g, pos.a] = True
    torch.testing.assert_close(sums[has], torch.ones_like(sums[has]), rtol=0, atol=1e-12)
    # The largest weight of each anchor sits on its nearest positive (the easy positive).
    d = pos.gather(dist)
    for g, a in has.nonzero().tolist():
        sel = (pos.g == g) & (pos.a == a)
        assert int(d[sel].argmin()) == int(w[sel].argmax())


def test_easy_rule_with_weights_is_supcon_eps(make_batch):
    """One positive per anchor has weight 1: composing the weights with the easy rule changes nothing."""
    emb, labels = make_batch(2, n_classes=4, per_class=(2, 4), dim=6)
    v1, g1 = _value_and_grad(lambda x: make_loss("supcon-weighted", "easy")(x, labels).loss, emb)
    v2, g2 = _value_and_grad(lambda x: make_loss("supcon", "easy")(x, labels).loss, emb)
    torch.testing.assert_close(v1, v2, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(g1, g2, rtol=RTOL, atol=ATOL)


def test_spread_attract_term_takes_the_weights(make_batch):
    emb, labels = make_batch(1, n_classes=3, per_class=(2, 4), dim=5)
    plain = SpreadLoss()(emb, labels).loss
    weighted = SpreadLoss(positive_weights=SoftEasyPositiveWeights(0.5))(emb, labels).loss
    assert torch.isfinite(weighted) and not torch.isclose(plain, weighted)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan")])
def test_bad_temperature_is_one_line(bad):
    with pytest.raises(ValueError, match="temperature"):
        SoftEasyPositiveWeights(bad)


def test_bad_weights_object_is_one_line():
    with pytest.raises(TypeError, match="positive_weights"):
        SupConLoss(positive_weights=0.1)
