"""Keep freed memory in the process during long CPU runs (glibc only; elsewhere nothing happens).

glibc hands large freed blocks back to the operating system at once (blocks above a threshold that adapts up to
32 MB, and the top of the heap beyond twice that). A training step that frees and reallocates its activations
every step then has every new page zero-filled by the kernel on first touch: on the 2-core CI machine up to 1 ms
per MB. Measured on one block of the real-image study (225 MLP heads, M = 32, 30 steps, one thread): 318-352 ms
per step with glibc's defaults, 257-264 ms with freed memory kept.

:func:`retain_freed_memory` fixes the mmap threshold at its largest value and raises the trim threshold, so freed
blocks stay in the process for the next step. The price is resident memory: the process keeps its peak instead of
returning to its current use. The long-running trainers call it (:mod:`paper_repro.study`'s blocks); the
benchmark does not, because it times our losses and pytorch-metric-learning's in one process under glibc's
defaults, as a user's process runs them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

__all__ = ["retain_freed_memory"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: glibc's largest mmap threshold on 64-bit systems (DEFAULT_MMAP_THRESHOLD_MAX).
MMAP_THRESHOLD = 32 * 1024 * 1024
TRIM_THRESHOLD = 1024 * 1024 * 1024


@functools.lru_cache(maxsize=1)
def retain_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds for this process (once); ``True`` when glibc took both settings."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
