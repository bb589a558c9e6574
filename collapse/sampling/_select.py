"""Row-wise masked selection with deterministic tie-breaking (lowest index wins)."""

from __future__ import annotations

import torch


def first_index(hit: torch.Tensor) -> torch.Tensor:
    """Index of the first True in each row of ``hit`` (``B`` where the row has none).

    ``argmin``/``argmax`` do not promise which of several equal values they return on every device;
    taking the smallest index among the hits does.
    """
    size = hit.shape[-1]
    idx = torch.arange(size, device=hit.device).expand_as(hit)
    return torch.where(hit, idx, torch.full_like(idx, size)).min(dim=-1).values


def masked_argmin(values: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, the index of the smallest ``values`` where ``mask``; and whether the row had any candidate."""
    inf = torch.finfo(values.dtype).max
    masked = torch.where(mask, values, torch.full_like(values, inf))
    best = masked.min(dim=-1, keepdim=True).values
    valid = mask.any(dim=-1)
    idx = first_index(mask & (masked == best))
    return torch.where(valid, idx, torch.zeros_like(idx)), valid


def masked_argmax(values: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, the index of the largest ``values`` where ``mask``; and whether the row had any candidate."""
    return masked_argmin(-values, mask)


def masked_random(mask: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, a uniformly random index among the True entries of ``mask``."""
    keys = torch.rand(mask.shape, generator=generator, device=mask.device)
    return masked_argmax(keys, mask)
