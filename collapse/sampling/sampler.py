"""A sampler pairs one positive rule with one negative rule.

``Sampler(positive="easy", negative="semihard")`` is easy positive sampling with semi-hard negatives;
any positive rule goes with any negative rule. The sampler works on a distance matrix that the loss has
already computed, and never on the gradient path: selection is a discrete choice.
"""

from __future__ import annotations

import torch

from collapse._validation import check_choice, check_generator, check_real
from collapse.sampling.fused import LabelSegments, fused_negatives, fused_negatives_apply, fused_positives
from collapse.sampling.negatives import NEGATIVE_RULES, HardNegative, NegativeRule, SemiHardNegative
from collapse.sampling.positives import POSITIVE_RULES, EasyPositive, HardPositive, PositiveRule
from collapse.sampling.selection import AnchorSelection
from collapse.sampling.tuples import MaskPairs, Pairs, Triplets, Tuples, all_negative_tuples, warn_if_no_positive

__all__ = ["Sampler", "label_masks"]


def label_masks(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(same, different)`` boolean ``(G, B, B)`` masks for ``(G, B)`` labels; ``same`` excludes i == j."""
    eq = labels.unsqueeze(-1) == labels.unsqueeze(-2)
    eye = torch.eye(labels.shape[-1], dtype=torch.bool, device=labels.device)
    return eq & ~eye, ~eq


class Sampler:
    """Positive rule x negative rule.

    Parameters
    ----------
    positive : {"all", "random", "easy", "hard"} or PositiveRule
    negative : {"all", "random", "hard", "semihard", "distance"} or NegativeRule
    exclude_duplicates : float or None
        If set, same-label samples at distance ``<= exclude_duplicates`` are not eligible positives, so that an
        exact copy of the anchor cannot serve as its easy positive.
    random_state : None, int or torch.Generator
        Source of randomness for the random and distance-weighted rules.
    """

    def __init__(
        self,
        positive: str | PositiveRule = "easy",
        negative: str | NegativeRule = "all",
        *,
        exclude_duplicates: float | None = None,
        random_state: None | int | torch.Generator = 0,
    ) -> None:
        self.positive = positive if isinstance(positive, PositiveRule) else POSITIVE_RULES[
            check_choice("positive", positive, POSITIVE_RULES)
        ]()
        self.negative = negative if isinstance(negative, NegativeRule) else NEGATIVE_RULES[
            check_choice("negative", negative, NEGATIVE_RULES)
        ]()
        self.exclude_duplicates = (
            None if exclude_duplicates is None else check_real("exclude_duplicates", exclude_duplicates, low=0.0)
        )
        self.random_state = random_state
        self._generator: torch.Generator | None = None

    def generator(self, device: torch.device) -> torch.Generator:
        if self._generator is None or self._generator.device != device:
            self._generator = check_generator(self.random_state, device)
        return self._generator

    @torch.no_grad()
    def __call__(
        self, dist: torch.Tensor, labels: torch.Tensor, *, dim: int, warn: bool = True, overwrite: bool = False
    ) -> Tuples:
        """Select tuples from a ``(G, B, B)`` (or ``(B, B)``) distance matrix and ``(G, B)`` (or ``(B,)``) labels.

        ``overwrite=True`` allows the sampler to use ``dist`` as scratch space (its values are garbage afterwards);
        a loss passes it for the matrix it computed only for the selection.
        """
        dist = dist.detach()
        if dist.dim() == 2:
            dist, labels = dist.unsqueeze(0), labels.unsqueeze(0)
        if labels.shape[1] == 0:
            # An empty batch has no tuple (every rule's row reduction needs at least one column).
            return self._empty(labels.shape[0], dist.device)
        if self.per_anchor:
            # One positive per anchor: the fixed-shape selection, listed.
            return self.select(dist, labels, dim=dim, overwrite=overwrite).to_tuples(warn=warn)
        n_groups, batch = labels.shape
        same, different = label_masks(labels)
        if self.exclude_duplicates is not None:
            same = same & (dist > self.exclude_duplicates)
        positives = self.positive.select(dist, same, self.generator(dist.device))
        has_positive = torch.zeros(n_groups, batch, dtype=torch.bool, device=dist.device)
        has_positive[positives.g, positives.a] = True
        if not self.negative.per_pair:
            return all_negative_tuples(
                positives, has_positive, different, LabelSegments(labels).count, warn=warn, stacklevel=3
            )
        n_without_pos = int((~has_positive).sum())
        warn_if_no_positive(len(positives), n_without_pos, warn=warn, stacklevel=3)
        triplets = self.negative.select(dist, different, positives, self.generator(dist.device), dim)
        kept = torch.zeros(n_groups, batch, dtype=torch.bool, device=dist.device)
        kept[triplets.g, triplets.a] = True
        return Tuples.from_triplets(triplets, n_groups, batch, without_positive=n_without_pos,
                                    without_negative=int((has_positive & ~kept).sum()))  # fmt: skip

    def _empty(self, n_groups: int, device: torch.device) -> Tuples:
        """The tuples of an empty batch: none, in the same layout as a non-empty batch with this negative rule."""
        none = torch.zeros(0, dtype=torch.long, device=device)
        if not self.negative.per_pair:
            mask = torch.zeros(n_groups, 0, 0, dtype=torch.bool, device=device)
            return Tuples(Pairs(none, none, none), MaskPairs(mask), n_groups, 0, 0, 0, _negative_mask=mask)
        triplets = Triplets(none, none, none, none)
        return Tuples.from_triplets(triplets, n_groups, 0, without_positive=0, without_negative=0)

    @property
    def per_anchor(self) -> bool:
        """Whether the fixed-shape :meth:`select` serves this sampler: one positive per anchor, picked by ``_pick``
        (a rule subclass that redefines ``select`` keeps its own listing)."""
        return (
            self.positive.one_per_anchor
            and type(self.positive).select is PositiveRule.select
            and (not self.negative.per_pair or type(self.negative).select is NegativeRule.select)
        )

    @property
    def order_only(self) -> bool:
        """Whether the selection reads the distance matrix only by comparing entries of one row, so that a loss may
        pass :meth:`collapse.distances.Distance.order_matrix` instead (no duplicate tolerance: that one compares
        distances with a number)."""
        return self.positive.order_only and self.negative.order_only and self.exclude_duplicates is None

    @torch.no_grad()
    def select(
        self, dist: torch.Tensor, labels: torch.Tensor, *, dim: int, overwrite: bool = False, bound: float | None = None
    ) -> AnchorSelection:
        """The fixed-shape selection (:class:`~collapse.sampling.selection.AnchorSelection`) of a ``(G, B, B)``
        distance matrix, for samplers with :attr:`per_anchor`. ``bound``: a known bound on the entries' magnitude
        (:attr:`collapse.distances.Distance.bound`), which a loss passes for the matrix it computed itself.

        Eager CPU calls on the built-in nearest/farthest rules take the exact fast path of
        :mod:`collapse.sampling.fused` (it reads the largest label count back); on a GPU and under
        ``torch.compile`` every rule runs on the dense label masks, so nothing waits for the device.
        """
        if not self.per_anchor:
            raise TypeError(f"{self!r} does not pick one positive per anchor; call the sampler for index tuples")
        dist = dist.detach()
        n_groups, batch = labels.shape
        # The fused rules read the largest label count back (a host sync), and pay off where boolean masks are slow:
        # eager CPU steps only. On a GPU and under torch.compile every rule runs on the dense masks.
        host = dist.device.type == "cpu" and not torch.compiler.is_compiling()
        fused_pos = host and batch > 0 and type(self.positive) in (EasyPositive, HardPositive)
        fused_neg = (
            fused_pos
            and type(self.negative) in (HardNegative, SemiHardNegative)
            and fused_negatives_apply(dist, self.negative.name, bound)
        )
        segments = LabelSegments(labels) if fused_pos else None
        # The different-label mask only where a rule reads it (the fused rules and the all rule do not).
        masked = not (fused_neg or (fused_pos and not self.negative.per_pair))
        different = labels.unsqueeze(-1) != labels.unsqueeze(-2) if masked else None
        d_ap = None
        if fused_pos:
            p_index, has_positive, d_ap = fused_positives(dist, segments, self.positive.name, self.exclude_duplicates)
        else:
            same = ~different & ~torch.eye(batch, dtype=torch.bool, device=dist.device)
            if self.exclude_duplicates is not None:
                same &= dist > self.exclude_duplicates
            p_index, has_positive = self.positive._pick(dist, same, self._generator_for(self.positive, dist))
        if not self.negative.per_pair:
            members = segments.members if segments is not None else None
            return AnchorSelection(p_index, has_positive, None, None, labels, members)
        if d_ap is None:
            d_ap = dist.gather(-1, p_index.unsqueeze(-1)).squeeze(-1)
        if fused_neg:
            n_index, has_negative = fused_negatives(dist, segments, self.negative.name, d_ap, overwrite=overwrite)
        else:
            n_index, has_negative = self.negative.pick_rows(
                dist, different, d_ap, self._generator_for(self.negative, dist), dim
            )
        return AnchorSelection(p_index, has_positive, n_index, has_negative, labels)

    def _generator_for(self, rule: PositiveRule | NegativeRule, dist: torch.Tensor) -> torch.Generator | None:
        # Deterministic rules never touch the generator. A torch.Generator cannot be traced by torch.compile: a
        # compiled step's random rules draw from torch's global generator (seed it with torch.manual_seed), so its
        # draws are other (equally random) numbers than an eager step's.
        if not rule.random or torch.compiler.is_compiling():
            return None
        return self.generator(dist.device)

    def __repr__(self) -> str:
        return f"Sampler(positive={self.positive.name!r}, negative={self.negative.name!r})"
