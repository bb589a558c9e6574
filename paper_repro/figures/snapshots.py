"""Figure (b): class collapse as it happens, embeddings on the circle at several training steps.

Each row is one :class:`collapse.runs.SimRun`, read from the result store (the ``collapse.simulate`` defaults:
4 classes x 3 modes, the *tied* model with one embedding per mode so that no single noisy label can be memorised,
triplet loss with hard negatives), with random or easy positives, at label noise 0 and 0.1. Columns are the snapshots
the trainer keeps. In 2-D the embedding is the unit circle itself; in 3-D (``dim=3``) the sphere is shown in the plane
of the first two principal components of the final embedding (an orthographic projection, the same for every step
of a row). Colour is the class, the marker the mode. With the tied model every sample of a mode sits on one point,
so a collapsed class is one spot where its three markers overlap.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from collapse.experiment import STATE_KEYS, SimConfig, make_data, verdict
from collapse.io import write_csv, write_json
from collapse.metrics import mode_separation
from collapse.runs import DEFAULT_STORE, ResultStore, SimRun, execute
from paper_repro.figures.common import (
    MARKERS,
    POSITIVE_NAMES,
    WIDTH,
    FigureResult,
    class_palette,
    figure_style,
    local_modes,
    params_dict,
    plt,
    resolve_params,
    save_figure,
)

__all__ = ["FULL", "Params", "draw"]

KEY, NAME = "b", "snapshots"


@dataclass(frozen=True)
class Params:
    """Simulation grid of figure (b)."""

    classes: int = 4
    modes: int = 3
    dim: int = 2
    model: str = "tied"
    steps: int = 500
    snapshots: tuple[int, ...] = (0, 25, 100, 500)
    noises: tuple[float, ...] = (0.0, 0.1)
    positives: tuple[str, ...] = ("random", "easy")
    loss: str = "triplet"
    negative: str = "hard"
    seeds: int = 3
    seed: int = 0
    #: The result store of the runs.
    store: str = DEFAULT_STORE


FULL = {"steps": 1500, "snapshots": (0, 25, 100, 400, 1500), "seeds": 5}


def _projection(final: np.ndarray) -> np.ndarray:
    """(d, 2) orthonormal basis: identity for d = 2, else the top-2 principal axes of ``final`` about the origin."""
    if final.shape[1] == 2:
        return np.eye(2)
    _, _, vt = np.linalg.svd(final, full_matrices=False)
    return vt[:2].T


def _outcome(res: dict, seeds: int) -> str:
    """The row's verdict in two short lines: the state of most seeds and how many, then its detail if any."""
    text = verdict(res)
    state = next(s for s in STATE_KEYS if text.startswith(s))
    detail = text[len(state):].strip(" ()")
    count = round(res[STATE_KEYS[state]] * seeds)
    return f"{state} ({count}/{seeds} seeds)" + (f"\n{detail}" if detail else "")


