"""Hypothesis property tests of loss minimisers (T0-T5), with the edge cases: unequal modes per class, C = 2,
eps near (C-1)/C and d = 2. Budgets: ``ci`` profile small, ``deep`` larger (HYPOTHESIS_PROFILE=deep)."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from collapse.experiment import COLLAPSE_THRESHOLD
from collapse.theory import ModeModel, population_loss
from collapse.theory.force import autograd_force
from collapse.theory.minimize import minimize_population, near_collapsed_start
from collapse.theory.t0_clean import clean_configuration
from collapse.theory.t3_eps import max_sibling_gradient
from collapse.theory.t4_finite_batch import critical_batch, eps_sibling_force
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
    assert dist[m.same_class_pairs()].min() > COLLAPSE_THRESHOLD


def test_t0_clean_construction_needs_room():
    with pytest.raises(ValueError, match="no zero-loss configuration"):
        clean_configuration(ModeModel.symmetric(3, 2, 0.0), alpha=3.0)


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


def test_t2_edge_cases_unequal_modes_and_near_uninformative_noise():
    m = ModeModel.from_noise([3, 1, 2], 0.6)  # edge (C-1)/C = 2/3
    res = minimize_population(m, "triplet", "random", "all", dim=8, seeds=2, steps=1200, lr=0.02)
    assert res.collapsed.all(), res.separation


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
@minimiser_settings(ci=3, deep=30)
@given(st.floats(0.05, 0.5), st.integers(0, 1000))
def test_t5_fixed_beta_margin_never_collapses(eps, seed):
    res = minimize_population(
        ModeModel.symmetric(3, 3, eps), "margin", "random", "all", dim=8, seeds=2, steps=600, lr=0.02, random_state=seed
    )
    assert (~res.collapsed).all(), res.separation


def test_t5_learned_beta_collapses_under_noise_but_not_with_eps():
    m = ModeModel.symmetric(4, 3, 0.2)
    rnd = minimize_population(m, "margin-learned", "random", "all", dim=8, seeds=4, steps=1000, lr=0.02)
    easy = minimize_population(m, "margin-learned", "easy", "all", dim=8, seeds=4, steps=1000, lr=0.02)
    assert rnd.fraction_collapsed >= 0.5 and rnd.beta.mean() < 0.8
    assert easy.fraction_collapsed == 0.0
