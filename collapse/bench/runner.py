"""Run the benchmark rows: time both sides, measure peak memory, run the correctness checks.

Per row and side: one untimed *probe* call, on which peak memory is measured (and which warms up caches,
allocators and, with ``--compile``, compiles); then, budget permitting, ``warmup`` more untimed calls and
``repeats`` timed calls, alternating call by call between the sides (:func:`~collapse.bench.measure.time_pair`).
When a probe took longer than the per-row time budget, both sides are reported from their probes alone
(``repeats = 1``). In the loss rows, a PML side expected to take longer than :attr:`BenchConfig.skip_after`
seconds per call (extrapolated as B^2 from the previous size; PML's distance-weighted miner is the one that gets
there) is not run at all, and the row says so. The loss checks run on a float64 copy of the row's input, the
evaluation checks on the probes' results, all outside the timings. A row that raises is recorded as a failed check
and the run goes on.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import torch
from tqdm.auto import tqdm

from collapse.bench.checks import Check
from collapse.bench.eval_cases import EVAL_CASES, make_eval_data
from collapse.bench.loss_cases import LOSS_CASES, make_batch, ours_step, pml_step
from collapse.bench.measure import machine_info, peak_memory, synchronize, time_pair

__all__ = ["BenchConfig", "run_benchmark"]

SECTIONS = ("loss", "compiled", "eval", "sweep")


@dataclass
class BenchConfig:
    """What to run. ``quick`` sets the sizes below unless they are given explicitly."""

    quick: bool = False
    device: str = "cpu"
    threads: int | None = None
    batch_sizes: Sequence[int] = (128, 512, 2048, 8192)
    #: B of the compiled rows (``torch.compile`` of our step; each size compiles once per case).
    compiled_sizes: Sequence[int] = (512,)
    #: torch.compile backend of the compiled rows (None: inductor; "aot_eager" traces without code generation).
    compile_backend: str | None = None
    eval_sizes: Sequence[int] = (10_000, 100_000)
    nmi_sizes: Sequence[int] = (10_000, 100_000)
    sections: Sequence[str] = SECTIONS
    loss_cases: Sequence[str] = tuple(LOSS_CASES)
    dim: int = 128
    per_class: int = 4
    repeats: int = 10
    warmup: int = 2
    budget: float = 20.0  # seconds of timed calls per side and row
    skip_after: float = 120.0  # do not run a side expected to take longer per call
    compile: bool = False
    seed: int = 0
    command: str = "python -m collapse.bench"
    extra: dict = field(default_factory=dict)

    @classmethod
    def quick_defaults(cls, **kw) -> BenchConfig:
        base = {
            "quick": True,
            "batch_sizes": (128, 512, 2048),
            "eval_sizes": (10_000,),
            "nmi_sizes": (10_000,),
            "repeats": 31,
            "warmup": 2,
            "budget": 2.0,
            "skip_after": 20.0,
        }
        base.update({k: v for k, v in kw.items() if v is not None})
        return cls(**base)


@dataclass
class _Side:
    ms: float | None = None
    cpu_ms: float | None = None
    repeats: int = 0
    peak_mb: float | None = None
    rise_mb: float | None = None
    skipped: str | None = None


def run_benchmark(config: BenchConfig, *, progress: bool = True, log: Callable[[str], None] | None = None) -> dict:
    """Run every requested row; returns ``{"config", "machine", "rows", "sweep", "failures", "elapsed_s"}``."""
    device = torch.device(config.device)
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    start = time.perf_counter()
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = machine_info(device)
    rows: list[dict] = []
    failures: list[str] = []
    plan = _plan(config)
    bar = tqdm(total=len(plan), disable=not progress, desc="benchmark", unit="row")
    sweep = None
    for kind, name, size in plan:
        bar.set_postfix_str(f"{name} {size or ''}".strip())
        try:
            if kind == "loss":
                row = _loss_row(config, name, size, device, rows)
            elif kind == "compiled":
                row = _compiled_row(config, name, size, device, rows)
            elif kind == "eval":
                row = _eval_row(config, name, size, device)
            else:
                row, sweep = _sweep_row(config)
        except Exception as exc:  # one broken row must not lose the others; it fails the run instead
            detail = f"{type(exc).__name__}: {exc}".splitlines()[0]
            row = {"section": kind, "case": name, "size": size, "device": device.type, "ours_ms": None,
                   "pml_ms": None, "ratio": None, "check": "FAILED", "check_detail": f"raised {detail}"}
        rows.append(row)
        if row.get("check") == "FAILED":
            failures.append(f"{row['case']} at size {row['size']}: {row['check_detail']}")
        if log is not None:
            log(_one_line(row))
        bar.update()
    bar.close()
    cfg = asdict(config)
    cfg["threads"] = torch.get_num_threads()
    return {
        "config": cfg,
        "machine": machine | {"load_average_end": machine_info(device)["load_average"]},
        "rows": rows,
        "sweep": sweep,
        "failures": failures,
        "started_utc": started,
        "elapsed_s": time.perf_counter() - start,
    }


def _plan(config: BenchConfig) -> list[tuple[str, str, int | None]]:
    plan: list[tuple[str, str, int | None]] = []
    if "loss" in config.sections:
        plan += [("loss", c, b) for c in config.loss_cases for b in config.batch_sizes]
    if "compiled" in config.sections:
        plan += [
            ("compiled", c, b)
            for c in config.loss_cases
            if LOSS_CASES[c].check is not None
            for b in config.compiled_sizes
        ]
    if "eval" in config.sections:
        plan += [("eval", "retrieval", n) for n in config.eval_sizes]
        plan += [("eval", "NMI", n) for n in config.nmi_sizes]
    if "sweep" in config.sections:
        plan.append(("sweep", "phase-diagram sweep", None))
    return plan


# ------------------------------------------------------------------------------------------------------- losses


def _loss_row(config: BenchConfig, name: str, batch: int, device: torch.device, done: list[dict]) -> dict:
    case = LOSS_CASES[name]
    x, y = make_batch(batch, config.dim, per_class=config.per_class, seed=config.seed, device=device)
    ours = case.ours().to(device)
    miner, theirs = case.pml()
    reference = case.check is None
    fn_ours = None if reference else ours_step(ours, x, y, compiled=config.compile)
    fn_pml = pml_step(miner, theirs.to(device), x, y)
    est = _estimate(done, name, batch, "pml_ms")
    skip = f"not run: about {est / 1000:.0f} s per call expected" if est and est / 1000 > config.skip_after else None
    sides = _measure(config, device, fn_ours, None if skip else fn_pml)
    if skip:
        sides[1].skipped = skip
    if reference:
        # The reference row compares PML's own recipe with our EPS multi-similarity row of the same size.
        twin = next((r for r in done if r["case"] == "multisimilarity EPS/all" and r["size"] == batch), None)
        if twin is not None:
            sides[0] = _Side(twin["ours_ms"], twin.get("ours_cpu_ms"), twin["repeats_ours"], twin["ours_peak_mb"],
                             twin["ours_rise_mb"])
        check = Check("reference", True, "timing only: PML's MultiSimilarityMiner selects differently")
    elif skip and case.check_runs_pml_miner:
        check = Check("not run", True, "PML too slow at this size")
    else:
        check = case.check(case.ours().to(device), x.double(), y)
    return _row("loss", name, batch, device, sides, check, reference=reference)


def _compiled_row(config: BenchConfig, name: str, batch: int, device: torch.device, done: list[dict]) -> dict:
    """Our step through ``torch.compile`` (:mod:`collapse.bench.compiled_case`) against PML's eager step."""
    from collapse.bench.compiled_case import check_compiled, compiled_step

    case = LOSS_CASES[name]
    x, y = make_batch(batch, config.dim, per_class=config.per_class, seed=config.seed, device=device)
    fn_ours = compiled_step(case.ours().to(device), x, y, backend=config.compile_backend)
    fn_ours()  # compile outside the probe and the timings
    miner, theirs = case.pml()
    est = _estimate(done, name, batch, "pml_ms")
    skip = est is not None and est / 1000 > config.skip_after
    sides = _measure(config, device, fn_ours, None if skip else pml_step(miner, theirs.to(device), x, y))
    check = check_compiled(lambda: case.ours().to(device), fn_ours.forward, x, y)
    return _row("compiled", f"{name} compiled", batch, device, sides, check)


