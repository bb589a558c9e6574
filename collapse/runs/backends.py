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

import contextlib
import logging
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from collapse._validation import check_choice, check_int
from collapse.runs.spec import Block

__all__ = [
    "BACKENDS",
    "Backend",
    "check_scheduler_address",
    "compute_block",
    "make_backend",
    "make_local_cluster",
    "single_thread",
]

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


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold Ctrl-C while worker processes start and raise it afterwards.

    A KeyboardInterrupt raised inside Python's fork hooks is dropped ("Exception ignored in _releaseLock"), so a
    Ctrl-C that lands while a pool forks would be lost and the command would run on. Off the main thread (where
    signal handlers cannot be set) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        if previous is signal.default_int_handler:
            raise KeyboardInterrupt
        if callable(previous):
            previous(signal.SIGINT, None)


def _init_worker() -> None:
    import signal

    import torch
    from threadpoolctl import threadpool_limits

    # Ctrl-C reaches the whole process group; only the parent handles it (and stops the workers), so a worker
    # never prints a KeyboardInterrupt traceback of its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

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
        pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker)
        interrupted = False
        try:
            with _sigint_deferred():  # the first submit forks the workers
                futures = {pool.submit(compute_block, b): i for i, b in enumerate(blocks)}
            for fut in as_completed(futures):
                try:
                    results, seconds = fut.result()
                except Exception as exc:  # includes BrokenProcessPool: the blocks of a dead worker are failed
                    done(futures[fut], None, exc, float("nan"))
                else:
                    done(futures[fut], results, None, seconds)
        except KeyboardInterrupt:
            # Stop now instead of waiting for the running blocks; the records already written stay whole.
            interrupted = True
            for proc in list((getattr(pool, "_processes", None) or {}).values()):
                proc.terminate()
            raise
        finally:
            pool.shutdown(wait=not interrupted, cancel_futures=interrupted)

    def _run_dask(self, blocks: Sequence[Block], done: Callback) -> None:
        from distributed import Client, as_completed

        cluster, client = None, self.client
        try:
            if client is None:
                if self.address is not None:
                    try:
                        client = Client(self.address)
                    except OSError as exc:  # unreachable after Dask's connect timeout: one line, no traceback
                        raise ConnectionError(f"cannot reach the Dask scheduler at {self.address}: {exc}") from None
                else:
                    with _sigint_deferred():  # the cluster starts its worker processes
                        cluster = make_local_cluster(self.workers, self.allowed_failures)
                        client = Client(cluster)
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
            if self.client is None and client is not None:
                client.close()
            if cluster is not None:
                cluster.close()


def check_scheduler_address(address: object, name: str = "address") -> str:
    """``address`` if it is a well-formed Dask scheduler address (``tcp://host:8786``, ``host:8786``, ``tls://...``
    with a host and a port in 1..65535, or another Dask scheme); a one-line ``ValueError`` naming ``name`` otherwise,
    before any connection is tried (Dask would first wait for its connect timeout)."""
    if not isinstance(address, str):
        raise TypeError(f"{name} must be a string such as tcp://host:8786, got {address!r}")
    from distributed.comm.addressing import parse_address, parse_host_port

    try:
        scheme, loc = parse_address(address, strict=False)
        if scheme in ("tcp", "tls"):
            host, port = parse_host_port(loc)
            if not host or any(c.isspace() for c in host) or not 0 < int(port) < 65536:
                raise ValueError
    except (ValueError, TypeError):
        raise ValueError(
            f"{name} must be a Dask scheduler address such as tcp://host:8786 (a host and a port), got {address!r}"
        ) from None
    return address


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
    if address is not None:
        check_scheduler_address(address)
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
