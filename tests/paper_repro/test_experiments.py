"""paper_repro.experiments: the plan, and the table rebuilt from saved runs (no training)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from collapse.io import write_json
from paper_repro.experiments import QUICK, collect, main, plan_collapse, summarise


def test_plan_pairs_random_and_easy_with_the_same_negative(tmp_path):
    runs = plan_collapse(QUICK, 2, out_dir=tmp_path)
    assert len(runs) == 2 * (2 * 3 * 2 + 2)
    cells = {}
    for r in runs:
        cells.setdefault((r.study, r.dataset, r.loss, r.seed), {})[r.positive] = r
    for pair in cells.values():
        assert set(pair) == {"random", "easy"}
        assert pair["random"].negative == pair["easy"].negative
        assert pair["random"].config.negative == pair["easy"].config.negative
    negs = {r.loss: r.negative for r in runs if r.study == "collapse"}
    assert negs == {"triplet": "semihard", "margin": "distance", "multisimilarity": "all"}
    assert len({r.config.out for r in runs}) == len(runs)
    assert all(r.config.zero_shot == (r.study == "zero-shot") for r in runs)


def fake_finish(run, fine: float, r1: float = 0.9) -> None:
    final = {"recall_at_1": r1, "fine_recall_at_1_within_coarse": fine, "fine_chance": 0.3, "nmi": 0.5,
             "map_at_r": 0.6, "submode_nmi": 0.2}  # fmt: skip
    write_json(Path(run.config.out) / "metrics.json",
               {"finished": True, "step": run.config.steps, "seconds": 1.0, "final": final})  # fmt: skip


def test_table_from_saved_runs(tmp_path, capsys):
    runs = plan_collapse(QUICK, 3, out_dir=tmp_path, datasets=["mnist-groups"], losses=["triplet"], zero_shot=False)
    values = {("random", 0): 0.5, ("random", 1): 0.6, ("random", 2): 0.55, ("easy", 0): 0.7, ("easy", 1): 0.65}
    for r in runs:
        if (r.positive, r.seed) in values:
            fake_finish(r, values[(r.positive, r.seed)])
    rows, missing = collect(runs)
    assert missing == 1 and len(rows) == 5
    rnd, easy = summarise(rows)
    assert rnd["positive"] == "random" and rnd["seeds"] == 3
    assert rnd["fine_recall_at_1_within_coarse_mean"] == pytest.approx(0.55)
    assert rnd["fine_recall_at_1_within_coarse_std"] == pytest.approx(np.std([0.5, 0.6, 0.55], ddof=1))
    assert easy["easy_minus_random_mean"] == pytest.approx(np.mean([0.2, 0.05]))
    assert easy["easy_better_seeds"] == "2/2"

    code = main(["collapse", "--quick", "--table-only", "--datasets", "mnist-groups", "--losses", "triplet",
                 "--no-zero-shot", "--no-reference", "--out-dir", str(tmp_path)])  # fmt: skip
    assert code == 0
    md = (tmp_path / "collapse_table.md").read_text()
    assert "0.550 ± 0.050" in md and "1 planned run(s) have not finished" in md and "--table-only" in md
    saved = json.loads((tmp_path / "collapse_table.json").read_text())
    assert saved["missing"] == 1 and len(saved["runs"]) == 5
    assert "0.550 ± 0.050" in capsys.readouterr().out


def test_bad_arguments_are_one_line_errors(capsys):
    assert main(["collapse", "--datasets", "cifar", "--table-only"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--datasets must name some of" in err and "\n" not in err
