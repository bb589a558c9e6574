"""Evaluation metrics: exact chunked k-NN, retrieval metrics (PML-compatible) and class-collapse measures."""

from collapse.metrics.collapse_measures import (
    cdnv,
    collapse_report,
    fine_precision_at_1,
    intra_inter_ratio,
    mode_separation,
    nc1,
    submode_recovery,
)
from collapse.metrics.knn import iter_knn, knn
from collapse.metrics.probes import PROBE_KEYS, eta_squared, standardise_within, subclass_probes
from collapse.metrics.retrieval import (
    map_at_r,
    nmi_kmeans,
    precision_at_1,
    r_precision,
    recall_at_k,
    retrieval_metrics,
)

__all__ = [
    "PROBE_KEYS",
    "cdnv",
    "collapse_report",
    "eta_squared",
    "fine_precision_at_1",
    "intra_inter_ratio",
    "iter_knn",
    "knn",
    "map_at_r",
    "mode_separation",
    "nc1",
    "nmi_kmeans",
    "precision_at_1",
    "r_precision",
    "recall_at_k",
    "retrieval_metrics",
    "standardise_within",
    "subclass_probes",
    "submode_recovery",
]
