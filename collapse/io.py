"""Atomic result files: a crash mid-write never leaves a half-written JSON or CSV behind."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

__all__ = ["write_csv", "write_json", "write_text"]


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as fh:
            fh.write(text)
        # mkstemp creates 0600 files; results are meant to be shared like any other file.
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
