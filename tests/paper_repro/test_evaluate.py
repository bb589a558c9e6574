"""paper_repro.evaluate: the metrics equal naive loops on toy embeddings; a run re-evaluates to its own metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score

from paper_repro.datasets import get_dataset
from paper_repro.evaluate import embed_dataset, embedding_metrics, evaluate_run, main
from paper_repro.models import make_model
from paper_repro.train import train


def toy(seed: int = 0):
    """3 coarse classes holding 3, 2 and 1 fine classes (the last has no sub-modes), Gaussian blobs in 5-d."""
    rng = np.random.default_rng(seed)
    fine_of_coarse = {0: [0, 1, 2], 1: [3, 4], 2: [5]}
    y, m = [], []
    for c, fines in fine_of_coarse.items():
        for f in fines:
            n = int(rng.integers(4, 9))
            y += [c] * n
            m += [f] * n
    y, m = np.array(y), np.array(m)
    centres = rng.normal(size=(6, 5)) * 1.5
    x = centres[m] + rng.normal(size=(y.size, 5))
    return x, y, m


def naive_dist(x):
    return np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))


def naive_recall(x, y, k):
    d = naive_dist(x)
    hits = []
    for i in range(len(y)):
        order = [j for j in np.argsort(d[i], kind="stable") if j != i]
        if (y == y[i]).sum() > 1:
            hits.append(any(y[j] == y[i] for j in order[:k]))
    return float(np.mean(hits))


def naive_map_at_r(x, y):
    d = naive_dist(x)
    scores = []
    for i in range(len(y)):
        r = int((y == y[i]).sum()) - 1
        if r == 0:
            continue
        order = [j for j in np.argsort(d[i], kind="stable") if j != i][:r]
        hits, ap = 0, 0.0
        for pos, j in enumerate(order, 1):
            if y[j] == y[i]:
                hits += 1
                ap += hits / pos
        scores.append(ap / r)
    return float(np.mean(scores))


def naive_fine_within_coarse(x, y, m):
    d = naive_dist(x)
    hits = []
    for i in range(len(y)):
        if len(set(m[y == y[i]])) < 2:
            continue  # a coarse class with one fine label has nothing to recover
        same = [j for j in range(len(y)) if j != i and y[j] == y[i]]
        j = min(same, key=lambda j: d[i, j])
        hits.append(m[j] == m[i])
    return float(np.mean(hits))


def naive_intra_inter(x, y):
    d = naive_dist(x)
    intra, inter = [], []
    for i in range(len(y)):
        for j in range(len(y)):
            if i != j:
                (intra if y[i] == y[j] else inter).append(d[i, j])
    return float(np.mean(intra) / np.mean(inter))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_equal_naive_loops(seed):
    x, y, m = toy(seed)
    got = embedding_metrics(x, y, m, random_state=seed)
    for k in (1, 2, 4, 8):
        assert got[f"recall_at_{k}"] == pytest.approx(naive_recall(x, y, k))
    assert got["map_at_r"] == pytest.approx(naive_map_at_r(x, y))
    assert got["fine_recall_at_1_within_coarse"] == pytest.approx(naive_fine_within_coarse(x, y, m))
    assert got["fine_recall_at_1"] == pytest.approx(naive_recall(x, m, 1))
    assert got["fine_map_at_r"] == pytest.approx(naive_map_at_r(x, m))
    assert got["intra_inter_ratio"] == pytest.approx(naive_intra_inter(x, y))
    km = KMeans(n_clusters=3, n_init=10, random_state=seed).fit_predict(x)
    assert got["nmi"] == pytest.approx(normalized_mutual_info_score(y, km))
    nmis, weights = [], []
    for c in (0, 1):
        rows = y == c
        k = len(set(m[rows]))
        clusters = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(x[rows])
        nmis.append(normalized_mutual_info_score(m[rows], clusters))
        weights.append(rows.sum())
    assert got["submode_nmi"] == pytest.approx(np.average(nmis, weights=weights))
    assert got["true_modes"] == pytest.approx(2.5)


def test_collapsed_classes_score_chance_and_separated_modes_score_one():
    x, y, m = toy(3)
    collapsed = np.eye(5)[y] * 3.0  # every image of a coarse class on one point
    got = embedding_metrics(collapsed, y, m)
    assert got["recall_at_1"] == 1.0
    assert got["fine_recall_at_1_within_coarse"] == pytest.approx(got["fine_chance"])
    assert got["fine_chance"] < 0.6
    assert got["submode_nmi"] == 0.0
    separated = np.eye(6)[m] * 3.0 + 0.01 * np.random.default_rng(0).normal(size=(y.size, 6))
    got = embedding_metrics(separated, y, m)
    assert got["fine_recall_at_1_within_coarse"] == 1.0 and got["submode_nmi"] == pytest.approx(1.0)


def test_without_fine_labels_only_class_metrics():
    x, y, _ = toy(4)
    got = embedding_metrics(x, y)
    assert "fine_recall_at_1_within_coarse" not in got and "recall_at_1" in got and "nmi" in got


def test_embed_dataset_is_ordered_batch_independent_and_restores_mode():
    data = get_dataset("digits", split="test").subset(np.arange(37))
    torch.manual_seed(0)
    model = make_model("small_cnn", in_channels=1, dim=8)
    model.train()
    a = embed_dataset(model, data, batch_size=5)
    b = embed_dataset(model, data, batch_size=512)
    assert model.training
    assert a.shape == (37, 8) and torch.allclose(a, b, atol=1e-6)
    model.eval()
    with torch.no_grad():
        direct = model(data.get_batch(np.arange(37))[0])
    assert torch.allclose(a, direct, atol=1e-6)


@pytest.mark.slow
def test_evaluate_run_reproduces_the_runs_final_metrics(tmp_path, capsys):
    out = tmp_path / "run"
    res = train(dict(out=str(out), dataset="digits", steps=4, eval_every=4, batch_classes=4, samples_per_class=4,
                     dim=8), progress=False)  # fmt: skip
    again = evaluate_run(out, progress=False)
    final = {k: v for k, v in res["final"].items() if k not in ("step", "train_loss", "anchors_without_positive",
                                                                "seconds")}  # fmt: skip
    assert again["metrics"] == final and again["step"] == 4
    assert json.loads((out / "eval.json").read_text())["metrics"] == final
    assert main(["--run", str(out), "--no-progress"]) == 0
    assert "recall_at_1" in capsys.readouterr().out
    assert main(["--run", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err.strip()
    assert "not a run directory" in err and "\n" not in err
