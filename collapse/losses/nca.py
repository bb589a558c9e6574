r"""Softmax (NCA) loss with easy positives, after Xuan et al. 2020 ("Improved embeddings with easy positive
triplet mining").

For a positive pair :math:`(a, p)` and the anchor's selected negatives :math:`N_a`, with similarity
:math:`S = 1 - D_{\cos}` and temperature :math:`\tau`:

.. math::
    \ell_{ap} = -\log \frac{e^{S_{ap}/\tau}}{e^{S_{ap}/\tau} + \sum_{n\in N_a} e^{S_{an}/\tau}} .

Its default sampler is easy positives with all negatives; with one negative per pair (e.g. hard negatives,
Xuan et al.'s EPHN) the sum has a single term and :math:`\ell = \operatorname{softplus}((S_{an}-S_{ap})/\tau)`.

One formula, two layouts: :meth:`EasyPositiveNCALoss.pair_term` and :meth:`~EasyPositiveNCALoss.row_term` serve
the listed pairs (``compute_terms``) and the fixed-shape step with one pair per anchor and a mask
(``anchor_terms``, see :mod:`collapse.losses.base`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from collapse._validation import check_real
from collapse.losses.base import MetricLoss, anchor_values
from collapse.losses.terms import Terms
from collapse.sampling.selection import AnchorSelection
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

    def pair_term(self, d_ap: torch.Tensor, d_an: torch.Tensor) -> torch.Tensor:
        """The loss with a single negative, from the two distances, elementwise."""
        s_an = self.distance.similarity(d_an) / self.temperature
        s_ap = self.distance.similarity(d_ap) / self.temperature
        return F.softplus(s_an - s_ap)

    def row_term(self, rows: torch.Tensor, neg: torch.Tensor, s_ap: torch.Tensor) -> torch.Tensor:
        """The loss of a positive of similarity ``s_ap`` against the similarity ``rows`` where ``neg``."""
        logits = rows.masked_fill(~neg, float("-inf")) / self.temperature
        s_ap = s_ap / self.temperature
        return torch.logsumexp(torch.cat([s_ap.unsqueeze(-1), logits], dim=-1), dim=-1) - s_ap

    def compute_terms(self, dist: torch.Tensor, tuples: Tuples, labels: torch.Tensor) -> dict[str, Terms]:
        if tuples.per_positive_negatives:
            t = tuples.triplets
            losses = self.pair_term(dist[t.g, t.a, t.p], dist[t.g, t.a, t.n])
            return {"loss": Terms(losses, t.g, (t.a, t.p), "pos_pair")}
        sim = self.distance.similarity(dist)
        pos = tuples.positive_pairs
        losses = self.row_term(sim[pos.g, pos.a], tuples.negative_mask()[pos.g, pos.a], pos.gather(sim))
        return {"loss": Terms(losses, pos.g, (pos.a, pos.b), "pos_pair")}

    def anchor_terms(self, dist, selection: AnchorSelection, labels: torch.Tensor) -> dict[str, Terms]:
        s = selection
        idx = (s.anchor_index, s.positive)
        if s.per_pair:
            d_ap, d_an = anchor_values(dist, s.positive, s.negative)
            return {"loss": Terms(self.pair_term(d_ap, d_an), s.group_index, idx, "pos_pair", mask=s.kept)}
        sim = self.distance.similarity(dist)
        (s_ap,) = anchor_values(sim, s.positive)
        losses = self.row_term(sim, s.negative_mask, s_ap)
        return {"loss": Terms(losses, s.group_index, idx, "pos_pair", mask=s.kept)}
