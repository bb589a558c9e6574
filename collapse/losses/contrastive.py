r"""Contrastive loss (Hadsell et al. 2006), in pytorch-metric-learning's form.

.. math::
    \ell^+_{ap} = [D_{ap} - m_+]_+ , \qquad \ell^-_{an} = [m_- - D_{an}]_+ .

With ``m_+ = 0`` every positive pair is pulled to distance 0, so a class's modes have nowhere to stay apart:
its minimisers are class-collapsed whatever the noise level.

One mined pair. When the sampler selects exactly one positive and one negative pair in a batch (e.g. labels
``[1, 1, 0, 0]`` with easy positives and semi-hard negatives, where only one anchor has a semi-hard negative), the
loss here is the terms of that pair, :math:`\ell^+ + \ell^-` averaged as usual. pytorch-metric-learning 2.9.0
returns 0 instead: its ``GenericPairLoss`` returns zero losses whenever every index tuple holds at most one entry
(a guard that also catches the single-pair case). We keep the pair: it is a valid selection and dropping it would
silently stop the gradient of such batches. ``tests/test_interop.py`` pins both behaviours.
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
