"""Verdicts of claims C3, C6, C7 and C9 from the real-image study (``python -m paper_repro.study``'s summary.json).

The study's comparisons are easy minus random positives, paired by seed, on MLP heads trained to a convergence
criterion on fixed features of Fashion-MNIST superclasses; only comparisons that pass the coarse-performance gate
count. Each judge returns ``(verdict, evidence)``; every number in the evidence comes from the summary passed in.
"""

from __future__ import annotations

HOLDS, FAILS, CONDITIONAL, UNMEASURED = "holds", "fails", "holds under conditions", "not yet measured"

__all__ = ["STUDY_JUDGES", "combine", "main", "markdown", "read_summary"]

#: Plan fields that may differ between summaries of one study's parts: which blocks each holds, and where its data
#: lay.
_PART_FIELDS = ("features", "Ms", "add_critical_M", "root")


def _gated(study: dict) -> list[dict]:
    return [c for c in study.get("comparisons", []) if c.get("gate") == "pass"]


def read_summary(path: str, what: str = "summary") -> dict:
    """The study summary (``summary.json`` of ``python -m paper_repro.study``) at ``path``; one-line ``ValueError``
    (starting with ``what`` and the path) when it cannot be read, is not JSON or is not such a summary."""
    import json
    from pathlib import Path

    try:
        study = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ValueError(f"{what} {path} cannot be read: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{what} {path} is not JSON: {exc}") from None
    if not isinstance(study, dict) or "comparisons" not in study or "runs" not in study:
        raise ValueError(f"{what} {path} is not a summary of python -m paper_repro.study (no runs/comparisons)")
    return study


def combine(studies: list[dict], names: list[str] | None = None) -> dict:
    """One summary for the judges from summaries of *disjoint* blocks of one plan (a study computed in parts, e.g.
    ``--features pca,untrained-cnn`` and ``--features coarse-cnn``): the union of their runs and comparisons, and of
    their blocks not computed yet that no other part holds.

    The judges read only runs, comparisons and the mode, and every row of a block is the same in a narrowed and in
    the whole study (``paper_repro.study.stored_superset``), so the verdicts equal those of the whole study's
    summary. ``ValueError`` (one line) when the parts differ in plan or mode, or share a (features, M) block.
    """
    names = names or [f"summary {i + 1}" for i in range(len(studies))]
    if len(studies) == 1:
        return studies[0]
    first = studies[0]
    plan = {k: v for k, v in first.get("plan", {}).items() if k not in _PART_FIELDS}
    seen: dict[tuple, str] = {}
    for study, name in zip(studies, names):
        other = {k: v for k, v in study.get("plan", {}).items() if k not in _PART_FIELDS}
        if other != plan or bool(study.get("quick")) != bool(first.get("quick")):
            diff = sorted(k for k in plan.keys() | other.keys() if plan.get(k) != other.get(k)) or ["quick"]
            raise ValueError(f"{name} is not part of the same study as {names[0]} (differs in {', '.join(diff)})")
        for block in sorted({(r["features"], r["M"]) for r in study.get("runs", [])}):
            if block in seen:
                raise ValueError(f"{name} and {seen[block]} both hold block {block[0]} M={block[1]}; combine "
                                 "summaries of disjoint blocks only")  # fmt: skip
            seen[block] = name
    missing = [m for s in studies for m in s.get("blocks_missing") or []]
    held = {f"{f} M={m}" for f, m in seen}
    return {"quick": first.get("quick"), "plan": first.get("plan"), "parts": names,
            "runs": [r for s in studies for r in s.get("runs", [])],
            "comparisons": [c for s in studies for c in s.get("comparisons", [])],
            "blocks_missing": sorted({m for m in missing if m not in held})}  # fmt: skip


def _src(study: dict) -> str:
    n = len(study.get("comparisons", []))
    missing = study.get("blocks_missing") or []
    # A study computed over several sessions is judged on what it has, and says so.
    part = f", partial: {len(missing)} blocks not computed ({', '.join(missing)})" if missing else ""
    if study.get("parts"):
        part += f", {len(study['parts'])} summaries of its parts combined"
    return (f"real-image study ({'quick' if study.get('quick') else 'full'} mode{part}, {len(_gated(study))}/{n} "
            f"comparisons pass the coarse gate)")  # fmt: skip


def _collapsed(verdicts: str) -> int:
    return sum(v.strip() == "collapsed" for v in verdicts.split(";"))


def _ci(c: dict, k: str) -> str:
    return f"{c[f'd_{k}']:+.3f} [{c[f'd_{k}_lo']:+.3f}, {c[f'd_{k}_hi']:+.3f}]"


def _cell(c: dict) -> str:
    return f"{c['features']}/M{c['M']}/noise {c['noise']:g}/{c['loss']}/{c['negative']}"


