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

**The law in M is not monotone.** Write :math:`A = (1-\varepsilon)/(CK)`, :math:`B = \varepsilon/(CK)` and the
two rates

.. math::
    \lambda_{\mathrm{in}} = 1 - \frac{1-\varepsilon}{K}\ \text{(correctly labelled anchors)},\qquad
    \lambda_{\mathrm{mis}} = 1 - a = 1 - \frac{\varepsilon}{(C-1)K}\ \text{(mislabelled anchors)}.

The first term of :math:`\Pi_M` decays at :math:`\lambda_{\mathrm{in}}`. The second, the pull through anchors that
carry a wrong label, is 0 at M = 1, *rises* (with more draws it becomes likely that a sibling with the same wrong
label is drawn while the anchor's own mode-mate is not), peaks at :math:`M_{\mathrm{peak}} = 1 +
\ln\frac{\ln(1-Ka)}{\ln(1-a)} / \ln\frac{1-a}{1-Ka}` and then decays at :math:`\lambda_{\mathrm{mis}}`. For
:math:`\varepsilon < (C-1)/C`, :math:`\lambda_{\mathrm{mis}} > \lambda_{\mathrm{in}}`, so the mislabelled anchors set
the asymptotic rate. The set :math:`\{M \ge 2 : \Pi_M > \Sigma\}` can therefore be several intervals: for
:math:`\varepsilon = 0.1`, C = 4, K = 4 it is M = 2..16 and again M = 45..68 (:func:`net_pull_intervals`; the second
interval's net pull is small, at most 6e-5 against 3.5e-2 at M = 2). The protection threshold :math:`M^*`
(:func:`critical_batch`) is the smallest M beyond which the pull never returns: the last M of the last interval plus
one (69 there). "Never" is proved, not only scanned: :math:`\Pi_M \le U_M = A\lambda_{\mathrm{in}}^{M-1} +
B\lambda_{\mathrm{mis}}^{M-1}`, which decreases in M, so once :math:`U_{M_b} \le \Sigma` no M >= :math:`M_b` has a net
pull; the scan runs to ``max(max_m, M_b)`` with ``max_m`` = 10^4 by default. With :math:`\varepsilon = 0` there is no
push (:math:`\Sigma = 0`) and no :math:`M^*`. As :math:`M \to \infty`, :math:`\Pi_M \to 0` and T3's infinite batch is
recovered; at :math:`M = 2` EPS is a random positive. :func:`check_t4` tests the formula against autograd of the exact
population objective (also inside and at the ends of the second interval), the mode-mate rate against batches drawn by
the real P x M sampler, and the trend against simulated training.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import spearmanr

from collapse._validation import check_int, check_real
from collapse.experiment import SimConfig, run_simulation
from collapse.sampling import PKBatchSampler, Sampler
from collapse.theory.checks import Check
from collapse.theory.force import autograd_force
from collapse.theory.model import ModeModel
from collapse.theory.t0_clean import clean_configuration

__all__ = [
    "check_t4",
    "critical_batch",
    "decay_rates",
    "eps_sibling_force",
    "measured_positive_rates",
    "net_pull_intervals",
    "predicted_positive_rates",
]


def decay_rates(eps: float, classes: int, modes: int) -> dict[str, float]:
    """T4's two geometric rates: ``correct`` = 1 - (1-eps)/K (correctly labelled anchors), ``mislabelled`` =
    1 - eps/((C-1)K) (anchors carrying a wrong label), and ``asymptotic``, the larger, which sets the decay of the
    pull at large M."""
    C, K = classes, modes
    rin, rmis = 1 - (1 - eps) / K, 1 - eps / ((C - 1) * K)
    return {"correct": rin, "mislabelled": rmis, "asymptotic": max(rin, rmis)}


def eps_sibling_force(eps: float, classes: int, modes: int, samples_per_class: int) -> dict[str, float]:
    """T4's pull (split into its correctly and wrongly labelled anchors), push and net total coefficient on the
    sibling distances of one mode (symmetric noise)."""
    C, K, M = classes, modes, samples_per_class
    a = eps / ((C - 1) * K)
    correct = (1 - eps) / (C * K) * ((1 - (1 - eps) / K) ** (M - 1) - eps ** (M - 1))
    mislabelled = eps / (C * K) * ((1 - a) ** (M - 1) - (1 - K * a) ** (M - 1))
    push = (K - 1) * (1 - (1 - eps) ** 2 - eps**2 / (C - 1)) / (C * (C - 1) * K**2)
    pull = correct + mislabelled
    return {"pull": pull, "pull_correct": correct, "pull_mislabelled": mislabelled, "push": push, "net": pull - push}


def _upper_bound(eps: float, C: int, K: int, M: int) -> float:
    """U_M >= pull, decreasing in M (see the module docstring)."""
    r = decay_rates(eps, C, K)
    return (1 - eps) / (C * K) * r["correct"] ** (M - 1) + eps / (C * K) * r["mislabelled"] ** (M - 1)


def net_pull_intervals(eps: float, classes: int, modes: int, max_m: int = 10_000) -> list[tuple[int, int]]:
    """The batch sizes M >= 2 at which T4's net sibling coefficient is > 0 (a net pull), as closed intervals
    ``(first, last)``; scanned to ``max(max_m, M_b)`` where the decreasing bound U stays below the push from
    ``M_b`` on, so the list is complete (the last interval may be open-ended only when eps = 0)."""
    check_real("eps", eps, low=0.0, high=1.0, high_inclusive=False)
    C, K = check_int("classes", classes, low=2), check_int("modes", modes, low=1)
    max_m = check_int("max_m", max_m, low=2)
    push = eps_sibling_force(eps, C, K, 2)["push"]
    stop = max_m
    if push > 0:
        while _upper_bound(eps, C, K, stop) > push:
            stop *= 2
    ms = np.arange(2, stop + 1)
    net = np.array([eps_sibling_force(eps, C, K, int(M))["net"] for M in ms])
    positive = net > 0
    intervals, start = [], None
    for M, on in zip(ms, positive):
        if on and start is None:
            start = int(M)
        elif not on and start is not None:
            intervals.append((start, int(M) - 1))
            start = None
    if start is not None:
        intervals.append((start, int(ms[-1])))
    return intervals


def critical_batch(eps: float, classes: int, modes: int, max_m: int = 10_000) -> int | None:
    """M*: the smallest M >= 2 such that no batch size >= M has a net EPS sibling pull (T4, symmetric noise).

    Not the first M where the pull drops below the push: the pull can come back (see the module docstring);
    ``critical_batch(0.1, 4, 4)`` is 69, not 17. Returns 2 if there is never a net pull, and None if the pull
    never stops (eps = 0: no push).
    """
    intervals = net_pull_intervals(eps, classes, modes, max_m)
    if not intervals:
        return 2
    if eps_sibling_force(eps, classes, modes, 2)["push"] <= 0:
        return None
    return intervals[-1][1] + 1


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
    """Formula vs autograd (float64), predicted vs sampled positive rates, the non-monotone law (K = 4: both
    intervals and their ends checked by autograd, sampled rates inside the second one), and predicted pull vs the
    mode separation reached by simulated training with easy positives (simulate's default hard negatives)."""
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
    # The non-monotone case: K = 4 (eps 0.1, C 4 gives M = 2..16 and 45..68). Autograd of the exact population
    # objective at every interval end and just outside it must agree with the formula in value and sign.
    K4 = 4
    model4 = ModeModel.symmetric(classes, K4, eps)
    Z4 = clean_configuration(model4)
    intervals4 = net_pull_intervals(eps, classes, K4)
    ends = sorted({e for lo, hi in intervals4 for e in (lo, hi, hi + 1, max(lo - 1, 2))})
    ends4 = []
    for M in ends:
        grad = autograd_force(model4, "easy", batch=(classes, M), distances=torch.cdist(Z4, Z4))
        measured_net = float((grad * model4.same_class_pairs()).sum(1).mean())
        f = eps_sibling_force(eps, classes, K4, M)["net"]
        ends4.append({"M": M, "autograd_net": measured_net, "formula_net": f})
    err4 = max(abs(e["autograd_net"] - e["formula_net"]) for e in ends4)
    signs4 = all((e["autograd_net"] > 0) == (e["formula_net"] > 0) for e in ends4)
    inside = (intervals4[-1][0] + intervals4[-1][1]) // 2 if len(intervals4) > 1 else 12
    pred4 = predicted_positive_rates(model4, inside, Z4)
    meas4 = measured_positive_rates(model4, inside, Z4, batches=150)
    rate_err.append(max(abs(pred4[k] - meas4[k]) for k in pred4))
    rates[f"K=4, M={inside}"] = {"predicted": pred4, "measured": meas4}
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
    m_star4 = critical_batch(eps, classes, K4)
    holds = (
        max(errors) < 1e-12 and err4 < 1e-12 and signs4 and max(rate_err) < 0.03 and rho <= -0.6
        and m_star4 == intervals4[-1][1] + 1
    )
    return Check(
        name="T4",
        statement="In P x M batches EPS leaves a sibling pull with two geometric terms, rate 1-(1-eps)/K (correctly "
        "labelled anchors) and 1-eps/((C-1)K) (mislabelled anchors, rising first, then the slower decay); the set "
        "of M with a net pull can be several intervals; M* is the smallest M beyond which it never returns.",
        holds=bool(holds),
        evidence={
            "max_abs_error_formula_vs_autograd": max(errors),
            "positive_rates": rates,
            "max_abs_error_rates": max(rate_err),
            "critical_M": critical_batch(eps, classes, modes),
            "critical_M_by_K": {K: critical_batch(eps, classes, K) for K in (2, 3, 4, 6)},
            "net_pull_intervals_by_K": {K: net_pull_intervals(eps, classes, K) for K in (2, 3, 4, 6)},
            "decay_rates": decay_rates(eps, classes, modes),
            "K=4_interval_ends_autograd": ends4,
            "K=4_max_abs_error": err4,
            "simulated_training": sim,
            "spearman_pull_vs_separation": rho,
        },
        conditions=f"eps={eps}, C={classes}, K={modes}; training: tied model, {train_steps} steps, {seeds} seeds, "
        "hard negatives (the formula is for all negatives, so the training check is about the trend, not M*)",
    )
