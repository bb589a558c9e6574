"""T1: the collapse force, closed form against autograd in float64."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from collapse.theory import ModeModel
from collapse.theory.force import (
    autograd_force,
    check_t1,
    collapse_force,
    eps_force,
    kappa_symmetric,
    kappa_symmetric_eps,
)


@st.composite
def mode_models(draw):
    C = draw(st.integers(2, 5))
    counts = draw(st.lists(st.integers(1, 3), min_size=C, max_size=C))
    kind = draw(st.sampled_from(["symmetric", "pair_flip", "mode_confusion"]))
    eps = draw(st.floats(0.0, 0.95))
    weights = draw(st.lists(st.floats(0.1, 3.0), min_size=sum(counts), max_size=sum(counts)))
    return ModeModel.from_noise(counts, eps, kind=kind, weights=weights)


@pytest.mark.slow
@given(mode_models())
def test_general_formula_equals_autograd(model):
    off = ~np.eye(model.n_modes, dtype=bool)
    assert np.abs(collapse_force(model) - autograd_force(model))[off].max() < 1e-9


@given(mode_models())
def test_eps_formula_equals_autograd_and_never_pulls_siblings(model):
    off = ~np.eye(model.n_modes, dtype=bool)
    assert np.nanmax(np.abs(eps_force(model) - autograd_force(model, "easy"))[off]) < 1e-9
    sib = model.same_class_pairs()
    if sib.any():
        assert np.nanmax(eps_force(model)[sib]) <= 0


@pytest.mark.parametrize("C, K, eps", [(4, 3, 0.1), (2, 2, 0.0), (2, 4, 0.49), (5, 1, 0.3), (3, 3, 2 / 3 - 1e-9)])
def test_symmetric_closed_form(C, K, eps):
    m = ModeModel.symmetric(C, K, eps)
    kappa = autograd_force(m)
    if K > 1:
        assert kappa[0, 1] == pytest.approx(kappa_symmetric(eps, C, K), abs=1e-12)
        assert autograd_force(m, "easy")[0, 1] == pytest.approx(kappa_symmetric_eps(eps, C, K), abs=1e-12)
    assert kappa_symmetric(eps, C, K) >= 0


def test_force_vanishes_only_where_labels_carry_no_information():
    assert kappa_symmetric(2 / 3, 3, 2) == pytest.approx(0.0, abs=1e-15)
    assert kappa_symmetric(0.3, 3, 2) > 0 and kappa_symmetric(0.9, 3, 2) > 0


def test_check_t1_holds():
    c = check_t1()
    assert c.holds, c.evidence
    assert c.evidence["max_abs_error_closed_form_vs_autograd"] < 1e-9
