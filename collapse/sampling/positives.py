r"""Positive rules: which same-label samples an anchor is pulled towards.

Given the distance matrix ``D`` of a batch and the candidate mask ``S[a, j]`` (same observed label,
``j != a``, and optionally ``D[a, j] > tol`` to skip near-duplicates), a rule returns positive pairs ``(a, p)``:

* ``all``    : every candidate, :math:`\{(a, p) : S_{ap}\}`.
* ``random`` : one candidate per anchor, uniformly at random.
* ``easy``   : easy positive sampling (EPS): :math:`p(a) = \arg\min_{j: S_{aj}} D_{aj}`, the nearest
  same-label sample in the batch.
* ``hard``   : :math:`p(a) = \arg\max_{j: S_{aj}} D_{aj}`, the farthest.

Ties go to the lowest index. Anchors with no candidate get no pair; the sampler counts them.
"""

from __future__ import annotations

import torch

from collapse.sampling._select import masked_argmax, masked_argmin, masked_random
from collapse.sampling.tuples import Pairs

__all__ = ["POSITIVE_RULES", "AllPositives", "EasyPositive", "HardPositive", "PositiveRule", "RandomPositive"]


class PositiveRule:
    """Base class. ``select(dist, candidates, generator)`` returns the positive :class:`Pairs`."""

    name = "positive"
    one_per_anchor = True
    #: Whether ``_pick`` draws from the sampler's generator.
    random = False
    #: Whether the rule reads the distances only by comparing entries of one row, so that any row-wise increasing
    #: transform of the matrix selects the same (see :meth:`collapse.distances.Distance.order_matrix`). A subclass
    #: that reads the values themselves must leave it False.
    order_only = False

    def select(self, dist: torch.Tensor, candidates: torch.Tensor, generator: torch.Generator) -> Pairs:
        idx, valid = self._pick(dist, candidates, generator)
        g, a = valid.nonzero(as_tuple=True)
        return Pairs(g, a, idx[g, a])

    def _pick(
        self, dist: torch.Tensor, candidates: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class AllPositives(PositiveRule):
    name = "all"
    order_only = True
    one_per_anchor = False

    def select(self, dist: torch.Tensor, candidates: torch.Tensor, generator: torch.Generator) -> Pairs:
        g, a, p = candidates.nonzero(as_tuple=True)
        return Pairs(g, a, p)


class RandomPositive(PositiveRule):
    name = "random"
    order_only = True
    random = True

    def _pick(self, dist, candidates, generator):
        return masked_random(candidates, generator)


class EasyPositive(PositiveRule):
    name = "easy"
    order_only = True

    def _pick(self, dist, candidates, generator):
        return masked_argmin(dist, candidates)


class HardPositive(PositiveRule):
    name = "hard"
    order_only = True

    def _pick(self, dist, candidates, generator):
        return masked_argmax(dist, candidates)


POSITIVE_RULES: dict[str, type[PositiveRule]] = {
    cls.name: cls for cls in (AllPositives, RandomPositive, EasyPositive, HardPositive)
}
