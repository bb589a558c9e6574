r"""Population objectives of the rival losses in the mode-level model, and their minimisation from random starts.

* **Batch losses whose term is a log-sum over the batch** (SupCon, L_spread): the expected loss over P x M batch
  compositions has no closed form, so it is estimated by Monte Carlo exactly as
  :func:`collapse.theory.population.monte_carlo_loss` does — batches drawn by observed label, modes from
  :math:`r(\cdot \mid y)`, the loss's *real* sampler and terms run on the exact mode distances — here for G
  configurations at once and with fresh batches at every step (stochastic gradient descent on the exact
  population objective; the estimate is unbiased for the loss and its gradient).
* **Proxy losses** (SoftTriple, sub-centre ArcFace): every term involves one sample and the proxies only, so the
  population objective is exact and finite,

  .. math::
      \mathcal L(Z, W) = \sum_{\text{points } (m, y)} \frac{r(m \mid y)}{C'}\, \ell(z_m, y; W) + R(W),

  minimised jointly over the mode embeddings :math:`Z` and the proxies :math:`W` (the loss's own
  ``sample_terms`` and regulariser; no second copy of either loss).

A start is collapsed when the mean distance between the modes of a class (:func:`collapse.theory.minimize.separations`)
is below the collapse instrument's resolution, half the loss's margin
(:func:`collapse.theory.minimize.collapse_resolution`), as T0-T5 judge.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from collapse._validation import check_int, check_real
from collapse.losses import MetricLoss, ProxyLoss, make_loss
from collapse.sampling import Sampler
from collapse.theory.minimize import collapse_resolution, separations
from collapse.theory.model import ModeModel
from collapse.theory.population import mode_distances

__all__ = ["RivalResult", "minimize_batch_mc", "minimize_proxy", "proxy_population_loss", "sample_batches"]


@dataclass
class RivalResult:
    """Final unit mode embeddings (G, N, d), per-start mean intra-class mode distance and collapse verdict
    (``separation < resolution``, half the loss's margin)."""

    Z: torch.Tensor
    separation: np.ndarray
    collapsed: np.ndarray
    final_loss: np.ndarray
    resolution: float

    @property
    def fraction_collapsed(self) -> float:
        return float(self.collapsed.mean())

    def summary(self) -> dict:
        return {
            "fraction_collapsed": self.fraction_collapsed,
            "separation": [round(float(s), 4) for s in self.separation],
            "resolution": self.resolution,
        }


def _start(model: ModeModel, dim: int, seeds: int, random_state: int, init: torch.Tensor | None) -> torch.Tensor:
    gen = torch.Generator().manual_seed(random_state)
    Z0 = torch.randn(seeds, model.n_modes, dim, generator=gen, dtype=torch.float64) if init is None else init.double()
    return torch.nn.Parameter(F.normalize(Z0.clone(), dim=-1))


def sample_batches(
    model: ModeModel, n: int, batch: tuple[int, int], generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` P x M batches drawn the way a P x M sampler draws them: (n, P*M) modes and observed labels."""
    P, M = batch
    present = torch.as_tensor(model.labels_present)
    chosen = present[torch.rand(n, len(present), generator=generator).argsort(-1)[:, :P]]
    labels = chosen.repeat_interleave(M, dim=1)
    R = torch.as_tensor(model.conditional.T)
    modes = torch.multinomial(R[labels.reshape(-1)], 1, generator=generator).reshape(n, P * M)
    return modes, labels


def minimize_batch_mc(
    model: ModeModel,
    loss: str | MetricLoss,
    positive: str = "all",
    negative: str = "all",
    *,
    batch: tuple[int, int] = (4, 8),
    dim: int = 8,
    seeds: int = 4,
    steps: int = 600,
    batches_per_step: int = 16,
    lr: float = 0.02,
    random_state: int = 0,
    init: torch.Tensor | None = None,
    **loss_kwargs,
) -> RivalResult:
    """Minimise the P x M population objective of a batch loss by stochastic gradient (Adam, cosine decay) on fresh
    Monte Carlo batches, from ``seeds`` random starts at once."""
    G = check_int("seeds", seeds, low=1)
    check_int("steps", steps, low=1)
    nb = check_int("batches_per_step", batches_per_step, low=1)
    check_real("lr", lr, low=0.0, low_inclusive=False)
    P, M = batch
    check_int("P", P, low=2, high=len(model.labels_present))
    check_int("M", M, low=2)
    loss_obj = loss if isinstance(loss, MetricLoss) else make_loss(loss, positive, negative, **loss_kwargs)
    loss_obj = loss_obj.double()
    gen = torch.Generator().manual_seed(random_state + 1)
    sampler = Sampler(positive, negative, random_state=gen)
    Z = _start(model, dim, G, random_state, init)
    opt = torch.optim.Adam([Z], lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + np.cos(np.pi * s / steps)))
    group = torch.arange(G).repeat_interleave(nb)

    def objective() -> torch.Tensor:
        modes, labels = sample_batches(model, G * nb, batch, gen)
        D = mode_distances(Z, loss_obj)  # (G, N, N), exact zero diagonal
        dist = D[group[:, None, None], modes[:, :, None], modes[:, None, :]]
        out = loss_obj.from_distances(dist, labels, dim=dim, sampler=sampler)
        return out.per_group.reshape(G, nb).mean(1)

    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        objective().sum().backward()
        opt.step()
        sched.step()
    with torch.no_grad():
        final = torch.stack([objective() for _ in range(4)]).mean(0)
    sep = separations(Z, model)
    res = collapse_resolution(loss_obj)
    return RivalResult(F.normalize(Z.detach(), dim=-1), sep, sep < res, final.numpy(), res)


def proxy_population_loss(Z: torch.Tensor, model: ModeModel, loss: ProxyLoss) -> torch.Tensor:
    """(G,) exact population objective of a proxy loss at mode embeddings ``Z`` (G, N, d) and the loss's proxies."""
    m, y, r = model.points()
    n_labels = len(model.labels_present)
    w = (r / n_labels).to(Z.dtype)
    G = Z.shape[0]
    emb = Z[:, m]  # (G, points, d)
    labels = y.unsqueeze(0).expand(G, -1)
    terms = loss.sample_terms(loss.cosines(emb), labels)  # (G, points)
    data = (terms * w).sum(-1) / w.sum()
    return data + loss.proxy_regularizer(loss.unit_proxies(Z.dtype))


def minimize_proxy(
    model: ModeModel,
    loss: str = "softtriple",
    *,
    dim: int = 8,
    seeds: int = 4,
    steps: int = 800,
    lr: float = 0.05,
    random_state: int = 0,
    init: torch.Tensor | None = None,
    **loss_kwargs,
) -> RivalResult:
    """Minimise a proxy loss's exact population objective over mode embeddings and proxies from random starts."""
    G = check_int("seeds", seeds, low=1)
    check_int("steps", steps, low=1)
    check_real("lr", lr, low=0.0, low_inclusive=False)
    loss_obj = make_loss(
        loss, num_classes=model.n_classes, embedding_dim=dim, num_groups=G, random_state=random_state, **loss_kwargs
    ).double()
    if not isinstance(loss_obj, ProxyLoss):
        raise ValueError(f"loss must be a proxy loss (softtriple, subcenter-arcface), got {loss!r}")
    Z = _start(model, dim, G, random_state, init)
    opt = torch.optim.Adam([Z, *loss_obj.parameters()], lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + np.cos(np.pi * s / steps)))
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        proxy_population_loss(Z, model, loss_obj).sum().backward()
        opt.step()
        sched.step()
    with torch.no_grad():
        final = proxy_population_loss(Z, model, loss_obj)
    sep = separations(Z, model)
    res = collapse_resolution(loss_obj)
    return RivalResult(F.normalize(Z.detach(), dim=-1), sep, sep < res, final.numpy(), res)
