"""fetch: checksum verification and the verify-then-move logic, on local files (the network part is not tested)."""

from __future__ import annotations

import gzip
import hashlib

import numpy as np
import pytest

from paper_repro.datasets import get_dataset
from paper_repro.datasets.fetch import CHECKSUMS, ChecksumError, fetch, idx_md5, main, verify_checksum
from paper_repro.datasets.mnist import IDX_FILES

from .fixtures import make_idx_set


def test_checksums_cover_the_four_files():
    names = {b for part in IDX_FILES.values() for b in part}
    assert all(set(c) == names for c in CHECKSUMS.values())
    assert all(len(m) == 32 and int(m, 16) >= 0 for c in CHECKSUMS.values() for m in c.values())


def test_md5_is_of_uncompressed_bytes(tmp_path):
    files = make_idx_set(tmp_path, gz=True)
    path, _ = files["train-labels-idx1-ubyte"]
    expected = hashlib.md5(gzip.decompress(path.read_bytes())).hexdigest()
    assert idx_md5(path) == expected
    verify_checksum(path, expected)  # no error
    recompressed = tmp_path / "again.gz"
    recompressed.write_bytes(gzip.compress(gzip.decompress(path.read_bytes()), compresslevel=1, mtime=123))
    verify_checksum(recompressed, expected)  # Debian-style recompression still verifies


def test_tampered_file_is_rejected(tmp_path):
    files = make_idx_set(tmp_path, gz=False)
    path, _ = files["train-images-idx3-ubyte"]
    good = idx_md5(path)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    got = hashlib.md5(bytes(data)).hexdigest()
    with pytest.raises(ChecksumError, match=rf"checksum mismatch for {path}: expected md5 {good}, got {got}"):
        verify_checksum(path, good)


@pytest.fixture
def fake_source(tmp_path, monkeypatch):
    """A --source folder of raw IDX files and CHECKSUMS patched to their md5s."""
    files = make_idx_set(tmp_path / "src", gz=False)
    for name, (path, _) in files.items():
        monkeypatch.setitem(CHECKSUMS["mnist"], name, hashlib.md5(path.read_bytes()).hexdigest())
    return tmp_path / "src"


def test_fetch_from_source_verifies_moves_and_skips(tmp_path, fake_source):
    log = []
    paths = fetch("mnist", tmp_path / "data", source=fake_source, log=log.append)
    assert [p.name for p in paths] == [f"{b}.gz" for b in CHECKSUMS["mnist"]]
    assert all(p.is_file() for p in paths) and not list((tmp_path / "data").glob(".fetch-*"))
    ds = get_dataset("mnist", root=tmp_path / "data", split="test")
    assert len(ds) == 5 and np.array_equal(ds.labels, np.arange(5))
    log.clear()
    fetch("mnist", tmp_path / "data", source=tmp_path / "nowhere", log=log.append)  # all verified: no source needed
    assert len(log) == 4 and all("present and verified, skipped" in line for line in log)


def test_fetch_refuses_tampered_source_and_moves_nothing(tmp_path, fake_source):
    bad = fake_source / "t10k-labels-idx1-ubyte"
    bad.write_bytes(bad.read_bytes()[:-1] + b"\x09")
    with pytest.raises(ChecksumError, match=f"checksum mismatch for {bad}: expected md5"):
        fetch("mnist", tmp_path / "data", source=fake_source, log=lambda s: None)
    assert not (tmp_path / "data" / "mnist").exists()  # verify first, then move: nothing half-done
    assert not list((tmp_path / "data").glob(".fetch-*"))
    assert main(["--dataset", "mnist", "--root", str(tmp_path / "data"), "--source", str(fake_source)]) == 1


def test_fetch_replaces_a_corrupted_existing_file(tmp_path, fake_source):
    fetch("mnist", tmp_path / "data", source=fake_source, log=lambda s: None)
    target = tmp_path / "data" / "mnist" / "train-labels-idx1-ubyte.gz"
    target.write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x00"))
    log = []
    fetch("mnist", tmp_path / "data", source=fake_source, log=log.append)
    assert any("checksum mismatch" in line and "fetching it again" in line for line in log)
    verify_checksum(target, CHECKSUMS["mnist"]["train-labels-idx1-ubyte"])


def test_cli_help_and_bad_dataset(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0 and "md5" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--dataset", "cifar"])
    assert "invalid choice: 'cifar'" in capsys.readouterr().err
