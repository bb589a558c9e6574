r"""SoftTriple loss (Qian, Shang, Sun, Hu, Li, Jin 2019, "SoftTriple Loss: Deep Metric Learning Without Triplet
Sampling"): each class has K centres, and a sample's similarity to a class is a soft maximum over its centres.

For a sample :math:`x_i` with cosines :math:`c_{i,(y,k)}` to the K unit centres of class y:

.. math::
    S_{i,y} = \sum_k \frac{e^{c_{i,(y,k)}/\gamma}}{\sum_{k'} e^{c_{i,(y,k')}/\gamma}}\, c_{i,(y,k)}, \qquad
    \ell_i = -\log \frac{e^{\lambda (S_{i,y_i} - \delta)}}{e^{\lambda (S_{i,y_i} - \delta)}
             + \sum_{y \ne y_i} e^{\lambda S_{i,y}}},

averaged over the batch, plus (optionally) :math:`\tau R` with the paper's centre regulariser

.. math::
    R = \frac{1}{C K (K-1)} \sum_y \sum_{k < k'} \sqrt{2 + 10^{-5} - 2\, w_{y,k}^\top w_{y,k'}},

as in the authors' code (``idstcv/SoftTriple``, ``loss/SoftTriple.py``). Defaults follow pytorch-metric-learning's
``SoftTripleLoss`` (:math:`\lambda = 20`, :math:`\gamma = 0.1`, :math:`\delta = 0.01`, K = 10, no regulariser;
the paper trains with :math:`\tau = 0.2`). Note that :math:`R` *pulls the centres of a class together* (it is meant
to merge redundant centres), which is a collapse force on the centres.

No term pulls two centres of one class together (with :math:`\tau = 0`), and a sample is pulled toward the centres
of its own class in proportion to their soft-max weights, i.e. mostly toward the nearest one: K centres per class
can hold K modes apart. :mod:`collapse.theory.t7_proxies` checks when they do.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from collapse._validation import check_real
from collapse.losses.proxies import ProxyLoss

__all__ = ["SoftTripleLoss"]


class SoftTripleLoss(ProxyLoss):
    """Parameters: ``la`` (lambda), ``gamma``, ``margin`` (delta), ``centers_per_class`` (K) and ``center_reg``
    (tau), besides :class:`~collapse.losses.proxies.ProxyLoss`'s."""

    def __init__(
        self,
        num_classes: int,
        embedding_dim: int,
        centers_per_class: int = 10,
        *,
        la: float = 20.0,
        gamma: float = 0.1,
        margin: float = 0.01,
        center_reg: float = 0.0,
        **kwargs,
    ) -> None:
        super().__init__(num_classes, embedding_dim, centers_per_class, **kwargs)
        self.la = check_real("la", la, low=0.0, low_inclusive=False)
        self.gamma = check_real("gamma", gamma, low=0.0, low_inclusive=False)
        self.margin = check_real("margin", margin)
        self.center_reg = check_real("center_reg", center_reg, low=0.0)

    def class_similarity(self, cos: torch.Tensor) -> torch.Tensor:
        """(G, B, C) relaxed similarity :math:`S_{i,y}` from (G, B, C, K) cosines."""
        return (F.softmax(cos / self.gamma, dim=-1) * cos).sum(-1)

    def sample_terms(self, cos: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        sim = self.class_similarity(cos)
        target = F.one_hot(labels, self.num_classes).to(sim.dtype)
        logits = self.la * (sim - self.margin * target)
        return torch.logsumexp(logits, dim=-1) - (logits * target).sum(-1)

    def proxy_regularizer(self, unit_proxies: torch.Tensor) -> torch.Tensor:
        n_groups, C, K, _ = unit_proxies.shape
        if self.center_reg == 0 or K < 2:
            return super().proxy_regularizer(unit_proxies)
        gram = unit_proxies @ unit_proxies.transpose(-1, -2)  # (G, C, K, K)
        upper = torch.triu(torch.ones(K, K, dtype=torch.bool, device=gram.device), diagonal=1)
        dist = torch.sqrt(2.0 + 1e-5 - 2.0 * gram[..., upper])
        return self.center_reg * dist.sum(dim=(-1, -2)) / (C * K * (K - 1))

    def extra_repr(self) -> str:
        return (
            f"la={self.la}, gamma={self.gamma}, margin={self.margin}, center_reg={self.center_reg}, "
            + super().extra_repr()
        )
