r"""Negative rules: which different-label samples push an anchor away.

A rule sees the distance matrix ``D``, the candidate mask ``N[a, j]`` (different observed label) and the
positive pairs already chosen. Except for ``all``, it picks one negative per positive pair ``(a, p)``:

* ``all``       : every candidate of the anchor (no triplet is materialised until a loss asks).
* ``random``    : uniformly at random among the candidates.
* ``hard``      : :math:`n = \arg\min_{j: N_{aj}} D_{aj}`, the nearest negative.
* ``semihard``  : :math:`n = \arg\min_{j: N_{aj},\, D_{aj} > D_{ap}} D_{aj}`, the nearest negative farther than the
  chosen positive (pytorch-metric-learning's ``BatchEasyHardMiner`` definition). Pairs with none are dropped.
* ``distance``  : distance-weighted sampling (Wu et al. 2017). On the unit sphere in :math:`\mathbb R^n` the
  pairwise distance has density :math:`q(d) \propto d^{n-2}(1 - d^2/4)^{(n-3)/2}`; a negative is drawn with
  probability :math:`\propto 1/q(\max(d, \lambda))` and zero beyond ``nonzero_loss_cutoff``, where the loss
  could not be active anyway. :math:`\lambda` is the ``cutoff`` that bounds the weights of near negatives.

Ties go to the lowest index. Random draws use the sampler's ``torch.Generator``.
"""

from __future__ import annotations

import torch

from collapse._validation import check_real
from collapse.sampling._select import masked_argmax, masked_argmin, masked_random
from collapse.sampling.tuples import Pairs, Triplets

__all__ = [
    "NEGATIVE_RULES",
    "AllNegatives",
    "DistanceWeightedNegative",
    "HardNegative",
    "NegativeRule",
    "RandomNegative",
    "SemiHardNegative",
]


#: Entries of the distance matrix a rule works on at once (4M: 16 MB of float32 per temporary; 64M on a GPU).
CHUNK_ELEMENTS = 1 << 22
GPU_CHUNK_ELEMENTS = 1 << 26


