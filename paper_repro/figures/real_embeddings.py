"""Figure (e): class collapse on real images, test embeddings of a superclass data set in 2-D.

Fashion-MNIST (or MNIST) is trained on *coarse* labels (tops / footwear / other) with the fine class kept as hidden
ground truth (:mod:`paper_repro.datasets.superclass`). For the baseline (random positives) and EPS, the first
column projects all test embeddings to 2-D (PCA, or t-SNE with ``--full``), colour = coarse class, shade = fine
class; the next columns zoom into each coarse class with its own 2-D projection and a distinct colour per fine
class, where a collapsed class shows its fine classes mixed and a diverse one shows them as separate clusters.
Panel titles give the run's own test metrics (:mod:`paper_repro.evaluate`): coarse Recall@1, and *fine Recall@1
within coarse* (is the nearest test image of the same coarse class of the same fine class) against its chance level.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from collapse.io import write_csv, write_json
from paper_repro.figures.common import (
    POSITIVE_NAMES,
    WIDTH,
    FigureResult,
    class_palette,
    figure_style,
    params_dict,
    plt,
    resolve_params,
    save_figure,
    shades,
)
from paper_repro.figures.real_runs import FULL as REAL_FULL
from paper_repro.figures.real_runs import RealParams, get_runs, run_embeddings

__all__ = ["FULL", "Params", "draw", "project"]

KEY, NAME = "e", "real_embeddings"
METHODS = ("pca", "tsne")


@dataclass(frozen=True)
class Params:
    """Projection and point budget of figure (e); ``real`` picks or trains the runs."""

    method: str = "pca"
    #: Test points drawn per panel (a stratified random subset when the test split is larger).
    max_points: int = 2000
    real: RealParams = field(default_factory=RealParams)
    seed: int = 0


FULL = {"method": "tsne", "max_points": 5000}


def project(x: np.ndarray, method: str = "pca", *, random_state: int = 0) -> np.ndarray:
    """2-D coordinates of the rows of ``x``: principal components, or t-SNE (scikit-learn, PCA initialisation)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if method == "pca" or len(x) < 5:
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=random_state).fit_transform(x)
    from sklearn.manifold import TSNE

    perplexity = float(min(30.0, (len(x) - 1) / 3))
    return TSNE(2, init="pca", perplexity=perplexity, random_state=random_state).fit_transform(x)


