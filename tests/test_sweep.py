"""``python -m collapse.sweep`` through the run layer: completion, resume, failing configurations, the CLI."""

import json
import re
from pathlib import Path

import pytest

from collapse.experiment import SimConfig
from collapse.runs import ResultStore, SimRun
from collapse.sweep import default_grids, expand_grid, main, parse_grid_args, run_sweep

BASE = SimConfig(steps=20, samples_per_mode=6, seeds=2)
# 8 configurations in 4 blocks (noise is batched inside a block).
GRID = {"noise": [0.0, 0.2], "samples_per_class": [4, 6], "loss": ["triplet"], "positive": ["random", "easy"]}


def _mtimes(store: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (store / "records").iterdir()}


def test_sweep_completes_then_resume_skips_what_is_done(tmp_path):
    runs = expand_grid(GRID, BASE, measures="separation")
    assert len(runs) == 8 and {r.block_noise for r in runs} == {(0.0, 0.2)}
    out, store = tmp_path / "sweep", tmp_path / "store"
    first = run_sweep(runs, out, store=store, backend="processes", progress=False)
    assert (first.configurations, first.skipped, first.tasks, first.ok, first.failed) == (8, 0, 4, 8, 0)
    assert len(list((store / "records").iterdir())) == 8
    (table_path,) = out.glob("sweep_*.json")
    table = json.loads(table_path.read_text())["results"]
    assert {r["key"] for r in table} == {r.key for r in runs}
    assert all(r["status"] == "ok" and r["mode_separation"] >= 0 and len(r["per_seed"]) == 2 for r in table)
    assert len(table_path.with_suffix(".csv").read_text().splitlines()) == 9

    before = _mtimes(store)
    again = run_sweep(runs, out, store=store, backend="processes", progress=False)
    assert (again.skipped, again.tasks, again.ok) == (8, 0, 8)
    assert _mtimes(store) == before

    # Lose one record: only its block runs again, the other records stay untouched, the numbers come back the same.
    lost = runs[0]
    path = ResultStore(store).path(lost.key)
    old = json.loads(path.read_text())
    path.write_text("{ truncated")  # an invalid file counts as missing
    third = run_sweep(runs, out, store=store, backend="inline", progress=False)
    assert (third.skipped, third.tasks, third.ok) == (7, 1, 8)
    after = _mtimes(store)
    assert {k for k in after if after[k] != before[k]} == {path.name}
    new = json.loads(path.read_text())
    assert new["result"] == old["result"]


def test_a_configuration_that_raises_is_recorded_and_the_sweep_goes_on(tmp_path):
    # 6 samples per mode x 3 modes = 18 per class: a batch of M = 30 per class cannot be drawn.
    runs = expand_grid({"noise": [0.0, 0.1], "samples_per_class": [4, 30], "positive": ["easy"]}, BASE,
                       measures="separation")
    store = tmp_path / "store"
    summary = run_sweep(runs, tmp_path / "out", store=store, backend="inline", progress=False)
    assert (summary.ok, summary.failed) == (2, 2)
    for run, row in zip(runs, summary.rows):
        if run.config.samples_per_class == 30:
            assert row["status"] == "failed" and "classes_per_batch=4 needs 4 classes with >= 30" in row["error"]
            assert ResultStore(store).get(run).status == "failed"
        else:
            assert row["status"] == "ok"
    # Failed configurations are retried by a rerun, finished ones are not.
    rerun = run_sweep(runs, tmp_path / "out", store=store, backend="inline", progress=False)
    assert (rerun.skipped, rerun.tasks) == (2, 1)


@pytest.mark.slow
def test_the_dask_backend_gives_the_same_records(tmp_path):
    runs = expand_grid({**GRID, "samples_per_class": [4]}, BASE, measures="separation")
    a = run_sweep(runs, tmp_path / "a", store=tmp_path / "sa", backend="dask", workers=1, progress=False)
    b = run_sweep(runs, tmp_path / "b", store=tmp_path / "sb", backend="inline", progress=False)
    assert a.ok == b.ok == 4
    assert [ResultStore(tmp_path / "sa").result(r) for r in runs] == [ResultStore(tmp_path / "sb").result(r)
                                                                       for r in runs]


def test_cli_runs_a_small_grid_and_resumes(tmp_path, capsys):
    argv = ["--grid", "noise=0,0.2", "steps=15", "seeds=1", "samples_per_mode=6", "samples_per_class=4",
            "--loss", "triplet", "--positive", "easy", "--out", str(tmp_path / "out"), "--store",
            str(tmp_path / "store"), "--backend", "inline", "--no-progress", "--measures", "separation"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "2 configurations (2 runs) in 1 blocks" in out and "2 ok, 0 failed, 0 already done; 1 blocks" in out
    assert main(argv) == 0
    assert "2 ok, 0 failed, 2 already done; 0 blocks" in capsys.readouterr().out
    assert len(list((tmp_path / "out").glob("sweep_*.json"))) == 1  # same runs, same file


def test_output_problems_are_refused_before_any_compute(tmp_path, capsys):
    (tmp_path / "FILE").write_text("x")
    for flag in ("--out", "--store"):
        with pytest.raises(SystemExit) as info:
            main(["--grid", "noise=0", "steps=15", flag, str(tmp_path / "FILE" / "sub"), "--no-progress"])
        assert info.value.code == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "FILE is a file" in err
    assert not (tmp_path / "FILE" / "sub").exists()


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--grid", "nosie=0.1"], r"unknown grid field 'nosie'; allowed: classes, modes, "),
        (["--grid", "noise=0.1,abc"], r"grid field noise must be a number, got 'abc'"),
        (["--grid", "noise=1.5"], r"grid field noise: noise must be in \[0, 1\), got 1.5"),
        (["--grid", "samples_per_class=1"], r"samples_per_class must be an integer in \[2, inf\), got 1"),
        (["--grid", "modes=3,x"], r"grid field modes must be an integer or per-class integers a:b:c, got 'x'"),
        (["--grid", "noise"], r"--grid entries look like field=v1,v2,... with at least one value; got 'noise'"),
        (["--grid", "noise=,"], r"--grid entries look like field=v1,v2,... with at least one value; got 'noise=,'"),
        (["--loss", ","], r"--loss must name at least one value \(comma-separated\), got ','"),
        (["--backend", "threads"], r"--backend must be one of processes, dask, inline; got 'threads'"),
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
    assert parse_grid_args(["modes=3,2:3:4:2", "classes_per_batch=none,2"]) == {
        "modes": [3, (2, 3, 4, 2)], "classes_per_batch": [None, 2]}
    # "default" resolves to the loss's published negative rule, so it hashes like naming that rule.
    (run,) = expand_grid({"negative": "default", "loss": "nca", "positive": "easy"})
    assert run.negative == "all" and run.key == SimRun(SimConfig(), "nca", "easy", "all").key
    # The noise levels of a grid are one block, so a level's key depends on the levels trained with it.
    (a,) = [r for r in expand_grid({"noise": [0.1, 0.2], "positive": "easy"}) if r.config.noise == 0.1]
    (b,) = expand_grid({"noise": [0.1], "positive": "easy"})
    assert a.key != b.key and b.key == SimRun(SimConfig(noise=0.1), "triplet", "easy", "hard").key
