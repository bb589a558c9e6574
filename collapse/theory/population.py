r"""The population objective: the exact expected loss of a mode configuration, free of sampling noise.

Given mode embeddings :math:`Z` (N, d), a :class:`~collapse.theory.model.ModeModel` and a loss of
:mod:`collapse.losses` with a positive rule and a negative rule, the objective is

.. math::
    \mathcal L(Z) = \frac{\sum_t w_t\, \ell_t(D)}{\sum_t w_t}

summed over the loss's sub-losses, where the tuples :math:`t` (triplets, or positive and negative pairs) run over
the model's points, :math:`w_t` is the probability that a batch produces that tuple (anchor point
:math:`i=(m,y)` with probability :math:`r(m \mid y)/C'`, then the rule laws of :mod:`collapse.theory.selection`),
and :math:`\ell_t` is the *same* per-tuple term that the loss computes on a batch: this module builds the tuples
and their weights and calls the loss's own ``compute_terms`` on the exact mode-distance matrix. The weighted mean
is the expectation of the loss's ``mean`` reducer; the published avg-non-zero and divisor reducers rescale each
step by the fraction of active tuples, which changes the step size but not the direction of any force.

Batch models: ``batch=None`` is the infinite batch; ``batch=(P, M)`` a P x M batch, exact for every rule whose
law has a closed form (random/all/easy/hard positives with all/random negatives) and estimated by
:func:`monte_carlo_loss` otherwise. Multi-similarity is a log-sum over the batch, so it is only defined on a
P x M batch; :func:`population_loss` gives its mean-field value (expected counts inside the logarithm, an upper
bound by Jensen's inequality) and :func:`monte_carlo_loss` its exact expectation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from collapse._validation import check_int
from collapse.losses import (
    LOSSES,
    EasyPositiveNCALoss,
    MetricLoss,
    MultiSimilarityLoss,
    ProxyLoss,
    SpreadLoss,
    SupConLoss,
    make_loss,
)
from collapse.losses.multi_similarity import masked_log1p_sum_exp
from collapse.sampling import Sampler
from collapse.sampling.tuples import Pairs, Triplets, Tuples
from collapse.theory.model import ModeModel
from collapse.theory.selection import negative_weights, positive_weights

__all__ = [
    "MCEstimate",
    "Plan",
    "PopulationOutput",
    "build_loss",
    "evaluate_plan",
    "is_static",
    "make_plan",
    "mode_distances",
    "monte_carlo_loss",
    "population_loss",
]

EXACT_NEGATIVES = ("all", "random")
INFINITE_ONLY_NEGATIVES = ("semihard", "hard")


@dataclass
class PopulationOutput:
    """``loss`` = ``per_group.sum()``; ``per_term`` maps each sub-loss to its (G,) weighted mean."""

    loss: torch.Tensor
    per_group: torch.Tensor
    per_term: dict[str, torch.Tensor]


@dataclass(frozen=True)
class MCEstimate:
    """A Monte Carlo mean over ``n`` sampled batches, with its standard error."""

    mean: float
    stderr: float
    n: int


def build_loss(loss: str | MetricLoss, positive: str = "random", negative: str = "all", **kwargs) -> MetricLoss:
    """A loss object by name (``collapse.losses.LOSSES``) with the given rules and the ``mean`` reducer."""
    if isinstance(loss, MetricLoss):
        return loss
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    if issubclass(LOSSES[loss][0], ProxyLoss):
        raise ValueError(
            f"{loss} is a proxy loss (its class centres are parameters); its population objective is "
            "collapse.theory.rival_objectives.proxy_population_loss"
        )
    kwargs.setdefault("reducer", "mean")
    return make_loss(loss, positive, negative, **kwargs)


def mode_distances(Z: torch.Tensor, loss: MetricLoss) -> torch.Tensor:
    """(G, N, N) distances between modes under the loss's distance, with an exact zero diagonal."""
    Z = Z.unsqueeze(0) if Z.dim() == 2 else Z
    D = loss.distance(Z)
    eye = torch.eye(D.shape[-1], dtype=torch.bool, device=D.device)
    return D.masked_fill(eye, 0.0)


