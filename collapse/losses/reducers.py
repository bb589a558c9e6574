r"""Reducers turn unreduced terms into one number per group.

For a group with terms :math:`\ell_1..\ell_T` of each sub-loss:

* ``MeanReducer``       : :math:`\sum_{\text{sub-losses}} \frac1T \sum_t \ell_t`.
* ``SumReducer``        : :math:`\sum \ell_t`.
* ``AvgNonZeroReducer`` : :math:`\sum_{\text{sub-losses}} \frac{\sum_t \ell_t}{\#\{t: \ell_t > 0\}}`, the
  default of pytorch-metric-learning's triplet and contrastive losses (inactive hinges do not dilute the mean).
* ``DivisorReducer``    : :math:`\sum_{\text{all sub-losses}} \sum_t \ell_t \,/\, Z` with :math:`Z` the number of
  non-zero terms of the counted sub-losses,
  the margin loss's normalisation (Wu et al. 2017; pytorch-metric-learning's ``MarginLoss``).

A group with nothing to average contributes 0.

Terms come in two layouts, and each reducer is one formula over both: listed (flat ``losses`` with a ``group``
index) or fixed-shape (``(G, ...)`` tensors with a ``mask`` of the counted entries, :class:`~collapse.losses.terms.
Terms`); :func:`group_total` sums either per group, so the counts and sums above never list the tuples.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from collapse.losses.terms import Terms

__all__ = ["REDUCERS", "AvgNonZeroReducer", "DivisorReducer", "MeanReducer", "Reducer", "SumReducer"]


def group_sum(values: torch.Tensor, group: torch.Tensor, n_groups: int) -> torch.Tensor:
    """``out[g] = sum of values[t] with group[t] == g``, shape ``(n_groups,)``."""
    if n_groups == 1:
        # One group: a plain sum. index_add accumulates its 1-D values one by one into the one slot (no
        # vectorisation), about 0.5 ms for the 260k negative pairs of an all-pairs step at B = 512 on a CPU.
        return values.sum().reshape(1)
    out = torch.zeros(n_groups, dtype=values.dtype, device=values.device)
    return out.index_add(0, group, values)


def group_total(terms: Terms, values: torch.Tensor, n_groups: int) -> torch.Tensor:
    """Per-group sum of ``values`` (shaped like ``terms.losses``) over the terms' tuples, in either layout."""
    if terms.mask is None:
        return group_sum(values, terms.group, n_groups)
    # where, not a product: a placeholder entry may be anything finite or not, and must not reach the sum.
    return torch.where(terms.mask, values, 0.0).reshape(n_groups, -1).sum(-1)


def _counted(terms: Terms, values: torch.Tensor) -> torch.Tensor:
    return values if terms.mask is None else values & terms.mask


def _safe_divide(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    return torch.where(den > 0, num / den.clamp_min(1), 0.0)


class Reducer:
    name = "reducer"
    #: A zero term changes neither the reduced value nor its gradient (no count of all terms), so a loss may hand
    #: over only its terms that can be non-zero (:class:`~collapse.losses.terms.PrunedTerms`).
    skips_zero_terms = False

    def __call__(self, terms: dict[str, Terms], n_groups: int, like: torch.Tensor) -> torch.Tensor:
        # A sub-loss without terms adds 0 to every reducer (e.g. a pruned step's negatives, none inside the margin).
        parts = [self.reduce_one(t, n_groups) for t in terms.values() if t.losses.numel()]
        parts = [p if p.dtype == like.dtype else p.to(like.dtype) for p in parts]
        if not parts:
            return torch.zeros(n_groups, dtype=like.dtype, device=like.device)
        out = parts[0]
        for part in parts[1:]:
            out = out + part
        return out

    def reduce_one(self, terms: Terms, n_groups: int) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class MeanReducer(Reducer):
    name = "mean"

    def reduce_one(self, terms, n_groups):
        if terms.mask is None:
            count = group_sum(torch.ones_like(terms.losses), terms.group, n_groups)
        else:
            count = terms.mask.reshape(n_groups, -1).sum(-1).to(terms.losses.dtype)
        return _safe_divide(group_total(terms, terms.losses, n_groups), count)


class SumReducer(Reducer):
    skips_zero_terms = True
    name = "sum"

    def reduce_one(self, terms, n_groups):
        return group_total(terms, terms.losses, n_groups)


class AvgNonZeroReducer(Reducer):
    skips_zero_terms = True
    name = "avg_nonzero"

    def reduce_one(self, terms, n_groups):
        if terms.mask is not None:
            # Fixed shape: the counted values once (placeholders to 0); their positive entries are exactly the
            # counted non-zero terms, so the sum and the count come from one masked tensor.
            kept = torch.where(terms.mask, terms.losses, 0.0)
            kept = kept if kept.dim() == 2 else kept.reshape(n_groups, -1)  # a reshape is one more autograd node
            count = (kept.detach() > 0).sum(-1, dtype=kept.dtype)
            return _safe_divide(kept.sum(-1), count)
        nonzero = _counted(terms, terms.losses > 0).to(terms.losses.dtype)
        count = group_total(terms, nonzero, n_groups).detach()
        return _safe_divide(group_total(terms, terms.losses, n_groups), count)


class DivisorReducer(Reducer):
    """Sum of every term, divided by the number of non-zero terms among the sub-losses named in ``counted``."""

    name = "divisor"
    skips_zero_terms = True

    def __init__(self, counted: Sequence[str] = ("pos_loss", "neg_loss")) -> None:
        self.counted = tuple(counted)

    def __call__(self, terms, n_groups, like):
        total = torch.zeros(n_groups, dtype=like.dtype, device=like.device)
        count = torch.zeros(n_groups, dtype=like.dtype, device=like.device)
        for name, t in terms.items():
            if not t.losses.numel():  # no terms: adds 0 to both sums
                continue
            total = total + group_total(t, t.losses, n_groups).to(like.dtype)
            if name in self.counted:
                count = count + group_total(t, _counted(t, t.losses > 0).to(like.dtype), n_groups)
        return _safe_divide(total, count)

    def __repr__(self) -> str:
        return f"DivisorReducer(counted={self.counted})"


REDUCERS: dict[str, type[Reducer]] = {
    cls.name: cls for cls in (MeanReducer, SumReducer, AvgNonZeroReducer, DivisorReducer)
}
