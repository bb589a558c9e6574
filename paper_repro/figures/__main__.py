"""``python -m paper_repro.figures``: regenerate every figure (PNG + the data behind it) and ``manifest.json``."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from collapse.cli import OneLineParser
from collapse.runs import ResultStore, check_writable_dir
from paper_repro.figures import FIGURES, build, resolve_keys


def build_parser() -> argparse.ArgumentParser:
    listing = "; ".join(f"{k} = {v}" for k, v in FIGURES.items())
    p = OneLineParser(
        prog="python -m paper_repro.figures",
        description="Draw the project's figures from computed data: simulations, theory and real-image runs. Each "
        "figure is a PNG with its data (CSV/JSON) next to it; manifest.json records caption, command, data "
        f"source, seed and git commit. Figures: {listing}. The default is a fast CPU version (a few minutes); "
        "--full runs the long one.",
    )
    p.add_argument("--out", default="figures",
                   help="folder for the PNGs, their data and manifest.json (default: figures)")
    p.add_argument("--only", default=None,
                   help="comma-separated figure keys or names, e.g. a,c or phase_diagrams (default: all)")
    p.add_argument("--full", action="store_true", help="the long versions (bigger grids, more seeds, t-SNE)")
    p.add_argument("--seed", type=int, default=None, help="seed of every figure (default: each figure's own, 0)")
    p.add_argument("--runs-root", default=None,
                   help="where finished paper_repro runs are searched for figures e-g (default results/paper_repro)")
    p.add_argument("--train-root", default=None,
                   help="where figures e-g train their small runs if none is found (default results/figures/runs)")
    p.add_argument("--data-root", default=None, help="folder holding the image data sets (default data)")
    p.add_argument("--store", default=None, help="result store of the figures' runs (default results/store)")
    p.add_argument("--list", action="store_true", help="list the figures and exit")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list:
        for key, name in FIGURES.items():
            print(f"{key}  {name}")
        return 0
    try:
        keys = resolve_keys(args.only)
        if args.seed is not None and args.seed < 0:
            raise ValueError(f"--seed must be >= 0, got {args.seed}")
        # Where results go is checked before any compute.
        if args.store is not None:  # both checked before either is created
            check_writable_dir(args.store, what="--store", create=False)
        check_writable_dir(args.out, what="--out")
        if args.store is not None:
            ResultStore(args.store).prepare()
    except ValueError as exc:
        parser.fail(exc)
    overrides = {k: v for k, v in (("seed", args.seed), ("runs_root", args.runs_root),
                                   ("train_root", args.train_root), ("data_root", args.data_root),
                                   ("store", args.store)) if v is not None}
    failed: list[str] = []

    def report(key: str, exc: Exception) -> None:
        failed.append(key)
        print(f"python -m paper_repro.figures: figure {key} ({FIGURES[key]}) failed: {type(exc).__name__}: {exc}",
              file=sys.stderr)

    start = time.perf_counter()
    manifest = build(keys, args.out, full=args.full, overrides=overrides, progress=not args.no_progress,
                     on_error=report)
    for key in keys:
        entry = manifest["figures"].get(key)
        if key not in failed and entry is not None:
            print(f"{key}  {entry['file']:<28} {entry['seconds']:7.1f} s")
    drawn = len(keys) - len(failed)
    # The manifest is written after each figure that was drawn; when none was, it was not written (or touched).
    where = f"{args.out}/manifest.json" if drawn else f"{args.out} (no figure drawn; manifest.json not written)"
    print(f"{drawn}/{len(keys)} figures in {time.perf_counter() - start:.1f} s -> {where}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
