r"""Margin loss (Wu et al. 2017, "Sampling matters in deep embedding learning").

For a triplet :math:`(a, p, n)` with class boundary :math:`\beta` (a constant, or a learnable
:math:`\beta_{y_a}` per class) and margin :math:`\alpha`:

.. math::
    \ell^+ = [D_{ap} - \beta + \alpha]_+ , \qquad \ell^- = [\beta - D_{an} + \alpha]_+ ,

reduced as :math:`\sum(\ell^+ + \ell^-) / \#\{\text{non-zero } \ell^\pm\}` plus :math:`\nu\,\beta` when
:math:`\beta` is learned. Positives only need to be closer than :math:`\beta - \alpha`, so two modes of a class
may rest up to that distance apart. Learning :math:`\beta` can move that band.

The published default pairs it with distance-weighted negatives.

One formula, two layouts: :meth:`MarginLoss.terms_of` serves the listed triplets (``compute_terms``) and the
fixed-shape step with one triplet per anchor and a mask (``anchor_terms``, see :mod:`collapse.losses.base`).
"""

from __future__ import annotations

import torch

from collapse._validation import check_int, check_real
from collapse.losses.base import MetricLoss, triplet_layout
from collapse.losses.terms import Terms
from collapse.sampling.selection import AnchorSelection
from collapse.sampling.tuples import Tuples

__all__ = ["MarginLoss"]


class MarginLoss(MetricLoss):
    """Parameters: ``margin`` (alpha), ``beta`` (initial boundary), ``learn_beta``, ``num_classes`` (one beta per
    class when given), ``num_groups`` (one set of betas per independent run when training G runs at once) and
    ``nu`` (weight of the beta regulariser)."""

    default_negative = "distance"
    default_reducer = "divisor"
    pairwise_terms = True

    def __init__(
        self,
        margin: float = 0.2,
        beta: float = 1.2,
        *,
        learn_beta: bool = False,
        num_classes: int | None = None,
        num_groups: int = 1,
        nu: float = 0.0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.margin = check_real("margin", margin)
        self.nu = check_real("nu", nu, low=0.0)
        self.learn_beta = bool(learn_beta)
        n_cls = 1 if num_classes is None else check_int("num_classes", num_classes, low=1)
        self.per_class = num_classes is not None
        init = torch.full((check_int("num_groups", num_groups, low=1), n_cls), check_real("beta", beta))
        self.beta = torch.nn.Parameter(init) if self.learn_beta else torch.nn.Buffer(init)

    def _beta(self, g: torch.Tensor, a: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        beta = self.beta if self.beta.shape[0] > 1 else self.beta.expand(int(labels.shape[0]), -1)
        # The range check reads a value back; a compiled step (torch.compile) skips it.
        if self.per_class and labels.numel() and not torch.compiler.is_compiling():
            if int(labels.max()) >= beta.shape[1]:
                raise ValueError(f"labels must be < num_classes={beta.shape[1]}, got {int(labels.max())}")
        cls = labels[g, a] if self.per_class else torch.zeros_like(a)
        return beta[g, cls]

    def terms_of(
        self, d_ap: torch.Tensor, d_an: torch.Tensor, beta: torch.Tensor, group, indices, mask=None
    ) -> dict[str, Terms]:
        r"""The sub-losses :math:`\ell^+, \ell^-` (and :math:`\nu\beta` when per-class betas are learned) of
        triplets with distances ``d_ap``, ``d_an`` and boundaries ``beta``, elementwise."""
        beta = beta.to(d_ap.dtype)
        terms = {
            "pos_loss": Terms(torch.relu(d_ap - beta + self.margin), group, indices, "triplet", mask),
            "neg_loss": Terms(torch.relu(beta - d_an + self.margin), group, indices, "triplet", mask),
        }
        if self.learn_beta and self.per_class and self.nu > 0:
            terms["beta_reg_loss"] = Terms(self.nu * beta, group, indices[:1], "anchor", mask)
        return terms

    def compute_terms(self, dist: torch.Tensor, tuples: Tuples, labels: torch.Tensor) -> dict[str, Terms]:
        t = tuples.triplets
        beta = self._beta(t.g, t.a, labels)
        return self.terms_of(dist[t.g, t.a, t.p], dist[t.g, t.a, t.n], beta, t.g, (t.a, t.p, t.n))

    def anchor_terms(self, dist, selection: AnchorSelection, labels: torch.Tensor) -> dict[str, Terms]:
        d_ap, d_an, g, idx, mask = triplet_layout(dist, selection)
        beta = self._beta(selection.group_index, selection.anchor_index, labels)
        beta = beta if selection.per_pair else beta.unsqueeze(-1)
        return self.terms_of(d_ap, d_an, beta, g, idx, mask)

    def regularizer(
        self, tuples: Tuples | AnchorSelection, labels: torch.Tensor, per_group: torch.Tensor
    ) -> torch.Tensor:
        if self.learn_beta and not self.per_class and self.nu > 0:
            return (self.nu * self.beta[:, 0].to(per_group.dtype)).expand_as(per_group)
        return torch.zeros_like(per_group)
