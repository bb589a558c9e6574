"""``python -m collapse.bench`` end to end at tiny sizes: files, exit status, one-line argument errors; peak memory and
the compiled step. No test asserts a wall-clock time."""

import json

import pytest
import torch

from collapse.bench import __main__ as cli
from collapse.bench import loss_cases
from collapse.bench.measure import peak_memory, time_pair
from collapse.losses import make_loss

TINY = ["--batch-sizes", "16", "--eval-sizes", "200", "--nmi-sizes", "", "--repeats", "1", "--budget", "0.2",
        "--no-progress", "--threads", "1"]


@pytest.mark.slow
def test_tiny_run_writes_files_and_passes(tmp_path, capsys):
    (tmp_path / "R.md").write_text("# R\n\n<!-- bench:start -->\nOLD-SECTION\n<!-- bench:end -->\n")
    code = cli.main([*TINY, "--sections", "loss,eval", "--out", str(tmp_path), "--readme", str(tmp_path / "R.md")])
    out = capsys.readouterr().out
    assert code == 0, out
    data = json.loads((tmp_path / "bench.json").read_text())
    assert {r["section"] for r in data["rows"]} == {"loss", "eval"}
    assert all(r["check"] in ("ok", "n/a") for r in data["rows"])
    assert "all correctness checks passed" in out and "triplet EPS/semihard" in out
    readme = (tmp_path / "R.md").read_text()
    assert "<!-- bench:start -->" in readme and "OLD-SECTION" not in readme


def test_readme_must_exist_with_the_markers_and_out_must_be_writable(tmp_path, capsys):
    """Reproduction 5 of issue 10: --readme MISSING/README.md created the folder and the file and exited 0."""
    no_marks = tmp_path / "plain.md"
    no_marks.write_text("# notes\n")
    (tmp_path / "FILE").write_text("x")
    for extra, match in [
        (["--readme", str(tmp_path / "MISSING" / "README.md")], "does not exist"),
        (["--readme", str(no_marks)], "lacks the markers"),
        (["--out", str(tmp_path / "FILE" / "bench")], "FILE is a file"),
        (["--batch-sizes", ","], "--batch-sizes must name at least one value"),
        (["--dim", "0"], "--dim"),
    ]:
        with pytest.raises(SystemExit) as exc:
            cli.main([*TINY, "--sections", "loss", "--out", str(tmp_path / "out"), *extra])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and match in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "MISSING").exists() and no_marks.read_text() == "# notes\n"
    assert not (tmp_path / "out" / "bench.json").exists()


def test_a_failed_check_exits_1_and_names_the_case(tmp_path, capsys, monkeypatch):
    case = loss_cases.LOSS_CASES["triplet EPS/semihard"]
    wrong = loss_cases.LossCase(case.name, lambda: make_loss("triplet", "hard", "semihard"), case.pml, case.check, "")
    monkeypatch.setitem(loss_cases.LOSS_CASES, case.name, wrong)
    code = cli.main([*TINY, "--sections", "loss", "--losses", case.name, "--out", str(tmp_path)])
    captured = capsys.readouterr()
    assert code == 1
    assert "CHECK FAILED: triplet EPS/semihard at size 16" in captured.err


