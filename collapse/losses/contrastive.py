r"""Contrastive loss (Hadsell et al. 2006), in pytorch-metric-learning's form.

.. math::
    \ell^+_{ap} = [D_{ap} - m_+]_+ , \qquad \ell^-_{an} = [m_- - D_{an}]_+ .

With ``m_+ = 0`` every positive pair is pulled to distance 0, so a class's modes have nowhere to stay apart:
its minimisers are class-collapsed whatever the noise level.
"""

from __future__ import annotations

import torch

from collapse._validation import check_real
from collapse.losses.base import MetricLoss
from collapse.losses.terms import Terms
from collapse.sampling.tuples import Pairs, Tuples

__all__ = ["ContrastiveLoss"]


def pair_terms(values: torch.Tensor, pairs: Pairs, kind: str) -> Terms:
    return Terms(values, pairs.g, (pairs.a, pairs.b), kind)


class ContrastiveLoss(MetricLoss):
    pairwise_terms = True

    def __init__(self, pos_margin: float = 0.0, neg_margin: float = 1.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.pos_margin = check_real("pos_margin", pos_margin)
        self.neg_margin = check_real("neg_margin", neg_margin)

    def compute_terms(self, dist: torch.Tensor, tuples: Tuples, labels: torch.Tensor) -> dict[str, Terms]:
        pos, neg = tuples.positive_pairs, tuples.negative_pairs
        return {
            "pos_loss": pair_terms(torch.relu(pos.gather(dist) - self.pos_margin), pos, "pos_pair"),
            "neg_loss": pair_terms(torch.relu(self.neg_margin - neg.gather(dist)), neg, "neg_pair"),
        }
