"""Hypothesis property tests of loss minimisers (T0-T5), with the edge cases: unequal modes per class, C = 2,
eps near (C-1)/C and d = 2. Budgets: ``ci`` profile small, ``deep`` larger (HYPOTHESIS_PROFILE=deep)."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from collapse.theory import ModeModel, population_loss
from collapse.theory.force import autograd_force
from collapse.theory.minimize import minimize_population, near_collapsed_start
from collapse.theory.t0_clean import clean_configuration
from collapse.theory.t2_noise_collapse import compare_noise_models
from collapse.theory.t3_eps import max_sibling_gradient
from collapse.theory.t4_finite_batch import critical_batch, decay_rates, eps_sibling_force, net_pull_intervals
from tests.theory._profile import minimiser_settings


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


counts = st.lists(st.integers(1, 4), min_size=2, max_size=5).filter(lambda c: max(c) >= 2)


# ------------------------------------------------------------------------------------------------------- T0
@minimiser_settings(ci=15, deep=200)
@given(counts, st.floats(0.05, 0.6), st.sampled_from(["random", "easy", "hard"]), st.sampled_from([None, 3, 8]))
def test_t0_clean_construction_has_zero_loss_with_modes_apart(mode_counts, alpha, positive, M):
    m = ModeModel.from_noise(mode_counts, 0.0)
    batch = None if M is None else (len(mode_counts), M)
    Z = clean_configuration(m, alpha)
    assert population_loss(Z, m, "triplet", positive, "all", batch=batch, margin=alpha).loss.item() == 0.0
    beta = alpha + 0.3
    Zm = clean_configuration(m, alpha, beta)
    assert population_loss(Zm, m, "margin", positive, "all", batch=batch, margin=alpha, beta=beta).loss.item() == 0.0
    dist = torch.cdist(Z, Z).numpy()
    assert dist[m.same_class_pairs()].min() > alpha / 2  # apart at the resolution of the collapse instrument


def test_t0_clean_construction_needs_room():
    with pytest.raises(ValueError, match="no zero-loss configuration"):
        clean_configuration(ModeModel.symmetric(3, 2, 0.0), alpha=3.0)


@pytest.mark.slow
@minimiser_settings(ci=3, deep=30)
@given(st.integers(2, 4), st.integers(2, 3), st.floats(0.0, 0.5), st.integers(0, 1000))
def test_t0_contrastive_minimisers_collapse_at_every_noise_level(C, K, eps_frac, seed):
    eps = eps_frac * (C - 1) / C
    res = minimize_population(
        ModeModel.symmetric(C, K, eps),
        "contrastive",
        "random",
        "all",
        dim=8,
        seeds=2,
        steps=600,
        lr=0.03,
        random_state=seed,
    )
    assert res.collapsed.all(), res.separation


# ------------------------------------------------------------------------------------------------------- T2
@pytest.mark.slow
@minimiser_settings(ci=4, deep=60)
@given(
    st.integers(2, 5),
    st.integers(2, 3),
    st.sampled_from([8, 16]),
    st.floats(0.1, 0.9),
    st.floats(0.1, 0.5),
    st.integers(0, 1000),
)
def test_t2_noise_implies_collapse(C, K, d, eps_frac, alpha, seed):
    eps = eps_frac * (C - 1) / C
    res = minimize_population(
        ModeModel.symmetric(C, K, eps),
        "triplet",
        "random",
        "all",
        dim=d,
        seeds=2,
        steps=800,
        lr=0.02,
        margin=alpha,
        random_state=seed,
    )
    assert res.collapsed.all(), (C, K, d, eps, alpha, res.separation)


def test_t2_is_stated_for_symmetric_noise_only():
    """Issue 11 case 8: under mode confusion the minimiser keeps the confused mode a margin away (partial collapse);
    under pair flips (C = 4) the siblings stay a margin apart."""
    res = compare_noise_models(4, 3, 8, 0.3, 0.2, kinds=("pair_flip", "mode_confusion"), seeds=1, steps=800)
    mc, pf = res["mode_confusion"], res["pair_flip"]
    assert all(v.startswith("partly collapsed") for v in mc["verdicts"]), mc["verdicts"]
    assert 0.8 < mc["confused_pair_over_margin"] < 1.4 and mc["clean_pair_over_margin"] < 0.5
    assert 0.8 < pf["clean_pair_over_margin"] < 1.25 and "collapsed" not in pf["verdicts"]


@pytest.mark.slow
def test_t2_edge_cases_unequal_modes_and_near_uninformative_noise():
    m = ModeModel.from_noise([3, 1, 2], 0.6)  # edge (C-1)/C = 2/3
    res = minimize_population(m, "triplet", "random", "all", dim=8, seeds=2, steps=1200, lr=0.02)
    assert res.collapsed.all(), res.separation


@pytest.mark.slow
def test_t2_without_noise_random_positives_keep_modes():
    res = minimize_population(
        ModeModel.symmetric(3, 3, 0.0), "triplet", "random", "all", dim=8, seeds=2, steps=600, lr=0.02
    )
    assert (~res.collapsed).all() and res.loss.max() == 0.0


# ------------------------------------------------------------------------------------------------------- T3
@minimiser_settings(ci=25, deep=400)
@given(counts, st.floats(0.0, 0.99), st.integers(2, 8), st.integers(0, 10_000), st.sampled_from(["all", "semihard"]))
def test_t3_eps_never_pulls_siblings(mode_counts, eps_frac, d, seed, negative):
    C = len(mode_counts)
    m = ModeModel.from_noise(mode_counts, eps_frac * (C - 1) / C)
    Z = torch.randn(m.n_modes, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    assert max_sibling_gradient(m, Z, negative=negative) <= 0.0


@pytest.mark.slow
@minimiser_settings(ci=3, deep=30)
@given(st.integers(2, 4), st.integers(2, 3), st.floats(0.1, 0.6), st.sampled_from([2, 8]), st.integers(0, 1000))
def test_t3_eps_minimisation_separates_near_collapsed_modes(C, K, eps_frac, d, seed):
    m = ModeModel.symmetric(C, K, eps_frac * (C - 1) / C)
    init = near_collapsed_start(m, d, 2, random_state=seed)
    res = minimize_population(m, "triplet", "easy", "all", dim=d, seeds=2, steps=600, lr=0.02, init=init)
    assert (~res.collapsed).all(), res.separation


# ------------------------------------------------------------------------------------------------------- T4
@minimiser_settings(ci=20, deep=300)
@given(st.integers(2, 5), st.integers(2, 4), st.floats(0.0, 0.9), st.integers(2, 40))
def test_t4_sibling_force_formula_equals_autograd(C, K, eps_frac, M):
    eps = eps_frac * (C - 1) / C
    m = ModeModel.symmetric(C, K, eps)
    Z = clean_configuration(m)
    grad = autograd_force(m, "easy", batch=(C, M), distances=torch.cdist(Z, Z))
    measured = (grad * m.same_class_pairs()).sum(1)
    assert np.allclose(measured, eps_sibling_force(eps, C, K, M)["net"], atol=1e-12)


def test_t4_net_pull_is_not_monotone_and_m_star_is_where_it_never_returns():
    """Issue 11 case 7: C=4, K=4, eps=0.1 has a net pull at M = 2..16 and again at 45..68, so M* = 69."""
    assert net_pull_intervals(0.1, 4, 4) == [(2, 16), (45, 68)]
    assert critical_batch(0.1, 4, 4) == 69 >= 69
    assert [critical_batch(0.1, 4, K) for K in (2, 3, 6)] == [8, 12, 111]
    m = ModeModel.symmetric(4, 4, 0.1)
    Z = clean_configuration(m)
    for M, sign in [(16, 1), (17, -1), (44, -1), (45, 1), (56, 1), (68, 1), (69, -1), (500, -1)]:
        grad = autograd_force(m, "easy", batch=(4, M), distances=torch.cdist(Z, Z))
        net = float((grad * m.same_class_pairs()).sum(1).mean())
        assert np.sign(net) == sign, M
        assert net == pytest.approx(eps_sibling_force(0.1, 4, 4, M)["net"], abs=1e-13)
    # Nothing beyond M* up to 10^4.
    assert all(eps_sibling_force(0.1, 4, 4, M)["net"] <= 0 for M in range(69, 10_001))


@given(st.integers(2, 6), st.integers(2, 6), st.floats(0.01, 0.95))
def test_t4_both_decay_rates_and_the_asymptotic_one(C, K, eps_frac):
    eps = eps_frac * (C - 1) / C
    r = decay_rates(eps, C, K)
    f = lambda M, key: eps_sibling_force(eps, C, K, M)[key]  # noqa: E731
    # Each term decays at its own rate once the faster-vanishing parts are negligible.
    a = eps / ((C - 1) * K)
    M = int(np.ceil(25 / -np.log((1 - K * a) / (1 - a)))) + 2  # (1-Ka)^M negligible next to (1-a)^M
    assert f(M + 1, "pull_mislabelled") / f(M, "pull_mislabelled") == pytest.approx(r["mislabelled"], rel=1e-6)
    Mc = 20
    if f(Mc, "pull_correct") > 1e-280:
        ratio = f(Mc + 1, "pull_correct") / f(Mc, "pull_correct")
        assert ratio == pytest.approx(r["correct"], rel=1e-3 + (eps / r["correct"]) ** Mc * 10)
    assert r["asymptotic"] == r["mislabelled"] >= r["correct"]
    m_star = critical_batch(eps, C, K)
    assert m_star is not None
    assert all(f(M, "net") <= 0 for M in range(m_star, m_star + 200))
    assert m_star == 2 or f(m_star - 1, "net") > 0


def test_t4_pull_decays_with_m_and_grows_with_k():
    pulls = [eps_sibling_force(0.1, 4, 3, M)["pull"] for M in (3, 6, 12, 24)]
    assert all(a > b for a, b in zip(pulls, pulls[1:]))
    assert critical_batch(0.1, 4, 2) < critical_batch(0.1, 4, 3) < critical_batch(0.1, 4, 4)
    # M = 2: the only same-label batch-mate is the positive, so EPS = random positive.
    m = ModeModel.symmetric(3, 2, 0.2)
    Z = torch.randn(6, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    easy = population_loss(Z, m, "triplet", "easy", "all", batch=(3, 2)).loss
    rnd = population_loss(Z, m, "triplet", "random", "all", batch=(3, 2)).loss
    assert easy.item() == pytest.approx(rnd.item(), rel=1e-12)


# ------------------------------------------------------------------------------------------------------- T5
@pytest.mark.slow
@minimiser_settings(ci=3, deep=30)
@given(st.floats(0.05, 0.5), st.integers(0, 1000))
def test_t5_fixed_beta_margin_never_collapses(eps, seed):
    res = minimize_population(
        ModeModel.symmetric(3, 3, eps), "margin", "random", "all", dim=8, seeds=2, steps=600, lr=0.02, random_state=seed
    )
    assert (~res.collapsed).all(), res.separation


@pytest.mark.slow
def test_t5_learned_beta_collapses_under_noise_but_not_with_eps():
    m = ModeModel.symmetric(4, 3, 0.2)
    rnd = minimize_population(m, "margin-learned", "random", "all", dim=8, seeds=4, steps=1000, lr=0.02)
    easy = minimize_population(m, "margin-learned", "easy", "all", dim=8, seeds=4, steps=1000, lr=0.02)
    assert rnd.fraction_collapsed >= 0.5 and rnd.beta.mean() < 0.8
    assert easy.fraction_collapsed == 0.0
