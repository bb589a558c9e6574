r"""Phase diagrams of class collapse: where random positives collapse a class's modes and easy positives do not.

A phase diagram measures the mode separation :math:`s = \mathrm{mean}_c\, s_c` (the mean distance between the
mode centroids of a class, see :func:`collapse.metrics.mode_separation`) on a grid of

* label noise :math:`\varepsilon` x samples per class in the batch :math:`M` (``axis="M"``), or
* label noise :math:`\varepsilon` x modes per class :math:`K` (``axis="K"``),

for each loss and each positive rule, with the negative rule fixed (``"hard"``, as in ``collapse.simulate``). A
run is one (configuration, loss, positive rule, seed); a cell of the diagram reports the seed mean of
:math:`s` and the fraction of seeds with :math:`s <` :data:`~collapse.experiment.COLLAPSE_THRESHOLD`.

Batching. Configurations of the same shapes (same K, same M, same loss and positive rule) differ only in
:math:`\varepsilon` and the seed, so one *block* trains all of them as the G = ``len(eps_grid) * seeds``
groups of one tensor program (:func:`collapse.experiment.train_configuration` with a per-group
:class:`~collapse.data.LabelNoise`). Group :math:`g = i S + s` has rate ``eps_grid[i]`` and seed index
:math:`s`. Why this is the same experiment as separate runs: the groups share no parameters and no gradient,
and every random draw has a shape independent of the labels, so group g of a block is *bitwise* group g of
``run_simulation`` with ``noise=eps_grid[i]`` and ``seeds=G`` whenever that rate is > 0. A zero rate gives
exactly the clean labels too, but a block draws (and discards) its uniforms where a lone noiseless run draws
none, so its seed stream differs: the same distribution, not the same numbers (tests/test_phase.py checks both).

The default diagram (:data:`PHASE_BASE`, 3 losses x 2 positive rules x 5 noise levels x 4 values of M or K x
4 seeds = 480 runs in 24 blocks) costs about 40 s (axis M) and 55 s (axis K) of CPU time in all, shared by two
worker processes; docs/sweep.md has the measured times and what the diagrams show.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from collapse._validation import check_choice, check_int, check_real
from collapse.data import LabelNoise
from collapse.experiment import (
    COLLAPSE_THRESHOLD,
    SimConfig,
    seed_summary,
    train_configuration,
    verdict,
    with_overrides,
)
from collapse.io import write_csv, write_json
from collapse.losses import LOSSES
from collapse.metrics import collapse_report, mode_separation
from collapse.sampling import NEGATIVE_RULES, POSITIVE_RULES

__all__ = [
    "DEFAULT_EPS",
    "DEFAULT_K",
    "DEFAULT_LOSSES",
    "DEFAULT_M",
    "MEASURES",
    "PHASE_AXES",
    "PHASE_BASE",
    "count_runs",
    "phase_blocks",
    "phase_diagram",
    "train_block",
]

#: axis name -> the SimConfig field it varies.
PHASE_AXES = {"M": "samples_per_class", "K": "modes"}
#: ``"separation"``: only :func:`collapse.metrics.mode_separation` per run (cheap); ``"full"``: every measure of
#: :func:`collapse.metrics.collapse_report` (adds k-means sub-mode recovery, about 20 ms a run).
MEASURES = ("separation", "full")

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
    """Train ``len(eps) x config.seeds`` runs in one program and return one row per noise level.

    ``config.noise`` is ignored: run ``g = i * config.seeds + s`` has rate ``eps[i]`` and seed index ``s``. A
    single rate uses the scalar noise model, so ``train_block(c, ..., eps=[c.noise])`` is exactly the training
    of ``run_simulation(c, ...)``. Each row holds the configuration, the loss, the rules, the seed mean and
    standard deviation of every measure, ``seeds_collapsed``, ``frac_collapsed``, the ``verdict`` of the seed
    mean, ``final_loss``, the block's training ``seconds`` and ``per_seed`` (the measures of each seed).
    """
    check_choice("measures", measures, MEASURES)
    eps = tuple(check_real(f"eps[{i}]", e, low=0.0, high=1.0, high_inclusive=False) for i, e in enumerate(eps))
    if not eps:
        raise ValueError("eps must hold at least one noise level, got none")
    S = config.seeds
    G = len(eps) * S
    # One rate for all groups keeps run_simulation's own noise path, so a one-level block reproduces it exactly.
    noise = (
        LabelNoise(kind=config.noise_model, eps=tuple(e for e in eps for _ in range(S)), resample=config.resample)
        if len(eps) > 1
        else LabelNoise(kind=config.noise_model, eps=eps[0], resample=config.resample)
    )
    train, loss_fn, data = train_configuration(config, loss, positive, negative, noise=noise, n_groups=G)
    margin = getattr(loss_fn, "margin", None)
    emb = train.embeddings.numpy()
    final = train.loss_history[-1].numpy()
    neg = negative if negative is not None else loss_fn.sampler.negative.name
    rows = []
    for i, e in enumerate(eps):
        per_seed = []
        for s in range(S):
            g = i * S + s
            if measures == "full":
                rep = collapse_report(emb[g], data.y, data.modes, margin=margin, random_state=config.seed + g)
            else:
                rep = mode_separation(emb[g], data.y, data.modes, margin)
            per_seed.append({k: float(v) for k, v in rep.items()})
        collapsed = sum(r["mode_separation"] < COLLAPSE_THRESHOLD for r in per_seed)
        summary = seed_summary(per_seed)
        rows.append(
            {
                "classes": config.classes,
                "modes": config.modes if isinstance(config.modes, int) else list(config.modes),
                "samples_per_class": config.samples_per_class,
                "noise": e,
                "noise_model": config.noise_model,
                "loss": loss,
                "positive": positive,
                "negative": neg,
                "seed": config.seed,
                "seeds": S,
                **summary,
                "seeds_collapsed": collapsed,
                "frac_collapsed": collapsed / S,
                "verdict": verdict(summary["mode_separation"]),
                "final_loss": float(final[i * S : (i + 1) * S].mean()),
                "seconds": train.seconds,
                "block_runs": G,
                "per_seed": per_seed,
            }
        )
    return rows


def phase_blocks(
    axis: str = "M",
    losses: Sequence[str] = DEFAULT_LOSSES,
    positives: Sequence[str] = ("random", "easy"),
    *,
    m_grid: Sequence[int] = DEFAULT_M,
    k_grid: Sequence[int] = DEFAULT_K,
    seeds: int = DEFAULT_SEEDS,
    base: SimConfig = PHASE_BASE,
) -> list[tuple[SimConfig, str, str]]:
    """The (configuration, loss, positive rule) of every block of a diagram, in grid order (axis value outer)."""
    check_choice("axis", axis, PHASE_AXES)
    field = PHASE_AXES[axis]
    values = _int_grid("m_grid", m_grid, 2) if axis == "M" else _int_grid("k_grid", k_grid, 2)
    losses = [check_choice("losses", name, LOSSES) for name in _non_empty("losses", losses)]
    positives = [check_choice("positives", name, POSITIVE_RULES) for name in _non_empty("positives", positives)]
    seeds = check_int("seeds", seeds, low=1)
    if not isinstance(base, SimConfig):
        raise TypeError(f"base must be a SimConfig, got {type(base).__name__}")
    return [
        (with_overrides(base, **{field: v, "seeds": seeds}), loss, pos)
        for v in values
        for loss in losses
        for pos in positives
    ]


def phase_diagram(
    axis: str = "M",
    losses: Sequence[str] = DEFAULT_LOSSES,
    positives: Sequence[str] = ("random", "easy"),
    eps_grid: Sequence[float] = DEFAULT_EPS,
    m_grid: Sequence[int] = DEFAULT_M,
    k_grid: Sequence[int] = DEFAULT_K,
    seeds: int = DEFAULT_SEEDS,
    base: SimConfig = PHASE_BASE,
    *,
    negative: str | None = "hard",
    measures: str = "separation",
    n_jobs: int | None = None,
    progress: bool = True,
    out: str | Path | None = None,
) -> list[dict]:
    """Mode separation over ``eps_grid`` x ``m_grid`` (``axis="M"``) or ``eps_grid`` x ``k_grid`` (``axis="K"``).

    Parameters
    ----------
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
        See :data:`MEASURES`.
    n_jobs : int or None
        Worker processes (one block each at a time); None: ``min(2, cpu count)``. 1 runs in this process.
    progress : bool
        A tqdm bar over blocks.
    out : path or None
        A folder: writes ``phase_<axis>.csv`` (rows without ``per_seed``) and ``phase_<axis>.json`` (grid, base
        configuration, timing and every row) atomically.

    Returns
    -------
    list of dict
        One row per (axis value, loss, positive rule, noise level), in that nesting order; ``axis`` names the
        varied field. The number of runs is :func:`count_runs` of it, so a caller's runs per second is
        ``count_runs(rows) / elapsed``.
    """
    eps = _real_grid("eps_grid", eps_grid)
    blocks = phase_blocks(axis, losses, positives, m_grid=m_grid, k_grid=k_grid, seeds=seeds, base=base)
    if negative is not None:
        check_choice("negative", negative, NEGATIVE_RULES)
    check_choice("measures", measures, MEASURES)
    n_jobs = min(2, os.cpu_count() or 1) if n_jobs is None else check_int("n_jobs", n_jobs, low=1)
    n_jobs = min(n_jobs, len(blocks))
    start = time.perf_counter()
    jobs = [(cfg, loss, pos, negative, eps, measures) for cfg, loss, pos in blocks]
    results: list[list[dict] | None] = [None] * len(jobs)
    bar = tqdm(total=len(jobs), disable=not progress, desc=f"phase diagram eps x {axis}", unit="block")
    if n_jobs == 1:
        for i, job in enumerate(jobs):
            results[i] = _run_job(job)
            bar.update()
    else:
        # Costliest blocks first (largest K x M), so that the last block to finish is a short one.
        order = sorted(range(len(jobs)), key=lambda i: -_cost(jobs[i][0]))
        with ProcessPoolExecutor(n_jobs, mp_context=_mp_context(), initializer=_one_thread) as pool:
            futures = {pool.submit(_run_job, jobs[i]): i for i in order}
            for fut in as_completed(futures):
                results[futures[fut]] = fut.result()
                bar.update()
    bar.close()
    rows = [{"axis": axis, **row} for block in results for row in block]
    seconds = time.perf_counter() - start
    if out is not None:
        out = Path(out)
        flat = [{k: v for k, v in r.items() if k != "per_seed"} for r in rows]
        write_csv(out / f"phase_{axis}.csv", flat)
        write_json(
            out / f"phase_{axis}.json",
            {
                "axis": axis,
                "field": PHASE_AXES[axis],
                "eps_grid": list(eps),
                "values": list(dict.fromkeys(getattr(cfg, PHASE_AXES[axis]) for cfg, _, _ in blocks)),
                "losses": list(dict.fromkeys(b[1] for b in blocks)),
                "positives": list(dict.fromkeys(b[2] for b in blocks)),
                "negative": negative or "default",
                "measures": measures,
                "base": base.to_dict(),
                "collapse_threshold": COLLAPSE_THRESHOLD,
                "runs": count_runs(rows),
                "blocks": len(blocks),
                "seconds": seconds,
                "runs_per_second": count_runs(rows) / seconds,
                "rows": rows,
            },
        )
    return rows


def count_runs(rows: Sequence[dict]) -> int:
    """Runs behind a list of rows: one per (configuration, loss, positive rule, seed)."""
    return int(sum(r["seeds"] for r in rows))


def _run_job(job: tuple) -> list[dict]:
    cfg, loss, pos, negative, eps, measures = job
    return train_block(cfg, loss, pos, negative, eps, measures=measures)


def _one_thread() -> None:
    # One process per core: nested BLAS/OpenMP threads would only oversubscribe the cores.
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(1)


def _mp_context():
    # fork starts a worker in milliseconds (no second torch import); spawn where fork is unsafe or missing.
    return get_context("fork" if sys.platform == "linux" else "spawn")


def _cost(cfg: SimConfig) -> int:
    return sum(cfg.modes_per_class) * cfg.samples_per_class


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
