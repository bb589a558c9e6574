"""Unreduced loss terms and the result a loss returns."""

from __future__ import annotations

from collections.abc import Callable

import torch

from collapse.sampling.selection import AnchorSelection
from collapse.sampling.tuples import Tuples

__all__ = ["LossOutput", "PrunedTerms", "Terms"]


class Terms:
    """One sub-loss, unreduced: ``losses[t]`` belongs to the tuple ``indices[t]`` of group ``group[t]``.

    ``kind`` names the tuple: ``"triplet"`` (indices ``(a, p, n)``), ``"pos_pair"``/``"neg_pair"`` (``(a, b)``)
    or ``"anchor"`` (``(a,)``), following pytorch-metric-learning's reduction types.

    Fixed-shape terms (the loss step of :mod:`collapse.losses.base`) also carry ``mask``: then every tensor has the
    shape ``(G, ...)`` of the mask (one entry per anchor, or per anchor and batch sample), and only the entries where
    ``mask`` is True are tuples; the others hold finite placeholders that no reducer counts. :meth:`compact` lists the
    tuples (flat, in ``(g, a, ...)`` order), as the index path returns them.
    """

    __slots__ = ("group", "indices", "kind", "losses", "mask")

    def __init__(
        self,
        losses: torch.Tensor,
        group: torch.Tensor,
        indices: tuple[torch.Tensor, ...],
        kind: str,
        mask: torch.Tensor | None = None,
    ) -> None:
        self.losses, self.group, self.indices, self.kind, self.mask = losses, group, tuple(indices), kind, mask

    def __len__(self) -> int:
        return int(self.losses.numel()) if self.mask is None else int(self.mask.sum())

    def compact(self) -> Terms:
        """The same terms with only the valid tuples, flat (itself when it has no mask)."""
        if self.mask is None:
            return self
        keep = self.mask.reshape(-1).nonzero().squeeze(-1)

        def pick(t: torch.Tensor) -> torch.Tensor:
            return t.expand_as(self.mask).reshape(-1)[keep]

        return Terms(pick(self.losses), pick(self.group), tuple(pick(i) for i in self.indices), self.kind)

    def __repr__(self) -> str:
        return f"Terms(kind={self.kind!r}, {len(self)} tuples{', fixed-shape' if self.mask is not None else ''})"


class PrunedTerms(Terms):
    """Flat terms that hold only the tuples whose term can be non-zero (a hinge inside its margin): what a reducer
    that skips zero terms (:attr:`~collapse.losses.reducers.Reducer.skips_zero_terms`) needs, without computing the
    rule's other tuples, whose terms are exactly 0. :meth:`compact` and ``len`` give the rule's full listing, zeros
    included (``listing()``, built once on first read), as every other layout does."""

    __slots__ = ("_full", "_listing")

    def __init__(self, held: Terms, listing: Callable[[], Terms]) -> None:
        if held.mask is not None:
            raise ValueError("the held terms of PrunedTerms are flat (no mask)")
        super().__init__(held.losses, held.group, held.indices, held.kind)
        self._listing, self._full = listing, None

    def __len__(self) -> int:
        return len(self.compact())

    def compact(self) -> Terms:
        if self._full is None:
            self._full = self._listing()
        return self._full

    def __repr__(self) -> str:
        return f"PrunedTerms(kind={self.kind!r}, {int(self.losses.numel())} of the rule's tuples held)"


class LossOutput:
    """``loss`` is the sum over groups of ``per_group``, each group's reduced loss (so groups train independently).

    ``terms`` (name -> :class:`Terms`, listed) and ``tuples`` (:class:`~collapse.sampling.tuples.Tuples`) are built
    on first read from what the loss step computed (fixed-shape terms and an
    :class:`~collapse.sampling.selection.AnchorSelection`, or a function that lists the tuples), so a training step
    that reads only ``loss`` never lists them (listing reads data-dependent sizes back from the device).
    """

    def __init__(
        self,
        loss: torch.Tensor,
        per_group: torch.Tensor,
        terms: dict[str, Terms],
        tuples: Tuples | AnchorSelection | Callable[[], Tuples],
        extras: dict[str, torch.Tensor] | None = None,
    ) -> None:
        self.loss = loss
        self.per_group = per_group
        self.raw_terms = terms
        self._tuples = tuples
        self._selection = tuples if isinstance(tuples, AnchorSelection) else None
        self.extras = {} if extras is None else extras
        self._listed: dict[str, Terms] | None = None

    @property
    def terms(self) -> dict[str, Terms]:
        if self._listed is None:
            self._listed = {name: t.compact() for name, t in self.raw_terms.items()}
        return self._listed

    @property
    def tuples(self) -> Tuples:
        if isinstance(self._tuples, AnchorSelection):
            self._tuples = self._tuples.to_tuples()
        elif callable(self._tuples):  # a step that never listed its tuples (the dense all-pairs layout)
            self._tuples = self._tuples()
        return self._tuples

    @property
    def selection(self) -> AnchorSelection | None:
        """The fixed-shape selection, where the loss step made one (``None`` on the index path)."""
        return self._selection

    def __repr__(self) -> str:
        return f"LossOutput(loss={self.loss!r}, terms={list(self.raw_terms)})"
