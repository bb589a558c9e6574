"""Properties of the rival losses: SupCon with easy positives is easy-positive NCA, L_spread's two terms, and the
proxy losses (finite, non-negative, proxies trained and saved, groups independent, clear errors)."""

import io

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from collapse.losses import (
    EasyPositiveNCALoss,
    SoftTripleLoss,
    SpreadLoss,
    SubCenterArcFaceLoss,
    SupConLoss,
    make_loss,
)
from collapse.sampling import Sampler

PROXY_LOSSES = ("softtriple", "subcenter-arcface")


@st.composite
def batches(draw, n_classes_max=4):
    sizes = draw(st.lists(st.integers(2, 4), min_size=2, max_size=n_classes_max))
    dim = draw(st.integers(2, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    labels = rng.permutation(np.repeat(np.arange(len(sizes)), sizes))
    return torch.tensor(rng.standard_normal((labels.size, dim))), torch.tensor(labels)


@given(data=batches(), tau=st.floats(0.05, 1.0), negative=st.sampled_from(["all", "hard", "semihard"]))
def test_supcon_with_easy_positive_is_easy_positive_nca(data, tau, negative):
    """EPS for SupCon: the nearest same-label sample as the only positive gives Xuan et al.'s EP-NCA term."""
    emb, labels = data
    for pos_in_den in (True, False):
        supcon = SupConLoss(tau, positives_in_denominator=pos_in_den, sampler=Sampler("easy", negative))
        out = supcon(emb, labels)
        nca = EasyPositiveNCALoss(tau, sampler=Sampler("easy", negative), reducer="mean")(emb, labels)
        if negative == "all":
            # One term per anchor in both; same anchors, same values.
            torch.testing.assert_close(out.terms["loss"].losses, nca.terms["loss"].losses, rtol=1e-10, atol=1e-12)
            torch.testing.assert_close(out.terms["loss"].indices[0], nca.terms["loss"].indices[0])
        else:
            # One negative per positive pair: the denominator is {e_a, n_a}, NCA's softplus form.
            assert bool((out.terms["loss"].losses >= 0).all())


@given(data=batches(), tau=st.floats(0.05, 1.0))
def test_supcon_all_positives_denominator_variants_bound(data, tau):
    """Keeping the other positives out of the denominator can only lower each term."""
    emb, labels = data
    with_pos = SupConLoss(tau)(emb, labels).terms["loss"].losses
    without = SupConLoss(tau, positives_in_denominator=False)(emb, labels).terms["loss"].losses
    assert bool((without <= with_pos + 1e-12).all())


@given(data=batches(), tau=st.floats(0.1, 1.0), alpha=st.floats(0.0, 1.0))
def test_spread_is_the_mix_of_its_terms(data, tau, alpha):
    emb, labels = data
    out = SpreadLoss(tau, alpha)(emb, labels)
    attract = SupConLoss(tau, positives_in_denominator=False, reducer="mean")(emb, labels).loss
    spread_only = SpreadLoss(tau, 1.0)(emb, labels).loss
    torch.testing.assert_close(out.loss, (1 - alpha) * attract + alpha * spread_only, rtol=1e-10, atol=1e-12)
    assert float(spread_only) >= 0


def test_spread_term_is_minimised_by_spreading_a_class():
    """Two samples of one class: the spread term is log(1 + e^{(cos - 1)/tau}), smaller when they are apart."""
    labels = torch.tensor([0, 0, 1, 1])
    near = torch.tensor([[1.0, 0.0], [0.99, 0.14], [-1.0, 0.0], [-0.99, 0.14]], dtype=torch.float64)
    far = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]], dtype=torch.float64)
    loss = SpreadLoss(0.5, 1.0)
    assert float(loss(far, labels).loss) < float(loss(near, labels).loss)
    torch.testing.assert_close(loss(far, labels).loss, torch.log1p(torch.exp(torch.tensor(-2.0, dtype=torch.float64))))


def _proxy(name, C=4, d=5, G=1, seed=0, **kw):
    return make_loss(name, num_classes=C, embedding_dim=d, num_groups=G, random_state=seed, **kw).double()


@pytest.mark.parametrize("name", PROXY_LOSSES)
@given(data=batches(), K=st.integers(1, 4), float32=st.booleans())
def test_proxy_losses_finite_non_negative(name, data, K, float32):
    emb, labels = data
    emb = emb.float() if float32 else emb
    loss = _proxy(name, d=emb.shape[1], centers_per_class=K)
    x = emb.clone().requires_grad_()
    out = loss(x, labels)
    out.loss.backward()
    assert torch.isfinite(out.loss) and float(out.loss.detach()) >= 0
    assert bool(torch.isfinite(x.grad).all()) and bool(torch.isfinite(loss.proxies.grad).all())


