"""``python -m collapse.simulate``: see class collapse happen, for each loss and each positive rule.

Trains every (loss, positive rule) pair on the same multi-mode data with the same label noise and negative
rule, prints one row per pair with its collapse measures and a verdict, and writes JSON, CSV and a PNG of the
embeddings (colour = class, marker = mode) under ``--out``, named ``simulate_<hash>`` after the runs behind them
(so another configuration never replaces them). Each pair is a :class:`~collapse.runs.SimRun` computed by
:func:`collapse.runs.execute` into the result store (``--store``); a rerun reads the finished records instead of
training again.

Example::

    python -m collapse.simulate --noise 0.1
    python -m collapse.simulate --noise 0 --loss triplet,contrastive --positive random,easy,hard
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from collapse._validation import check_choice, check_int, check_real
from collapse.cli import OneLineParser, parse_list
from collapse.data import LAYOUTS, NOISE_MODELS
from collapse.experiment import STATE_KEYS, SimConfig, make_data
from collapse.io import write_csv, write_json
from collapse.losses import LOSSES, ProxyLoss
from collapse.optimize import MODELS
from collapse.runs import DEFAULT_STORE, ResultStore, SimRun, check_writable_dir, execute, hashed_stem, sim_row
from collapse.sampling import NEGATIVE_RULES, POSITIVE_RULES

DEFAULT_LOSSES = "triplet,contrastive,margin,multisimilarity,nca"
TABLE_COLUMNS = (
    ("loss", "loss", "{:<15}"),
    ("positive", "pos", "{:<6}"),
    ("merges_cell", "merges", "{:>7}"),
    ("submode_separation_over_margin", "sep/mrg", "{:>7.2f}"),
    ("submode_separation_over_spacing", "sep/cls", "{:>7.2f}"),
    ("radius_over_margin", "R/mrg", "{:>6.2g}"),
    ("loss_over_margin", "L/mrg", "{:>5.2f}"),
    ("class_map_at_r", "MAP@R", "{:>5.2f}"),
    ("class_map_at_r_null", "null", "{:>5.2f}"),
    ("fine_precision_at_1", "fineP1", "{:>6.2f}"),
    ("states_cell", "C/P/K/Ds/Dn", "{:>11}"),
    ("verdict", "verdict", "{:<10}"),
)
STATE_CODES = "C/P/K/Ds/Dn"
LEGEND = (
    "merges = merged mode pairs per seed (of sum_c (K_c - 1)), merged when the noise-corrected centroid distance "
    "< max(margin/2, sampling-noise floor); sep/mrg, sep/cls = sub-mode separation over the margin and over the "
    "distance to the nearest other class; R/mrg = global radius / margin; L/mrg = final loss / margin (1 = the "
    "trivial solution's value); MAP@R = class MAP@R at the margin's resolution, null = the same with modes dealt to "
    "classes at random; fineP1 = fine-label P@1 within classes at that resolution (chance {chance:.2f}).\n"
    "verdict per seed (collapse.metrics.collapse_verdict, docs/measures.md): degenerate if R < margin/2 (Ds: whole "
    "space shrunk) or MAP@R does not beat null by 3 sd (Dn: no class structure); else collapsed (every merge "
    "made), partly collapsed (some) or modes kept (none). C/P/K/Ds/Dn = seeds in each state; the row's verdict is the "
    "state of most seeds. margin = the loss's margin (contrastive: neg - pos margin; NCA: sqrt(2 temperature); "
    "multi-similarity: sqrt(2/beta))."
)


def _batch(value: str) -> tuple[int | None, int]:
    """``M`` or ``PxM``."""
    try:
        if "x" in value:
            p, m = value.lower().split("x")
            return int(p), int(m)
        return None, int(value)
    except ValueError:
        raise ValueError(f"--batch must be M or PxM with integers (e.g. 12 or 4x12), got {value!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="python -m collapse.simulate",
        description="Train each loss with each positive rule on multi-mode classes under label noise and report "
        "whether the classes collapsed (all modes of a class on one point) or kept their modes.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--noise", type=float, default=0.1, help="label-noise level eps, in [0, 1)")
    p.add_argument("--noise-model", default="symmetric", help=f"one of {', '.join(NOISE_MODELS)}")
    p.add_argument("--resample", default="once", help="'once': a noisy data set; 'step': labels redrawn every step")
    p.add_argument("--loss", default=DEFAULT_LOSSES,
                   help=f"comma-separated, or 'all': {', '.join(LOSSES)} (proxy losses run once, with positive and "
                   "negative 'all')")
    p.add_argument("--positive", default="random,easy", help=f"comma-separated, or 'all': {', '.join(POSITIVE_RULES)}")
    p.add_argument(
        "--negative", default="hard",
        help=f"one of {', '.join(NEGATIVE_RULES)}, or 'default' for each loss's published rule; "
        "the same negative rule is used with every positive rule",
    )
    p.add_argument("--classes", type=int, default=4, help="number of classes C (>= 2)")
    p.add_argument("--modes", default="3", help="modes per class K (>= 1), one number or one per class (e.g. 2,3,4,2)")
    p.add_argument("--dim", type=int, default=8, help="embedding dimension d (embeddings live on the unit sphere)")
    p.add_argument("--input-dim", type=int, default=2, help="input dimension of the Gaussian modes (for --model mlp)")
    p.add_argument("--layout", default="random", help=f"layout of the mode centres: {', '.join(LAYOUTS)}")
    p.add_argument("--samples-per-mode", type=int, default=20, help="samples drawn from each mode")
    p.add_argument("--model", default="tied", help="tied (one vector per mode), sample (one per sample) or mlp")
    p.add_argument("--steps", type=int, default=500, help="training steps")
    p.add_argument("--batch", default="12", help="samples per class M, or PxM (P classes per batch; default P = C)")
    p.add_argument("--lr", type=float, default=0.05, help="Adam learning rate (cosine-decayed to 0)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first run")
    p.add_argument("--seeds", type=int, default=3, help="independent runs per configuration, trained as one batch")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="parallel processes")
    p.add_argument("--out", default="results/simulate",
                   help="output folder for simulate_<hash>.json, .csv and .png (hash of the runs)")
    p.add_argument("--store", default=DEFAULT_STORE, help="result store: one record per (configuration, loss, rule)")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG")
    p.add_argument("--quiet", action="store_true", help="print only the table")
    return p


def parse_config(args: argparse.Namespace) -> tuple[SimConfig, list[str], list[str], str | None]:
    """Validate every flag; raise ``ValueError`` with one line naming the flag and what it allows."""
    check_real("--noise", args.noise, low=0.0, high=1.0, high_inclusive=False)
    check_choice("--noise-model", args.noise_model, NOISE_MODELS)
    check_choice("--resample", args.resample, ("once", "step"))
    losses = parse_list("--loss", args.loss, LOSSES)
    positives = parse_list("--positive", args.positive, POSITIVE_RULES)
    negative = None if args.negative == "default" else check_choice("--negative", args.negative, NEGATIVE_RULES)
    classes = check_int("--classes", args.classes, low=2)
    try:
        modes = tuple(int(k) for k in args.modes.split(","))
    except ValueError:
        raise ValueError(f"--modes must be integers >= 1 (one, or one per class), got {args.modes!r}") from None
    for k in modes:
        check_int("--modes", k, low=1)
    if len(modes) not in (1, classes):
        raise ValueError(f"--modes must give one count or {classes} counts (one per class), got {len(modes)}")
    check_int("--dim", args.dim, low=1)
    check_int("--input-dim", args.input_dim, low=1)
    check_choice("--layout", args.layout, LAYOUTS)
    check_int("--samples-per-mode", args.samples_per_mode, low=1)
    check_choice("--model", args.model, MODELS)
    check_int("--steps", args.steps, low=1)
    P, M = _batch(args.batch)
    check_int("--batch (samples per class M)", M, low=2)
    if P is not None:
        check_int("--batch (classes per batch P)", P, low=2, high=classes)
    check_real("--lr", args.lr, low=0.0, low_inclusive=False)
    check_int("--seed", args.seed, low=0)
    check_int("--seeds", args.seeds, low=1)
    check_int("--workers", args.workers, low=1)
    config = SimConfig(
        classes=classes, modes=modes[0] if len(modes) == 1 else modes, dim=args.dim, input_dim=args.input_dim,
        layout=args.layout, samples_per_mode=args.samples_per_mode, noise=args.noise, noise_model=args.noise_model,
        resample=args.resample, model=args.model, steps=args.steps, classes_per_batch=P, samples_per_class=M,
        lr=args.lr, seed=args.seed, seeds=args.seeds,
    )
    return config, losses, positives, negative


def is_proxy(loss: str) -> bool:
    """Whether the loss compares samples with class proxies (so it takes no positive or negative rule)."""
    return issubclass(LOSSES[loss][0], ProxyLoss)


def simulation_runs(config: SimConfig, losses: Sequence[str], positives: Sequence[str],
                    negative: str | None) -> list[SimRun]:
    """One run per (loss, positive rule), keeping the loss history and seed 0's embeddings for the JSON and PNG.
    A proxy loss has no sampling rule to vary: it runs once, with positive and negative ``all`` (its own)."""
    runs = []
    for loss in losses:
        rules = [("all", "all")] if is_proxy(loss) else [(pos, negative) for pos in positives]
        runs += [SimRun(config, loss, pos, neg, measures="full", trace=True) for pos, neg in rules]
    return runs


def proxy_note(losses: Sequence[str], positives: Sequence[str], negative: str | None) -> str | None:
    """The one-line note printed when proxy losses are given rules they do not take."""
    proxies = [loss for loss in losses if is_proxy(loss)]
    if not proxies or (list(positives) == ["all"] and negative in (None, "all")):
        return None
    return (f"note: {', '.join(proxies)} compare{'s' if len(proxies) == 1 else ''} samples with class proxies and "
            f"take{'s' if len(proxies) == 1 else ''} no positive/negative rule: each is trained once, with positive "
            "and negative 'all'.")


def table_rows(runs: Sequence[SimRun], results: Sequence[dict]) -> list[dict]:
    """The table's rows: each run's configuration, summary and verdict (:func:`collapse.runs.sim_row`), with the
    ``merges_cell`` and ``states_cell`` (seeds per state, in :data:`STATE_CODES` order) the table prints."""
    rows = []
    for run, res in zip(runs, results):
        row = sim_row(run, res)
        seeds = run.config.seeds
        row["merges_cell"] = f"{row['merges']:.1f}/{row['merges_possible']:.0f}"
        row["states_cell"] = "/".join(f"{round(row[k] * seeds):d}" for k in STATE_KEYS.values())
        rows.append(row)
    return rows


def ignored_input_note(model: str, argv: Sequence[str]) -> str | None:
    """The one-line note printed when a flag that shapes the inputs is given to a model that never sees them."""
    given = [f for f in ("--layout", "--input-dim") if any(a == f or a.startswith(f + "=") for a in argv)]
    if model == "mlp" or not given:
        return None
    return (f"note: {' and '.join(given)} change nothing with --model {model}: the {model} model never sees the "
            "inputs, so the layout only matters for input-driven models (--model mlp).")


def format_table(rows: list[dict]) -> str:
    head = " ".join(_pad(h, fmt) for _, h, fmt in TABLE_COLUMNS)
    lines = [head, "-" * len(head)]
    for r in rows:
        cells = []
        for key, _, fmt in TABLE_COLUMNS:
            v = r.get(key, float("nan"))
            cells.append(fmt.format(v) if not (isinstance(v, float) and np.isnan(v)) else _pad("nan", fmt))
        lines.append(" ".join(cells))
    return "\n".join(lines)


def _pad(text: str, fmt: str) -> str:
    width = int(re.search(r"[<>](\d+)", fmt).group(1))
    return text.ljust(width) if "<" in fmt else text.rjust(width)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config, losses, positives, negative = parse_config(args)
        # Where results go is checked before any compute.
        check_writable_dir(args.store, what="--store", create=False)  # both checked before either is created
        out = check_writable_dir(args.out, what="--out")
        store = ResultStore(args.store).prepare()
    except (ValueError, TypeError) as exc:
        parser.fail(exc)
    start = time.perf_counter()
    runs = simulation_runs(config, losses, positives, negative)
    notes = [ignored_input_note(config.model, argv if argv is not None else sys.argv[1:]),
             proxy_note(losses, positives, negative)]
    for note in filter(None, notes):
        print(note, flush=True)
    if not args.quiet:
        print(
            f"{len(runs)} configurations x {config.seeds} seeds: C={config.classes} classes, modes={config.modes}, "
            f"d={config.dim}, noise={config.noise} ({config.noise_model}), model={config.model}, "
            f"negatives={negative or 'per-loss default'}, {config.steps} steps, "
            f"batch {config.P}x{config.samples_per_class}",
            flush=True,
        )
    workers = min(args.workers, len(runs))
    ex = execute(runs, store, backend="processes" if workers > 1 else "inline", workers=workers,
                 progress=not args.quiet, desc="simulate")
    if not ex.ok:
        for e in ex.errors:
            print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 1
    results = ex.results()
    rows = table_rows(runs, results)
    print(format_table(rows))
    print(LEGEND.format(chance=float(np.mean([r["fine_chance"] for r in rows]))))
    sys.stdout.flush()

    stem = hashed_stem("simulate", [r.key for r in runs])
    payload = {
        "command": "python -m collapse.simulate " + " ".join(argv if argv is not None else sys.argv[1:]),
        "config": config.to_dict(),
        "negative": negative or "default",
        "verdict_rule": "collapse.metrics.collapse_verdict per seed, majority over seeds (docs/measures.md)",
        "store": str(store.root),
        "keys": [r.key for r in runs],
        "results": [
            {**row, "per_seed": res["per_seed"], "loss_steps": res["loss_steps"], "loss_history": res["loss_history"]}
            for row, res in zip(rows, results)
        ],
    }
    written = [write_json(out / f"{stem}.json", payload), write_csv(out / f"{stem}.csv", rows)]
    if not args.no_plot:
        from collapse.plotting import embedding_panels

        data = make_data(config)
        panels = [(f"{row['loss']} / {row['positive']} positive: {row['verdict']}", np.asarray(res["embeddings"]))
                  for row, res in zip(rows, results)]
        written.append(
            Path(
                embedding_panels(
                    panels, data.y, data.modes, data.mode_class, str(out / f"{stem}.png"),
                    ncols=len(positives) if len(positives) > 1 else 2,
                    suptitle=f"Embeddings after training (seed {config.seed}, PCA of d={config.dim}), "
                    f"label noise {config.noise:g}",
                )
            )
        )
    if not args.quiet:
        done = f"{ex.computed} trained, {ex.skipped} read from the store {store.root}"
        print(f"{done}; wrote {', '.join(str(p) for p in written)} in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
