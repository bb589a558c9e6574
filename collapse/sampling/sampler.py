"""A sampler pairs one positive rule with one negative rule.

``Sampler(positive="easy", negative="semihard")`` is easy positive sampling with semi-hard negatives;
any positive rule goes with any negative rule. The sampler works on a distance matrix that the loss has
already computed, and never on the gradient path: selection is a discrete choice.
"""

from __future__ import annotations

import warnings

import torch

from collapse._validation import check_choice, check_generator, check_real
from collapse.sampling.negatives import NEGATIVE_RULES, NegativeRule
from collapse.sampling.positives import POSITIVE_RULES, PositiveRule
from collapse.sampling.tuples import Pairs, Tuples

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
    def __call__(self, dist: torch.Tensor, labels: torch.Tensor, *, dim: int, warn: bool = True) -> Tuples:
        """Select tuples from a ``(G, B, B)`` (or ``(B, B)``) distance matrix and ``(G, B)`` (or ``(B,)``) labels."""
        dist = dist.detach()
        if dist.dim() == 2:
            dist, labels = dist.unsqueeze(0), labels.unsqueeze(0)
        n_groups, batch = labels.shape
        gen = self.generator(dist.device)
        same, different = label_masks(labels)
        if self.exclude_duplicates is not None:
            same = same & (dist > self.exclude_duplicates)

        positives = self.positive.select(dist, same, gen)
        has_positive = torch.zeros(n_groups, batch, dtype=torch.bool, device=dist.device)
        has_positive[positives.g, positives.a] = True
        n_without_pos = int(n_groups * batch - has_positive.sum())
        if warn and len(positives) == 0:
            warnings.warn(
                f"no anchor in the batch has a valid positive ({n_without_pos} anchors dropped); the loss is 0",
                RuntimeWarning,
                stacklevel=3,
            )

        if not self.negative.per_pair:
            neg_mask = different & has_positive.unsqueeze(-1)
            g, a, n = neg_mask.nonzero(as_tuple=True)
            lacks_negative = has_positive & ~neg_mask.any(-1)
            return Tuples(
                positive_pairs=positives,
                negative_pairs=Pairs(g, a, n),
                n_groups=n_groups,
                batch_size=batch,
                anchors_without_positive=n_without_pos,
                anchors_without_negative=int(lacks_negative.sum()),
                _negative_mask=neg_mask,
            )

        triplets = self.negative.select(dist, different, positives, gen, dim)
        kept = torch.zeros(n_groups, batch, dtype=torch.bool, device=dist.device)
        kept[triplets.g, triplets.a] = True
        return Tuples(
            positive_pairs=triplets.positive_pairs,
            negative_pairs=triplets.negative_pairs,
            n_groups=n_groups,
            batch_size=batch,
            anchors_without_positive=n_without_pos,
            anchors_without_negative=int((has_positive & ~kept).sum()),
            _triplets=triplets,
        )

    def __repr__(self) -> str:
        return f"Sampler(positive={self.positive.name!r}, negative={self.negative.name!r})"
