"""python -m collapse.rivals: the method grid, its run kind, the CLI (resumable, one-line errors, README section)."""

import json

import pytest

from collapse.experiment import SimConfig, instrument_margin
from collapse.losses import make_loss
from collapse.rivals import METHODS, grid_runs, method_cell, method_of, method_verdict, seed_outcome
from collapse.rivals.__main__ import MARKERS, main
from collapse.runs import ResultStore

TINY = ["--methods", "triplet,softtriple", "--models", "tied", "--noise", "0,0.3", "--seeds", "2", "--steps", "15",
        "--workers", "1", "--quiet"]  # fmt: skip


def test_every_method_builds_its_loss_and_has_an_instrument_margin():
    for name, m in METHODS.items():
        loss = make_loss(m.loss, m.positive, m.negative, num_classes=4, embedding_dim=8)
        assert instrument_margin(loss) > 0, name


def test_grid_is_sim_runs_with_the_methods_rules_one_block_per_method_and_model():
    runs = grid_runs(SimConfig(), ["supcon-eps", "spread"], ["tied", "mlp"], [0.0, 0.3])
    assert len(runs) == 8 and len({r.key for r in runs}) == 8
    assert [method_of(r) for r in runs] == ["supcon-eps"] * 4 + ["spread"] * 4
    r = runs[0]
    assert (r.loss, r.positive, r.negative, r.block_noise, r.measures) == ("supcon", "easy", "all", (0.0, 0.3), "full")
    assert {run.config.model for run in runs} == {"tied", "mlp"}
    with pytest.raises(KeyError):
        grid_runs(SimConfig(), ["arcface"], ["tied"], [0.0])


def _seed(state, merges=0.0):
    keys = {"collapsed": "state_collapsed", "partly": "state_partly", "kept": "state_kept", "shrunk": "state_shrunk",
            "no classes": "state_no_classes"}  # fmt: skip
    rec = dict.fromkeys(keys.values(), 0.0) | {"merges": merges, "merges_possible": 8.0}
    rec[keys[state]] = 1.0
    return rec


def test_cell_and_verdict_read_the_per_seed_states():
    def res(*seeds):
        return {"per_seed": list(seeds), "submode_separation_over_margin": 1.5,
                "submode_separation_over_margin_std": 0.25}  # fmt: skip

    assert seed_outcome(_seed("no classes")) == "no classes"
    with pytest.raises(ValueError, match="state keys"):
        seed_outcome({"merges": 1.0})
    cell = method_cell(res(_seed("kept"), _seed("kept"), _seed("partly", 3.0)))
    assert cell == "kept 2/3, partly 3/8 1/3; sep/α 1.50 ± 0.25"
    cells = [(0.0, res(_seed("kept"), _seed("kept"))), (0.1, res(_seed("collapsed"), _seed("partly", 2.0))),
             (0.3, res(_seed("collapsed"), _seed("shrunk")))]  # fmt: skip
    assert method_verdict(cells) == "ε=0: kept 2/2; ε>0: collapsed 2/4, partly 1/4"


def test_cli_writes_table_resumes_and_fills_the_readme(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{MARKERS[0]}\nold\n{MARKERS[1]}\nend\n")
    store = tmp_path / "store"
    args = TINY + ["--out", str(tmp_path / "out"), "--store", str(store), "--readme", str(readme)]
    assert main(args) == 0
    table = capsys.readouterr().out
    assert "| **triplet**" in table and "| **softtriple**" in table and "tied ε=0.3" in table
    assert "`python -m collapse.rivals --methods softtriple --models tied --noise 0,0.3 --seeds 2 --steps 15`" in table
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("end\n") and "old" not in text and "| **triplet**" in text
    (js,) = (tmp_path / "out").glob("rivals_*.json")
    payload = json.loads(js.read_text())
    assert len(payload["results"]) == 4
    for row in payload["results"]:
        assert len(row["per_seed"]) == 2 and {"state_kept", "merges", "class_map_at_r"} <= set(row["per_seed"][0])
        assert row["method"] in ("triplet", "softtriple") and len(row["outcomes"].split()) == 2
    records = sorted(p.read_text() for p in ResultStore(store).records_dir.glob("*.json"))
    # A second run reads every record back, computes nothing and writes the same table.
    assert main(args) == 0
    assert capsys.readouterr().out == table
    assert sorted(p.read_text() for p in ResultStore(store).records_dir.glob("*.json")) == records


@pytest.mark.parametrize(
    ("flag", "value", "match"),
    [("--methods", "arcface", "--methods"), ("--methods", ",", "--methods"), ("--noise", "0,1.5", "--noise"),
     ("--models", "cnn", "--models"), ("--steps", "0", "--steps")],
)  # fmt: skip
def test_bad_flags_fail_with_one_line_before_any_compute(tmp_path, capsys, flag, value, match):
    with pytest.raises(SystemExit) as exc:
        main([flag, value, "--out", str(tmp_path / "o"), "--store", str(tmp_path / "s")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0]
    assert not (tmp_path / "s").exists()


def test_readme_without_markers_is_refused(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("no markers\n")
    with pytest.raises(SystemExit):
        main(TINY + ["--out", str(tmp_path / "o"), "--store", str(tmp_path / "s"), "--readme", str(readme)])
    assert "lacks the markers" in capsys.readouterr().err
    assert readme.read_text() == "no markers\n"
