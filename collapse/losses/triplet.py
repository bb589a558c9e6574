r"""Triplet margin loss (Weinberger & Saul 2009; Schroff et al. 2015).

.. math::
    \ell_{apn} = [D_{ap} - D_{an} + \alpha]_+ .

Use ``distance="euclidean"`` for the distance form and ``distance="sqeuclidean"`` for the squared form.
A zero-loss configuration only needs every negative ``alpha`` farther than every positive, so without
label noise a class may keep several modes apart.
"""

from __future__ import annotations

import torch

from collapse._validation import check_real
from collapse.losses.base import MetricLoss
from collapse.losses.terms import Terms
from collapse.sampling.tuples import Tuples

__all__ = ["TripletMarginLoss"]


class TripletMarginLoss(MetricLoss):
    pairwise_terms = True

    def __init__(self, margin: float = 0.2, **kwargs) -> None:
        super().__init__(**kwargs)
        self.margin = check_real("margin", margin)

    def compute_terms(self, dist: torch.Tensor, tuples: Tuples, labels: torch.Tensor) -> dict[str, Terms]:
        t = tuples.triplets
        losses = torch.relu(dist[t.g, t.a, t.p] - dist[t.g, t.a, t.n] + self.margin)
        return {"triplet_loss": Terms(losses, t.g, (t.a, t.p, t.n), "triplet")}
