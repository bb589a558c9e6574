"""The result store: one JSON record per run key, written atomically, read by every table, figure and ledger.

Layout of a store folder::

    <root>/.collapse-store          marker: this folder is a result store (format version)
    <root>/records/<key>.json       one record per run (see :class:`Record`)

A record is written with :func:`collapse.io.write_json` (temporary file + ``os.replace``), so a process killed at
any moment leaves either the whole record or none. Only the process that owns the executor writes; workers return
their results to it. A record is valid only if its key, kind, schema and run identity match the run asking for it,
so a stale or foreign file is never mistaken for a result.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from collapse.io import write_json, write_text
from collapse.runs.spec import Run, plain

__all__ = ["DEFAULT_STORE", "STORE_MARKER", "Record", "ResultStore", "code_version"]

#: Where every command keeps its records unless told otherwise (``--store``): ``results/store``, or the environment
#: variable ``COLLAPSE_STORE`` (the test suite points it at a temporary folder).
DEFAULT_STORE = os.environ.get("COLLAPSE_STORE", "results/store")
STORE_MARKER = ".collapse-store"
FORMAT = 1
STATUSES = ("ok", "failed")


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """The code that computes this process's records: ``collapse <version>`` and, in a git checkout, ``git <commit>``
    (with ``+changes`` when tracked files differ from it). Provenance only: it is not part of a run's key (a key
    changes with the kind's ``SCHEMA``), so a record read later says which code wrote it."""
    try:
        text = f"collapse {importlib.metadata.version('collapse')}"
    except importlib.metadata.PackageNotFoundError:
        text = "collapse (not installed)"
    root = str(Path(__file__).resolve().parents[2])
    try:
        head = subprocess.run(["git", "-C", root, "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=False)  # fmt: skip
        if head.returncode == 0:
            changes = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                                     capture_output=True, text=True, timeout=10, check=False)  # fmt: skip
            text += f", git {head.stdout.strip()}" + (" +changes" if changes.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return text


@dataclass
class Record:
    """The stored outcome of one run: ``status`` is ``"ok"`` (``result`` holds the kind's measurement) or
    ``"failed"`` (``error`` is one line; the run is retried by the next execution). ``code`` says which code wrote
    it (:func:`code_version`; empty in records written before it was kept)."""

    key: str
    kind: str
    schema: int
    run: dict
    status: str
    result: dict = field(default_factory=dict)
    error: str | None = None
    block: list[str] = field(default_factory=list)
    seconds: float = float("nan")
    host: str = ""
    pid: int = 0
    written: float = 0.0
    code: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class ResultStore:
    """A folder of records, one per run key. ``ResultStore(root)`` creates nothing until :meth:`prepare`."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"ResultStore({str(self.root)!r})"

    @property
    def records_dir(self) -> Path:
        return self.root / "records"

    @property
    def exists(self) -> bool:
        """Whether the folder is a result store already (its marker is there); readers that must not create one ask
        this instead of :meth:`prepare`."""
        return (self.root / STORE_MARKER).is_file()

    def path(self, key: str) -> Path:
        return self.records_dir / f"{key}.json"

    def prepare(self) -> ResultStore:
        """Create the folder (and its marker) and check that a record can be written there, before any compute.

        Raises a one-line ``ValueError`` naming the folder if it is a file, lies under a file, is not writable, or
        is a non-empty folder that is not a store (results are never mixed into someone else's files).
        """
        from collapse.runs.outputs import check_writable_dir

        root = self.root
        if root.is_dir() and not (root / STORE_MARKER).is_file():
            foreign = [p.name for p in root.iterdir() if p.name != "records"]
            if foreign:
                raise ValueError(f"store {root} is a folder that is not a result store (it holds {foreign[0]!r} and no "
                                 f"{STORE_MARKER}); name an empty or new folder")
        check_writable_dir(self.records_dir, what="store")
        if not (root / STORE_MARKER).is_file():
            write_text(root / STORE_MARKER, json.dumps({"format": FORMAT, "what": "collapse result store"}) + "\n")
        return self

    # ------------------------------------------------------------------------------------------------ reading

    def get(self, run: Run) -> Record | None:
        """The valid record of ``run`` (ok or failed), or None."""
        rec = self._read(self.path(run.key))
        if rec is None or rec.kind != run.KIND or rec.schema != run.SCHEMA:
            return None
        if rec.run != json.loads(json.dumps(plain(run.identity()))):
            return None
        return rec

    def result(self, run: Run) -> dict | None:
        """The measurement of ``run`` if it finished, else None."""
        rec = self.get(run)
        return rec.result if rec is not None and rec.ok else None

    def done(self, run: Run) -> bool:
        rec = self.get(run)
        return rec is not None and rec.ok

    def results(self, runs: Sequence[Run]) -> list[dict]:
        """The measurements of ``runs``, in order; ``KeyError`` naming the first run without a finished record."""
        out = []
        for run in runs:
            res = self.result(run)
            if res is None:
                raise KeyError(f"no finished record for {run.describe()} in {self.root}")
            out.append(res)
        return out

    def records(self, kind: str | None = None) -> Iterator[Record]:
        """Every valid record in the store (of ``kind`` if given), in key order."""
        if not self.records_dir.is_dir():
            return
        for path in sorted(self.records_dir.glob("*.json")):
            rec = self._read(path)
            if rec is not None and (kind is None or rec.kind == kind):
                yield rec

    def _read(self, path: Path) -> Record | None:
        try:
            data = json.loads(path.read_text())
            rec = Record(**data)
        except (OSError, ValueError, TypeError):
            return None
        if rec.key != path.stem or rec.status not in STATUSES:
            return None
        return rec

    # ------------------------------------------------------------------------------------------------ writing

    def put(
        self,
        run: Run,
        *,
        result: dict | None = None,
        error: str | None = None,
        block: Sequence[str] = (),
        seconds: float = float("nan"),
    ) -> Record:
        """Write the record of ``run`` atomically: a result (status ok) or a one-line error (status failed).

        A finished record is never replaced by a failed one (a duplicated block that failed elsewhere must not
        erase a result).
        """
        if (result is None) == (error is None):
            raise ValueError("put needs exactly one of result and error")
        if error is not None and self.done(run):
            return self.get(run)
        rec = Record(
            key=run.key, kind=run.KIND, schema=run.SCHEMA, run=json.loads(json.dumps(plain(run.identity()))),
            status="ok" if error is None else "failed", result=result or {}, error=error, block=list(block),
            seconds=float(seconds), host=socket.gethostname(), pid=os.getpid(), written=time.time(),
            code=code_version(),
        )
        write_json(self.path(rec.key), rec.to_dict())
        return rec
