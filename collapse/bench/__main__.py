"""``python -m collapse.bench``: our losses, samplers and metrics against pytorch-metric-learning, timed and checked.

Examples::

    python -m collapse.bench --quick                 # about a minute on 2 CPU cores
    python -m collapse.bench --quick --readme        # and rewrite the README "Performance" section
    python -m collapse.bench --device cuda --compile # GPU rows, our step through torch.compile

Exit status: 0 when every correctness check passed, 1 when one failed (each failure is named), 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

import torch

from collapse._validation import check_int, check_real
from collapse.bench.loss_cases import LOSS_CASES
from collapse.bench.report import (
    END,
    START,
    combine_runs,
    format_table,
    include_results,
    markdown_section,
    rewrite_readme,
    target_verdicts,
    write_results,
)
from collapse.bench.runner import SECTIONS, BenchConfig, run_benchmark
from collapse.cli import OneLineParser, parse_list
from collapse.runs.outputs import check_marked_file, check_writable_dir

README = Path(__file__).resolve().parents[2] / "README.md"


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="python -m collapse.bench",
        description="Time our losses (with their samplers, forward + backward) and retrieval metrics against "
        "pytorch-metric-learning on the same inputs, check in the same run that both compute the same values, "
        "and report the phase-diagram sweep throughput. Prints a table, writes JSON and CSV; exits 1 if a check "
        "fails.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="B in 128, 512, 2048, N = 10k, fewer repeats (1-2 min on 2 cores); without it B goes to 8192 and N to "
        "100k (about half an hour)",
    )
    p.add_argument("--device", default="cpu", help="cpu or cuda (cuda:N)")
    p.add_argument("--out", default="results/bench", help="folder for bench.json and bench.csv")
    p.add_argument(
        "--readme",
        nargs="?",
        const=str(README),
        default=None,
        metavar="PATH",
        help="rewrite the Performance section (between <!-- bench:start --> and <!-- bench:end -->) of this README; "
        "given without a path: the repository's README.md",
    )
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads for every row (None: torch's)")
    p.add_argument("--compile", action="store_true", help="run our loss forward through torch.compile "
                   "(reduce-overhead mode, i.e. CUDA graphs where possible, on CUDA)")
    p.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {', '.join(SECTIONS)}")
    p.add_argument("--losses", default="all", help=f"comma-separated loss cases or 'all': {'; '.join(LOSS_CASES)}")
    p.add_argument("--batch-sizes", default=None, help="comma-separated B for the loss rows (overrides the mode)")
    p.add_argument("--eval-sizes", default=None, help="comma-separated N for the retrieval rows")
    p.add_argument("--nmi-sizes", default=None, help="comma-separated N for the NMI rows (empty string: none)")
    p.add_argument("--repeats", type=int, default=None, help="timed calls per side and row (at most)")
    p.add_argument("--budget", type=float, default=None, help="seconds of timed calls per side and row (at most)")
    p.add_argument("--dim", type=int, default=128, help="embedding dimension of the loss rows' Gaussian batches "
                   "(fewer dimensions put more pairs of other labels inside a margin)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    p.add_argument(
        "--runs",
        type=int,
        default=1,
        help="run the whole benchmark this many times and report per row the median over the runs (times and the "
        "in-run ratio, each run's ratio shown) and the highest peak memory; a check fails if it failed in any run",
    )
    p.add_argument(
        "--from",
        dest="from_json",
        default=None,
        metavar="PATH",
        help="run nothing: rebuild the table, targets, files and README section from the bench.json of an earlier run "
        "(with --include, joined to those rows); the options that choose what to run are then ignored",
    )
    p.add_argument(
        "--include",
        default=None,
        metavar="PATHS",
        help="comma-separated bench.json files of earlier runs (e.g. evaluation at N = 100k, too slow to repeat in "
        "every run) whose rows join this run's table and README section, combined over the files as runs are and "
        "marked with their command and load",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _sizes(flag: str, value: str | None, *, allow_empty: bool = False) -> tuple[int, ...] | None:
    if value is None:
        return None
    if allow_empty and not value.strip(","):  # documented: an empty --nmi-sizes means no NMI rows
        return ()
    return tuple(check_int(flag, s, low=4) for s in parse_list(flag, value, convert=int, what="integers"))


def _names(flag: str, value: str, allowed) -> tuple[str, ...]:
    return tuple(parse_list(flag, value, tuple(allowed)))


def config_from_args(args: argparse.Namespace, argv: list[str]) -> BenchConfig:
    device = args.device
    if not (device == "cpu" or device.startswith("cuda")):
        raise ValueError(f"--device must be cpu or cuda[:N], got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: CUDA is not available on this machine (no GPU, or a CPU-only torch)")
    kw = {
        "device": device,
        "threads": None if args.threads is None else check_int("--threads", args.threads, low=1),
        "batch_sizes": _sizes("--batch-sizes", args.batch_sizes),
        "eval_sizes": _sizes("--eval-sizes", args.eval_sizes),
        "nmi_sizes": _sizes("--nmi-sizes", args.nmi_sizes, allow_empty=True),
        "sections": _names("--sections", args.sections, SECTIONS),
        "loss_cases": _names("--losses", args.losses, LOSS_CASES),
        "repeats": None if args.repeats is None else check_int("--repeats", args.repeats, low=1),
        "budget": None if args.budget is None else check_real("--budget", args.budget, low=0.0, low_inclusive=False),
        "compile": args.compile,
        "seed": check_int("--seed", args.seed, low=0),
        "dim": check_int("--dim", args.dim, low=1),
        "command": "python -m collapse.bench " + shlex.join(argv),
    }
    if args.quick:
        return BenchConfig.quick_defaults(**kw)
    return BenchConfig(**{k: v for k, v in kw.items() if v is not None})


def _warn_if_busy() -> None:
    try:
        load, cores = os.getloadavg()[0], os.cpu_count() or 1
    except OSError:
        return
    if load > 0.5 * cores:
        print(
            f"warning: load average {load:.1f} on {cores} cores before the start: other processes compete for the "
            "CPU, so wall-clock times (both sides) are noisy; the load is recorded in bench.json",
            file=sys.stderr,
        )


def _read_bench_json(flag: str, path: str) -> dict:
    """The parsed bench.json of an earlier run, or a one-line ValueError naming ``flag``."""
    try:
        data = json.loads(Path(path).read_text())
        ok = isinstance(data["rows"], list) and isinstance(data["config"], dict) and isinstance(data["machine"], dict)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{flag} {path}: not the bench.json of an earlier run ({type(exc).__name__})") from None
    if not ok:
        raise ValueError(f"{flag} {path}: not the bench.json of an earlier run (no rows, config or machine)")
    return data


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args, argv)
        # Where results go is checked before any compute; --readme must be an existing file with the markers.
        check_writable_dir(args.out, what="--out")
        if args.readme is not None:
            check_marked_file(args.readme, (START, END), flag="--readme")
        runs = check_int("--runs", args.runs, low=1)
        includes = [] if args.include is None else parse_list("--include", args.include)
        earlier = None if args.from_json is None else _read_bench_json("--from", args.from_json)
        for path in includes:
            _read_bench_json("--include", path)
    except (ValueError, TypeError) as exc:
        parser.fail(exc)
    if earlier is not None:
        result = {k: v for k, v in earlier.items() if k != "targets"}
    else:
        _warn_if_busy()
        result = combine_runs([run_benchmark(config, progress=not args.no_progress) for _ in range(runs)])
    if includes:
        result = include_results(result, includes)
    result["targets"] = target_verdicts(result["rows"], torch.device(result["config"]["device"]).type)
    print(format_table(result["rows"]))
    for r in result["rows"]:
        if r.get("note"):
            print(f"  note: {r['case']} ({r['size']}): {r['note']}")
    print()
    for t in result["targets"]:
        print(f"target: {t['target']}: {t['verdict']} ({t['detail']})")
    paths = write_results(args.out, result)
    print(f"wrote {', '.join(str(p) for p in paths)} in {result['elapsed_s']:.0f} s")
    if args.readme is not None:
        changed = rewrite_readme(args.readme, markdown_section(result))
        print(f"{'rewrote' if changed else 'unchanged:'} the Performance section of {args.readme}")
    if result["failures"]:
        for f in result["failures"]:
            print(f"CHECK FAILED: {f}", file=sys.stderr)
        return 1
    print("all correctness checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
