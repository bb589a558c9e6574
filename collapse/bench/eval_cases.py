"""The evaluation benchmarks: :func:`collapse.metrics.retrieval_metrics` against PML's ``AccuracyCalculator``.

Data: ``N`` float32 embeddings in ``d = 128`` dimensions, ``N / 50`` classes of 50 samples, each sample its class
centre (Gaussian, scale 0.6) plus standard Gaussian noise; a level at which Recall@1 is far from both 0 and 1.

* ``retrieval``: Recall@{1, 2, 4, 8}, P@1, R-precision and MAP@R from one k-NN pass each. PML has no Recall@K of
  the metric-learning literature, so its calculator gets one (``calculate_recall_at_k`` from its own k-NN labels,
  the way PML's custom metrics are written); its k-NN is ``CustomKNN(LpDistance(normalize_embeddings=False))``,
  the torch search PML uses without faiss, batched like ours so that both hold a few hundred MB at most.
  Checked: every metric equal within ``EVAL_ATOL`` (float32 searches order near-ties by rounding, which moves a
  metric by about 1/N per swapped pair).
* ``NMI``: ``nmi_kmeans`` against PML's ``NMI`` with the same k-means (sklearn, 10 restarts, seed 0) as its
  ``kmeans_func``, on 20 classes (k-means with thousands of clusters would time sklearn, not the metric). Both
  sides run the same clustering, so the check is that the two NMI definitions agree, and the times should match.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from collapse.bench.checks import Check, combine, compare
from collapse.metrics import nmi_kmeans, retrieval_metrics
from collapse.metrics.retrieval import kmeans_labels

__all__ = ["EVAL_ATOL", "KS", "EvalCase", "EVAL_CASES", "make_eval_data"]

KS = (1, 2, 4, 8)
EVAL_ATOL = 1e-4
#: PML AccuracyCalculator key -> our key.
PML_KEYS = {"precision_at_1": "precision_at_1", "r_precision": "r_precision", "mean_average_precision_at_r": "map_at_r"}
#: One k-NN chunk holds about this many distances (512 MB of float32) on either side.
CHUNK_ELEMENTS = 1 << 27


@dataclass(frozen=True)
class EvalCase:
    name: str
    per_class: int | None  # samples per class (None: a fixed number of classes, ``n_classes``)
    n_classes: int | None
    ours: Callable[[torch.Tensor, torch.Tensor], dict]
    pml: Callable[[torch.Tensor, torch.Tensor, torch.device], dict]
    check: Callable[[dict, dict], Check]
    description: str


def make_eval_data(
    n: int, *, per_class: int | None = 50, n_classes: int | None = None, dim: int = 128, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(n, dim)`` float32 embeddings around Gaussian class centres and their int64 labels."""
    n_classes = n_classes if n_classes is not None else max(2, n // per_class)
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % n_classes
    centres = 0.6 * torch.randn(n_classes, dim, generator=gen)
    return centres[labels] + torch.randn(n, dim, generator=gen), labels


def chunk_size(n: int) -> int:
    """PML's k-NN batch size: about CHUNK_ELEMENTS distances per batch (between 256 and 4096 rows)."""
    return int(max(256, min(4096, CHUNK_ELEMENTS // max(1, n))))


def _ours_retrieval(x: torch.Tensor, y: torch.Tensor) -> dict:
    # Our chunks come from the default memory budget (collapse.metrics.knn.chunk_rows), not from the size here.
    return retrieval_metrics(x, y, ks=KS, nmi=False)


def _recall_calculator():
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

    class RecallAtK(AccuracyCalculator):
        """PML's calculator plus Recall@K (a same-label item among the k nearest), written as PML custom metrics."""

        def requires_knn(self):
            return super().requires_knn() + [f"recall_at_{k}" for k in KS]

    def make(k):
        def calculate(self, knn_labels, query_labels, not_lone_query_mask, **kwargs):
            mask = not_lone_query_mask
            hit = (knn_labels[mask][:, :k] == query_labels[mask].unsqueeze(1)).any(dim=1)
            return float(hit.double().mean())

        return calculate

    for k in KS:
        setattr(RecallAtK, f"calculate_recall_at_{k}", make(k))
    return RecallAtK


def _pml_retrieval(x: torch.Tensor, y: torch.Tensor, device: torch.device) -> dict:
    from pytorch_metric_learning.distances import LpDistance
    from pytorch_metric_learning.utils.inference import CustomKNN

    calc = _recall_calculator()(
        include=tuple(PML_KEYS) + tuple(f"recall_at_{k}" for k in KS),
        k="max_bin_count",
        knn_func=CustomKNN(LpDistance(normalize_embeddings=False), batch_size=chunk_size(x.shape[0])),
        device=device,
    )
    res = calc.get_accuracy(x, y)
    out = {ours: float(res[theirs]) for theirs, ours in PML_KEYS.items()}
    out |= {f"recall_at_{k}": float(res[f"recall_at_{k}"]) for k in KS}
    return out


def _check_retrieval(ours: dict, theirs: dict) -> Check:
    return combine(
        "retrieval",
        [compare(key, ours[key], theirs[key], rtol=0.0, atol=EVAL_ATOL) for key in sorted(theirs)],
    )


def _ours_nmi(x: torch.Tensor, y: torch.Tensor) -> dict:
    return {"nmi": nmi_kmeans(x, y, random_state=0)}


def _pml_nmi(x: torch.Tensor, y: torch.Tensor, device: torch.device) -> dict:
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

    def kmeans(emb: torch.Tensor, n_clusters: int) -> torch.Tensor:
        return torch.from_numpy(np.asarray(kmeans_labels(emb.cpu().numpy(), n_clusters, 0)))

    from pytorch_metric_learning.distances import LpDistance
    from pytorch_metric_learning.utils.inference import CustomKNN

    # The k-NN function is unused for NMI, but PML's default (faiss) must not be built where faiss is absent.
    knn = CustomKNN(LpDistance(normalize_embeddings=False), batch_size=chunk_size(x.shape[0]))
    calc = AccuracyCalculator(include=("NMI",), kmeans_func=kmeans, knn_func=knn, device=device)
    return {"nmi": float(calc.get_accuracy(x, y)["NMI"])}


def _check_nmi(ours: dict, theirs: dict) -> Check:
    return compare("NMI", ours["nmi"], theirs["nmi"], rtol=0.0, atol=1e-12)


EVAL_CASES: dict[str, EvalCase] = {
    c.name: c
    for c in (
        EvalCase(
            "retrieval",
            50,
            None,
            _ours_retrieval,
            _pml_retrieval,
            _check_retrieval,
            "Recall@{1,2,4,8}, P@1, R-precision, MAP@R (50 per class) vs PML AccuracyCalculator + CustomKNN",
        ),
        EvalCase(
            "NMI",
            None,
            20,
            _ours_nmi,
            _pml_nmi,
            _check_nmi,
            "NMI of k-means (20 classes, sklearn, 10 restarts) vs PML AccuracyCalculator with the same k-means",
        ),
    )
}
