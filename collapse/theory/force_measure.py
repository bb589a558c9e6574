r"""Measuring the collapse force :math:`\kappa` exactly and by Monte Carlo on a layered configuration (figure (d)).

With every hinge of the triplet loss active, the population objective is linear in the mode distances and the
coefficient :math:`\kappa` of the distance between two modes of one class is the collapse force
(:mod:`collapse.theory.force`). Two measurements of it:

* *exact*: autograd of the float64 population objective with respect to the mode distances
  (:func:`~collapse.theory.force.autograd_force`), averaged over ordered same-class pairs (:func:`exact_force`);
* *Monte Carlo* (:func:`measure_mc`): the mean triplet loss over sampled P x M batches through the real sampler
  (:func:`~collapse.theory.population.monte_carlo_loss`, margin :data:`MC_MARGIN` so that every hinge is active),
  differentiated with respect to the mode embeddings :math:`Z`. The loss depends on :math:`Z` only through the
  distances, so :math:`\nabla_{z_m} L = \sum_{m'} c_{mm'}\, \nabla_{z_m} D_{mm'}` with :math:`c_{mm'} = g_{mm'} +
  g_{m'm}`; solving these linear systems (:func:`pair_coefficients`, least squares, well posed because every mode
  has its own coordinate in :func:`layered_configuration`) recovers the coefficients, and :math:`c/2` averaged over
  same-class pairs estimates :math:`\kappa`.

:class:`ForcePointRun` is one measured point (kind ``force-point`` of :mod:`collapse.runs`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from collapse.runs import Kind, Run, register_kind
from collapse.theory.force import autograd_force, kappa_symmetric, kappa_symmetric_eps
from collapse.theory.model import ModeModel
from collapse.theory.population import build_loss, mode_distances, monte_carlo_loss
from collapse.theory.t4_finite_batch import eps_sibling_force

__all__ = ["MC_MARGIN", "ForcePointRun", "exact_force", "layered_configuration", "measure_force_points", "measure_mc",
           "pair_coefficients"]

MC_MARGIN = 10.0  # distances on the unit sphere are at most 2, so every hinge [D_ap - D_an + 10]_+ is active


def layered_configuration(model: ModeModel, theta: float = 0.6) -> torch.Tensor:
    """(N, C + N) float64 unit vectors ``cos(theta) s_c + sin(theta) e_m``: ``s_c`` a regular simplex, ``e_m`` one
    unit coordinate per mode, so siblings are ``sqrt(2) sin(theta)`` apart and nearer than any other class."""
    C, N = model.n_classes, model.n_modes
    simplex = torch.eye(C, dtype=torch.float64) - 1.0 / C
    simplex = simplex / simplex.norm(dim=1, keepdim=True)
    Z = torch.zeros(N, C + N, dtype=torch.float64)
    Z[:, :C] = math.cos(theta) * simplex[torch.as_tensor(model.mode_class)]
    Z[torch.arange(N), C + torch.arange(N)] = math.sin(theta)
    return Z


def pair_coefficients(Z: torch.Tensor, grad: torch.Tensor, distance) -> torch.Tensor:
    """Coefficients ``c[m, m']`` with ``grad[m] = sum_{m'} c[m, m'] dD_{mm'}/dz_m`` (least squares per mode), where
    ``D`` is ``distance`` between the rows of ``Z``; NaN on the diagonal.

    For a loss that reads ``Z`` only through the (symmetric) distances, ``c[m, m']`` is the sum of the loss's
    derivatives with respect to ``D[m, m']`` and ``D[m', m]``.
    """
    Zl = Z.detach().clone().requires_grad_(True)
    D = distance(Zl.unsqueeze(0))[0]
    N = Z.shape[0]
    J = torch.zeros(N, N, Z.shape[1], dtype=Z.dtype)  # J[m, m'] = dD[m, m'] / dz_m
    for col in range(N):
        (g,) = torch.autograd.grad(D[:, col].sum(), Zl, retain_graph=True)
        J[:, col] = g
    c = torch.full((N, N), float("nan"), dtype=Z.dtype)
    for m in range(N):
        others = [k for k in range(N) if k != m]
        c[m, others] = torch.linalg.lstsq(J[m, others].T, grad[m].unsqueeze(1)).solution[:, 0]
    return c


def measure_mc(model: ModeModel, positive: str, batch: tuple[int, int], Z: torch.Tensor, *, n_batches: int,
               replicates: int, seed: int) -> tuple[float, float, list[float]]:
    """Monte Carlo estimate of the mean same-class coefficient: (mean, standard error, per-replicate values)."""
    loss = build_loss("triplet", positive, "all", margin=MC_MARGIN)
    same = torch.as_tensor(model.same_class_pairs())
    values = []
    for r in range(replicates):
        Zl = Z.detach().clone().requires_grad_(True)
        gen = torch.Generator().manual_seed(seed * 1_000_003 + r)
        mean, _ = monte_carlo_loss(Zl, model, loss, positive, "all", batch=batch, n_batches=n_batches, generator=gen)
        (grad,) = torch.autograd.grad(mean, Zl)
        c = pair_coefficients(Z, grad, loss.distance)
        values.append(float(c[same].mean() / 2))
    arr = np.array(values)
    return float(arr.mean()), float(arr.std(ddof=1) / np.sqrt(len(arr))) if len(arr) > 1 else float("nan"), values


def exact_force(model: ModeModel, positive: str, batch=None, distances=None) -> float:
    """The exact population coefficient of a same-class mode distance, averaged over ordered same-class pairs."""
    g = autograd_force(model, positive, batch=batch, distances=distances)
    return float(g[model.same_class_pairs()].mean())


@dataclass(frozen=True)
class ForcePointRun(Run):
    """One measured point of the collapse force: ``classes`` x ``modes`` symmetric model at noise ``eps``, batches of
    ``classes`` x ``M``; ``axis`` says which panel it belongs to; ``random_mc`` whether random positives are measured
    by Monte Carlo too."""

    KIND = "force-point"
    SCHEMA = 1

    classes: int = 4
    modes: int = 3
    eps: float = 0.1
    M: int = 6
    axis: str = "eps"
    random_mc: bool = True
    theta: float = 0.6
    n_batches: int = 128
    replicates: int = 8
    seed: int = 0


def measure_force_points(runs: Sequence[ForcePointRun]) -> list[dict]:
    """Theory, exact and Monte Carlo values of each point (one row each, the columns of figure (d)'s CSV)."""
    out = []
    for p in runs:
        C, K, m, eps = p.classes, p.modes, p.M, p.eps
        model = ModeModel.symmetric(C, K, eps)
        Z = layered_configuration(model, p.theta)
        D = mode_distances(Z, build_loss("triplet"))[0]
        row = {"axis": p.axis, "eps": eps, "M": m, "theory_random": kappa_symmetric(eps, C, K),
               "theory_eps_infinite": kappa_symmetric_eps(eps, C, K),
               "theory_eps_batch": eps_sibling_force(eps, C, K, m)["net"] / (K - 1)}
        row["exact_random"] = exact_force(model, "random")
        row["exact_eps_infinite"] = exact_force(model, "easy")
        row["exact_eps_batch"] = exact_force(model, "easy", batch=(C, m), distances=D)
        for rule in ("random", "easy"):
            if rule == "random" and not p.random_mc:
                continue
            mean, se, _ = measure_mc(model, rule, (C, m), Z, n_batches=p.n_batches, replicates=p.replicates,
                                     seed=p.seed)
            row[f"mc_{rule}"], row[f"mc_{rule}_se"] = mean, se
        out.append(row)
    return out


register_kind(Kind("force-point", ForcePointRun, measure_force_points))
