"""Table, JSON/CSV files and the README section rewrite (idempotent, touching nothing outside the markers)."""

import csv
import json

from collapse.bench.report import (
    END,
    START,
    format_table,
    markdown_section,
    rewrite_readme,
    target_verdicts,
    write_results,
)

ROWS = [
    {"section": "loss", "case": "triplet EPS/semihard", "size": 512, "ours_ms": 1.5, "pml_ms": 9.0, "ratio": 6.0,
     "ours_peak_mb": 300.0, "pml_peak_mb": 320.0, "check": "ok", "note": None},
    {"section": "loss", "case": "triplet EPS/semihard", "size": 8192, "ours_ms": 250.0, "pml_ms": None, "ratio": None,
     "ours_peak_mb": 1200.0, "pml_peak_mb": None, "check": "n/a", "note": "PML not run"},
    {"section": "eval", "case": "retrieval", "size": 100_000, "ours_ms": 30000.0, "pml_ms": 36000.0, "ratio": 1.2,
     "ours_peak_mb": 900.0, "pml_peak_mb": 1500.0, "check": "FAILED", "note": None},
]


def _result():
    return {
        "config": {"command": "python -m collapse.bench --quick", "device": "cpu"},
        "machine": {"cpu": "Test CPU", "cores": 2, "torch_threads": 2, "torch": "2.13.0",
                    "pytorch_metric_learning": "2.9.0", "load_average": [0.5, 0.4, 0.3]},
        "rows": ROWS,
        "elapsed_s": 12.0,
        "targets": target_verdicts(ROWS, "cpu"),
    }


def test_table_has_every_row_and_formats_missing_values():
    text = format_table(ROWS)
    lines = text.splitlines()
    assert len(lines) == 2 + len(ROWS)
    assert "6.0x" in lines[2] and "FAILED" in lines[4]
    assert " - " in lines[3] or lines[3].split()[4] == "-"


def test_targets():
    verdicts = {t["target"]: t for t in target_verdicts(ROWS, "cpu")}
    assert verdicts["triplet EPS/semihard: >= 5x faster than PML at B >= 512 (CPU)"]["verdict"] == "met"
    assert verdicts["triplet EPS/semihard: B=8192 under 2 GB peak (CPU)"]["verdict"] == "met"
    assert verdicts["evaluation at N=100k: no slower than PML"]["verdict"] == "met"
    assert all(t["verdict"] == "not measured" for name, t in verdicts.items() if name.startswith("GPU"))


def test_cpu_target_is_5x_and_a_ratio_below_it_misses():
    rows = [dict(ROWS[0], ratio=4.9)]
    (verdict,) = [t for t in target_verdicts(rows, "cpu") if "faster than PML at B >= 512" in t["target"]]
    assert verdict["verdict"] == "missed" and "4.9x" in verdict["detail"]


def test_gpu_verdicts_read_the_target_sizes_and_prefer_the_compiled_row():
    from collapse.bench.report import gpu_verdicts

    case = "triplet EPS/semihard"
    rows = [
        {"section": "loss", "case": case, "size": 128, "ours_ms": 2.0, "pml_ms": 8.0, "ratio": 4.0},
        {"section": "compiled", "case": f"{case} compiled", "size": 128, "ours_ms": 1.0, "pml_ms": 8.0, "ratio": 8.0},
        {"section": "loss", "case": case, "size": 8192, "ours_ms": 2.5, "pml_ms": 30.0, "ratio": 12.0,
         "ours_peak_mb": 50.0, "pml_peak_mb": 100.0},
    ]
    got = {t["target"].split(":")[1].strip(): t for t in gpu_verdicts(rows)}
    assert got[">= 5x faster than PML at B=128"]["verdict"] == "met" and "compiled" in got[
        ">= 5x faster than PML at B=128"]["detail"]
    assert got["<= 2 ms at B=8192"]["verdict"] == "missed"
    assert got["peak memory <= 0.6x PML's at B=8192"]["verdict"] == "met"
    assert all(t["verdict"] == "not measured" for t in gpu_verdicts(rows, small=64, large=64))


def test_json_and_csv(tmp_path):
    paths = write_results(tmp_path / "out", _result())
    data = json.loads(paths[0].read_text())
    assert data["rows"][0]["ratio"] == 6.0 and data["machine"]["cpu"] == "Test CPU"
    with open(paths[1]) as fh:
        rows = list(csv.DictReader(fh))
    assert [r["case"] for r in rows] == [r["case"] for r in ROWS]
    assert not list((tmp_path / "out").glob(".*.tmp"))  # atomic writes leave no temporary files


