"""The shared skeleton of every embedding loss.

``loss(embeddings, labels)`` runs the one-way pipeline

    distance matrix -> sampler (no gradient) -> unreduced terms -> reducer

and returns a :class:`~collapse.losses.terms.LossOutput`. Embeddings are ``(B, d)`` for one batch or
``(G, B, d)`` for G independent runs trained in one tensor program; labels are ``(B,)`` or ``(G, B)``.

Cost. When the sampler picks one negative per positive pair and the loss reads the distance only at its tuples
(``pairwise_terms``), the matrix is computed once without autograd, for the selection only, and the distances the
terms need are recomputed with autograd from the embeddings (:meth:`~collapse.distances.Distance.pairs`): the
backward pass is O(T d) for T tuples instead of O(B^2 d), and no (B, B) tensor is kept for it. Those values equal
the matrix entries up to rounding. Otherwise (all negatives, or more tuple work than the matrix) the matrix
carries autograd.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from collapse._fastgrad import pair_distance
from collapse.distances import Distance, get_distance
from collapse.losses.reducers import REDUCERS, Reducer
from collapse.losses.terms import LossOutput, Terms
from collapse.sampling.sampler import Sampler
from collapse.sampling.tuples import Tuples

__all__ = ["SCRATCH_ELEMENTS", "MetricLoss", "PairDistances", "as_groups"]

#: Largest selection matrix (entries) a loss keeps between steps as a reusable buffer (16M: 64 MB of float32).
SCRATCH_ELEMENTS = 1 << 24


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
    # min/max propagate NaN and inf, and are one vectorised pass (isfinite().all() is several times slower on CPU).
    if embeddings.numel() and not all(math.isfinite(float(v)) for v in torch.aminmax(embeddings.detach())):
        raise ValueError("embeddings contain NaN or inf")
    return embeddings, labels


class PairDistances:
    """Stands in for the ``(G, B, B)`` distance matrix in :meth:`MetricLoss.compute_terms`: ``D[g, i, j]`` with index
    vectors is computed on demand, with autograd, from the prepared embeddings; the matrix itself is never built."""

    def __init__(self, distance: Distance, prepared: torch.Tensor) -> None:
        self.distance = distance
        self.prepared = prepared

    def __getitem__(self, index: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
        g, i, j = index
        n_groups, batch, dim = self.prepared.shape
        if n_groups == 1:
            # One group: the rows are the batch indices themselves (no index arithmetic per call).
            return pair_distance(self.prepared.reshape(batch, dim), i, j, self.distance.pair_kind)
        return self.distance.pairs(self.prepared, g, i, j, prepared=True)

    @property
    def shape(self) -> torch.Size:
        n_groups, batch, _ = self.prepared.shape
        return torch.Size((n_groups, batch, batch))

    @property
    def dtype(self) -> torch.dtype:
        return self.prepared.dtype

    @property
    def device(self) -> torch.device:
        return self.prepared.device

    @property
    def requires_grad(self) -> bool:
        return self.prepared.requires_grad

    def sum(self) -> torch.Tensor:
        """A scalar connected to the embeddings' graph (what ``0.0 * dist.sum()`` is there for), O(B d)."""
        return self.prepared.sum()


class _Scratch:
    """A reusable tensor that is not state: copies and pickles of the loss start without it."""

    def __init__(self) -> None:
        self.buf: torch.Tensor | None = None

    def get(self, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        buf = self.buf
        if buf is None or buf.shape != shape or buf.dtype != like.dtype or buf.device != like.device:
            buf = self.buf = torch.empty(shape, dtype=like.dtype, device=like.device)
        return buf

    def __getstate__(self) -> dict:
        return {"buf": None}

    def __deepcopy__(self, memo: dict) -> _Scratch:
        return _Scratch()


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
    #: ``compute_terms`` reads ``dist`` only as ``dist[g, i, j]`` at the tuples' indices whenever the sampler picks
    #: one negative per positive pair, so it may be handed a :class:`PairDistances` (see the module docstring).
    pairwise_terms = False

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
        sampler = sampler or self.sampler
        if not (self.pairwise_terms and sampler.negative.per_pair):
            return self.from_distances(self.distance(emb), labels, dim=emb.shape[-1], sampler=sampler)
        prepared = self.distance.prepare(emb)
        n_groups, batch, dim = emb.shape
        with torch.no_grad():
            detached = prepared.detach()
            scratch = self._scratch(n_groups, batch, detached)
            full = self.distance(detached, prepared=True, out=scratch)
            # A sampler subclass may redefine __call__ without the overwrite keyword; it gets its own matrix.
            own = type(sampler).__call__ is Sampler.__call__
            tuples = sampler(full, labels, dim=dim, overwrite=True) if own else sampler(full.clone(), labels, dim=dim)
        if len(tuples.triplets) * dim > n_groups * batch * max(batch, dim):
            # More pair rows (T x d) than the matrix and the embeddings hold (e.g. all positives of large classes):
            # the matrix with autograd takes less memory.
            return self._reduce(self.distance(emb), tuples, labels)
        return self._reduce(PairDistances(self.distance, prepared), tuples, labels)

    def _scratch(self, n_groups: int, batch: int, like: torch.Tensor) -> torch.Tensor | None:
        """The (G, B, B) buffer of the selection matrix, kept from step to step up to :data:`SCRATCH_ELEMENTS`.

        A fresh buffer of a few MB is zero-filled by the OS page by page on every step (page faults), which costs
        about as much as the selection itself at B of a few hundred; larger matrices are allocated per step, so a
        loss never holds more than SCRATCH_ELEMENTS entries between steps. The sampler receives this buffer as
        scratch space (``overwrite=True``): the matrix is valid during its call only.
        """
        if n_groups * batch * batch > SCRATCH_ELEMENTS:
            return None
        if "_scratch_holder" not in self.__dict__:
            self._scratch_holder = _Scratch()
        return self._scratch_holder.get((n_groups, batch, batch), like)

    def from_distances(
        self, dist: torch.Tensor, labels: torch.Tensor, *, dim: int, sampler: Sampler | None = None
    ) -> LossOutput:
        """The loss of a ``(G, B, B)`` distance matrix with ``(G, B)`` labels (``dim`` is the embedding dimension,
        which distance-weighted sampling needs). The theory module feeds exact mode distances through here."""
        return self._reduce(dist, (sampler or self.sampler)(dist, labels, dim=dim), labels)

    def _reduce(self, dist: torch.Tensor | PairDistances, tuples: Tuples, labels: torch.Tensor) -> LossOutput:
        # An empty batch has no tuple and so no term (a loss's row-wise term code may assume at least one column).
        terms = self.compute_terms(dist, tuples, labels) if tuples.batch_size else {}
        per_group = self.reducer(terms, tuples.n_groups, dist)
        if dist.requires_grad and not per_group.requires_grad:
            # No tuple was selected: a zero multiple keeps the graph connected, so backward() still works.
            per_group = per_group + 0.0 * dist.sum()
        per_group = per_group + self.regularizer(tuples, labels, per_group)
        return LossOutput(loss=per_group.sum(), per_group=per_group, terms=terms, tuples=tuples)

    def compute_terms(self, dist: torch.Tensor, tuples: Tuples, labels: torch.Tensor) -> dict[str, Terms]:
        raise NotImplementedError

    def regularizer(self, tuples: Tuples, labels: torch.Tensor, per_group: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(per_group)

    def extra_repr(self) -> str:
        return f"sampler={self.sampler!r}, distance={self.distance!r}, reducer={self.reducer!r}"
