"""Output safety helpers: checked before compute, hashed names, marked folders and files only."""

import pytest

from collapse.runs import check_marked_file, check_writable_dir, check_writable_file, hashed_stem, remove_marked_dir


def test_writable_checks_refuse_files_and_create_folders(tmp_path):
    (tmp_path / "FILE").write_text("x")
    assert check_writable_dir(tmp_path / "a" / "b").is_dir()
    for call, match in [
        (lambda: check_writable_dir(tmp_path / "FILE"), "is a file, not a folder"),
        (lambda: check_writable_dir(tmp_path / "FILE" / "out"), r"cannot be created: .*FILE is a file"),
        (lambda: check_writable_file(tmp_path / "FILE" / "claims.md"), r"folder of output file .*FILE is a file"),
        (lambda: check_writable_file(tmp_path / "a"), "is a folder, not a file"),
    ]:
        with pytest.raises(ValueError, match=match) as info:
            call()
        assert "\n" not in str(info.value)
    assert list((tmp_path / "a" / "b").iterdir()) == []  # the probe file is gone


def test_hashed_names_depend_on_the_set_of_runs():
    assert hashed_stem("sim", ["b", "a"]) == hashed_stem("sim", ["a", "b", "a"])
    assert hashed_stem("sim", ["a"]) != hashed_stem("sim", ["a", "b"])


def test_only_marked_folders_are_removed(tmp_path):
    run, notes = tmp_path / "run", tmp_path / "notes"
    run.mkdir()
    (run / ".run-marker").write_text("")
    (run / "x.json").write_text("{}")
    notes.mkdir()
    (notes / "n.txt").write_text("keep")
    (notes / "sub").mkdir()
    assert remove_marked_dir(run, ".run-marker") and not run.exists()
    with pytest.raises(ValueError, match=r"refusing to delete .*notes: it is not a run folder \(no .run-marker"):
        remove_marked_dir(notes, ".run-marker")
    assert (notes / "n.txt").read_text() == "keep" and (notes / "sub").is_dir()
    assert remove_marked_dir(tmp_path / "missing", ".run-marker") is False


def test_marked_file_needs_to_exist_with_both_markers(tmp_path):
    marks = ("<!-- start -->", "<!-- end -->")
    with pytest.raises(ValueError, match=r"--readme .*README.md does not exist"):
        check_marked_file(tmp_path / "MISSING" / "README.md", marks)
    assert not (tmp_path / "MISSING").exists()
    f = tmp_path / "R.md"
    f.write_text("no markers")
    with pytest.raises(ValueError, match="lacks the markers"):
        check_marked_file(f, marks)
    f.write_text("a <!-- start --> b <!-- end --> c")
    assert check_marked_file(f, marks) == f