def test_readme_rewrite_is_idempotent_and_local(tmp_path):
    readme = tmp_path / "README.md"
    before = "# Project\n\nIntro.\n\n## Performance\n\n" + START + "\nold table\n" + END + "\n\n## After\n\nKept.\n"
    readme.write_text(before)
    section = markdown_section(_result())
    assert rewrite_readme(readme, section)
    once = readme.read_text()
    assert not rewrite_readme(readme, section)
    assert readme.read_text() == once
    head, rest = once.split(START)
    body, tail = rest.split(END)
    assert head == before.split(START)[0] and tail == before.split(END)[1]
    assert "old table" not in body and "| triplet EPS/semihard | 512 |" in body and "Test CPU" in body


def test_readme_without_markers_gets_one_section(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# Project\n")
    assert rewrite_readme(readme, "table")
    text = readme.read_text()
    assert text == f"# Project\n\n## Performance\n\n{START}\ntable\n{END}\n"
    assert not rewrite_readme(readme, "table")


def test_runs_combine_by_median_time_and_ratio_highest_peak_and_any_failure():
    from collapse.bench.report import combine_rows, combine_runs

    def run(ratio, ours, peak, check="ok"):
        return [dict(ROWS[0], ratio=ratio, ours_ms=ours, ours_peak_mb=peak, check=check, check_detail=check)]

    (row,) = combine_rows([run(4.0, 2.0, 300.0), run(6.0, 1.0, 310.0), run(5.5, 3.0, 305.0)])
    assert row["ratio"] == 5.5 and row["ours_ms"] == 2.0 and row["ours_peak_mb"] == 310.0
    assert row["ratio_runs"] == [4.0, 6.0, 5.5] and row["runs"] == 3 and row["check"] == "ok"
    (row,) = combine_rows([run(6.0, 1.0, 300.0), run(6.0, 1.0, 300.0, check="FAILED")])
    assert row["check"] == "FAILED" and row["check_detail"] == "FAILED"
    results = [_result() | {"failures": [], "machine": _result()["machine"] | {"load_average": [float(i)] * 3}}
               for i in range(3)]
    combined = combine_runs(results)
    assert combined["config"]["runs"] == 3 and combined["elapsed_s"] == 36.0
    assert combined["machine"]["load_average_runs"] == [[0.0] * 3, [1.0] * 3, [2.0] * 3]
    text = markdown_section(combined | {"targets": []})
    assert "3 runs" in text and "0.0 / 0.0 / 0.0; 1.0 / 1.0 / 1.0; 2.0 / 2.0 / 2.0" in text
    assert "| 6.0x (6.0/6.0/6.0) |" in text  # each run's in-run ratio is shown next to the median
    assert combine_runs(results[:1]) is results[0]


def test_included_rows_replace_this_runs_rows_and_say_where_they_come_from(tmp_path):
    from collapse.bench.report import include_results

    earlier = _result() | {"failures": [], "started_utc": "2026-12-02 01:00 UTC"}
    paths = []
    for i, ratio in enumerate((1.5, 2.5, 2.0)):
        rows = [dict(ROWS[2], ratio=ratio, check="ok")]
        write_results(tmp_path / f"run{i}", earlier | {"rows": rows})
        paths.append(tmp_path / f"run{i}" / "bench.json")
    now = _result() | {"failures": [], "rows": [dict(r) for r in ROWS]}
    merged = include_results(now, paths)
    evals = [r for r in merged["rows"] if r["section"] == "eval"]
    assert len(evals) == 1 and evals[0]["included"] and evals[0]["ratio"] == 2.0 and evals[0]["check"] == "ok"
    assert len(merged["rows"]) == len(ROWS) and len(merged["included"]) == 3
    text = markdown_section(merged | {"targets": []})
    assert "| retrieval * |" in text and f"Included from `{paths[0]}`" in text and "01:00 UTC" in text


def test_an_included_file_shows_the_command_that_writes_it_where_it_lies():
    from collapse.bench.report import _command_into

    moved = "python -m collapse.bench --quick --out /tmp/scratch/run1 --no-progress"
    assert _command_into(moved, "results/bench/run1/bench.json") == (
        "python -m collapse.bench --quick --out results/bench/run1 --no-progress"
    )
    equals = "python -m collapse.bench --out=/x --quick"
    assert _command_into(equals, "a/bench.json") == "python -m collapse.bench --out a --quick"
    assert _command_into("python -m collapse.bench --quick", "a/bench.json") == "python -m collapse.bench --quick"
