"""``python -m collapse.claims``: run the checks, print the ledger, write figures/claims.md and its JSON.

The checks and simulations are runs of :mod:`collapse.runs`: computed into the result store (``--store``) by the
executor, then read back, so a rerun (or an interrupted run) recomputes only what is missing. Both output files are
checked writable before anything is computed.
"""

from __future__ import annotations

import argparse
import sys
import time

from collapse.claims.evidence import DEFAULT_REAL_TABLE, evidence_runs, gather_evidence, paper_repro_results
from collapse.claims.ledger import build_ledger, glyph_evidence, markdown, table
from collapse.cli import OneLineParser
from collapse.io import write_json, write_text
from collapse.runs import DEFAULT_STORE, ResultStore, check_writable_dir, check_writable_file, execute, stable_path


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m collapse.claims", description=__doc__)
    p.add_argument("--out", default="figures/claims.md", help="markdown ledger (default: %(default)s)")
    p.add_argument("--json", default="figures/claims.json", help="evidence as JSON (default: %(default)s)")
    p.add_argument("--store", default=DEFAULT_STORE, help="result store of the checks (default: %(default)s)")
    p.add_argument("--real-table", default=str(DEFAULT_REAL_TABLE),
                   help="real-image results table of python -m paper_repro.experiments (default: the committed "
                   "figures/paper_repro_table.json of this checkout); 'none' to leave the real-image claims unmeasured")
    p.add_argument("--study", default=None,
                   help="summary.json of python -m paper_repro.study: C3, C6, C7 and C9 are then judged from it "
                   "(comma-separated: summaries of disjoint blocks of one study, judged together)")
    p.add_argument("--workers", type=int, default=2, help="worker processes (default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def read_study(paths: str) -> dict:
    """The real-image study summary at ``paths`` (or several, comma-separated, combined by
    :func:`collapse.claims.real_study.combine`), checked before anything is computed (one-line ``ValueError``)."""
    from collapse.claims.real_study import combine

    names = [p.strip() for p in paths.split(",") if p.strip()]
    if not names:
        raise ValueError(f"--study names no file: {paths!r}")
    return combine([_read_one_study(p) for p in names], names)


def _read_one_study(path: str) -> dict:
    import json
    from pathlib import Path

    try:
        study = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ValueError(f"--study {path} cannot be read: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"--study {path} is not JSON: {exc}") from None
    if not isinstance(study, dict) or "comparisons" not in study or "runs" not in study:
        raise ValueError(f"--study {path} is not a summary of python -m paper_repro.study (no runs/comparisons)")
    return study


def command_line(argv: list[str]) -> str:
    """The command that regenerates the ledger: the given flags except those that change only how it runs."""
    import shlex

    kept, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--quiet" or a.startswith("--workers="):
            continue
        if a == "--workers":
            skip = True
            continue
        kept.append(shlex.quote(a))
    return " ".join(["python -m collapse.claims", *kept])


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.fail(f"--workers must be >= 1, got {args.workers}")
    try:  # where results go is checked before any compute
        check_writable_dir(args.store, what="--store", create=False)  # all checked before any is created
        check_writable_file(args.out, what="--out")
        check_writable_file(args.json, what="--json")
        study = read_study(args.study) if args.study else None
        store = ResultStore(args.store).prepare()
    except ValueError as exc:
        parser.fail(exc)
    start = time.perf_counter()
    jobs = evidence_runs()
    runs = [r for rs in jobs.values() for r in rs]
    ex = execute(runs, store, backend="inline" if args.workers == 1 else "processes", workers=args.workers,
                 progress=not args.quiet, desc="checks")
    if not ex.ok:
        for e in ex.errors:
            print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 1
    evidence = gather_evidence(store, jobs)
    glyphs = glyph_evidence(store)  # C8: the glyph side by side, where python -m paper_repro.sidebyside stored it
    if glyphs is not None:
        evidence["glyph_sidebyside"] = glyphs
    real = paper_repro_results(None if args.real_table == "none" else args.real_table)
    entries = build_ledger(evidence, real, study)
    seconds = time.perf_counter() - start
    print(table(entries))
    checks = {k: evidence[k] for k in ("T0", "T1", "T2", "T3", "T4", "T5")}
    print("\npropositions: " + ", ".join(f"{k} {'holds' if v['holds'] else 'FAILS'}" for k, v in checks.items()))
    header = (
        f"# Claims ledger\n\nGenerated by `{command_line(sys.argv[1:] if argv is None else argv)}` "
        f"({seconds:.0f} s). Verdicts are measured in our own model and simulations; nothing here is the "
        "seed paper's theorem or number."
    )
    write_text(args.out, markdown(entries, checks, header))
    write_json(
        args.json,
        {"claims": [e.__dict__ for e in entries], "evidence": evidence, "paper_repro": real, "seconds": seconds,
         "store": stable_path(store.root), "keys": [r.key for r in runs]},
    )
    print(f"\nwrote {args.out} and {args.json} in {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
