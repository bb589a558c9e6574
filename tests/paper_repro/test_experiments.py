"""paper_repro.experiments: the plan, and the table rebuilt from saved runs (no training)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from collapse.io import write_json
from collapse.runs import ResultStore
from paper_repro.experiments import (
    NOISY_NEGATIVES,
    QUICK,
    collect,
    main,
    plan_collapse,
    summarise,
    write_figure,
    write_tables,
)


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
    store = ResultStore(tmp_path / "store").prepare()
    rows, missing = collect(runs, store)
    assert missing == 6 and rows == []  # nothing recorded yet: the table reads records, not folders
    from paper_repro.experiments import train_runs
    from paper_repro.train_run import record_finished

    assert record_finished(train_runs(runs), store) == 5
    rows, missing = collect(runs, store)
    assert missing == 1 and len(rows) == 5
    rnd, easy = summarise(rows)
    assert rnd["positive"] == "random" and rnd["seeds"] == 3
    assert rnd["fine_recall_at_1_within_coarse_mean"] == pytest.approx(0.55)
    assert rnd["fine_recall_at_1_within_coarse_std"] == pytest.approx(np.std([0.5, 0.6, 0.55], ddof=1))
    assert easy["easy_minus_random_mean"] == pytest.approx(np.mean([0.2, 0.05]))
    assert easy["easy_better_seeds"] == "2/2"

    code = main(["collapse", "--quick", "--table-only", "--datasets", "mnist-groups", "--losses", "triplet",
                 "--no-zero-shot", "--no-reference", "--out-dir", str(tmp_path),
                 "--store", str(tmp_path / "store2")])  # fmt: skip
    assert code == 0
    (md_path,) = tmp_path.glob("collapse_table_*.md")
    md = md_path.read_text()
    assert "0.550 ± 0.050" in md and "1 planned run(s) have not finished" in md and "--table-only" in md
    saved = json.loads(md_path.with_suffix(".json").read_text())
    assert saved["missing"] == 1 and len(saved["runs"]) == 5
    assert "0.550 ± 0.050" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--datasets", "cifar"], "--datasets must be one of fashion-mnist-super, mnist-groups; got 'cifar'"),
        (["--losses", ","], "--losses must name at least one value"),
        (["--datasets", ""], "--datasets must name at least one value"),
    ],
)
def test_bad_arguments_are_one_line_errors(argv, match, capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["collapse", *argv, "--table-only", "--out-dir", str(tmp_path), "--store", str(tmp_path / "s")])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and match in err and "\n" not in err
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_an_experiment_never_writes_figures_or_the_working_directory(tmp_path, monkeypatch, capsys):
    """Reproduction 1 of issue 10: --table-only --steps 5 --out-dir SOMEWHERE rewrote figures/paper_repro_table.* of
    the working directory with an empty table."""
    cwd = tmp_path / "cwd"
    (cwd / "figures").mkdir(parents=True)
    committed = cwd / "figures" / "paper_repro_table.md"
    committed.write_text("the committed table")
    monkeypatch.chdir(cwd)
    code = main(["collapse", "--table-only", "--no-reference", "--steps", "5", "--out-dir", str(tmp_path / "SOME"),
                 "--store", str(tmp_path / "store")])
    assert code == 0
    assert committed.read_text() == "the committed table"
    assert sorted(p.name for p in cwd.rglob("*")) == ["figures", "paper_repro_table.md"]
    (table,) = (tmp_path / "SOME").glob("collapse_table_*.json")
    assert json.loads(table.read_text())["in_figure"] is False  # --steps 5 is not the full study


def test_noisy_plan_runs_triplet_with_two_negatives_and_keeps_the_clean_names(tmp_path):
    noisy = replace(QUICK, label_noise=0.2)
    runs = plan_collapse(noisy, 2, out_dir=tmp_path, datasets=["fashion-mnist-super"], negatives=NOISY_NEGATIVES,
                         zero_shot=False)  # fmt: skip
    assert len(runs) == 2 * 4 * 2 and {r.study for r in runs} == {"collapse-noise0.2"}
    assert all(r.config.label_noise == 0.2 and r.config.noise_kind == "symmetric" for r in runs)
    cells = {(r.loss, r.negative) for r in runs}
    assert cells == {("triplet", "semihard"), ("triplet", "all"), ("margin", "distance"), ("multisimilarity", "all")}
    names = {Path(r.config.out).relative_to(tmp_path).as_posix() for r in runs}
    assert "collapse-noise0.2/fashion-mnist-super/triplet-random-seed0" in names
    assert "collapse-noise0.2/fashion-mnist-super/triplet-all-easy-seed1" in names
    assert len(names) == len(runs)
    # The clean study keeps its run directories (saved runs stay found) and has no label noise.
    clean = plan_collapse(QUICK, 1, out_dir=tmp_path, datasets=["mnist-groups"], losses=["triplet"])
    assert {Path(r.config.out).name for r in clean} == {"triplet-random-seed0", "triplet-easy-seed0"}
    assert {r.study for r in clean} == {"collapse", "zero-shot"} and all(r.config.label_noise == 0 for r in clean)
    assert replace(noisy, noise_kind="pair_flip").study == "collapse-noise0.2-pair_flip"


def test_figure_gathers_the_clean_and_the_noisy_study(tmp_path):
    tables = {}
    for eps in (0.2, 0.0):  # written in this order; the figure still puts the clean study first
        settings = replace(QUICK, label_noise=eps)
        runs = plan_collapse(settings, 3, out_dir=tmp_path, datasets=["mnist-groups"], losses=["triplet"],
                             zero_shot=False)  # fmt: skip
        for r in runs:
            fake_finish(r, fine=0.5 + 0.1 * (r.positive == "easy") - eps + 0.01 * r.seed)
        store = ResultStore(tmp_path / "store").prepare()
        from paper_repro.experiments import train_runs
        from paper_repro.train_run import record_finished

        record_finished(train_runs(runs), store)
        rows, missing = collect(runs, store)
        write_tables(rows, settings, tmp_path, f"cmd {eps}", missing, in_figure=True)
        (path,) = tmp_path.glob(f"{settings.study}_table_*.json")
        tables[eps] = json.loads(path.read_text())
    write_tables([], replace(QUICK, label_noise=0.3), tmp_path, "cmd 0.3", 6)  # not a full study: left out
    md = write_figure(tmp_path, tmp_path / "fig.md", tmp_path / "fig.json")
    fig = json.loads((tmp_path / "fig.json").read_text())
    assert {"settings", "command", "missing", "summary", "runs", "studies"} <= set(fig)
    assert [s["study"] for s in fig["studies"]] == ["collapse", "collapse-noise0.2"]
    assert fig["command"] == "cmd 0.0" and fig["settings"]["label_noise"] == 0.0 and fig["missing"] == 0
    assert fig["summary"] == tables[0.0]["summary"] + tables[0.2]["summary"]
    noisy_rows = [e for e in fig["summary"] if e["study"] == "collapse-noise0.2"]
    assert len(noisy_rows) == 2 and all(e["label_noise"] == 0.2 and e["seeds"] == 3 for e in noisy_rows)
    assert noisy_rows[0]["fine_recall_at_1_within_coarse_mean"] == pytest.approx(0.31)
    assert md == (tmp_path / "fig.md").read_text()
    assert md.startswith("# Class collapse on real images: random vs easy positives")
    assert "\n## Class collapse on real images with 20% symmetric label noise" in md
    assert "### Class-collapse study (trained on noisy coarse labels, ε = 0.2" in md
    assert "`cmd 0.2`" in md and "0.310 ± 0.010" in md and "cmd 0.3" not in md


def test_noisy_options_are_checked_in_one_line(capsys):
    with pytest.raises(SystemExit):
        main(["collapse", "--label-noise", "0.2", "--table-only"])
    assert "belong to the 'noisy' study" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["noisy", "--label-noise", "1.5", "--table-only"])
    err = capsys.readouterr().err.strip()
    assert "--label-noise must be in (0" in err and "\n" not in err
