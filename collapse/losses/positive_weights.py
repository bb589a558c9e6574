r"""Positive weighting: how much each selected positive of an anchor counts, as a piece a loss composes with the
positive rule (the rule says *which* same-label samples are positives, the weighting *how much* each counts).

**Soft easy positives** (:class:`SoftEasyPositiveWeights`, the weighted form of easy positive sampling). For an
anchor :math:`a` with selected positives :math:`P_a` (the positive rule's; ``all`` for the weighted EPS) and the
loss's distance :math:`D`,

.. math:: w_{ap} = \frac{e^{-D_{ap}/\tau_w}}{\sum_{p' \in P_a} e^{-D_{ap'}/\tau_w}}, \qquad p \in P_a,

a softmax over the anchor's positives of their negated distances: the nearest same-label sample weighs most. The
weights are computed from the *detached* distances, like every selection in :mod:`collapse.sampling` (a weight is
a soft choice of positives, never a path for the gradient). Limits: :math:`\tau_w \to 0` puts all the weight on
the nearest positive (EPS; ties share it), :math:`\tau_w \to \infty` weighs every positive equally (the published
uniform :math:`1/|P_a|`).

*Source.* The softmax form is our construction, chosen because of an identity with a published loss: Khosla et
al. 2020 ("Supervised Contrastive Learning", eq. 3) define, besides the :math:`\mathcal L^{sup}_{out}` SupCon
that :class:`~collapse.losses.SupConLoss` implements, :math:`\mathcal L^{sup}_{in} = -\log\big(\frac{1}{|P_a|}
\sum_{p \in P_a} e^{s_{ap}} / \sum_{k \in A_a} e^{s_{ak}}\big)` with :math:`s = S/\tau`. Its gradient in the
positive logits is :math:`-e^{s_{ap}}/\sum_{p'} e^{s_{ap'}}`, i.e. every positive pulled with exactly the weight
:math:`w_{ap}` above at :math:`\tau_w = \tau` and the cosine distance :math:`D = 1 - S`. So SupCon with these
weights, positives in the denominator and :math:`\tau_w = \tau` has the gradient of :math:`\mathcal L^{sup}_{in}`
(the weights held constant, as they are here; the values differ by :math:`H(w_a) - \log|P_a|`, the entropy of the
weights less :math:`\log|P_a|`); a test checks the identity. No
published paper we could find states a weighted easy-positive rule for SupCon, so no number here is the seed
paper's.
"""

from __future__ import annotations

import torch

from collapse._validation import check_real
from collapse.sampling.tuples import Pairs

__all__ = ["PositiveWeights", "SoftEasyPositiveWeights"]


class PositiveWeights:
    """Base class: ``weights(dist, positives)`` returns one weight per positive pair (``(T,)``, no gradient), each
    anchor's weights summing to 1."""

    name = "weights"

    def weights(self, dist: torch.Tensor, positives: Pairs) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class SoftEasyPositiveWeights(PositiveWeights):
    r""":math:`w_{ap} = \operatorname{softmax}_{p \in P_a}(-D_{ap}/\tau_w)` (see the module docstring).

    Parameters
    ----------
    temperature : float
        :math:`\tau_w > 0`; small values approach EPS (nearest positive only), large ones uniform weights.
    """

    name = "soft-easy"

    def __init__(self, temperature: float = 0.1) -> None:
        self.temperature = check_real("temperature", temperature, low=0.0, low_inclusive=False)

    @torch.no_grad()
    def weights(self, dist: torch.Tensor, positives: Pairs) -> torch.Tensor:
        """Weights of the ``(g, a, p)`` pairs of ``positives`` from the ``(G, B, B)`` distances ``dist``."""
        x = -positives.gather(dist.detach()) / self.temperature
        n_groups, batch = dist.shape[0], dist.shape[-1]
        flat = positives.g * batch + positives.a
        # Per-anchor max first, so exp never overflows at small temperatures (EPS's limit).
        top = torch.full((n_groups * batch,), float("-inf"), dtype=x.dtype, device=x.device)
        top = top.scatter_reduce(0, flat, x, reduce="amax", include_self=True)
        e = torch.exp(x - top[flat])
        total = torch.zeros(n_groups * batch, dtype=x.dtype, device=x.device).index_add_(0, flat, e)
        return e / total[flat]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(temperature={self.temperature})"
