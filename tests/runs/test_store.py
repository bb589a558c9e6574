"""The result store: one valid record per key, atomic writes, refusals before compute."""

import json
import shutil
from pathlib import Path

import pytest

from collapse.runs import STORE_MARKER, ResultStore
from tests.runs.toy_kind import ToyRun


def test_put_get_and_validation(tmp_path):
    assert not ResultStore(tmp_path / "s").exists and not (tmp_path / "s").exists()  # asking creates nothing
    store = ResultStore(tmp_path / "s").prepare()
    assert (tmp_path / "s" / STORE_MARKER).is_file() and store.exists
    run = ToyRun(3)
    assert store.get(run) is None and not store.done(run)
    store.put(run, result={"square": 9})
    assert store.result(run) == {"square": 9} and store.done(run)
    assert [r.key for r in store.records()] == [run.key] and list(store.records("sim")) == []
    # A record whose stored identity differs (a stale or foreign file under this key) is not this run's result.
    path = store.path(run.key)
    data = json.loads(path.read_text())
    data["run"]["x"] = 4
    path.write_text(json.dumps(data))
    assert store.get(run) is None
    path.write_text("{truncated")
    assert store.get(run) is None and list(store.records()) == []
    with pytest.raises(KeyError, match="no finished record for toy"):
        store.results([run])


def test_a_failure_never_replaces_a_result(tmp_path):
    store = ResultStore(tmp_path).prepare()
    run = ToyRun(2)
    store.put(run, error="RuntimeError: boom")
    assert store.get(run).status == "failed" and store.result(run) is None
    store.put(run, result={"square": 4})
    store.put(run, error="RuntimeError: late duplicate")
    assert store.result(run) == {"square": 4}
    with pytest.raises(ValueError, match="exactly one of result and error"):
        store.put(run)


def test_prepare_refuses_bad_places_in_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("keep me")
    for root, match in [
        (tmp_path / "file", r"is a file, not a folder"),
        (tmp_path / "file" / "store", r"cannot be created: .* is a file"),
        (tmp_path / "notes", r"is a folder that is not a result store \(it holds 'mine.txt'"),
    ]:
        with pytest.raises(ValueError, match=match) as info:
            ResultStore(root).prepare()
        assert "\n" not in str(info.value)
    assert (tmp_path / "notes" / "mine.txt").read_text() == "keep me"


def test_a_record_says_which_code_wrote_it_and_older_records_still_read(tmp_path):
    import collapse
    from collapse.runs.store import code_version

    store = ResultStore(tmp_path / "s").prepare()
    run = ToyRun(5)
    rec = store.put(run, result={"square": 25})
    assert rec.code == code_version() and rec.code.startswith("collapse ")
    if (Path(collapse.__file__).resolve().parents[1] / ".git").exists() and shutil.which("git"):
        assert ", git " in rec.code  # a checkout names its commit
    data = json.loads(store.path(run.key).read_text())
    assert data["code"] == rec.code
    del data["code"]  # a record written before the field existed
    store.path(run.key).write_text(json.dumps(data))
    assert store.result(run) == {"square": 25} and store.get(run).code == ""
