r"""L_spread (Chen, Fu, Narayan, Zhang, Song, Fatahalian, Ré 2022, "The Details Matter: Preventing Class Collapse
in Supervised Contrastive Learning"): a supervised contrastive term that attracts a class, plus a class-conditional
InfoNCE term that spreads the samples *within* the class.

**Exact form implemented.** With logits :math:`s_{ij} = S_{ij}/\tau` (cosine similarity over temperature), the
selected positives :math:`P_a` and negatives :math:`N_a` of anchor :math:`a`, and :math:`Y_a` every sample of
:math:`a`'s observed label *including* :math:`a`:

.. math::
    \ell^{\mathrm{attract}}_a = \frac{1}{|P_a|}\sum_{p\in P_a} -\log
        \frac{e^{s_{ap}}}{e^{s_{ap}} + \sum_{n\in N_a} e^{s_{an}}},
    \qquad
    \ell^{\mathrm{spread}}_a = -\log \frac{e^{s_{a\,a^+}}}{\sum_{p \in Y_a} e^{s_{ap}}},

    L_{\mathrm{spread}} = (1-\alpha)\,\operatorname{mean}_a \ell^{\mathrm{attract}}_a
                         + \alpha\,\operatorname{mean}_a \ell^{\mathrm{spread}}_a .

Source: the authors' code, ``HazyResearch/thanos-code``, ``unagi/tasks/loss_fns/contrastive_loss.py``
(``ContrastiveLoss(type="l_spread", pos_in_denom=False)``): the attract term keeps only the positive at hand in its
denominator (``pos_in_denom=False``, :class:`~collapse.losses.SupConLoss` with
``positives_in_denominator=False``), the spread term is an InfoNCE whose positive is the anchor's augmented view
:math:`a^+` and whose negatives are the other samples of its class, and the two are mixed as
``(a_lc * attract + a_spread * spread) / (a_lc + a_spread)``, i.e. :math:`\alpha = a_{spread}/(a_{lc}+a_{spread})`
(their default 1, 1: :math:`\alpha = 0.5`; default temperature 0.5).

**Where we differ, and why.** (1) Our batches carry no augmented views, so the anchor is its own view,
:math:`s_{a\,a^+} = s_{aa} = 1/\tau`, and :math:`\ell^{\mathrm{spread}}_a = \log\sum_{p\in Y_a} e^{s_{ap}} - 1/\tau`:
a within-class uniformity term; in the code the view pair is two augmentations and the anchor's own augmentation
is also one of the attract positives. (2) Their code clamps the positive logits at 1 when ``clip_pos == 1.0`` (its
default); we do not clamp. (3) :math:`P_a` and :math:`N_a` come from the positive and negative rules (all and all by
default, as in the paper), so the attract term composes with easy positives; the spread term always runs over the
whole observed class, which is its point.
"""

from __future__ import annotations

import torch

from collapse._validation import check_real
from collapse.losses.supcon import SupConLoss, masked_logsumexp
from collapse.losses.terms import Terms
from collapse.sampling.tuples import Tuples

__all__ = ["SpreadLoss"]


class SpreadLoss(SupConLoss):
    """Parameters: ``temperature`` (tau) and ``alpha`` in [0, 1], the weight of the spread term."""

    default_reducer = "mean"

    def __init__(self, temperature: float = 0.5, alpha: float = 0.5, **kwargs) -> None:
        kwargs.setdefault("positives_in_denominator", False)
        super().__init__(temperature, **kwargs)
        self.alpha = check_real("alpha", alpha, low=0.0, high=1.0)

    def compute_terms(self, dist: torch.Tensor, tuples: Tuples, labels: torch.Tensor) -> dict[str, Terms]:
        logits = self.logits(dist)
        attract = self.supcon_terms(logits, tuples, dist)
        same = labels.unsqueeze(-1) == labels.unsqueeze(-2)  # includes the anchor itself
        own = torch.diagonal(logits, dim1=-2, dim2=-1)
        spread = masked_logsumexp(logits, same) - own
        n_groups, batch = labels.shape
        g = torch.arange(n_groups, device=labels.device).repeat_interleave(batch)
        a = torch.arange(batch, device=labels.device).repeat(n_groups)
        return {
            "attract_loss": Terms((1.0 - self.alpha) * attract.losses, attract.group, attract.indices, "anchor"),
            "spread_loss": Terms(self.alpha * spread.reshape(-1), g, (a,), "anchor"),
        }

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, " + super().extra_repr()
