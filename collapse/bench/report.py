"""Benchmark output: the printed table, the JSON/CSV files and the README "Performance" section.

The README section is the text between the markers :data:`START` and :data:`END`; :func:`rewrite_readme` replaces
only that text (appending a ``## Performance`` section with the markers if the README has none yet), so running it
twice with the same result leaves the file unchanged.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from collapse.io import write_csv, write_json, write_text

__all__ = [
    "END",
    "START",
    "combine_runs",
    "format_table",
    "include_results",
    "markdown_section",
    "rewrite_readme",
    "target_verdicts",
    "write_results",
]

START = "<!-- bench:start -->"
END = "<!-- bench:end -->"

#: The CPU loss target: our step at least this many times faster than PML's at every B >= 512 (issue 15).
CPU_TARGET = 5.0

#: (row key, header, width); numbers are formatted by :func:`_cell`.
COLUMNS = (
    ("section", "section", 6),
    ("case", "case", 32),
    ("size", "size", 7),
    ("ours_ms", "ours ms", 9),
    ("pml_ms", "PML ms", 9),
    ("ratio", "PML/ours", 8),
    ("cpu_ratio", "CPU time", 8),
    ("ours_peak_mb", "ours MB", 12),
    ("pml_peak_mb", "PML MB", 12),
    ("check", "check", 6),
)


def _cell(key: str, value: object, row: dict | None = None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if key in ("ratio", "cpu_ratio"):
        runs = [v for v in (row or {}).get(f"{key}_runs") or () if v is not None]
        return f"{value:.1f}x" + (f" ({'/'.join(f'{v:.1f}' for v in runs)})" if len(runs) > 1 else "")
    if key in ("ours_ms", "pml_ms"):
        return f"{value:.3g}" if value < 100 else f"{value:.0f}"
    if key in ("ours_peak_mb", "pml_peak_mb"):
        rise = (row or {}).get(key.replace("peak", "rise"))
        return f"{value:.0f}" + ("" if rise is None else f" (+{rise:.0f})")
    return str(value)


def format_table(rows: Sequence[dict]) -> str:
    """A fixed-width text table, one line per row."""
    head = "  ".join(h.ljust(w) if i < 3 else h.rjust(w) for i, (_, h, w) in enumerate(COLUMNS))
    lines = [head, "-" * len(head)]
    for r in rows:
        cells = []
        for i, (key, _, width) in enumerate(COLUMNS):
            text = _cell(key, r.get(key), r)
            cells.append(text.ljust(width) if i < 3 else text.rjust(width))
        lines.append("  ".join(cells))
    return "\n".join(lines)


def target_verdicts(rows: Sequence[dict], device: str) -> list[dict]:
    """The targets of the benchmark (issue 6), each ``met``, ``missed`` or ``not measured``, with the numbers."""
    out = []
    loss_rows = [r for r in rows if r["section"] == "loss" and not r.get("reference")]
    cpu = device == "cpu"
    for case in dict.fromkeys(r["case"] for r in loss_rows):
        big = [r for r in loss_rows if r["case"] == case and r["size"] >= 512 and r.get("ratio") is not None]
        if cpu and big:
            worst = min(big, key=lambda r: r["ratio"])
            out.append(
                _verdict(
                    f"{case}: >= {CPU_TARGET:g}x faster than PML at B >= 512 (CPU)",
                    worst["ratio"] >= CPU_TARGET,
                    f"lowest ratio {worst['ratio']:.1f}x at B={worst['size']}",
                )
            )
    for r in loss_rows:
        if cpu and r["size"] == 8192:
            peak = r.get("ours_peak_mb")
            out.append(
                _verdict(f"{r['case']}: B=8192 under 2 GB peak (CPU)", None if peak is None else peak < 2048,
                         "not measured" if peak is None else f"{peak:.0f} MB process peak")
            )
    for r in rows:
        if r["section"] == "eval" and r["case"] == "retrieval" and r["size"] >= 100_000:
            peak = r.get("ours_peak_mb")
            out.append(
                _verdict("evaluation at N=100k: under 2 GB peak", None if peak is None else peak < 2048,
                         "not measured" if peak is None else f"{peak:.0f} MB process peak")
            )
            if r.get("ratio") is not None:
                ok = r["ratio"] >= 1.0
                out.append(_verdict("evaluation at N=100k: no slower than PML", ok, f"PML/ours {r['ratio']:.2f}"))
    out += gpu_verdicts(rows) if not cpu else [
        {"target": name, "verdict": "not measured", "detail": "run with --device cuda on a GPU"}
        for name, _ in GPU_TARGETS
    ]
    return out


#: The GPU targets of issue 15 (name, key).
GPU_TARGETS = (
    ("GPU: >= 5x faster than PML at B=128", "ratio128"),
    ("GPU: <= 2 ms at B=8192", "ms8192"),
    ("GPU: peak memory <= 0.6x PML's at B=8192", "mem8192"),
)


def gpu_verdicts(rows: Sequence[dict], small: int = 128, large: int = 8192) -> list[dict]:
    """The GPU targets, each checked on every (non-reference) loss case of the run; ``not measured`` where the run
    has no row of that size (or PML was not run there). A case's compiled row counts where it is faster.
    ``small``/``large`` are the batch sizes of the targets (128 and 8192; a dry run passes its tiny sizes)."""
    loss_rows = [r for r in rows if r["section"] in ("loss", "compiled") and not r.get("reference")]

    def best(case: str, size: int) -> dict | None:
        found = [r for r in loss_rows if r["case"].removesuffix(" compiled") == case and r["size"] == size
                 and r.get("ours_ms") is not None]
        return min(found, key=lambda r: r["ours_ms"]) if found else None

    cases = list(dict.fromkeys(r["case"].removesuffix(" compiled") for r in loss_rows))
    out = []
    for name, key in GPU_TARGETS:
        for case in cases:
            size = small if key == "ratio128" else large
            r = best(case, size)
            if r is None:
                out.append(_verdict(f"{name}: {case}", None, f"no row at B={size}"))
            elif key == "ratio128":
                ratio = r.get("ratio")
                out.append(_verdict(f"{name}: {case}", None if ratio is None else ratio >= 5.0,
                                    "PML not run" if ratio is None else f"{ratio:.1f}x ({r['case']})"))
            elif key == "ms8192":
                out.append(_verdict(f"{name}: {case}", r["ours_ms"] <= 2.0, f"{r['ours_ms']:.2f} ms ({r['case']})"))
            else:
                ours, pml = r.get("ours_peak_mb"), r.get("pml_peak_mb")
                ok = None if ours is None or pml is None else ours <= 0.6 * pml
                detail = "not measured" if ok is None else f"{ours:.0f} MB vs PML {pml:.0f} MB ({ours / pml:.2f}x)"
                out.append(_verdict(f"{name}: {case}", ok, detail))
    return out


def _verdict(name: str, met: bool | None, detail: str) -> dict:
    verdict = "not measured" if met is None else ("met" if met else "missed")
    return {"target": name, "verdict": verdict, "detail": detail}


#: Row keys combined over runs: times and ratios by the median, peaks by the maximum.
_MEDIAN_KEYS = ("ours_ms", "pml_ms", "ratio", "ours_cpu_ms", "pml_cpu_ms", "cpu_ratio")
_MAX_KEYS = ("ours_peak_mb", "ours_rise_mb", "pml_peak_mb", "pml_rise_mb")


def _row_key(row: dict) -> tuple:
    return row["section"], row["case"], row.get("size")


def combine_rows(runs: Sequence[Sequence[dict]]) -> list[dict]:
    """One row per (section, case, size) from the rows of several runs, in first-seen order: times and the in-run
    ratio PML / ours by the median over the runs that measured them (``ratio_runs`` keeps each run's ratio), peak
    memory by the maximum; the check is ``FAILED`` if it failed in any run, else ``ok`` if ok in any, else ``n/a``."""
    groups: dict[tuple, list[dict]] = {}
    for rows in runs:
        for row in rows:
            groups.setdefault(_row_key(row), []).append(row)
    out = []
    for same in groups.values():
        row = dict(same[0])
        for key in _MEDIAN_KEYS:
            values = [r.get(key) for r in same if r.get(key) is not None]
            row[key] = statistics.median(values) if values else None
        for key in _MAX_KEYS:
            values = [r.get(key) for r in same if r.get(key) is not None]
            row[key] = max(values) if values else None
        row["ratio_runs"] = [r.get("ratio") for r in same]
        row["cpu_ratio_runs"] = [r.get("cpu_ratio") for r in same]
        row["runs"] = len(same)
        checks = [r.get("check") for r in same]
        failed = [r for r in same if r.get("check") == "FAILED"]
        row["check"] = "FAILED" if failed else ("ok" if "ok" in checks else "n/a")
        if failed:
            row["check_detail"] = failed[0].get("check_detail")
        row["note"] = next((r["note"] for r in same if r.get("note")), None)
        out.append(row)
    return out


def combine_runs(results: Sequence[dict]) -> dict:
    """The result of ``len(results)`` runs of the same benchmark as one result (rows by :func:`combine_rows`; the
    machine, with every run's load average; the elapsed time summed; every run's failures)."""
    if len(results) == 1:
        return results[0]
    first = results[0]
    machine = dict(first["machine"])
    machine["load_average_runs"] = [r["machine"].get("load_average") for r in results]
    machine["load_average_end"] = results[-1]["machine"].get("load_average_end")
    return first | {
        "config": first["config"] | {"runs": len(results)},
        "machine": machine,
        "rows": combine_rows([r["rows"] for r in results]),
        "failures": [f for r in results for f in r["failures"]],
        "elapsed_s": sum(r["elapsed_s"] for r in results),
    }


def include_results(result: dict, paths: Sequence[str | Path]) -> dict:
    """``result`` with the rows of earlier runs' ``bench.json`` files appended (combined over the files by
    :func:`combine_rows`, each marked ``included``) and their provenance under ``"included"``; a row of this run
    with the same (section, case, size) is replaced. For rows too slow to time in every run (e.g. evaluation at
    N = 100k), run once per file and then joined to the section."""
    loaded = []
    for path in paths:
        try:
            loaded.append(json.loads(Path(path).read_text()))
        except (OSError, ValueError) as exc:
            raise ValueError(f"--include {path}: not a readable bench.json ({type(exc).__name__})") from exc
    rows = [dict(r, included=True) for r in combine_rows([d["rows"] for d in loaded])]
    keys = {_row_key(r) for r in rows}
    provenance = [
        {
            "path": str(path),
            "command": d["config"].get("command"),
            "runs": d["config"].get("runs", 1),
            "load_average": d["machine"].get("load_average"),
            "load_average_runs": d["machine"].get("load_average_runs"),
            "started_utc": d.get("started_utc"),
            "elapsed_s": d.get("elapsed_s"),
        }
        for path, d in zip(paths, loaded)
    ]
    return result | {
        "rows": [r for r in result["rows"] if _row_key(r) not in keys] + rows,
        "failures": result["failures"] + [f for d in loaded for f in d.get("failures", [])],
        "included": [p for p in result.get("included", []) if p["path"] not in {str(x) for x in paths}] + provenance,
    }


def write_results(out_dir: str | Path, result: dict, stem: str = "bench") -> list[Path]:
    """``<stem>.json`` (everything) and ``<stem>.csv`` (the rows), both written atomically."""
    out_dir = Path(out_dir)
    return [write_json(out_dir / f"{stem}.json", result), write_csv(out_dir / f"{stem}.csv", result["rows"])]


def markdown_section(result: dict) -> str:
    """The README text between the markers: how it was made, the machine, the table and the targets."""
    m = result["machine"]
    cfg = result["config"]
    runs = cfg.get("runs", 1)
    if runs > 1:
        loads = "; ".join(_load({"load_average": v}) for v in m.get("load_average_runs") or ())
        how = (
            f"; {runs} runs, load average at the start of each {loads}. Each row: the median over the runs of each "
            "run's median time, and of the in-run ratio PML / ours (each run's ratio in brackets); peak memory: the "
            "highest of the runs. Time of a step:"
        )
    else:
        how = f"; load average at the start {_load(m)}. Median"
    lines = [
        f"Generated by `{cfg['command']}` ({result['elapsed_s']:.0f} s) on {m['cpu']}, {m['cores']} cores, "
        f"{m['torch_threads']} torch threads, torch {m['torch']}, pytorch-metric-learning "
        f"{m['pytorch_metric_learning']}, device `{cfg['device']}`"
        + (f" ({m['gpu']})" if m.get("gpu") else "")
        + f"{how} wall-clock time of a forward + backward step "
        "(losses) or of the whole metric computation (evaluation); peak = the process's peak resident memory "
        "during one call (CPU) or peak allocated CUDA memory, and in brackets its rise over the memory in use before "
        "the call. CPU time = the same ratio PML / ours of the process's CPU time per call (all its threads), which "
        "leaves out the time other processes hold the cores: on a loaded machine a step of a few ms is stretched by "
        "the scheduler's time slices far more than a step of tens of ms, so its wall-clock ratio drops while the "
        "CPU-time ratio stays; the targets are judged on the wall-clock ratio. EPS = easy positive sampling. "
        "Every row's check compares our result with pytorch-metric-learning's "
        "on the same input (see `python -m collapse.bench --help` and `collapse/bench/`); the sweep row's time is per "
        "run.",
        "",
        "| section | case | size | ours (ms) | PML (ms) | PML / ours | PML / ours, CPU time | ours peak (MB) "
        "| PML peak (MB) | check |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in result["rows"]:
        cells = [_cell(k, r.get(k), r) for k, _, _ in COLUMNS]
        if r.get("included"):
            cells[1] += " *"
        lines.append("| " + " | ".join(cells) + " |")
    for inc in result.get("included", []):
        loads = inc.get("load_average_runs") or [inc.get("load_average")]
        lines += [
            "",
            f"\\* Included from `{inc['path']}`: `{_command_into(inc['command'], inc['path'])}`"
            + (f", started {inc['started_utc']}" if inc.get("started_utc") else "")
            + (f" ({inc['elapsed_s']:.0f} s)" if inc.get("elapsed_s") is not None else "")
            + f", load average at the start {'; '.join(_load({'load_average': v}) for v in loads)}"
            + " (rows marked * are combined over the included files as runs are).",
        ]
    if result.get("targets"):
        lines += ["", "| target | verdict | detail |", "|---|---|---|"]
        lines += [f"| {t['target']} | {t['verdict']} | {t['detail']} |" for t in result["targets"]]
    notes = [r for r in result["rows"] if r.get("note")]
    if notes:
        lines += [""] + [f"- {r['case']} ({r['size']}): {r['note']}" for r in notes]
    return "\n".join(lines)


def _load(machine: dict) -> str:
    load = machine.get("load_average")
    return "unknown" if not load else " / ".join(f"{v:.1f}" for v in load)


def rewrite_readme(path: str | Path, section: str) -> bool:
    """Put ``section`` between the markers of the README at ``path``; return whether the file changed."""
    path = Path(path)
    text = path.read_text() if path.exists() else ""
    block = f"{START}\n{section.strip()}\n{END}"
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.DOTALL)
    if pattern.search(text):
        new = pattern.sub(lambda _: block, text, count=1)
    else:
        new = text.rstrip("\n") + ("\n\n" if text else "") + f"## Performance\n\n{block}\n"
    if new == text:
        return False
    write_text(path, new)
    return True


def _command_into(command: str, path: str) -> str:
    """``command`` with its ``--out`` folder set to where its ``bench.json`` now lies (``path``'s folder): a run made
    in a scratch folder and moved into the repository then reads as the command that writes it there."""
    folder = str(PurePosixPath(path).parent)
    return re.sub(r"--out(=|\s+)\S+", f"--out {folder}", command) if "--out" in command else command
