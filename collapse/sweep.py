"""``python -m collapse.sweep``: a grid of simulations, in parallel local processes or on a Dask cluster.

Example::

    python -m collapse.sweep                                    # the phase-diagram grids (eps x M, eps x K)
    python -m collapse.sweep --grid noise=0,0.05,0.1,0.2 samples_per_class=4,8,16 \\
        --loss triplet,margin --positive random,easy --out results/sweep
    python -m collapse.sweep --grid-file grid.json --scheduler tcp://host:8786

Model of the work
-----------------
A *configuration* is one point of the grid: a :class:`~collapse.experiment.SimConfig` (its ``seed`` and
``seeds`` included) with a loss, a positive rule and a negative rule. Its result, the per-seed collapse measures
and their summary, is written atomically to ``<out>/configs/<key>.json``, where ``key`` is a stable hash of the
configuration (and of the set of measures). At the end every result is merged into ``<out>/sweep.csv`` and
``<out>/sweep.json``.

A *task* (the unit sent to a worker) is a block of configurations that differ only in ``noise``: they train
as the groups of one tensor program (:func:`collapse.phase.train_block`), which is several times faster than
one program per configuration. The result of a configuration therefore depends on the noise levels it was
trained with (they share one seed stream, see :mod:`collapse.phase`); each result file records them in
``block_noise``, and a block is always retrained whole, so the numbers do not depend on which files a resumed
sweep still had to compute.

Failures
--------
* Resume: a configuration whose result file exists and is valid (parses, same key, same configuration,
  ``status == "ok"``) is skipped; a block with nothing left to do is not submitted. Failed results are retried.
* A configuration that raises is recorded as failed (``status == "failed"`` with the error in one line) and
  the sweep goes on: a block that raises is retried one configuration at a time, so only the configurations
  that raise on their own fail.
* A worker that dies loses only its own work: the scheduler reschedules the block it was running on another
  worker, up to ``--allowed-failures`` times (then the block's configurations are recorded as failed). Dask keeps
  results in worker memory until the client fetches them, so a block that had just finished on the dying worker,
  but was not yet fetched, is recomputed too. Tasks are pure functions of their configurations and only this
  process writes result files (as soon as each block arrives), so a retried or duplicated task is harmless and
  every other result stays as it was.

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
import hashlib
import json
import logging
import os
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import product
from pathlib import Path

from tqdm.auto import tqdm

from collapse._validation import check_choice, check_int
from collapse.cli import OneLineParser
from collapse.experiment import COLLAPSE_THRESHOLD, SimConfig
from collapse.io import write_csv, write_json
from collapse.losses import LOSSES, default_negative
from collapse.phase import (
    DEFAULT_EPS,
    DEFAULT_K,
    DEFAULT_LOSSES,
    DEFAULT_M,
    DEFAULT_SEEDS,
    MEASURES,
    PHASE_BASE,
    train_block,
)
from collapse.sampling import NEGATIVE_RULES, POSITIVE_RULES

__all__ = [
    "GRID_FIELDS",
    "SweepPoint",
    "default_grids",
    "expand_grid",
    "load_result",
    "main",
    "make_local_cluster",
    "parse_grid_args",
    "run_block",
    "run_sweep",
]

#: Schema of a result file; part of every key, so that a change of format invalidates old results.
SCHEMA = 1
STATUSES = ("ok", "failed")
CONFIG_FIELDS = tuple(f.name for f in dataclasses.fields(SimConfig))
RULE_FIELDS = ("loss", "positive", "negative")
GRID_FIELDS = CONFIG_FIELDS + RULE_FIELDS
_INT_FIELDS = {"classes", "dim", "input_dim", "samples_per_mode", "steps", "samples_per_class", "seed", "seeds",
               "data_seed"}
_REAL_FIELDS = {"spread", "separation", "noise", "lr"}


@dataclass(frozen=True)
class SweepPoint:
    """One configuration of a sweep. ``negative`` is resolved (a loss's published rule when given as None)."""

    config: SimConfig
    loss: str
    positive: str
    negative: str

    def identity(self, measures: str) -> dict:
        """Everything the result depends on, as JSON-ready data."""
        return {"schema": SCHEMA, "config": self.config.to_dict(), "loss": self.loss, "positive": self.positive,
                "negative": self.negative, "measures": measures}

    def key(self, measures: str) -> str:
        """A stable hash of :meth:`identity`: the same configuration gives the same key in every process."""
        text = json.dumps(self.identity(measures), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    def block_key(self) -> tuple:
        """Configurations with the same block key differ only in noise, and train as one program."""
        d = self.config.to_dict()
        d.pop("noise")
        return (json.dumps(d, sort_keys=True), self.loss, self.positive, self.negative)

    def flat(self) -> dict:
        """Configuration and rules as one flat row (``modes`` as one number, or ``2:3:4`` per class)."""
        d = self.config.to_dict()
        d["modes"] = self.config.modes if isinstance(self.config.modes, int) else ":".join(map(str, d["modes"]))
        return {**d, "loss": self.loss, "positive": self.positive, "negative": self.negative}


# ----------------------------------------------------------------------------------------------------------------
# Grids


def default_grids() -> list[dict[str, list]]:
    """The phase-diagram grids of :mod:`collapse.phase`: eps x M (K fixed) and eps x K (M fixed), each with
    the default losses, random and easy positives, hard negatives and :data:`~collapse.phase.DEFAULT_SEEDS`."""
    common = {"noise": list(DEFAULT_EPS), "seeds": [DEFAULT_SEEDS], "loss": list(DEFAULT_LOSSES),
              "positive": ["random", "easy"], "negative": ["hard"]}
    return [{**common, "samples_per_class": list(DEFAULT_M)}, {**common, "modes": list(DEFAULT_K)}]


def expand_grid(grids: dict | Sequence[dict], base: SimConfig = PHASE_BASE) -> list[SweepPoint]:
    """Every configuration of the union of ``grids`` (each a cartesian product field -> values), in order,
    without duplicates. Unset fields come from ``base``; ``loss`` defaults to triplet, ``positive`` to random and
    easy, ``negative`` to hard (``"default"`` or None: the loss's published rule).

    Raises a one-line ``ValueError``/``TypeError`` naming the field for an unknown field or a bad value.
    """
    grids = [grids] if isinstance(grids, dict) else list(grids)
    if not grids:
        raise ValueError("a sweep needs at least one grid, got none")
    points: dict[tuple, SweepPoint] = {}
    for grid in grids:
        if not isinstance(grid, dict):
            raise TypeError(f"a grid must map field names to values, got {type(grid).__name__}")
        spec = {"loss": ["triplet"], "positive": ["random", "easy"], "negative": ["hard"]}
        for field, values in grid.items():
            spec[_check_field(field)] = _check_values(field, values, base)
        fields = list(spec)
        for combo in product(*(spec[f] for f in fields)):
            values = dict(zip(fields, combo))
            rules = {f: values.pop(f) for f in RULE_FIELDS}
            try:
                config = dataclasses.replace(base, **values)
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"grid point {values}: {exc}") from None
            neg = rules["negative"]
            neg = default_negative(rules["loss"]) if neg in (None, "default") else neg
            point = SweepPoint(config, rules["loss"], rules["positive"], neg)
            points.setdefault((point.key("any"),), point)
    return list(points.values())


def parse_grid_args(items: Sequence[str]) -> dict[str, list]:
    """``["noise=0,0.1", "modes=3,2:3:4:2"]`` -> ``{"noise": [0.0, 0.1], "modes": [3, (2, 3, 4, 2)]}``.

    Values are converted by the type of the SimConfig field (``none`` for ``classes_per_batch``; a
    ``:``-separated list of modes per class); every value is validated by :func:`expand_grid`.
    """
    grid: dict[str, list] = {}
    for item in items:
        field, sep, text = item.partition("=")
        field = field.strip()
        if not sep or not text.strip():
            raise ValueError(f"--grid entries look like field=v1,v2,... ; got {item!r}")
        _check_field(field)
        if field in grid:
            raise ValueError(f"--grid field {field!r} is given twice")
        grid[field] = [_convert(field, v.strip()) for v in text.split(",") if v.strip()]
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


def run_block(points: Sequence[dict], measures: str = "full") -> list[dict]:
    """The task: train the configurations ``points`` (serialised :class:`SweepPoint`, differing only in noise)
    as one program and return one result record per configuration. Pure, so a retry is harmless.

    A block that raises is retried one configuration at a time; a configuration that still raises gets a record
    with ``status="failed"`` and its error.
    """
    import torch
    from threadpoolctl import threadpool_limits

    # One process per core: nested BLAS/OpenMP threads would only oversubscribe the cores.
    torch.set_num_threads(1)
    pts = [_point_from(p) for p in points]
    noise = [p.config.noise for p in pts]
    first = pts[0]
    with threadpool_limits(1):
        try:
            rows = train_block(first.config, first.loss, first.positive, first.negative, noise, measures=measures)
            return [_record(p, measures, row, noise) for p, row in zip(pts, rows)]
        except Exception:  # isolate the configurations that fail on their own
            if len(pts) == 1:
                return [_failed(first, measures, sys.exc_info()[1])]
        records = []
        for p in pts:
            try:
                (row,) = train_block(p.config, p.loss, p.positive, p.negative, [p.config.noise], measures=measures)
                records.append(_record(p, measures, row, [p.config.noise]))
            except Exception as exc:
                records.append(_failed(p, measures, exc))
        return records


def _record(point: SweepPoint, measures: str, row: dict, block_noise: list[float]) -> dict:
    summary = {k: v for k, v in row.items() if k not in ("per_seed",) and k not in point.flat()}
    return {
        "key": point.key(measures),
        "status": "ok",
        "identity": point.identity(measures),
        "row": {**point.flat(), **summary},
        "per_seed": row["per_seed"],
        "block_noise": block_noise,
        "host": os.uname().nodename,
        "pid": os.getpid(),
    }


def _failed(point: SweepPoint, measures: str, exc: BaseException) -> dict:
    error = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
    return {
        "key": point.key(measures),
        "status": "failed",
        "identity": point.identity(measures),
        "row": {**point.flat(), "error": error},
        "error": error,
        "host": os.uname().nodename,
        "pid": os.getpid(),
    }


def _point_dict(p: SweepPoint) -> dict:
    return {"config": dataclasses.asdict(p.config), "loss": p.loss, "positive": p.positive, "negative": p.negative}


def _point_from(d: dict) -> SweepPoint:
    cfg = dict(d["config"])
    if isinstance(cfg["modes"], list):
        cfg["modes"] = tuple(cfg["modes"])
    return SweepPoint(SimConfig(**cfg), d["loss"], d["positive"], d["negative"])


def result_path(out: Path, key: str) -> Path:
    return Path(out) / "configs" / f"{key}.json"


def load_result(out: str | Path, point: SweepPoint, measures: str) -> dict | None:
    """The stored result of ``point`` if its file exists and is valid (same key and configuration), else None."""
    key = point.key(measures)
    path = result_path(Path(out), key)
    try:
        rec = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    same = isinstance(rec, dict) and rec.get("key") == key
    if not same or rec.get("identity") != _roundtrip(point.identity(measures)) or rec.get("status") not in STATUSES:
        return None
    return rec


def _roundtrip(obj: dict) -> dict:
    return json.loads(json.dumps(obj))


@dataclass
class SweepSummary:
    """What a sweep did: configurations in the grid, already done, submitted tasks, and the outcome."""

    configurations: int
    skipped: int
    tasks: int
    ok: int
    failed: int
    seconds: float
    rows: list[dict]
    paths: list[Path]


def run_sweep(
    points: Sequence[SweepPoint],
    out: str | Path,
    *,
    client=None,
    scheduler: str | None = None,
    workers: int = 2,
    measures: str = "full",
    allowed_failures: int = 3,
    progress: bool = True,
    task: Callable[[Sequence[dict], str], list[dict]] | None = None,
) -> SweepSummary:
    """Run every configuration of ``points`` without a valid result under ``out``, then merge all results.

    Parameters
    ----------
    points : sequence of SweepPoint
        From :func:`expand_grid`.
    out : path
        Sweep folder: ``configs/<key>.json`` per configuration, ``sweep.csv`` and ``sweep.json`` merged.
    client : distributed.Client, optional
        An existing client; otherwise one is made for ``scheduler`` (an address such as ``tcp://host:8786``)
        or for a new LocalCluster of ``workers`` single-threaded worker processes.
    measures : {"full", "separation"}
        See :data:`collapse.phase.MEASURES`.
    allowed_failures : int
        For a new LocalCluster: how many workers a task may take down before it is given up (an existing
        cluster keeps its own ``distributed.scheduler.allowed-failures``).
    task : callable, optional
        Replaces :func:`run_block` (same signature), e.g. to inject faults in tests.
    """
    check_choice("measures", measures, MEASURES)
    workers = check_int("workers", workers, low=1)
    allowed_failures = check_int("allowed_failures", allowed_failures, low=0)
    out = Path(out)
    start = time.perf_counter()
    points = list(points)
    done = {p.key(measures) for p in points if (r := load_result(out, p, measures)) and r["status"] == "ok"}
    blocks: dict[tuple, list[SweepPoint]] = {}
    for p in points:
        blocks.setdefault(p.block_key(), []).append(p)
    todo = [b for b in blocks.values() if any(p.key(measures) not in done for p in b)]
    task = run_block if task is None else task

    if todo:
        own = None
        if client is None:
            own, client = _make_client(scheduler, workers, allowed_failures)
        try:
            _submit_all(client, todo, out, measures, task, done, progress)
        finally:
            if own is not None:
                client.close()
                own.close()

    rows, records = [], []
    for p in points:
        rec = load_result(out, p, measures)
        if rec is None:  # only when writing failed; keep the configuration visible in the table
            rec = {"status": "missing", "row": p.flat()}
        records.append({"key": p.key(measures), "status": rec["status"], **rec["row"],
                        "per_seed": rec.get("per_seed")})
        rows.append({"key": p.key(measures), "status": rec["status"], **rec["row"]})
    seconds = time.perf_counter() - start
    paths = [
        write_csv(out / "sweep.csv", rows),
        write_json(out / "sweep.json", {"measures": measures, "collapse_threshold": COLLAPSE_THRESHOLD,
                                        "configurations": len(points), "results": records}),
    ]
    ok = sum(r["status"] == "ok" for r in rows)
    return SweepSummary(len(points), len(done), len(todo), ok, len(rows) - ok, seconds, rows, paths)


def _make_client(scheduler: str | None, workers: int, allowed_failures: int):
    from distributed import Client

    if scheduler is not None:
        return None, Client(scheduler)
    cluster = make_local_cluster(workers, allowed_failures)
    return cluster, Client(cluster)


def make_local_cluster(workers: int = 2, allowed_failures: int = 3):
    """A :class:`distributed.LocalCluster` of ``workers`` single-threaded worker processes.

    On Linux the workers are forked from a fork server that has already imported torch and collapse, so a
    worker starts, and restarts after a crash, in a fraction of a second instead of re-importing torch (seconds
    on a loaded 2-core machine). Elsewhere dask's default, spawn, is kept.
    """
    import multiprocessing

    import dask
    from distributed import LocalCluster

    workers = check_int("workers", workers, low=1)
    allowed_failures = check_int("allowed_failures", allowed_failures, low=0)
    method = "forkserver" if sys.platform == "linux" else dask.config.get("distributed.worker.multiprocessing-method")
    with dask.config.set({"distributed.worker.multiprocessing-method": method}):
        if method == "forkserver":
            from distributed.utils import get_mp_context

            get_mp_context()  # dask sets its own preload list on first use; extend it after that, not before
            multiprocessing.get_context("forkserver").set_forkserver_preload(
                ["distributed", "numpy", "torch", "collapse.phase"]
            )
        return LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            silence_logs=logging.ERROR,
            # No dashboard; the scheduler's small HTTP server (health checks) takes any free port, not 8787.
            scheduler_kwargs={"allowed_failures": allowed_failures, "dashboard": False, "dashboard_address": ":0"},
        )


