"""Figure (g): training curves of the real-image runs, from the metric history each run saves.

``metrics.json`` of a :func:`paper_repro.train.train` run holds one entry per evaluation: the mean training loss
since the last one and the test metrics of :mod:`paper_repro.evaluate`. One line per run (thin, per seed) and the
mean over seeds (thick) when the pair was run with several seeds; baseline (random positives) and EPS in their
fixed colours. The dashed grey line in the fine-retrieval panel is that metric's chance level, what a fully
collapsed coarse class would score.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from collapse.io import write_csv, write_json
from paper_repro.figures.common import (
    POSITIVE_COLOURS,
    POSITIVE_NAMES,
    WIDTH,
    FigureResult,
    figure_style,
    params_dict,
    plt,
    resolve_params,
    save_figure,
)
from paper_repro.figures.real_runs import FULL as REAL_FULL
from paper_repro.figures.real_runs import RealParams, get_runs

__all__ = ["FULL", "METRICS", "Params", "draw"]

KEY, NAME = "g", "training_curves"
#: history key -> axis label
METRICS = {
    "train_loss": "training loss (mean since last evaluation)",
    "recall_at_1": "coarse Recall@1 (test)",
    "fine_recall_at_1_within_coarse": "fine Recall@1 within coarse (test)",
    "map_at_r": "coarse MAP@R (test)",
    "submode_nmi": "sub-mode NMI (test)",
}


@dataclass(frozen=True)
class Params:
    """Which metrics to plot; ``real`` picks or trains the runs (every seed of the chosen pair is drawn)."""

    metrics: tuple[str, ...] = tuple(METRICS)
    #: Found runs must have been evaluated at least this often to make a curve (else a small pair is trained).
    min_history: int = 3
    real: RealParams = field(default_factory=RealParams)
    seed: int = 0


FULL: dict = {}


def draw(out: str | Path, params: Params | None = None, *, full: bool = False, progress: bool = False) -> FigureResult:
    """Read the runs' histories and write ``g_training_curves.{png,csv,json}``."""
    p = resolve_params(Params, params, full, FULL)
    if full and params is None:
        p = replace(p, real=replace(p.real, **REAL_FULL))
    unknown = [m for m in p.metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; allowed: {', '.join(METRICS)}")
    out = Path(out)
    runs, where = get_runs(p.real, progress=progress, all_seeds=True, min_history=p.min_history)
    rows = []
    for positive, seeds in runs.items():
        for run in seeds:
            for h in run.history:
                rows.append({"positive": positive, "seed": run.config.seed, "run": str(run.path), "step": h["step"],
                             **{m: h.get(m) for m in (*p.metrics, "fine_chance")}})
    metrics = [m for m in p.metrics if any(r.get(m) is not None for r in rows)]

    with figure_style():
        fig, axes = plt.subplots(1, len(metrics), figsize=(WIDTH, 3.2), squeeze=False)
        for ax, metric in zip(axes[0], metrics):
            for positive, seeds in runs.items():
                colour = POSITIVE_COLOURS[positive]
                curves = []
                for run in seeds:
                    steps = [h["step"] for h in run.history if h.get(metric) is not None]
                    vals = [h[metric] for h in run.history if h.get(metric) is not None]
                    curves.append((steps, vals))
                    ax.plot(steps, vals, color=colour, lw=1.0 if len(seeds) > 1 else 2.0,
                            alpha=0.35 if len(seeds) > 1 else 1.0, marker="o" if len(seeds) == 1 else None, ms=3)
                if len(seeds) > 1 and all(c[0] == curves[0][0] for c in curves):
                    ax.plot(curves[0][0], np.mean([c[1] for c in curves], axis=0), color=colour, lw=2.2, marker="o",
                            ms=3)
            if metric == "fine_recall_at_1_within_coarse":
                chance = [r["fine_chance"] for r in rows if r.get("fine_chance") is not None]
                if chance:
                    ax.axhline(float(np.mean(chance)), color="0.5", ls="--", lw=1)
                    ax.text(ax.get_xlim()[0], float(np.mean(chance)), " chance", va="bottom", fontsize=7, color="0.4")
            ax.set_xlabel("training step")
            ax.set_title(METRICS[metric], fontsize=8.5)
        n_seeds = len(runs["random"])
        handles = [plt.Line2D([], [], color=POSITIVE_COLOURS[k], lw=2.2, label=POSITIVE_NAMES[k]) for k in runs]
        label = f"mean of {n_seeds} seeds (thin: each seed)" if n_seeds > 1 else "one seed"
        handles.append(plt.Line2D([], [], color="none", label=label))
        fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)
        cfg = runs["random"][0].config
        fig.suptitle(f"Training curves: {cfg.dataset}, {cfg.loss} loss, {cfg.negative or 'default'} negatives, "
                     f"{cfg.backbone}")
        fig.tight_layout(rect=(0, 0.08, 1, 1))
        png = save_figure(fig, out / f"{KEY}_{NAME}.png")

    csv_path = write_csv(out / f"{KEY}_{NAME}.csv", rows)
    json_path = write_json(out / f"{KEY}_{NAME}.json", {
        "params": params_dict(p), "source": where,
        "runs": {k: [{"path": str(r.path), "origin": r.origin, "config": r.config.to_dict(),
                      "final": r.metrics.get("final")} for r in v] for k, v in runs.items()}})
    caption = (
        f"Training curves of the real-image runs ({cfg.dataset}, {cfg.loss} loss, {cfg.negative or 'default'} "
        f"negatives, {cfg.steps} steps, {label}): training loss and test metrics at every evaluation, baseline "
        "(random positives, vermillion) and EPS (easy positives, blue). Fine Recall@1 within coarse falls to its "
        f"chance level (dashed) when a coarse class collapses. Runs: {where}."
    )
    return FigureResult(KEY, NAME, png, [csv_path, json_path], caption, source=where, seed=p.seed,
                        params=params_dict(p), extra={"seeds": n_seeds})
