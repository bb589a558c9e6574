"""Row-wise masked selection with deterministic tie-breaking (lowest index wins).

Cost: every function is two or three passes over the ``(..., B)`` rows (mask the values, one ``argmin``, and an
O(rows) gather), so selection stays O(B^2) memory and time for a ``(G, B, B)`` matrix.
"""

from __future__ import annotations

import torch

__all__ = ["masked_argmax", "masked_argmin", "masked_random", "row_argmin"]


def row_argmin(values: torch.Tensor) -> torch.Tensor:
    """``values.argmin(dim=-1)``, the same indices (first minimum), faster on a CPU for long rows.

    On a CPU ``argmin`` is a scalar loop (about 1 ns per entry), while ``amin`` is vectorised (about 15 times
    faster). For rows of a length ``n = m k`` this takes ``amin`` over blocks of ``k`` entries, ``argmin`` over the
    ``m`` block minima (the first block holding the row minimum) and ``argmin`` inside that block (its first minimal
    entry): the lowest index of the row minimum, as ``argmin`` returns. Elsewhere (GPU, ``torch.compile``, short
    rows) it is ``argmin`` itself.
    """
    n = values.shape[-1]
    k = next((k for k in (64, 32, 16, 8) if n % k == 0 and n >= 8 * k), None)
    if k is None or values.device.type != "cpu" or torch.compiler.is_compiling():
        return values.argmin(dim=-1)
    m = n // k
    blocks = (values if values.is_contiguous() else values.contiguous()).view(-1, m, k)
    # NaN: amin and argmin both treat it as the smallest value, so the first NaN is found as argmin finds it.
    block = blocks.amin(-1).argmin(dim=-1)
    # The chosen block of each row, as whole rows of the (rows * m, k) view: index_select copies contiguous rows,
    # several times faster than a gather of the same entries.
    chosen = torch.arange(0, blocks.shape[0] * m, m, device=values.device).add_(block)
    within = blocks.view(-1, k).index_select(0, chosen).argmin(dim=-1)
    return within.add_(block, alpha=k).view(values.shape[:-1])


def masked_argmin(values: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, the index of the smallest ``values`` where ``mask``; and whether the row had any candidate.

    Ties go to the lowest index: ``torch.argmin`` documents that it returns the first minimal value (on CPU and
    CUDA alike). A candidate whose value is ``+inf`` counts as no candidate (it is infinitely far); rows without a
    candidate return index 0 and ``valid = False``.
    """
    # masked_fill with a scalar is the cheapest masking on CPU (a where() would allocate the fill tensor too).
    masked = values.masked_fill(~mask, torch.inf)
    idx = row_argmin(masked)
    valid = masked.gather(-1, idx.unsqueeze(-1)).squeeze(-1) < torch.inf
    return idx.masked_fill_(~valid, 0), valid


def masked_argmax(values: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, the index of the largest ``values`` where ``mask`` (``-inf`` counts as no candidate)."""
    return masked_argmin(-values, mask)


def masked_random(mask: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, a uniformly random index among the True entries of ``mask``."""
    keys = torch.rand(mask.shape, generator=generator, device=mask.device)
    return masked_argmax(keys, mask)
