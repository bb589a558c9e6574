"""A cheap run kind for the run-layer tests (a module of its own, so workers can import it by name)."""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from collapse.runs import Kind, Run, register_kind


@dataclass(frozen=True)
class ToyRun(Run):
    """``x`` squared, computed in blocks of equal ``group``; ``fail`` raises; ``log`` counts executions;
    ``kill_once`` (a path) kills the worker the first time."""

    KIND = "toy"
    x: int = 0
    group: int = 0
    fail: bool = False
    log: str = ""
    kill_once: str = ""


def measure_toy(runs: Sequence[ToyRun]) -> list[dict]:
    for r in runs:
        if r.kill_once:  # the first attempt takes its worker process down; a retry finds the marker and runs
            try:
                fd = os.open(r.kill_once, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass
            else:
                os.write(fd, str(os.getpid()).encode())
                os.close(fd)
                os.kill(os.getpid(), signal.SIGKILL)
        if r.log:
            Path(r.log).mkdir(parents=True, exist_ok=True)
            (Path(r.log) / f"{r.x}-{os.getpid()}-{os.urandom(4).hex()}").touch()
        if r.fail:
            raise RuntimeError(f"toy run {r.x} fails\nsecond line")
    return [{"square": r.x * r.x, "block": [q.x for q in runs], "pid": os.getpid()} for r in runs]


register_kind(Kind("toy", ToyRun, measure_toy, block_key=lambda r: r.group, cost=lambda runs: len(runs)))
