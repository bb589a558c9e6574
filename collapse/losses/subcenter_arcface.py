r"""Sub-centre ArcFace (Deng, Guo, Liu, Zafeiriou 2020, "Sub-center ArcFace: Boosting Face Recognition by Large-scale
Noisy Web Faces"): ArcFace with K sub-centres per class, a sample's cosine to a class being the largest over them.

For a sample with cosines :math:`c_{i,(y,k)}` to the unit sub-centres, :math:`c_{i,y} = \max_k c_{i,(y,k)}`,
:math:`\theta = \arccos c_{i,y_i}` and the additive angular margin m:

.. math::
    \ell_i = -\log \frac{e^{s\,\phi(\theta)}}{e^{s\,\phi(\theta)} + \sum_{y \ne y_i} e^{s\,c_{i,y}}},
    \qquad \phi(\theta) = \begin{cases}\cos(\theta + m) & \theta \le \pi - m\\
                                       \cos\theta - m \sin m & \text{otherwise}\end{cases}

averaged over the batch (the second branch keeps the target logit decreasing in :math:`\theta`). As in
pytorch-metric-learning's ``SubCenterArcFaceLoss`` the margin is given in degrees (default 28.6, i.e. 0.5 rad), the
scale s defaults to 64 and K to 3. :math:`\cos(\theta+m)` is computed as :math:`c\cos m - \sqrt{1-c^2}\sin m` with
:math:`1 - c^2` floored at :math:`10^{-12}`, so that a sample sitting exactly on its sub-centre has a finite gradient
(``arccos`` has an infinite one at 1).

Only the nearest sub-centre of a class receives gradient from a sample: a class can keep K modes on K sub-centres.
The published model also drops non-dominant sub-centres after training; that step is not part of the loss.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from collapse._validation import check_real
from collapse.losses.proxies import ProxyLoss

__all__ = ["SubCenterArcFaceLoss"]


class SubCenterArcFaceLoss(ProxyLoss):
    """Parameters: ``margin`` (degrees), ``scale`` (s) and ``centers_per_class`` (K sub-centres), besides
    :class:`~collapse.losses.proxies.ProxyLoss`'s."""

    def __init__(
        self,
        num_classes: int,
        embedding_dim: int,
        centers_per_class: int = 3,
        *,
        margin: float = 28.6,
        scale: float = 64.0,
        **kwargs,
    ) -> None:
        super().__init__(num_classes, embedding_dim, centers_per_class, **kwargs)
        self.margin = check_real("margin", margin, low=0.0, high=180.0)
        self.scale = check_real("scale", scale, low=0.0, low_inclusive=False)

    def sample_terms(self, cos: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cls_cos = cos.max(dim=-1).values  # (G, B, C)
        m = math.radians(self.margin)
        target = cls_cos.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
        sin = torch.sqrt((1.0 - target * target).clamp_min(1e-12))
        phi = torch.where(target >= -math.cos(m), target * math.cos(m) - sin * math.sin(m), target - m * math.sin(m))
        onehot = F.one_hot(labels, self.num_classes).to(cls_cos.dtype)
        logits = self.scale * (cls_cos + onehot * (phi - target).unsqueeze(-1))
        return torch.logsumexp(logits, dim=-1) - (logits * onehot).sum(-1)

    def extra_repr(self) -> str:
        return f"margin={self.margin}, scale={self.scale}, " + super().extra_repr()
