r"""The collapse instrument: measures that see scale and relation, for any embedding with known modes.

Inputs: embeddings :math:`x_i \in \mathbb{R}^d` (:math:`i = 1..N`), true class labels :math:`y_i`, mode (fine)
labels :math:`m_i` (a mode is a (class, mode id) pair), and the loss's margin :math:`\alpha > 0` in the units of
the embedding distance (Euclidean). Notation as in :mod:`collapse.metrics.collapse_measures`; in addition
:math:`n_k`, :math:`\nu_k` and :math:`V_k = \frac{1}{n_k-1}\sum_{i \in k}\lVert x_i-\nu_k\rVert^2` are the size,
centroid and (unbiased) total variance of mode :math:`k`, and the **resolution** is :math:`r = \alpha/2`.

Why :math:`\alpha/2`: a margin loss pushes a point's negatives (under label noise: its mislabelled siblings) to
one margin :math:`\alpha`; two modes nearer than :math:`\alpha/2` are nearer to coinciding than to that
separation. Distances below the resolution are treated as ties.

Measures (every key of :func:`instrument_report`; the formulas are in ``docs/measures.md`` too):

* **Mode pairs.** For two modes :math:`k, k'` of one class, the noise-corrected centroid distance
  :math:`\tilde d_{kk'} = \sqrt{\max(0, \lVert\nu_k-\nu_{k'}\rVert^2 - V_k/n_k - V_{k'}/n_{k'})}` (unbiased for
  :math:`\lVert E\nu_k - E\nu_{k'}\rVert^2`: samples split at random into "modes" read about 0, so a shuffle of the
  mode labels changes it), and the rule

  .. math:: \text{merged}(k, k') \iff \tilde d_{kk'} < \max\bigl(\alpha/2,\ f_{kk'}\bigr),\qquad
     f_{kk'}^2 = g\,\chi^2_{h,\,1-p} - \operatorname{tr}A,

  with :math:`A = \hat\Sigma_k/n_k + \hat\Sigma_{k'}/n_{k'}` (the covariance of the centroid difference),
  :math:`g = \operatorname{tr}A^2/\operatorname{tr}A`, :math:`h = (\operatorname{tr}A)^2/\operatorname{tr}A^2` and
  :math:`p` = :data:`NOISE_P` = 0.001: the two modes sit at one point *at the loss's resolution*, or their
  separation is not resolved from sampling noise. The *noise floor* :math:`f` is the Welch-Satterthwaite
  approximation :math:`\lVert\nu_k-\nu_{k'}\rVert^2 \approx g\chi^2_h` of the squared distance two modes with
  one common mean show (Gaussian samples), at its :math:`1-p` quantile: with a few hundred samples per mode it
  is far below :math:`\alpha/2`; with a few samples of a wide mode, or "modes" that are random halves of one
  cloud spread in a few directions, it is what stops chance differences from reading as kept modes. This is
  collapse as the theory means it (a class's modes projected onto one point), in the units the loss works in.
  The merged pairs of a class form a graph; its connected components are the class's *distinct modes*
  :math:`D_c`, and :math:`K_c - D_c \in [0, K_c-1]` is its
  number of *merges*. Keys ``merges`` (sum over multi-mode classes), ``merges_possible``
  (:math:`\sum_c (K_c-1)`), ``merged_fraction``, ``modes_distinct`` (mean :math:`D_c`), ``classes_collapsed`` /
  ``classes_partial`` / ``classes_kept`` (:math:`D_c = 1`, :math:`1 < D_c < K_c`, :math:`D_c = K_c`).

  *Overlap is reported, not judged.* With :math:`\sigma_k, \sigma_{k'}` the spreads of each mode's samples
  projected on the axis :math:`u = (\nu_{k'}-\nu_k)/\lVert\nu_{k'}-\nu_k\rVert`, a pair *overlaps* when
  :math:`\tilde d_{kk'} < \sigma_k + \sigma_{k'}` (keys ``pairs_overlapping``, ``overlap_fraction``). Overlap is a
  property of how separable the samples are, which real data has from the input on: on Fashion-MNIST superclasses
  the sub-classes of a class overlap in the raw pixels, in heads trained on the fine labels themselves, and in a
  clean CNN whose sub-classes a linear probe still tells apart (docs/measures.md, "calibration on real
  embeddings"). Counting overlap as a merge judged those clean embeddings collapsed; it is therefore measured by
  the probes of :func:`collapse.metrics.subclass_probes`, not by the collapse verdict.
* **Per class.** :math:`s_c` = mean of :math:`\tilde d_{kk'}` over the pairs of class :math:`c`;
  :math:`\rho_c = \min_{c' \ne c}\lVert\mu_c-\mu_{c'}\rVert` its distance to the nearest other class. Keys
  ``submode_separation`` (mean :math:`s_c`), ``submode_separation_over_margin`` (mean :math:`s_c/\alpha`),
  ``submode_separation_over_spacing`` (mean :math:`s_c/\rho_c`; ``nan`` when a :math:`\rho_c` is below the
  resolution, where a ratio of two unresolved distances means nothing), ``class_spacing`` (mean
  :math:`\rho_c`) and ``class_spacing_over_margin``; ``class_radius_over_margin`` is the mean over classes of
  :math:`\sqrt{\frac{1}{n_c}\sum_{i: y_i = c}\lVert x_i-\mu_c\rVert^2}/\alpha`, the absolute within-class spread
  in margins (a class squeezed into the resolution reads below 1/2).
* **Whole space.** ``global_radius`` :math:`R = \sqrt{\frac1N\sum_i\lVert x_i-\bar x\rVert^2}` (so the RMS
  pairwise distance is :math:`\sqrt2 R`), ``radius_over_margin`` :math:`R/\alpha`, and ``loss_over_margin``
  (the final loss divided by :math:`\alpha`, ``nan`` without ``loss``): every point on one spot makes every
  triplet term exactly :math:`\alpha`, so about 1 is the trivial solution's value (hard negatives under noise
  reach it also when classes stay apart, so it is reported, not judged on).
* **At the resolution.** Retrieval quality is measured on the embedding *resolved at* :math:`r`
  (:func:`resolve`): points are grouped greedily, in a seeded random order, onto leaders within :math:`r`, each
  replaced by its leader, and the rows put in a seeded random order, so that differences below the resolution
  become exact ties broken at random. On it: ``class_map_at_r`` and ``class_nmi``
  (:func:`~collapse.metrics.retrieval.map_at_r`, :func:`~collapse.metrics.retrieval.nmi_kmeans` with the class
  labels), their *mode-level null* ``class_map_at_r_null`` / ``class_map_at_r_null_std`` (the same MAP@R with
  the modes dealt to classes by a random permutation that keeps every class's number of modes: what the modes
  alone give, without any class structure), ``submode_nmi`` and ``fine_precision_at_1`` / ``fine_chance``
  (:func:`~collapse.metrics.collapse_measures.submode_recovery` and
  :func:`~collapse.metrics.collapse_measures.fine_precision_at_1`; a collapsed class scores 0 and chance).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.sparse.csgraph import connected_components
from scipy.stats import chi2

from collapse._validation import check_int, check_random_state, check_real
from collapse.metrics.collapse_measures import (
    _fine_groups,
    _group_means,
    _inputs,
    _multi_mode_classes,
    fine_precision_at_1,
    submode_recovery,
)
from collapse.metrics.knn import ArrayLike, as_labels
from collapse.metrics.retrieval import map_at_r_many, nmi_kmeans

__all__ = ["NOISE_P", "instrument_report", "mode_pairs", "resolve"]

#: Chance that two modes with one common mean read as resolved from sampling noise (per pair).
NOISE_P = 1e-3


def mode_pairs(embeddings: ArrayLike, labels: ArrayLike, modes: ArrayLike, *, margin: float) -> list[dict]:
    """Every pair of modes of every multi-mode class with its distances, spreads, threshold and merged flag.

    One dict per pair: ``class`` (index into the sorted distinct labels), ``modes`` (the two mode ids),
    ``distance`` (plain centroid distance), ``corrected_distance`` :math:`\\tilde d`, ``spread`` (the two projected
    spreads), ``noise_floor``, ``threshold`` (the larger of :math:`\\alpha/2` and the noise floor),
    ``merged`` and ``overlapping`` (see the module docstring).
    """
    margin = check_real("margin", margin, low=0.0, low_inclusive=False)
    x, y = _inputs(embeddings, labels)
    m = as_labels(modes, x.shape[0], "modes")
    return _pairs(x, y, m, margin)[0]


def _pairs(x: torch.Tensor, y: torch.Tensor, m: torch.Tensor, margin: float) -> tuple[list[dict], list[dict]]:
    cls_inv, n_cls, mode_cls, mode_inv, n_modes = _fine_groups(y, m)
    mode_inv = mode_inv.to(x.device)
    nu = _group_means(x, mode_inv, n_modes)
    counts = torch.bincount(mode_inv, minlength=n_modes).to(x.dtype)
    resid = x - nu[mode_inv]
    ss = torch.zeros(n_modes, dtype=x.dtype, device=x.device).index_add_(0, mode_inv, (resid * resid).sum(1))
    var = torch.where(counts > 1, ss / (counts - 1).clamp_min(1), torch.zeros_like(ss))
    fine_ids = torch.unique(torch.stack([cls_inv, m], dim=1), dim=0)[:, 1]
    pairs, classes = [], []
    for members in _multi_mode_classes(mode_cls):
        ids = members.tolist()
        k = len(ids)
        merged = np.zeros((k, k), dtype=bool)
        res_of = {g: resid[mode_inv == g] for g in ids}
        own = {g: _cross(res_of[g], res_of[g]) / max(len(res_of[g]) - 1, 1) ** 2 for g in ids}
        for a in range(k):
            for b in range(a + 1, k):
                i, j = ids[a], ids[b]
                diff = nu[j] - nu[i]
                dist = float(torch.linalg.vector_norm(diff))
                d2 = dist**2 - float(var[i] / counts[i] + var[j] / counts[j])
                corrected = float(np.sqrt(max(d2, 0.0)))
                if dist > 0:
                    u = diff / dist
                    spreads = [_projected_spread(res_of[g] @ u) for g in (i, j)]
                else:
                    spreads = [0.0, 0.0]
                ni, nj = float(counts[i]), float(counts[j])
                tr_a = float(var[i] / ni + var[j] / nj)
                tr_a2 = own[i] / ni**2 + own[j] / nj**2
                if ni > 1 and nj > 1:
                    tr_a2 += 2 * _cross(res_of[i], res_of[j]) / ((ni - 1) * (nj - 1) * ni * nj)
                noise_floor = _noise_floor(tr_a, tr_a2)
                threshold = max(margin / 2.0, noise_floor)
                merged[a, b] = merged[b, a] = corrected < threshold
                pairs.append(
                    {
                        "class": int(mode_cls[i]),
                        "modes": (int(fine_ids[i]), int(fine_ids[j])),
                        "distance": dist,
                        "corrected_distance": corrected,
                        "spread": tuple(spreads),
                        "noise_floor": noise_floor,
                        "threshold": threshold,
                        "merged": bool(merged[a, b]),
                        "overlapping": corrected < spreads[0] + spreads[1],
                    }
                )
        distinct = int(connected_components(merged, directed=False)[0])
        seps = [p["corrected_distance"] for p in pairs if p["class"] == int(mode_cls[ids[0]])]
        classes.append(
            {"class": int(mode_cls[ids[0]]), "modes": k, "distinct": distinct, "separation": float(np.mean(seps))}
        )
    return pairs, classes


def _noise_floor(tr_a: float, tr_a2: float) -> float:
    """The largest corrected distance sampling noise alone gives with probability ``1 - NOISE_P`` (see the
    module docstring): :math:`\\sqrt{\\max(0,\\ g\\,\\chi^2_{h,1-p} - \\operatorname{tr}A)}`, with
    :math:`g = \\operatorname{tr}A^2/\\operatorname{tr}A`, :math:`h = (\\operatorname{tr}A)^2/\\operatorname{tr}A^2`."""
    if tr_a <= 0 or tr_a2 <= 0:
        return 0.0
    g, h = tr_a2 / tr_a, tr_a**2 / tr_a2
    return float(np.sqrt(max(g * chi2.ppf(1.0 - NOISE_P, h) - tr_a, 0.0)))


def _cross(ri: torch.Tensor, rj: torch.Tensor) -> float:
    """:math:`\\lVert R_i R_j^\\top\\rVert_F^2 = \\operatorname{tr}(R_i^\\top R_i R_j^\\top R_j)`,
    by whichever product is smaller."""
    if ri.shape[0] * rj.shape[0] <= ri.shape[1] ** 2:
        return float((ri @ rj.T).pow(2).sum())
    return float(((ri.T @ ri) * (rj.T @ rj)).sum())


def _projected_spread(proj: torch.Tensor) -> float:
    """Standard deviation (n - 1) of a mode's projected residuals; 0 for a single sample."""
    return float(torch.sqrt((proj * proj).sum() / (proj.numel() - 1))) if proj.numel() > 1 else 0.0


