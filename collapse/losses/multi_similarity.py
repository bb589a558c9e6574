r"""Multi-similarity loss (Wang et al. 2019), on the cosine similarity :math:`S = 1 - D_{\cos}`.

For an anchor :math:`a` with selected positives :math:`P_a` and negatives :math:`N_a`:

.. math::
    \ell_a = \frac1\alpha \log\Big(1 + \sum_{p\in P_a} e^{-\alpha(S_{ap}-\lambda)}\Big)
           + \frac1\beta  \log\Big(1 + \sum_{n\in N_a} e^{\beta(S_{an}-\lambda)}\Big),

averaged over anchors that have a positive. With easy positive sampling :math:`P_a` is the single nearest
same-label sample.
"""

from __future__ import annotations

import torch

from collapse._validation import check_real
from collapse.losses.base import MetricLoss
from collapse.losses.terms import Terms
from collapse.sampling.tuples import Tuples

__all__ = ["MultiSimilarityLoss", "masked_log1p_sum_exp"]


def masked_log1p_sum_exp(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    r"""Row-wise :math:`\log(1 + \sum_{j: m_j} e^{x_j})`, computed stably."""
    x = x.masked_fill(~mask, float("-inf"))
    zero = torch.zeros_like(x[..., :1])
    return torch.logsumexp(torch.cat([zero, x], dim=-1), dim=-1)


class MultiSimilarityLoss(MetricLoss):
    default_distance = "cosine"
    default_reducer = "mean"

    def __init__(self, alpha: float = 2.0, beta: float = 50.0, base: float = 0.5, **kwargs) -> None:
        super().__init__(**kwargs)
        self.alpha = check_real("alpha", alpha, low=0.0, low_inclusive=False)
        self.beta = check_real("beta", beta, low=0.0, low_inclusive=False)
        self.base = check_real("base", base)

    def compute_terms(self, dist: torch.Tensor, tuples: Tuples, labels: torch.Tensor) -> dict[str, Terms]:
        sim = self.distance.similarity(dist)
        pos = tuples.positive_pairs.mask(tuples.n_groups, tuples.batch_size)
        neg = tuples.negative_mask()
        g, a = pos.any(-1).nonzero(as_tuple=True)
        s, pm, nm = sim[g, a], pos[g, a], neg[g, a]
        losses = masked_log1p_sum_exp(-self.alpha * (s - self.base), pm) / self.alpha
        losses = losses + masked_log1p_sum_exp(self.beta * (s - self.base), nm) / self.beta
        return {"loss": Terms(losses, g, (a,), "anchor")}
