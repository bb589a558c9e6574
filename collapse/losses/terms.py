"""Unreduced loss terms and the result a loss returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from collapse.sampling.tuples import Tuples

__all__ = ["LossOutput", "Terms"]


@dataclass(frozen=True)
class Terms:
    """One sub-loss, unreduced: ``losses[t]`` belongs to the tuple ``indices[t]`` of group ``group[t]``.

    ``kind`` names the tuple: ``"triplet"`` (indices ``(a, p, n)``), ``"pos_pair"``/``"neg_pair"`` (``(a, b)``)
    or ``"anchor"`` (``(a,)``), following pytorch-metric-learning's reduction types.
    """

    losses: torch.Tensor
    group: torch.Tensor
    indices: tuple[torch.Tensor, ...]
    kind: str

    def __len__(self) -> int:
        return int(self.losses.numel())


@dataclass(frozen=True)
class LossOutput:
    """``loss`` is the sum over groups of ``per_group``, each group's reduced loss (so groups train independently)."""

    loss: torch.Tensor
    per_group: torch.Tensor
    terms: dict[str, Terms]
    tuples: Tuples
    extras: dict[str, torch.Tensor] = field(default_factory=dict)
