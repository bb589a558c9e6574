"""Per-group noise rates: LabelNoise(eps=(eps_0, ..., eps_{G-1})) and draw_labels with a (G, N, C) stack."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from collapse.data import NOISE_MODELS, LabelNoise, draw_labels, transition_matrix
from tests.conftest import scaled_settings

MC = np.repeat(np.arange(3), [2, 3, 1]).astype(np.int64)  # 6 modes in 3 classes


def _gen(seed):
    return torch.Generator().manual_seed(seed)


@scaled_settings(25)
@given(
    kind=st.sampled_from(NOISE_MODELS),
    rates=st.lists(st.floats(0.0, 0.95), min_size=1, max_size=5),
    other=st.floats(0.0, 0.95),
    seed=st.integers(0, 2**16),
)
def test_group_labels_depend_only_on_their_own_rate(kind, rates, other, seed):
    """Group g of a stacked draw is the group g of a draw where every group has rate eps_g (same uniforms)."""
    G = len(rates)
    modes = torch.randint(0, len(MC), (G, 40), generator=_gen(seed))
    mixed = LabelNoise(kind, rates).draw(modes, MC, 3, _gen(seed + 1))
    for g, e in enumerate(rates):
        alone = LabelNoise(kind, [e] * G).draw(modes, MC, 3, _gen(seed + 1))
        assert torch.equal(mixed[g], alone[g])
        changed = LabelNoise(kind, [other if h != g else e for h in range(G)]).draw(modes, MC, 3, _gen(seed + 1))
        assert torch.equal(mixed[g], changed[g])
        if e > 0:  # a positive scalar rate uses the same uniforms, so it gives the same labels
            assert torch.equal(mixed[g], LabelNoise(kind, e).draw(modes, MC, 3, _gen(seed + 1))[g])


def test_stacked_matrix_and_frequencies():
    noise = LabelNoise("symmetric", (0.0, 0.3, 0.6))
    T = noise.matrix(MC, 3)
    assert T.shape == (3, 6, 3) and noise.n_groups == 3 and LabelNoise(eps=0.1).n_groups is None
    for g, e in enumerate(noise.eps):
        assert torch.equal(T[g], transition_matrix("symmetric", e, MC, 3))
    modes = torch.zeros(3, 50_000, dtype=torch.long)  # mode 0, class 0
    y = noise.draw(modes, MC, 3, _gen(0))
    flipped = (y != 0).double().mean(1)
    # Binomial standard error at n = 50 000 is below 0.0023; 5 of them is a bound that a correct draw never misses.
    assert flipped[0] == 0.0
    assert abs(flipped[1] - 0.3) < 0.012 and abs(flipped[2] - 0.6) < 0.012


def test_zero_rates_give_clean_labels_but_still_draw():
    """A zero rate in a stack gives exactly the true classes; the stack draws its uniforms whatever the rates."""
    modes = torch.randint(0, 6, (2, 30), generator=_gen(0))
    g = _gen(3)
    y = LabelNoise(eps=(0.0, 0.0)).draw(modes, MC, 3, g)
    assert torch.equal(y, torch.as_tensor(MC)[modes].long())
    assert not torch.equal(g.get_state(), _gen(3).get_state())


def test_sequences_are_normalised_to_tuples_of_floats():
    assert LabelNoise(eps=[0, 0.1]).eps == (0.0, 0.1)
    assert LabelNoise(eps=np.array([0.2, 0.1])).eps == (0.2, 0.1)
    assert LabelNoise(eps=torch.tensor([0.5])).eps == (0.5,)
    assert LabelNoise(eps=np.float64(0.25)).eps == 0.25


@pytest.mark.parametrize(
    ("eps", "exc", "match"),
    [
        ((), ValueError, r"eps must be a rate in \[0, 1\) or a non-empty sequence of rates .*, got \[\]"),
        ((0.1, 1.0), ValueError, r"eps\[1\] must be in \[0, 1\), got 1"),
        ((0.1, "a"), TypeError, r"eps\[1\] must be a real number, got 'a'"),
        ("0.1", TypeError, r"eps must be a real number, got '0.1'"),
    ],
)
def test_bad_rates(eps, exc, match):
    with pytest.raises(exc, match=match):
        LabelNoise(eps=eps)


def test_stack_needs_one_row_of_modes_per_group():
    with pytest.raises(ValueError, match=r"a stack of G=2 transition matrices needs modes of shape .*, got \(3, 4\)"):
        LabelNoise(eps=(0.1, 0.2)).draw(torch.zeros(3, 4, dtype=torch.long), MC, 3, 0)
    T = LabelNoise(eps=(0.1, 0.2)).matrix(MC, 3)
    with pytest.raises(ValueError, match=r"T must be row-stochastic"):
        draw_labels(torch.zeros(2, 4, dtype=torch.long), T * 2, 0)


def test_trainer_checks_the_number_of_rates():
    from collapse.experiment import SimConfig, train_configuration

    with pytest.raises(ValueError, match=r"noise has 3 per-group rates but n_groups=2; give one rate per group"):
        train_configuration(SimConfig(steps=1), noise=LabelNoise(eps=(0.1, 0.2, 0.3)), n_groups=2)