@pytest.mark.parametrize("name", PROXY_LOSSES)
@given(data=batches(), perm_seed=st.integers(0, 2**31 - 1), scale=st.floats(0.1, 10.0))
def test_proxy_losses_invariant_to_permutation_and_scale(name, data, perm_seed, scale):
    emb, labels = data
    loss = _proxy(name, d=emb.shape[1], centers_per_class=2)
    perm = torch.from_numpy(np.random.default_rng(perm_seed).permutation(len(labels)))
    base = loss(emb, labels).loss
    torch.testing.assert_close(loss(emb[perm], labels[perm]).loss, base, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(loss(scale * emb, labels).loss, base, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", PROXY_LOSSES)
def test_proxy_groups_are_independent(name, make_batch):
    emb, labels = make_batch(1, n_classes=3, per_class=3, dim=4, groups=3)
    loss = _proxy(name, C=3, d=4, G=3, centers_per_class=2)
    out = loss(emb, labels)
    for g in range(3):
        single = _proxy(name, C=3, d=4, centers_per_class=2)
        with torch.no_grad():
            single.proxies.copy_(loss.proxies[g : g + 1])
        torch.testing.assert_close(out.per_group[g], single(emb[g], labels[g]).loss, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", PROXY_LOSSES)
def test_proxies_are_trained_and_saved(name, make_batch):
    emb, labels = make_batch(2, n_classes=3, per_class=3, dim=4)
    loss = _proxy(name, C=3, d=4, centers_per_class=2)
    assert [n for n, _ in loss.named_parameters()] == ["proxies"]
    before = loss.proxies.detach().clone()
    opt = torch.optim.Adam(loss.parameters(), lr=0.05)
    first = float(loss(emb, labels).loss.detach())
    for _ in range(30):
        opt.zero_grad()
        loss(emb, labels).loss.backward()
        opt.step()
    assert float(loss(emb, labels).loss.detach()) < first
    assert not torch.equal(before, loss.proxies.detach())
    buf = io.BytesIO()
    torch.save(loss.state_dict(), buf)
    buf.seek(0)
    fresh = _proxy(name, C=3, d=4, seed=99, centers_per_class=2)
    fresh.load_state_dict(torch.load(buf))
    torch.testing.assert_close(fresh(emb, labels).loss, loss(emb, labels).loss)


def test_proxy_init_is_seeded_and_leaves_a_generator_untouched():
    a, b = _proxy("softtriple", seed=3), _proxy("softtriple", seed=3)
    assert torch.equal(a.proxies, b.proxies)
    assert not torch.equal(a.proxies, _proxy("softtriple", seed=4).proxies)
    gen = torch.Generator().manual_seed(11)
    state = gen.get_state()
    make_loss("subcenter-arcface", num_classes=3, embedding_dim=4, random_state=gen)
    assert torch.equal(gen.get_state(), state)


def test_proxy_loss_errors_are_one_line_and_name_the_input():
    with pytest.raises(ValueError, match="embedding_dim"):
        make_loss("softtriple", num_classes=3)
    with pytest.raises(ValueError, match="positive/negative"):
        make_loss("softtriple", "easy", num_classes=3, embedding_dim=4)
    with pytest.raises(ValueError, match="distance"):
        SoftTripleLoss(3, 4, distance="euclidean")
    loss = SubCenterArcFaceLoss(3, 4)
    with pytest.raises(ValueError, match=r"labels must be in \[0, num_classes=3\)"):
        loss(torch.randn(4, 4), torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="embedding_dim=4"):
        loss(torch.randn(4, 5), torch.tensor([0, 1, 2, 2]))
    with pytest.raises(ValueError, match="num_groups=2"):
        SubCenterArcFaceLoss(3, 4, num_groups=2)(torch.randn(3, 4, 4), torch.zeros(3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="centers_per_class"):
        SoftTripleLoss(3, 4, centers_per_class=0)


def test_proxy_loss_on_an_empty_batch_is_zero_with_a_graph():
    loss = _proxy("softtriple", C=3, d=4)
    x = torch.zeros(0, 4, dtype=torch.float64, requires_grad=True)
    out = loss(x, torch.zeros(0, dtype=torch.long))
    assert float(out.loss.detach()) == 0.0
    out.loss.backward()
