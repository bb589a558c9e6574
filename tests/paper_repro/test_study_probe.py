"""The probe's judgement: both runs and the controls on the clean run, from a saved embeddings file."""

from __future__ import annotations

import numpy as np
import pytest

from collapse.metrics.controls import reference_embedding, shrink_classes
from paper_repro.study_probe import PROBE_CONTROLS, judge_probe, main


def fake_probe(folder, *, noisy_shrink: float = 0.05):
    """An embeddings.npz in the probe's layout: the clean run keeps its modes, the noisy one is each class
    shrunk about its centroid (the collapse the acceptance asks the instrument to see)."""
    folder.mkdir(parents=True)
    x, y, m = reference_embedding(classes=3, modes=3, samples_per_mode=40, dim=8, spread=0.05, random_state=1)
    xs, _, _ = shrink_classes((x, y, m), np.random.default_rng(0), factor=noisy_shrink)
    train = np.arange(len(y)) % 2 == 0
    arrays = {"train_labels": y[train], "train_fine": m[train], "test_labels": y[~train], "test_fine": m[~train]}
    for name, emb, loss in (("clean-random", x, 0.15), ("noisy-random", xs, 0.2004)):
        arrays |= {f"{name}_train": emb[train], f"{name}_test": emb[~train], f"{name}_final_loss": np.array(loss)}
    np.savez(folder / "embeddings.npz", **arrays)


def test_judgement_separates_the_runs_and_holds_its_controls(tmp_path):
    fake_probe(tmp_path / "probe")
    rows = judge_probe(tmp_path / "probe", null_permutations=5)
    assert [r["held"] for r in rows] == [True] * (2 + len(PROBE_CONTROLS))
    assert rows[0]["verdict"] != "collapsed" and rows[1]["verdict"] == "collapsed"
    assert rows[1]["instrument_class_radius_over_margin"] < 0.5 < rows[0]["instrument_class_radius_over_margin"]
    assert (tmp_path / "probe" / "judgement.md").read_text().count("\n| ") == 1 + 2 + len(PROBE_CONTROLS)


def test_judgement_says_when_the_noisy_run_did_not_collapse(tmp_path):
    fake_probe(tmp_path / "probe", noisy_shrink=1.0)  # the "noisy" run is the clean one: nothing collapsed
    rows = judge_probe(tmp_path / "probe", null_permutations=5)
    assert rows[1]["held"] is False


def test_judge_without_embeddings_is_one_line(tmp_path, capsys):
    with pytest.raises(ValueError, match="train the probe first"):
        judge_probe(tmp_path / "nothing")
    # the CLI refuses a --figures path that is a file before training anything
    (tmp_path / "f").write_text("x")
    assert main(["--out", str(tmp_path / "p"), "--judge", "--figures", str(tmp_path / "f")]) == 2
    assert "error" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()
