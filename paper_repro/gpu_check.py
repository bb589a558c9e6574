"""``python -m paper_repro.gpu_check``: the one-command GPU check of issue 15 (about 3-4 minutes on one GPU).

It runs, on ``cuda``:

1. the loss benchmark ``python -m collapse.bench --device cuda --quick`` restricted to what the GPU targets read:
   every loss case at B = 128 and B = 8192 against pytorch-metric-learning (value and gradient checked in the same
   run), plus the compiled step (``torch.compile(fullgraph=True)``, reduce-overhead mode, i.e. one CUDA graph) at
   B = 128, where launch overhead decides;
2. a short ResNet-18 training-throughput run (:mod:`paper_repro.bench_throughput`: 224 px, batch 128, bf16
   autocast, channels-last, 20 timed steps);

then writes ``gpu_check.json`` (both results and the verdicts) and the bench's own JSON/CSV into ``--out``, and
prints the GPU target verdicts: at least 5x faster than PML at B = 128; at most 2 ms at B = 8192; peak memory at
most 0.6x PML's at B = 8192 (each per loss case; the compiled row counts where it is faster).

``--dry-run`` runs the same code on the CPU at tiny sizes (B = 16 and 32 standing in for 128 and 8192, the compiled
rows traced with ``aot_eager`` instead of generating code, a ResNet-18 on 32 px images for one step), so the tests
run it and it cannot rot; its verdicts say nothing about a GPU. Exit status: 0 when every correctness check passed
(whatever the verdicts), 1 when one failed, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from collapse.bench.loss_cases import LOSS_CASES
from collapse.bench.report import format_table, gpu_verdicts, write_results
from collapse.bench.runner import BenchConfig, run_benchmark
from collapse.cli import OneLineParser
from collapse.io import write_json

__all__ = ["build_parser", "main"]

#: The loss cases with a correctness check (the reference row only times PML's own recipe).
CHECKED_CASES = tuple(name for name, case in LOSS_CASES.items() if case.check is not None)


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="python -m paper_repro.gpu_check",
        description="The GPU check: loss benchmark at B=128 and 8192 (eager and compiled) against "
        "pytorch-metric-learning plus a ResNet-18 throughput run; writes JSON and prints the GPU target verdicts.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--device", default="cuda", help="cuda or cuda:N")
    p.add_argument("--out", default="results/gpu_check", help="folder for gpu_check.json and the bench files")
    p.add_argument("--dry-run", action="store_true", help="run on the CPU at tiny sizes (tests; no GPU verdict)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def _plan(dry_run: bool, device: str) -> tuple[BenchConfig, list[str], tuple[int, int]]:
    if dry_run:
        sizes = (16, 32)
        config = BenchConfig.quick_defaults(
            device="cpu", batch_sizes=sizes, compiled_sizes=(sizes[0],), sections=("loss", "compiled"),
            loss_cases=CHECKED_CASES, repeats=1, warmup=0, budget=0.05, compile_backend="aot_eager",
            command="python -m paper_repro.gpu_check --dry-run",
        )
        throughput = ["--model", "resnet18", "--size", "16", "--small-input", "--batch", "8", "--steps", "1",
                      "--warmup", "0", "--device", "cpu"]
        return config, throughput, sizes
    sizes = (128, 8192)
    config = BenchConfig.quick_defaults(
        device=device, batch_sizes=sizes, compiled_sizes=(sizes[0],), sections=("loss", "compiled"),
        loss_cases=CHECKED_CASES,
        command=f"python -m collapse.bench --device {device} --quick --batch-sizes 128,8192 --sections loss,compiled",
    )
    throughput = ["--model", "resnet18", "--size", "224", "--batch", "128", "--steps", "20", "--warmup", "3",
                  "--amp", "bf16", "--channels-last", "--device", device]
    return config, throughput, sizes


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.dry_run:
        if not args.device.startswith("cuda"):
            parser.exit(2, f"{parser.prog}: error: --device must be cuda or cuda:N, got {args.device!r}\n")
        if not torch.cuda.is_available():
            parser.exit(2, f"{parser.prog}: error: --device {args.device}: no CUDA device here (use --dry-run)\n")
    from paper_repro import bench_throughput

    start = time.perf_counter()
    out = Path(args.out)
    config, throughput_argv, (small, large) = _plan(args.dry_run, args.device)
    bench = run_benchmark(config, progress=not args.no_progress)
    verdicts = gpu_verdicts(bench["rows"], small=small, large=large)
    bench["targets"] = verdicts
    write_results(out, bench)
    print(format_table(bench["rows"]))
    tp_dir = out / "throughput"
    code = bench_throughput.main([*throughput_argv, "--out", str(tp_dir), "--quiet"])
    throughput = [json.loads(p.read_text()) for p in sorted(tp_dir.glob("*.json"))]
    result = {
        "command": "python -m paper_repro.gpu_check " + " ".join(argv),
        "dry_run": bool(args.dry_run),
        "machine": bench["machine"],
        "bench": bench,
        "throughput": throughput[-1] if throughput else None,
        "targets": verdicts,
        "failures": bench["failures"] + ([] if code == 0 else ["throughput run failed"]),
        "elapsed_s": time.perf_counter() - start,
    }
    path = write_json(out / "gpu_check.json", result)
    print()
    prefix = "dry run (CPU, tiny sizes; not a GPU verdict) " if args.dry_run else ""
    for t in verdicts:
        print(f"{prefix}target: {t['target']}: {t['verdict']} ({t['detail']})")
    print(f"wrote {path} in {result['elapsed_s']:.0f} s")
    for f in result["failures"]:
        print(f"CHECK FAILED: {f}", file=sys.stderr)
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
