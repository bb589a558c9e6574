"""The shared skeleton of every embedding loss.

``loss(embeddings, labels)`` runs the one-way pipeline

    distance matrix -> sampler (no gradient) -> unreduced terms -> reducer

and returns a :class:`~collapse.losses.terms.LossOutput`. Embeddings are ``(B, d)`` for one batch or
``(G, B, d)`` for G independent runs trained in one tensor program; labels are ``(B,)`` or ``(G, B)``.
"""

from __future__ import annotations

import torch
from torch import nn

from collapse.distances import Distance, get_distance
from collapse.losses.reducers import REDUCERS, Reducer
from collapse.losses.terms import LossOutput, Terms
from collapse.sampling.sampler import Sampler
from collapse.sampling.tuples import Tuples

__all__ = ["MetricLoss", "as_groups"]


def as_groups(embeddings: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate and lift ``(B, d)``/``(B,)`` inputs to ``(1, B, d)``/``(1, B)``."""
    if not isinstance(embeddings, torch.Tensor) or not embeddings.is_floating_point():
        raise TypeError("embeddings must be a floating-point torch.Tensor")
    labels = torch.as_tensor(labels, device=embeddings.device)
    if embeddings.dim() == 2:
        embeddings, labels = embeddings.unsqueeze(0), labels.reshape(1, -1)
    if embeddings.dim() != 3:
        raise ValueError(f"embeddings must have shape (B, d) or (G, B, d), got {tuple(embeddings.shape)}")
    if labels.shape != embeddings.shape[:2]:
        raise ValueError(f"labels must have shape {tuple(embeddings.shape[:2])}, got {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise TypeError(f"labels must be integers, got dtype {labels.dtype}")
    if not bool(torch.isfinite(embeddings).all()):
        raise ValueError("embeddings contain NaN or inf")
    return embeddings, labels


class MetricLoss(nn.Module):
    """Base class. Subclasses set the defaults and implement :meth:`compute_terms`.

    Parameters
    ----------
    sampler : Sampler, optional
        Positive x negative selection; each loss has its own published default.
    distance : str or Distance
        ``"euclidean"`` (on the unit sphere), ``"sqeuclidean"`` or ``"cosine"``.
    reducer : str or Reducer, optional
        How terms become a scalar; each loss defaults to pytorch-metric-learning's choice.
    """

    default_positive = "all"
    default_negative = "all"
    default_distance = "euclidean"
    default_reducer = "avg_nonzero"

    def __init__(
        self,
        sampler: Sampler | None = None,
        distance: str | Distance | None = None,
        reducer: str | Reducer | None = None,
    ) -> None:
        super().__init__()
        self.sampler = sampler if sampler is not None else Sampler(self.default_positive, self.default_negative)
        self.distance = get_distance(distance if distance is not None else self.default_distance)
        reducer = reducer if reducer is not None else self.default_reducer
        self.reducer = reducer if isinstance(reducer, Reducer) else REDUCERS[reducer]()

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor, sampler: Sampler | None = None) -> LossOutput:
        emb, labels = as_groups(embeddings, labels)
        return self.from_distances(self.distance(emb), labels, dim=emb.shape[-1], sampler=sampler)

    def from_distances(
        self, dist: torch.Tensor, labels: torch.Tensor, *, dim: int, sampler: Sampler | None = None
    ) -> LossOutput:
        """The loss of a ``(G, B, B)`` distance matrix with ``(G, B)`` labels (``dim`` is the embedding dimension,
        which distance-weighted sampling needs). The theory module feeds exact mode distances through here."""
        tuples = (sampler or self.sampler)(dist, labels, dim=dim)
        terms = self.compute_terms(dist, tuples, labels)
        # The zero multiple keeps the graph connected when no tuple was selected, so backward() still works.
        per_group = self.reducer(terms, tuples.n_groups, dist) + 0.0 * dist.sum()
        per_group = per_group + self.regularizer(tuples, labels, per_group)
        return LossOutput(loss=per_group.sum(), per_group=per_group, terms=terms, tuples=tuples)

    def compute_terms(self, dist: torch.Tensor, tuples: Tuples, labels: torch.Tensor) -> dict[str, Terms]:
        raise NotImplementedError

    def regularizer(self, tuples: Tuples, labels: torch.Tensor, per_group: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(per_group)

    def extra_repr(self) -> str:
        return f"sampler={self.sampler!r}, distance={self.distance!r}, reducer={self.reducer!r}"