def population_loss(
    Z: torch.Tensor | None,
    model: ModeModel,
    loss: str | MetricLoss = "triplet",
    positive: str = "random",
    negative: str = "all",
    *,
    batch: tuple[int, int] | None = None,
    distances: torch.Tensor | None = None,
    plan: Plan | None = None,
    **loss_kwargs,
) -> PopulationOutput:
    r"""The expected loss of mode embeddings ``Z`` ((N, d), or (G, N, d) for G configurations at once).

    Parameters
    ----------
    Z : tensor or None
        Mode embeddings; ``None`` when ``distances`` is given instead.
    model : ModeModel
    loss : str or MetricLoss
        A name of :data:`collapse.losses.LOSSES` (built with the ``mean`` reducer) or a loss object; only its
        distance and its per-tuple terms are used.
    positive, negative : str
        The rules (the loss object's own sampler is ignored).
    batch : (P, M) or None
        ``None``: infinite batch. Otherwise P labels x M samples per label.
    distances : tensor (G, N, N), optional
        Mode distances to use directly (a leaf here makes autograd give the coefficient of each distance).
    plan : Plan, optional
        Weighted tuples from :func:`make_plan`, reused across calls when :attr:`Plan.static`.
    """
    loss_obj = build_loss(loss, positive, negative, **loss_kwargs)
    D_modes = mode_distances(Z, loss_obj) if distances is None else _as_groups(distances)
    if D_modes.shape[-1] != model.n_modes:
        raise ValueError(f"Z has {D_modes.shape[-1]} modes but the model has {model.n_modes}")
    if plan is None:
        plan = make_plan(model, loss_obj, positive, negative, batch=batch, distances=D_modes)
    return evaluate_plan(plan, loss_obj, D_modes)


@dataclass
class Plan:
    """Weighted tuples of one population objective. ``on_modes``: tuples index modes (the loss term does not
    read labels, so points of one mode were merged); otherwise they index points. ``static``: the weights do not
    depend on the distances, so one plan serves every configuration with the same number of groups."""

    tuples: Tuples | None
    w_pos: torch.Tensor | None
    w_neg: torch.Tensor | None
    w_trip: torch.Tensor | None
    labels: torch.Tensor
    point_mode: torch.Tensor
    on_modes: bool
    static: bool
    ms: tuple | None = None


def is_static(positive: str, negative: str, batch: tuple[int, int] | None) -> bool:
    """True when the rule laws do not depend on the configuration (so a :class:`Plan` can be reused)."""
    pos_static = positive in ("random", "all") or (positive == "easy" and batch is None)
    return pos_static and negative in EXACT_NEGATIVES


