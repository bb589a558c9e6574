r"""Measures of class collapse when the modes (fine labels) of every class are known.

Notation: samples :math:`x_i \in \mathbb{R}^d`, :math:`i = 1..N`, class labels :math:`y_i` (C classes),
modes :math:`m_i`. A *mode* is a (class, mode id) pair, so mode ids may be global or restart in every
class; pass the true (clean) class labels, since every measure here asks how a class's own modes sit.
:math:`I_c` is the index set of class :math:`c`, :math:`n_c = |I_c|`, :math:`\mu_c` its mean (sample
weighted), :math:`K_c` its number of modes and :math:`\nu_{c,m}` the mean of mode :math:`m` of class
:math:`c`. Distances are Euclidean, :math:`d(a, b) = \lVert a - b \rVert_2`, computed in float64.
Classes with :math:`K_c \ge 2` are the *multi-mode* classes; the mode-level measures average over them
only (a single-mode class cannot collapse).

Every function returns python floats (in a dict where there are several numbers). Degenerate geometry
(coinciding class centroids) gives ``inf``/``nan`` where the formula divides by zero, as documented per
function; malformed input raises a one-line ``ValueError``.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.sparse.csgraph import connected_components
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from collapse._validation import check_choice, check_int, check_real
from collapse.metrics.knn import DISTANCES, ArrayLike, _Engine, as_embeddings, as_labels
from collapse.metrics.retrieval import kmeans_labels, sklearn_seed

__all__ = [
    "cdnv",
    "collapse_report",
    "fine_precision_at_1",
    "intra_inter_ratio",
    "mode_separation",
    "nc1",
    "submode_recovery",
]

TOL_FRACTION = 0.05


def intra_inter_ratio(embeddings: ArrayLike, labels: ArrayLike, *, chunk_size: int = 4096) -> dict[str, float]:
    r"""Mean intra-class over mean inter-class pairwise distance (Roth et al. 2020's embedding density).

    .. math::
        \pi_\mathrm{intra} = \frac{\sum_c \sum_{i \ne j \in I_c} d(x_i, x_j)}{\sum_c n_c (n_c - 1)},\qquad
        \pi_\mathrm{inter} = \frac{\sum_{y_i \ne y_j} d(x_i, x_j)}{N^2 - \sum_c n_c^2},\qquad
        \texttt{intra\_inter\_ratio} = \pi_\mathrm{intra} / \pi_\mathrm{inter}.

    Both means pool all pairs (large classes weigh more). Roth et al. measure the inter-class term between
    class centroids instead; that variant is returned as
    ``intra_inter_centroid_ratio`` :math:`= \pi_\mathrm{intra} / \mathrm{mean}_{c < c'} d(\mu_c, \mu_{c'})`.
    The pairwise sums run over row chunks, so memory is O(chunk_size * N).

    Returns keys ``intra_class_distance``, ``inter_class_distance``, ``intra_inter_ratio``,
    ``intra_inter_centroid_ratio``. Needs two classes and one class with two samples.
    """
    chunk_size = check_int("chunk_size", chunk_size, low=1)
    x, y = _inputs(embeddings, labels)
    _, inv, counts = torch.unique(y, return_inverse=True, return_counts=True)
    if counts.numel() < 2:
        raise ValueError("labels must contain at least 2 distinct classes")
    if int(counts.max()) < 2:
        raise ValueError("labels must contain at least one class with 2 or more samples")
    n = x.shape[0]
    inv = inv.to(x.device)
    engine = _Engine(x, "euclidean")
    intra_sum = total_sum = 0.0
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        d = engine.block(start, stop)
        total_sum += float(d.sum())
        intra_sum += float((d * (inv[start:stop, None] == inv[None, :])).sum())
    counts64 = counts.to(torch.float64)
    n_intra = float((counts64 * (counts64 - 1)).sum())
    n_inter = float(n) ** 2 - float((counts64**2).sum())
    intra = intra_sum / n_intra
    inter = (total_sum - intra_sum) / n_inter
    centroid_sep = _mean_pairwise(_group_means(x, inv, counts.numel()))
    return {
        "intra_class_distance": intra,
        "inter_class_distance": inter,
        "intra_inter_ratio": _ratio(intra, inter),
        "intra_inter_centroid_ratio": _ratio(intra, centroid_sep),
    }


def mode_separation(
    embeddings: ArrayLike, labels: ArrayLike, modes: ArrayLike, margin: float | None = None
) -> dict[str, float]:
    r"""Separation of mode centroids within each class, absolutely and relative to the class spacing.

    .. math::
        s_c = \frac{2}{K_c (K_c - 1)} \sum_{m < m'} d(\nu_{c,m}, \nu_{c,m'}) \quad (K_c \ge 2),\qquad
        S_\mathrm{inter} = \frac{2}{C (C - 1)} \sum_{c < c'} d(\mu_c, \mu_{c'}).

    Returns ``mode_separation`` :math:`= \mathrm{mean}_c\, s_c` over multi-mode classes,
    ``mode_separation_min`` :math:`= \min_c s_c`, ``inter_class_separation`` :math:`= S_\mathrm{inter}`
    and ``mode_separation_ratio`` = ``mode_separation / inter_class_separation`` (scale-free: about 0 when
    the modes collapsed, ``nan`` if all class centroids coincide); with ``margin`` also
    ``mode_separation_over_margin`` = ``mode_separation / margin``. Needs two classes and a multi-mode class.
    """
    if margin is not None:
        margin = check_real("margin", margin, low=0.0, low_inclusive=False)
    x, y = _inputs(embeddings, labels)
    m = as_labels(modes, x.shape[0], "modes")
    cls_inv, n_cls, mode_cls, mode_inv, _ = _fine_groups(y, m)
    if n_cls < 2:
        raise ValueError("labels must contain at least 2 distinct classes")
    mode_means = _group_means(x, mode_inv.to(x.device), mode_cls.numel())
    per_class = [_mean_pairwise(mode_means[members]) for members in _multi_mode_classes(mode_cls)]
    inter = _mean_pairwise(_group_means(x, cls_inv.to(x.device), n_cls))
    sep = float(np.mean(per_class))
    out = {
        "mode_separation": sep,
        "mode_separation_min": float(np.min(per_class)),
        "inter_class_separation": inter,
        "mode_separation_ratio": _ratio(sep, inter),
    }
    if margin is not None:
        out["mode_separation_over_margin"] = sep / margin
    return out


def _class_means(embeddings: ArrayLike, labels: ArrayLike) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                                      torch.Tensor]:
    """The shared start of :func:`nc1` and :func:`cdnv`: validated inputs, each sample's class index, the class
    sizes and the class means (at least two classes, one-line error otherwise)."""
    x, y = _inputs(embeddings, labels)
    _, inv, counts = torch.unique(y, return_inverse=True, return_counts=True)
    if counts.numel() < 2:
        raise ValueError("labels must contain at least 2 distinct classes")
    inv = inv.to(x.device)
    return x, inv, counts, _group_means(x, inv, counts.numel())


def nc1(embeddings: ArrayLike, labels: ArrayLike) -> float:
    r"""Neural-collapse NC1 (Papyan et al. 2020): :math:`\mathrm{tr}(\Sigma_W \Sigma_B^{+}) / C`.

    .. math::
        \Sigma_W = \frac{1}{N}\sum_i (x_i - \mu_{y_i})(x_i - \mu_{y_i})^\top,\qquad
        \Sigma_B = \frac{1}{C}\sum_c (\mu_c - \bar\mu)(\mu_c - \bar\mu)^\top,\quad
        \bar\mu = \frac{1}{C}\sum_c \mu_c.

    :math:`\Sigma_B^{+}` is the Moore-Penrose pseudo-inverse: with the thin SVD of the centred class-mean
    matrix :math:`M = U S V^\top` (C x d), :math:`\mathrm{tr}(\Sigma_W\Sigma_B^{+}) = C \sum_k s_k^{-2}\,
    v_k^\top \Sigma_W v_k` over singular values :math:`s_k > s_\max \max(C, d)\,\epsilon_{64}` (numpy's rank
    tolerance), so no d x d inverse is formed. 0 means every class sits on its mean. If all class means
    coincide the result is ``inf`` (``nan`` if the within-class scatter is zero too). Needs two classes.
    """
    x, inv, counts, means = _class_means(embeddings, labels)
    n_cls = counts.numel()
    within = x - means[inv]
    centred = means - means.mean(dim=0, keepdim=True)
    _, s, vh = torch.linalg.svd(centred, full_matrices=False)
    keep = s > s.max() * max(centred.shape) * torch.finfo(torch.float64).eps
    if not bool(keep.any()):
        return float("inf") if float((within * within).sum()) > 0 else float("nan")
    proj = within @ vh[keep].T
    within_var = (proj * proj).sum(dim=0) / x.shape[0]
    return float((n_cls * within_var / s[keep] ** 2).sum() / n_cls)


def cdnv(embeddings: ArrayLike, labels: ArrayLike) -> float:
    r"""Class-distance normalised variance (Galanti et al. 2022), averaged over class pairs.

    .. math::
        \mathrm{CDNV} = \frac{2}{C (C - 1)} \sum_{c < c'}
        \frac{\mathrm{Var}_c + \mathrm{Var}_{c'}}{2 \lVert \mu_c - \mu_{c'} \rVert^2},\qquad
        \mathrm{Var}_c = \frac{1}{n_c}\sum_{i \in I_c} \lVert x_i - \mu_c \rVert^2.

    0 means every class sits on its mean. A pair of coinciding class means makes it ``inf`` (``nan``
    if both classes also have zero variance). Needs two classes.
    """
    x, inv, counts, means = _class_means(embeddings, labels)
    n_cls = counts.numel()
    resid = x - means[inv]
    var = torch.zeros(n_cls, dtype=x.dtype, device=x.device).index_add_(0, inv, (resid * resid).sum(dim=1))
    var = var / counts.to(x.device, x.dtype)
    iu = torch.triu_indices(n_cls, n_cls, offset=1, device=x.device)
    dist2 = ((means[iu[0]] - means[iu[1]]) ** 2).sum(dim=1)
    num = (var[iu[0]] + var[iu[1]]).cpu().numpy()
    den = 2.0 * dist2.cpu().numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.mean(num / den))


def submode_recovery(
    embeddings: ArrayLike,
    labels: ArrayLike,
    modes: ArrayLike,
    *,
    tol: float | None = None,
    random_state: int | np.random.Generator | None = 0,
) -> dict[str, float]:
    r"""How well k-means inside each class recovers its true modes.

    For each multi-mode class c: ``sklearn.cluster.KMeans(n_clusters=K_c, n_init=10)`` on
    :math:`\{x_i\}_{i \in I_c}` gives clusters; then

    * ``modes_recovered``: the number of distinct modes found, i.e. the number of groups left after merging
      clusters whose centroids lie within ``tol`` of each other (single linkage: connected components of
      the graph with an edge where the centroid distance is :math:`\le` ``tol``; collapsed clusters merge
      into one), averaged over multi-mode classes;
    * ``submode_nmi`` / ``submode_ari``: ``normalized_mutual_info_score`` / ``adjusted_rand_score`` of true
      modes vs those merged groups, averaged over multi-mode classes with weights :math:`n_c`. Scoring the
      merged groups, not the raw clusters, is what makes a class whose modes differ by less than ``tol`` score
      0 (chance): k-means would otherwise split any tiny difference and score 1;
    * ``true_modes``: the mean of :math:`K_c` over the same classes.

    ``tol`` defaults to 0.05 times the inter-class separation (mean distance between class centroids,
    see :func:`mode_separation`): modes closer than 5 % of the class spacing count as one. Collapsed
    classes (identical points) give NMI = ARI = 0 and one recovered mode, without warnings.
    """
    x, y = _inputs(embeddings, labels)
    m = as_labels(modes, x.shape[0], "modes")
    seed = sklearn_seed(random_state)
    cls_inv, n_cls, mode_cls, mode_inv, _ = _fine_groups(y, m)
    if tol is None:
        if n_cls < 2:
            raise ValueError("labels must contain at least 2 distinct classes when tol is None")
        tol = TOL_FRACTION * _mean_pairwise(_group_means(x, cls_inv.to(x.device), n_cls))
    else:
        tol = check_real("tol", tol, low=0.0)
    x_np = x.cpu().numpy()
    mode_np, cls_np = mode_inv.numpy(), cls_inv.numpy()
    nmis, aris, weights, recovered, true_k = [], [], [], [], []
    for members in _multi_mode_classes(mode_cls):
        rows = np.flatnonzero(cls_np == int(mode_cls[members[0]]))
        xc, mc = x_np[rows], mode_np[rows]
        k = members.numel()
        clusters = kmeans_labels(xc, k, seed)
        n_groups, groups = _merge_close(xc, clusters, tol)
        nmis.append(normalized_mutual_info_score(mc, groups))
        aris.append(adjusted_rand_score(mc, groups))
        weights.append(rows.size)
        recovered.append(n_groups)
        true_k.append(k)
    return {
        "submode_nmi": float(np.average(nmis, weights=weights)),
        "submode_ari": float(np.average(aris, weights=weights)),
        "modes_recovered": float(np.mean(recovered)),
        "true_modes": float(np.mean(true_k)),
    }


def fine_precision_at_1(
    embeddings: ArrayLike,
    labels: ArrayLike,
    modes: ArrayLike,
    *,
    tie_tol: float = 0.0,
    distance: str = "euclidean",
    chunk_size: int = 4096,
) -> dict[str, float]:
    r"""Fine-label P@1 among same-class neighbours, with its chance level.

    For each query i of a multi-mode class c, with :math:`O_i = I_c \setminus \{i\}` its same-class others,
    :math:`\delta_i = \min_{j \in O_i} d(x_i, x_j)` and the tied nearest set
    :math:`T_i = \{j \in O_i : d(x_i, x_j) \le \delta_i + \mathrm{tie\_tol}\}`:

    .. math::
        \texttt{fine\_precision\_at\_1} = \mathrm{mean}_i \frac{|\{j \in T_i : m_j = m_i\}|}{|T_i|},\qquad
        \texttt{fine\_chance} = \mathrm{mean}_i \frac{|\{j \in O_i : m_j = m_i\}|}{|O_i|}.

    The first is the expected P@1 when ties are broken uniformly at random. A fixed rule (lowest index)
    would instead turn a collapsed class, where all points tie at distance 0, into whatever the index
    order says; with the expectation, a collapsed class scores exactly ``fine_chance``, and well-separated
    modes score 1. Identical vectors are at distance exactly 0 (see :mod:`collapse.metrics.knn`), so
    ``tie_tol=0`` already catches exact collapse. Memory is O(chunk_size * max_c n_c).
    """
    tie_tol = check_real("tie_tol", tie_tol, low=0.0)
    check_choice("distance", distance, DISTANCES)
    chunk_size = check_int("chunk_size", chunk_size, low=1)
    x, y = _inputs(embeddings, labels)
    m = as_labels(modes, x.shape[0], "modes")
    cls_inv, _, mode_cls, mode_inv, _ = _fine_groups(y, m)
    hit_sum = chance_sum = 0.0
    n_queries = 0
    for members in _multi_mode_classes(mode_cls):
        rows = torch.nonzero(cls_inv == int(mode_cls[members[0]])).flatten()
        xc, mc = x[rows.to(x.device)], mode_inv[rows].to(x.device)
        nc = xc.shape[0]
        engine = _Engine(xc, distance)
        for start in range(0, nc, chunk_size):
            stop = min(start + chunk_size, nc)
            d = engine.block(start, stop)
            local = torch.arange(stop - start, device=x.device)
            d[local, local + start] = torch.inf
            tied = d <= d.min(dim=1, keepdim=True).values + tie_tol
            same = mc[start:stop, None] == mc[None, :]
            n_tied = tied.sum(dim=1, dtype=torch.float64)
            hit_sum += float(((tied & same).sum(dim=1, dtype=torch.float64) / n_tied).sum())
            # same counts the query itself; O_i excludes it.
            chance_sum += float(((same.sum(dim=1, dtype=torch.float64) - 1.0) / (nc - 1)).sum())
        n_queries += nc
    return {"fine_precision_at_1": hit_sum / n_queries, "fine_chance": chance_sum / n_queries}


def collapse_report(
    embeddings: ArrayLike,
    labels: ArrayLike,
    modes: ArrayLike,
    margin: float | None = None,
    random_state: int | np.random.Generator | None = 0,
) -> dict[str, float]:
    """Every collapse measure of this module, each computed once, in one flat dict of python floats.

    Keys: those of :func:`intra_inter_ratio`, :func:`mode_separation` (``mode_separation_over_margin``
    only with ``margin``), ``nc1``, ``cdnv``, those of :func:`submode_recovery` and of
    :func:`fine_precision_at_1`. The tolerance below which two modes count as one (``tol`` of
    :func:`submode_recovery`, ``tie_tol`` of :func:`fine_precision_at_1`) is half the ``margin`` when one is
    given (the resolution of :mod:`collapse.metrics.instrument`), else 0.05 x the ``inter_class_separation``
    (and fine P@1 ties only exact equalities). With a margin, the scale-free ratios whose denominator is the
    class spacing (``mode_separation_ratio``, ``intra_inter_ratio``, ``intra_inter_centroid_ratio``, ``nc1``,
    ``cdnv``) are ``nan`` when the mean distance between class centroids is below that resolution: a ratio of
    unresolved distances would report structure that is not there. Without a margin a class shrunk to a tiny
    scale can therefore still read as structured; pass the margin.
    """
    x, y = _inputs(embeddings, labels)
    m = as_labels(modes, x.shape[0], "modes")
    out = intra_inter_ratio(x, y)
    out |= mode_separation(x, y, m, margin)
    out["nc1"] = nc1(x, y)
    out["cdnv"] = cdnv(x, y)
    tol = TOL_FRACTION * out["inter_class_separation"] if margin is None else margin / 2.0
    out |= submode_recovery(x, y, m, tol=tol, random_state=random_state)
    out |= fine_precision_at_1(x, y, m, tie_tol=0.0 if margin is None else margin / 2.0)
    if margin is not None and not out["inter_class_separation"] >= margin / 2.0:
        for key in ("mode_separation_ratio", "intra_inter_ratio", "intra_inter_centroid_ratio", "nc1", "cdnv"):
            out[key] = float("nan")
    return out


def _inputs(embeddings: ArrayLike, labels: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    x = as_embeddings(embeddings).to(torch.float64)
    return x, as_labels(labels, x.shape[0])


def _fine_groups(y: torch.Tensor, m: torch.Tensor) -> tuple[torch.Tensor, int, torch.Tensor, torch.Tensor, int]:
    """Class ids (0..C-1) per sample, C, class id per mode, mode ids (0..M-1) per sample, M."""
    _, cls_inv = torch.unique(y, return_inverse=True)
    pairs, mode_inv = torch.unique(torch.stack([cls_inv, m], dim=1), dim=0, return_inverse=True)
    return cls_inv, int(cls_inv.max()) + 1, pairs[:, 0], mode_inv, pairs.shape[0]


def _multi_mode_classes(mode_cls: torch.Tensor) -> list[torch.Tensor]:
    """Mode ids of each class with two or more modes; a one-line error if there is none."""
    classes, counts = torch.unique(mode_cls, return_counts=True)
    groups = [torch.nonzero(mode_cls == c).flatten() for c in classes[counts >= 2]]
    if not groups:
        raise ValueError("modes must give at least one class 2 or more distinct modes")
    return groups


def _group_means(x: torch.Tensor, inv: torch.Tensor, n_groups: int) -> torch.Tensor:
    sums = torch.zeros((n_groups, x.shape[1]), dtype=x.dtype, device=x.device).index_add_(0, inv, x)
    counts = torch.bincount(inv, minlength=n_groups).to(x.dtype)
    return sums / counts[:, None]


def _mean_pairwise(points: torch.Tensor) -> float:
    """Mean Euclidean distance over unordered pairs of rows (differences, not the norm expansion: few rows)."""
    iu = torch.triu_indices(points.shape[0], points.shape[0], offset=1, device=points.device)
    return float(torch.linalg.vector_norm(points[iu[0]] - points[iu[1]], dim=1).mean())


def _merge_close(x: np.ndarray, clusters: np.ndarray, tol: float) -> tuple[int, np.ndarray]:
    """Number of groups, and the group of every sample, after merging clusters with centroids within ``tol``."""
    ids, inverse = np.unique(clusters, return_inverse=True)
    cents = np.stack([x[clusters == c].mean(axis=0) for c in ids])
    dist = np.linalg.norm(cents[:, None, :] - cents[None, :, :], axis=-1)
    n_components, comp = connected_components(dist <= tol, directed=False)
    return int(n_components), comp[inverse.reshape(-1)]


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("nan")
