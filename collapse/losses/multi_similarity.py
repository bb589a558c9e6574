r"""Multi-similarity loss (Wang et al. 2019), on the cosine similarity :math:`S = 1 - D_{\cos}`.

For an anchor :math:`a` with selected positives :math:`P_a` and negatives :math:`N_a`:

.. math::
    \ell_a = \frac1\alpha \log\Big(1 + \sum_{p\in P_a} e^{-\alpha(S_{ap}-\lambda)}\Big)
           + \frac1\beta  \log\Big(1 + \sum_{n\in N_a} e^{\beta(S_{an}-\lambda)}\Big),

averaged over anchors that have a positive. With easy positive sampling :math:`P_a` is the single nearest
same-label sample.

One formula, three layouts: the halves :meth:`MultiSimilarityLoss.negative_half` and
:meth:`~MultiSimilarityLoss.positive_half` serve the listed anchors (``compute_terms``), the fixed-shape step
(``anchor_terms``: every anchor's row of the similarity matrix, weighted by whether it has a positive; see
:mod:`collapse.losses.base`) and the all x all rule as row masks (``all_pairs_terms``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from collapse._fastgrad import log1p_sum_exp
from collapse._validation import check_real
from collapse.losses.base import MetricLoss, anchor_values
from collapse.losses.terms import Terms
from collapse.sampling.all_pairs import AllPairsSelection
from collapse.sampling.selection import AnchorSelection
from collapse.sampling.tuples import Tuples

__all__ = ["MultiSimilarityLoss", "masked_log1p_sum_exp"]


def masked_log1p_sum_exp(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    r"""Row-wise :math:`\log(1 + \sum_{j: m_j} e^{x_j})`, computed stably (:func:`collapse._fastgrad.log1p_sum_exp`)."""
    return log1p_sum_exp(x, mask)


class MultiSimilarityLoss(MetricLoss):
    default_distance = "cosine"
    default_reducer = "mean"

    def __init__(self, alpha: float = 2.0, beta: float = 50.0, base: float = 0.5, **kwargs) -> None:
        super().__init__(**kwargs)
        self.alpha = check_real("alpha", alpha, low=0.0, low_inclusive=False)
        self.beta = check_real("beta", beta, low=0.0, low_inclusive=False)
        self.base = check_real("base", base)

    matrix_is_similarity = True

    def reads_matrix(self, sampler) -> bool:
        return True  # the negative half reads whole rows whatever the negative rule

    def negative_half(
        self,
        rows: torch.Tensor,
        mask: torch.Tensor | None,
        exclude: torch.Tensor | None = None,
        pick: torch.Tensor | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        r""":math:`\frac1\beta \log(1 + \sum_{n: m_n} e^{\beta(S_{an} - \lambda)})` per row (negatives given by a
        boolean ``mask``, or as every column except the indices ``exclude``, see
        :func:`~collapse._fastgrad.log1p_sum_exp`). With ``pick`` (one column per row, the positive) also returns
        those entries of ``rows``, read in the same autograd operation."""
        out = log1p_sum_exp(rows, mask, self.beta, self.base, exclude=exclude, pick=pick)
        if pick is None:
            return out / self.beta
        return out[0] / self.beta, out[1]

    def positive_half(self, s_ap: torch.Tensor) -> torch.Tensor:
        r""":math:`\frac1\alpha \log(1 + e^{-\alpha(S_{ap} - \lambda)})` of one positive per anchor (softplus)."""
        return F.softplus(-self.alpha * (s_ap - self.base)) / self.alpha

    def compute_terms(self, dist: torch.Tensor, tuples: Tuples, labels: torch.Tensor) -> dict[str, Terms]:
        sim = self.distance.similarity(dist)
        n_groups, batch = tuples.n_groups, tuples.batch_size
        pos_pairs = tuples.positive_pairs
        flat = pos_pairs.g * batch + pos_pairs.a
        per_anchor = torch.bincount(flat, minlength=n_groups * batch)
        g, a = (per_anchor > 0).reshape(n_groups, batch).nonzero(as_tuple=True)
        # Rows of the anchors with a positive: a view of the matrix when every anchor has one (no (B, B) copy).
        every = len(g) == n_groups * batch
        rows = sim.reshape(-1, batch) if every else sim[g, a]
        neg = tuples.negative_mask()
        neg_rows = neg.reshape(-1, batch) if every else neg[g, a]
        losses = self.negative_half(rows, neg_rows)
        if len(g) and int(per_anchor.max()) == 1:
            # One positive per anchor (easy/hard/random rules), in anchor order.
            losses = losses + self.positive_half(pos_pairs.gather(sim))
        else:
            pos = pos_pairs.mask(n_groups, batch)
            pos_rows = pos.reshape(-1, batch) if every else pos[g, a]
            losses = losses + log1p_sum_exp(rows, pos_rows, -self.alpha, self.base) / self.alpha
        return {"loss": Terms(losses, g, (a,), "anchor")}

    def all_pairs_terms(self, sim: torch.Tensor, pairs: AllPairsSelection) -> dict[str, Terms]:
        # Every positive and every negative of each anchor; anchors without a positive are not terms.
        if pairs.segments is None:
            positive, negative = pairs.masks
            positive_half = log1p_sum_exp(sim, positive, -self.alpha, self.base) / self.alpha
            losses = self.negative_half(sim, negative) + positive_half
        else:
            # On eager CPU steps, by label segment: the negatives are every column but the anchor's label members
            # (a scatter, as in the easy-positive step), the positives the members themselves, gathered (B x M, not
            # an exponential pass over B x B). The members' similarities are read by the negative half's own
            # operation (pick), so that their gradient joins its dense gradient of S.
            members, counted = pairs.segment_positives()
            negative_half, same = self.negative_half(sim, None, members, pick=members)
            losses = negative_half + log1p_sum_exp(same, counted, -self.alpha, self.base) / self.alpha
        return {"loss": Terms(losses, pairs.group_index, (pairs.anchor_index,), "anchor", mask=pairs.has_positive)}

    def anchor_terms(self, sim: torch.Tensor, selection: AnchorSelection, labels: torch.Tensor) -> dict[str, Terms]:
        s = selection
        if s.per_pair:
            # One negative per anchor: the sum has the single term of the selected negative.
            s_ap, s_an = anchor_values(sim, s.positive, s.negative)
            negative = F.softplus(self.beta * (s_an - self.base)) / self.beta
            kept = s.kept
        else:
            # The negatives are every sample outside the anchor's label: with the label's members listed (the
            # eager CPU selection lists them), those columns are excluded by index; else by the dense label mask.
            # S_ap is read by the same operation, so that its gradient joins the one dense gradient of S.
            members = s.same_label_members
            mask = s.negative_mask if members is None else None
            negative, s_ap = self.negative_half(sim, mask, members, pick=s.positive)
            kept = s.has_positive
        losses = negative + self.positive_half(s_ap)
        return {"loss": Terms(losses, s.group_index, (s.anchor_index,), "anchor", mask=kept)}
