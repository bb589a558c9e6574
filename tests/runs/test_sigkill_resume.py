"""Kill a grid command with SIGKILL midway, rerun it: finished records are skipped, none is duplicated, and every
value is what an uninterrupted run gives."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from collapse.runs import ResultStore
from collapse.sweep import expand_grid, main, run_sweep

pytestmark = pytest.mark.slow  # kills and reruns a real sweep

GRID = ["noise=0,0.2", "samples_per_class=4,5,6,8", "steps=60", "seeds=1", "samples_per_mode=6"]
ROOT = Path(__file__).resolve().parents[2]


def _records(store: Path) -> dict[str, str]:
    d = store / "records"
    return {p.name: p.read_text() for p in d.glob("*.json")} if d.is_dir() else {}


def test_sigkill_midway_then_rerun(tmp_path, capsys):
    store, out = tmp_path / "store", tmp_path / "out"
    argv = ["--grid", *GRID, "--loss", "triplet", "--positive", "easy", "--measures", "separation",
            "--backend", "processes", "--workers", "1", "--no-progress", "--store", str(store), "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # A session of its own, so that the kill reaches the command and its worker process, and nothing else.
    proc = subprocess.Popen([sys.executable, "-m", "collapse.sweep", *argv], cwd=tmp_path, env=env,
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while len(_records(store)) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "the sweep finished before it could be killed; make the grid longer"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    before = _records(store)
    assert 2 <= len(before) < 8  # killed midway: some blocks recorded, not all
    for text in before.values():  # every record on disk is whole
        assert json.loads(text)["status"] == "ok"
    assert not list(out.glob("sweep_*.json"))  # the gathered table was not written yet

    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert f"8 ok, 0 failed, {len(before)} already done" in printed
    after = _records(store)
    assert len(after) == 8  # one record file per key: no duplicate
    assert {k: after[k] for k in before} == before  # finished records untouched

    runs = expand_grid({"noise": [0.0, 0.2], "samples_per_class": [4, 5, 6, 8], "steps": [60], "seeds": [1],
                        "samples_per_mode": [6], "loss": ["triplet"], "positive": ["easy"]}, measures="separation")
    assert {f"{r.key}.json" for r in runs} == set(after)
    run_sweep(runs, tmp_path / "clean_out", store=tmp_path / "clean", backend="inline", progress=False)
    clean = ResultStore(tmp_path / "clean")
    for r in runs:
        assert ResultStore(store).result(r) == clean.result(r)
