"""Atomic result files: a crash mid-write never leaves a half-written JSON or CSV behind."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "write_bytes", "write_csv", "write_json", "write_text"]


@contextmanager
def atomic_path(path: str | Path, *, suffix: str = ".tmp", tag: str = "", fsync: bool = False) -> Iterator[Path]:
    """A temporary file next to ``path`` for the caller to write; on a clean exit it replaces ``path`` in one
    ``os.replace`` (atomic on POSIX), on an error it is removed. So a reader sees the old file or the new one,
    never half of one.

    ``suffix``: the temporary's ending (writers that infer the format from it, e.g. ``.png``, ``.npz``); ``tag``: a
    word in its name (``.<name>.<tag>.XXXX<suffix>``, e.g. the writer's pid, so that temporaries of a killed writer
    can be found); ``fsync``: flush it to disk before the replace (a checkpoint that must survive a power cut).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{tag + '.' if tag else ''}", suffix=suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        # mkstemp creates 0600 files; results are meant to be shared like any other file.
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _atomic_write(path: Path, text: str) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        fh.write(text)


def write_bytes(path: str | Path, data: bytes) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def write_text(path: str | Path, text: str) -> Path:
    path = Path(path)
    _atomic_write(path, text)
    return path


def write_json(path: str | Path, obj: object) -> Path:
    path = Path(path)
    _atomic_write(path, json.dumps(obj, indent=2, allow_nan=True) + "\n")
    return path


def write_csv(path: str | Path, rows: Sequence[dict]) -> Path:
    path = Path(path)
    fields: list[str] = []
    for r in rows:
        fields += [k for k in r if k not in fields]
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    _atomic_write(path, buf.getvalue())
    return path
