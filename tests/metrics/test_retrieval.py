"""Retrieval metrics against pytorch-metric-learning 2.9.0's AccuracyCalculator and a naive Recall@K loop."""

from __future__ import annotations

import importlib
import logging

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from pytorch_metric_learning.distances import CosineSimilarity, LpDistance
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
from pytorch_metric_learning.utils.inference import CustomKNN, return_results

from collapse.metrics import map_at_r, nmi_kmeans, precision_at_1, r_precision, recall_at_k, retrieval_metrics
from collapse.metrics.retrieval import kmeans_labels
from tests.conftest import scaled_settings

retrieval_module = importlib.import_module("collapse.metrics.retrieval")
logging.getLogger("PML").setLevel(logging.ERROR)

PML_KEYS = {
    "precision_at_1": "precision_at_1",
    "r_precision": "r_precision",
    "mean_average_precision_at_r": "map_at_r",
    "NMI": "nmi",
}


class StableKNN:
    """PML ``knn_func``: brute force in float64, ties by lower index, self-match removed by PML's own code."""

    def __call__(self, query, k, reference, ref_includes_query=False):
        if ref_includes_query:
            k = k + 1
        d = torch.cdist(query.double(), reference.double(), compute_mode="donot_use_mm_for_euclid_dist")
        order = np.lexsort((np.broadcast_to(np.arange(d.shape[1]), d.shape), d.numpy()), axis=1)[:, :k]
        idx = torch.from_numpy(np.ascontiguousarray(order))
        return return_results(d.gather(1, idx), idx, ref_includes_query)


def pml_metrics(x, y, knn_func, seed=0):
    calc = AccuracyCalculator(
        include=tuple(PML_KEYS),
        k="max_bin_count",
        knn_func=knn_func,
        kmeans_func=lambda emb, n: torch.from_numpy(kmeans_labels(emb.cpu().numpy(), n, seed)),
        device=torch.device("cpu"),
    )
    res = calc.get_accuracy(torch.as_tensor(x), torch.as_tensor(y))
    return {ours: res[theirs] for theirs, ours in PML_KEYS.items()}


def naive_recall(x, y, k):
    x = np.asarray(x, dtype=np.float64)
    hits = []
    for i in range(len(x)):
        others = [j for j in range(len(x)) if j != i]
        if not any(y[j] == y[i] for j in others):
            continue
        others.sort(key=lambda j: (float(np.linalg.norm(x[i] - x[j])), j))
        hits.append(any(y[j] == y[i] for j in others[:k]))
    return float(np.mean(hits))


