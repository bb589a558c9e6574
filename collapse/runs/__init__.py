"""The run layer: every grid, study and figure runs through one executor and one result store.

Data flow::

    Run (frozen config)  --make_blocks-->  Block (runs sharing one program)
        --execute(backend)-->  ResultStore (one JSON record per run key)  -->  tables, figures, ledger

* A **run** is a frozen dataclass subclassing :class:`Run`; its :attr:`Run.key` is a stable hash of its kind,
  schema and fields. Two configurations never share a key; the same one always gets the same key.
* A **kind** (:class:`Kind`) holds the one measurement function of a run type: ``measure(runs) -> [result, ...]``
  computes a block and returns one JSON-ready dict per run. ``block_key`` says which runs share one program.
* :func:`execute` takes runs or blocks, a :class:`ResultStore` and a backend (``"inline"``, ``"processes"`` or
  ``"dask"`` with an existing scheduler ``address``), skips runs whose record is finished, and writes each record
  atomically as its block arrives. It is safe to kill at any moment and rerun.
* Readers call ``store.results(runs)`` (or iterate ``store.records(kind)``); nothing reads working-directory paths.
* :mod:`collapse.runs.outputs` checks output locations before compute, names outputs by the hash of their runs,
  and guards ``--overwrite`` and ``--readme``.

Adding a kind of run
--------------------
In the module that defines it (so that unpickling a run on a worker registers its kind)::

    from dataclasses import dataclass
    from collapse.runs import Kind, Run, register_kind

    @dataclass(frozen=True)
    class RivalLossRun(Run):
        KIND = "rival-loss"      # unique name
        SCHEMA = 1               # bump when the measurement changes for the same fields
        config: SimConfig = SimConfig()
        loss: str = "rival"
        # every field the result depends on, and nothing else (no output paths, no worker counts)

    def measure_rival(runs: Sequence[RivalLossRun]) -> list[dict]:
        # pure function of the runs; JSON-ready dicts (floats, lists), one per run, in order
        ...

    register_kind(Kind("rival-loss", RivalLossRun, measure_rival,
                       block_key=lambda r: ...,   # optional: runs with equal keys are computed together
                       cost=lambda runs: ...))    # optional: bigger blocks start first

then ``execute([RivalLossRun(...), ...], ResultStore(path), backend="processes")`` and read
``ResultStore(path).results(runs)``. A kind whose runs should share a tensor program (like :class:`SimRun`, whose
noise levels train as the groups of one batch) puts what they share in ``block_key`` and makes whatever couples
their numbers (here ``block_noise``) a field of the run, so that a key always names the same numbers.
"""

from collapse.runs.backends import BACKENDS, Backend, make_backend, make_local_cluster
from collapse.runs.executor import Execution, execute
from collapse.runs.outputs import (
    check_marked_file,
    check_writable_dir,
    check_writable_file,
    hashed_stem,
    remove_marked_dir,
    runs_hash,
    stable_path,
)
from collapse.runs.sim import SimRun, measure_sim_block, sim_row
from collapse.runs.spec import KINDS, Block, Kind, Run, config_hash, get_kind, make_blocks, register_kind
from collapse.runs.store import DEFAULT_STORE, STORE_MARKER, Record, ResultStore

__all__ = [
    "BACKENDS",
    "DEFAULT_STORE",
    "KINDS",
    "STORE_MARKER",
    "Backend",
    "Block",
    "Execution",
    "Kind",
    "Record",
    "ResultStore",
    "Run",
    "SimRun",
    "check_marked_file",
    "check_writable_dir",
    "check_writable_file",
    "config_hash",
    "execute",
    "get_kind",
    "hashed_stem",
    "make_backend",
    "make_blocks",
    "make_local_cluster",
    "measure_sim_block",
    "register_kind",
    "remove_marked_dir",
    "runs_hash",
    "sim_row",
    "stable_path",
]
