"""A sampler pairs one positive rule with one negative rule.

``Sampler(positive="easy", negative="semihard")`` is easy positive sampling with semi-hard negatives;
any positive rule goes with any negative rule. The sampler works on a distance matrix that the loss has
already computed, and never on the gradient path: selection is a discrete choice.
"""

from __future__ import annotations

import warnings

import torch

from collapse._validation import check_choice, check_generator, check_real
from collapse.sampling.fused import LabelSegments, fused_negatives, fused_negatives_apply, fused_positives
from collapse.sampling.negatives import NEGATIVE_RULES, HardNegative, NegativeRule, SemiHardNegative
from collapse.sampling.positives import POSITIVE_RULES, EasyPositive, HardPositive, PositiveRule
from collapse.sampling.tuples import MaskPairs, Pairs, Triplets, Tuples

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
        n_groups, batch = labels.shape
        if batch == 0:
            # An empty batch has no tuple (every rule's row reduction needs at least one column).
            return self._empty(n_groups, dist.device)
        gen = self.generator(dist.device)
        # The built-in nearest/farthest rules (not subclasses, which may redefine _pick) have an exact fast path.
        fused_pos = batch > 0 and type(self.positive) in (EasyPositive, HardPositive)
        fused_neg = (
            fused_pos
            and type(self.negative) in (HardNegative, SemiHardNegative)
            and fused_negatives_apply(dist, self.negative.name)
        )
        segments = LabelSegments(labels) if fused_pos else None
        if fused_neg:
            masks = None
        elif fused_pos:
            masks = (None, labels.unsqueeze(-1) != labels.unsqueeze(-2))  # only the different-label mask is read
        else:
            masks = label_masks(labels)

        if fused_pos:
            p_index, has_positive = fused_positives(dist, segments, self.positive.name, self.exclude_duplicates)
            g, a = has_positive.nonzero(as_tuple=True)
            positives = Pairs(g, a, p_index[g, a])
        else:
            same = masks[0] if self.exclude_duplicates is None else masks[0] & (dist > self.exclude_duplicates)
            positives = self.positive.select(dist, same, gen)
            has_positive = torch.zeros(n_groups, batch, dtype=torch.bool, device=dist.device)
            has_positive[positives.g, positives.a] = True
        n_without_pos = int(n_groups * batch - len(positives)) if fused_pos else int((~has_positive).sum())
        if warn and len(positives) == 0:
            warnings.warn(
                f"no anchor in the batch has a valid positive ({n_without_pos} anchors dropped); the loss is 0",
                RuntimeWarning,
                stacklevel=3,
            )

        if not self.negative.per_pair:
            neg_mask = masks[1] if n_without_pos == 0 else masks[1] & has_positive.unsqueeze(-1)
            # An anchor has a different-label sample unless its label fills the batch.
            count = segments.count if segments is not None else LabelSegments(labels).count
            return Tuples(
                positive_pairs=positives,
                negative_pairs=MaskPairs(neg_mask),
                n_groups=n_groups,
                batch_size=batch,
                anchors_without_positive=n_without_pos,
                anchors_without_negative=int((has_positive & (count == batch)).sum()),
                _negative_mask=neg_mask,
            )

        if fused_neg:
            d_ap = dist.gather(-1, p_index.unsqueeze(-1)).squeeze(-1)
            n_index, has_negative = fused_negatives(dist, segments, self.negative.name, d_ap, overwrite=overwrite)
            kept_mask = has_positive & has_negative
            g, a = kept_mask.nonzero(as_tuple=True)
            triplets = Triplets(g, a, p_index[g, a], n_index[g, a])
            without_negative = int((kept_mask ^ has_positive).sum())
        else:
            triplets = self.negative.select(dist, masks[1], positives, gen, dim)
            kept = torch.zeros(n_groups, batch, dtype=torch.bool, device=dist.device)
            kept[triplets.g, triplets.a] = True
            without_negative = int((has_positive & ~kept).sum())
        return Tuples(
            positive_pairs=triplets.positive_pairs,
            negative_pairs=triplets.negative_pairs,
            n_groups=n_groups,
            batch_size=batch,
            anchors_without_positive=n_without_pos,
            anchors_without_negative=without_negative,
            _triplets=triplets,
        )

    def _empty(self, n_groups: int, device: torch.device) -> Tuples:
        """The tuples of an empty batch: none, in the same layout as a non-empty batch with this negative rule."""
        none = torch.zeros(0, dtype=torch.long, device=device)
        if not self.negative.per_pair:
            mask = torch.zeros(n_groups, 0, 0, dtype=torch.bool, device=device)
            return Tuples(Pairs(none, none, none), MaskPairs(mask), n_groups, 0, 0, 0, _negative_mask=mask)
        triplets = Triplets(none, none, none, none)
        return Tuples(triplets.positive_pairs, triplets.negative_pairs, n_groups, 0, 0, 0, _triplets=triplets)

    def __repr__(self) -> str:
        return f"Sampler(positive={self.positive.name!r}, negative={self.negative.name!r})"
