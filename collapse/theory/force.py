r"""T1, the collapse force: the coefficient of each mode distance in the expected triplet loss.

Take the triplet loss :math:`[D_{ap} - D_{an} + \alpha]_+` with all negatives, in the regime where every hinge is
active. The population objective (:mod:`collapse.theory.population`) is then linear in the mode distances,

.. math::
    \mathcal L = \alpha + \sum_{m \ne m'} \kappa_{m m'} D_{m m'},

with :math:`D_{mm'}` the distance from an anchor of mode :math:`m` to a partner of mode :math:`m'` (ordered pairs;
:math:`\kappa` is symmetric, so the total weight of the unordered pair is :math:`2\kappa_{mm'}`).

**Proposition (T1).** With :math:`R_{my} = r(m\mid y) = \pi_m T_{my}/\rho_y`, :math:`s_m = \sum_y R_{my}` and
:math:`C'` labels that occur, random positives give

.. math::
    \kappa = \frac{1}{C'(C'-1)}\Big(C'\, R R^\top - s s^\top\Big).

*Proof.* An anchor point :math:`(m, y)` has weight :math:`R_{my}/C'`. Its positive is mode :math:`m'` with
probability :math:`R_{m'y}`, which adds :math:`\frac1{C'}\sum_y R_{my}R_{m'y} = (RR^\top)_{mm'}/C'` to the
coefficient. Its negative has a label :math:`y' \ne y` chosen uniformly and then mode :math:`m'` with probability
:math:`R_{m'y'}`, which subtracts
:math:`\frac{1}{C'(C'-1)}\sum_y R_{my}(s_{m'} - R_{m'y}) = \frac{(ss^\top - RR^\top)_{mm'}}{C'(C'-1)}`. Adding the two
gives the formula. :math:`\square`

For symmetric noise :math:`\varepsilon` with :math:`K` uniform modes per class, :math:`R_{my} = T_{my}/K`,
:math:`s_m = 1/K` and :math:`(RR^\top)_{mm'} = ((1-\varepsilon)^2 + \varepsilon^2/(C-1))/K^2` for two modes of one
class, so

.. math::
    \kappa_{mm'} = \frac{(1 - \varepsilon C/(C-1))^2}{C K^2} \ \ge 0,

zero only at :math:`\varepsilon = (C-1)/C`, where labels carry no information. Every active triplet therefore pulls
the modes of a class together. (By Cauchy-Schwarz the same-class coefficient is non-negative for any :math:`T` in
which a mode's label law is closer to its siblings' than to the other classes' — it can turn negative only when a
class's modes are labelled *differently* from each other, e.g. under mode confusion.)

**EPS, infinite batch.** The positive is a mode-mate at distance 0, so the positive term only touches the diagonal
and

.. math::
    \kappa^{\mathrm{EPS}}_{mm'} = -\frac{(ss^\top - RR^\top)_{mm'}}{C'(C'-1)} \le 0 \qquad (m \ne m'):

siblings appear only as (mislabelled) negatives and are pushed apart, never pulled together. For symmetric noise
this is :math:`-(1 - (1-\varepsilon)^2 - \varepsilon^2/(C-1))/(C(C-1)K^2) \approx -2\varepsilon/(C(C-1)K^2)`.
"""

from __future__ import annotations

import numpy as np
import torch

from collapse.losses import TripletMarginLoss
from collapse.sampling import Sampler
from collapse.theory.checks import Check
from collapse.theory.model import ModeModel
from collapse.theory.population import population_loss

__all__ = ["autograd_force", "check_t1", "collapse_force", "eps_force", "kappa_symmetric", "kappa_symmetric_eps"]


def _present(model: ModeModel) -> tuple[np.ndarray, int]:
    labels = model.labels_present
    return model.conditional[:, labels], len(labels)


def collapse_force(model: ModeModel) -> np.ndarray:
    """(N, N) matrix kappa of T1 for random positives and all negatives (closed form; diagonal included)."""
    R, C = _present(model)
    s = R.sum(1)
    return (C * R @ R.T - np.outer(s, s)) / (C * (C - 1))


def eps_force(model: ModeModel) -> np.ndarray:
    """(N, N) coefficients under easy positives in the infinite batch (off-diagonal entries; the positive term
    sits on the diagonal, where the distance is 0)."""
    R, C = _present(model)
    s = R.sum(1)
    kappa = -(np.outer(s, s) - R @ R.T) / (C * (C - 1))
    np.fill_diagonal(kappa, np.nan)
    return kappa


