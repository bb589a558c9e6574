"""IDX reader: raw and gzip files against hand-written bytes, bad magic numbers and truncated files."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from paper_repro.datasets.idx import read_idx, write_idx

from .fixtures import idx_bytes


@pytest.mark.parametrize("gz", [False, True])
def test_reads_hand_written_file(tmp_path, gz):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    data = idx_bytes(arr)
    path = tmp_path / ("x.idx.gz" if gz else "x.idx")
    path.write_bytes(gzip.compress(data) if gz else data)
    out = read_idx(path)
    assert out.dtype == np.uint8 and out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out, arr)


def test_compression_is_detected_by_content_not_name(tmp_path):
    arr = np.array([7, 8, 9], dtype=np.int32)
    path = tmp_path / "labels-idx1-ubyte"  # no .gz suffix, but gzip content
    path.write_bytes(gzip.compress(idx_bytes(arr)))
    out = read_idx(path)
    assert out.dtype == np.int32 and out.dtype.isnative
    np.testing.assert_array_equal(out, arr)


@pytest.mark.parametrize("magic", [b"\x01\x00\x08\x01", b"\x00\x00\x07\x01", b"\x00\x00\x08\x00", b"\x00\x00"])
def test_bad_magic_number_is_rejected(tmp_path, magic):
    path = tmp_path / "bad-idx1-ubyte"
    path.write_bytes(magic + b"\x00\x00\x00\x01\x05")
    with pytest.raises(ValueError, match=r"cannot read IDX file .*bad-idx1-ubyte: (bad magic number|2 bytes)"):
        read_idx(path)


def test_size_mismatch_is_rejected(tmp_path):
    data = idx_bytes(np.zeros((4, 2, 2), dtype=np.uint8))
    (tmp_path / "short").write_bytes(data[:-1])
    (tmp_path / "long").write_bytes(data + b"\x00")
    for name in ("short", "long"):
        with pytest.raises(ValueError, match=rf"{name}: shape \(4, 2, 2\) of uint8 needs 32 bytes, file has 3[13]"):
            read_idx(tmp_path / name)


def test_broken_gzip_is_named(tmp_path):
    path = tmp_path / "broken.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros(100, dtype=np.uint8)))[:-8])
    with pytest.raises(ValueError, match="broken.gz: broken gzip data"):
        read_idx(path)


@given(
    arrays(
        st.sampled_from([np.uint8, np.int32]),
        st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple),
        elements=st.integers(0, 127),
    ),
    st.booleans(),
)
def test_write_then_read_round_trips_and_matches_spec(tmp_path_factory, arr, compress):
    path = write_idx(tmp_path_factory.mktemp("idx") / "a", arr, compress=compress)
    raw = gzip.decompress(path.read_bytes()) if compress else path.read_bytes()
    assert raw == idx_bytes(arr)
    np.testing.assert_array_equal(read_idx(path), arr)