def make_plan(
    model: ModeModel,
    loss: MetricLoss,
    positive: str,
    negative: str,
    *,
    batch: tuple[int, int] | None,
    distances: torch.Tensor,
) -> Plan:
    """Build the weighted tuples at the configuration ``distances`` (G, N, N)."""
    if batch is not None:
        P, M = batch
        check_int("P", P, low=2, high=len(model.labels_present))
        check_int("M", M, low=2)
    D_modes = distances
    pm, py, pr = (t.to(D_modes.device) for t in model.points())
    pr = pr.to(D_modes.dtype)
    D = D_modes[:, pm][:, :, pm]
    G, n = D.shape[0], D.shape[1]
    n_labels = len(model.labels_present)
    anchor_w = pr / n_labels
    same_label = py[:, None] == py[None, :]
    same_point = same_label & (pm[:, None] == pm[None, :])
    M = None if batch is None else batch[1]
    static = is_static(positive, negative, batch)
    with torch.no_grad():
        Qp = positive_weights(positive, D, same_label, pr, same_point, M)
    labels = py.unsqueeze(0).expand(G, n)

    if isinstance(loss, MultiSimilarityLoss):
        if batch is None:
            raise ValueError("multi-similarity sums over a batch; give batch=(P, M)")
        if negative not in EXACT_NEGATIVES:
            raise ValueError("multi-similarity's population objective supports negatives all/random")
        Qn = negative_weights("all", D, ~same_label, pr / (n_labels - 1))
        n_pos = M - 1 if positive == "all" else 1
        n_neg = (batch[0] - 1) * M if negative == "all" else 1
        return Plan(None, None, None, None, labels, pm, False, static, ms=(Qp, Qn, anchor_w, n_pos, n_neg))

    _check_closed_form(loss, negative)
    if negative in EXACT_NEGATIVES:
        Qn = negative_weights(negative, D, ~same_label, pr / (n_labels - 1))
        tuples, w_pos, w_neg, w_trip = _all_negative_tuples(Qp, Qn, anchor_w)
    elif negative in INFINITE_ONLY_NEGATIVES:
        if batch is not None:
            raise ValueError(f"{negative} negatives have no closed-form P x M law; use monte_carlo_loss")
        tuples, w_trip = _selected_negative_tuples(negative, D, Qp, ~same_label, anchor_w)
        w_pos = w_neg = w_trip
    else:
        raise ValueError(f"negative rule must be one of all, random, semihard, hard, got {negative!r}")
    if not _reads_labels(loss):
        tuples, w_pos, w_neg, w_trip = _merge_to_modes(tuples, w_pos, w_neg, w_trip, pm, model.n_modes)
        labels = torch.as_tensor(model.mode_class, device=D.device).unsqueeze(0).expand(G, -1)
        return Plan(tuples, w_pos, w_neg, w_trip, labels, pm, True, static)
    return Plan(tuples, w_pos, w_neg, w_trip, labels, pm, False, static)


def evaluate_plan(plan: Plan, loss: MetricLoss, D_modes: torch.Tensor) -> PopulationOutput:
    """The weighted mean of the loss's own per-tuple terms at mode distances ``D_modes`` (G, N, N)."""
    D = D_modes if plan.on_modes else D_modes[:, plan.point_mode][:, :, plan.point_mode]
    G = D.shape[0]
    if plan.ms is not None:
        return _multi_similarity(loss, D, *plan.ms)
    terms = loss.compute_terms(D, plan.tuples, plan.labels)
    n_trip = len(plan.w_trip) if plan.w_trip is not None else -1
    per_term = {}
    for name, t in terms.items():
        if t.kind == "pos_pair" and len(t) == n_trip and len(t) != len(plan.w_pos):
            # One term per (anchor, positive, negative), e.g. NCA with one negative per positive pair: the plan
            # lists every negative of each positive pair, so the term follows the triplet law.
            w = plan.w_trip
        elif t.kind == "pos_pair":
            w = plan.w_pos
        elif t.kind == "neg_pair":
            w = plan.w_neg
        elif t.kind == "triplet" or (t.kind == "anchor" and len(t) == n_trip):
            w = plan.w_trip
        else:
            raise ValueError(f"sub-loss {name!r} of kind {t.kind!r} has no population weights")
        per_term[name] = _weighted_mean(t.losses, w.to(t.losses.dtype), t.group, G)
    per_group = sum(per_term.values())
    per_group = per_group + loss.regularizer(plan.tuples, plan.labels, per_group)
    return PopulationOutput(loss=per_group.sum(), per_group=per_group, per_term=per_term)


