r"""T3, EPS keeps modes (infinite batch).

**Proposition (T3a).** In the infinite batch, with easy positives and *any* negative rule, the triplet population
objective does not depend on any same-class distance through a positive term: the easy positive of an anchor point
:math:`(m, y)` is a mode-mate at distance 0. Same-class distances :math:`D_{mm'}` enter only through negative terms
:math:`[0 - D_{mm'} + \alpha]_+`, which are non-increasing in :math:`D_{mm'}`. Hence
:math:`\partial\mathcal L / \partial D_{mm'} \le 0` for every configuration: no pull between the modes of a class,
only a push (of total weight :math:`-\kappa^{\mathrm{EPS}}`, T1) until they are :math:`\alpha` apart. *Proof:* read off
the terms. :math:`\square`

**Proposition (T3b).** Minimising it from random starts keeps the modes of every class apart. This is measured
(:func:`check_t3`): a descent could still bring siblings together through the sphere's geometry, which T3a does not
exclude, so the verdict is the measured fraction of starts that end with modes kept.
"""

from __future__ import annotations

import numpy as np
import torch

from collapse.losses import TripletMarginLoss
from collapse.sampling import Sampler
from collapse.theory.checks import Check
from collapse.theory.minimize import minimize_population, near_collapsed_start
from collapse.theory.model import ModeModel
from collapse.theory.population import mode_distances, population_loss

__all__ = ["check_t3", "max_sibling_gradient"]


def max_sibling_gradient(model: ModeModel, Z: torch.Tensor, *, negative: str = "all", alpha: float = 0.2) -> float:
    """The largest derivative of the EPS objective (infinite batch) with respect to a same-class mode distance, at
    the configuration ``Z`` (N, d); T3a says it is <= 0."""
    loss = TripletMarginLoss(margin=alpha, sampler=Sampler("easy", negative), reducer="mean").double()
    D = mode_distances(Z.double(), loss)[0].detach().requires_grad_(True)
    out = population_loss(None, model, loss, "easy", negative, distances=D)
    (grad,) = torch.autograd.grad(out.loss, D)
    return float(grad.numpy()[model.same_class_pairs()].max())


def check_t3(
    noise_levels=(0.0, 0.1, 0.3),
    classes: int = 4,
    modes: int = 3,
    dim: int = 8,
    seeds: int = 4,
    steps: int = 800,
    n_configs: int = 20,
) -> Check:
    """T3a at random configurations (all and semi-hard negatives) and T3b by minimisation from random starts."""
    gen = torch.Generator().manual_seed(0)
    grads = []
    for eps in noise_levels:
        m = ModeModel.symmetric(classes, modes, eps)
        for _ in range(n_configs):
            Z = torch.randn(m.n_modes, dim, generator=gen, dtype=torch.float64)
            grads += [max_sibling_gradient(m, Z), max_sibling_gradient(m, Z, negative="semihard")]
    kept = {}
    for eps in noise_levels:
        m = ModeModel.symmetric(classes, modes, eps)
        for start in ("random", "near-collapsed"):
            init = near_collapsed_start(m, dim, seeds) if start == "near-collapsed" else None
            res = minimize_population(
                m, "triplet", "easy", "all", dim=dim, seeds=seeds, steps=steps, lr=0.02, init=init
            )
            kept[f"eps={eps}, {start} start"] = {
                "fraction_kept": float((~res.collapsed).mean()),  # mean sibling distance >= alpha / 2
                "min_mode_separation": float(res.separation.min()),
                "resolution": res.resolution,
            }
    # From a near-collapsed start only noise pushes siblings apart (at eps = 0 nothing acts on them): T3 says
    # EPS does not pull, not that it separates without noise.
    required = {k: v for k, v in kept.items() if not (k.startswith("eps=0.0,") and "near" in k)}
    holds = max(grads) <= 0 and all(v["fraction_kept"] == 1.0 for v in required.values())
    return Check(
        name="T3",
        statement="In the infinite batch, easy positives exert no pull between the modes of a class "
        "(dL/dD_mm' <= 0 for siblings), and minimisation keeps them apart.",
        holds=bool(holds),
        evidence={
            "max_sibling_gradient": float(np.max(grads)),
            "configurations_checked": len(grads),
            "minimisation": kept,
            "not_required": "eps=0 from a near-collapsed start (no force acts on siblings there)",
        },
        conditions=f"C={classes}, K={modes}, d={dim}, alpha=0.2, eps in {list(noise_levels)}; {seeds} random starts x "
        f"{steps} Adam steps",
    )
