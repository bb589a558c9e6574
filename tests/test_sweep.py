"""``python -m collapse.sweep`` on a LocalCluster: completion, resume, failing configurations, a killed worker."""

import json
import os
import signal
import uuid
from pathlib import Path

import distributed
import pytest

from collapse.experiment import SimConfig
from collapse.sweep import (
    SweepPoint,
    default_grids,
    expand_grid,
    load_result,
    main,
    make_local_cluster,
    parse_grid_args,
    run_block,
    run_sweep,
)

BASE = SimConfig(steps=20, samples_per_mode=6, seeds=2)
# 8 configurations in 4 blocks (noise is batched inside a block).
GRID = {"noise": [0.0, 0.2], "samples_per_class": [4, 6], "loss": ["triplet"], "positive": ["random", "easy"]}


@pytest.fixture(scope="module")
def client():
    cluster = make_local_cluster(workers=2, allowed_failures=3)
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


def counting_task(log_dir: Path):
    """run_block that leaves one file per execution in ``log_dir`` (a closure, so cloudpickle sends it by value)."""
    log_dir = str(log_dir)

    def task(points, measures):
        os.makedirs(log_dir, exist_ok=True)
        noise = "_".join(str(p["config"]["noise"]) for p in points)
        tag = f"{points[0]['positive']}-M{points[0]['config']['samples_per_class']}-{noise}"
        Path(log_dir, f"{tag}@{uuid.uuid4().hex}").touch()
        return run_block(points, measures)

    return task


def executions(log_dir: Path) -> list[str]:
    return sorted(p.name.split("@")[0] for p in log_dir.iterdir()) if log_dir.exists() else []


def _mtimes(out: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (out / "configs").iterdir()}


def test_sweep_completes_then_resume_skips_what_is_done(client, tmp_path):
    points = expand_grid(GRID, BASE)
    assert len(points) == 8
    out, log = tmp_path / "sweep", tmp_path / "log"
    first = run_sweep(points, out, client=client, measures="separation", progress=False, task=counting_task(log))
    assert (first.configurations, first.skipped, first.tasks, first.ok, first.failed) == (8, 0, 4, 8, 0)
    assert len(executions(log)) == 4
    assert len(list((out / "configs").iterdir())) == 8
    table = json.loads((out / "sweep.json").read_text())["results"]
    assert {r["key"] for r in table} == {p.key("separation") for p in points}
    assert all(r["status"] == "ok" and r["mode_separation"] >= 0 and len(r["per_seed"]) == 2 for r in table)
    assert len((out / "sweep.csv").read_text().splitlines()) == 9

    before = _mtimes(out)
    again = run_sweep(points, out, client=client, measures="separation", progress=False, task=counting_task(log))
    assert (again.skipped, again.tasks, again.ok) == (8, 0, 8)
    assert len(executions(log)) == 4 and _mtimes(out) == before

    # Lose one result: only its block runs again, the other files stay untouched, and the number comes back the same.
    lost = points[0]
    path = out / "configs" / f"{lost.key('separation')}.json"
    old = json.loads(path.read_text())
    path.write_text("{ truncated")  # an invalid file counts as missing
    third = run_sweep(points, out, client=client, measures="separation", progress=False, task=counting_task(log))
    assert (third.skipped, third.tasks, third.ok) == (7, 1, 8)
    assert len(executions(log)) == 5
    after = _mtimes(out)
    assert {k for k in after if after[k] != before[k]} == {path.name}
    new = json.loads(path.read_text())
    assert new["row"]["mode_separation"] == old["row"]["mode_separation"] and new["per_seed"] == old["per_seed"]


def test_a_configuration_that_raises_is_recorded_and_the_sweep_goes_on(client, tmp_path):
    # 6 samples per mode x 3 modes = 18 per class: a batch of M = 30 per class cannot be drawn.
    points = expand_grid({"noise": [0.0, 0.1], "samples_per_class": [4, 30], "positive": ["easy"]}, BASE)
    summary = run_sweep(points, tmp_path, client=client, measures="separation", progress=False)
    assert (summary.ok, summary.failed) == (2, 2)
    for p, row in zip(points, summary.rows):
        if p.config.samples_per_class == 30:
            assert row["status"] == "failed" and "classes_per_batch=4 needs 4 classes with >= 30" in row["error"]
            assert load_result(tmp_path, p, "separation")["status"] == "failed"
        else:
            assert row["status"] == "ok"
    # Failed configurations are retried by a rerun, finished ones are not.
    rerun = run_sweep(points, tmp_path, client=client, measures="separation", progress=False)
    assert (rerun.skipped, rerun.tasks) == (2, 1)


