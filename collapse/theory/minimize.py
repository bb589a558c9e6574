r"""Minimising the population objective from random starts (the experiments behind T2, T3 and T5).

``seeds`` random configurations (Gaussian, then normalised: uniform on the sphere :math:`S^{d-1}`) are trained at
once as G independent groups of one tensor program, with Adam on unconstrained :math:`Z`; the losses normalise
:math:`Z` inside their distance, so the objective lives on the sphere. A seed is *collapsed* when the mean distance
between the modes of a class is below the collapse instrument's resolution :math:`r = \alpha/2`, half the loss's own
margin :math:`\alpha` (:func:`collapse.experiment.instrument_margin`, as :func:`collapse.metrics.instrument_report`
resolves distances): the modes here are single points, so that is the instrument's merge rule for point modes
(below the resolution two modes are not told apart), applied to the class mean. No fixed distance judges.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from collapse._validation import check_int, check_real
from collapse.experiment import instrument_margin
from collapse.losses import MetricLoss
from collapse.metrics import mode_separation
from collapse.theory.model import ModeModel
from collapse.theory.population import build_loss, evaluate_plan, make_plan, mode_distances

__all__ = ["MinimizeResult", "collapse_resolution", "minimize_population", "near_collapsed_start", "separations"]


@dataclass
class MinimizeResult:
    """Final unit-norm mode embeddings (G, N, d), per-seed loss and mean intra-class mode distance, the verdict
    (``separation < resolution``, :func:`collapse_resolution`), and the learned class boundaries of a
    learnable-beta margin loss (G, C) if any."""

    Z: torch.Tensor
    loss: np.ndarray
    separation: np.ndarray
    collapsed: np.ndarray
    beta: np.ndarray | None
    history: np.ndarray
    resolution: float

    @property
    def fraction_collapsed(self) -> float:
        return float(self.collapsed.mean())


def separations(Z: torch.Tensor, model: ModeModel) -> np.ndarray:
    """Mean distance between the (normalised) modes of a class, averaged over multi-mode classes, per group."""
    Z = F.normalize(Z.detach().double(), dim=-1)
    modes = np.arange(model.n_modes)
    return np.array([mode_separation(z.numpy(), model.mode_class, modes)["mode_separation"] for z in Z])


def collapse_resolution(loss: MetricLoss) -> float:
    """Half the loss's margin (:func:`collapse.experiment.instrument_margin`): the collapse instrument's resolution,
    below which two modes are not told apart."""
    return instrument_margin(loss) / 2.0


def near_collapsed_start(
    model: ModeModel, dim: int, seeds: int, *, spread: float = 0.02, random_state: int = 0
) -> torch.Tensor:
    """(seeds, N, dim) starts with each class's modes within about ``spread`` of a random class point."""
    gen = torch.Generator().manual_seed(random_state)
    centers = F.normalize(torch.randn(seeds, model.n_classes, dim, generator=gen, dtype=torch.float64), dim=-1)
    jitter = spread * torch.randn(seeds, model.n_modes, dim, generator=gen, dtype=torch.float64) / dim**0.5
    return centers[:, torch.as_tensor(model.mode_class)] + jitter


def minimize_population(
    model: ModeModel,
    loss: str = "triplet",
    positive: str = "random",
    negative: str = "all",
    *,
    dim: int = 8,
    seeds: int = 4,
    steps: int = 2000,
    lr: float = 0.01,
    batch: tuple[int, int] | None = None,
    random_state: int = 0,
    init: torch.Tensor | None = None,
    record_every: int = 0,
    **loss_kwargs,
) -> MinimizeResult:
    """Minimise ``population_loss`` over mode embeddings from ``seeds`` random starts (float64)."""
    check_int("dim", dim, low=1)
    G = check_int("seeds", seeds, low=1)
    check_int("steps", steps, low=0)
    check_real("lr", lr, low=0.0, low_inclusive=False)
    if loss == "margin-learned":
        loss_kwargs = {"num_classes": model.n_classes, "num_groups": G, **loss_kwargs}
    loss_obj = build_loss(loss, positive, negative, **loss_kwargs).double()
    gen = torch.Generator().manual_seed(random_state)
    Z0 = torch.randn(G, model.n_modes, dim, generator=gen, dtype=torch.float64) if init is None else init.double()
    Z = torch.nn.Parameter(F.normalize(Z0.clone(), dim=-1))
    params = [Z, *loss_obj.parameters()]
    opt = torch.optim.Adam(params, lr=lr)
    history = []
    per_group = torch.zeros(G, dtype=torch.float64)
    plan = None

    def objective():
        nonlocal plan
        D = mode_distances(Z, loss_obj)
        if plan is None or not plan.static:
            plan = make_plan(model, loss_obj, positive, negative, batch=batch, distances=D.detach())
        return evaluate_plan(plan, loss_obj, D)

    for step in range(steps):
        opt.zero_grad(set_to_none=True)
        out = objective()
        out.loss.backward()
        opt.step()
        per_group = out.per_group.detach()
        if record_every and step % record_every == 0:
            history.append(separations(Z, model))
    with torch.no_grad():
        per_group = objective().per_group
    sep = separations(Z, model)
    resolution = collapse_resolution(loss_obj)
    beta = getattr(loss_obj, "beta", None)
    return MinimizeResult(
        Z=F.normalize(Z.detach(), dim=-1),
        loss=per_group.numpy(),
        separation=sep,
        collapsed=sep < resolution,
        beta=None if beta is None else beta.detach().numpy().copy(),
        history=np.array(history),
        resolution=resolution,
    )
