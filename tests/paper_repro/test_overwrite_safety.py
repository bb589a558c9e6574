"""``--overwrite`` deletes a run folder only: a folder without the run's own marker is refused in one line."""

import pytest

from paper_repro.checkpoint import RUN_MARKER, prepare_run_dir
from paper_repro.train import main


def test_overwrite_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    """Reproduction 2 of issue 10: --overwrite --out DIR deleted any non-empty DIR (a notes file, a sub-folder)."""
    notes = tmp_path / "DIR"
    (notes / "sub").mkdir(parents=True)
    (notes / "notes.txt").write_text("my notes")
    (notes / "sub" / "data.csv").write_text("1,2")
    code = main(["--overwrite", "--out", str(notes), "--dataset", "digits", "--steps", "1", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "refusing to delete" in err[0] and RUN_MARKER in err[0]
    assert (notes / "notes.txt").read_text() == "my notes" and (notes / "sub" / "data.csv").is_file()


def test_overwrite_replaces_a_run_folder(tmp_path):
    run = tmp_path / "run"
    assert prepare_run_dir(run, resume=False, overwrite=False) is False
    assert (run / RUN_MARKER).is_file()  # every run folder carries its marker from the start
    (run / "metrics.json").write_text("{}")
    with pytest.raises(FileExistsError):
        prepare_run_dir(run, resume=False, overwrite=False)
    assert prepare_run_dir(run, resume=False, overwrite=True) is False
    assert sorted(p.name for p in run.iterdir()) == [RUN_MARKER]
