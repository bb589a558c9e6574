"""The executor: the same records on every backend, resume, failures recorded and retried."""

import distributed
import pytest

from collapse.experiment import SimConfig, run_simulation
from collapse.runs import ResultStore, SimRun, execute, make_backend, make_local_cluster
from tests.runs.toy_kind import ToyRun

TOY = [ToyRun(x, group=x % 3) for x in range(9)]


def executions(log):
    return sorted(p.name.split("-")[0] for p in log.iterdir()) if log.exists() else []


@pytest.mark.parametrize("backend", ["inline", "processes"])
def test_every_run_gets_its_record_once_and_a_rerun_computes_nothing(tmp_path, backend):
    log = tmp_path / "log"
    runs = [ToyRun(r.x, r.group, log=str(log)) for r in TOY]
    ex = execute(runs, tmp_path / "store", backend=backend, workers=2, progress=False)
    assert (ex.computed, ex.skipped, ex.failed, ex.blocks) == (9, 0, 0, 3)
    assert [r["square"] for r in ex.results()] == [x * x for x in range(9)]
    assert ex.results()[0]["block"] == [0, 3, 6]  # one block per group
    again = execute(runs, tmp_path / "store", backend=backend, progress=False)
    assert (again.computed, again.skipped, again.blocks) == (0, 9, 0)
    assert executions(log) == sorted(str(x) for x in range(9))  # each run computed exactly once
    assert len(list((tmp_path / "store" / "records").iterdir())) == 9


def test_a_partly_done_block_is_recomputed_whole_but_only_missing_records_are_written(tmp_path):
    store = ResultStore(tmp_path).prepare()
    execute(TOY[:3], store, progress=False)
    before = {r.key: store.path(r.key).stat().st_mtime_ns for r in TOY[:3]}
    ex = execute(TOY, store, progress=False)
    assert (ex.skipped, ex.computed) == (3, 6)
    assert {r.key: store.path(r.key).stat().st_mtime_ns for r in TOY[:3]} == before


def test_a_failing_block_is_recorded_in_one_line_and_retried(tmp_path):
    runs = [ToyRun(1, 1), ToyRun(4, 1, fail=True), ToyRun(2, 2)]
    ex = execute(runs, tmp_path, progress=False)
    assert (ex.computed, ex.failed) == (1, 2)  # the whole failing block, not the other one
    rec = ResultStore(tmp_path).get(runs[0])
    assert rec.status == "failed" and rec.error == "RuntimeError: toy run 4 fails"
    assert ex.errors[0].endswith("RuntimeError: toy run 4 fails")
    fixed = [ToyRun(1, 1), ToyRun(4, 1), ToyRun(2, 2)]
    ex2 = execute(fixed, tmp_path, progress=False)
    assert (ex2.computed, ex2.skipped, ex2.failed) == (2, 1, 0)


def test_sim_records_are_run_simulation_on_every_backend(tmp_path):
    cfg = SimConfig(steps=20, samples_per_mode=6, seeds=2)
    runs = [SimRun(cfg, "triplet", pos, "hard") for pos in ("random", "easy")]
    inline = execute(runs, tmp_path / "a", progress=False).results()
    procs = execute(runs, tmp_path / "b", backend="processes", progress=False).results()
    for run, a, b in zip(runs, inline, procs):
        ref = run_simulation(cfg, "triplet", run.positive, "hard")
        assert a["per_seed"] == ref.per_seed == b["per_seed"]
        assert a["final_loss"] == pytest.approx(ref.summary["final_loss"])


@pytest.mark.slow
def test_an_existing_dask_cluster_by_address(tmp_path):
    cluster = make_local_cluster(workers=1)
    try:
        with distributed.Client(cluster):
            ex = execute(TOY[:4], tmp_path, address=cluster.scheduler_address, progress=False)
        assert ex.computed == 4 and [r["square"] for r in ex.results()] == [0, 1, 4, 9]
    finally:
        cluster.close()


@pytest.mark.slow
def test_a_killed_dask_worker_costs_only_its_own_block(tmp_path):
    marker = tmp_path / "killed-once"
    runs = [ToyRun(x, group=x % 2, kill_once=str(marker) if x == 1 else "") for x in range(4)]
    ex = execute(runs, tmp_path / "store", backend="dask", workers=2, progress=False)
    assert (ex.computed, ex.failed) == (4, 0) and marker.is_file()  # the block was rescheduled and finished
    killed = int(marker.read_text())
    store = ResultStore(tmp_path / "store")
    assert store.result(runs[1])["square"] == 1 and store.result(runs[1])["pid"] != killed


def test_a_dead_process_pool_fails_its_blocks_and_a_rerun_finishes_them(tmp_path):
    marker = tmp_path / "killed-once"
    runs = [ToyRun(x, group=x, kill_once=str(marker) if x == 0 else "") for x in range(3)]
    first = execute(runs, tmp_path / "store", backend="processes", workers=1, progress=False)
    assert first.failed >= 1 and "BrokenProcessPool" in first.errors[0]
    second = execute(runs, tmp_path / "store", backend="processes", workers=1, progress=False)
    assert second.failed == 0 and [r["square"] for r in second.results()] == [0, 1, 4]


def test_bad_backend_is_one_line():
    with pytest.raises(ValueError, match="backend must be one of inline, processes, dask; got 'threads'"):
        make_backend("threads")
    with pytest.raises(ValueError, match=r"workers must be an integer in \[1, inf\), got 0"):
        make_backend("processes", workers=0)
