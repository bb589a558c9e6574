"""collapse.io: every result file is written through one atomic path."""

import os

import pytest

from collapse.io import atomic_path, write_bytes, write_csv, write_json, write_text


def test_atomic_path_replaces_on_success_and_keeps_the_old_file_on_error(tmp_path):
    target = tmp_path / "sub" / "out.bin"
    write_bytes(target, b"old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(target, suffix=".bin", tag="1234") as tmp:
            assert tmp.parent == target.parent and tmp.name.startswith(".out.bin.1234.") and tmp.suffix == ".bin"
            tmp.write_bytes(b"half")
            raise RuntimeError("boom")
    assert target.read_bytes() == b"old" and sorted(p.name for p in target.parent.iterdir()) == ["out.bin"]
    with atomic_path(target, fsync=True) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new" and oct(os.stat(target).st_mode & 0o777) == "0o644"


def test_text_json_and_csv_writers(tmp_path):
    assert write_text(tmp_path / "a.txt", "x\n").read_text() == "x\n"
    assert write_json(tmp_path / "a.json", {"k": float("nan")}).read_text().startswith("{")
    rows = [{"a": 1}, {"a": 2, "b": 3}]
    assert write_csv(tmp_path / "a.csv", rows).read_text().splitlines() == ["a,b", "1,", "2,3"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "a.json", "a.txt"]  # no temporaries left
