"""The glyph retrieval grid: drawn from a finished random/easy pair of tiny glyph runs (slow), and its errors."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from paper_repro.datasets import get_dataset
from paper_repro.datasets.glyphs_build import build_glyphs
from paper_repro.figures import glyph_retrieval as gr
from paper_repro.figures import retrieval_grid as rg

from .datasets.glyph_fixtures import FIXTURE_SETTINGS, copy_fonts


def test_frames_keep_the_grid_colours_and_styles_with_glyph_names():
    for kind, (colour, style, _) in rg.KINDS.items():
        assert gr.GLYPH_KINDS[kind][:2] == (colour, style)
    assert [v[2] for v in gr.GLYPH_KINDS.values()] == ["same character", "same script, other character", "other script"]


def test_no_runs_is_a_one_line_error(tmp_path, capsys):
    assert gr.main(["--runs-root", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "no finished random/easy pair" in err and err.count("\n") == 1


@pytest.mark.slow
def test_grid_is_drawn_from_a_finished_glyph_pair(tmp_path):
    from paper_repro.train import train

    root = tmp_path / "data"
    build_glyphs(root, font_dirs=[copy_fonts(tmp_path / "fonts")], log=lambda s: None, **FIXTURE_SETTINGS)
    for positive in ("random", "easy"):
        train({"out": str(tmp_path / "runs" / positive), "dataset": "glyphs", "root": str(root), "loss": "triplet",
               "positive": positive, "steps": 2, "eval_every": 2, "batch_classes": 2, "samples_per_class": 4,
               "dim": 8}, progress=False)
    result = gr.draw(tmp_path / "fig", runs_root=tmp_path / "runs", data_root=str(root), k=3)
    assert result.png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "same character" in result.caption
    test = get_dataset("glyphs", root, "test")  # held-out scripts
    rows = list(csv.DictReader(open(tmp_path / "fig" / "f_retrieval_grid.csv")))
    assert rows
    for r in rows:  # every frame is the match of the neighbour's script and character with the query's
        q, n = int(r["query"]), int(r["neighbour"])
        same_script = test.labels[q] == test.labels[n]
        same_char = same_script and test.fine_labels[q] == test.fine_labels[n]
        assert r["match"] == ("fine" if same_char else "coarse" if same_script else "wrong")
    assert np.isin([int(r["query_coarse"]) for r in rows], test.labels).all()