def _submit_all(client, todo, out: Path, measures: str, task, done: set, progress: bool) -> None:
    from distributed import as_completed

    futures = {}
    for block in todo:
        payload = [_point_dict(p) for p in block]
        # A unique key: a rerun on a long-lived cluster must not pick up an old result of the same block.
        key = f"collapse-sweep-{block[0].key(measures)[:10]}-{uuid.uuid4().hex[:8]}"
        futures[client.submit(task, payload, measures, key=key, pure=False)] = block
    n_cfg = sum(len(b) for b in todo)
    bar = tqdm(total=n_cfg, disable=not progress, desc="sweep", unit="config")
    n_failed = 0
    for fut in as_completed(futures):
        block = futures[fut]
        try:
            records = fut.result()
        except Exception as exc:  # e.g. KilledWorker after allowed-failures: record it and go on
            records = [_failed(p, measures, exc) for p in block]
        for p, rec in zip(block, records):
            if p.key(measures) in done:  # already valid on disk: the block was retrained only for the others
                continue
            write_json(result_path(out, rec["key"]), rec)
            n_failed += rec["status"] != "ok"
        bar.update(len(block))
        bar.set_postfix(failed=n_failed)
        fut.release()
    bar.close()


# ----------------------------------------------------------------------------------------------------------------
# CLI


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="python -m collapse.sweep",
        description="Run a grid of class-collapse simulations (each configuration = SimConfig x loss x positive "
        "rule x negative rule, its seeds trained together) on a local Dask cluster or an existing one. One JSON "
        "result per configuration under OUT/configs (a rerun skips those already done), merged into "
        "OUT/sweep.csv and OUT/sweep.json. Without --grid/--grid-file: the phase-diagram grids eps x M and eps x K.",
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
    p.add_argument("--out", default="results/sweep", help="sweep folder")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="local worker processes")
    p.add_argument("--scheduler", help="address of an existing Dask scheduler, e.g. tcp://host:8786")
    p.add_argument("--measures", default="full", help=f"one of {', '.join(MEASURES)}")
    p.add_argument("--allowed-failures", type=int, default=3,
                   help="worker deaths a task may cause before its configurations are recorded as failed")
    p.add_argument("--dry-run", action="store_true", help="print the number of configurations and tasks, run nothing")
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
        extra[flag] = [v.strip() for v in value.split(",") if v.strip()]
    if args.grid_file:
        try:
            loaded = json.loads(Path(args.grid_file).read_text())
        except OSError as exc:
            raise ValueError(f"--grid-file: cannot read {args.grid_file}: {exc.strerror}") from None
        except ValueError as exc:
            raise ValueError(f"--grid-file: {args.grid_file} is not valid JSON ({exc})") from None
        grids = [loaded] if isinstance(loaded, dict) else loaded
        if not isinstance(grids, list) or not all(isinstance(g, dict) for g in grids):
            raise ValueError("--grid-file must hold a JSON object (field -> values) or a list of them")
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
        points = expand_grid(grids_from_args(args))
    except (ValueError, TypeError) as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    n_blocks = len({p.block_key() for p in points})
    runs = sum(p.config.seeds for p in points)
    print(f"{len(points)} configurations ({runs} runs) in {n_blocks} blocks -> {args.out}", flush=True)
    if args.dry_run:
        return 0
    summary = run_sweep(
        points, args.out, scheduler=args.scheduler, workers=args.workers, measures=args.measures,
        allowed_failures=args.allowed_failures, progress=not args.no_progress,
    )
    print(
        f"{summary.ok} ok, {summary.failed} failed, {summary.skipped} already done; {summary.tasks} tasks in "
        f"{summary.seconds:.1f} s; wrote {', '.join(map(str, summary.paths))}"
    )
    for r in summary.rows:
        if r["status"] != "ok":
            print(f"failed {r['key']}: {r.get('error', r['status'])}", file=sys.stderr)
    return 0 if summary.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