def random_problem(seed, n, n_labels, n_dup):
    """float32-representable embeddings (float64 dtype), some exact duplicates, some lone labels."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3)).astype(np.float32).astype(np.float64)
    for _ in range(n_dup):
        src, dst = rng.integers(n, size=2)
        x[dst] = x[src]
    y = rng.integers(0, n_labels, size=n)
    y[0] = y[1]  # at least one label with two members
    y[-1] = n_labels + 5  # one label seen once: excluded from every metric
    return x, y


@scaled_settings(15)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(4, 40),
    n_labels=st.integers(1, 8),
    dup_frac=st.floats(0.0, 1.0),
    chunk=st.integers(1, 16),
)
def test_matches_pml_with_duplicates_and_lone_labels(seed, n, n_labels, dup_frac, chunk):
    x, y = random_problem(seed, n, n_labels, int(dup_frac * n))
    ours = retrieval_metrics(x, y, ks=(1, 3, 50), chunk_size=chunk, random_state=seed)
    theirs = pml_metrics(x, y, StableKNN(), seed=seed)
    for key, value in theirs.items():
        assert ours[key] == pytest.approx(value, abs=1e-12), key
    for k in (1, 3, 50):
        assert ours[f"recall_at_{k}"] == pytest.approx(naive_recall(x, y, k), abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_pml_with_its_own_knn(seed):
    # PML's stock torch k-NN (float32, no duplicates here, so no ties to order).
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((120, 6)).astype(np.float32)
    y = rng.integers(0, 12, size=120)
    y[5] = 99
    ours = retrieval_metrics(x, y, random_state=seed)
    theirs = pml_metrics(x, y, CustomKNN(LpDistance(normalize_embeddings=False)), seed=seed)
    for key, value in theirs.items():
        assert ours[key] == pytest.approx(value, abs=1e-9), key
    ours = retrieval_metrics(x, y, distance="cosine", nmi=False)
    theirs = pml_metrics(x, y, CustomKNN(CosineSimilarity()), seed=seed)
    for key in ("precision_at_1", "r_precision", "map_at_r"):
        assert ours[key] == pytest.approx(theirs[key], abs=1e-9), key


def test_hand_computed_values():
    # 1-D points; label 0 at {0, 1, 10}, label 1 at {2, 11}, label 2 alone at 50 (excluded).
    x = np.array([[0.0], [1.0], [10.0], [2.0], [11.0], [50.0]])
    y = np.array([0, 0, 0, 1, 1, 2])
    out = retrieval_metrics(x, y, ks=(1, 2), nmi=False)
    # Neighbour labels, self removed (query at 1 has 0 and 2 tied at distance 1: the lower index, 0, first):
    #   0 -> 0 1 0 1 | 1 -> 0 1 0 1 | 10 -> 1 1 0 0 | 2 -> 0 0 0 1 | 11 -> 0 1 0 0
    assert out["precision_at_1"] == pytest.approx(2 / 5)
    assert out["recall_at_1"] == pytest.approx(2 / 5)
    assert out["recall_at_2"] == pytest.approx(3 / 5)
    # R = 2 for label 0 and 1 for label 1; only queries 0 and 1 score, each 1/2 (R-precision) and (1/1)/2 (MAP@R).
    assert out["r_precision"] == pytest.approx(1 / 5)
    assert out["map_at_r"] == pytest.approx(1 / 5)


def test_pieces_equal_the_combined_call_which_runs_knn_once(monkeypatch):
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((60, 4)), rng.integers(0, 6, size=60)
    calls = []
    original = retrieval_module.iter_knn

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(retrieval_module, "iter_knn", counting)
    out = retrieval_metrics(x, y, ks=(1, 2, 4, 8), chunk_size=7)
    assert len(calls) == 1
    assert set(out) == {"recall_at_1", "recall_at_2", "recall_at_4", "recall_at_8"} | {
        "precision_at_1",
        "r_precision",
        "map_at_r",
        "nmi",
    }
    assert all(type(v) is float for v in out.values())
    assert recall_at_k(x, y, 4) == out["recall_at_4"]
    assert precision_at_1(x, y) == out["precision_at_1"]
    assert r_precision(x, y) == out["r_precision"]
    assert map_at_r(x, y) == out["map_at_r"]
    assert nmi_kmeans(x, y, random_state=0) == out["nmi"]
    assert "nmi" not in retrieval_metrics(x, y, nmi=False)


def test_recall_with_k_beyond_the_gallery_is_one():
    x = np.arange(10, dtype=np.float64)[:, None]
    y = np.array([0, 1] * 5)
    assert recall_at_k(x, y, 100) == 1.0
    assert recall_at_k(x, y, 1) == 0.0


def test_collapsed_embeddings_are_deterministic():
    # Everything at one point: ties everywhere, lower index first, self excluded by index.
    x = np.zeros((6, 2))
    y = np.array([1, 0, 0, 1, 1, 0])
    out = retrieval_metrics(x, y, ks=(1,))
    # Query 0 -> neighbours 1,2,3,...: label 0 first -> miss; query 1 -> 0 (label 1) miss; query 2 -> 0 miss;
    # query 3 -> 0 hit; query 4 -> 0 hit; query 5 -> 0 miss.
    assert out["precision_at_1"] == pytest.approx(2 / 6)
    assert out["nmi"] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: retrieval_metrics(np.zeros((4, 2)), [0, 1, 0]), "labels must have the same length"),
        (lambda: retrieval_metrics(np.zeros((4, 2)), [0, 1, 2, 3]), "at least one label with 2"),
        (lambda: retrieval_metrics(np.zeros((1, 2)), [0]), "at least 2 samples"),
        (lambda: retrieval_metrics(np.full((3, 2), np.nan), [0, 0, 1]), "must be finite"),
        (lambda: retrieval_metrics(np.zeros((3, 2)), [0, 0, 1], ks=()), "ks must contain"),
        (lambda: retrieval_metrics(np.zeros((3, 2)), [0, 0, 1], ks=(0,)), "ks must be"),
        (lambda: retrieval_metrics(np.zeros((3, 2)), [0.5, 0, 1]), "labels must contain integers"),
        (lambda: retrieval_metrics(np.zeros((3, 2)), [0, 0, 1], distance="dot"), "distance must be one of"),
        (lambda: recall_at_k(np.zeros((3, 2)), [0, 0, 1], 0), "k must be"),
        (lambda: precision_at_1(np.zeros((3, 2)), [[0, 0, 1]]), r"labels must have shape \(N,\)"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
