"""Figure (f): retrieval on real images, queries with their nearest test neighbours, baseline beside EPS.

The same queries (``queries_per_class`` per coarse class, drawn with ``seed``) are answered by the random-positive
run and the EPS run: each row is a query (grey frame) and its ``k`` nearest other test images in that run's
embedding (:func:`collapse.metrics.knn`, Euclidean). A neighbour's frame says what it shares with the query: the
same fine class (green, solid), only the coarse class (orange, dashed), or neither (vermillion, dotted); colour and
line style both carry it, so the figure reads without colour too. The JSON also holds, for *every* test query, the
fraction of its top-k neighbours in each of these three cases.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from collapse.io import write_csv, write_json
from collapse.metrics import knn
from paper_repro.figures.common import (
    GREEN,
    ORANGE,
    POSITIVE_NAMES,
    VERMILLION,
    WIDTH,
    FigureResult,
    figure_style,
    params_dict,
    plt,
    resolve_params,
    save_figure,
)
from paper_repro.figures.real_runs import FULL as REAL_FULL
from paper_repro.figures.real_runs import RealParams, get_runs, run_embeddings

__all__ = ["FULL", "Params", "draw", "match_kinds"]

KEY, NAME = "f", "retrieval_grid"
QUERY = "0.55"  # grey: a black frame would vanish against the black background of the images
KINDS = {"fine": (GREEN, "-", "same fine class"), "coarse": (ORANGE, "--", "same coarse class only"),
         "wrong": (VERMILLION, ":", "other coarse class")}


@dataclass(frozen=True)
class Params:
    """Queries and neighbours of figure (f); ``real`` picks or trains the runs."""

    queries_per_class: int = 2
    k: int = 6
    real: RealParams = field(default_factory=RealParams)
    seed: int = 0


FULL = {"queries_per_class": 3, "k": 8}


def match_kinds(query: np.ndarray, neighbours: np.ndarray, coarse: np.ndarray, fine: np.ndarray) -> np.ndarray:
    """``"fine"`` / ``"coarse"`` / ``"wrong"`` for each neighbour ``neighbours[i, j]`` of ``query[i]``."""
    same_coarse = coarse[neighbours] == coarse[query][:, None]
    same_fine = fine[neighbours] == fine[query][:, None]
    return np.where(same_fine & same_coarse, "fine", np.where(same_coarse, "coarse", "wrong"))


def _queries(coarse: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    picks = []
    for c in np.unique(coarse):
        members = np.flatnonzero(coarse == c)
        picks.append(np.sort(rng.choice(members, size=min(per_class, len(members)), replace=False)))
    return np.concatenate(picks)


def draw(out: str | Path, params: Params | None = None, *, full: bool = False, progress: bool = False) -> FigureResult:
    """Retrieve the top-k of the same queries in both runs and write ``f_retrieval_grid.{png,csv,json}``."""
    p = resolve_params(Params, params, full, FULL)
    if full and params is None:
        p = replace(p, real=replace(p.real, **REAL_FULL))
    out = Path(out)
    runs, where = get_runs(p.real, progress=progress)
    blocks, rows, overall = [], [], {}
    queries = None
    for positive in ("random", "easy"):
        run = runs[positive][0]
        emb, test = run_embeddings(run, p.real, progress=progress)
        coarse = np.asarray(test.labels)
        fine = np.asarray(test.fine_labels) if test.fine_labels is not None else coarse
        if queries is None:
            queries = _queries(coarse, p.queries_per_class, p.seed)
        k = min(p.k, len(coarse) - 1)
        dist, idx = knn(emb, None, k)
        idx, dist = idx.numpy(), dist.numpy()
        kinds_all = match_kinds(np.arange(len(coarse)), idx, coarse, fine)
        overall[positive] = {f"fraction_{kind}": float((kinds_all == kind).mean()) for kind in KINDS}
        kinds = kinds_all[queries]
        blocks.append((positive, test, idx[queries], kinds))
        for qi, q in enumerate(queries):
            for j in range(k):
                n = int(idx[q, j])
                rows.append({"positive": positive, "query": int(q), "rank": j + 1, "neighbour": n,
                             "distance": float(dist[q, j]), "query_coarse": int(coarse[q]), "query_fine": int(fine[q]),
                             "neighbour_coarse": int(coarse[n]), "neighbour_fine": int(fine[n]),
                             "match": str(kinds[qi, j])})

    test = blocks[0][1]
    fine_names = list(test.fine_names) if test.fine_labels is not None else list(test.class_names)
    coarse = np.asarray(test.labels)
    fine = np.asarray(test.fine_labels) if test.fine_labels is not None else coarse
    k = blocks[0][2].shape[1]
    nq = len(queries)
    with figure_style():
        fig = plt.figure(figsize=(WIDTH, 0.95 * nq + 1.3), layout="constrained")
        subs = fig.subfigures(1, 2, wspace=0.03)
        for sub, (positive, ds, nbrs, kinds) in zip(subs, blocks):
            axes = sub.subplots(nq, k + 1, squeeze=False, gridspec_kw={"wspace": 0.08, "hspace": 0.35})
            o = overall[positive]
            sub.suptitle(f"{POSITIVE_NAMES[positive]}\nall test queries, top-{k}: {o['fraction_fine']:.0%} same fine, "
                         f"{o['fraction_coarse']:.0%} coarse only, {o['fraction_wrong']:.0%} wrong", fontsize=9)
            images, _ = ds.get_batch(np.concatenate([queries, nbrs.reshape(-1)]))
            images = images.numpy()
            for i, q in enumerate(queries):
                for j in range(k + 1):
                    ax = axes[i, j]
                    img = images[i] if j == 0 else images[nq + i * k + (j - 1)]
                    ax.imshow(img[0] if img.shape[0] == 1 else np.moveaxis(img, 0, -1), cmap="gray", vmin=0, vmax=1)
                    ax.set_xticks([])
                    ax.set_yticks([])
                    colour, style, width = (QUERY, "-", 2.5) if j == 0 else (*KINDS[kinds[i, j - 1]][:2], 3.0)
                    for spine in ax.spines.values():
                        spine.set_visible(True)
                        spine.set_edgecolor(colour)
                        spine.set_linestyle(style)
                        spine.set_linewidth(width)
                    name = fine_names[fine[q] if j == 0 else fine[nbrs[i, j - 1]]]
                    ax.set_title(("query: " if j == 0 else "") + name, fontsize=6, pad=1.5)
        handles = [plt.Line2D([], [], color=c, ls=s, lw=2.5, label=lab) for c, s, lab in KINDS.values()]
        handles.insert(0, plt.Line2D([], [], color=QUERY, lw=2.5, label="query"))
        fig.legend(handles=handles, loc="outside lower center", ncol=4, frameon=False)
        png = save_figure(fig, out / f"{KEY}_{NAME}.png")

    csv_path = write_csv(out / f"{KEY}_{NAME}.csv", rows)
    json_path = write_json(out / f"{KEY}_{NAME}.json", {
        "params": params_dict(p), "source": where, "queries": queries.tolist(), "k": k,
        "all_queries_topk_fractions": overall,
        "runs": {kk: {"path": str(v[0].path), "origin": v[0].origin, "config": v[0].config.to_dict()}
                 for kk, v in runs.items()}})
    cfg = runs["random"][0].config
    caption = (
        f"Retrieval on {cfg.dataset} test images: {nq} queries ({p.queries_per_class} per coarse class, drawn with "
        f"seed {p.seed}) and their {k} nearest test images in the embedding of the baseline (random positives, "
        f"left) and of EPS (right); {cfg.loss} loss, {cfg.negative or 'default'} negatives, {cfg.steps} steps. "
        "Frames: same fine class (green, solid), same coarse class only (orange, dashed), other coarse class "
        "(vermillion, dotted). Headers: the same fractions over the top-k of every test query. "
        f"Runs: {where}."
    )
    return FigureResult(KEY, NAME, png, [csv_path, json_path], caption, source=where, seed=p.seed,
                        params=params_dict(p), extra={"all_queries_topk_fractions": overall})