def test_a_killed_worker_costs_only_its_own_task(client, tmp_path):
    points = expand_grid(GRID, BASE)
    marker, log = tmp_path / "killed-once", tmp_path / "log"
    inner = counting_task(log)
    marker_path = str(marker)

    def flaky(points, measures):
        if points[0]["positive"] == "easy" and points[0]["config"]["samples_per_class"] == 6:
            try:  # the first attempt takes its worker process down; the retry finds the marker and runs
                fd = os.open(marker_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass
            else:
                os.write(fd, str(os.getpid()).encode())
                os.close(fd)
                os.kill(os.getpid(), signal.SIGKILL)
        return inner(points, measures)

    summary = run_sweep(points, tmp_path / "sweep", client=client, measures="separation", progress=False, task=flaky)
    killed_pid = int(marker.read_text())
    assert (summary.tasks, summary.ok, summary.failed) == (4, 8, 0)
    for p in points:  # the killed worker's block was computed again by another worker process
        if p.positive == "easy" and p.config.samples_per_class == 6:
            assert load_result(tmp_path / "sweep", p, "separation")["pid"] != killed_pid
    runs = executions(log)
    # Killed before logging, then retried once. A block that had finished on the dying worker but was not yet
    # fetched by the client is lost with it and recomputed, so the others ran at least once each.
    assert runs.count("easy-M6-0.0_0.2") == 1
    assert set(runs) == {f"{pos}-M{m}-0.0_0.2" for pos in ("random", "easy") for m in (4, 6)}
    # Every result equals a clean sweep's.
    clean = run_sweep(points, tmp_path / "clean", client=client, measures="separation", progress=False)
    for a, b in zip(summary.rows, clean.rows):
        assert {k: v for k, v in a.items() if k != "seconds"} == {k: v for k, v in b.items() if k != "seconds"}


def test_cli_runs_a_small_grid_and_resumes(tmp_path, capsys):
    argv = ["--grid", "noise=0,0.2", "steps=15", "seeds=1", "samples_per_mode=6", "samples_per_class=4",
            "--loss", "triplet", "--positive", "easy", "--out", str(tmp_path), "--workers", "1", "--no-progress",
            "--measures", "separation"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "2 configurations (2 runs) in 1 blocks" in out and "2 ok, 0 failed, 0 already done; 1 tasks" in out
    assert main(argv) == 0
    assert "2 ok, 0 failed, 2 already done; 0 tasks" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--grid", "nosie=0.1"], r"unknown grid field 'nosie'; allowed: classes, modes, "),
        (["--grid", "noise=0.1,abc"], r"grid field noise must be a number, got 'abc'"),
        (["--grid", "noise=1.5"], r"grid field noise: noise must be in \[0, 1\), got 1.5"),
        (["--grid", "samples_per_class=1"], r"samples_per_class must be an integer in \[2, inf\), got 1"),
        (["--grid", "modes=3,x"], r"grid field modes must be an integer or per-class integers a:b:c, got 'x'"),
        (["--grid", "noise"], r"--grid entries look like field=v1,v2,... ; got 'noise'"),
        (["--grid", "noise=0.1", "noise=0.2"], r"--grid field 'noise' is given twice"),
        (["--grid", "noise=0.1,0.1"], r"grid field noise has repeated values"),
        (["--loss", "hinge"], r"grid field loss must be one of .*; got 'hinge'"),
        (["--grid", "loss=triplet", "--loss", "margin"], r"--loss and --grid loss=... both given; use one"),
        (["--grid", "classes_per_batch=5"], r"classes_per_batch must be an integer in \[1, 4\], got 5"),
        (["--grid-file", "/nonexistent/grid.json"], r"--grid-file: cannot read /nonexistent/grid.json"),
        (["--workers", "0"], r"--workers must be an integer in \[1, inf\), got 0"),
        (["--measures", "some"], r"--measures must be one of separation, full; got 'some'"),
    ],
)
def test_bad_grids_exit_2_with_one_line(argv, match, capsys):
    with pytest.raises(SystemExit) as info:
        main([*argv, "--dry-run"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    import re

    assert re.search(match, err), err


def test_grid_file_and_defaults(tmp_path, capsys):
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps([{"noise": [0, 0.1], "modes": [[2, 3, 2, 3]]}, {"noise": 0.1, "loss": "margin"}]))
    assert main(["--grid-file", str(grid), "--dry-run"]) == 0
    assert "6 configurations (18 runs) in 4 blocks" in capsys.readouterr().out
    # The default grids are the phase diagrams: eps x M and eps x K share their (M = 12, K = 3) column.
    points = expand_grid(default_grids())
    n_eps, n_m, n_k = (len(default_grids()[0]["noise"]), len(default_grids()[0]["samples_per_class"]),
                       len(default_grids()[1]["modes"]))
    assert len(points) == 3 * 2 * n_eps * (n_m + n_k - 1)
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(SystemExit):
        main(["--grid-file", str(bad), "--dry-run"])
    assert "must hold a JSON object" in capsys.readouterr().err


def test_keys_are_stable_and_distinct():
    a = SweepPoint(SimConfig(noise=0.1), "triplet", "easy", "hard")
    assert a.key("full") == SweepPoint(SimConfig(noise=0.1), "triplet", "easy", "hard").key("full")
    others = [
        SweepPoint(SimConfig(noise=0.2), "triplet", "easy", "hard"),
        SweepPoint(SimConfig(noise=0.1, seed=1), "triplet", "easy", "hard"),
        SweepPoint(SimConfig(noise=0.1), "triplet", "random", "hard"),
        SweepPoint(SimConfig(noise=0.1), "triplet", "easy", "semihard"),
    ]
    keys = {a.key("full"), a.key("separation"), *(p.key("full") for p in others)}
    assert len(keys) == 6
    assert parse_grid_args(["modes=3,2:3:4:2", "classes_per_batch=none,2"]) == {
        "modes": [3, (2, 3, 4, 2)], "classes_per_batch": [None, 2]}
    # "default" resolves to the loss's published negative rule, so it hashes like naming that rule.
    (p,) = expand_grid({"negative": "default", "loss": "nca", "positive": "easy"})
    assert p.negative == "all"