def _estimate(done: list[dict], name: str, size: int, key: str) -> float | None:
    """Expected ms at ``size`` from the largest smaller size measured, scaled as size^2."""
    prev = [r for r in done if r["case"] == name and r[key] is not None and r["size"] < size]
    if not prev:
        return None
    last = max(prev, key=lambda r: r["size"])
    return last[key] * (size / last["size"]) ** 2


# --------------------------------------------------------------------------------------------------- evaluation


def _eval_row(config: BenchConfig, name: str, n: int, device: torch.device) -> dict:
    case = EVAL_CASES[name]
    x, y = make_eval_data(n, per_class=case.per_class, n_classes=case.n_classes, seed=config.seed)
    x = x.to(device)
    results: dict[str, dict] = {}

    def ours():
        results["ours"] = case.ours(x, y)

    def pml():
        results["pml"] = case.pml(x, y, device)

    # Both sides always run: the evaluation targets compare with PML at every size.
    sides = _measure(config, device, ours, pml)
    check = case.check(results["ours"], results["pml"])
    row = _row("eval", name, n, device, sides, check)
    row["values"] = results.get("ours")
    return row


# -------------------------------------------------------------------------------------------------------- sweep


def _sweep_row(config: BenchConfig) -> tuple[dict, dict | None]:
    from collapse.bench.sweep_case import sweep_throughput

    try:
        sweep = sweep_throughput(quick=config.quick)
    except ImportError as exc:  # collapse.phase not available in this checkout
        note = f"not measured: {exc}"
        return {"section": "sweep", "case": "phase-diagram sweep", "size": None, "check": "n/a", "note": note}, None
    row = {
        "section": "sweep",
        "case": "phase-diagram sweep, per run",
        "size": sweep["runs"],
        "ours_ms": 1000 * sweep["batched_seconds"] / sweep["runs"],
        "pml_ms": None,
        "ratio": None,
        "check": "n/a",
        "note": (
            f"{sweep['batched_runs_per_s']:.1f} runs/s batched ({sweep['runs_per_program']} runs per tensor program)"
            + (
                f", {sweep['unbatched_runs_per_s']:.1f} runs/s one run per program ({sweep['speedup']:.1f}x)"
                if "speedup" in sweep
                else ""
            )
            + f"; {sweep['steps']} steps per run; {sweep['grid']}"
        ),
    }
    return row, sweep


