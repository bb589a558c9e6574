"""The minimiser judges collapse at the collapse instrument's resolution (half the loss's margin), not at a fixed
distance: the same configuration is collapsed for a loss whose margin is wide and kept for one whose margin is
narrow."""

import math

import pytest
import torch

from collapse.experiment import instrument_margin
from collapse.theory import ModeModel
from collapse.theory.minimize import collapse_resolution, minimize_population
from collapse.theory.population import build_loss


def siblings_apart(distance: float) -> torch.Tensor:
    """Two classes of two modes on the unit circle; the modes of each class ``distance`` apart (chord)."""
    t = math.asin(distance / 2)
    z = [[math.cos(t), math.sin(t)], [math.cos(t), -math.sin(t)], [-math.cos(t), math.sin(t)],
         [-math.cos(t), -math.sin(t)]]
    return torch.tensor([z], dtype=torch.float64)


@pytest.mark.parametrize(
    "loss, kwargs, collapsed",
    [
        ("triplet", {"margin": 0.2}, False),  # resolution 0.1 < 0.15
        ("triplet", {"margin": 0.4}, True),  # resolution 0.2 > 0.15
        ("contrastive", {}, True),  # margin neg - pos = 1.0: resolution 0.5
    ],
)
def test_collapse_is_judged_at_half_the_loss_margin(loss, kwargs, collapsed):
    m = ModeModel.symmetric(2, 2, 0.0)
    res = minimize_population(m, loss, "random", "all", dim=2, seeds=1, steps=0, init=siblings_apart(0.15), **kwargs)
    assert res.separation[0] == pytest.approx(0.15)
    assert res.resolution == pytest.approx(instrument_margin(build_loss(loss, "random", "all", **kwargs)) / 2)
    assert bool(res.collapsed[0]) is collapsed


def test_resolution_is_half_the_instrument_margin_for_every_theory_loss():
    for loss, margin in [("triplet", 0.2), ("margin", 0.2), ("contrastive", 1.0), ("nca", math.sqrt(0.2))]:
        assert collapse_resolution(build_loss(loss)) == pytest.approx(margin / 2)