def resolve(
    embeddings: ArrayLike, resolution: float, *, random_state: int | np.random.Generator | None = 0
) -> tuple[torch.Tensor, np.ndarray]:
    """The embedding at a resolution: differences below ``resolution`` become exact ties broken at random.

    Points are visited in a seeded random order; each joins its nearest *leader* if that is within
    ``resolution`` (so a group's diameter is at most twice the resolution) or becomes a leader. Every point is
    replaced by its leader's coordinates. Returns ``(x_resolved[order], order)``: the rows in a random order
    (apply ``order`` to the labels too), so that the index order in which exact ties are listed is random.
    """
    resolution = check_real("resolution", resolution, low=0.0)
    x = _inputs(embeddings, torch.zeros(len(embeddings), dtype=torch.long))[0]
    rng = check_random_state(random_state)
    n = x.shape[0]
    order = rng.permutation(n)
    radius = resolution
    leader_of = np.empty(n, dtype=np.int64)
    leaders: list[int] = []
    block = torch.empty((0, x.shape[1]), dtype=x.dtype, device=x.device)
    for i in order:
        if leaders:
            d = torch.linalg.vector_norm(block - x[i], dim=1)
            j = int(torch.argmin(d))
            if float(d[j]) <= radius:
                leader_of[i] = leaders[j]
                continue
        leaders.append(int(i))
        leader_of[i] = i
        block = torch.cat([block, x[i : i + 1]])
    return x[torch.as_tensor(leader_of)][torch.as_tensor(order)], order


