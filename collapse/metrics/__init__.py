"""Evaluation metrics: exact chunked k-NN, retrieval metrics (PML-compatible), class-collapse measures, the
collapse instrument (:func:`instrument_report`, :func:`collapse_verdict`) and its controls."""

from collapse.metrics.collapse_measures import (
    cdnv,
    collapse_report,
    fine_precision_at_1,
    intra_inter_ratio,
    mode_separation,
    nc1,
    submode_recovery,
)
from collapse.metrics.instrument import instrument_report, mode_pairs, resolve
from collapse.metrics.knn import iter_knn, knn
from collapse.metrics.retrieval import (
    map_at_r,
    map_at_r_many,
    nmi_kmeans,
    precision_at_1,
    r_precision,
    recall_at_k,
    retrieval_metrics,
)
from collapse.metrics.verdict import STATES, Verdict, collapse_verdict

__all__ = [
    "STATES",
    "Verdict",
    "cdnv",
    "collapse_verdict",
    "collapse_report",
    "fine_precision_at_1",
    "instrument_report",
    "intra_inter_ratio",
    "iter_knn",
    "knn",
    "map_at_r",
    "map_at_r_many",
    "mode_pairs",
    "mode_separation",
    "nc1",
    "nmi_kmeans",
    "precision_at_1",
    "r_precision",
    "recall_at_k",
    "resolve",
    "retrieval_metrics",
    "submode_recovery",
]
