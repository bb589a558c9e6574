"""python -m collapse.rivals: the method grid, its run kind, the CLI (resumable, one-line errors, README section)."""

import json

import pytest

from collapse.experiment import SimConfig, instrument_margin
from collapse.losses import make_loss
from collapse.rivals import METHODS, RivalRun, grid_runs, method_cell, method_verdict
from collapse.rivals.__main__ import MARKERS, main
from collapse.runs import ResultStore

TINY = ["--methods", "triplet,softtriple", "--models", "tied", "--noise", "0,0.3", "--seeds", "2", "--steps", "15",
        "--workers", "1", "--quiet"]  # fmt: skip


def test_every_method_builds_its_loss_and_has_an_instrument_margin():
    for name, m in METHODS.items():
        loss = make_loss(m.loss, m.positive, m.negative, num_classes=4, embedding_dim=8)
        assert instrument_margin(loss) > 0, name


def test_run_identity_names_its_rules_and_block():
    cfg = SimConfig(noise=0.1)
    a = RivalRun(cfg, "supcon-eps", block_noise=(0.0, 0.1))
    assert (a.loss, a.positive, a.negative) == ("supcon", "easy", "all")
    assert a.key == RivalRun(cfg, "supcon-eps", block_noise=(0.0, 0.1), positive="easy").key
    assert a.key != RivalRun(cfg, "supcon-eps").key  # a different block couples different numbers
    assert a.key != RivalRun(cfg, "supcon", block_noise=(0.0, 0.1)).key
    with pytest.raises(ValueError, match="method"):
        RivalRun(cfg, "arcface")
    with pytest.raises(ValueError, match="positive of method 'supcon' is 'all'"):
        RivalRun(cfg, "supcon", positive="easy")
    with pytest.raises(ValueError, match="must be one of block_noise"):
        RivalRun(cfg, "supcon", block_noise=(0.0, 0.3))
    runs = grid_runs(SimConfig(), ["triplet", "spread"], ["tied", "mlp"], [0.0, 0.3])
    assert len(runs) == 8 and len({r.key for r in runs}) == 8


def test_cell_and_verdict_read_the_per_seed_states():
    def res(*states):
        short = {"modes kept": "kept", "collapsed": "collapsed", "partly collapsed": "partly 1/8"}
        return {"per_seed": [{"state": s, "short": short[s]} for s in states], "submode_separation_over_margin": 1.5,
                "submode_separation_over_margin_std": 0.25}

    assert method_cell(res("modes kept", "modes kept", "collapsed")) == "kept 2/3, collapsed 1/3; sep/α 1.50 ± 0.25"
    cells = [(0.0, res("modes kept", "modes kept")), (0.1, res("collapsed", "partly collapsed")),
             (0.3, res("collapsed", "modes kept"))]  # fmt: skip
    assert method_verdict(cells) == "ε=0: kept 2/2; ε>0: collapsed 2/4, partly 1/4"
    assert method_verdict([(0.0, res("collapsed"))]) == "ε=0: collapsed 1/1"


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
        assert len(row["per_seed"]) == 2 and {"state", "merges", "class_map_at_r"} <= set(row["per_seed"][0])
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