def kappa_symmetric(eps: float, classes: int, modes: int) -> float:
    """T1's closed form for symmetric noise and uniform modes: (1 - eps C/(C-1))^2 / (C K^2)."""
    C, K = classes, modes
    return (1.0 - eps * C / (C - 1)) ** 2 / (C * K**2)


def kappa_symmetric_eps(eps: float, classes: int, modes: int) -> float:
    """The EPS (infinite batch) coefficient between two modes of a class under symmetric noise."""
    C, K = classes, modes
    return -(1.0 - (1.0 - eps) ** 2 - eps**2 / (C - 1)) / (C * (C - 1) * K**2)


def autograd_force(
    model: ModeModel,
    positive: str = "random",
    *,
    batch: tuple[int, int] | None = None,
    distances: torch.Tensor | None = None,
    margin: float = 1e3,
    generator: torch.Generator | None = None,
) -> np.ndarray:
    """kappa measured by autograd: the gradient of the float64 population objective with respect to the (ordered)
    mode distances, at ``distances`` (default: random distances in [0.5, 1.5]) with a margin so large that every
    hinge is active. With ``batch=(P, M)`` and easy positives the positive law depends on the distances, so the
    result is the force *at that configuration* (T4)."""
    N = model.n_modes
    if distances is None:
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        distances = 0.5 + torch.rand(N, N, generator=gen, dtype=torch.float64)
        distances = (distances + distances.T) / 2
        distances.fill_diagonal_(0.0)
    D = distances.detach().to(torch.float64).clone().requires_grad_(True)
    loss = TripletMarginLoss(margin=margin, sampler=Sampler(positive, "all"), reducer="mean")
    out = population_loss(None, model, loss, positive, "all", batch=batch, distances=D)
    (grad,) = torch.autograd.grad(out.loss, D)
    return grad.numpy()


def check_t1(models: tuple[ModeModel, ...] | None = None, tol: float = 1e-9) -> Check:
    """T1: closed form against autograd (float64) for symmetric, pair-flip and mode-confusion noise with unequal
    modes and weights; the symmetric formula; and the sign of the EPS coefficient."""
    if models is None:
        models = (
            ModeModel.symmetric(4, 3, 0.1),
            ModeModel.from_noise([2, 3, 1, 4], 0.3, kind="pair_flip", weights=[1, 2, 3, 1, 1, 2, 1, 1, 1, 3]),
            ModeModel.from_noise([3, 2, 2], 0.25, kind="mode_confusion"),
            ModeModel.symmetric(2, 4, 0.45),
        )
    errors, eps_errors, sym = [], [], []
    for m in models:
        off = ~np.eye(m.n_modes, dtype=bool)
        errors.append(float(np.abs(collapse_force(m) - autograd_force(m))[off].max()))
        eps_errors.append(float(np.abs(eps_force(m) - autograd_force(m, "easy"))[off].max()))
    for C, K, eps in [(4, 3, 0.1), (2, 4, 0.45), (5, 2, 0.0), (3, 3, 0.6)]:
        m = ModeModel.symmetric(C, K, eps)
        sym.append(abs(collapse_force(m)[0, 1] - kappa_symmetric(eps, C, K)))
    eps_signs = [float(np.nanmax(np.where(m.same_class_pairs(), eps_force(m), np.nan))) for m in models]
    holds = max(errors) < tol and max(eps_errors) < tol and max(sym) < tol and max(eps_signs) <= 0
    return Check(
        name="T1",
        statement="With every hinge active, random positives put net weight kappa = (C' RR^T - ss^T)/(C'(C'-1)) on "
        "each mode distance; for symmetric noise and uniform modes (1 - eps C/(C-1))^2/(C K^2) > 0 on same-class "
        "pairs. Under EPS (infinite batch) same-class pairs get -(ss^T - RR^T)/(C'(C'-1)) <= 0.",
        holds=bool(holds),
        evidence={
            "max_abs_error_closed_form_vs_autograd": max(errors),
            "max_abs_error_eps_form_vs_autograd": max(eps_errors),
            "max_abs_error_symmetric_formula": max(sym),
            "max_same_class_eps_coefficient": max(eps_signs),
            "kappa_symmetric(eps=0.1,C=4,K=3)": kappa_symmetric(0.1, 4, 3),
            "kappa_eps_symmetric(eps=0.1,C=4,K=3)": kappa_symmetric_eps(0.1, 4, 3),
        },
        conditions="float64, all negatives, anchors class-balanced as in a P x M sampler; models: symmetric, "
        "pair-flip with unequal modes and weights, mode confusion, C=2 near eps=(C-1)/C",
    )
