"""The one executor: blocks in, records out, resumable and atomic per record.

:func:`execute` takes runs (or ready-made blocks), skips every run whose record in the store is finished,
computes the blocks that still have work on a backend, and writes each run's record as soon as its block
arrives. Killed at any moment (even SIGKILL), it leaves only whole records; run again, it computes only what
is missing. A block that raises gets a one-line ``failed`` record for each of its runs and the others go on; a
failed record is retried by the next execution.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from tqdm.auto import tqdm

from collapse.runs.backends import Backend, make_backend
from collapse.runs.spec import Block, Run, make_blocks
from collapse.runs.store import Record, ResultStore

__all__ = ["Execution", "execute"]


@dataclass
class Execution:
    """What :func:`execute` did, and the records of its runs (in the order given)."""

    runs: list[Run]
    store: ResultStore
    skipped: int = 0
    computed: int = 0
    failed: int = 0
    blocks: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def records(self) -> list[Record | None]:
        return [self.store.get(r) for r in self.runs]

    def results(self) -> list[dict]:
        """The measurement of every run, in order (``KeyError`` if one has no finished record)."""
        return self.store.results(self.runs)


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text.splitlines()[0]


def execute(
    work: Sequence[Run] | Sequence[Block],
    store: ResultStore | str,
    *,
    backend: str | Backend = "inline",
    workers: int | None = None,
    address: str | None = None,
    client: object | None = None,
    progress: bool = True,
    desc: str = "runs",
) -> Execution:
    """Compute every run of ``work`` that has no finished record in ``store``, and record it.

    Parameters
    ----------
    work : runs or blocks
        Runs are grouped into blocks by their kind (:func:`~collapse.runs.spec.make_blocks`).
    store : ResultStore or path
        Prepared (created, checked writable) before anything is computed.
    backend, workers, address, client
        See :func:`~collapse.runs.backends.make_backend`: ``"inline"``, ``"processes"`` or ``"dask"`` (an
        existing cluster by ``address`` or ``client``, else a new local one).
    progress : bool
        A tqdm bar over runs.
    """
    start = time.perf_counter()
    store = (store if isinstance(store, ResultStore) else ResultStore(store)).prepare()
    backend = make_backend(backend, workers=workers, address=address, client=client)
    work = list(work)
    if work and all(isinstance(w, Block) for w in work):
        blocks = work
        runs = [r for b in blocks for r in b.runs]
    else:
        blocks = make_blocks(work)
        runs = list({r.key: r for r in work}.values())  # the order given, repeats dropped
    done = {r.key for r in runs if store.done(r)}
    todo = [b for b in blocks if any(r.key not in done for r in b.runs)]
    # Costliest first, so that the last block to finish is a short one.
    todo.sort(key=lambda b: -b.cost)
    ex = Execution(runs=runs, store=store, skipped=len(done), blocks=len(todo))
    bar = tqdm(total=sum(1 for b in todo for r in b.runs if r.key not in done), desc=desc, unit="run",
               disable=not progress)

    def finished(i: int, results: list[dict] | None, error: BaseException | None, seconds: float) -> None:
        block = todo[i]
        keys = [r.key for r in block.runs]
        for j, run in enumerate(block.runs):
            if run.key in done:  # recomputed only because its block-mates were missing
                continue
            if error is None:
                store.put(run, result=results[j], block=keys, seconds=seconds)
                ex.computed += 1
            else:
                store.put(run, error=_one_line(error), block=keys, seconds=seconds)
                ex.failed += 1
                ex.errors.append(f"{run.describe()}: {_one_line(error)}")
            bar.update()
        bar.set_postfix(failed=ex.failed)

    try:
        backend.run(todo, finished)
    finally:
        bar.close()
    ex.seconds = time.perf_counter() - start
    return ex
