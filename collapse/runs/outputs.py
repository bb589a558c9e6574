"""Output safety: check where results go before computing them, and never touch what a run does not own.

* :func:`check_writable_dir` / :func:`check_writable_file`: called by every command *before* any compute; they
  create the folder and write (then remove) a probe file, so a bad ``--out`` fails in a second with one line.
* :func:`hashed_stem`: output names carry the hash of the runs behind them, so two configurations never share a
  file.
* :func:`remove_marked_dir`: ``--overwrite`` deletes a folder only if it holds the run's own marker file.
* :func:`check_marked_file`: ``--readme PATH`` (and any file rewritten between markers) must exist and hold them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "check_marked_file",
    "check_writable_dir",
    "check_writable_file",
    "hashed_stem",
    "remove_marked_dir",
    "runs_hash",
    "stable_path",
]


def stable_path(path: str | Path | None) -> str | None:
    """``path`` as a result file records it: relative to the working directory (the checkout a command runs in)
    when it lies inside it, else None: a temporary or foreign folder is no place to find anything again."""
    if path is None:
        return None
    p = Path(path)
    if not p.is_absolute():
        return p.as_posix() if ".." not in p.parts else None
    try:
        return p.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return None


def _first_existing(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_writable_dir(path: str | Path, *, what: str = "output folder", create: bool = True) -> Path:
    """Make sure files can be written in folder ``path`` (created with its parents if ``create``).

    One-line ``ValueError`` naming ``what`` and the path when it is a file, lies under a file, or is not writable.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{what} {path} is a file, not a folder; name a folder")
    anc = _first_existing(path.absolute())
    if not anc.is_dir():
        raise ValueError(f"{what} {path} cannot be created: {anc} is a file, not a folder")
    if not create:
        if not os.access(anc, os.W_OK | os.X_OK):
            raise ValueError(f"{what} {path} is not writable ({anc} does not allow writing)")
        return path
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".write-probe.")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ValueError(f"{what} {path} is not writable: {exc.strerror or exc}") from None
    return path


def check_writable_file(path: str | Path, *, what: str = "output file") -> Path:
    """Make sure file ``path`` can be written atomically: its folder is writable and the path is not a folder."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{what} {path} is a folder, not a file; name a file")
    check_writable_dir(path.parent if str(path.parent) else Path("."), what=f"folder of {what}")
    return path


def runs_hash(keys: Iterable[str], length: int = 12) -> str:
    """A short hash of a set of run keys (order does not matter): the name of what a command produced."""
    text = ",".join(sorted(set(keys)))
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def hashed_stem(prefix: str, keys: Iterable[str]) -> str:
    """``<prefix>_<hash of the run keys>``: a file name no other set of runs shares."""
    return f"{prefix}_{runs_hash(keys)}"


def remove_marked_dir(path: str | Path, marker: str, *, what: str = "folder") -> bool:
    """Delete folder ``path`` if it holds ``marker`` (a file only the run that owns the folder writes).

    Returns False if there is nothing to remove (missing or empty folder). Raises a one-line ``ValueError`` and
    deletes nothing if ``path`` is a file, or a non-empty folder without the marker (not a run: someone's data).
    """
    path = Path(path)
    if not path.exists():
        return False
    if not path.is_dir():
        raise ValueError(f"{what} {path} is a file, not a run folder; refusing to delete it")
    if not any(path.iterdir()):
        return False
    if not (path / marker).is_file():
        raise ValueError(f"refusing to delete {path}: it is not a run folder (no {marker} in it)")
    shutil.rmtree(path)
    return True


def check_marked_file(path: str | Path, markers: tuple[str, str], *, flag: str = "--readme") -> Path:
    """``path`` must be an existing file holding ``markers[0]`` followed by ``markers[1]``; one-line error if not."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{flag} {path} does not exist (or is not a file); name an existing file with the markers")
    text = path.read_text()
    start, end = (text.find(m) for m in markers)
    if start < 0 or end < 0 or end < start:
        raise ValueError(f"{flag} {path} lacks the markers {markers[0]} ... {markers[1]}; add them where the section "
                         "goes")
    if not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK):
        raise ValueError(f"{flag} {path} is not writable")
    return path
