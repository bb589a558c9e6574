"""Table (h): the real-image results of the full studies, gathered into ``paper_repro_table.md`` and ``.json``.

``python -m paper_repro.experiments`` writes one table per study into its ``--out-dir`` and never touches
``figures/``; this entry gathers the full studies of ``runs_root`` (:func:`paper_repro.experiments.write_figure`)
into the figures folder, where ``python -m collapse.claims`` reads them. Nothing is drawn: the "figure" is the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from paper_repro.experiments import TABLE_JSON, TABLE_MD, write_figure
from paper_repro.figures.common import FigureResult, params_dict, resolve_params

__all__ = ["FULL", "Params", "draw"]

KEY, NAME = "h", "real_table"


@dataclass(frozen=True)
class Params:
    """Where the study tables are (``<runs_root>/*_table_*.json`` written by the experiments)."""

    runs_root: str = "results/paper_repro"
    seed: int = 0


FULL: dict = {}


def draw(out: str | Path, params: Params | None = None, *, full: bool = False, progress: bool = False) -> FigureResult:
    """Gather the full-study tables of ``runs_root`` into ``out/paper_repro_table.{md,json}``."""
    p = resolve_params(Params, params, full, FULL)
    out = Path(out)
    md = write_figure(Path(p.runs_root), out / TABLE_MD, out / TABLE_JSON)
    if md is None:
        raise ValueError(f"no full-study table under {p.runs_root} (run python -m paper_repro.experiments collapse "
                         "with its default settings first); nothing written")
    caption = ("Real-image results: mean ± std over seeds per cell of the full class-collapse studies "
               f"(python -m paper_repro.experiments), gathered from {p.runs_root}.")
    return FigureResult(KEY, NAME, out / TABLE_MD, [out / TABLE_JSON], caption,
                        source=f"paper_repro.experiments tables under {p.runs_root}", seed=p.seed,
                        params=params_dict(p))
