"""Work buffers kept between calls, for the large temporaries of a loss step.

On a CPU a fresh buffer of a MB or more is handed back to the operating system when freed (glibc returns large
blocks), and the next step's buffer is zero-filled by the kernel page by page on first touch. On the 2-core CI
machine that costs up to 1 ms per MB, more than the pass that then writes the buffer: the semi-hard penalty pass
took 490 us per step at B = 512 with a fresh buffer and 60 us with a kept one. A kept buffer is reused as is.

A buffer is reused only while nothing else holds its memory: :func:`kept_buffer` hands out an alias of it, and
while any alias, view or autograd record of it is alive (the caller kept the result, a graph was retained, the
loss was called twice before one backward), the next request gets a fresh buffer instead. So even a tensor that
goes to autograd or to the caller may come from here: it is never overwritten while someone can still read it.

Buffers are per thread (several runs of one tensor program may compute their losses in threads) and per name, up
to :data:`KEPT_BYTES` each; on a GPU, whose caching allocator already reuses memory, a plain ``torch.empty`` is
returned, as it is under ``torch.compile`` (which plans its own buffers) and where torch cannot report how many
tensors share a memory block.
"""

from __future__ import annotations

import threading

import torch

__all__ = ["KEPT_BYTES", "kept_buffer"]

#: Largest buffer (bytes) kept between calls, per name and thread (16 MB: B = 2048 in float32).
KEPT_BYTES = 1 << 24

_kept = threading.local()
_use_count = getattr(torch._C, "_storage_Use_Count", None)


def _users(t: torch.Tensor) -> int:
    return _use_count(t.untyped_storage()._cdata)


# The count of a tensor that nothing else shares (the query itself holds one reference).
_ALONE = _users(torch.empty(1)) if _use_count is not None else None


def kept_buffer(
    name: str, shape: tuple[int, ...], like: torch.Tensor, *, max_bytes: int = KEPT_BYTES
) -> torch.Tensor:
    """An uninitialised contiguous tensor of ``shape`` with ``like``'s dtype and device: on a CPU, up to
    ``max_bytes``, the memory of the previous request with this ``name`` in this thread when nothing holds that any
    more (see the module docstring), else fresh memory."""
    shape = tuple(int(n) for n in shape)
    size = like.element_size()
    for n in shape:
        size *= n
    if like.device.type != "cpu" or size > max_bytes or _ALONE is None or torch.compiler.is_compiling():
        return torch.empty(shape, dtype=like.dtype, device=like.device)
    # A buffer made under torch.inference_mode is an inference tensor, which autograd may not save: one buffer per
    # mode.
    name = f"{name}/inference" if torch.is_inference_mode_enabled() else name
    buf = getattr(_kept, name, None)
    if buf is None or buf.shape != shape or buf.dtype != like.dtype or _users(buf) > _ALONE:
        buf = torch.empty(shape, dtype=like.dtype)
        setattr(_kept, name, buf)
    return buf.detach()
