r"""Softmax (NCA) loss with easy positives, after Xuan et al. 2020 ("Improved embeddings with easy positive
triplet mining").

For a positive pair :math:`(a, p)` and the anchor's selected negatives :math:`N_a`, with similarity
:math:`S = 1 - D_{\cos}` and temperature :math:`\tau`:

.. math::
    \ell_{ap} = -\log \frac{e^{S_{ap}/\tau}}{e^{S_{ap}/\tau} + \sum_{n\in N_a} e^{S_{an}/\tau}} .

Its default sampler is easy positives with all negatives; with one negative per pair (e.g. hard negatives,
Xuan et al.'s EPHN) the sum has a single term and :math:`\ell = \operatorname{softplus}((S_{an}-S_{ap})/\tau)`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from collapse._validation import check_real
from collapse.losses.base import MetricLoss
from collapse.losses.terms import Terms
from collapse.sampling.tuples import Tuples

__all__ = ["EasyPositiveNCALoss"]


class EasyPositiveNCALoss(MetricLoss):
    default_positive = "easy"
    default_distance = "cosine"
    default_reducer = "mean"
    pairwise_terms = True

    def __init__(self, temperature: float = 0.1, **kwargs) -> None:
        super().__init__(**kwargs)
        self.temperature = check_real("temperature", temperature, low=0.0, low_inclusive=False)

    def compute_terms(self, dist: torch.Tensor, tuples: Tuples, labels: torch.Tensor) -> dict[str, Terms]:
        if tuples.per_positive_negatives:
            t = tuples.triplets
            s_an = self.distance.similarity(dist[t.g, t.a, t.n]) / self.temperature
            s_ap = self.distance.similarity(dist[t.g, t.a, t.p]) / self.temperature
            losses = F.softplus(s_an - s_ap)
            return {"loss": Terms(losses, t.g, (t.a, t.p), "pos_pair")}
        logits = self.distance.similarity(dist) / self.temperature
        pos = tuples.positive_pairs
        rows = logits[pos.g, pos.a].masked_fill(~tuples.negative_mask()[pos.g, pos.a], float("-inf"))
        s_ap = pos.gather(logits)
        losses = torch.logsumexp(torch.cat([s_ap.unsqueeze(-1), rows], dim=-1), dim=-1) - s_ap
        return {"loss": Terms(losses, pos.g, (pos.a, pos.b), "pos_pair")}
