"""Row-wise masked selection with deterministic tie-breaking (lowest index wins).

Cost: every function is two or three passes over the ``(..., B)`` rows (mask the values, one ``argmin``, and an
O(rows) gather), so selection stays O(B^2) memory and time for a ``(G, B, B)`` matrix.
"""

from __future__ import annotations

import torch

__all__ = ["masked_argmax", "masked_argmin", "masked_random"]


def masked_argmin(values: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, the index of the smallest ``values`` where ``mask``; and whether the row had any candidate.

    Ties go to the lowest index: ``torch.argmin`` documents that it returns the first minimal value (on CPU and
    CUDA alike). A candidate whose value is ``+inf`` counts as no candidate (it is infinitely far); rows without a
    candidate return index 0 and ``valid = False``.
    """
    # masked_fill with a scalar is the cheapest masking on CPU (a where() would allocate the fill tensor too).
    masked = values.masked_fill(~mask, torch.inf)
    idx = masked.argmin(dim=-1)
    valid = masked.gather(-1, idx.unsqueeze(-1)).squeeze(-1) < torch.inf
    return idx.masked_fill_(~valid, 0), valid


def masked_argmax(values: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, the index of the largest ``values`` where ``mask`` (``-inf`` counts as no candidate)."""
    return masked_argmin(-values, mask)


def masked_random(mask: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, a uniformly random index among the True entries of ``mask``."""
    keys = torch.rand(mask.shape, generator=generator, device=mask.device)
    return masked_argmax(keys, mask)