@pytest.mark.parametrize(
    "argv,match",
    [
        (["--device", "tpu"], "--device must be cpu or cuda"),
        (["--batch-sizes", "a,b"], "--batch-sizes must be comma-separated integers"),
        (["--batch-sizes", "2"], "--batch-sizes must be an integer in"),
        (["--sections", "loss,gpu"], "--sections must be one of"),
        (["--losses", "nope"], "--losses must be one of"),
        (["--budget", "-1"], "--budget must be in"),
    ],
)
def test_bad_arguments_are_one_line_errors(argv, match, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and match in err and len(err.strip().splitlines()) == 1


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for flag in ("--quick", "--device", "--out", "--readme", "--compile", "--threads"):
        assert flag in out


def test_peak_memory_sees_a_large_cpu_allocation():
    peak = peak_memory(lambda: torch.ones(64 * 1024 * 1024 // 4).add_(1).sum())
    if peak.peak_mb is None:
        pytest.skip("no /proc/self/clear_refs here")
    assert peak.rise_mb >= 48  # a 64 MiB tensor


def test_time_pair_runs_both_and_returns_medians():
    calls = []
    a, b = time_pair(lambda: calls.append("a"), lambda: calls.append("b"), repeats=3, warmup=1, rounds=2)
    # Round 1: a warm-up and 2 timed calls per side; round 2: one untimed call and 1 timed call.
    assert "".join(calls) == "aaabbbaabb" and a >= 0 and b >= 0
    calls.clear()
    time_pair(lambda: calls.append("a"), lambda: calls.append("b"), repeats=3, warmup=2)
    # By default one timed call per block: 2 warm-ups first, then one untimed call before each later timed call.
    assert "".join(calls) == "aaabbbaabbaabb"
    assert time_pair(None, lambda: None, repeats=1, warmup=0)[0] is None
    cpu: list = []
    time_pair(lambda: sum(range(10_000)), None, repeats=3, warmup=0, cpu=cpu)
    assert len(cpu) == 2 and cpu[0] > 0 and cpu[1] is None  # the process's CPU time per call, a median


@pytest.mark.slow
def test_compiled_step_equals_eager():
    x, y = loss_cases.make_batch(24, 8, seed=0)
    loss = make_loss("triplet", "easy", "semihard")
    eager = loss_cases.ours_step(loss, x, y)()
    compiled = loss_cases.ours_step(loss, x, y, compiled=True, backend="eager")()
    torch.testing.assert_close(compiled, eager)


def test_sweep_row_reports_both_rates(tmp_path, monkeypatch, capsys):
    from collapse.bench import sweep_case

    fake = {"runs": 48, "steps": 100, "grid": "g", "batched_seconds": 4.0, "batched_runs_per_s": 12.0,
            "runs_per_program": 12, "unbatched_seconds": 24.0, "unbatched_runs_per_s": 2.0, "speedup": 6.0}
    monkeypatch.setattr(sweep_case, "sweep_throughput", lambda quick: fake)
    assert cli.main([*TINY, "--sections", "sweep", "--out", str(tmp_path)]) == 0
    row = json.loads((tmp_path / "bench.json").read_text())["rows"][0]
    assert row["size"] == 48 and row["ours_ms"] == pytest.approx(1000 * 4.0 / 48)
    assert "12.0 runs/s batched" in row["note"] and "(6.0x)" in row["note"]


def test_probe_time_is_the_call_not_the_memory_bookkeeping(monkeypatch):
    import time

    from collapse.bench import runner
    from collapse.bench.measure import Peak

    def slow_peak(fn, *, device="cpu"):  # bookkeeping that takes long, around a call that does not
        time.sleep(0.3)
        fn()
        return Peak(1.0, 0.0)

    monkeypatch.setattr(runner, "peak_memory", slow_peak)
    config = runner.BenchConfig(budget=0.2, repeats=2, warmup=0)
    sides = runner._measure(config, torch.device("cpu"), lambda: None, lambda: None)
    # A probe counted with the 0.3 s bookkeeping would exceed the 0.2 s budget and leave one probe-only repeat.
    assert all(s.repeats == 2 for s in sides)


@pytest.mark.parametrize(
    "argv,match",
    [
        (["--runs", "0"], "--runs"),
        (["--include", "no/such/bench.json"], "--include no/such/bench.json: not the bench.json"),
    ],
)
def test_runs_and_include_are_checked_before_any_compute(argv, match, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main([*argv, "--out", str(tmp_path)])
    assert exc.value.code == 2 and match in capsys.readouterr().err


def test_from_rebuilds_the_section_of_an_earlier_run_with_included_rows_and_runs_nothing(tmp_path, capsys, monkeypatch):
    from collapse.bench import runner
    from collapse.bench.report import write_results

    monkeypatch.setattr(runner, "run_benchmark", lambda *a, **k: pytest.fail("--from must not run the benchmark"))
    machine = {"cpu": "Test CPU", "cores": 2, "torch_threads": 1, "torch": "2.13.0", "pytorch_metric_learning": "2.9.0",
               "load_average": [1.0, 1.0, 1.0]}
    row = {"section": "loss", "case": "triplet EPS/semihard", "size": 512, "ours_ms": 2.0, "pml_ms": 12.0, "ratio": 6.0,
           "check": "ok", "note": None}
    evaluation = dict(row, section="eval", case="retrieval", size=100_000, ratio=1.1, ours_peak_mb=700.0)
    base = {"config": {"command": "python -m collapse.bench --quick", "device": "cpu"}, "machine": machine,
            "failures": [], "elapsed_s": 5.0}
    write_results(tmp_path / "main", base | {"rows": [row]})
    write_results(tmp_path / "eval", base | {"rows": [evaluation]})
    readme = tmp_path / "R.md"
    readme.write_text("# R\n\n<!-- bench:start -->\nOLD-SECTION\n<!-- bench:end -->\n")
    argv = ["--from", str(tmp_path / "main" / "bench.json"), "--include", str(tmp_path / "eval" / "bench.json"),
            "--out", str(tmp_path / "out"), "--readme", str(readme)]
    assert cli.main(argv) == 0
    text = readme.read_text()
    assert "python -m collapse.bench --quick" in text and "| retrieval * | 100000 |" in text
    assert "OLD-SECTION" not in text
    assert "evaluation at N=100k: no slower than PML | met" in text
    assert cli.main(argv) == 0 and readme.read_text() == text  # idempotent: the inclusion is not listed twice
    data = json.loads((tmp_path / "out" / "bench.json").read_text())
    assert len(data["rows"]) == 2 and len(data["included"]) == 1


def test_dim_sets_the_loss_rows_embedding_dimension(tmp_path, capsys):
    args = cli.build_parser().parse_args([*TINY, "--dim", "8", "--quick"])
    assert cli.config_from_args(args, ["--dim", "8"]).dim == 8
    code = cli.main([*TINY, "--dim", "3", "--sections", "loss", "--losses", "contrastive all/all", "--out",
                     str(tmp_path)])
    assert code == 0, capsys.readouterr().out
    data = json.loads((tmp_path / "bench.json").read_text())
    assert "--dim 3" in data["config"]["command"] and data["config"]["dim"] == 3