def _subset(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    if len(y) <= n:
        return np.arange(len(y))
    from paper_repro.builders import stratified_subset

    return stratified_subset(y, n, seed)


def draw(out: str | Path, params: Params | None = None, *, full: bool = False, progress: bool = False) -> FigureResult:
    """Embed the test split with both runs' checkpoints, project, and write ``e_real_embeddings.{png,csv,json}``."""
    p = resolve_params(Params, params, full, FULL)
    if full and params is None:
        p = replace(p, real=replace(p.real, **REAL_FULL))
    if p.method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {p.method!r}")
    out = Path(out)
    runs, where = get_runs(p.real, progress=progress)
    rows, panels = [], []
    for positive in ("random", "easy"):
        run = runs[positive][0]
        emb, test = run_embeddings(run, p.real, progress=progress)
        y = np.asarray(test.labels)
        fine = np.asarray(test.fine_labels) if test.fine_labels is not None else y.copy()
        keep = _subset(fine, p.max_points, p.seed)
        xy = project(emb[keep], p.method, random_state=p.seed)
        within = {}
        for c in range(len(test.class_names)):
            idx = keep[y[keep] == c]
            if len(idx) >= 3:
                within[c] = (idx, project(emb[idx], p.method, random_state=p.seed))
        panels.append((positive, run, test, keep, xy, within))
        for i, k in enumerate(keep):
            rows.append({"positive": positive, "index": int(k), "coarse": int(y[k]), "fine": int(fine[k]),
                         "x": float(xy[i, 0]), "y": float(xy[i, 1])})

    test = panels[0][2]
    names = list(test.class_names)
    fine_names = list(test.fine_names) if test.fine_labels is not None else names
    y_all = np.asarray(test.labels)
    fine_all = np.asarray(test.fine_labels) if test.fine_labels is not None else y_all
    colours = class_palette(len(names))
    distinct = [c for c in class_palette(8) if c not in ("#F0E442",)]  # yellow is too pale on white for points
    fine_colour, members = {}, {}
    for c in range(len(names)):
        fs = sorted(set(fine_all[y_all == c].tolist()))
        members[c] = fs
        for f, shade in zip(fs, shades(colours[c], len(fs))):
            fine_colour[f] = shade
    label = {"pca": "PC", "tsne": "t-SNE"}[p.method]
    summary = {}
    with figure_style():
        n_cols = 1 + len(names)
        fig, axes = plt.subplots(2, n_cols, figsize=(WIDTH, 6.6), squeeze=False,
                                 gridspec_kw={"width_ratios": [1.5] + [1] * len(names)})
        for r, (positive, run, _, keep, xy, within) in enumerate(panels):
            fin = run.metrics.get("final") or {}
            summary[positive] = {k: fin.get(k) for k in ("recall_at_1", "fine_recall_at_1_within_coarse", "fine_chance",
                                                          "submode_nmi", "map_at_r")}
            ax = axes[r, 0]
            f = fine_all[keep]
            ax.scatter(xy[:, 0], xy[:, 1], s=4, c=[fine_colour[int(v)] for v in f], alpha=0.8, linewidths=0,
                       rasterized=True)
            metric = ""
            if fin.get("fine_recall_at_1_within_coarse") is not None:
                metric = (f"\nR@1 {fin['recall_at_1']:.3f}; fine R@1 within coarse "
                          f"{fin['fine_recall_at_1_within_coarse']:.3f} (chance {fin['fine_chance']:.3f})")
            ax.set_title(f"{POSITIVE_NAMES[positive]}: all test images{metric}", fontsize=8.5)
            ax.set_xlabel(f"{label} 1")
            ax.set_ylabel(f"{label} 2")
            ax.set_xticks([])
            ax.set_yticks([])
            for c in range(len(names)):
                bx = axes[r, 1 + c]
                if c not in within:
                    bx.axis("off")
                    continue
                idx, cxy = within[c]
                # Inside one coarse class the fine classes get distinct colours, easier to tell apart than shades.
                own = {f: distinct[i % len(distinct)] for i, f in enumerate(members[c])}
                bx.scatter(cxy[:, 0], cxy[:, 1], s=5, c=[own[int(v)] for v in fine_all[idx]], alpha=0.8,
                           linewidths=0, rasterized=True)
                if r == 0:
                    bx.legend(handles=[plt.Line2D([], [], ls="", marker="o", ms=4, color=own[f], label=fine_names[f])
                                       for f in members[c]], fontsize=6.5, loc="best", frameon=True,
                              framealpha=0.8, handletextpad=0.1, borderpad=0.3)
                bx.set_title(f"inside '{names[c]}' ({len(members[c])} fine classes)", fontsize=8.5)
                bx.set_xticks([])
                bx.set_yticks([])
                bx.set_xlabel(f"{label} 1 of this class")
        handles = []
        longest = max(len(v) for v in members.values()) + 1
        for c in range(len(names)):
            column = [plt.Line2D([], [], ls="", label=f"{names[c]} (left panels):")]
            column += [plt.Line2D([], [], ls="", marker="o", color=fine_colour[f], label=fine_names[f])
                       for f in members[c]]
            handles += column + [plt.Line2D([], [], ls="", label="")] * (longest - len(column))
        fig.legend(handles=handles, loc="lower center", ncol=len(names), frameon=False, fontsize=7.5)
        method = "PCA" if p.method == "pca" else "t-SNE"
        fig.suptitle(f"Test embeddings of {p.real.dataset} ({method}); left: colour = coarse class, shade = fine "
                     "class; right: one coarse class at a time, colour = fine class (hidden in training)")
        fig.tight_layout(rect=(0, 0.16, 1, 0.98))
        png = save_figure(fig, out / f"{KEY}_{NAME}.png")

    csv_path = write_csv(out / f"{KEY}_{NAME}.csv", rows)
    json_path = write_json(out / f"{KEY}_{NAME}.json", {
        "params": params_dict(p), "source": where, "method": p.method, "coarse_names": names, "fine_names": fine_names,
        "runs": {k: {"path": str(v[0].path), "origin": v[0].origin, "config": v[0].config.to_dict()}
                 for k, v in runs.items()},
        "final_metrics": summary})
    cfg = runs["random"][0].config
    caption = (
        f"Class collapse on real images: {method} projections of {cfg.dataset} test embeddings, baseline "
        f"(random positives, top) beside EPS (easy positives, bottom); {cfg.loss} loss, "
        f"{cfg.negative or 'default'} negatives, {cfg.backbone}, {cfg.steps} steps, seed {cfg.seed}, trained on the "
        "coarse labels only. Left: all test images, colour = coarse class, shade = fine class; right: each coarse "
        "class on its own 2-D projection, colour = fine class, where a collapsed class mixes its fine classes. "
        f"Titles: the runs' test metrics (fine R@1 within coarse against chance). Runs: {where}."
    )
    return FigureResult(KEY, NAME, png, [csv_path, json_path], caption, source=where, seed=p.seed,
                        params=params_dict(p), extra={"final_metrics": summary})
