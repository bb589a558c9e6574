"""The retrieval grid of figure (f) on the font-glyph set: query glyphs and their nearest test glyphs.

    python -m paper_repro.figures.glyph_retrieval [--runs-root results/glyphs] [--out figures/glyphs] [--seed 0]

The drawing is :func:`paper_repro.figures.retrieval_grid.draw` (same queries for both runs, k nearest test images in
each run's embedding, frames by match kind), given the finished random-positive / easy-positive pair of
``dataset=glyphs`` found under ``--runs-root`` (``python -m paper_repro.train --dataset glyphs ...``). Only the
frame names change: the fine class is the *character*, the coarse class the *script*. With the default
``protocol=scripts`` the test queries come from held-out scripts. A proxy for Omniglot, not Omniglot.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from unittest import mock

from collapse.cli import OneLineParser
from paper_repro.figures import retrieval_grid as rg
from paper_repro.figures.common import FigureResult
from paper_repro.figures.real_runs import RealParams, find_pairs

__all__ = ["GLYPH_KINDS", "draw", "main"]

GLYPH_KINDS = {
    "fine": (rg.KINDS["fine"][0], rg.KINDS["fine"][1], "same character"),
    "coarse": (rg.KINDS["coarse"][0], rg.KINDS["coarse"][1], "same script, other character"),
    "wrong": (rg.KINDS["wrong"][0], rg.KINDS["wrong"][1], "other script"),
}


def draw(
    out: str | Path,
    *,
    runs_root: str | Path = "results/glyphs",
    loss: str = "triplet",
    queries_per_class: int = 1,
    k: int = 8,
    seed: int = 0,
    data_root: str = "data",
) -> FigureResult:
    """Draw ``f_retrieval_grid.{png,csv,json}`` in ``out`` from the glyph runs under ``runs_root``."""
    if not find_pairs(runs_root, "glyphs", loss):
        raise FileNotFoundError(
            f"no finished random/easy pair of glyphs runs with loss {loss} under {runs_root}; train them with "
            f"python -m paper_repro.train --dataset glyphs --loss {loss} --positive random|easy --out {runs_root}/..."
        )
    real = RealParams(dataset="glyphs", loss=loss, runs_root=str(runs_root), data_root=data_root, seed=seed)
    params = rg.Params(queries_per_class=queries_per_class, k=k, real=real, seed=seed)
    with mock.patch.dict(rg.KINDS, GLYPH_KINDS):  # the same drawing, with the glyph names of the frames
        result = rg.draw(out, params)
    caption = result.caption.replace("same fine class", "same character").replace(
        "same coarse class only", "same script, other character").replace("other coarse class", "other script")
    caption += " Font glyphs (a proxy for Omniglot, not Omniglot): coarse class = script, fine = character."
    return replace(result, caption=caption)


def main(argv: Sequence[str] | None = None) -> int:
    p = OneLineParser(prog="python -m paper_repro.figures.glyph_retrieval",
                      description="Retrieval grid on the font-glyph set from a finished random/easy pair of runs.")
    p.add_argument("--runs-root", default="results/glyphs", help="where the glyph runs are (searched recursively)")
    p.add_argument("--out", default="figures/glyphs", help="folder for the PNG and its data")
    p.add_argument("--loss", default="triplet", help="loss of the pair to show")
    p.add_argument("--queries-per-class", type=int, default=1, help="queries per test script")
    p.add_argument("--k", type=int, default=8, help="neighbours per query")
    p.add_argument("--seed", type=int, default=0, help="seed of the run pair and of the query draw")
    p.add_argument("--data-root", default="data", help="folder holding the glyph set")
    args = p.parse_args(argv)
    try:
        result = draw(args.out, runs_root=args.runs_root, loss=args.loss, queries_per_class=args.queries_per_class,
                      k=args.k, seed=args.seed, data_root=args.data_root)
    except (FileNotFoundError, ValueError) as exc:
        print(f"python -m paper_repro.figures.glyph_retrieval: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {result.png}\n{result.caption}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