def draw(out: str | Path, params: Params | None = None, *, full: bool = False, progress: bool = False) -> FigureResult:
    """Train the (noise x positive rule) runs and write ``b_snapshots.{png,csv,json}``."""
    p = resolve_params(Params, params, full, FULL)
    if any(s < 0 or s > p.steps for s in p.snapshots):
        raise ValueError(f"snapshots must lie in [0, steps={p.steps}], got {p.snapshots}")
    out = Path(out)
    grid = [(noise, rule) for noise in p.noises for rule in p.positives]
    sims = [SimRun(SimConfig(classes=p.classes, modes=p.modes, dim=p.dim, model=p.model, steps=p.steps, noise=noise,
                             seeds=p.seeds, seed=p.seed), p.loss, rule, p.negative, snapshot_steps=tuple(p.snapshots))
            for noise, rule in grid]
    ex = execute(sims, ResultStore(p.store), progress=progress, desc="snapshots")
    if not ex.ok:
        raise RuntimeError(f"a simulation of figure (b) failed: {ex.errors[0]}")
    data = make_data(sims[0].config)  # every run shares the data (data_seed)
    runs, rows, summary = [], [], []
    for (noise, rule), res in zip(grid, ex.results()):
        snaps = {s: np.asarray(res["snapshots"][str(s)], dtype=np.float32) for s in p.snapshots}
        runs.append((noise, rule, res, snaps))
        for s, emb in snaps.items():
            sep = mode_separation(emb, data.y, data.modes)["mode_separation"]
            summary.append({"noise": noise, "positive": rule, "step": s, "mode_separation_seed0": sep})
            for i in range(len(data.y)):
                rows.append({"noise": noise, "positive": rule, "step": s, "sample": i, "class": int(data.y[i]),
                             "mode": int(data.modes[i]), **{f"z{k}": float(v) for k, v in enumerate(emb[i])}})
        summary.append({"noise": noise, "positive": rule, "step": "final, mean over seeds",
                        "mode_separation_mean": res["mode_separation"],
                        "seeds_collapsed": res["seeds_collapsed"], "seeds": p.seeds,
                        "verdict": verdict(res)})

    colours = class_palette(data.n_classes)
    lm = local_modes(data.mode_class)
    nr, nc = len(runs), len(p.snapshots)
    with figure_style():
        fig, axes = plt.subplots(nr, nc, figsize=(WIDTH, WIDTH / nc * nr * 0.98 + 0.8), squeeze=False)
        t = np.linspace(0, 2 * np.pi, 400)
        for i, (noise, rule, res, snaps) in enumerate(runs):
            basis = _projection(snaps[p.snapshots[-1]])
            for j, s in enumerate(p.snapshots):
                ax = axes[i, j]
                xy = snaps[s] @ basis
                ax.plot(np.cos(t), np.sin(t), color="0.85", lw=0.8, zorder=0)
                for mode in range(len(data.mode_class)):
                    sel = data.modes == mode
                    ax.scatter(xy[sel, 0], xy[sel, 1], s=46, c=colours[data.mode_class[mode]], alpha=0.75,
                               marker=MARKERS[lm[mode] % len(MARKERS)], edgecolors="black", linewidths=0.4)
                sep = mode_separation(snaps[s], data.y, data.modes)["mode_separation"]
                ax.set_title(f"step {s}: separation {sep:.2f}", fontsize=8.5)
                ax.set_aspect("equal")
                ax.set_xlim(-1.25, 1.25)
                ax.set_ylim(-1.25, 1.25)
                ax.set_xticks([-1, 0, 1])
                ax.set_yticks([-1, 0, 1])
                if j == 0:
                    ax.set_ylabel(f"{POSITIVE_NAMES[rule]}, noise {noise:g}\n{_outcome(res, p.seeds)}\n\n"
                                  + ("y" if p.dim == 2 else "PC 2"), fontsize=8.5)
                if i == nr - 1:
                    ax.set_xlabel("x" if p.dim == 2 else "PC 1")
        handles = [plt.Line2D([], [], ls="", marker="o", color=colours[c], label=f"class {c}")
                   for c in range(data.n_classes)]
        handles += [plt.Line2D([], [], ls="", marker=MARKERS[k], color="0.4", label=f"mode {k}")
                    for k in range(int(lm.max()) + 1)]
        fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)
        where = "the unit circle" if p.dim == 2 else "the unit sphere, projected on its first two principal axes"
        fig.suptitle(f"Embeddings on {where} during training ({p.loss}, {p.negative} negatives, {p.model} model)")
        fig.tight_layout(rect=(0, 0.035, 1, 0.985))
        png = save_figure(fig, out / f"{KEY}_{NAME}.png")

    csv_path = write_csv(out / f"{KEY}_{NAME}.csv", rows)
    json_path = write_json(out / f"{KEY}_{NAME}.json", {"params": params_dict(p), "summary": summary})
    caption = (
        f"Embeddings of {p.classes} classes x {p.modes} modes on {where}, at training steps "
        f"{', '.join(map(str, p.snapshots))} (columns), for random and easy positives at label noise "
        f"{' and '.join(f'{n:g}' for n in p.noises)} (rows); colour = class, marker = mode. Each row is seed 0 of a "
        f"{p.seeds}-seed collapse.runs.SimRun ({p.loss} loss, {p.negative} negatives, tied "
        "model: one point per mode); panel titles give that snapshot's mode separation (mean distance between the "
        "mode centroids of a class), row labels the final state of most seeds (collapse.metrics.collapse_verdict, "
        "docs/measures.md) and how many seeds are in it."
    )
    return FigureResult(KEY, NAME, png, [csv_path, json_path], caption,
                        source="collapse.runs.SimRun (snapshot_steps), read from the result store", seed=p.seed,
                        params=params_dict(p), extra={"summary": [r for r in summary if "verdict" in r]})