# -------------------------------------------------------------------------------------------------------- shared


def _measure(config: BenchConfig, device: torch.device, fn_a, fn_b) -> list[_Side]:
    sides = [_Side(), _Side()]
    probe: list[float] = []
    for side, fn in zip(sides, (fn_a, fn_b)):
        if fn is None:
            probe.append(0.0)
            continue
        if config.compile and fn is fn_a:
            fn()  # compile outside the memory probe
        # The probe's time is the call's own: the memory bookkeeping around it (gc, malloc_trim, resetting the
        # kernel's high-water mark) can take seconds on a loaded machine and must not count as the step.
        seconds: list[float] = []
        cpu_seconds: list[float] = []

        def timed(fn=fn, seconds=seconds, cpu_seconds=cpu_seconds) -> None:
            synchronize(device)
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            synchronize(device)
            seconds.append(time.perf_counter() - t0)
            cpu_seconds.append(time.process_time() - c0)

        peak = peak_memory(timed, device=device)
        probe.append(seconds[0])
        side.cpu_ms = 1000 * cpu_seconds[0]
        side.peak_mb, side.rise_mb = peak.peak_mb, peak.rise_mb
    slowest = max(probe)
    if slowest > config.budget:
        for side, t, fn in zip(sides, probe, (fn_a, fn_b)):
            if fn is not None:
                side.ms, side.repeats = 1000 * t, 1
        return sides
    # Calls per side: the timed ones, the first block's warm-ups and one untimed call before each later timed call.
    repeats = max(1, min(config.repeats, int(config.budget / max(2 * slowest, 1e-9))))
    warmup = config.warmup if slowest * (config.warmup + 2 * repeats) <= 2 * config.budget else 0
    cpu: list[float | None] = []
    t_a, t_b = time_pair(fn_a, fn_b, device=device, repeats=repeats, warmup=warmup, cpu=cpu)
    for side, t, c in zip(sides, (t_a, t_b), cpu):
        if t is not None:
            side.ms, side.cpu_ms, side.repeats = 1000 * t, 1000 * c, repeats
    return sides


def _row(section: str, name: str, size: int, device: torch.device, sides: list[_Side], check: Check, **extra) -> dict:
    ours, pml = sides
    ratio = pml.ms / ours.ms if (ours.ms and pml.ms) else None
    cpu_ratio = pml.cpu_ms / ours.cpu_ms if (ours.cpu_ms and pml.cpu_ms and pml.ms) else None
    return {
        "section": section,
        "case": name,
        "size": size,
        "device": device.type,
        "ours_ms": ours.ms,
        "pml_ms": pml.ms,
        "ratio": ratio,
        "ours_cpu_ms": ours.cpu_ms,
        "pml_cpu_ms": pml.cpu_ms if pml.ms else None,
        "cpu_ratio": cpu_ratio,
        "ours_peak_mb": ours.peak_mb,
        "ours_rise_mb": ours.rise_mb,
        "pml_peak_mb": pml.peak_mb,
        "pml_rise_mb": pml.rise_mb,
        "repeats_ours": ours.repeats,
        "repeats_pml": pml.repeats,
        "check": "n/a" if check.name in ("reference", "not run") else ("ok" if check.ok else "FAILED"),
        "check_detail": check.detail if check.name in ("reference", "not run") else str(check),
        "note": pml.skipped,
        **extra,
    }


def _one_line(row: dict) -> str:
    def fmt(v):
        return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3g}"

    return (
        f"{row['section']:<6} {row['case']:<32} {str(row.get('size')):>7}  ours {fmt(row.get('ours_ms'))} ms  "
        f"PML {fmt(row.get('pml_ms'))} ms  check {row.get('check')}"
    )
