"""Figure (c): phase diagrams of class collapse, label noise x batch size M and label noise x modes per class K.

Every cell is coloured by the seed mean of the instrument's sub-mode separation over the loss's margin
(:func:`collapse.metrics.instrument_report`) and labelled with the verdict most seeds get
(:func:`collapse.metrics.collapse_verdict`: C collapsed, P partly collapsed, K modes kept, Ds degenerate with the
whole space shrunk, Dn degenerate with no class structure), read from the records of
:func:`collapse.phase.phase_diagram` (the ``collapse.simulate`` set-up: tied model, hard negatives, 500 Adam steps).
One column per loss; the rows are random positives and easy positives, first over M (K = 3), then over K (M = 12).
Cells whose verdict is collapsed or whole-space degenerate (classes on a point) are outlined.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from collapse.experiment import STATE_KEYS, with_overrides
from collapse.io import write_csv, write_json
from collapse.phase import DEFAULT_EPS, DEFAULT_K, DEFAULT_LOSSES, DEFAULT_M, PHASE_BASE, phase_diagram
from collapse.runs import DEFAULT_STORE
from paper_repro.figures.common import (
    POSITIVE_NAMES,
    WIDTH,
    FigureResult,
    figure_style,
    params_dict,
    plt,
    resolve_params,
    save_figure,
)

__all__ = ["FULL", "Params", "draw"]

KEY, NAME = "c", "phase_diagrams"
#: Cell letters of the instrument's states, in the order of :data:`collapse.experiment.STATE_KEYS`.
STATE_LETTERS = dict(zip(STATE_KEYS.values(), ("C", "P", "K", "Ds", "Dn")))
VALUE = "submode_separation_over_margin"


def state_letter(row: dict) -> str:
    """The letter of the state most seeds of a phase-diagram cell are in (ties: the earlier state)."""
    key = max(STATE_LETTERS, key=lambda k: row[k])
    return STATE_LETTERS[key]
LOSS_TITLES = {"triplet": "triplet", "margin": "margin (beta = 1.2)", "multisimilarity": "multi-similarity",
               "contrastive": "contrastive", "nca": "softmax / NCA", "margin-learned": "margin (learned beta)",
               "triplet-sq": "triplet (squared)"}


@dataclass(frozen=True)
class Params:
    """Grid of figure (c); ``steps`` overrides the simulation length of :data:`collapse.phase.PHASE_BASE`."""

    losses: tuple[str, ...] = DEFAULT_LOSSES
    eps_grid: tuple[float, ...] = DEFAULT_EPS
    m_grid: tuple[int, ...] = DEFAULT_M
    k_grid: tuple[int, ...] = DEFAULT_K
    seeds: int = 2
    steps: int = PHASE_BASE.steps
    axes: tuple[str, ...] = ("M", "K")
    n_jobs: int | None = None
    seed: int = 0
    #: The result store of the cells (a rerun draws from the records).
    store: str = DEFAULT_STORE


FULL = {"eps_grid": (0.0, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4), "m_grid": (3, 4, 6, 8, 12, 16),
        "k_grid": (2, 3, 4, 6, 8), "seeds": 4}


def draw(out: str | Path, params: Params | None = None, *, full: bool = False, progress: bool = False) -> FigureResult:
    """Compute both phase diagrams and write ``c_phase_diagrams.{png,csv,json}``."""
    p = resolve_params(Params, params, full, FULL)
    out = Path(out)
    base = with_overrides(PHASE_BASE, steps=p.steps, seed=p.seed)
    rows: list[dict] = []
    for axis in p.axes:
        rows += phase_diagram(axis, p.losses, ("random", "easy"), p.eps_grid, p.m_grid, p.k_grid, p.seeds, base,
                              n_jobs=p.n_jobs, progress=progress, store=p.store)
    field = {"M": "samples_per_class", "K": "modes"}
    values = {"M": list(p.m_grid), "K": list(p.k_grid)}
    vmax = max(8.0, max(r[VALUE] for r in rows))  # one colour scale for every panel and run

    with figure_style():
        n_cols = len(p.losses)
        fig = plt.figure(figsize=(WIDTH, 4.9 * len(p.axes) + 0.4), layout="constrained")
        subs = np.atleast_1d(fig.subfigures(len(p.axes), 1, hspace=0.04))
        image = None
        for a, axis in enumerate(p.axes):
            sub = subs[a]
            axes = sub.subplots(2, n_cols, squeeze=False)
            held = f"K = {PHASE_BASE.modes} modes per class" if axis == "M" else (
                f"M = {PHASE_BASE.samples_per_class} samples per class")
            sub.suptitle(f"label noise x {'batch size M' if axis == 'M' else 'modes per class K'} ({held})",
                         fontsize=10.5, fontweight="bold")
            for r, rule in enumerate(("random", "easy")):
                for c, loss in enumerate(p.losses):
                    ax = axes[r, c]
                    grid = np.full((len(values[axis]), len(p.eps_grid)), np.nan)
                    letters = np.full(grid.shape, "", dtype=object)
                    for row in rows:
                        if row["axis"] == axis and row["loss"] == loss and row["positive"] == rule:
                            i = values[axis].index(row[field[axis]])
                            j = list(p.eps_grid).index(row["noise"])
                            grid[i, j], letters[i, j] = row[VALUE], state_letter(row)
                    image = ax.imshow(grid, origin="lower", cmap="cividis", vmin=0.0, vmax=vmax, aspect="auto")
                    for i in range(grid.shape[0]):
                        for j in range(grid.shape[1]):
                            val = grid[i, j]
                            ax.text(j, i, f"{val:.2g}\n{letters[i, j]}", ha="center", va="center", fontsize=6.5,
                                    color="white" if val < 0.45 * vmax else "black")
                            if letters[i, j] in ("C", "Ds"):
                                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="#E69F00", lw=2.0))
                    ax.set_xticks(range(len(p.eps_grid)), [f"{e:g}" for e in p.eps_grid])
                    ax.set_yticks(range(len(values[axis])), [str(v) for v in values[axis]])
                    if r == 1:
                        ax.set_xlabel("label noise eps")
                    if c == 0:
                        ax.set_ylabel("samples per class M" if axis == "M" else "modes per class K")
                    ax.set_title(f"{LOSS_TITLES.get(loss, loss)}\n{POSITIVE_NAMES[rule]}", fontsize=9)
            sub.colorbar(image, ax=axes, shrink=0.8, label="sub-mode separation / margin (seed mean)")
        fig.suptitle("Phase diagrams of class collapse (letters: verdict of most seeds, C collapsed, P partly, K kept, "
                     "Ds whole space shrunk, Dn no class structure; orange boxes: C or Ds)")
        png = save_figure(fig, out / f"{KEY}_{NAME}.png")

    flat = [{k: v for k, v in r.items() if k != "per_seed"} for r in rows]
    for r in flat:
        if isinstance(r.get("modes"), list):
            r["modes"] = r["modes"][0] if len(set(r["modes"])) == 1 else str(r["modes"])
    csv_path = write_csv(out / f"{KEY}_{NAME}.csv", flat)
    json_path = write_json(out / f"{KEY}_{NAME}.json", {"params": params_dict(p), "base": base.to_dict(),
                                                        "value": VALUE, "rows": rows})
    caption = (
        "Phase diagrams of class collapse: seed-mean sub-mode separation over the loss's margin (noise-corrected "
        f"distance between the mode centroids of a class; {p.seeds} seeds per cell) and the verdict most seeds get "
        f"(collapse.metrics.collapse_verdict, docs/measures.md) after {p.steps} steps, over label noise eps x "
        f"samples per class in the batch M (K = {PHASE_BASE.modes} modes) and eps x modes per class K "
        f"(M = {PHASE_BASE.samples_per_class}), one column per loss, random positives (baseline) and easy positives "
        "(EPS) in alternate rows, hard negatives throughout (collapse.phase.phase_diagram, tied model, "
        f"{PHASE_BASE.classes} classes). Letters: C collapsed, P partly collapsed, K modes kept, Ds degenerate "
        "(whole space shrunk), Dn degenerate (no class structure); orange boxes: C or Ds (classes on a point)."
    )
    return FigureResult(KEY, NAME, png, [csv_path, json_path], caption, source="collapse.phase.phase_diagram",
                        seed=p.seed, params=params_dict(p))
