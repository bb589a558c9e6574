r"""T4, finite batches: how much EPS protects when a mode-mate may be missing.

In a P x M batch an anchor point :math:`(m, y)` sees :math:`M-1` other samples of its label, i.i.d. from
:math:`r(\cdot\mid y)`. A mode-mate is among them with probability

.. math:: p_{\mathrm{mate}}(m, y) = 1 - (1 - r(m\mid y))^{M-1};

otherwise its easy positive is the nearest other mode carrying label :math:`y`, usually a sibling, and then EPS
pulls like a random positive does.

**Proposition (T4).** Take symmetric noise :math:`\varepsilon`, K uniform modes per class, all negatives, every
hinge active, and a configuration in which a class's modes are nearer to each other than to any other class
(the T0 construction). The total coefficient, over its :math:`K-1` siblings, of the distances from a mode
:math:`m` is :math:`\Pi_M - \Sigma` with

.. math::
    \Pi_M = \frac{1-\varepsilon}{CK}\Big[\big(1-\tfrac{1-\varepsilon}{K}\big)^{M-1} - \varepsilon^{M-1}\Big]
          + \frac{\varepsilon}{CK}\Big[(1-a)^{M-1} - (1-Ka)^{M-1}\Big],\qquad a = \frac{\varepsilon}{(C-1)K},

(the pull of correctly and of wrongly labelled anchors whose mode-mate is missing) and the push of T1,
:math:`\Sigma = (K-1)\,\big(1 - (1-\varepsilon)^2 - \varepsilon^2/(C-1)\big)/(C(C-1)K^2)`.

*Proof.* Order the candidates of an anchor by distance: its own mode (distance 0), then its siblings, then the
rest. The law of the nearest of :math:`M-1` draws (:func:`collapse.theory.selection.nearest_of_m_law`) gives the
siblings, together, probability :math:`(1-F_{\mathrm{own}})^{M-1} - (1-F_{\mathrm{own+sib}})^{M-1}`; for a correctly
labelled anchor :math:`F_{\mathrm{own}} = (1-\varepsilon)/K` and :math:`F_{\mathrm{own+sib}} = 1 - \varepsilon`, for
an anchor carrying one of the :math:`C-1` wrong labels :math:`a` and :math:`Ka`. Weight by the anchor's probability
(:math:`(1-\varepsilon)/(CK)`, resp. :math:`\varepsilon/((C-1)CK)` per wrong label) and subtract the negatives'
weight, which does not depend on M. :math:`\square`

So the remaining pull decays geometrically in M, at rate :math:`1 - (1-\varepsilon)/K`: slower for more modes per
class. EPS removes the net pull once :math:`M \ge M^*(\varepsilon, C, K)`, the first M with
:math:`\Pi_M \le \Sigma`. As :math:`M \to \infty`, :math:`\Pi_M \to 0` and T3's infinite batch is recovered; at
:math:`M = 2` EPS is a random positive. :func:`check_t4` tests the formula against autograd, the mode-mate rate
against batches drawn by the real P x M sampler, and the prediction against simulated training.
"""

from __future__ import annotations

import torch
from scipy.stats import spearmanr

from collapse.experiment import SimConfig, run_simulation
from collapse.sampling import PKBatchSampler, Sampler
from collapse.theory.checks import Check
from collapse.theory.force import autograd_force
from collapse.theory.model import ModeModel
from collapse.theory.t0_clean import clean_configuration

__all__ = ["check_t4", "critical_batch", "eps_sibling_force", "measured_positive_rates", "predicted_positive_rates"]


def eps_sibling_force(eps: float, classes: int, modes: int, samples_per_class: int) -> dict[str, float]:
    """T4's pull, push and net total coefficient on the sibling distances of one mode (symmetric noise)."""
    C, K, M = classes, modes, samples_per_class
    a = eps / ((C - 1) * K)
    pull = (1 - eps) / (C * K) * ((1 - (1 - eps) / K) ** (M - 1) - eps ** (M - 1))
    pull += eps / (C * K) * ((1 - a) ** (M - 1) - (1 - K * a) ** (M - 1))
    push = (K - 1) * (1 - (1 - eps) ** 2 - eps**2 / (C - 1)) / (C * (C - 1) * K**2)
    return {"pull": pull, "push": push, "net": pull - push}


def critical_batch(eps: float, classes: int, modes: int, max_m: int = 4096) -> int | None:
    """The smallest M >= 2 at which T4's net sibling coefficient is <= 0 (None if none up to ``max_m``)."""
    for M in range(2, max_m + 1):
        if eps_sibling_force(eps, classes, modes, M)["net"] <= 0:
            return M
    return None


