r"""Phase diagrams of class collapse: where random positives collapse a class's modes and easy positives do not.

A phase diagram measures the mode separation :math:`s = \mathrm{mean}_c\, s_c` (the mean distance between the
mode centroids of a class, see :func:`collapse.metrics.mode_separation`) on a grid of

* label noise :math:`\varepsilon` x samples per class in the batch :math:`M` (``axis="M"``), or
* label noise :math:`\varepsilon` x modes per class :math:`K` (``axis="K"``),

for each loss and each positive rule, with the negative rule fixed (``"hard"``, as in ``collapse.simulate``). A
run is one (configuration, loss, positive rule, seed); a cell of the diagram reports the seed mean of
:math:`s` and the fraction of seeds the collapse instrument judges collapsed
(:func:`collapse.metrics.collapse_verdict`, at the loss's own margin; no fixed distance).

Batching. Configurations of the same shapes (same K, same M, same loss and positive rule) differ only in
:math:`\varepsilon` and the seed, so one *block* trains all of them as the G = ``len(eps_grid) * seeds``
groups of one tensor program (:func:`collapse.experiment.train_configuration` with a per-group
:class:`~collapse.data.LabelNoise`). Group :math:`g = i S + s` has rate ``eps_grid[i]`` and seed index
:math:`s`. Why this is the same experiment as separate runs: the groups share no parameters and no gradient,
and every random draw has a shape independent of the labels, so group g of a block is *bitwise* group g of
``run_simulation`` with ``noise=eps_grid[i]`` and ``seeds=G`` whenever that rate is > 0. A zero rate gives
exactly the clean labels too, but a block draws (and discards) its uniforms where a lone noiseless run draws
none, so its seed stream differs: the same distribution, not the same numbers (tests/test_phase.py checks both).

Execution. A diagram only builds :class:`~collapse.runs.SimRun` s (one per cell, ``block_noise`` = the eps grid)
and reads their records: :func:`collapse.runs.execute` computes the blocks (inline, in local processes or on a
Dask cluster) and keeps one record per cell in a :class:`~collapse.runs.ResultStore`, so a diagram interrupted at
any moment resumes where it stopped when given the same ``store``.

The default diagram (:data:`PHASE_BASE`, 3 losses x 2 positive rules x 5 noise levels x 4 values of M or K x
4 seeds = 480 runs in 24 blocks) costs about 40 s (axis M) and 55 s (axis K) of CPU time in all, shared by two
worker processes; docs/sweep.md has the measured times and what the diagrams show.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from collapse._validation import check_choice, check_int, check_real
from collapse.experiment import MEASURES, VERDICT_RULE, SimConfig, with_overrides
from collapse.io import write_csv, write_json
from collapse.losses import LOSSES
from collapse.runs import ResultStore, SimRun, check_writable_dir, execute, hashed_stem, measure_sim_block, sim_row
from collapse.sampling import NEGATIVE_RULES, POSITIVE_RULES

__all__ = [
    "DEFAULT_EPS",
    "DEFAULT_K",
    "DEFAULT_LOSSES",
    "DEFAULT_M",
    "MEASURES",
    "PHASE_AXES",
    "PHASE_BASE",
    "PhaseGrid",
    "count_runs",
    "phase_blocks",
    "phase_diagram",
    "phase_runs",
    "temporary_store",
    "train_block",
]

#: axis name -> the SimConfig field it varies.
PHASE_AXES = {"M": "samples_per_class", "K": "modes"}

DEFAULT_LOSSES = ("triplet", "margin", "multisimilarity")
DEFAULT_EPS = (0.0, 0.05, 0.1, 0.2, 0.3)
DEFAULT_M = (3, 4, 6, 12)
DEFAULT_K = (2, 3, 4, 6)
DEFAULT_SEEDS = 4
#: The simulation the default diagrams vary: collapse.simulate's defaults (4 classes x 3 modes, d = 8, tied
#: model, 500 Adam steps with cosine decay).
PHASE_BASE = SimConfig()


def train_block(
    config: SimConfig,
    loss: str,
    positive: str,
    negative: str | None,
    eps: Sequence[float],
    *,
    measures: str = "separation",
) -> list[dict]:
    """Train ``len(eps) x config.seeds`` runs in one program and return one row per noise level (no store).

    ``config.noise`` is ignored: run ``g = i * config.seeds + s`` has rate ``eps[i]`` and seed index ``s``. A
    single rate uses the scalar noise model, so ``train_block(c, ..., eps=[c.noise])`` is exactly the training
    of ``run_simulation(c, ...)``. Each row is :func:`collapse.runs.sim_row` of the cell (configuration, rules,
    seed mean and std of every measure, ``seeds_collapsed``, ``frac_collapsed``, ``verdict``, ``final_loss``) with
    the block's training ``seconds`` and ``per_seed``. This is the sim kind's measurement
    (:func:`collapse.runs.measure_sim_block`) called directly.
    """
    check_choice("measures", measures, MEASURES)
    eps = tuple(check_real(f"eps[{i}]", e, low=0.0, high=1.0, high_inclusive=False) for i, e in enumerate(eps))
    if not eps:
        raise ValueError("eps must hold at least one noise level, got none")
    runs = [SimRun(replace(config, noise=e), loss, positive, negative, block_noise=eps, measures=measures)
            for e in eps]
    start = time.perf_counter()
    results = measure_sim_block(runs)
    seconds = time.perf_counter() - start
    return [{**sim_row(r, res), "seconds": seconds, "per_seed": res["per_seed"]} for r, res in zip(runs, results)]


@dataclass(frozen=True)
class PhaseGrid:
    """The grid of one diagram: every ``loss`` x ``positive`` rule at every noise level of ``eps_grid`` and every
    value of M (``axis="M"``: ``m_grid``) or K (``axis="K"``: ``k_grid``), ``seeds`` runs per cell, on ``base``
    (its ``noise`` and ``seeds`` replaced), with the shared ``negative`` rule (None: each loss's published one) and
    ``measures`` (:data:`collapse.experiment.MEASURES`). :func:`phase_blocks`, :func:`phase_runs` and
    :func:`phase_diagram` take these fields, in this order."""

    axis: str = "M"
    losses: Sequence[str] = DEFAULT_LOSSES
    positives: Sequence[str] = ("random", "easy")
    eps_grid: Sequence[float] = DEFAULT_EPS
    m_grid: Sequence[int] = DEFAULT_M
    k_grid: Sequence[int] = DEFAULT_K
    seeds: int = DEFAULT_SEEDS
    base: SimConfig = PHASE_BASE
    negative: str | None = "hard"
    measures: str = "separation"

    def blocks(self) -> list[tuple[SimConfig, str, str]]:
        """The (configuration, loss, positive rule) of every block, in grid order (axis value outer)."""
        check_choice("axis", self.axis, PHASE_AXES)
        field = PHASE_AXES[self.axis]
        values = _int_grid("m_grid", self.m_grid, 2) if self.axis == "M" else _int_grid("k_grid", self.k_grid, 2)
        losses = [check_choice("losses", name, LOSSES) for name in _non_empty("losses", self.losses)]
        positives = [check_choice("positives", n, POSITIVE_RULES) for n in _non_empty("positives", self.positives)]
        seeds = check_int("seeds", self.seeds, low=1)
        if not isinstance(self.base, SimConfig):
            raise TypeError(f"base must be a SimConfig, got {type(self.base).__name__}")
        return [(with_overrides(self.base, **{field: v, "seeds": seeds}), loss, pos)
                for v in values for loss in losses for pos in positives]

    def runs(self) -> list[SimRun]:
        """The runs of the diagram, one per cell, in row order (axis value, loss, positive rule, noise level)."""
        eps = _real_grid("eps_grid", self.eps_grid)
        if self.negative is not None:
            check_choice("negative", self.negative, NEGATIVE_RULES)
        check_choice("measures", self.measures, MEASURES)
        return [SimRun(replace(cfg, noise=e), loss, pos, self.negative, block_noise=eps, measures=self.measures)
                for cfg, loss, pos in self.blocks() for e in eps]


def phase_blocks(*grid, **fields) -> list[tuple[SimConfig, str, str]]:
    """:meth:`PhaseGrid.blocks` of ``PhaseGrid(*grid, **fields)``."""
    return PhaseGrid(*grid, **fields).blocks()


def phase_runs(*grid, **fields) -> list[SimRun]:
    """:meth:`PhaseGrid.runs` of ``PhaseGrid(*grid, **fields)``."""
    return PhaseGrid(*grid, **fields).runs()


@contextlib.contextmanager
def temporary_store(store: str | Path | ResultStore | None) -> Iterator[ResultStore]:
    """``store`` as a :class:`~collapse.runs.ResultStore`, or a throw-away one in a temporary folder if None."""
    if store is not None:
        yield store if isinstance(store, ResultStore) else ResultStore(store)
        return
    with tempfile.TemporaryDirectory(prefix="collapse-store-") as tmp:
        yield ResultStore(tmp)


def phase_diagram(
    *grid,
    n_jobs: int | None = None,
    progress: bool = True,
    out: str | Path | None = None,
    store: str | Path | ResultStore | None = None,
    backend: str | None = None,
    address: str | None = None,
    **fields,) -> list[dict]:
    """Mode separation over ``eps_grid`` x ``m_grid`` (``axis="M"``) or ``eps_grid`` x ``k_grid`` (``axis="K"``).

    Parameters
    ----------
    *grid, **fields
        The fields of :class:`PhaseGrid`, positionally in its order or by name:
    axis : {"M", "K"}
        Vary the samples per class in the batch (``base.modes`` fixed) or the modes per class
        (``base.samples_per_class`` fixed).
    losses, positives : sequences of names
        Every loss is trained with every positive rule (see :data:`collapse.losses.LOSSES`,
        :data:`collapse.sampling.POSITIVE_RULES`).
    eps_grid, m_grid, k_grid : sequences
        Noise levels in [0, 1); batch sizes per class M >= 2; modes per class K >= 2 (distinct values each).
    seeds : int
        Runs per cell; the seeds are ``base.seed`` streams of each block (see the module docstring).
    base : SimConfig
        Everything else; its ``noise`` and ``seeds`` are replaced.
    negative : str or None
        Negative rule shared by every positive rule; None keeps each loss's published rule.
    measures : {"separation", "full"}
        See :data:`collapse.experiment.MEASURES`.
    n_jobs : int or None
        Worker processes (one block each at a time); None: ``min(2, cpu count)``. 1 runs in this process.
    progress : bool
        A tqdm bar over runs.
    out : path or None
        A folder (checked writable before any compute): writes ``phase_<axis>_<hash>.csv`` (rows without
        ``per_seed``) and ``.json`` (grid, base configuration, timing and every row) atomically; ``<hash>`` names
        the set of runs, so two diagrams never share a file.
    store : path, ResultStore or None
        Where the records of the cells are kept (a rerun with the same store skips finished cells); None: a
        temporary store, deleted on return.
    backend, address
        ``"inline"``, ``"processes"`` or ``"dask"`` (``address`` of an existing scheduler); default from ``n_jobs``.

    Returns
    -------
    list of dict
        One row per (axis value, loss, positive rule, noise level), in that nesting order; ``axis`` names the
        varied field. The number of runs is :func:`count_runs` of it, so a caller's runs per second is
        ``count_runs(rows) / elapsed``.
    """
    spec = PhaseGrid(*grid, **fields)
    runs = spec.runs()
    axis, negative, measures, base = spec.axis, spec.negative, spec.measures, spec.base
    n_jobs = min(2, os.cpu_count() or 1) if n_jobs is None else check_int("n_jobs", n_jobs, low=1)
    if backend is None:
        backend = "dask" if address else ("inline" if n_jobs == 1 else "processes")
    if out is not None:
        out = check_writable_dir(out, what="phase diagram folder")
    start = time.perf_counter()
    with temporary_store(store) as st:
        ex = execute(runs, st, backend=backend, workers=n_jobs, address=address, progress=progress,
                     desc=f"phase diagram eps x {axis}")
        if not ex.ok:
            raise RuntimeError(f"{ex.failed} phase-diagram run(s) failed; first: {ex.errors[0]}")
        records = [st.get(r) for r in runs]
    rows = [{"axis": axis, **sim_row(r, rec.result), "seconds": rec.seconds, "per_seed": rec.result["per_seed"]}
            for r, rec in zip(runs, records)]
    seconds = time.perf_counter() - start
    if out is not None:
        stem = hashed_stem(f"phase_{axis}", [r.key for r in runs])
        flat = [{k: v for k, v in r.items() if k != "per_seed"} for r in rows]
        write_csv(out / f"{stem}.csv", flat)
        write_json(
            out / f"{stem}.json",
            {
                "axis": axis,
                "field": PHASE_AXES[axis],
                "eps_grid": list(runs[0].block_noise),
                "values": list(dict.fromkeys(getattr(r.config, PHASE_AXES[axis]) for r in runs)),
                "losses": list(dict.fromkeys(r.loss for r in runs)),
                "positives": list(dict.fromkeys(r.positive for r in runs)),
                "negative": negative or "default",
                "measures": measures,
                "base": base.to_dict(),
                "verdict_rule": VERDICT_RULE,
                "runs": count_runs(rows),
                "blocks": len(runs) // len(runs[0].block_noise),
                "seconds": seconds,
                "runs_per_second": count_runs(rows) / seconds,
                "keys": [r.key for r in runs],
                "rows": rows,
            },
        )
    return rows


def count_runs(rows: Sequence[dict]) -> int:
    """Runs behind a list of rows: one per (configuration, loss, positive rule, seed)."""
    return int(sum(r["seeds"] for r in rows))


def _non_empty(name: str, values: Sequence) -> list:
    if isinstance(values, str):
        values = [values]
    values = list(values)
    if not values:
        raise ValueError(f"{name} must hold at least one value, got none")
    if len(set(map(str, values))) != len(values):
        raise ValueError(f"{name} must hold distinct values, got {values}")
    return values


def _int_grid(name: str, values: Sequence[int], low: int) -> list[int]:
    return [check_int(f"{name}[{i}]", v, low=low) for i, v in enumerate(_non_empty(name, values))]


def _real_grid(name: str, values: Sequence[float]) -> tuple[float, ...]:
    vals = _non_empty(name, values)
    out = tuple(check_real(f"{name}[{i}]", v, low=0.0, high=1.0, high_inclusive=False) for i, v in enumerate(vals))
    if len(set(out)) != len(out):
        raise ValueError(f"{name} must hold distinct values, got {list(out)}")
    return tuple(np.asarray(out, dtype=float).tolist())
