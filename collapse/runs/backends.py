"""Where blocks are computed: in this process, in local worker processes, or on a Dask cluster.

This module is the only place in the package that creates worker pools (``ProcessPoolExecutor``, Dask's
``LocalCluster``/``Client``). Every backend runs :func:`compute_block` on each block and calls back with its
results as soon as it finishes; only the calling process writes records.

* ``inline``: one block after another in this process (tests, debugging, one core).
* ``processes``: a ``ProcessPoolExecutor`` of single-threaded workers, forked on Linux (a worker starts in
  milliseconds without a second torch import), spawned elsewhere.
* ``dask``: an existing cluster by scheduler address (``tcp://host:8786``; its workers need ``collapse``
  importable), or a new :func:`make_local_cluster` when no address is given. The scheduler reschedules the blocks
  of a worker that dies, up to ``allowed_failures`` times.
"""

from __future__ import annotations

import logging
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from collapse._validation import check_choice, check_int
from collapse.runs.spec import Block

__all__ = ["BACKENDS", "Backend", "compute_block", "make_backend", "make_local_cluster", "single_thread"]

BACKENDS = ("inline", "processes", "dask")

#: Called with (block index, results or None, error or None, seconds).
Callback = Callable[[int, list[dict] | None, BaseException | None, float], None]


class single_thread:
    """Context manager: torch and BLAS/OpenMP on one thread (one process per core; nested threads would only
    oversubscribe the cores), restored on exit."""

    def __enter__(self) -> single_thread:
        import torch
        from threadpoolctl import threadpool_limits

        self._torch = torch.get_num_threads()
        torch.set_num_threads(1)
        self._limits = threadpool_limits(1)
        return self

    def __exit__(self, *exc) -> None:
        import torch

        self._limits.restore_original_limits()
        torch.set_num_threads(self._torch)


def compute_block(block: Block) -> tuple[list[dict], float]:
    """The task every backend runs: the block's measurement on one thread, and its wall time."""
    start = time.perf_counter()
    with single_thread():
        results = block.compute()
    return results, time.perf_counter() - start


def _init_worker() -> None:
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(1)


@dataclass
class Backend:
    """A backend by name with its settings; :meth:`run` computes blocks and reports each as it finishes."""

    name: str = "inline"
    workers: int = 2
    address: str | None = None
    client: object | None = None
    allowed_failures: int = 3

    def run(self, blocks: Sequence[Block], done: Callback) -> None:
        if not blocks:
            return
        if self.name == "inline":
            for i, block in enumerate(blocks):
                start = time.perf_counter()
                try:
                    results, seconds = compute_block(block)
                except Exception as exc:  # recorded as failed by the executor; the other blocks go on
                    done(i, None, exc, time.perf_counter() - start)
                else:
                    done(i, results, None, seconds)
        elif self.name == "processes":
            self._run_processes(blocks, done)
        else:
            self._run_dask(blocks, done)

    def _run_processes(self, blocks: Sequence[Block], done: Callback) -> None:
        from concurrent.futures import ProcessPoolExecutor, as_completed
        from multiprocessing import get_context

        # fork: no second torch import per worker; spawn where fork is unsafe or missing.
        ctx = get_context("fork" if sys.platform == "linux" else "spawn")
        workers = min(self.workers, len(blocks))
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker) as pool:
            futures = {pool.submit(compute_block, b): i for i, b in enumerate(blocks)}
            for fut in as_completed(futures):
                try:
                    results, seconds = fut.result()
                except Exception as exc:  # includes BrokenProcessPool: the blocks of a dead worker are failed
                    done(futures[fut], None, exc, float("nan"))
                else:
                    done(futures[fut], results, None, seconds)

    def _run_dask(self, blocks: Sequence[Block], done: Callback) -> None:
        from distributed import Client, as_completed

        cluster, client = None, self.client
        if client is None:
            if self.address is not None:
                client = Client(self.address)
            else:
                cluster = make_local_cluster(self.workers, self.allowed_failures)
                client = Client(cluster)
        try:
            futures = {}
            for i, b in enumerate(blocks):
                # A unique key: a rerun on a long-lived cluster must not pick up an old result of the same block.
                key = f"collapse-{b.kind}-{b.runs[0].key[:10]}-{uuid.uuid4().hex[:8]}"
                futures[client.submit(compute_block, b, key=key, pure=False)] = i
            for fut in as_completed(futures):
                try:
                    results, seconds = fut.result()
                except Exception as exc:  # e.g. KilledWorker after allowed-failures
                    done(futures[fut], None, exc, float("nan"))
                else:
                    done(futures[fut], results, None, seconds)
                fut.release()
        finally:
            if self.client is None:
                client.close()
            if cluster is not None:
                cluster.close()


def make_backend(
    backend: str | Backend = "inline",
    *,
    workers: int | None = None,
    address: str | None = None,
    client: object | None = None,
    allowed_failures: int = 3,
) -> Backend:
    """A :class:`Backend` from a name (see :data:`BACKENDS`), validated with one-line errors.

    ``address`` or ``client`` imply ``dask``; ``workers`` (default 2) is the pool size of ``processes`` and of a
    new local Dask cluster.
    """
    if isinstance(backend, Backend):
        return backend
    if address is not None or client is not None:
        backend = "dask"
    check_choice("backend", backend, BACKENDS)
    workers = 2 if workers is None else check_int("workers", workers, low=1)
    allowed_failures = check_int("allowed_failures", allowed_failures, low=0)
    return Backend(backend, workers, address, client, allowed_failures)


def make_local_cluster(workers: int = 2, allowed_failures: int = 3):
    """A :class:`distributed.LocalCluster` of ``workers`` single-threaded worker processes.

    On Linux the workers are forked from a fork server that has already imported torch and collapse, so a
    worker starts, and restarts after a crash, in a fraction of a second instead of re-importing torch (seconds
    on a loaded 2-core machine). Elsewhere dask's default, spawn, is kept.
    """
    import multiprocessing

    import dask
    from distributed import LocalCluster

    workers = check_int("workers", workers, low=1)
    allowed_failures = check_int("allowed_failures", allowed_failures, low=0)
    method = "forkserver" if sys.platform == "linux" else dask.config.get("distributed.worker.multiprocessing-method")
    with dask.config.set({"distributed.worker.multiprocessing-method": method}):
        if method == "forkserver":
            from distributed.utils import get_mp_context

            get_mp_context()  # dask sets its own preload list on first use; extend it after that, not before
            multiprocessing.get_context("forkserver").set_forkserver_preload(
                ["distributed", "numpy", "torch", "collapse.runs"]
            )
        return LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            silence_logs=logging.ERROR,
            # No dashboard; the scheduler's small HTTP server (health checks) takes any free port, not 8787.
            scheduler_kwargs={"allowed_failures": allowed_failures, "dashboard": False, "dashboard_address": ":0"},
        )
