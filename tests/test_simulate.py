import json
import subprocess
import sys

import pytest

from collapse.experiment import COLLAPSE_THRESHOLD, verdict
from collapse.simulate import main


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["--noise", "1.5"], "--noise"),
        (["--noise", "-0.1"], "--noise"),
        (["--classes", "1"], "--classes"),
        (["--modes", "0"], "--modes"),
        (["--dim", "0"], "--dim"),
        (["--loss", "hinge"], "--loss"),
        (["--positive", "closest"], "--positive"),
        (["--negative", "soft"], "--negative"),
        (["--noise-model", "gaussian"], "--noise-model"),
        (["--model", "cnn"], "--model"),
        (["--batch", "4x1"], "--batch"),
    ],
)
def test_bad_flags_exit_non_zero_with_one_line(argv, flag, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--out", str(tmp_path)])
    assert exc.value.code != 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert flag in lines[0]
    assert not any(tmp_path.iterdir())  # nothing written


def test_out_of_range_noise_from_the_command_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "collapse.simulate", "--noise", "1.5", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "python -m collapse.simulate: error: --noise must be in [0, 1), got 1.5"


def test_small_run_writes_json_csv_png_and_prints_table(tmp_path, capsys):
    rc = main(["--loss", "triplet", "--positive", "random,easy", "--steps", "30", "--seeds", "2",
               "--workers", "1", "--out", str(tmp_path)])
    assert rc == 0
    out = capsys.readouterr().out
    assert "verdict" in out and "triplet" in out
    files = sorted(p.suffix for p in tmp_path.iterdir())
    assert files == [".csv", ".json", ".png"]
    payload = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert [r["positive"] for r in payload["results"]] == ["random", "easy"]
    assert payload["config"]["seeds"] == 2 and len(payload["results"][0]["per_seed"]) == 2
    results = payload["results"]
    for r in results:  # the verdict follows from the row's own numbers
        assert r["verdict"] == verdict(r["mode_separation"])
        assert r["seeds_collapsed"] == sum(s["mode_separation"] < COLLAPSE_THRESHOLD for s in r["per_seed"])
    # 30 steps are far too few for the collapse the full run shows: both keep their modes, EPS spreads them more.
    assert [r["verdict"] for r in results] == ["modes kept", "modes kept"]
    assert results[1]["mode_separation"] > results[0]["mode_separation"]


def test_contrastive_without_noise_is_judged_collapsed(tmp_path, capsys):
    # With pos_margin 0 every positive pair is pulled to distance 0 (T0): the other verdict, on the same path.
    rc = main(["--loss", "contrastive", "--positive", "random", "--noise", "0", "--steps", "150", "--seeds", "2",
               "--workers", "1", "--out", str(tmp_path)])  # fmt: skip
    assert rc == 0
    (row,) = json.loads(next(tmp_path.glob("*.json")).read_text())["results"]
    assert row["verdict"] == "collapsed" and row["seeds_collapsed"] == 2 and row["mode_separation"] < 0.01
    assert "collapsed" in capsys.readouterr().out


def test_help_lists_every_flag(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    help_text = capsys.readouterr().out
    for flag in ("--noise", "--noise-model", "--loss", "--positive", "--negative", "--classes", "--modes", "--dim",
                 "--model", "--steps", "--batch", "--seed", "--out"):
        assert flag in help_text
