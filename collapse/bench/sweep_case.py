"""Simulation sweep throughput: runs per second of the phase-diagram sweep (:func:`collapse.phase.phase_diagram`).

The phase diagram batches the runs that share shapes (every seed and noise level of one loss, positive rule and
M) as the groups of one tensor program. The benchmark runs one small eps x M diagram that way, then the runs of
one of its blocks with one run per program (``eps_grid`` of one level and ``seeds=1`` per call), and reports both
rates and the training-time speed-up on those runs; it builds no sweep of its own. Training steps are cut to
:data:`STEPS` so the row takes seconds: runs per second scale with 1 / steps for both.
"""

from __future__ import annotations

import dataclasses
import time

__all__ = ["STEPS", "sweep_throughput"]

STEPS = 100
LOSSES = ("triplet",)
POSITIVES = ("random", "easy")
EPS = (0.0, 0.1, 0.2)
M_GRID = (4, 12)
SEEDS = 4


def sweep_throughput(*, quick: bool = True, unbatched: bool = True) -> dict:
    """``runs``, ``batched_runs_per_s`` and (if ``unbatched``) ``unbatched_runs_per_s`` and ``speedup``."""
    from collapse.phase import PHASE_BASE, count_runs, phase_diagram

    base = dataclasses.replace(PHASE_BASE, steps=STEPS)
    m_grid = M_GRID if quick else (3, 4, 6, 12)
    eps = EPS if quick else (0.0, 0.05, 0.1, 0.2, 0.3)
    common = {"losses": LOSSES, "positives": POSITIVES, "m_grid": m_grid, "base": base, "n_jobs": 1, "progress": False}
    # One small untimed block first: imports, data generation and first-call costs are not throughput.
    phase_diagram("M", eps_grid=eps[:1], seeds=1, **(common | {"m_grid": m_grid[:1], "positives": POSITIVES[:1]}))
    start = time.perf_counter()
    rows = phase_diagram("M", eps_grid=eps, seeds=SEEDS, **common)
    batched = time.perf_counter() - start
    runs = count_runs(rows)
    out = {
        "runs": runs,
        "steps": STEPS,
        "grid": f"eps {list(eps)} x M {list(m_grid)} x {list(POSITIVES)} positives x {SEEDS} seeds, {list(LOSSES)}",
        "batched_seconds": batched,
        "batched_runs_per_s": runs / batched,
        "runs_per_program": len(eps) * SEEDS,
    }
    if unbatched:
        # The runs of one block (its noise levels x seeds at the first M and positive rule), one per program.
        one_block = common | {"m_grid": m_grid[:1], "positives": POSITIVES[:1]}
        block = [r for r in rows if r["samples_per_class"] == m_grid[0] and r["positive"] == POSITIVES[0]]
        start = time.perf_counter()
        single_rows = [
            r for e in eps for _ in range(SEEDS) for r in phase_diagram("M", eps_grid=(e,), seeds=1, **one_block)
        ]
        seconds = time.perf_counter() - start
        single = count_runs(single_rows)
        out |= {
            "unbatched_seconds": seconds,
            "unbatched_runs_per_s": single / seconds,
            # Training time of the same runs, one program each vs one block (rows carry their block's seconds).
            "speedup": sum(r["seconds"] for r in single_rows) / block[0]["seconds"],
        }
    return out
