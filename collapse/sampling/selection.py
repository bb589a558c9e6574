r"""Fixed-shape selection: one positive (and, for per-pair rules, one negative) for *every* anchor, with masks.

A positive rule that picks one partner per anchor (``easy``, ``hard``, ``random``) and a negative rule that picks
one per positive pair (``hard``, ``semihard``, ``random``, ``distance``) select, for a ``(G, B, B)`` distance
matrix, an index matrix and a validity mask of fixed shape ``(G, B)`` each:

.. math::
    p(g, a),\ \mathrm{has\_positive}(g, a), \qquad n(g, a),\ \mathrm{has\_negative}(g, a),

and the ``all`` negative rule a ``(G, B, B)`` candidate mask :math:`y_j \ne y_a`. Nothing here has a shape that
depends on the data, so the whole loss step, selection included, can be traced by ``torch.compile(fullgraph=True,
dynamic=False)`` and captured as one CUDA graph, and no call waits for the device (no ``nonzero``, no ``.item()``).
A loss computes its terms for all ``G * B`` anchors and weights them by the mask (see :mod:`collapse.losses.base`).

:meth:`AnchorSelection.to_tuples` lists the valid entries as the index :class:`~collapse.sampling.tuples.Tuples`
of the rest of the package (pairs and triplets in ``(g, a)`` order), which is the one place where shapes depend on
the data; the theory, the tests and the per-tuple API read those.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from collapse.sampling.tuples import Pairs, Triplets, Tuples, all_negative_tuples, warn_if_no_positive

__all__ = ["AnchorSelection"]


@dataclass(frozen=True)
class AnchorSelection:
    """What a sampler selected, one entry per anchor ``(g, a)`` (all ``(G, B)`` unless said otherwise).

    ``positive``/``has_positive``: each anchor's positive and whether it has one (index 0 where not).
    ``negative``/``has_negative``: its negative and whether it has one, for per-pair negative rules; both ``None``
    for the ``all`` rule, whose candidates are :attr:`negative_mask` ``(G, B, B)`` (different label).
    ``labels``: the batch's labels (for the masks and the counts of :meth:`to_tuples`). ``same_label_members``:
    optionally, ``(G, B, M)`` indices covering each anchor's label (any padding repeats a member), so that a loss
    can exclude them from an anchor's row by a scatter of ``B M`` entries instead of a ``(G, B, B)`` comparison.
    """

    positive: torch.Tensor
    has_positive: torch.Tensor
    negative: torch.Tensor | None
    has_negative: torch.Tensor | None
    labels: torch.Tensor
    same_label_members: torch.Tensor | None = None

    @property
    def negative_mask(self) -> torch.Tensor:
        """``(G, B, B)``: True where the labels differ (the candidates of the ``all`` rule)."""
        return self.labels.unsqueeze(-1) != self.labels.unsqueeze(-2)

    @property
    def n_groups(self) -> int:
        return int(self.positive.shape[0])

    @property
    def batch_size(self) -> int:
        return int(self.positive.shape[1])

    @property
    def per_pair(self) -> bool:
        """One negative per positive pair (so a triplet per anchor), rather than every candidate."""
        return self.negative is not None

    @property
    def kept(self) -> torch.Tensor:
        """Anchors whose tuple the loss counts: a positive, and (per-pair rules) a negative."""
        return self.has_positive & self.has_negative if self.per_pair else self.has_positive

    @property
    def group_index(self) -> torch.Tensor:
        """``g`` of every anchor, ``(G, B)`` (a broadcast view)."""
        return torch.arange(self.n_groups, device=self.positive.device).unsqueeze(-1).expand_as(self.positive)

    @property
    def anchor_index(self) -> torch.Tensor:
        """``a`` of every anchor, ``(G, B)`` (a broadcast view)."""
        return torch.arange(self.batch_size, device=self.positive.device).expand_as(self.positive)

    def to_tuples(self, *, warn: bool = False) -> Tuples:
        """The valid entries as index :class:`Tuples` (this lists them: shapes depend on the data here)."""
        n_groups, batch = self.positive.shape
        has_positive = self.has_positive
        g, a = has_positive.nonzero(as_tuple=True)
        positives = Pairs(g, a, self.positive[g, a])
        if not self.per_pair:
            # An anchor has a different-label sample unless its label fills the batch.
            same_count = (self.labels.unsqueeze(-1) == self.labels.unsqueeze(-2)).sum(-1)
            return all_negative_tuples(
                positives, has_positive, self.negative_mask, same_count, warn=warn, stacklevel=4
            )
        n_without_pos = n_groups * batch - len(positives)
        warn_if_no_positive(len(positives), n_without_pos, warn=warn, stacklevel=4)
        kept = self.kept
        g, a = kept.nonzero(as_tuple=True)
        triplets = Triplets(g, a, self.positive[g, a], self.negative[g, a])
        return Tuples.from_triplets(triplets, n_groups, batch, without_positive=n_without_pos,
                                    without_negative=int((kept ^ has_positive).sum()))  # fmt: skip
