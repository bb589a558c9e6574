r"""Triplet margin loss (Weinberger & Saul 2009; Schroff et al. 2015).

.. math::
    \ell_{apn} = [D_{ap} - D_{an} + \alpha]_+ .

Use ``distance="euclidean"`` for the distance form and ``distance="sqeuclidean"`` for the squared form.
A zero-loss configuration only needs every negative ``alpha`` farther than every positive, so without
label noise a class may keep several modes apart.

One formula, two layouts: :meth:`TripletMarginLoss.term` is applied to the listed triplets (``compute_terms``, the
index path the theory and the all-positives rule use) and to one triplet per anchor with a mask (``anchor_terms``,
the fixed-shape step of one-positive-per-anchor samplers; see :mod:`collapse.losses.base`).
"""

from __future__ import annotations

import torch

from collapse._validation import check_real
from collapse.losses.base import MetricLoss, triplet_layout
from collapse.losses.terms import Terms
from collapse.sampling.selection import AnchorSelection
from collapse.sampling.tuples import Tuples

__all__ = ["TripletMarginLoss"]


class TripletMarginLoss(MetricLoss):
    pairwise_terms = True

    def __init__(self, margin: float = 0.2, **kwargs) -> None:
        super().__init__(**kwargs)
        self.margin = check_real("margin", margin)

    def term(self, d_ap: torch.Tensor, d_an: torch.Tensor) -> torch.Tensor:
        r""":math:`[D_{ap} - D_{an} + \alpha]_+`, elementwise."""
        return torch.relu(d_ap - d_an + self.margin)

    def compute_terms(self, dist: torch.Tensor, tuples: Tuples, labels: torch.Tensor) -> dict[str, Terms]:
        t = tuples.triplets
        losses = self.term(dist[t.g, t.a, t.p], dist[t.g, t.a, t.n])
        return {"triplet_loss": Terms(losses, t.g, (t.a, t.p, t.n), "triplet")}

    def anchor_terms(self, dist, selection: AnchorSelection, labels: torch.Tensor) -> dict[str, Terms]:
        d_ap, d_an, g, idx, mask = triplet_layout(dist, selection)
        return {"triplet_loss": Terms(self.term(d_ap, d_an), g, idx, "triplet", mask=mask)}
