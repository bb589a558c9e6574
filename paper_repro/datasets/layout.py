"""Finding a data set's folder and reporting a missing or malformed layout in one line."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path, PurePosixPath, PureWindowsPath

__all__ = ["dataset_folder", "read_table", "require_layout", "resolve_listed"]


def dataset_folder(root: str | Path, dirname: str, markers: Sequence[str]) -> Path:
    """``root/dirname``, or ``root`` itself when it already holds every marker (the data set's own folder)."""
    root = Path(root)
    if not (root / dirname).exists() and markers and all((root / m).exists() for m in markers):
        return root
    return root / dirname


def require_layout(folder: Path, names: Sequence[str], what: str, expected: str) -> None:
    """Raise ``FileNotFoundError: <what> not found under <folder>: expected <expected>[; missing ...]``.

    ``names`` are the paths relative to ``folder`` that must exist (a trailing "/" means a directory).
    """
    missing = [n for n in names if not (folder / n.rstrip("/")).exists()]
    if not folder.is_dir():
        raise FileNotFoundError(f"{what} not found under {folder}: expected {expected}")
    if missing:
        raise FileNotFoundError(f"{what} not found under {folder}: expected {expected}; missing {', '.join(missing)}")


def read_table(path: Path, fields: str, types: Sequence[type]) -> list[tuple]:
    """Rows of a whitespace-separated text file; ``fields`` names the columns for the error message.

    The last column takes the rest of the line (so names may contain spaces). Blank lines are skipped.
    """
    rows = []
    with open(path, encoding="utf-8") as fh:
        for k, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            parts = line.strip().split(maxsplit=len(types) - 1)
            try:
                if len(parts) != len(types):
                    raise ValueError
                rows.append(tuple(t(p) for t, p in zip(types, parts)))
            except ValueError:
                raise ValueError(f"malformed {path} line {k}: expected '{fields}', got {line.strip()!r}") from None
    return rows


def resolve_listed(folder: Path, name: str, listed_in: Path) -> Path:
    """``folder / name`` for a file name read from the metadata file ``listed_in``; a name that is absolute or
    climbs out with ``..`` is refused in one line, so a metadata file can never make a loader read outside the data
    set's folder. Names are checked as written (POSIX or Windows separators), without touching the disk."""
    for pure in (PurePosixPath(name), PureWindowsPath(name)):
        if pure.is_absolute() or pure.anchor or ".." in pure.parts:
            raise ValueError(
                f"malformed {listed_in}: image path {name!r} leaves {folder}; paths there must be relative, "
                "without '..'"
            )
    return folder / name
