"""The IDX file format of MNIST and Fashion-MNIST, raw or gzip-compressed.

Layout (big-endian): two zero bytes, a type code, the number of dimensions ``n``, then ``n`` uint32 sizes, then
``prod(sizes)`` values of the type. Type codes: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32,
0x0E float64. Compression is recognised by the gzip magic bytes, not by the file name.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

__all__ = ["IDX_TYPES", "read_idx", "read_idx_bytes", "write_idx"]

IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx_bytes(path: str | Path) -> bytes:
    """The uncompressed bytes of ``path`` (gunzipped when it starts with the gzip magic)."""
    with open(path, "rb") as fh:
        head = fh.read(2)
    if head == _GZIP_MAGIC:
        try:
            with gzip.open(path, "rb") as fh:
                return fh.read()
        except (OSError, EOFError) as err:
            raise ValueError(f"cannot read IDX file {path}: broken gzip data ({err})") from err
    return Path(path).read_bytes()


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file into a native-endian numpy array; a one-line ``ValueError`` names the file if malformed."""
    data = read_idx_bytes(path)
    if len(data) < 4:
        raise ValueError(f"cannot read IDX file {path}: {len(data)} bytes, shorter than the 4-byte magic number")
    zero, code, ndim = data[:2], data[2], data[3]
    if zero != b"\x00\x00" or code not in IDX_TYPES or ndim == 0:
        codes = ", ".join(f"0x{c:02X}" for c in IDX_TYPES)
        raise ValueError(
            f"cannot read IDX file {path}: bad magic number 0x{data[:4].hex().upper()}; "
            f"expected 0x0000 then a type code ({codes}) and a dimension count >= 1"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"cannot read IDX file {path}: header needs {header} bytes, file has {len(data)}")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(IDX_TYPES[code])
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise ValueError(
            f"cannot read IDX file {path}: shape {shape} of {dtype.name} needs {expected} bytes, file has {len(data)}"
        )
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def write_idx(path: str | Path, array: np.ndarray, *, compress: bool = False) -> Path:
    """Write ``array`` as an IDX file (gzip-compressed with ``compress=True``, reproducibly: mtime 0)."""
    array = np.asarray(array)
    codes = {np.dtype(v).newbyteorder("="): k for k, v in IDX_TYPES.items()}
    dt = array.dtype.newbyteorder("=")
    if dt not in codes or array.ndim == 0:
        raise ValueError(
            f"IDX stores arrays of >= 1 dimension of uint8, int8, int16, int32, float32, float64; got {dt}"
        )
    body = struct.pack(">BBBB", 0, 0, codes[dt], array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    body += array.astype(dt.newbyteorder(">"), copy=False).tobytes()
    path = Path(path)
    path.write_bytes(gzip.compress(body, mtime=0) if compress else body)
    return path
