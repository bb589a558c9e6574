"""``python -m collapse.sweep``: a grid of simulations, in parallel local processes or on a Dask cluster.

Example::

    python -m collapse.sweep                                    # the phase-diagram grids (eps x M, eps x K)
    python -m collapse.sweep --grid noise=0,0.05,0.1,0.2 samples_per_class=4,8,16 \\
        --loss triplet,margin --positive random,easy --out results/sweep
    python -m collapse.sweep --grid-file grid.json --scheduler tcp://host:8786

Model of the work
-----------------
A *configuration* is one point of the grid: a :class:`~collapse.runs.SimRun` (a
:class:`~collapse.experiment.SimConfig` with its ``seed`` and ``seeds``, a loss, a positive rule, a negative rule
and the set of measures). The sweep only builds these runs and reads their records: :func:`collapse.runs.execute`
computes them and keeps one record per run key in the result store (``--store``, default ``results/store``,
shared with ``collapse.simulate``, the phase diagrams, the claims and the figures). At the end every record is
gathered into ``<out>/sweep_<hash>.csv`` and ``.json``, ``<hash>`` naming the set of runs.

Configurations of one grid that differ only in ``noise`` form one block and train as the groups of one tensor
program (:func:`collapse.runs.measure_sim_block`), several times faster than one program per configuration. They
share one seed stream, so the noise levels trained together (``block_noise``) are part of each run's key: a
block is always trained whole, and the numbers never depend on which records a resumed sweep still had to compute.

Failures
--------
* Resume: a run with a finished record is skipped; a block with nothing left to do is not submitted. Killed at
  any moment (SIGKILL included), a sweep leaves only whole records, and a rerun computes only what is missing.
* A block that raises is recorded as failed (one line per run) and the sweep goes on; failed runs are retried by
  the next sweep.
* On Dask, a worker that dies loses only its own work: the scheduler reschedules the block it was running on
  another worker, up to ``--allowed-failures`` times (then the block's runs are recorded as failed). Blocks are
  pure functions of their runs and only this process writes records, so a retried or duplicated block is harmless.

Why Dask distributed and not Ray
--------------------------------
``dask[distributed]`` is pure Python (a few MB over what is installed, no compiled core or object store to
fit to the machine), its :class:`~distributed.LocalCluster` starts real worker processes in seconds for tests
and for a laptop, and the same code attaches to an existing cluster with ``--scheduler tcp://host:8786``
(workers started with ``dask worker tcp://host:8786`` where ``collapse`` is installed). Its scheduler already
does what a sweep needs: rescheduling the tasks of a lost worker, with a bound on how often a task may take a
worker down (``allowed-failures``). Ray would add a large binary wheel and its own runtime for no feature used here.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import product
from pathlib import Path

from collapse._validation import check_choice, check_int
from collapse.cli import OneLineParser, parse_list
from collapse.experiment import MEASURES, VERDICT_RULE, SimConfig
from collapse.io import write_csv, write_json
from collapse.losses import LOSSES
from collapse.phase import DEFAULT_EPS, DEFAULT_K, DEFAULT_LOSSES, DEFAULT_M, DEFAULT_SEEDS, PHASE_BASE
from collapse.runs import (
    DEFAULT_STORE,
    ResultStore,
    SimRun,
    check_writable_dir,
    execute,
    hashed_stem,
    make_backend,
    make_blocks,
    sim_row,
)
from collapse.runs.backends import check_scheduler_address
from collapse.sampling import NEGATIVE_RULES, POSITIVE_RULES

__all__ = [
    "DEFAULT_STORE",
    "GRID_FIELDS",
    "SweepSummary",
    "default_grids",
    "expand_grid",
    "main",
    "parse_grid_args",
    "run_sweep",
]

CONFIG_FIELDS = tuple(f.name for f in dataclasses.fields(SimConfig))
RULE_FIELDS = ("loss", "positive", "negative")
GRID_FIELDS = CONFIG_FIELDS + RULE_FIELDS
_INT_FIELDS = {"classes", "dim", "input_dim", "samples_per_mode", "steps", "samples_per_class", "seed", "seeds",
               "data_seed"}
_REAL_FIELDS = {"spread", "separation", "noise", "lr"}


# ----------------------------------------------------------------------------------------------------------------
# Grids


def default_grids() -> list[dict[str, list]]:
    """The phase-diagram grids of :mod:`collapse.phase`: eps x M (K fixed) and eps x K (M fixed), each with
    the default losses, random and easy positives, hard negatives and :data:`~collapse.phase.DEFAULT_SEEDS`."""
    common = {"noise": list(DEFAULT_EPS), "seeds": [DEFAULT_SEEDS], "loss": list(DEFAULT_LOSSES),
              "positive": ["random", "easy"], "negative": ["hard"]}
    return [{**common, "samples_per_class": list(DEFAULT_M)}, {**common, "modes": list(DEFAULT_K)}]


def expand_grid(grids: dict | Sequence[dict], base: SimConfig = PHASE_BASE, *, measures: str = "full") -> list[SimRun]:
    """Every run of the union of ``grids`` (each a cartesian product field -> values), in order, without
    duplicates. Unset fields come from ``base``; ``loss`` defaults to triplet, ``positive`` to random and easy,
    ``negative`` to hard (``"default"`` or None: the loss's published rule). The noise levels of a grid train
    together (``block_noise``).

    Raises a one-line ``ValueError``/``TypeError`` naming the field for an unknown field or a bad value.
    """
    check_choice("measures", measures, MEASURES)
    grids = [grids] if isinstance(grids, dict) else list(grids)
    if not grids:
        raise ValueError("a sweep needs at least one grid, got none")
    runs: dict[str, SimRun] = {}
    for grid in grids:
        if not isinstance(grid, dict):
            raise TypeError(f"a grid must map field names to values, got {type(grid).__name__}")
        spec = {"loss": ["triplet"], "positive": ["random", "easy"], "negative": ["hard"]}
        for field, values in grid.items():
            spec[_check_field(field)] = _check_values(field, values, base)
        noise = tuple(float(e) for e in spec.pop("noise", [base.noise]))
        fields = list(spec)
        for combo in product(*(spec[f] for f in fields)):
            values = dict(zip(fields, combo))
            rules = {f: values.pop(f) for f in RULE_FIELDS}
            for e in noise:
                try:
                    config = dataclasses.replace(base, **values, noise=e)
                except (TypeError, ValueError) as exc:
                    raise type(exc)(f"grid point {values}: {exc}") from None
                run = SimRun(config, rules["loss"], rules["positive"], rules["negative"], block_noise=noise,
                             measures=measures)
                runs.setdefault(run.key, run)
    return list(runs.values())


def parse_grid_args(items: Sequence[str]) -> dict[str, list]:
    """``["noise=0,0.1", "modes=3,2:3:4:2"]`` -> ``{"noise": [0.0, 0.1], "modes": [3, (2, 3, 4, 2)]}``.

    Values are converted by the type of the SimConfig field (``none`` for ``classes_per_batch``; a
    ``:``-separated list of modes per class); every value is validated by :func:`expand_grid`. An empty list
    (``noise=`` or ``noise=,``) is refused.
    """
    grid: dict[str, list] = {}
    for item in items:
        field, sep, text = item.partition("=")
        field = field.strip()
        values = [v.strip() for v in text.split(",") if v.strip()]
        if not sep or not values:
            raise ValueError(f"--grid entries look like field=v1,v2,... with at least one value; got {item!r}")
        _check_field(field)
        if field in grid:
            raise ValueError(f"--grid field {field!r} is given twice")
        grid[field] = [_convert(field, v) for v in values]
    return grid


def _check_field(field: object) -> str:
    if field not in GRID_FIELDS:
        raise ValueError(f"unknown grid field {field!r}; allowed: {', '.join(GRID_FIELDS)}")
    return str(field)


def _convert(field: str, text: str):
    """One CLI value of ``field`` as the type the SimConfig field wants (validated later)."""
    try:
        if field in _INT_FIELDS:
            return int(text)
        if field in _REAL_FIELDS:
            return float(text)
        if field == "classes_per_batch":
            return None if text.lower() == "none" else int(text)
        if field == "modes":
            return tuple(int(k) for k in text.split(":")) if ":" in text else int(text)
    except ValueError:
        kind = "an integer" if field != "modes" and field not in _REAL_FIELDS else (
            "a number" if field in _REAL_FIELDS else "an integer or per-class integers a:b:c")
        raise ValueError(f"grid field {field} must be {kind}, got {text!r}") from None
    return text


def _check_values(field: str, values: object, base: SimConfig) -> list:
    """A non-empty list of distinct values, each valid for ``field`` on its own."""
    values = list(values) if isinstance(values, (list, tuple)) else [values]
    if field == "modes":  # JSON gives per-class modes as lists
        values = [tuple(v) if isinstance(v, list) else v for v in values]
    if not values:
        raise ValueError(f"grid field {field} needs at least one value, got none")
    if len({json.dumps(v) for v in values}) != len(values):
        raise ValueError(f"grid field {field} has repeated values: {values}")
    for v in values:
        if field == "loss":
            check_choice("grid field loss", v, LOSSES)
        elif field == "positive":
            check_choice("grid field positive", v, POSITIVE_RULES)
        elif field == "negative":
            if v not in (None, "default"):
                check_choice("grid field negative", v, (*NEGATIVE_RULES, "default"))
        else:
            try:
                dataclasses.replace(base, **{field: v})
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"grid field {field}: {exc}") from None
    return values


# ----------------------------------------------------------------------------------------------------------------
# Work


@dataclass
class SweepSummary:
    """What a sweep did: configurations in the grid, already done, submitted blocks, and the outcome."""

    configurations: int
    skipped: int
    tasks: int
    ok: int
    failed: int
    seconds: float
    rows: list[dict]
    paths: list[Path]


def run_sweep(
    runs: Sequence[SimRun],
    out: str | Path,
    *,
    store: str | Path | ResultStore = DEFAULT_STORE,
    backend: str = "processes",
    client=None,
    scheduler: str | None = None,
    workers: int = 2,
    allowed_failures: int = 3,
    progress: bool = True,
) -> SweepSummary:
    """Compute every run of ``runs`` without a finished record in ``store``, then gather all records.

    Parameters
    ----------
    runs : sequence of SimRun
        From :func:`expand_grid`.
    out : path
        Folder for ``sweep_<hash>.csv`` and ``sweep_<hash>.json`` (checked writable before any compute).
    store : path or ResultStore
        The result store (one record per run).
    backend : {"processes", "inline", "dask"}
        Where blocks are computed; ``scheduler`` (an address such as ``tcp://host:8786``) or ``client`` use an
        existing Dask cluster; ``"dask"`` without them starts a local one of ``workers`` processes.
    allowed_failures : int
        For a new local Dask cluster: how many workers a block may take down before it is given up.
    """
    out = check_writable_dir(out, what="sweep folder")
    store = (store if isinstance(store, ResultStore) else ResultStore(store)).prepare()
    back = make_backend(backend, workers=workers, address=scheduler, client=client, allowed_failures=allowed_failures)
    runs = list(runs)
    ex = execute(runs, store, backend=back, progress=progress, desc="sweep")
    rows, records = [], []
    for run, rec in zip(runs, ex.records()):
        if rec is None:  # only when writing failed; keep the configuration visible in the table
            head = {"key": run.key, "status": "missing"}
            rows.append({**head, **_flat(run)})
            records.append({**head, **_flat(run), "per_seed": None})
        elif rec.ok:
            row = {"key": run.key, "status": "ok", **_flat(run), **sim_row(run, rec.result)}
            rows.append(row)
            records.append({**row, "per_seed": rec.result["per_seed"], "block_noise": list(run.block_noise)})
        else:
            row = {"key": run.key, "status": "failed", **_flat(run), "error": rec.error}
            rows.append(row)
            records.append(row)
    stem = hashed_stem("sweep", [r.key for r in runs])
    paths = [
        write_csv(out / f"{stem}.csv", rows),
        write_json(out / f"{stem}.json", {"measures": sorted({r.measures for r in runs}),
                                          "verdict_rule": VERDICT_RULE,
                                          "store": str(store.root),
                                          "configurations": len(runs), "results": records}),
    ]
    ok = sum(r["status"] == "ok" for r in rows)
    return SweepSummary(len(runs), ex.skipped, ex.blocks, ok, len(rows) - ok, ex.seconds, rows, paths)


def _flat(run: SimRun) -> dict:
    """Configuration and rules as one flat row (``modes`` as one number, or ``2:3:4`` per class)."""
    d = run.config.to_dict()
    d["modes"] = run.config.modes if isinstance(run.config.modes, int) else ":".join(map(str, d["modes"]))
    return {**d, "loss": run.loss, "positive": run.positive, "negative": run.negative}


# ----------------------------------------------------------------------------------------------------------------
# CLI


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="python -m collapse.sweep",
        description="Run a grid of class-collapse simulations (each configuration = SimConfig x loss x positive "
        "rule x negative rule, its seeds trained together) in local processes or on a Dask cluster. One record per "
        "configuration in the result store (a rerun skips those already done), gathered into "
        "OUT/sweep_<hash>.csv and .json. Without --grid/--grid-file: the phase-diagram grids eps x M and eps x K.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--grid", nargs="+", action="extend", metavar="FIELD=V1,V2", default=[],
                   help=f"grid fields and their values (unset fields keep collapse.simulate's defaults); fields: "
                   f"{', '.join(GRID_FIELDS)}")
    p.add_argument("--grid-file", help="JSON file: one grid (field -> list of values) or a list of grids (union); "
                   "--grid entries are added to every grid of the file")
    p.add_argument("--loss", help=f"comma-separated losses (shorthand for --grid loss=...): {', '.join(LOSSES)}; "
                   f"unset: triplet with --grid, {','.join(DEFAULT_LOSSES)} for the phase grids")
    p.add_argument("--positive",
                   help=f"comma-separated positive rules: {', '.join(POSITIVE_RULES)}; unset: random,easy")
    p.add_argument("--negative", help=f"comma-separated negative rules: {', '.join(NEGATIVE_RULES)}, or 'default' "
                   "(each loss's published rule); unset: hard")
    p.add_argument("--out", default="results/sweep", help="folder for the gathered sweep_<hash>.csv/.json")
    p.add_argument("--store", default=DEFAULT_STORE, help="result store: one record per configuration")
    p.add_argument("--backend", default="dask", help="processes (local pool), dask (a local cluster, or "
                   "--scheduler) or inline")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="local worker processes")
    p.add_argument("--scheduler", help="address of an existing Dask scheduler, e.g. tcp://host:8786")
    p.add_argument("--measures", default="full", help=f"one of {', '.join(MEASURES)}")
    p.add_argument("--allowed-failures", type=int, default=3,
                   help="worker deaths a block may cause before its configurations are recorded as failed (dask)")
    p.add_argument("--dry-run", action="store_true", help="print the number of configurations and blocks, run nothing")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def grids_from_args(args: argparse.Namespace) -> list[dict]:
    """The grids the flags describe (one-line ``ValueError`` for a bad one)."""
    extra = parse_grid_args(args.grid)
    for flag in RULE_FIELDS:
        value = getattr(args, flag)
        if value is None:
            continue
        if flag in extra:
            raise ValueError(f"--{flag} and --grid {flag}=... both given; use one")
        extra[flag] = parse_list(f"--{flag}", value)
    if args.grid_file:
        try:
            loaded = json.loads(Path(args.grid_file).read_text())
        except OSError as exc:
            raise ValueError(f"--grid-file: cannot read {args.grid_file}: {exc.strerror}") from None
        except ValueError as exc:
            raise ValueError(f"--grid-file: {args.grid_file} is not valid JSON ({exc})") from None
        grids = [loaded] if isinstance(loaded, dict) else loaded
        if not isinstance(grids, list) or not grids or not all(isinstance(g, dict) for g in grids):
            raise ValueError("--grid-file must hold a JSON object (field -> values) or a non-empty list of them")
        return [{**g, **extra} for g in grids]
    if args.grid:
        return [extra]
    # The phase-diagram grids, with the rule flags applied on top.
    return [{**g, **extra} for g in default_grids()]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_int("--workers", args.workers, low=1)
        check_int("--allowed-failures", args.allowed_failures, low=0)
        check_choice("--measures", args.measures, MEASURES)
        check_choice("--backend", args.backend, ("processes", "dask", "inline"))
        if args.scheduler is not None:
            check_scheduler_address(args.scheduler, "--scheduler")
        runs = expand_grid(grids_from_args(args), measures=args.measures)
        if not args.dry_run:  # where results go is checked before any compute
            check_writable_dir(args.store, what="--store", create=False)  # both checked before either is created
            check_writable_dir(args.out, what="--out")
            ResultStore(args.store).prepare()
    except (ValueError, TypeError) as exc:
        parser.fail(exc)
    # From here on the store exists: Ctrl-C anywhere (not only inside the executor) ends with the resume message.
    try:
        n_blocks = len(make_blocks(runs))
        n_seeds = sum(r.config.seeds for r in runs)
        print(f"{len(runs)} configurations ({n_seeds} runs) in {n_blocks} blocks -> {args.out} (store {args.store})",
              flush=True)  # fmt: skip
        if args.dry_run:
            return 0
        summary = run_sweep(
            runs, args.out, store=args.store, backend=args.backend, scheduler=args.scheduler, workers=args.workers,
            allowed_failures=args.allowed_failures, progress=not args.no_progress,
        )
    except KeyboardInterrupt:
        # Each finished configuration is already a record in the store; a rerun computes only the others.
        print(f"\n{parser.prog}: interrupted; finished configurations are kept in the store {args.store}; run the "
              "same command again to continue (they are skipped)", file=sys.stderr)
        return 130
    except ConnectionError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 1
    print(
        f"{summary.ok} ok, {summary.failed} failed, {summary.skipped} already done; {summary.tasks} blocks in "
        f"{summary.seconds:.1f} s; wrote {', '.join(map(str, summary.paths))}"
    )
    for r in summary.rows:
        if r["status"] != "ok":
            print(f"failed {r['key']}: {r.get('error', r['status'])}", file=sys.stderr)
    return 0 if summary.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