def monte_carlo_loss(
    Z: torch.Tensor,
    model: ModeModel,
    loss: str | MetricLoss = "triplet",
    positive: str = "random",
    negative: str = "all",
    *,
    batch: tuple[int, int],
    n_batches: int = 512,
    generator: torch.Generator | None = None,
    **loss_kwargs,
) -> tuple[torch.Tensor, MCEstimate]:
    """The expected loss over P x M batch compositions, by sampling ``n_batches`` batches and running the loss's
    real sampler on the exact mode distances. Returns the differentiable mean and its :class:`MCEstimate`."""
    loss_obj = build_loss(loss, positive, negative, **loss_kwargs)
    P, M = batch
    present = torch.as_tensor(model.labels_present)
    check_int("P", P, low=2, high=len(present))
    check_int("M", M, low=2)
    check_int("n_batches", n_batches, low=2)
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    if Z.dim() != 2:
        raise ValueError(f"Z must have shape (N, d), got {tuple(Z.shape)}")
    D_modes = mode_distances(Z, loss_obj)[0]
    chosen = present[torch.rand(n_batches, len(present), generator=gen).argsort(-1)[:, :P]]
    labels = chosen.repeat_interleave(M, dim=1)
    R = torch.as_tensor(model.conditional.T)
    modes = torch.multinomial(R[labels.reshape(-1)], 1, generator=gen).reshape(n_batches, P * M)
    dist = D_modes[modes.unsqueeze(-1), modes.unsqueeze(-2)]
    sampler = Sampler(positive, negative, random_state=gen)
    out = loss_obj.from_distances(dist, labels, dim=Z.shape[-1], sampler=sampler)
    vals = out.per_group.detach().double()
    est = MCEstimate(float(vals.mean()), float(vals.std() / np.sqrt(n_batches)), n_batches)
    return out.per_group.mean(), est


# ------------------------------------------------------------------------------------------------ internals
def _as_groups(D: torch.Tensor) -> torch.Tensor:
    return D.unsqueeze(0) if D.dim() == 2 else D


def _weighted_mean(values: torch.Tensor, w: torch.Tensor, group: torch.Tensor, G: int) -> torch.Tensor:
    num = torch.zeros(G, dtype=values.dtype, device=values.device).index_add(0, group, w * values)
    den = torch.zeros(G, dtype=values.dtype, device=values.device).index_add(0, group, w)
    return num / den.clamp_min(torch.finfo(values.dtype).tiny)


def _all_negative_tuples(Qp: torch.Tensor, Qn: torch.Tensor, anchor_w: torch.Tensor):
    """Every (anchor, positive, negative) with non-zero weight A_i Qp_ij Qn_ik."""
    G, n, _ = Qp.shape
    g, a, p = (Qp > 0).nonzero(as_tuple=True)
    w_pos = anchor_w[a] * Qp[g, a, p]
    ga, aa = (Qp > 0).any(-1).nonzero(as_tuple=True)
    rows = Qn[ga, aa]
    r, k = (rows > 0).nonzero(as_tuple=True)
    neg = Pairs(ga[r], aa[r], k)
    w_neg = anchor_w[aa[r]] * rows[r, k]
    # Triplets: each positive pair crossed with its anchor's negatives.
    prow = Qn[g, a]
    t, kk = (prow > 0).nonzero(as_tuple=True)
    trip = Triplets(g[t], a[t], p[t], kk)
    w_trip = w_pos[t] * prow[t, kk]
    tuples = Tuples(Pairs(g, a, p), neg, G, n, 0, 0, _triplets=trip)
    return tuples, w_pos, w_neg, w_trip


def _selected_negative_tuples(rule: str, D: torch.Tensor, Qp: torch.Tensor, other: torch.Tensor, anchor_w):
    """Infinite batch: one negative per positive pair, the nearest negative point (hard) or the nearest one
    farther than the positive (semi-hard); pairs without one are dropped."""
    g, a, p = (Qp > 0).nonzero(as_tuple=True)
    d_an = D[g, a]
    ok = other[a]
    if rule == "semihard":
        ok = ok & (d_an > D[g, a, p].unsqueeze(-1))
    masked = torch.where(ok, d_an, torch.full_like(d_an, float("inf")))
    n_idx = masked.argmin(-1)
    keep = ok.any(-1)
    g, a, p, n_idx = g[keep], a[keep], p[keep], n_idx[keep]
    trip = Triplets(g, a, p, n_idx)
    w = anchor_w[a] * Qp[g, a, p]
    tuples = Tuples.from_triplets(trip, D.shape[0], D.shape[1], without_positive=0, without_negative=0)
    return tuples, w


