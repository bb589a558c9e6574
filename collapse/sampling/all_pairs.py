r"""The ``all`` x ``all`` rule of a batch as masks, without listing its pairs.

Positives are every same-label pair :math:`(a, p)`, :math:`p \ne a`; negatives every different-label pair
:math:`(a, n)` of an anchor that has a positive (the listed rule pairs each positive pair with its anchor's
negatives, so an anchor alone in its label has no tuple). A loss that reads these as ``(G, B, B)`` masks, or, on an
eager CPU step, as each anchor's label segment (:class:`~collapse.sampling.fused.LabelSegments`: its members listed,
a scatter of ``B M`` entries instead of a pass over a boolean matrix), trains with the rule without index lists of
its :math:`O(B^2)` pairs. Masks and segments are built on first use.
"""

from __future__ import annotations

import torch

from collapse.sampling.fused import LabelSegments
from collapse.sampling.sampler import label_masks

__all__ = ["AllPairsSelection"]


class AllPairsSelection:
    """The all x all rule of ``(G, B)`` labels (see the module docstring)."""

    def __init__(self, labels: torch.Tensor) -> None:
        self.labels = labels
        self._masks: tuple[torch.Tensor, torch.Tensor] | None = None
        self._segments: LabelSegments | None = None

    @property
    def masks(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(positive, negative)``, ``(G, B, B)`` boolean masks of the rule's pairs."""
        if self._masks is None:
            positive, different = label_masks(self.labels)
            self._masks = positive, different & positive.any(-1, keepdim=True)
        return self._masks

    @property
    def segments(self) -> LabelSegments | None:
        """Each anchor's label members, on eager CPU steps only (building them reads the largest label count back,
        a host sync elsewhere); ``None`` on a GPU and under ``torch.compile``."""
        if self.labels.device.type != "cpu" or torch.compiler.is_compiling():
            return None
        if self._segments is None:
            self._segments = LabelSegments(self.labels)
        return self._segments

    @property
    def group_index(self) -> torch.Tensor:
        """``g`` of every anchor, ``(G, B)`` (a broadcast view, as :attr:`AnchorSelection.group_index`)."""
        n_groups, batch = self.labels.shape
        return torch.arange(n_groups, device=self.labels.device).unsqueeze(-1).expand(n_groups, batch)

    @property
    def anchor_index(self) -> torch.Tensor:
        """``a`` of every anchor, ``(G, B)`` (a broadcast view)."""
        return torch.arange(self.labels.shape[-1], device=self.labels.device).expand_as(self.labels)

    def segment_positives(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(members, counted)``, both ``(G, B, M)``, on eager CPU steps (:attr:`segments` is not ``None``): each
        anchor's label members and whether the entry is one of its positives, i.e. a member within the segment's
        count (not a padding repeat) other than the anchor itself."""
        segments = self.segments
        members = segments.members
        k = torch.arange(members.shape[-1], device=members.device)
        return members, (k < segments.count.unsqueeze(-1)) & (members != self.anchor_index.unsqueeze(-1))

    def positive_members(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(others, counted)``, both ``(G, B, M - 1)``, on eager CPU steps: each anchor's label members without the
        anchor itself (ascending batch index), and whether the entry is a positive (within the count, not padding).
        A step that computes one distance per positive pair computes ``M - 1`` per anchor instead of ``M``."""
        segments = self.segments
        members = segments.members
        width = members.shape[-1]
        # The anchor's rank among its members (padding repeats the last member, so it is never below the anchor).
        rank = (members < self.anchor_index.unsqueeze(-1)).sum(-1, keepdim=True)
        k = torch.arange(max(width - 1, 0), device=members.device)
        others = members.gather(-1, k + (k >= rank))
        return others, k < (segments.count - 1).unsqueeze(-1)

    @property
    def has_positive(self) -> torch.Tensor:
        """``(G, B)``: whether the anchor has a positive (another sample of its label)."""
        segments = self.segments
        return segments.count > 1 if segments is not None else self.masks[0].any(-1)

    def n_positive_pairs(self) -> int:
        """The number of positive pairs (read back: for the no-positive warning of eager steps)."""
        segments = self.segments
        return int((segments.count - 1).sum()) if segments is not None else int(self.masks[0].sum())