class NegativeRule:
    """Base class. ``select`` returns one negative per positive pair as :class:`Triplets` (pairs without one drop)."""

    name = "negative"
    per_pair = True
    #: Whether ``_pick`` draws from the sampler's generator.
    random = False
    #: Whether the rule reads the distances only by comparing entries of one row (see
    #: :attr:`collapse.sampling.positives.PositiveRule.order_only`); False for rules that read the values.
    order_only = False

    def select(
        self, dist: torch.Tensor, candidates: torch.Tensor, positives: Pairs, generator: torch.Generator, dim: int
    ) -> Triplets:
        batch = dist.shape[-1]
        in_order = _every_anchor_in_order(positives, dist.shape[0], batch)
        d_ap = positives.gather(dist)
        # Rows in chunks of about CHUNK_ELEMENTS entries: a rule's temporaries stay O(chunk) instead of O(G B^2).
        # On CPU the random draws are the same as in one piece (the generator fills tensors in order); on a GPU the
        # chunks only split batches above 8192 rows of 8192, and their draws are then other (equally random) numbers.
        step = max(1, (CHUNK_ELEMENTS if dist.device.type == "cpu" else GPU_CHUNK_ELEMENTS) // max(1, batch))
        picks, valids = [], []
        for start in range(0, len(positives), step):
            stop = min(start + step, len(positives))
            if in_order:
                # The rows are the matrix itself: views, not (G*B, B) copies.
                rows_d = dist.reshape(-1, batch)[start:stop]
                rows_c = candidates.reshape(-1, batch)[start:stop]
            else:
                g, a = positives.g[start:stop], positives.a[start:stop]
                rows_d, rows_c = dist[g, a], candidates[g, a]
            n, valid = self._pick(rows_d, rows_c, d_ap[start:stop], generator, dim)
            picks.append(n)
            valids.append(valid)
        if not picks:
            n = torch.zeros(0, dtype=torch.long, device=dist.device)
            valid = torch.zeros(0, dtype=torch.bool, device=dist.device)
        else:
            n = torch.cat(picks) if len(picks) > 1 else picks[0]
            valid = torch.cat(valids) if len(valids) > 1 else valids[0]
        return Triplets(positives.g[valid], positives.a[valid], positives.b[valid], n[valid])

    def pick_rows(
        self,
        dist: torch.Tensor,
        candidates: torch.Tensor,
        d_ap: torch.Tensor,
        generator: torch.Generator | None,
        dim: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(index, valid)``, each ``(G, B)``: the negative of every anchor ``a`` of a ``(G, B, B)`` matrix, given its
        positive distance ``d_ap`` ``(G, B)`` (fixed shapes: anchors without a positive get a meaningless pick that
        the caller masks). Rows go in chunks of about CHUNK_ELEMENTS entries, fixed by the shape alone."""
        n_groups, batch = d_ap.shape
        rows_d, rows_c, d_ap = dist.reshape(-1, batch), candidates.reshape(-1, batch), d_ap.reshape(-1)
        n_rows = rows_d.shape[0]
        step = max(1, (CHUNK_ELEMENTS if dist.device.type == "cpu" else GPU_CHUNK_ELEMENTS) // max(1, batch))
        if step >= n_rows:
            n, valid = self._pick(rows_d, rows_c, d_ap, generator, dim)
        else:
            parts = [
                self._pick(rows_d[s : s + step], rows_c[s : s + step], d_ap[s : s + step], generator, dim)
                for s in range(0, n_rows, step)
            ]
            n, valid = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        return n.reshape(n_groups, batch), valid.reshape(n_groups, batch)

    def _pick(
        self, rows_d: torch.Tensor, rows_c: torch.Tensor, d_ap: torch.Tensor, generator: torch.Generator, dim: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _every_anchor_in_order(pairs: Pairs, n_groups: int, batch: int) -> bool:
    """Whether ``pairs`` holds exactly one pair per anchor, anchors in ``(g, a)`` order (an O(G*B) check)."""
    if len(pairs) != n_groups * batch:
        return False
    flat = pairs.g * batch + pairs.a
    return bool((flat == torch.arange(n_groups * batch, device=flat.device)).all())


class AllNegatives(NegativeRule):
    name = "all"
    order_only = True
    per_pair = False

    def select(self, dist, candidates, positives, generator, dim):
        raise TypeError("AllNegatives keeps every candidate; the sampler uses its mask directly")


class RandomNegative(NegativeRule):
    name = "random"
    order_only = True
    random = True

    def _pick(self, rows_d, rows_c, d_ap, generator, dim):
        return masked_random(rows_c, generator)


class HardNegative(NegativeRule):
    name = "hard"
    order_only = True

    def _pick(self, rows_d, rows_c, d_ap, generator, dim):
        return masked_argmin(rows_d, rows_c)


class SemiHardNegative(NegativeRule):
    name = "semihard"
    order_only = True

    def _pick(self, rows_d, rows_c, d_ap, generator, dim):
        return masked_argmin(rows_d, rows_c & (rows_d > d_ap.unsqueeze(-1)))


class DistanceWeightedNegative(NegativeRule):
    """Distance-weighted negatives (Wu et al. 2017); meant for Euclidean distance on the unit sphere."""

    name = "distance"
    random = True

    def __init__(self, cutoff: float = 0.5, nonzero_loss_cutoff: float = 1.4) -> None:
        self.cutoff = check_real("cutoff", cutoff, low=0.0, high=2.0, low_inclusive=False)
        self.nonzero_loss_cutoff = check_real("nonzero_loss_cutoff", nonzero_loss_cutoff, low=0.0, low_inclusive=False)

    def log_weights(self, d: torch.Tensor, dim: int) -> torch.Tensor:
        r"""Unnormalised :math:`\log 1/q(\max(d,\lambda))`; ``-inf`` where the weight is 0 or undefined."""
        d = d.clamp_min(self.cutoff)
        logw = (2.0 - dim) * torch.log(d) - ((dim - 3) / 2.0) * torch.log1p(-0.25 * d * d)
        bad = ~torch.isfinite(logw) | (d >= self.nonzero_loss_cutoff)
        return logw.masked_fill(bad, float("-inf"))

    def _pick(self, rows_d, rows_c, d_ap, generator, dim):
        logw = self.log_weights(rows_d, dim)
        allowed = rows_c & torch.isfinite(logw)
        # Gumbel-max: argmax(log w + G) is a draw with probability w / sum(w), one per row, vectorised.
        u = torch.rand(rows_d.shape, generator=generator, device=rows_d.device, dtype=rows_d.dtype)
        gumbel = -torch.log(-torch.log(u.clamp(1e-12, 1 - 1e-7)))
        return masked_argmax(torch.where(allowed, logw, torch.zeros_like(logw)) + gumbel, allowed)

    def __repr__(self) -> str:
        return f"DistanceWeightedNegative(cutoff={self.cutoff}, nonzero_loss_cutoff={self.nonzero_loss_cutoff})"


NEGATIVE_RULES: dict[str, type[NegativeRule]] = {
    cls.name: cls for cls in (AllNegatives, RandomNegative, HardNegative, SemiHardNegative, DistanceWeightedNegative)
}
