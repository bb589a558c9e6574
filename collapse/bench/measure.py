"""Wall-clock medians and peak memory of one callable, on CPU or CUDA, and a description of the machine.

Timing: ``warmup`` untimed calls, then ``repeats`` timed calls; the result is the median. :func:`time_pair`
alternates the timed calls of two callables one by one, so that both see the same machine speed and background
load on a shared machine.
On CUDA every call is bracketed by ``torch.cuda.synchronize``.

Peak memory, measured on a separate untimed call:

* CPU: torch's CPU allocations are invisible to ``tracemalloc``, so this reads the kernel's resident-set
  high-water mark. Writing ``5`` to ``/proc/self/clear_refs`` resets ``VmHWM`` to the current RSS (Linux >= 4.0),
  the call runs, and ``VmHWM`` is read back; freed heap memory is first returned to the OS (``malloc_trim``) so the
  baseline is not inflated by an earlier case. Reported: the process peak and the rise over the baseline. Where
  ``/proc`` or ``clear_refs`` is unavailable the peak is ``None`` ("not measured"), never a guess.
* CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats`` (the rise is over the memory
  allocated before the call).
"""

from __future__ import annotations

import ctypes
import gc
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["Peak", "machine_info", "peak_memory", "synchronize", "time_call", "time_pair"]

MB = 1024 * 1024


def synchronize(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def time_call(
    fn: Callable[[], object], *, device: torch.device | str = "cpu", repeats: int = 5, warmup: int = 2
) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeats`` calls after ``warmup`` calls."""
    return time_pair(fn, None, device=device, repeats=repeats, warmup=warmup)[0]


def time_pair(
    fn_a: Callable[[], object] | None,
    fn_b: Callable[[], object] | None,
    *,
    device: torch.device | str = "cpu",
    repeats: int = 5,
    warmup: int = 2,
    rounds: int | None = None,
    cpu: list | None = None,
) -> tuple[float | None, float | None]:
    """Median seconds of ``fn_a`` and ``fn_b`` (either may be ``None``).

    The timed calls alternate between the sides in ``rounds`` blocks (a's block, b's block, a's, ...; default
    ``repeats``: one timed call per block). Each side's first block starts with ``warmup`` untimed calls, every later
    block with one, so that a timed call finds the caches and the allocator as the side's own previous call left
    them (a training loop's steady state), not as the other side left them. The speed of a shared or virtual
    machine drifts by tens of percent over seconds; alternating call by call gives both sides the same conditions,
    so their ratio holds still where a few long blocks do not (measured on the 2-core CI machine, triplet at
    B = 512, six bench runs each: PML/ours spread 1.07x between runs call by call, 1.3x in two blocks, with the same
    median). ``cpu``: a list to which the medians of the process's CPU time per call (``time.process_time``: every
    thread of this process, not the time other processes hold the cores) of ``fn_a`` and ``fn_b`` are appended.
    """
    fns = [f for f in (fn_a, fn_b) if f is not None]
    times: dict[int, list[float]] = {id(f): [] for f in fns}
    cpu_times: dict[int, list[float]] = {id(f): [] for f in fns}
    rounds = max(1, min(repeats if rounds is None else rounds, repeats))
    for r in range(rounds):
        share = repeats // rounds + (1 if r < repeats % rounds else 0)
        for f in fns:
            for _ in range(warmup if r == 0 else min(1, warmup)):
                f()
            for _ in range(share):
                synchronize(device)
                start, cpu_start = time.perf_counter(), time.process_time()
                f()
                synchronize(device)
                times[id(f)].append(time.perf_counter() - start)
                cpu_times[id(f)].append(time.process_time() - cpu_start)
    if cpu is not None:
        cpu.extend(None if f is None else statistics.median(cpu_times[id(f)]) for f in (fn_a, fn_b))
    return tuple(None if f is None else statistics.median(times[id(f)]) for f in (fn_a, fn_b))


@dataclass(frozen=True)
class Peak:
    """Peak memory of one call in MiB: ``peak`` (process RSS, or CUDA allocated) and ``rise`` over the baseline."""

    peak_mb: float | None
    rise_mb: float | None


def peak_memory(fn: Callable[[], object], *, device: torch.device | str = "cpu") -> Peak:
    """Run ``fn()`` once and return its peak memory (see the module docstring)."""
    device = torch.device(device)
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device)
        return Peak(peak / MB, (peak - base) / MB)
    _malloc_trim()
    if not _reset_hwm():
        fn()
        return Peak(None, None)
    base = _status_kb("VmRSS")
    fn()
    peak = _status_kb("VmHWM")
    if base is None or peak is None:
        return Peak(None, None)
    return Peak(peak / 1024, max(0.0, (peak - base) / 1024))


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _status_kb(key: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _malloc_trim() -> None:
    # Return freed heap pages to the OS so that the next baseline RSS is what is really in use (glibc only).
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def machine_info(device: torch.device | str = "cpu") -> dict:
    """CPU model, core count, threads, library versions and (for CUDA) the GPU name."""
    import pytorch_metric_learning

    info = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "pytorch_metric_learning": pytorch_metric_learning.__version__,
        "platform": platform.platform(),
        "load_average": _loadavg(),
    }
    if torch.device(device).type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None
