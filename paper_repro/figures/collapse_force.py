r"""Figure (d): the T1 collapse force against label noise, theory curves with measured values on top.

With every hinge of the triplet loss active, the population objective is linear in the mode distances and the
coefficient :math:`\kappa` of the distance between two modes of one class is the *collapse force*
(:mod:`collapse.theory.force`): positive means the loss pulls the modes together. Curves (theory):

* random positives, :func:`~collapse.theory.force.kappa_symmetric` :math:`= (1-\varepsilon C/(C-1))^2/(CK^2)`;
* easy positives in the infinite batch, :func:`~collapse.theory.force.kappa_symmetric_eps` (:math:`\le 0`);
* easy positives in P x M batches, T4's net sibling coefficient divided by the :math:`K-1` siblings
  (:func:`~collapse.theory.t4_finite_batch.eps_sibling_force`), valid where every class's modes are nearer to each
  other than to any other class.

Measured (on top):

* *exact*: autograd of the float64 population objective with respect to the mode distances
  (:func:`~collapse.theory.force.autograd_force`), averaged over ordered same-class pairs;
* *Monte Carlo*: the mean triplet loss over sampled P x M batches run through the real sampler
  (:func:`~collapse.theory.population.monte_carlo_loss`, margin 10 so that every hinge is active), differentiated
  with respect to the mode embeddings :math:`Z`. The loss depends on :math:`Z` only through the distances, so
  :math:`\nabla_{z_m} L = \sum_{m'} c_{mm'}\, \nabla_{z_m} D_{mm'}` with :math:`c_{mm'} = g_{mm'} + g_{m'm}` (each
  unordered distance enters twice); solving these linear systems (least squares, well posed because every mode has
  its own coordinate in :func:`layered_configuration`) recovers the coefficients, and :math:`c/2` averaged over
  same-class pairs estimates :math:`\kappa`. Error bars are :math:`\pm 2` standard errors over independent
  replicates.

Both measurements use :func:`layered_configuration`: mode :math:`k` of class :math:`c` at
:math:`\cos\theta\, s_c + \sin\theta\, e_m` (:math:`s_c` a regular simplex, :math:`e_m` one unit coordinate per
mode), so siblings are :math:`\sqrt2\sin\theta` apart and nearer than any other class, as T4 assumes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from collapse.io import write_csv, write_json
from collapse.theory import ModeModel, monte_carlo_loss
from collapse.theory.force import autograd_force, kappa_symmetric, kappa_symmetric_eps
from collapse.theory.population import build_loss, mode_distances
from collapse.theory.t4_finite_batch import critical_batch, eps_sibling_force
from paper_repro.figures.common import (
    BLACK,
    BLUE,
    SKY,
    VERMILLION,
    WIDTH,
    FigureResult,
    figure_style,
    params_dict,
    plt,
    resolve_params,
    save_figure,
)

__all__ = ["FULL", "Params", "draw", "layered_configuration", "measure_mc", "pair_coefficients"]

KEY, NAME = "d", "collapse_force"
MC_MARGIN = 10.0  # distances on the unit sphere are at most 2, so every hinge [D_ap - D_an + 10]_+ is active


@dataclass(frozen=True)
class Params:
    """Model and measurement sizes of figure (d)."""

    classes: int = 4
    modes: int = 3
    #: Noise levels of the measured points (the curves are drawn on a fine grid up to (C-1)/C).
    eps_points: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.45, 0.6)
    #: Samples per class of the P x M batches (P = classes) for the finite-batch EPS curve and the Monte Carlo.
    samples_per_class: int = 6
    #: Noise level of the right panel (force against M).
    eps_fixed: float = 0.1
    m_points: tuple[int, ...] = (2, 3, 4, 6, 8, 12, 16)
    n_batches: int = 128
    replicates: int = 8
    theta: float = 0.6
    seed: int = 0


FULL = {"eps_points": (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7), "n_batches": 512, "replicates": 16,
        "m_points": (2, 3, 4, 5, 6, 8, 10, 12, 16, 24)}


def layered_configuration(model: ModeModel, theta: float = 0.6) -> torch.Tensor:
    """(N, C + N) float64 unit vectors ``cos(theta) s_c + sin(theta) e_m`` (see the module docstring)."""
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


def _exact(model: ModeModel, positive: str, batch=None, distances=None) -> float:
    g = autograd_force(model, positive, batch=batch, distances=distances)
    return float(g[model.same_class_pairs()].mean())


def draw(out: str | Path, params: Params | None = None, *, full: bool = False, progress: bool = False) -> FigureResult:
    """Compute the curves and measurements and write ``d_collapse_force.{png,csv,json}``."""
    p = resolve_params(Params, params, full, FULL)
    out = Path(out)
    C, K, M = p.classes, p.modes, p.samples_per_class
    top = (C - 1) / C
    grid = np.linspace(0.0, top, 121)
    curves = [
        {"eps": float(e), "kappa_random": kappa_symmetric(e, C, K), "kappa_eps_infinite": kappa_symmetric_eps(e, C, K),
         "kappa_eps_batch": eps_sibling_force(e, C, K, M)["net"] / (K - 1)}
        for e in grid
    ]

    measured = []
    points = [("eps", e, M) for e in p.eps_points] + [("M", p.eps_fixed, m) for m in p.m_points]
    from tqdm.auto import tqdm

    for axis, eps, m in tqdm(points, disable=not progress, desc="collapse force", leave=False):
        model = ModeModel.symmetric(C, K, eps)
        Z = layered_configuration(model, p.theta)
        D = mode_distances(Z, build_loss("triplet"))[0]
        row = {"axis": axis, "eps": eps, "M": m, "theory_random": kappa_symmetric(eps, C, K),
               "theory_eps_infinite": kappa_symmetric_eps(eps, C, K),
               "theory_eps_batch": eps_sibling_force(eps, C, K, m)["net"] / (K - 1)}
        row["exact_random"] = _exact(model, "random")
        row["exact_eps_infinite"] = _exact(model, "easy")
        row["exact_eps_batch"] = _exact(model, "easy", batch=(C, m), distances=D)
        for rule in ("random", "easy"):
            if axis == "M" and rule == "random" and m != M:
                continue  # the random-positive law does not depend on M; measured once per noise level
            mean, se, _ = measure_mc(model, rule, (C, m), Z, n_batches=p.n_batches, replicates=p.replicates,
                                     seed=p.seed)
            row[f"mc_{rule}"], row[f"mc_{rule}_se"] = mean, se
        measured.append(row)

    with figure_style():
        fig, (ax, bx) = plt.subplots(1, 2, figsize=(WIDTH, 4.3), gridspec_kw={"width_ratios": [1.25, 1]})
        cv = {k: np.array([c[k] for c in curves]) for k in curves[0]}
        ax.axhline(0, color="0.6", lw=0.8)
        ax.plot(cv["eps"], cv["kappa_random"], color=VERMILLION, lw=2, label="random positive, theory (T1)")
        ax.plot(cv["eps"], cv["kappa_eps_batch"], color=SKY, lw=2, ls="--",
                label=f"EPS, {C} x {M} batches, theory (T4)")
        ax.plot(cv["eps"], cv["kappa_eps_infinite"], color=BLUE, lw=2, label="EPS, infinite batch, theory (T1)")
        pts = [r for r in measured if r["axis"] == "eps"]
        e = np.array([r["eps"] for r in pts])
        ax.scatter(e, [r["exact_random"] for r in pts], s=40, facecolors="none", edgecolors=BLACK, zorder=4,
                   label="exact population gradient (autograd)")
        ax.scatter(e, [r["exact_eps_batch"] for r in pts], s=40, facecolors="none", edgecolors=BLACK, zorder=4)
        ax.scatter(e, [r["exact_eps_infinite"] for r in pts], s=40, facecolors="none", edgecolors=BLACK, zorder=4)
        ax.errorbar(e, [r["mc_random"] for r in pts], yerr=[2 * r["mc_random_se"] for r in pts], fmt="x",
                    color=VERMILLION, ms=7, capsize=3, zorder=5, label="Monte Carlo minibatches (+-2 SE)")
        ax.errorbar(e, [r["mc_easy"] for r in pts], yerr=[2 * r["mc_easy_se"] for r in pts], fmt="x", color=SKY,
                    ms=7, capsize=3, zorder=5)
        ax.set_xlabel("symmetric label noise eps")
        ax.set_ylabel("collapse force kappa (coefficient of a\nsame-class mode distance)")
        ax.set_title(f"Collapse force vs noise ({C} classes x {K} modes, all hinges active)")
        ax.set_xlim(-0.01, top + 0.01)
        ax.annotate("labels carry no\ninformation", xy=(top, 0), xytext=(top - 0.2, 0.6 * cv["kappa_random"][0]),
                    fontsize=8, arrowprops={"arrowstyle": "->", "color": "0.4"})
        ax.legend(loc="upper right", frameon=False)

        mp = [r for r in measured if r["axis"] == "M"]
        ms = np.array([r["M"] for r in mp])
        fine_m = np.arange(2, max(p.m_points) + 1)
        bx.axhline(0, color="0.6", lw=0.8)
        bx.axhline(kappa_symmetric(p.eps_fixed, C, K), color=VERMILLION, lw=2, label="random positive (T1)")
        bx.plot(fine_m, [eps_sibling_force(p.eps_fixed, C, K, m)["net"] / (K - 1) for m in fine_m], color=SKY, lw=2,
                ls="--", label="EPS, P x M batches (T4)")
        bx.axhline(kappa_symmetric_eps(p.eps_fixed, C, K), color=BLUE, lw=2, label="EPS, infinite batch (T1)")
        bx.scatter(ms, [r["exact_eps_batch"] for r in mp], s=40, facecolors="none", edgecolors=BLACK, zorder=4,
                   label="exact (autograd)")
        bx.errorbar(ms, [r["mc_easy"] for r in mp], yerr=[2 * r["mc_easy_se"] for r in mp], fmt="x", color=SKY,
                    ms=7, capsize=3, zorder=5, label="Monte Carlo (+-2 SE)")
        m_star = critical_batch(p.eps_fixed, C, K)
        if m_star is not None and m_star <= max(p.m_points):
            bx.axvline(m_star, color="0.4", ls=":", lw=1.2)
            bx.text(m_star + 0.3, 0.12 * kappa_symmetric(p.eps_fixed, C, K),
                    f"M* = {m_star}\n(T4: net force\nchanges sign)", fontsize=8, color="0.3")
        bx.set_xlabel(f"samples per class in the batch M (P = {C})")
        bx.set_ylabel("collapse force kappa")
        bx.set_title(f"EPS needs enough samples per class (eps = {p.eps_fixed:g})")
        bx.legend(loc="center right", frameon=False)
        fig.tight_layout()
        png = save_figure(fig, out / f"{KEY}_{NAME}.png")

    csv_path = write_csv(out / f"{KEY}_{NAME}.csv", measured)
    json_path = write_json(out / f"{KEY}_{NAME}.json", {"params": params_dict(p), "curves": curves,
                                                        "measured": measured, "critical_M": m_star,
                                                        "mc_margin": MC_MARGIN})
    worst = max(abs(r["exact_random"] - r["theory_random"]) for r in measured)
    caption = (
        "The collapse force kappa (net coefficient of a same-class mode distance in the expected triplet loss, "
        f"every hinge active; {C} classes x {K} modes, symmetric noise). Left: against the noise, theory curves for "
        "random positives (T1, vermillion: positive, so modes are pulled together until eps = (C-1)/C), for easy "
        f"positives in the infinite batch (T1, blue: negative, siblings are only pushed apart) and in {C} x {M} "
        "batches (T4, dashed: a residual pull when a mode-mate is missing from the batch). Circles: exact gradient "
        "of the population objective by autograd; crosses: Monte Carlo over sampled minibatches through the real "
        f"sampler (+-2 standard errors over {p.replicates} replicates of {p.n_batches} batches). Right: the EPS force "
        f"against M at eps = {p.eps_fixed:g}; it changes sign at T4's critical batch M*."
    )
    return FigureResult(KEY, NAME, png, [csv_path, json_path], caption,
                        source="collapse.theory (force, t4_finite_batch, population.monte_carlo_loss)", seed=p.seed,
                        params=params_dict(p), extra={"max_abs_error_exact_vs_T1": worst, "critical_M": m_star})
