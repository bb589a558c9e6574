r"""Retrieval metrics of deep metric learning, matching pytorch-metric-learning 2.9.0's ``AccuracyCalculator``.

Setting: the query set is its own reference (PML's ``embeddings_come_from_same_source``, i.e.
``get_accuracy(query, query_labels)`` with ``k="max_bin_count"``). For query :math:`i` with label
:math:`y_i`, let :math:`n_{y}` be the number of samples with label :math:`y`,
:math:`R_i = n_{y_i} - 1` the number of *other* relevant items, and :math:`\ell_{i,1}, \ell_{i,2}, \dots`
the labels of its neighbours sorted by distance, the query itself removed by index (see
:func:`collapse.metrics.knn.knn`; equal distances are ordered by the lower index, which makes the result
deterministic, and equals PML's whenever its k-NN backend returns ties in index order).
:math:`m_{ij} = [\ell_{i,j} = y_i]`.

* Queries with :math:`R_i = 0` (a label seen once) are left out of every metric; all metrics are plain
  means over the remaining queries (PML's ``avg_of_avgs=False``).
* ``recall_at_{k}`` :math:`= \mathrm{mean}_i\, [\exists j \le k: m_{ij}]`, the Recall@K of the DML
  literature (not PML's ``precision_at_k``). ``k`` larger than the ``N - 1`` available neighbours uses all of
  them (the k nearest of fewer than k items are all of them).
* ``precision_at_1`` :math:`= \mathrm{mean}_i\, m_{i1}`.
* ``r_precision`` :math:`= \mathrm{mean}_i\, \frac{1}{R_i}\sum_{j \le R_i} m_{ij}`.
* ``map_at_r`` :math:`= \mathrm{mean}_i\, \frac{1}{R_i}\sum_{j \le R_i} m_{ij}\,
  \frac{\sum_{j' \le j} m_{ij'}}{j}` (MAP@R of Musgrave et al. 2020).
* ``nmi``: k-means on the embeddings (all samples, lone labels included, as in PML) with as many
  clusters as distinct labels, then ``sklearn.metrics.normalized_mutual_info_score(labels, clusters)``.
  PML's default k-means is faiss's; here it is ``sklearn.cluster.KMeans(n_init=10)`` seeded by
  ``random_state``: ten restarts make the score far less dependent on the seed than one (k-means is
  the only random part of these metrics), at a cost that is small next to the k-NN search.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from numbers import Integral

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import normalized_mutual_info_score

from collapse._validation import check_choice, check_int, check_random_state
from collapse.metrics.knn import DISTANCES, ArrayLike, as_embeddings, as_labels, iter_knn

__all__ = [
    "map_at_r",
    "map_at_r_many",
    "nmi_kmeans",
    "precision_at_1",
    "r_precision",
    "recall_at_k",
    "retrieval_metrics",
]

KMEANS_N_INIT = 10


def retrieval_metrics(
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    ks: Iterable[int] = (1, 2, 4, 8),
    distance: str = "euclidean",
    chunk_size: int | None = None,
    nmi: bool = True,
    random_state: int | np.random.Generator | None = 0,
    memory_budget: int | None = None,
) -> dict[str, float]:
    """All retrieval metrics from one chunked k-NN pass (see the module docstring for the formulas).

    ``chunk_size`` (query rows per chunk) defaults to what ``memory_budget`` bytes allow
    (:func:`collapse.metrics.knn.chunk_rows`).

    Returns a dict with keys ``recall_at_{k}`` for each ``k`` in ``ks``, ``precision_at_1``,
    ``r_precision``, ``map_at_r`` and, if ``nmi``, ``nmi``; values are python floats.
    """
    ks = _check_ks(ks)
    x, y = _check_inputs(embeddings, labels, distance, chunk_size)
    out = _knn_scores(
        x, y, ks=ks, with_r=True, distance=distance, chunk_size=chunk_size, memory_budget=memory_budget
    )
    if nmi:
        out["nmi"] = _nmi(x, y, random_state)
    return out


def recall_at_k(
    embeddings: ArrayLike,
    labels: ArrayLike,
    k: int = 1,
    *,
    distance: str = "euclidean",
    chunk_size: int | None = None,
) -> float:
    """Recall@K: fraction of (non-lone) queries with a same-label item among their ``k`` nearest neighbours."""
    k = check_int("k", k, low=1)
    x, y = _check_inputs(embeddings, labels, distance, chunk_size)
    return _knn_scores(x, y, ks=(k,), with_r=False, distance=distance, chunk_size=chunk_size)[f"recall_at_{k}"]


def precision_at_1(
    embeddings: ArrayLike, labels: ArrayLike, *, distance: str = "euclidean", chunk_size: int | None = None
) -> float:
    """P@1: fraction of (non-lone) queries whose nearest neighbour has the same label."""
    x, y = _check_inputs(embeddings, labels, distance, chunk_size)
    return _knn_scores(x, y, ks=(), with_r=False, distance=distance, chunk_size=chunk_size)["precision_at_1"]


def r_precision(
    embeddings: ArrayLike, labels: ArrayLike, *, distance: str = "euclidean", chunk_size: int | None = None
) -> float:
    """R-precision: mean over (non-lone) queries of the same-label fraction among the ``R_i`` nearest."""
    x, y = _check_inputs(embeddings, labels, distance, chunk_size)
    return _knn_scores(x, y, ks=(), with_r=True, distance=distance, chunk_size=chunk_size)["r_precision"]


def map_at_r(
    embeddings: ArrayLike, labels: ArrayLike, *, distance: str = "euclidean", chunk_size: int | None = None
) -> float:
    """MAP@R: mean over (non-lone) queries of the average precision truncated at ``R_i`` (Musgrave et al. 2020)."""
    x, y = _check_inputs(embeddings, labels, distance, chunk_size)
    return _knn_scores(x, y, ks=(), with_r=True, distance=distance, chunk_size=chunk_size)["map_at_r"]


def map_at_r_many(
    embeddings: ArrayLike,
    label_sets: Iterable[ArrayLike],
    *,
    distance: str = "euclidean",
    chunk_size: int | None = None,
) -> list[float]:
    """MAP@R of one embedding under several labelings, from one k-NN pass (e.g. a permutation null).

    Each entry equals ``map_at_r(embeddings, labels)`` for the corresponding ``labels``.
    """
    x = _check_inputs(embeddings, None, distance, chunk_size)[0]
    ys = [as_labels(lab, x.shape[0]) for lab in label_sets]
    if not ys:
        raise ValueError("label_sets must contain at least one labeling, got none")
    for y in ys:
        _check_inputs(x, y, distance, chunk_size)
    return [d["map_at_r"] for d in _knn_scores(x, ys, ks=(), with_r=True, distance=distance, chunk_size=chunk_size)]


def nmi_kmeans(
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    random_state: int | np.random.Generator | None = 0,
) -> float:
    """NMI between ``labels`` and k-means clusters of the embeddings (k = number of distinct labels)."""
    x = as_embeddings(embeddings)
    y = as_labels(labels, x.shape[0])
    return _nmi(x, y, random_state)


def kmeans_labels(
    x: np.ndarray, n_clusters: int, random_state: int | np.random.Generator | None = 0, n_init: int = KMEANS_N_INIT
) -> np.ndarray:
    """Cluster ids from ``sklearn.cluster.KMeans(n_clusters, n_init)``, quietly handling duplicate points.

    With at most ``n_clusters`` distinct points (collapsed embeddings) each distinct point is its own
    cluster, which is the exact k-means optimum (zero inertia); sklearn would warn and spend its restarts
    finding the same thing. Near-duplicates can still make sklearn warn; that warning is silenced.
    """
    x = np.asarray(x, dtype=np.float64)
    _, distinct = np.unique(x, axis=0, return_inverse=True)
    if distinct.max() + 1 <= n_clusters:
        return distinct.reshape(-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        km = KMeans(n_clusters=n_clusters, n_init=n_init, random_state=sklearn_seed(random_state))
        return km.fit_predict(x)


def sklearn_seed(random_state: int | np.random.Generator | None) -> int:
    """An ``int`` seed for sklearn: an int is used as is, a generator (or ``None``: fresh entropy) draws one."""
    rng = check_random_state(random_state)
    if isinstance(random_state, Integral):
        return int(random_state) % 2**32
    return int(rng.integers(2**31 - 1))


def _nmi(x: torch.Tensor, y: torch.Tensor, random_state: int | np.random.Generator | None) -> float:
    y_np = y.numpy()
    n_clusters = len(np.unique(y_np))
    clusters = kmeans_labels(x.detach().cpu().double().numpy(), n_clusters, random_state)
    return float(normalized_mutual_info_score(y_np, clusters))


def _check_ks(ks: Iterable[int]) -> tuple[int, ...]:
    if isinstance(ks, Integral):
        ks = (ks,)
    ks = tuple(ks)
    if len(ks) == 0:
        raise ValueError("ks must contain at least one integer k >= 1, got an empty sequence")
    return tuple(dict.fromkeys(check_int("ks", k, low=1) for k in ks))


def _check_inputs(
    embeddings: ArrayLike, labels: ArrayLike | None, distance: str, chunk_size: int | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    check_choice("distance", distance, DISTANCES)
    if chunk_size is not None:
        check_int("chunk_size", chunk_size, low=1)
    x = as_embeddings(embeddings)
    if labels is None:
        return x, None
    y = as_labels(labels, x.shape[0])
    if int(torch.unique(y, return_counts=True)[1].max()) < 2:
        raise ValueError("labels must contain at least one label with 2 or more samples (every query is alone)")
    return x, y


def _knn_scores(
    x: torch.Tensor,
    y: torch.Tensor | list[torch.Tensor],
    *,
    ks: tuple[int, ...],
    with_r: bool,
    distance: str,
    chunk_size: int | None,
    memory_budget: int | None = None,
):
    """Per-query retrieval scores from one chunked k-NN pass, averaged over queries with R_i >= 1.

    ``y`` may be a list of labelings: the neighbours are found once and each labeling is scored (a list of
    dicts is returned then).
    """
    many = isinstance(y, list)
    ys = [t.to(x.device) for t in (y if many else [y])]
    n = x.shape[0]
    r_alls = []
    for yy in ys:
        _, inv, counts = torch.unique(yy, return_inverse=True, return_counts=True)
        r_alls.append((counts[inv] - 1).to(x.device))
    k_eff = {k: min(k, n - 1) for k in ks}
    k_needed = max([1, *k_eff.values()] + ([int(r.max()) for r in r_alls] if with_r else []))
    keys = [f"recall_at_{k}" for k in ks] + ["precision_at_1"] + (["r_precision", "map_at_r"] if with_r else [])
    sums = [dict.fromkeys(keys, 0.0) for _ in ys]
    positions = torch.arange(1, k_needed + 1, device=x.device, dtype=torch.float64)
    knn_chunks = iter_knn(x, None, k_needed, chunk_size=chunk_size, distance=distance, memory_budget=memory_budget)
    for start, stop, _, idx in knn_chunks:
        for yy, r_all, acc in zip(ys, r_alls, sums):
            keep = r_all[start:stop] >= 1
            match = yy[idx[keep]] == yy[start:stop][keep, None]
            for k, ke in k_eff.items():
                acc[f"recall_at_{k}"] += float(match[:, :ke].any(dim=1).sum())
            acc["precision_at_1"] += float(match[:, 0].sum())
            if with_r:
                r = r_all[start:stop][keep]
                relevant = match & (positions[None, :] <= r[:, None])
                hits = relevant.to(torch.float64)
                r64 = r.to(torch.float64)
                acc["r_precision"] += float((hits.sum(dim=1) / r64).sum())
                precision_at_hits = hits.cumsum(dim=1) * hits / positions
                acc["map_at_r"] += float((precision_at_hits.sum(dim=1) / r64).sum())
    out = []
    for r_all, acc in zip(r_alls, sums):
        n_valid = int((r_all >= 1).sum())
        out.append({key: value / n_valid for key, value in acc.items()})
    return out if many else out[0]