def predicted_positive_rates(model: ModeModel, samples_per_class: int, Z: torch.Tensor) -> dict[str, float]:
    """Exact chance that an anchor's easy positive is a mode-mate, a sibling (same class, other mode), or a mode of
    another class, in P x M batches at configuration ``Z``."""
    from collapse.losses import TripletMarginLoss
    from collapse.theory.population import mode_distances
    from collapse.theory.selection import positive_weights

    pm, py, pr = model.points()
    D = mode_distances(Z.double(), TripletMarginLoss())[:, pm][:, :, pm]
    same_label = py[:, None] == py[None, :]
    same_point = same_label & (pm[:, None] == pm[None, :])
    Qp = positive_weights("easy", D, same_label, pr, same_point, samples_per_class)[0]
    A = pr / len(model.labels_present)
    mc = torch.as_tensor(model.mode_class)
    mate = pm[:, None] == pm[None, :]
    sib = (mc[pm][:, None] == mc[pm][None, :]) & ~mate
    rate = lambda mask: float((A[:, None] * Qp * mask).sum())  # noqa: E731
    return {"mode_mate": rate(mate), "sibling": rate(sib), "other_class": rate(~mate & ~sib)}


def measured_positive_rates(
    model: ModeModel,
    samples_per_class: int,
    Z: torch.Tensor,
    *,
    samples_per_mode: int = 400,
    batches: int = 400,
    random_state: int = 0,
) -> dict[str, float]:
    """The same rates measured on batches drawn by :class:`~collapse.sampling.PKBatchSampler` from a simulated
    noisy data set, with the positives chosen by the real ``Sampler("easy", "all")`` on tied embeddings."""
    gen = torch.Generator().manual_seed(random_state)
    modes = torch.arange(model.n_modes).repeat_interleave(samples_per_mode)
    T = torch.as_tensor(model.transition)
    labels = torch.multinomial(T[modes], 1, generator=gen)[:, 0]
    sampler = PKBatchSampler(len(model.labels_present), samples_per_class)
    idx = torch.stack([sampler.sample(labels, model.n_classes, gen) for _ in range(batches)])
    bm, by = modes[idx], labels[idx]
    emb = torch.nn.functional.normalize(Z.double(), dim=-1)[bm]
    dist = torch.cdist(emb, emb)
    dist = torch.where(bm[:, :, None] == bm[:, None, :], torch.zeros_like(dist), dist)
    pairs = Sampler("easy", "all", random_state=gen)(dist, by, dim=Z.shape[-1]).positive_pairs
    pa, pp = bm[pairs.g, pairs.a], bm[pairs.g, pairs.b]
    mc = torch.as_tensor(model.mode_class)
    n = float(pa.numel())
    mate = pa == pp
    sib = (mc[pa] == mc[pp]) & ~mate
    return {
        "mode_mate": float(mate.sum()) / n,
        "sibling": float(sib.sum()) / n,
        "other_class": float((~mate & ~sib).sum()) / n,
        "anchors": n,
    }


def check_t4(
    eps: float = 0.1,
    classes: int = 4,
    modes: int = 3,
    m_grid=(3, 4, 6, 8, 12, 16),
    *,
    train_steps: int = 500,
    seeds: int = 3,
) -> Check:
    """Formula vs autograd (float64), predicted vs sampled positive rates, and predicted pull vs the mode separation
    reached by simulated training with easy positives (simulate's default hard negatives)."""
    model = ModeModel.symmetric(classes, modes, eps)
    Z = clean_configuration(model)
    D = torch.cdist(Z, Z)
    errors = []
    for M in m_grid:
        grad = autograd_force(model, "easy", batch=(classes, M), distances=D)
        sib = model.same_class_pairs()
        measured_net = float((grad * sib).sum(1).mean())
        errors.append(abs(measured_net - eps_sibling_force(eps, classes, modes, M)["net"]))
    rates = {}
    rate_err = []
    for M in (3, 6, 12):
        pred, meas = predicted_positive_rates(model, M, Z), measured_positive_rates(model, M, Z)
        rates[f"M={M}"] = {"predicted": pred, "measured": meas}
        rate_err.append(max(abs(pred[k] - meas[k]) for k in pred))
    sim = []
    for M in m_grid:
        r = run_simulation(
            SimConfig(classes=classes, modes=modes, noise=eps, samples_per_class=M, steps=train_steps, seeds=seeds),
            "triplet",
            "easy",
            "hard",
        )
        f = eps_sibling_force(eps, classes, modes, M)
        sim.append(
            {
                "M": M,
                "predicted_pull": f["pull"],
                "predicted_net": f["net"],
                "mode_separation": r.summary["mode_separation"],
            }
        )
    rho = float(spearmanr([s["predicted_pull"] for s in sim], [s["mode_separation"] for s in sim]).statistic)
    holds = max(errors) < 1e-12 and max(rate_err) < 0.03 and rho <= -0.6
    return Check(
        name="T4",
        statement="In P x M batches EPS leaves a sibling pull that decays like (1-(1-eps)/K)^(M-1); it beats the "
        "noise push below M* and protection grows with M.",
        holds=bool(holds),
        evidence={
            "max_abs_error_formula_vs_autograd": max(errors),
            "positive_rates": rates,
            "max_abs_error_rates": max(rate_err),
            "critical_M": critical_batch(eps, classes, modes),
            "critical_M_by_K": {K: critical_batch(eps, classes, K) for K in (2, 3, 4, 6)},
            "simulated_training": sim,
            "spearman_pull_vs_separation": rho,
        },
        conditions=f"eps={eps}, C={classes}, K={modes}; training: tied model, {train_steps} steps, {seeds} seeds, "
        "hard negatives (the formula is for all negatives, so the training check is about the trend, not M*)",
    )