def instrument_report(
    embeddings: ArrayLike,
    labels: ArrayLike,
    modes: ArrayLike,
    *,
    margin: float,
    loss: float | None = None,
    null_permutations: int = 30,
    kmeans: bool = True,
    random_state: int = 0,
) -> dict[str, float]:
    """Every measure of the collapse instrument (see the module docstring), as one flat dict of python floats.

    Works on any embedding (tied modes, free samples, an MLP, CNN features) given true classes, modes and the
    margin :math:`\\alpha` of the loss that produced it, in the embedding's distance units. ``loss`` is the final
    training loss (optional). ``kmeans=False`` skips the k-means measures (``class_nmi``, ``submode_nmi``,
    ``submode_ari`` are then ``nan``; the verdict does not use them), which are most of the cost on small data.
    Needs two classes and one class with two modes.
    """
    margin = check_real("margin", margin, low=0.0, low_inclusive=False)
    if loss is not None:
        loss = check_real("loss", loss)
    null_permutations = check_int("null_permutations", null_permutations, low=1)
    random_state = check_int("random_state", random_state, low=0)
    x, y = _inputs(embeddings, labels)
    m = as_labels(modes, x.shape[0], "modes")
    cls_inv, n_cls, mode_cls, mode_inv, _ = _fine_groups(y, m)
    if n_cls < 2:
        raise ValueError("labels must contain at least 2 distinct classes")
    res = margin / 2.0
    pairs, classes = _pairs(x, y, m, margin)
    cls_inv = cls_inv.to(x.device)
    mu = _group_means(x, cls_inv, n_cls)
    cd = torch.cdist(mu, mu)
    cd.fill_diagonal_(torch.inf)
    spacing = cd.min(dim=1).values.cpu().numpy()
    sep = np.array([c["separation"] for c in classes])
    rho = np.array([spacing[c["class"]] for c in classes])
    k = np.array([c["modes"] for c in classes])
    distinct = np.array([c["distinct"] for c in classes])
    radius = float(torch.sqrt(((x - x.mean(0)) ** 2).sum(1).mean()))
    class_radius = torch.sqrt(_group_means(((x - mu[cls_inv]) ** 2).sum(1, keepdim=True), cls_inv, n_cls))
    class_radius = class_radius[:, 0].cpu().numpy()
    out = {
        "margin": margin,
        "resolution": res,
        "global_radius": radius,
        "radius_over_margin": radius / margin,
        "loss_over_margin": float("nan") if loss is None else loss / margin,
        "class_spacing": float(spacing.mean()),
        "class_spacing_over_margin": float(spacing.mean()) / margin,
        "class_radius_over_margin": float(class_radius.mean()) / margin,
        "submode_separation": float(sep.mean()),
        "submode_separation_over_margin": float(sep.mean()) / margin,
        "submode_separation_over_spacing": float(np.mean(sep / rho)) if (rho >= res).all() else float("nan"),
        "merges": float((k - distinct).sum()),
        "merges_possible": float((k - 1).sum()),
        "merged_fraction": float((k - distinct).sum() / (k - 1).sum()),
        "modes_distinct": float(distinct.mean()),
        "true_modes": float(k.mean()),
        "classes_collapsed": float((distinct == 1).sum()),
        "classes_partial": float(((distinct > 1) & (distinct < k)).sum()),
        "classes_kept": float((distinct == k).sum()),
        "pairs_merged": float(sum(p["merged"] for p in pairs)),
        "pairs_overlapping": float(sum(p["overlapping"] for p in pairs)),
        "overlap_fraction": float(np.mean([p["overlapping"] for p in pairs])),
        "pairs": float(len(pairs)),
    }
    xr, order = resolve(x, res, random_state=random_state)
    yr, mr = y[torch.as_tensor(order)], m[torch.as_tensor(order)]
    # One k-NN pass scores the class labels and every mode-level permutation of them.
    rng = np.random.default_rng(random_state + 1)
    mode_r = mode_inv[torch.as_tensor(order)]
    perms = [torch.as_tensor(rng.permutation(mode_cls.numpy()))[mode_r] for _ in range(null_permutations)]
    scores = map_at_r_many(xr, [yr, *perms])
    out["class_map_at_r"], null = scores[0], scores[1:]
    out["class_nmi"] = nmi_kmeans(xr, yr, random_state=random_state) if kmeans else float("nan")
    out["class_map_at_r_null"] = float(np.mean(null))
    out["class_map_at_r_null_std"] = float(np.std(null))
    if kmeans:
        sub = submode_recovery(xr, yr, mr, tol=0.0, random_state=random_state)
        out |= {"submode_nmi": sub["submode_nmi"], "submode_ari": sub["submode_ari"]}
    else:
        out |= {"submode_nmi": float("nan"), "submode_ari": float("nan")}
    out |= fine_precision_at_1(xr, yr, mr)
    return out
