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

One formula, four layouts: :meth:`ContrastiveLoss.pos_term` and :meth:`~ContrastiveLoss.neg_term` serve the listed
pairs (``compute_terms``), the fixed-shape step with masks (``anchor_terms``, see :mod:`collapse.losses.base`), the
all x all rule as masks over the whole matrix (``all_pairs_terms``), and the same rule without the negative pairs
beyond the margin, whose terms are exactly 0 (``pruned_pairs_terms``).
"""

from __future__ import annotations

import torch

from collapse._validation import check_real
from collapse.losses.base import MetricLoss, anchor_values
from collapse.losses.terms import PrunedTerms, Terms
from collapse.sampling.all_pairs import AllPairsSelection
from collapse.sampling.selection import AnchorSelection
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

    def pos_term(self, d: torch.Tensor) -> torch.Tensor:
        return torch.relu(d - self.pos_margin)

    def neg_term(self, d: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.neg_margin - d)

    def compute_terms(self, dist: torch.Tensor, tuples: Tuples, labels: torch.Tensor) -> dict[str, Terms]:
        pos, neg = tuples.positive_pairs, tuples.negative_pairs
        return {
            "pos_loss": pair_terms(self.pos_term(pos.gather(dist)), pos, "pos_pair"),
            "neg_loss": pair_terms(self.neg_term(neg.gather(dist)), neg, "neg_pair"),
        }

    def all_pairs_terms(self, dist, pairs: AllPairsSelection) -> dict[str, Terms]:
        positive, negative = pairs.masks
        shape = positive.shape
        g = pairs.group_index.unsqueeze(-1).expand(shape)
        a = pairs.anchor_index.unsqueeze(-1).expand(shape)
        b = pairs.anchor_index.unsqueeze(-2).expand(shape)
        return {
            "pos_loss": Terms(self.pos_term(dist), g, (a, b), "pos_pair", mask=positive),
            "neg_loss": Terms(self.neg_term(dist), g, (a, b), "neg_pair", mask=negative),
        }

    #: The largest fraction of the batch's pairs the pruned step keeps as negatives; past it the dense step (one
    #: matrix with autograd) is cheaper than recomputing that many pairs.
    max_pruned_fraction = 0.125

    def pruned_pairs_terms(self, dist, within, pairs: AllPairsSelection) -> dict[str, Terms] | None:
        """Every positive pair (from the label segments), and only the negative pairs inside the margin:
        :math:`[m_- - D_{an}]_+ = 0` wherever :math:`D_{an} \\ge m_-`. Hinges far from their margin are the common
        case (random and trained embeddings alike), and their pairs then cost nothing but the search."""
        n_groups, batch = pairs.labels.shape
        positives_per_anchor = pairs.segments.members.shape[-1] - 1
        dim = dist.embeddings.shape[-1]
        if 8 * positives_per_anchor > batch or positives_per_anchor * dim > 8 * max(batch, dim):
            # Large classes: a distance row per positive pair costs time and memory in proportion to the class size
            # (measured at B = 512, d = 128, steps pruned / dense: 16 samples per class 3.1 / 9.0 ms, 64 per class
            # 7.4 / 9.1 ms, 128 per class 18 / 9.1 ms); past these bounds the matrix is the cheaper way.
            return None
        near = within(self.neg_margin, self.max_pruned_fraction)
        if near is None:
            return None
        g, i, j = near
        others, counted = pairs.positive_members()
        if others.shape[-1]:
            d_ap = torch.stack(dist.anchors(*others.unbind(-1)), dim=-1)
        else:  # every label a singleton: no positive pair
            d_ap = others.new_zeros(others.shape, dtype=dist.dtype)
        shape = others.shape
        a = pairs.anchor_index.unsqueeze(-1).expand(shape)
        positive = Terms(
            self.pos_term(d_ap), pairs.group_index.unsqueeze(-1).expand(shape), (a, others), "pos_pair", mask=counted
        )

        def listing() -> Terms:
            gn, an, n = pairs.masks[1].nonzero(as_tuple=True)
            return Terms(self.neg_term(dist[gn, an, n]), gn, (an, n), "neg_pair")

        values = self.neg_term(dist[g, i, j]) if len(g) else g.new_zeros(0, dtype=dist.dtype)
        negative = PrunedTerms(Terms(values, g, (i, j), "neg_pair"), listing)
        return {"pos_loss": positive, "neg_loss": negative}

    def anchor_terms(self, dist, selection: AnchorSelection, labels: torch.Tensor) -> dict[str, Terms]:
        s = selection
        g, a = s.group_index, s.anchor_index
        if s.per_pair:
            d_ap, d_an = anchor_values(dist, s.positive, s.negative)
            kept = s.kept
            return {
                "pos_loss": Terms(self.pos_term(d_ap), g, (a, s.positive), "pos_pair", mask=kept),
                "neg_loss": Terms(self.neg_term(d_an), g, (a, s.negative), "neg_pair", mask=kept),
            }
        (d_ap,) = anchor_values(dist, s.positive)
        # Every (anchor, other-label sample) of an anchor with a positive: (G, B, B) terms.
        batch = s.batch_size
        b = torch.arange(batch, device=dist.device)
        neg = Terms(
            self.neg_term(dist),
            g.unsqueeze(-1).expand(-1, -1, batch),
            (a.unsqueeze(-1).expand(-1, -1, batch), b.expand(*a.shape, batch)),
            "neg_pair",
            mask=s.negative_mask & s.has_positive.unsqueeze(-1),
        )
        return {"pos_loss": Terms(self.pos_term(d_ap), g, (a, s.positive), "pos_pair", mask=s.has_positive),
                "neg_loss": neg}