def c3(study: dict) -> tuple[str, str]:
    """Collapse hurts sub-class classification and retrieval: collapsed runs' test fine probe vs kept runs'."""
    runs = [r for r in study.get("runs", []) if r.get("labels") == "coarse" and r.get("verdict") not in (None, "n/a")]
    col = [r for r in runs if r["verdict"] == "collapsed"]
    kept = [r for r in runs if r["verdict"] != "collapsed" and not str(r["verdict"]).startswith("degen")]
    if not col or not kept:
        return UNMEASURED, f"{_src(study)}: needs both collapsed and non-collapsed runs ({len(col)} / {len(kept)})."
    mean = lambda rows, k: sum(r[k] for r in rows) / len(rows)  # noqa: E731
    text = (f"{_src(study)}: runs judged collapsed ({len(col)}) vs not ({len(kept)}): test fine linear probe "
            f"{mean(col, 'test_linear_probe'):.3f} vs {mean(kept, 'test_linear_probe'):.3f}, fine R@1 "
            f"{mean(col, 'test_fine_r1'):.3f} vs {mean(kept, 'test_fine_r1'):.3f}, coarse MAP@R "
            f"{mean(col, 'coarse_map_at_r'):.3f} vs {mean(kept, 'coarse_map_at_r'):.3f}.")  # fmt: skip
    worse = mean(col, "test_linear_probe") < mean(kept, "test_linear_probe") - 0.02
    return (CONDITIONAL if worse else FAILS), text + (
        " Holds for sub-class (fine) classification and retrieval, not for the coarse task." if worse else ""
    )


def c6(study: dict) -> tuple[str, str]:
    """Generalisation: the train - test gap of the fine probe, random vs easy (gated comparisons)."""
    gated = _gated(study)
    if not gated:
        return UNMEASURED, f"{_src(study)}: no gated comparison."
    runs = study.get("runs", [])
    gaps = {}
    for pos in ("random", "easy"):
        rows = [r for r in runs if r.get("positive") == pos and r.get("labels") == "coarse"]
        gaps[pos] = sum(r["train_linear_probe"] - r["test_linear_probe"] for r in rows) / max(len(rows), 1)
    text = (f"{_src(study)}: train - test gap of the fine linear probe (a memorisation proxy) {gaps['random']:.3f} "
            f"random vs {gaps['easy']:.3f} EPS; unseen classes are not tested in this study (see the zero-shot "
            f"rows of the earlier study).")  # fmt: skip
    return (CONDITIONAL if gaps["random"] > gaps["easy"] + 0.01 else FAILS), text


def c7(study: dict) -> tuple[str, str]:
    """Collapse shows on real data (instrument verdicts) and EPS is more diverse (gated paired probe difference)."""
    gated = _gated(study)
    if not gated:
        return UNMEASURED, f"{_src(study)}: no comparison passes the coarse gate."
    collapsed = sum(_collapsed(c["verdict_random"]) for c in gated)
    n = sum(c["seeds"] for c in gated)
    better = [c for c in gated if c["d_test_linear_probe_lo"] > 0]
    worse = [c for c in gated if c["d_test_linear_probe_hi"] < 0]
    parts = "; ".join(f"{_cell(c)} {_ci(c, 'test_linear_probe')}" for c in gated)
    text = (f"{_src(study)}: random-positive runs judged collapsed by the instrument in {collapsed}/{n} seeds of "
            f"gated cells. EPS - random test fine probe (95% CI): {parts}; EPS better in {len(better)}, worse in "
            f"{len(worse)} of {len(gated)} gated cells.")  # fmt: skip
    if collapsed and len(better) == len(gated):
        return HOLDS, text
    if collapsed or len(better) > len(gated) / 2:
        return CONDITIONAL, text
    return FAILS, text


def c9(study: dict) -> tuple[str, str]:
    """Visually similar (same fine label) samples closer under EPS: fine R@1 within coarse, gated paired."""
    gated = _gated(study)
    if not gated:
        return UNMEASURED, f"{_src(study)}: no comparison passes the coarse gate."
    better = [c for c in gated if c["d_test_fine_r1_lo"] > 0]
    worse = [c for c in gated if c["d_test_fine_r1_hi"] < 0]
    parts = "; ".join(f"{_cell(c)} {_ci(c, 'test_fine_r1')}" for c in gated)
    text = (f"{_src(study)}: EPS - random fine R@1 within coarse class on standardised features (95% CI): {parts}; "
            f"EPS better in {len(better)}, worse in {len(worse)} of {len(gated)}.")  # fmt: skip
    if len(better) == len(gated):
        return HOLDS, text
    return (CONDITIONAL if len(better) > len(worse) else FAILS), text


STUDY_JUDGES = {"C3": c3, "C6": c6, "C7": c7, "C9": c9}


def markdown(study: dict) -> str:
    """The four verdicts as a markdown table."""
    lines = ["| id | verdict | evidence |", "|---|---|---|"]
    for cid, judge in STUDY_JUDGES.items():
        verdict, text = judge(study)
        lines.append(f"| {cid} | **{verdict}** | {text} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """``python -m collapse.claims.real_study SUMMARY.json [SUMMARY.json ...] [--out FILE.md]``: print (and write)
    the four verdicts; several summaries of disjoint blocks of one study are judged together (:func:`combine`)."""
    from collapse.cli import OneLineParser
    from collapse.io import write_text

    p = OneLineParser(prog="python -m collapse.claims.real_study", description=main.__doc__)
    p.add_argument("summary", nargs="+", help="summary.json of python -m paper_repro.study (several: disjoint "
                   "blocks of one study, judged together)")
    p.add_argument("--out", default=None, help="markdown file to write the table to")
    args = p.parse_args(argv)
    try:
        text = markdown(combine([read_summary(path) for path in args.summary], args.summary))
    except ValueError as exc:
        p.fail(str(exc))
    print(text)
    if args.out:
        write_text(args.out, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
