r"""Pairwise distances between embeddings.

Every distance returns a matrix ``D[..., i, j]`` for inputs of shape ``(..., B, d)``, so one call
serves a single batch ``(B, d)`` or a stack of independent runs ``(G, B, d)``. Smaller is closer.

* ``euclidean``   : :math:`D_{ij} = \lVert \hat x_i - \hat x_j \rVert_2`, with :math:`\hat x = x/\lVert x\rVert`
  when ``normalize`` (the default: Euclidean distance on the unit sphere, values in [0, 2]).
* ``sqeuclidean`` : :math:`D_{ij} = \lVert \hat x_i - \hat x_j \rVert_2^2`.
* ``cosine``      : :math:`D_{ij} = 1 - \hat x_i^\top \hat x_j`, so that the cosine similarity is ``1 - D``.

Squared distances use :math:`\lVert x\rVert^2 + \lVert y\rVert^2 - 2x^\top y`, clamped at 0; that is one matrix
product, so memory is O(B^2) and never O(B^2 d). Its price is rounding: two bitwise-identical embeddings come out
at a residue of up to about 1e-8 (float64) or 5e-4 (float32) instead of 0, so tolerances such as the sampler's
``exclude_duplicates`` should sit above it. The square root has a zero (not infinite) gradient at 0 and the
gradient of an identical pair is exactly 0 (it is proportional to ``x - y``), which matters: tied embeddings
(two samples of one mode) must exert no force on each other.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from collapse._validation import check_choice

__all__ = ["DISTANCES", "CosineDistance", "Distance", "EuclideanDistance", "SquaredEuclideanDistance", "get_distance"]


class Distance:
    """Base class: ``distance(x, y=None)`` returns the pairwise distance matrix (``y=None`` means ``y = x``)."""

    name = "distance"

    def __init__(self, normalize: bool = True) -> None:
        self.normalize = bool(normalize)

    def __call__(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() < 2:
            raise ValueError(f"embeddings must have shape (..., B, d), got {tuple(x.shape)}")
        x = self._prepare(x)
        y = x if y is None else self._prepare(y)
        return self._pairwise(x, y)

    def similarity(self, dist: torch.Tensor) -> torch.Tensor:
        """A similarity that decreases with the distance (used by similarity-based losses)."""
        return -dist

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=-1) if self.normalize else x

    def _pairwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(normalize={self.normalize})"


def _squared(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    sq = (x * x).sum(-1).unsqueeze(-1) + (y * y).sum(-1).unsqueeze(-2) - 2.0 * (x @ y.transpose(-1, -2))
    return sq.clamp_min(0.0)


def _safe_sqrt(sq: torch.Tensor) -> torch.Tensor:
    # sqrt'(0) is infinite; at exact ties the gradient must be 0, as torch.cdist defines it.
    positive = sq > 0
    return torch.where(positive, torch.where(positive, sq, torch.ones_like(sq)).sqrt(), torch.zeros_like(sq))


class EuclideanDistance(Distance):
    name = "euclidean"

    def _pairwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return _safe_sqrt(_squared(x, y))


class SquaredEuclideanDistance(Distance):
    name = "sqeuclidean"

    def _pairwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return _squared(x, y)


class CosineDistance(Distance):
    name = "cosine"

    def __init__(self) -> None:
        super().__init__(normalize=True)

    def _pairwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return 1.0 - x @ y.transpose(-1, -2)

    def similarity(self, dist: torch.Tensor) -> torch.Tensor:
        return 1.0 - dist

    def __repr__(self) -> str:
        return "CosineDistance()"


DISTANCES = {"euclidean": EuclideanDistance, "sqeuclidean": SquaredEuclideanDistance, "cosine": CosineDistance}


def get_distance(distance: str | Distance) -> Distance:
    """Return a :class:`Distance` for a name in :data:`DISTANCES` (or pass an instance through)."""
    if isinstance(distance, Distance):
        return distance
    return DISTANCES[check_choice("distance", distance, DISTANCES)]()
