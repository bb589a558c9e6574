"""``python -m collapse.rivals``: every method of :data:`collapse.rivals.METHODS` x model x noise level, same seeds
and budget, judged by the collapse instrument; writes JSON, CSV and a Markdown table to ``--out`` (names carry the
runs' hash), and with ``--readme PATH`` the table between the README's markers. Resumable: finished runs are read
from ``--store``."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

from collapse._validation import check_int, check_real
from collapse.cli import OneLineParser, parse_list
from collapse.experiment import SimConfig
from collapse.io import write_csv, write_json, write_text
from collapse.optimize import MODELS
from collapse.rivals import METHODS, grid_runs, method_cell, method_of, method_verdict, seed_outcome
from collapse.runs import ResultStore, SimRun, check_marked_file, check_writable_dir, execute, hashed_stem

DEFAULT_STORE = "results/store"
DEFAULTS = {"methods": "all", "models": "tied,mlp", "noise": "0,0.1,0.3", "seeds": 3, "steps": 500, "seed": 0}
MARKERS = ("<!-- rivals-table:start -->", "<!-- rivals-table:end -->")


def build_parser() -> OneLineParser:
    p = OneLineParser(
        prog="python -m collapse.rivals",
        description="Ways to prevent class collapse side by side: each method x model x label-noise level, the same "
        "seeds and budget, judged by the collapse instrument.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--methods", default=DEFAULTS["methods"], help=f"comma-separated, or 'all': {', '.join(METHODS)}")
    p.add_argument("--models", default=DEFAULTS["models"], help=f"comma-separated: {', '.join(MODELS)}")
    p.add_argument("--noise", default=DEFAULTS["noise"], help="comma-separated symmetric label-noise rates in [0, 1)")
    p.add_argument("--seeds", type=int, default=DEFAULTS["seeds"], help="independent runs per cell")
    p.add_argument("--steps", type=int, default=DEFAULTS["steps"], help="training steps (every method the same)")
    p.add_argument("--seed", type=int, default=DEFAULTS["seed"], help="seed of the first run")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="parallel processes")
    p.add_argument("--out", default="results/rivals", help="output folder for rivals_<hash>.json/.csv/.md")
    p.add_argument("--store", default=DEFAULT_STORE, help="result store (one record per run)")
    p.add_argument("--readme", default=None, help=f"also write the table into this file between {MARKERS[0]} and "
                   f"{MARKERS[1]}")  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="print only the table")
    return p


def parse(args: argparse.Namespace) -> tuple[SimConfig, list[str], list[str], list[float]]:
    methods = parse_list("--methods", args.methods, METHODS)
    models = parse_list("--models", args.models, MODELS, all_word=None)
    noise = parse_list("--noise", args.noise, convert=float, what="rates")
    for e in noise:
        check_real("--noise", e, low=0.0, high=1.0, high_inclusive=False)
    check_int("--seeds", args.seeds, low=1)
    check_int("--steps", args.steps, low=1)
    check_int("--seed", args.seed, low=0)
    check_int("--workers", args.workers, low=1)
    return SimConfig(steps=args.steps, seeds=args.seeds, seed=args.seed), methods, models, noise


def row_command(args: argparse.Namespace, method: str) -> str:
    """The command that recomputes one method's row (same run keys, so the same numbers)."""
    parts = ["python -m collapse.rivals", f"--methods {method}"]
    for flag in ("models", "noise", "seeds", "steps", "seed"):
        value = getattr(args, flag)
        if str(value) != str(DEFAULTS[flag]):
            parts.append(f"--{flag} {value}")
    return " ".join(parts)


def flat_rows(runs: Sequence[SimRun], results: Sequence[dict]) -> list[dict]:
    rows = []
    for run, res in zip(runs, results):
        row = {"method": method_of(run), "loss": run.loss, "positive": run.positive, "negative": run.negative,
               "model": run.config.model, "noise": run.config.noise, "seeds": run.config.seeds,
               "steps": run.config.steps, "cell": method_cell(res), "key": run.key}  # fmt: skip
        row |= {k: v for k, v in res.items() if isinstance(v, (int, float))}
        row["outcomes"] = " ".join(seed_outcome(r).replace(" ", "_") for r in res["per_seed"])
        rows.append(row)
    return rows


def markdown_table(args, runs, results, methods, models, noise) -> str:
    by = {(method_of(r), r.config.model, r.config.noise): res for r, res in zip(runs, results)}
    cols = [(m, e) for m in models for e in noise]
    head = ["method", "role"] + [f"{m} ε={e:g}" for m, e in cols] + ["verdict", "command (whole row)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in methods:
        cells = [by[(name, m, e)] for m, e in cols]
        noisy = [(e, by[(name, m, e)]) for m, e in cols]
        meth = METHODS[name]
        lines.append("| " + " | ".join(
            [f"**{name}**: {meth.label}", meth.role] + [method_cell(c) for c in cells]
            + [method_verdict(noisy), f"`{row_command(args, name)}`"]
        ) + " |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config, methods, models, noise = parse(args)
        out = check_writable_dir(args.out, what="--out")
        readme = check_marked_file(args.readme, MARKERS) if args.readme else None
        store = ResultStore(args.store).prepare()
    except (ValueError, TypeError) as exc:
        parser.fail(exc)
    start = time.perf_counter()
    runs = grid_runs(config, methods, models, noise)
    if not args.quiet:
        print(f"{len(methods)} methods x {len(models)} models x {len(noise)} noise levels x {config.seeds} seeds, "
              f"{config.steps} steps, batch {config.P}x{config.samples_per_class}", flush=True)  # fmt: skip
    ex = execute(runs, store, backend="processes" if args.workers > 1 else "inline", workers=args.workers,
                 progress=not args.quiet, desc="rivals")  # fmt: skip
    if not ex.ok:
        for e in ex.errors:
            print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 1
    results = ex.results()
    table = markdown_table(args, runs, results, methods, models, noise)
    print(table)
    stem = hashed_stem("rivals", [r.key for r in runs])
    rows = flat_rows(runs, results)
    payload = {
        "command": "python -m collapse.rivals " + " ".join(argv if argv is not None else sys.argv[1:]),
        "config": config.to_dict(), "methods": methods, "models": models, "noise": noise, "store": str(store.root),
        "results": [{**row, "per_seed": res["per_seed"]} for row, res in zip(rows, results)],
    }  # fmt: skip
    written = [write_json(out / f"{stem}.json", payload), write_csv(out / f"{stem}.csv", rows),
               write_text(out / f"{stem}.md", table + "\n")]  # fmt: skip
    if readme is not None:
        text = readme.read_text()
        a, b = text.index(MARKERS[0]) + len(MARKERS[0]), text.index(MARKERS[1])
        written.append(write_text(readme, text[:a] + "\n" + table + "\n" + text[b:]))
    if not args.quiet:
        print(f"{ex.computed} trained, {ex.skipped} read from {store.root}; wrote "
              f"{', '.join(str(p) for p in written)} in {time.perf_counter() - start:.1f} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