def _check_closed_form(loss: MetricLoss, negative: str) -> None:
    """Refuse, in one line, the losses whose term is a log-sum over the batch (no closed-form expectation)."""
    name = type(loss).__name__
    if isinstance(loss, ProxyLoss):
        raise ValueError(f"{name} is a proxy loss; its population objective is rival_objectives.proxy_population_loss")
    if isinstance(loss, (SupConLoss, SpreadLoss)):
        raise ValueError(
            f"{name}'s terms are a log-sum over the whole batch, which has no closed-form expectation; "
            "use monte_carlo_loss (or collapse.theory.rival_objectives.minimize_batch_mc)"
        )
    if isinstance(loss, EasyPositiveNCALoss) and negative == "all":
        raise ValueError(
            "nca with all negatives is a log-sum over the batch's negatives (no closed form, unbounded as the "
            "batch grows); use negative='random', 'semihard' or 'hard', or monte_carlo_loss"
        )


def _reads_labels(loss: MetricLoss) -> bool:
    """Whether the loss's terms depend on the anchor's label (a per-class learnable margin does)."""
    return bool(getattr(loss, "per_class", False))


def _merge_to_modes(tuples: Tuples, w_pos, w_neg, w_trip, point_mode: torch.Tensor, N: int):
    """Map point indices to their modes and add up the weights of tuples that coincide."""

    def merge(idx: tuple[torch.Tensor, ...], w: torch.Tensor):
        key = idx[0]
        for t in idx[1:]:
            key = key * N + point_mode[t]
        uniq, inv = torch.unique(key, return_inverse=True)
        wsum = torch.zeros(uniq.numel(), dtype=w.dtype, device=w.device).index_add(0, inv, w)
        cols = []
        for _ in idx[1:]:
            cols.append(uniq % N)
            uniq = uniq // N
        return (uniq, *reversed(cols)), wsum

    (g, a, p), wp = merge((tuples.positive_pairs.g, tuples.positive_pairs.a, tuples.positive_pairs.b), w_pos)
    (gn, an, nn), wn = merge((tuples.negative_pairs.g, tuples.negative_pairs.a, tuples.negative_pairs.b), w_neg)
    t = tuples.triplets
    (gt, at, pt, nt), wt = merge((t.g, t.a, t.p, t.n), w_trip)
    merged = Tuples(Pairs(g, a, p), Pairs(gn, an, nn), tuples.n_groups, N, 0, 0, _triplets=Triplets(gt, at, pt, nt))
    return merged, wp, wn, wt


def _multi_similarity(loss: MultiSimilarityLoss, D, Qp, Qn, anchor_w, n_pos: int, n_neg: int) -> PopulationOutput:
    r"""Mean-field multi-similarity: :math:`\frac1\alpha\log(1 + n_+\,\mathbb E_p e^{-\alpha(S_{ap}-\lambda)})`
    plus the negative analogue, averaged over anchors."""
    S = loss.distance.similarity(D)
    pos_x = -loss.alpha * (S - loss.base) + torch.log(n_pos * Qp)
    neg_x = loss.beta * (S - loss.base) + torch.log(n_neg * Qn)
    per_anchor = masked_log1p_sum_exp(pos_x, Qp > 0) / loss.alpha + masked_log1p_sum_exp(neg_x, Qn > 0) / loss.beta
    w = anchor_w.to(D.dtype)
    per_group = (per_anchor * w).sum(-1) / w.sum()
    return PopulationOutput(loss=per_group.sum(), per_group=per_group, per_term={"loss": per_group})
