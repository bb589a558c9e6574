"""The index tuples a sampler hands to a loss.

Every index tensor carries a *group* column ``g`` first. A group is one independent batch: a plain
``(B, d)`` batch is group 0, and a stack ``(G, B, d)`` of G runs (seeds, configurations) trained at once has
groups ``0..G-1``. Indices ``a, p, n`` are positions inside the group's batch, so a distance is read as
``D[g, a, p]``. Tuples never cross groups.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

__all__ = ["MaskPairs", "Pairs", "Triplets", "Tuples"]


@dataclass(frozen=True)
class Pairs:
    """Pairs ``(g, a, b)``: anchor ``a`` and partner ``b`` of group ``g``."""

    g: torch.Tensor
    a: torch.Tensor
    b: torch.Tensor

    def __len__(self) -> int:
        return int(self.a.numel())

    def gather(self, mat: torch.Tensor) -> torch.Tensor:
        """Values ``mat[g, a, b]`` of a ``(G, B, B)`` matrix, one per pair."""
        return mat[self.g, self.a, self.b]

    def mask(self, n_groups: int, batch_size: int) -> torch.Tensor:
        """Dense boolean ``(G, B, B)`` mask with the pairs set."""
        out = torch.zeros(n_groups, batch_size, batch_size, dtype=torch.bool, device=self.a.device)
        out[self.g, self.a, self.b] = True
        return out


class MaskPairs(Pairs):
    """The True entries of a dense ``(G, B, B)`` mask as :class:`Pairs`, listed (``nonzero``) only when first read.

    Listing every (anchor, negative) pair of a large batch costs O(B^2) int64 memory, three times the mask's float
    size, and losses that work on the dense mask never need it.
    """

    def __init__(self, mask: torch.Tensor) -> None:  # noqa: D107 - no dataclass fields are set; they are properties
        object.__setattr__(self, "_mask", mask)
        object.__setattr__(self, "_listed", None)

    def _list(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self._listed is None:
            object.__setattr__(self, "_listed", self._mask.nonzero(as_tuple=True))
        return self._listed

    g = property(lambda self: self._list()[0])
    a = property(lambda self: self._list()[1])
    b = property(lambda self: self._list()[2])

    def __len__(self) -> int:
        return int(self._mask.sum()) if self._listed is None else int(self._listed[1].numel())

    def mask(self, n_groups: int, batch_size: int) -> torch.Tensor:
        return self._mask

    def __repr__(self) -> str:
        return f"MaskPairs({len(self)} pairs)"


@dataclass(frozen=True)
class Triplets:
    """Triplets ``(g, a, p, n)``: anchor, positive and negative of group ``g``."""

    g: torch.Tensor
    a: torch.Tensor
    p: torch.Tensor
    n: torch.Tensor

    def __len__(self) -> int:
        return int(self.a.numel())

    @property
    def positive_pairs(self) -> Pairs:
        return Pairs(self.g, self.a, self.p)

    @property
    def negative_pairs(self) -> Pairs:
        return Pairs(self.g, self.a, self.n)


@dataclass(frozen=True)
class Tuples:
    """What a sampler selected in a batch.

    ``positive_pairs`` and ``negative_pairs`` serve pair losses, ``triplets`` serves triplet losses. When the
    negative rule picks a negative per positive pair, the pairs are the two halves of each triplet (the
    pytorch-metric-learning ``convert_to_pairs`` convention). When the negative rule is ``all``, the negative
    pairs are every (anchor, negative) of an anchor that has a positive, and the triplets are their cross
    product with the positive pairs, built only when a loss asks for them.

    ``anchors_without_positive`` counts anchors dropped because no same-label sample was eligible;
    ``anchors_without_negative`` counts those whose negative rule found nothing (e.g. no semi-hard negative).
    """

    positive_pairs: Pairs
    negative_pairs: Pairs
    n_groups: int
    batch_size: int
    anchors_without_positive: int
    anchors_without_negative: int
    _triplets: Triplets | None = None
    _negative_mask: torch.Tensor | None = None

    @property
    def triplets(self) -> Triplets:
        if self._triplets is not None:
            return self._triplets
        pos = self.positive_pairs
        rows = self._negative_mask[pos.g, pos.a]
        t, n = rows.nonzero(as_tuple=True)
        return Triplets(pos.g[t], pos.a[t], pos.b[t], n)

    @classmethod
    def from_triplets(
        cls, triplets: Triplets, n_groups: int, batch_size: int, *, without_positive: int, without_negative: int
    ) -> Tuples:
        """The tuples of a one-negative-per-positive rule: the pairs are the two halves of each triplet."""
        return cls(
            positive_pairs=triplets.positive_pairs,
            negative_pairs=triplets.negative_pairs,
            n_groups=n_groups,
            batch_size=batch_size,
            anchors_without_positive=without_positive,
            anchors_without_negative=without_negative,
            _triplets=triplets,
        )

    @property
    def per_positive_negatives(self) -> bool:
        """True when each positive pair has exactly one negative (so ``triplets`` is stored, not a cross product)."""
        return self._triplets is not None

    def negative_mask(self) -> torch.Tensor:
        """Dense ``(G, B, B)`` mask of negative pairs."""
        if self._negative_mask is not None:
            return self._negative_mask
        return self.negative_pairs.mask(self.n_groups, self.batch_size)


def all_negative_tuples(
    positives: Pairs,
    has_positive: torch.Tensor,
    different: torch.Tensor,
    label_count: torch.Tensor,
    *,
    warn: bool,
    stacklevel: int,
) -> Tuples:
    """The tuples of the ``all`` negative rule: each positive pair with every different-label sample of its anchor.

    ``has_positive`` is ``(G, B)``, ``different`` the ``(G, B, B)`` different-label mask and ``label_count`` the
    ``(G, B)`` count of each anchor's label in the batch (an anchor has a negative unless its label fills the batch).
    """
    n_groups, batch = has_positive.shape
    n_without_pos = int((~has_positive).sum())
    warn_if_no_positive(len(positives), n_without_pos, warn=warn, stacklevel=stacklevel + 1)
    neg_mask = different if n_without_pos == 0 else different & has_positive.unsqueeze(-1)
    return Tuples(
        positive_pairs=positives,
        negative_pairs=MaskPairs(neg_mask),
        n_groups=n_groups,
        batch_size=batch,
        anchors_without_positive=n_without_pos,
        anchors_without_negative=int((has_positive & (label_count == batch)).sum()),
        _negative_mask=neg_mask,
    )


def warn_if_no_positive(n_positives: int, n_without_pos: int, *, warn: bool, stacklevel: int) -> None:
    """Warn (once per call) that no anchor has a valid positive, so the loss is 0."""
    if warn and n_positives == 0:
        warnings.warn(
            f"no anchor in the batch has a valid positive ({n_without_pos} anchors dropped); the loss is 0",
            RuntimeWarning,
            stacklevel=stacklevel + 1,
        )
