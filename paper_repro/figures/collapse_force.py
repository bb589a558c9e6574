r"""Figure (d): the T1 collapse force against label noise, theory curves with measured values on top.

With every hinge of the triplet loss active, the population objective is linear in the mode distances and the
coefficient :math:`\kappa` of the distance between two modes of one class is the *collapse force*
(:mod:`collapse.theory.force`): positive means the loss pulls the modes together. Curves (theory):

* random positives, :func:`~collapse.theory.force.kappa_symmetric` :math:`= (1-\varepsilon C/(C-1))^2/(CK^2)`;
* easy positives in the infinite batch, :func:`~collapse.theory.force.kappa_symmetric_eps` (:math:`\le 0`);
* easy positives in P x M batches, T4's net sibling coefficient divided by the :math:`K-1` siblings
  (:func:`~collapse.theory.t4_finite_batch.eps_sibling_force`), valid where every class's modes are nearer to each
  other than to any other class.

Measured (on top), by :mod:`collapse.theory.force_measure` (each point a ``force-point`` run of :mod:`collapse.runs`,
recorded in the result store, so a rerun draws from the records):

* *exact*: autograd of the float64 population objective with respect to the mode distances;
* *Monte Carlo*: the mean triplet loss over sampled P x M batches run through the real sampler, differentiated with
  respect to the mode embeddings, the same-class coefficients recovered by least squares. Error bars are
  :math:`\pm 2` standard errors over independent replicates.

Both use :func:`~collapse.theory.force_measure.layered_configuration` (siblings nearer than any other class, as T4
assumes). This module only draws.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from collapse.io import write_csv, write_json
from collapse.runs import DEFAULT_STORE, execute
from collapse.theory.force import kappa_symmetric, kappa_symmetric_eps
from collapse.theory.force_measure import MC_MARGIN, ForcePointRun
from collapse.theory.t4_finite_batch import critical_batch, decay_rates, eps_sibling_force, net_pull_intervals
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

__all__ = ["FULL", "Params", "draw", "force_runs"]

KEY, NAME = "d", "collapse_force"


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
    #: The result store of the measured points.
    store: str = DEFAULT_STORE


FULL = {"eps_points": (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7), "n_batches": 512, "replicates": 16,
        "m_points": (2, 3, 4, 5, 6, 8, 10, 12, 16, 24)}


def force_runs(p: Params) -> list[ForcePointRun]:
    """The measured points: over the noise at M = ``samples_per_class``, then over M at ``eps_fixed`` (random
    positives by Monte Carlo only once per noise level: their law does not depend on M)."""
    points = [("eps", e, p.samples_per_class) for e in p.eps_points] + [("M", p.eps_fixed, m) for m in p.m_points]
    return [ForcePointRun(p.classes, p.modes, float(eps), int(m), axis, axis == "eps" or m == p.samples_per_class,
                          p.theta, p.n_batches, p.replicates, p.seed) for axis, eps, m in points]


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

    from collapse.runs import ResultStore

    runs = force_runs(p)
    store = ResultStore(p.store)
    ex = execute(runs, store, progress=progress, desc="collapse force")
    if not ex.ok:
        raise RuntimeError(f"collapse-force points failed: {ex.errors[0]}")
    measured = ex.results()

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
                    f"M* = {m_star}\n(no net pull\nbeyond, to 1e4)", fontsize=8, color="0.3")
        # The law is not monotone in M: with K + 1 modes the pull through mislabelled anchors comes back.
        K2 = K + 1
        intervals = net_pull_intervals(p.eps_fixed, C, K2)
        m_star2 = critical_batch(p.eps_fixed, C, K2)
        far = np.arange(2, max(100, (m_star2 or 0) + 20) + 1)
        net2 = np.array([eps_sibling_force(p.eps_fixed, C, K2, int(m))["net"] / (K2 - 1) for m in far])
        inset = bx.inset_axes([0.45, 0.42, 0.52, 0.36])
        inset.plot(far, net2, color=SKY, lw=1.5)
        inset.axhline(0, color="0.6", lw=0.8)
        inset.set_yscale("symlog", linthresh=1e-6)
        for lo, hi in intervals:
            inset.axvspan(lo - 0.5, hi + 0.5, color=VERMILLION, alpha=0.18, lw=0)
        if m_star2 is not None:
            inset.axvline(m_star2, color="0.4", ls=":", lw=1.0)
        spans = ", ".join(f"{lo}-{hi}" for lo, hi in intervals)
        inset.set_title(f"K = {K2}: net pull at M = {spans}; M* = {m_star2}", fontsize=7)
        inset.tick_params(labelsize=6)
        bx.set_xlabel(f"samples per class in the batch M (P = {C})")
        bx.set_ylabel("collapse force kappa")
        bx.set_title(f"EPS needs enough samples per class (eps = {p.eps_fixed:g})")
        bx.legend(loc="lower left", bbox_to_anchor=(0.0, 0.06), frameon=False, fontsize=8)
        fig.tight_layout()
        png = save_figure(fig, out / f"{KEY}_{NAME}.png")

    csv_path = write_csv(out / f"{KEY}_{NAME}.csv", measured)
    json_path = write_json(out / f"{KEY}_{NAME}.json", {"params": params_dict(p), "curves": curves,
                                                        "measured": measured, "critical_M": m_star,
                                                        "net_pull_intervals": {K: net_pull_intervals(p.eps_fixed, C, K),
                                                                               K + 1: intervals},
                                                        "critical_M_K+1": m_star2,
                                                        "decay_rates": decay_rates(p.eps_fixed, C, K),
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
        f"against M at eps = {p.eps_fixed:g}; M* is the smallest M beyond which T4's net pull never returns (checked "
        f"to M = 1e4). Inset: the same law for K = {K + 1} on a symlog scale; shaded, the batch sizes with a net pull "
        f"({spans}): the pull through mislabelled anchors first grows with M, then decays at rate 1-eps/((C-1)K), "
        "slower than the 1-(1-eps)/K of correctly labelled anchors, so the net pull can return after a sign change."
    )
    return FigureResult(KEY, NAME, png, [csv_path, json_path], caption,
                        source="collapse.theory (force, t4_finite_batch, population.monte_carlo_loss)", seed=p.seed,
                        params=params_dict(p), extra={"max_abs_error_exact_vs_T1": worst, "critical_M": m_star})
