r"""Supervised contrastive loss (SupCon; Khosla et al. 2020, "Supervised Contrastive Learning", the
:math:`\mathcal L^{sup}_{out}` form), composable with the positive and negative rules.

With logits :math:`s_{ij} = S_{ij}/\tau` (:math:`S = 1 - D_{\cos}`, the cosine similarity), an anchor :math:`a`
with selected positives :math:`P_a` (the positive rule) and selected negatives :math:`N_a` (the negative rule):

.. math::
    \ell_a = -\frac{1}{|P_a|}\sum_{p \in P_a} \log \frac{e^{s_{ap}}}{\sum_{k \in A_a(p)} e^{s_{ak}}},
    \qquad A_a(p) = \begin{cases} P_a \cup N_a & \text{positives in the denominator (default)}\\
                                  \{p\} \cup N_a & \text{otherwise.}\end{cases}

With the published rules (all positives, all negatives) :math:`P_a \cup N_a` is every other sample of the batch,
Khosla et al.'s :math:`A(i)`, and the loss equals pytorch-metric-learning's ``SupConLoss`` (which, like us, takes
the denominator over the selected pairs when a miner selects them). Anchors without a positive have no term.

**SupCon with easy positive sampling (EPS).** ``positive="easy"`` makes the nearest same-label sample the *only*
positive, :math:`P_a = \{e_a\}`; both denominators are then :math:`\{e_a\} \cup N_a`, and

.. math:: \ell_a = -\log \frac{e^{s_{a e_a}}}{e^{s_{a e_a}} + \sum_{n \in N_a} e^{s_{an}}},

which is exactly the easy-positive NCA loss of Xuan et al. 2020 (:class:`~collapse.losses.EasyPositiveNCALoss`
with the same temperature and negatives; a test checks the two agree). The other same-label samples are neither
pulled nor pushed.

**SupCon with weighted EPS** (``positive_weights``, e.g. :class:`~collapse.losses.positive_weights.
SoftEasyPositiveWeights`; the loss name ``supcon-weighted``). Every selected positive counts with a weight
:math:`w_{ap}` (summing to 1 over :math:`P_a`; :math:`w_{ap} = \operatorname{softmax}_{p\in P_a}(-D_{ap}/\tau_w)`,
the nearest positive weighing most) in place of :math:`1/|P_a|`:

.. math:: \ell_a = -\sum_{p \in P_a} w_{ap} \log \frac{e^{s_{ap}}}{\sum_{k \in A_a(p)} e^{s_{ak}}} .

The weights come from the detached distances (a soft selection, no gradient). With all positives, :math:`\tau_w
\to 0` gives the easy-positive SupCon above (with ``positives_in_denominator=False`` exactly; with positives in the
denominator the other positives stay in it) and :math:`\tau_w \to \infty` the published SupCon; at
:math:`\tau_w = \tau` with positives in the denominator the gradient is that of Khosla et al.'s
:math:`\mathcal L^{sup}_{in}` (the source and the identity are in :mod:`collapse.losses.positive_weights`).

With the published reducer (average over the anchors with a non-zero term, as pytorch-metric-learning; the paper
sums) and temperature 0.1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from collapse._fastgrad import log_sum_exp
from collapse._validation import check_real
from collapse.losses.base import MetricLoss
from collapse.losses.positive_weights import PositiveWeights
from collapse.losses.terms import Terms
from collapse.sampling.all_pairs import AllPairsSelection
from collapse.sampling.tuples import Tuples

__all__ = ["SupConLoss", "masked_logsumexp"]


def masked_logsumexp(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    r"""Row-wise :math:`\log\sum_{j: m_j} e^{x_j}`; ``-inf`` for an empty row (its gradient is 0, not NaN)."""
    filled = x.masked_fill(~mask, float("-inf"))
    empty = ~mask.any(-1, keepdim=True)
    # An all -inf row would give NaN gradients; give it a finite dummy value and mask the result instead.
    safe = torch.where(empty, torch.zeros_like(filled), filled)
    out = torch.logsumexp(safe, dim=-1)
    return out.masked_fill(empty.squeeze(-1), float("-inf"))


class SupConLoss(MetricLoss):
    """Parameters: ``temperature`` (tau > 0), ``positives_in_denominator`` and ``positive_weights`` (``None``: the
    published uniform :math:`1/|P_a|`; or a :class:`~collapse.losses.positive_weights.PositiveWeights`), see the
    module docstring."""

    default_positive = "all"
    default_negative = "all"
    default_distance = "cosine"
    default_reducer = "avg_nonzero"

    def __init__(
        self,
        temperature: float = 0.1,
        *,
        positives_in_denominator: bool = True,
        positive_weights: PositiveWeights | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.temperature = check_real("temperature", temperature, low=0.0, low_inclusive=False)
        self.positives_in_denominator = bool(positives_in_denominator)
        if positive_weights is not None and not isinstance(positive_weights, PositiveWeights):
            raise TypeError(
                f"positive_weights must be None or a collapse.losses.positive_weights.PositiveWeights, "
                f"got {type(positive_weights).__name__}"
            )
        self.positive_weights = positive_weights

    #: The dense all-pairs step (:meth:`all_pairs_terms`) takes the similarity matrix (cosine: the Gram matrix).
    matrix_is_similarity = True

    def _dense_pairs(self, sampler) -> bool:
        # The published form only (uniform weights, positives in the denominator); the others stay listed.
        return super()._dense_pairs(sampler) and self.positive_weights is None and self.positives_in_denominator

    def all_pairs_terms(self, sim: torch.Tensor, pairs: AllPairsSelection) -> dict[str, Terms]:
        r"""The published SupCon with every positive and every negative: :math:`\ell_a = \log\sum_{k \ne a}
        e^{s_{ak}} - \frac{1}{|P_a|}\sum_{p \in P_a} s_{ap}` (an anchor with a positive has every other sample in
        :math:`P_a \cup N_a`), for the anchors with a positive."""
        a = pairs.anchor_index
        # log sum_{k != a} exp(S_ak / tau): the anchor's own column excluded by a scatter, tau folded into the pass.
        exclude = a.unsqueeze(-1)
        if pairs.segments is None:
            lse = log_sum_exp(sim, 1.0 / self.temperature, exclude=exclude)
            positive, _ = pairs.masks
            total = torch.where(positive, sim, 0.0).sum(-1)
            count = positive.sum(-1)
        else:
            # On eager CPU steps the positives are read from the label segment (B x M), not masked over B x B, by
            # the same operation as the denominator (pick), so that their gradient joins its dense gradient of S.
            members, counted = pairs.segment_positives()
            lse, same = log_sum_exp(sim, 1.0 / self.temperature, exclude=exclude, pick=members)
            total = torch.where(counted, same, 0.0).sum(-1)
            count = pairs.segments.count - 1
        losses = lse - total / (count.clamp_min(1).to(sim.dtype) * self.temperature)
        return {"loss": Terms(losses, pairs.group_index, (a,), "anchor", mask=pairs.has_positive)}

    def logits(self, dist: torch.Tensor) -> torch.Tensor:
        """:math:`s = S / \\tau`, the (G, B, B) logits."""
        return self.distance.similarity(dist) / self.temperature

    def compute_terms(self, dist: torch.Tensor, tuples: Tuples, labels: torch.Tensor) -> dict[str, Terms]:
        return {"loss": self.supcon_terms(self.logits(dist), tuples, dist)}

    def supcon_terms(self, logits: torch.Tensor, tuples: Tuples, dist: torch.Tensor | None = None) -> Terms:
        """The per-anchor SupCon terms of (G, B, B) logits, for the anchors that have a positive (``dist``, the
        distances, is read only by the positive weights)."""
        n_groups, batch = tuples.n_groups, tuples.batch_size
        pos = tuples.positive_pairs
        neg = tuples.negative_mask()
        flat = pos.g * batch + pos.a
        count = torch.bincount(flat, minlength=n_groups * batch).reshape(n_groups, batch)
        g, a = (count > 0).nonzero(as_tuple=True)
        s_ap = pos.gather(logits)
        if self.positive_weights is None:
            # The published uniform 1/|P_a| (a division after the sum: the same rounding as before weights existed).
            weight, divisor = None, count[g, a].to(logits.dtype)
        else:
            if dist is None:
                raise ValueError("dist is required when the loss has positive_weights")
            weight, divisor = self.positive_weights.weights(dist, pos).to(logits.dtype), None
        if self.positives_in_denominator:
            denom = masked_logsumexp(logits[g, a], (pos.mask(n_groups, batch) | neg)[g, a])
            # -sum_p w_ap (s_ap - lse_a) = lse_a - sum_p w_ap s_ap (the weights sum to 1)
            per_pair = s_ap
        else:
            neg_lse = masked_logsumexp(logits, neg)  # (G, B); -inf where an anchor has no negative
            per_pair = F.softplus(neg_lse[pos.g, pos.a] - s_ap)  # log(e^{s_ap} + sum_n e^{s_an}) - s_ap
        if weight is not None:
            per_pair = per_pair * weight
        total = torch.zeros(n_groups, batch, dtype=logits.dtype, device=logits.device).index_put(
            (pos.g, pos.a), per_pair, accumulate=True
        )[g, a]
        if divisor is not None:
            total = total / divisor
        losses = denom - total if self.positives_in_denominator else total
        return Terms(losses, g, (a,), "anchor")

    def extra_repr(self) -> str:
        weights = "" if self.positive_weights is None else f"positive_weights={self.positive_weights!r}, "
        return f"temperature={self.temperature}, positives_in_denominator={self.positives_in_denominator}, " + (
            weights + super().extra_repr()
        )
